"""The model catalog: every OpenAI model this project can fine-tune, each written once as data.

A `CatalogModel` holds a model's dated snapshot and undated alias, whether it can be fine-tuned,
its training price, its inference prices (base and fine-tuned) and its token limits. The
pipeline's checks (limits, cost), the validator and the local backend (which models it lists
and trains) all read `MODELS`. Providers change these facts: update the numbers *and* the
"as of" dates together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

# OpenAI pricing page as of this date (training and inference prices, USD per 1M tokens).
# Azure OpenAI: its prices vary by region and by training/deployment type (regional, global,
# developer) and its official pricing page could not be confirmed as of LIFECYCLES_AS_OF (the
# third-party pages found contradict each other), so no Azure price is recorded: the cost check
# prices an Azure job with these OpenAI prices, and a deployed fine-tuned model's hourly hosting
# fee on Azure is not counted anywhere.
PRICING_AS_OF = "2025-06-01"
# OpenAI models page and fine-tuning guide as of this date (context, output, per-example limits).
TOKEN_LIMITS_AS_OF = "2025-06-01"


@dataclass(frozen=True)
class TokenPrices:
    """USD per 1M tokens of a request: prompt, prompt served from the cache, completion."""

    input: float
    cached_input: float | None  # None: the model has no cached-input price
    output: float


@dataclass(frozen=True)
class CatalogModel:
    """One model: the names it answers to, what it costs and how many tokens it takes."""

    snapshot: str  # the dated name a job trains and OpenAI reports
    alias: str | None  # the undated name, pinned to `snapshot` as of PRICING_AS_OF
    fine_tunable: bool
    training_price: float | None  # USD per 1M training tokens (supervised); None when not tunable
    base_prices: TokenPrices  # requests to the base model
    fine_tuned_prices: TokenPrices | None  # requests to a model fine-tuned from it
    context_window: int  # tokens of prompt + completion
    max_output_tokens: int
    example_token_limit: int  # longest training example; longer ones are truncated

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the API accepts for this model: the snapshot, then the alias."""
        return (self.snapshot, self.alias) if self.alias else (self.snapshot,)


MODELS: tuple[CatalogModel, ...] = (
    CatalogModel(
        snapshot="gpt-4o-mini-2024-07-18", alias="gpt-4o-mini", fine_tunable=True, training_price=3.00,
        base_prices=TokenPrices(0.15, 0.075, 0.60), fine_tuned_prices=TokenPrices(0.30, 0.15, 1.20),
        context_window=128_000, max_output_tokens=16_384, example_token_limit=65_536,
    ),
    CatalogModel(
        snapshot="gpt-4o-2024-08-06", alias="gpt-4o", fine_tunable=True, training_price=25.00,
        base_prices=TokenPrices(2.50, 1.25, 10.00), fine_tuned_prices=TokenPrices(3.75, 1.875, 15.00),
        context_window=128_000, max_output_tokens=16_384, example_token_limit=65_536,
    ),
    CatalogModel(
        snapshot="gpt-4.1-2025-04-14", alias="gpt-4.1", fine_tunable=True, training_price=25.00,
        base_prices=TokenPrices(2.00, 0.50, 8.00), fine_tuned_prices=TokenPrices(3.00, 0.75, 12.00),
        context_window=1_047_576, max_output_tokens=32_768, example_token_limit=65_536,
    ),
    CatalogModel(
        snapshot="gpt-4.1-mini-2025-04-14", alias="gpt-4.1-mini", fine_tunable=True, training_price=5.00,
        base_prices=TokenPrices(0.40, 0.10, 1.60), fine_tuned_prices=TokenPrices(0.80, 0.20, 3.20),
        context_window=1_047_576, max_output_tokens=32_768, example_token_limit=65_536,
    ),
    CatalogModel(
        snapshot="gpt-4.1-nano-2025-04-14", alias="gpt-4.1-nano", fine_tunable=True, training_price=1.50,
        base_prices=TokenPrices(0.10, 0.025, 0.40), fine_tuned_prices=TokenPrices(0.20, 0.05, 0.80),
        context_window=1_047_576, max_output_tokens=32_768, example_token_limit=65_536,
    ),
    CatalogModel(
        snapshot="gpt-3.5-turbo-0125", alias="gpt-3.5-turbo", fine_tunable=True, training_price=8.00,
        base_prices=TokenPrices(0.50, None, 1.50), fine_tuned_prices=TokenPrices(3.00, None, 6.00),
        context_window=16_385, max_output_tokens=4_096, example_token_limit=16_385,
    ),
)

