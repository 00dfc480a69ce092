"""`fine_tuned_model_accuracy` and its core `evaluate_models` against the real local backend.

A model is really fine-tuned at the local backend (once per module), the test split lives in a
real DuckDB file, and the check runs through real Dagster execution.
"""

import json
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import openai
import pytest
from dagster_duckdb import DuckDBResource

from fine_tuning.core import prompts
from fine_tuning.core.scoring import evaluate_models
from fine_tuning.lib.local_openai_resource import LocalOpenAIResource
from fine_tuning.lib.task.tuning import TuningSettings
from local_openai.transport import local_client

from tests.support.goodreads_task import fine_tuned_model_accuracy
from tests.support.local_openai import wait_for
from tests.support.toy_books import CATEGORIES, PROMPT, HeldOutBook, examples, signal
from tests.support.warehouse import write_labelled_books

BASE_MODEL = TuningSettings().base_model
CHECK_OP = fine_tuned_model_accuracy.node_def.name  # run config addresses the check by its op name


def book(i: int, category: str, description: str | None = None) -> HeldOutBook:
    return HeldOutBook(f"b{i:04d}", f"Book {i}", f"Author {i % 5}", description or f"{signal(category)} volume {i}", category)


def signal_books(count: int, start: int = 0) -> list[HeldOutBook]:
    """Books whose descriptions carry only the learnable signal words."""
    return [book(i, CATEGORIES[i % len(CATEGORIES)]) for i in range(start, start + count)]


def misleading_books(count: int) -> list[HeldOutBook]:
    """Books that name their category but carry another category's signal words.

    The zero-shot base model reads the category name and is right; the fine-tuned model
    follows the signal words it learned and is wrong.
    """
    books = []
    for i in range(count):
        category = CATEGORIES[i % len(CATEGORIES)]
        other = CATEGORIES[(i + 1) % len(CATEGORIES)]
        books.append(book(5000 + i, category, f"a {category} book: {signal(other)}"))
    return books


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(backend data dir, fine-tuned model name) of a model trained on the signal words."""
    data_dir = str(tmp_path_factory.mktemp("backend"))
    client = local_client(data_dir, job_seconds=1.0)
    path = tmp_path_factory.mktemp("files") / "training.jsonl"
    lines = [
        json.dumps(prompts.training_example(b.title, b.author, b.description, b.category, CATEGORIES))
        for b in signal_books(40, start=100)
    ]
    path.write_text("\n".join(lines) + "\n")
    training_id = client.files.create(file=path.open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=training_id, method=TuningSettings(n_epochs=3).job_method(), suffix="evaltest"
    )
    job = wait_for(client, job.id)
    assert job.status == "succeeded", job.error
    return data_dir, job.fine_tuned_model


# ---------------------------------------------------------------------------------------------
# The core, without Dagster
# ---------------------------------------------------------------------------------------------


def test_fine_tuned_model_beats_the_zero_shot_base_on_held_out_books(trained: tuple[str, str]) -> None:
    data_dir, model = trained
    result = evaluate_models(local_client(data_dir), examples(signal_books(24)), PROMPT, BASE_MODEL, model, concurrency=4)
    assert result.eval_examples == result.tuned.examples == result.base.examples == 24
    assert result.failed_requests == 0
    assert result.tuned.accuracy > result.base.accuracy
    assert result.tuned.prompt_tokens > 0 and result.base.completion_tokens > 0
    assert sum(total for _, total in result.tuned.per_category.values()) == 24
    assert sum(result.base.confusions.values()) == 24 - result.base.correct
    # Which books each model got right, for the paired test: every book once, the right ones adding up.
    for score in (result.tuned, result.base):
        assert list(score.outcomes) == [b.book_id for b in signal_books(24)]
        assert sum(score.outcomes.values()) == score.correct


class InFlightProbe:
    """Wraps the local router's request handler to see, server-side, how many chat requests overlap."""

    def __init__(self, client: openai.OpenAI) -> None:
        self.router = client._local_router  # type: ignore[attr-defined]
        self._handle = self.router.handle
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.chat_requests = 0
        self.router.handle = self.handle

    def handle(self, request: Any) -> Any:
        if not request.path.endswith("/chat/completions"):
            return self._handle(request)
        with self._lock:
            self.current += 1
            self.chat_requests += 1
            self.peak = max(self.peak, self.current)
        try:
            return self._handle(request)
        finally:
            with self._lock:
                self.current -= 1


