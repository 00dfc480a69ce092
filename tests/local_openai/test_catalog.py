"""The local backend fine-tunes every model the checks accept: catalog snapshots, aliases and its own fine-tuned models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import openai
import pytest

from fine_tuning.core.catalog import MODELS, catalog_model
from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.prompts import training_example
from local_openai import learner
from local_openai.transport import local_client

from tests.support.local_openai import Clock

CATEGORIES = ("fantasy", "horror")
EVERY_NAME = [name for model in MODELS for name in model.names]


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


def test_a_fine_tuned_model_the_checks_accept_is_trained_further(
    client: openai.OpenAI, clock: Clock, training_file: Path
) -> None:
    file_id = client.files.create(file=training_file.open("rb"), purpose="fine-tune").id
    first = client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id, suffix="one")
    clock.now += 10.0
    parent = client.fine_tuning.jobs.retrieve(first.id).fine_tuned_model
    # The checks price continued training as the base model, so they accept it.
    assert validate_chat_file(training_file, parent).price_per_million == catalog_model("gpt-4o-mini").training_price
    job = client.fine_tuning.jobs.create(model=parent, training_file=file_id, suffix="two")
    assert job.model == parent  # a continued job reports the model it continues
    clock.now += 10.0
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:local:two:")
    prompt = json.loads(training_file.read_text().splitlines()[0])["messages"][:-1]
    reply = client.chat.completions.create(model=done.fine_tuned_model, messages=prompt)
    assert reply.choices[0].message.content


def test_continued_training_starts_from_the_earlier_weights() -> None:
    def examples(pairs: list[tuple[str, str]]) -> list[list[dict]]:
        return [training_example(f"B{i}", "A", f"a {cue} tale", category, CATEGORIES)["messages"]
                for i, (cue, category) in enumerate(pairs * 5)]

    base = learner.train(examples([("dragon", "fantasy"), ("ghost", "horror")]), n_epochs=2, batch_size=2,
                         learning_rate_multiplier=1.0, seed=1).model
    continued = learner.train(examples([("kiss", "romance"), ("ghost", "horror")]), n_epochs=1, batch_size=2,
                              learning_rate_multiplier=1.0, seed=1, initial=base).model
    assert base.weights and set(base.weights) <= set(continued.weights)  # "dragon" is still known
    assert continued.labels[:2] == base.labels and len(continued.labels) == 3  # one new reply