_BY_NAME: dict[str, CatalogModel] = {name: model for model in MODELS for name in model.names}

# The model the pipeline fine-tunes unless told otherwise.
DEFAULT_BASE_MODEL = "gpt-4o-mini-2024-07-18"
# OpenAI refuses to fine-tune on fewer examples than this.
MIN_TRAINING_EXAMPLES = 10

# Unknown models get the smallest limit we know of, so a check never passes on a guess that is too big.
UNKNOWN_MODEL_TOKEN_LIMIT = min(model.example_token_limit for model in MODELS)

# OpenAI cookbook's "auto" epochs rule.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def catalog_model(name: str) -> CatalogModel | None:
    """The catalog entry a model name (snapshot or alias, exactly as the API spells it) refers to."""
    return _BY_NAME.get(name)


def fine_tunable_names() -> tuple[str, ...]:
    """Every snapshot and alias a fine-tuning job may be created with, in catalog order."""
    return tuple(name for model in MODELS if model.fine_tunable for name in model.names)


def resolve_model(model: str) -> str:
    """The dated snapshot a model name trains on: aliases pinned, `ft:BASE:...` continues BASE."""
    name = model.strip()
    if name.startswith("ft:"):
        name = name.split(":")[1]  # ft:{base}:{org}:{suffix}:{id}: continued training is priced as the base
    entry = catalog_model(name)
    return entry.snapshot if entry else name


def example_token_limit(model: str) -> tuple[int, bool]:
    """(per-example token limit, whether the model is in the catalog)."""
    entry = catalog_model(resolve_model(model))
    if entry is None:
        return UNKNOWN_MODEL_TOKEN_LIMIT, False
    return entry.example_token_limit, True


def training_price_per_million(model: str) -> float | None:
    """USD per 1M training tokens as of PRICING_AS_OF, or None when the model is not in the catalog."""
    entry = catalog_model(resolve_model(model))
    return entry.training_price if entry else None


def auto_epochs(n_examples: int) -> int:
    """The epochs OpenAI picks for n_epochs="auto" (cookbook rule)."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


def estimate_training_cost(billing_tokens: int, n_epochs: int, price_per_million: float | None) -> float | None:
    """USD for training: billing tokens x epochs x price per 1M, rounded to 4 places; None when unpriced."""
    if price_per_million is None:
        return None
    return round(billing_tokens * n_epochs * price_per_million / 1_000_000, 4)


# ---------------------------------------------------------------------------------------------
# Lifecycles: when each provider stops training a model and stops serving it (and the models
# fine-tuned from it), and what to move to. A provider's own `shutdown_date` (models.retrieve)
# wins over these (core.lifecycle). The `local` provider has no dates: offline runs and tests
# never expire with the calendar unless its server is told one (`--model-shutdown`).
# ---------------------------------------------------------------------------------------------

# The pages below as of this date.
LIFECYCLES_AS_OF = "2026-12-07"


@dataclass(frozen=True)
class ModelLifecycle:
    """One model's dates on one provider: last day training is possible, inference shutdown, successor."""

    provider: str  # "openai" | "azure"
    snapshot: str
    training_retired: date | None  # from this day no new fine-tuning job on it is accepted; None: none announced
    shutdown: date | None  # from this day the model and every model fine-tuned from it stop answering
    successor: str | None  # the model (on this provider) to re-tune on; None: none named
    advice: str  # what a task on this model should do, in a sentence


_OPENAI_WIND_DOWN = (
    "OpenAI accepts no new fine-tuning jobs from 2027-01-06: move the task to Azure OpenAI "
    "(FINE_TUNING_PROVIDER=azure) or another server speaking this API"
)