@pytest.mark.parametrize("concurrency", [1, 3])
def test_never_more_requests_in_flight_than_the_concurrency(trained: tuple[str, str], concurrency: int) -> None:
    data_dir, model = trained
    client = local_client(data_dir, latency_ms=20)  # slow enough that unbounded requests would pile up
    probe = InFlightProbe(client)
    result = evaluate_models(client, examples(signal_books(12)), PROMPT, BASE_MODEL, model, concurrency=concurrency)
    assert probe.chat_requests == 24
    assert probe.peak <= concurrency and result.max_in_flight <= concurrency
    if concurrency > 1:
        assert probe.peak > 1  # the requests really overlap


def test_failed_requests_are_counted_as_wrong_never_dropped(trained: tuple[str, str]) -> None:
    data_dir, model = trained
    client = local_client(data_dir, error_rate=0.3, fault_seed=7)
    router = client._local_router  # type: ignore[attr-defined]
    result = evaluate_models(client, examples(signal_books(20)), PROMPT, BASE_MODEL, model, concurrency=4, max_retries=0)
    # Without retries every injected fault is one failed request, and it still counts as an answer.
    assert router.stats["faults"] > 0
    assert result.failed_requests == router.stats["faults"]
    assert result.tuned.examples == result.base.examples == 20
    answered_tuned = 20 - result.tuned.failed_requests
    assert result.tuned.correct <= answered_tuned
    assert result.failure_samples and "injected by the local backend" in result.failure_samples[0]


def test_retries_get_through_injected_faults(trained: tuple[str, str]) -> None:
    data_dir, model = trained
    client = local_client(data_dir, error_rate=0.3, fault_seed=11)
    router = client._local_router  # type: ignore[attr-defined]
    result = evaluate_models(client, examples(signal_books(8)), PROMPT, BASE_MODEL, model, concurrency=4, max_retries=8)
    assert router.stats["faults"] > 0
    assert result.failed_requests == 0
    assert router.stats["requests"] == 16 + router.stats["faults"]  # one retry per fault, nothing more


# ---------------------------------------------------------------------------------------------
# The asset check through Dagster
# ---------------------------------------------------------------------------------------------


def write_test_split(db_path: Path, examples: list[HeldOutBook], extra_train: list[HeldOutBook]) -> None:
    """The tables the check reads, as the upstream steps would leave them."""
    books = [(b.book_id, b.title, b.author, b.description, b.category) for b in examples + extra_train]
    write_labelled_books(books, CATEGORIES, database=db_path)
    with duckdb.connect(str(db_path)) as conn:
        conn.execute("CREATE TABLE book_splits (book_id VARCHAR, split VARCHAR)")
        conn.executemany(
            "INSERT INTO book_splits VALUES (?, ?)",
            [(b.book_id, "test") for b in examples] + [(b.book_id, "train") for b in extra_train],
        )


