"""Dated facts about OpenAI fine-tuning models: per-example token limits, training prices, "auto" epochs.

Providers change these tables: update the numbers *and* their "as of" dates together.
"""

PRICING_AS_OF = "2025-06-01"
# USD per 1M training tokens (supervised fine-tuning), OpenAI pricing page as of PRICING_AS_OF.
TRAINING_PRICE_PER_MILLION_TOKENS: dict[str, float] = {
    "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4o-2024-08-06": 25.00,
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-3.5-turbo-0125": 8.00,
}

TOKEN_LIMITS_AS_OF = "2025-06-01"
# Longest training example (tokens) per model, OpenAI fine-tuning guide as of TOKEN_LIMITS_AS_OF.
EXAMPLE_TOKEN_LIMITS: dict[str, int] = {
    "gpt-4o-mini-2024-07-18": 65_536,
    "gpt-4o-2024-08-06": 65_536,
    "gpt-4.1-2025-04-14": 65_536,
    "gpt-4.1-mini-2025-04-14": 65_536,
    "gpt-4.1-nano-2025-04-14": 65_536,
    "gpt-3.5-turbo-0125": 16_385,
}
# Unknown models get the smallest limit we know of, so a check never passes on a guess that is too big.
UNKNOWN_MODEL_TOKEN_LIMIT = min(EXAMPLE_TOKEN_LIMITS.values())

# Undated aliases the API accepts, pinned to the snapshot they pointed at on PRICING_AS_OF.
# OpenAI refuses to fine-tune on fewer examples than this.
MIN_TRAINING_EXAMPLES = 10

MODEL_ALIASES: dict[str, str] = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}

# OpenAI cookbook's "auto" epochs rule.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25


def resolve_model(model: str) -> str:
    """The dated snapshot a model name trains on: aliases pinned, `ft:BASE:...` continues BASE."""
    name = model.strip()
    if name.startswith("ft:"):
        name = name.split(":")[1]  # ft:{base}:{org}:{suffix}:{id}: continued training is priced as the base
    return MODEL_ALIASES.get(name, name)


def example_token_limit(model: str) -> tuple[int, bool]:
    """(per-example token limit, whether the model is in the dated table)."""
    snapshot = resolve_model(model)
    if snapshot in EXAMPLE_TOKEN_LIMITS:
        return EXAMPLE_TOKEN_LIMITS[snapshot], True
    return UNKNOWN_MODEL_TOKEN_LIMIT, False


def training_price_per_million(model: str) -> float | None:
    """USD per 1M training tokens as of PRICING_AS_OF, or None when the model is not in the table."""
    return TRAINING_PRICE_PER_MILLION_TOKENS.get(resolve_model(model))


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