LIFECYCLES: tuple[ModelLifecycle, ...] = (
    # OpenAI deprecations page (platform.openai.com/docs/deprecations), as of LIFECYCLES_AS_OF:
    # since 2026-05-07 new organizations cannot create fine-tuning jobs, since 2026-07-02 neither
    # can ones without fine-tuned inference in the last 60 days, and from 2027-01-06 no one can.
    # gpt-4o-mini-2024-07-18, gpt-4o-2024-08-06, gpt-4.1-2025-04-14 and gpt-4.1-mini-2025-04-14
    # shut down on 2027-01-14 with every model fine-tuned from them. The page names no successor
    # to fine-tune on at OpenAI.
    ModelLifecycle("openai", "gpt-4o-mini-2024-07-18", date(2027, 1, 6), date(2027, 1, 14), None, _OPENAI_WIND_DOWN),
    ModelLifecycle("openai", "gpt-4o-2024-08-06", date(2027, 1, 6), date(2027, 1, 14), None, _OPENAI_WIND_DOWN),
    ModelLifecycle("openai", "gpt-4.1-2025-04-14", date(2027, 1, 6), date(2027, 1, 14), None, _OPENAI_WIND_DOWN),
    ModelLifecycle("openai", "gpt-4.1-mini-2025-04-14", date(2027, 1, 6), date(2027, 1, 14), None, _OPENAI_WIND_DOWN),
    # Same page: gpt-4.1-nano and o4-mini were retired on 2026-10-23 (training and inference).
    ModelLifecycle("openai", "gpt-4.1-nano-2025-04-14", date(2026, 10, 23), date(2026, 10, 23), None, _OPENAI_WIND_DOWN),
    ModelLifecycle("openai", "o4-mini-2025-04-16", date(2026, 10, 23), date(2026, 10, 23), None, _OPENAI_WIND_DOWN),
    # gpt-3.5-turbo-0125: the 2027-01-06 end of fine-tuning applies; no shutdown date for its
    # inference could be confirmed here, so none is recorded (the provider's own date wins anyway).
    ModelLifecycle("openai", "gpt-3.5-turbo-0125", date(2027, 1, 6), None, None, _OPENAI_WIND_DOWN),
    # Azure OpenAI in Microsoft Foundry, "model deprecations and retirements" (learn.microsoft.com,
    # azure/ai-foundry/openai/concepts/model-retirements) as of LIFECYCLES_AS_OF: fine-tuned models
    # retire in two phases; training follows the base model's retirement, and for models GA since
    # gpt-4o-2024-08-06 deployment (inference) retirement comes 1 year after training retirement.
    # The page lists only "no earlier than" dates for the base models, which Azure has let pass
    # (gpt-4o-mini-2024-07-18: no earlier than 2025-08-16; gpt-4o-2024-08-06: 2025-08-06; the
    # gpt-4.1 family: 2026-04-11) and names gpt-4.1-mini / gpt-4.1 (2025-04-14) as replacements.
    # No firm training-retirement date could be confirmed, so none is recorded: Azure's own
    # `shutdown_date`, when it reports one, is what the pipeline acts on.
    ModelLifecycle("azure", "gpt-4o-mini-2024-07-18", None, None, "gpt-4.1-mini-2025-04-14",
                   "re-tune on gpt-4.1-mini-2025-04-14, Azure's named replacement"),
    ModelLifecycle("azure", "gpt-4o-2024-08-06", None, None, "gpt-4.1-2025-04-14",
                   "re-tune on gpt-4.1-2025-04-14, Azure's named replacement"),
    ModelLifecycle("azure", "gpt-4.1-2025-04-14", None, None, None, "re-tune on a newer fine-tunable model"),
    ModelLifecycle("azure", "gpt-4.1-mini-2025-04-14", None, None, None, "re-tune on a newer fine-tunable model"),
    ModelLifecycle("azure", "gpt-4.1-nano-2025-04-14", None, None, None, "re-tune on a newer fine-tunable model"),
)

_LIFECYCLE: dict[tuple[str, str], ModelLifecycle] = {(entry.provider, entry.snapshot): entry for entry in LIFECYCLES}

# Azure OpenAI deletes a customized model's deployment that has had no chat completions or
# responses calls for 15 days in a row (learn.microsoft.com, azure/ai-foundry/openai/how-to/
# fine-tuning-deploy, as of LIFECYCLES_AS_OF); the model itself stays and can be redeployed.
AZURE_IDLE_DEPLOYMENT_DAYS = 15


def model_lifecycle(provider: str, model: str) -> ModelLifecycle | None:
    """A model's (snapshot, alias or ft: name) lifecycle on a provider; None when none is recorded."""
    return _LIFECYCLE.get((provider, resolve_model(model)))

# Fine-tuning methods and inputs per model (kept apart from MODELS so each fact has one line).
# ---------------------------------------------------------------------------------------------