def run_check(
    tmp_path: Path, data_dir: str, model: str, examples: list[HeldOutBook],
    instance: dg.DagsterInstance | None = None, **config: Any,
) -> dg.AssetCheckEvaluation:
    tmp_path.mkdir(parents=True, exist_ok=True)
    db_path = tmp_path / "goodreads.duckdb"
    write_test_split(db_path, examples, extra_train=signal_books(6, start=900))
    instance = instance or dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="fine_tuned_model", metadata={"model_name": model, "job_id": "x"})
    )
    defs = dg.Definitions(
        assets=[dg.AssetSpec("fine_tuned_model")],
        asset_checks=[fine_tuned_model_accuracy],
        jobs=[dg.define_asset_job("evaluate", selection=dg.AssetSelection.checks(fine_tuned_model_accuracy))],
        resources={
            "duckdb": DuckDBResource(database=str(db_path)),
            "openai": LocalOpenAIResource(data_dir=data_dir, job_seconds=1.0),
            "tuning": TuningSettings(),
        },
    )
    result = defs.resolve_job_def("evaluate").execute_in_process(
        instance=instance, run_config={"ops": {CHECK_OP: {"config": config}}}
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_check_passes_and_reports_everything_when_the_model_is_better(tmp_path: Path, trained: tuple[str, str]) -> None:
    data_dir, model = trained
    evaluation = run_check(tmp_path, data_dir, model, signal_books(16), concurrency=4)
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    assert evaluation.passed
    assert metadata["eval_examples"] == 16  # only the test split: the 6 training rows are not asked about
    assert 0.0 <= metadata["base_accuracy"] < metadata["fine_tuned_accuracy"] <= 1.0
    details = metadata["details"]
    assert details["failed_requests"] == 0
    assert details["prompt_tokens"] > 0 and details["completion_tokens"] > 0
    assert metadata["spent_tokens"] == details["prompt_tokens"] + details["completion_tokens"]
    assert details["paired_test"] is None  # no production model to compare with
    assert 0.0 <= metadata["macro_f1_base"] < metadata["macro_f1_fine_tuned"] <= 1.0
    assert metadata["champion_accuracy"] is None and metadata["macro_f1_champion"] is None
    table = metadata["per_label_metrics"]
    assert all(f"| {category} | 4 |" in table for category in CATEGORIES)
    assert f"**{metadata['macro_f1_fine_tuned']:.3f}**" in table
    matrix = metadata["confusion_matrix"]
    assert f"**challenger** `{model}`" in matrix and "production" not in matrix
    header = next(line for line in matrix.splitlines() if line.startswith("| true"))
    assert header.startswith("| true \\ answer | " + " | ".join(CATEGORIES))
    assert metadata["fine_tuned_model"] == model
    # A handful of numbers to plot, named so that the UI's alphabetical order keeps related ones together.
    numbers = [key for key, value in evaluation.metadata.items()
               if isinstance(value, (dg.FloatMetadataValue, dg.IntMetadataValue))]
    assert numbers == sorted(numbers) == ["base_accuracy", "eval_examples", "fine_tuned_accuracy", "macro_f1_base",
                                          "macro_f1_fine_tuned", "spent_tokens", "spent_usd"]


def test_check_warns_when_the_fine_tuned_model_is_worse(tmp_path: Path, trained: tuple[str, str]) -> None:
    data_dir, model = trained
    evaluation = run_check(tmp_path, data_dir, model, misleading_books(12), max_examples=8)
    metadata = {key: value.value for key, value in evaluation.metadata.items()}
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert metadata["eval_examples"] == 8
    assert metadata["fine_tuned_accuracy"] < metadata["base_accuracy"]
    assert "worse than its base" in (evaluation.description or "")


def test_an_unchanged_evaluation_is_reused_without_asking_again(tmp_path: Path, trained: tuple[str, str]) -> None:
    data_dir, model = trained
    instance = dg.DagsterInstance.ephemeral()
    first = run_check(tmp_path / "first", data_dir, model, signal_books(8), instance=instance)
    assert first.metadata["reused_evaluation"].value is False

    # A backend that has never heard of the fine-tuned model: asking it anything would fail.
    empty_backend = str(tmp_path / "empty-backend")
    second = run_check(tmp_path / "second", empty_backend, model, signal_books(8), instance=instance)
    assert second.metadata["reused_evaluation"].value is True
    for key in ("fine_tuned_accuracy", "base_accuracy", "eval_examples", "evaluation_fingerprint"):
        assert second.metadata[key].value == first.metadata[key].value, key
    assert second.passed == first.passed

    forced = run_check(tmp_path / "forced", empty_backend, model, signal_books(8), instance=instance,
                       force_evaluation=True)
    assert forced.metadata["reused_evaluation"].value is False
    assert forced.metadata["details"].value["fine_tuned_failed_requests"] == 8  # it really asked this time

    # After an evaluation with failed requests nothing is reused: the next run asks again.
    again = run_check(tmp_path / "again", data_dir, model, signal_books(8), instance=instance)
    assert again.metadata["reused_evaluation"].value is False
    assert again.metadata["details"].value["failed_requests"] == 0
