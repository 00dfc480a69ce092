"""The local backend fine-tunes every model the pipeline's checks accept, as its dated snapshot."""

from __future__ import annotations

import json
import random
from pathlib import Path

import openai
import pytest

from fine_tuning.core.catalog import MODELS, catalog_model
from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.prompts import training_example
from fine_tuning.local_openai.transport import local_client

CATEGORIES = ("fantasy", "horror")
EVERY_NAME = [name for model in MODELS for name in model.names]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def client(tmp_path: Path, clock: Clock) -> openai.OpenAI:
    return local_client(tmp_path / "store", job_seconds=10.0, clock=clock, max_retries=0)


@pytest.fixture()
def training_file(tmp_path: Path) -> Path:
    rng = random.Random(3)
    examples = [
        training_example(f"Book {i}", "Author", f"a {rng.choice(['dragon', 'ghost'])} story", CATEGORIES[i % 2],
                         CATEGORIES)
        for i in range(12)
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(example) + "\n" for example in examples))
    return path


@pytest.mark.parametrize("name", EVERY_NAME)
def test_every_model_the_checks_accept_is_fine_tuned_as_its_snapshot(
    client: openai.OpenAI, clock: Clock, training_file: Path, name: str
) -> None:
    report = validate_chat_file(training_file, name)
    assert report.ok and report.price_per_million is not None  # the blocking checks would pass
    file_id = client.files.create(file=training_file.open("rb"), purpose="fine-tune").id
    job = client.fine_tuning.jobs.create(model=name, training_file=file_id, suffix="cat")
    snapshot = catalog_model(name).snapshot
    assert job.model == snapshot
    clock.now += 10.0
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", done.error
    assert done.model == snapshot
    assert done.fine_tuned_model.startswith(f"ft:{snapshot}:local:cat:")


def test_every_catalog_name_is_a_base_model(client: openai.OpenAI) -> None:
    listed = [model.id for model in client.models.list()]
    assert listed[: len(EVERY_NAME)] == EVERY_NAME
    for name in EVERY_NAME:
        assert client.models.retrieve(name).id == name


def test_a_model_outside_the_catalog_is_not_available(client: openai.OpenAI, training_file: Path) -> None:
    assert validate_chat_file(training_file, "gpt-4-turbo").price_per_million is None  # the cost check refuses it
    file_id = client.files.create(file=training_file.open("rb"), purpose="fine-tune").id
    with pytest.raises(openai.BadRequestError) as error:
        client.fine_tuning.jobs.create(model="gpt-4-turbo", training_file=file_id)
    assert error.value.body["code"] == "model_not_available"