# OpenAI's fine-tuning guides as of this date: supervised-fine-tuning, direct-preference-optimization
# ("Use with: gpt-4.1-2025-04-14, gpt-4.1-mini-2025-04-14, gpt-4.1-nano-2025-04-14", and the GPT-4o
# snapshots listed when DPO launched), reinforcement-fine-tuning ("o4-mini-2025-04-16" only) and
# vision-fine-tuning ("gpt-4o-2024-08-06").
METHODS_AS_OF = "2025-06-01"
FINE_TUNING_METHODS: tuple[str, ...] = ("supervised", "dpo", "reinforcement")
METHODS_BY_SNAPSHOT: dict[str, tuple[str, ...]] = {
    "gpt-4o-mini-2024-07-18": ("supervised", "dpo"),
    "gpt-4o-2024-08-06": ("supervised", "dpo"),
    "gpt-4.1-2025-04-14": ("supervised", "dpo"),
    "gpt-4.1-mini-2025-04-14": ("supervised", "dpo"),
    "gpt-4.1-nano-2025-04-14": ("supervised", "dpo"),
    "gpt-3.5-turbo-0125": ("supervised",),
    "o4-mini-2025-04-16": ("reinforcement",),
}
# Reasoning models (and the models fine-tuned from them): OpenAI's reasoning guide, as of METHODS_AS_OF:
# they take `reasoning_effort` and only the default temperature / top_p (1).
REASONING_SNAPSHOTS: frozenset[str] = frozenset({"o4-mini-2025-04-16"})
# Models whose supervised training examples may hold image parts (vision fine-tuning).
VISION_SNAPSHOTS: frozenset[str] = frozenset({"gpt-4o-2024-08-06"})

# Reinforcement fine-tuning is billed by training time, not tokens: USD per hour of training
# (pricing page, as of PRICING_AS_OF). OpenAI's "Billing guide for the Reinforcement Fine Tuning
# API" (help.openai.com/en/articles/11323177, read 2026-12-07): "$100 per hour of wall-clock time
# spent in the core training loop for o4-mini-2025-04-16", "prorated to the second and rounded to
# two decimal places on the invoice"; model graders' tokens are billed separately at inference
# rates after training; only "captured forward progress" is billed (rollouts, grading, weight
# updates, the configured validation steps). What it says of queueing, pauses and cancellations
# could not be read here, so `core.time_billing` counts a job's whole running time, pauses
# included (it over-counts rather than under-counts), and bills a cancelled job up to its end.
# The guide names no minimum billable time, so no file is refused before upload for one.
REINFORCEMENT_PRICE_PER_HOUR: dict[str, float] = {"o4-mini-2025-04-16": 100.00}
# (The invoice rounds the hours to two decimals: a job's recorded cost, whole seconds x rate, may
# differ from its invoice line by up to 18 s' worth.)
# o4-mini as a base for reinforcement fine-tuning only (context 200k, output 100k tokens).
REINFORCEMENT_MODELS: tuple[CatalogModel, ...] = (
    CatalogModel(
        snapshot="o4-mini-2025-04-16", alias="o4-mini", fine_tunable=True, training_price=None,
        base_prices=TokenPrices(1.10, 0.275, 4.40), fine_tuned_prices=TokenPrices(4.00, 1.00, 16.00),
        context_window=200_000, max_output_tokens=100_000, example_token_limit=200_000,
    ),
)
_BY_NAME.update({name: model for model in REINFORCEMENT_MODELS for name in model.names})


def supported_methods(model: str) -> tuple[str, ...]:
    """The fine-tuning methods a model (snapshot, alias or `ft:` model) can be trained with."""
    return METHODS_BY_SNAPSHOT.get(resolve_model(model), ())


def method_problem(model: str, method_type: str) -> str | None:
    """Why `model` cannot be fine-tuned with `method_type`, or None when it can."""
    if method_type not in FINE_TUNING_METHODS:
        return f"unknown fine-tuning method {method_type!r}; one of {', '.join(FINE_TUNING_METHODS)}"
    methods = supported_methods(model)
    if method_type in methods:
        return None
    takers = [snapshot for snapshot, taken in METHODS_BY_SNAPSHOT.items() if method_type in taken]
    offered = f"it takes {', '.join(methods)}" if methods else "it is not in the catalog"
    return (
        f"{model} cannot be fine-tuned with method {method_type!r} ({offered}; as of {METHODS_AS_OF}); "
        f"models that take {method_type}: {', '.join(takers)}"
    )


def is_reasoning_model(model: str) -> bool:
    """Whether a model (or the base of an `ft:` model) is a reasoning model."""
    return resolve_model(model) in REASONING_SNAPSHOTS


def takes_images(model: str) -> bool:
    """Whether a model's supervised training examples may hold image parts."""
    return resolve_model(model) in VISION_SNAPSHOTS
