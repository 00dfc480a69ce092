"""Fault and latency injection: faults really happen, before any work, and retries get through.

Each test runs in-process and over HTTP: the router injects the faults either way.
"""

from __future__ import annotations

import time

import openai
import pytest

from tests.support.local_openai import BASE_MODEL, Backend, Clock, jsonl, upload, wait_for
from tests.support.toy_books import toy_examples


def test_every_request_fails_at_error_rate_one_and_nothing_is_done(backend: Backend) -> None:
    flaky = backend.client(error_rate=1.0, fault_seed=1, max_retries=0)
    seen: dict[int, int] = {}
    for _ in range(30):
        with pytest.raises(openai.APIStatusError) as error:
            flaky.files.create(file=("train.jsonl", b"{}\n"), purpose="fine-tune")
        status = error.value.status_code
        seen[status] = seen.get(status, 0) + 1
        assert error.value.response.headers["x-local-fault"] == "injected"
        if status in (429, 503):
            headers = error.value.response.headers
            assert int(headers["retry-after"]) > 0
            assert int(headers["retry-after-ms"]) == 1000 * int(headers["retry-after"])  # the two agree
        if status == 429:
            assert isinstance(error.value, openai.RateLimitError)
        else:
            assert isinstance(error.value, openai.InternalServerError)
    assert set(seen) == {429, 500, 503}
    stats = flaky._local_router.stats
    assert stats["requests"] == stats["faults"] == 30
    assert (stats["429"], stats["500"], stats["503"]) == (seen[429], seen[500], seen[503])
    assert backend.client().files.list().data == []  # faults come before any work


def test_default_retries_get_through_without_duplicated_side_effects(backend: Backend) -> None:
    client = backend.client(job_seconds=0.2, error_rate=0.25, fault_seed=11)
    file_ids = [upload(client, jsonl(toy_examples(12, seed=i)), f"t{i}.jsonl") for i in range(4)]
    job_ids = [client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=f).id for f in file_ids]
    assert all(wait_for(client, j).status == "succeeded" for j in job_ids)
    stats = client._local_router.stats
    assert stats["faults"] > 0  # faults happened, and were retried transparently
    clean = backend.client()
    assert len([f for f in clean.files.list(purpose="fine-tune")]) == 4  # no duplicate uploads
    assert len(list(clean.fine_tuning.jobs.list())) == 4  # no duplicate jobs


def test_faults_surface_without_retries_and_are_retried_by_default(backend: Backend) -> None:
    strict = backend.client(error_rate=0.3, fault_seed=5, max_retries=0)
    failures = 0
    for _ in range(20):
        try:
            strict.models.list()
        except (openai.RateLimitError, openai.InternalServerError):
            failures += 1
    assert failures > 0 and strict._local_router.stats["faults"] == failures
    # A rate at which three faults in a row (the default two retries exhausted) are rare; the
    # seeded sequence makes this run reproducible.
    patient = backend.client(error_rate=0.15, fault_seed=3)  # default retries
    for _ in range(15):
        assert patient.models.retrieve(BASE_MODEL).id == BASE_MODEL
    stats = patient._local_router.stats
    assert stats["faults"] > 0
    assert stats["requests"] == 15 + stats["faults"]


def test_latency_delays_every_response(backend: Backend) -> None:
    client = backend.client(latency_ms=60)
    started = time.perf_counter()
    client.models.list()
    client.models.retrieve(BASE_MODEL)
    assert time.perf_counter() - started >= 0.12  # a lower bound: sleep never returns early


def test_error_rate_must_be_a_probability(backend: Backend) -> None:
    with pytest.raises(ValueError):
        backend.client(error_rate=1.5)


def test_job_list_lag_hides_a_new_job_from_listings_only(backend: Backend, clock: Clock) -> None:
    lagging = backend.client(job_seconds=0.2, clock=clock, job_list_lag_seconds=30, max_retries=0)
    job = lagging.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(lagging, jsonl(toy_examples(12))), metadata={"k": "v"}
    )
    assert lagging.fine_tuning.jobs.retrieve(job.id).id == job.id  # by id: at once
    clock.advance(29.9)
    assert list(lagging.fine_tuning.jobs.list()) == []
    assert list(lagging.fine_tuning.jobs.list(metadata={"k": "v"})) == []
    clock.advance(0.1)
    assert [listed.id for listed in lagging.fine_tuning.jobs.list(metadata={"k": "v"})] == [job.id]
    default = backend.client(job_seconds=0.2, clock=clock, max_retries=0)  # the knob is off by default
    second = default.fine_tuning.jobs.create(model=BASE_MODEL, training_file=upload(default, jsonl(toy_examples(12))))
    assert [listed.id for listed in default.fine_tuning.jobs.list()] == [second.id, job.id]
