"""Shared helpers for the local backend tests (no tests here).

A learnable toy task in the pipeline's own prompt format, JSONL builders, polling, and raw-body
validation against the openai package's pydantic types.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from typing import Any

import openai
from openai.types.fine_tuning import FineTuningJob

from fine_tuning.core.prompts import build_messages, training_example

CATEGORIES = ("fantasy", "horror", "romance", "mystery")
BASE_MODEL = "gpt-4o-mini-2024-07-18"
FINAL = ("succeeded", "failed", "cancelled")
# Each category has cue words that appear in its books' descriptions (the learnable signal);
# the category name itself almost never appears, so the zero-shot base model mostly guesses.
_CUES = {
    "fantasy": ["dragon", "wizard", "sword", "elf", "quest", "kingdom"],
    "horror": ["ghost", "blood", "scream", "corpse", "haunted", "night"],
    "romance": ["kiss", "love", "wedding", "heart", "date", "letters"],
    "mystery": ["detective", "clue", "murder", "alibi", "suspect", "case"],
}
_FILLER = "the a of city young old story life world friends time family journey secret".split()


def toy_book(rng: random.Random, index: int) -> tuple[str, str, str, str]:
    """(title, author, description, category) with a category signal in the description."""
    category = rng.choice(CATEGORIES)
    words = [rng.choice(_FILLER) for _ in range(14)] + rng.sample(_CUES[category], 3)
    rng.shuffle(words)
    return f"Book {index}", f"Author {index % 7}", " ".join(words), category


def toy_examples(n: int, seed: int = 0, start: int = 0) -> list[dict[str, Any]]:
    """n chat-format training examples of the toy task."""
    rng = random.Random(seed)
    return [training_example(*toy_book(rng, start + i), CATEGORIES) for i in range(n)]


def toy_prompts(n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """n held-out (prompt messages, expected category) pairs."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        title, author, description, category = toy_book(rng, 10_000 + i)
        out.append((build_messages(title, author, description, CATEGORIES), category))
    return out


def jsonl(examples: Sequence[dict[str, Any]]) -> bytes:
    """JSONL bytes."""
    return ("\n".join(json.dumps(e) for e in examples) + "\n").encode()


def upload(client: openai.OpenAI, data: bytes, name: str = "train.jsonl") -> str:
    """Upload bytes as a fine-tune file; returns the file id."""
    return client.files.create(file=(name, data), purpose="fine-tune").id


def wait_for(client: openai.OpenAI, job_id: str, statuses: Sequence[str] = FINAL, timeout: float = 60) -> FineTuningJob:
    """Poll a job until it reaches one of `statuses` (the timeout only guards against hangs)."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        assert time.monotonic() < deadline, f"job {job_id} stuck in {job.status}"
        time.sleep(0.05)


def train_toy_model(client: openai.OpenAI, n: int = 60, **create_kwargs: Any) -> FineTuningJob:
    """Upload toy data, fine-tune, wait; returns the finished job."""
    file_id = upload(client, jsonl(toy_examples(n)))
    create_kwargs.setdefault("suffix", "toy")
    create_kwargs.setdefault("seed", 7)
    job = client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=file_id, **create_kwargs)
    return wait_for(client, job.id)


def validated(model_type: Any, raw: Any) -> Any:
    """Validate a raw JSON body (an httpx response or parsed JSON) against an openai type."""
    data = raw.json() if hasattr(raw, "json") and callable(raw.json) else raw
    return model_type.model_validate(data)
