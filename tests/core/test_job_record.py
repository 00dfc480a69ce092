"""The job record beside the creation lease: it finds a job a lagging provider listing does not show yet.

A real local backend in-process (the real `openai` client), with its job-list lag fault on and a
clock the test steps, so "not listed yet" lasts exactly as long as the test says.
"""

from __future__ import annotations

from pathlib import Path

import openai

from fine_tuning.core.job_lease import job_record_path, lease_path, record_job_id, recorded_job_ids
from fine_tuning.core.provider_jobs import choose_job, find_jobs, find_jobs_with_recorded, job_metadata
from local_openai.transport import local_client

from tests.support.local_openai import BASE_MODEL, Clock, jsonl, upload
from tests.support.logs import RecordingLog
from tests.support.toy_books import toy_examples

FINGERPRINT = "d" * 64
LAG_SECONDS = 60.0


def _lagging_client(tmp_path: Path, clock: Clock) -> openai.OpenAI:
    return local_client(tmp_path / "backend", job_seconds=30, clock=clock, job_list_lag_seconds=LAG_SECONDS, max_retries=0)


def _create(client: openai.OpenAI, fingerprint: str = FINGERPRINT) -> str:
    training = upload(client, jsonl(toy_examples(12)))
    return client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=training, metadata=job_metadata(fingerprint)).id


def test_the_record_sits_beside_the_lease_and_keeps_each_id_once(tmp_path: Path) -> None:
    path = job_record_path(tmp_path, FINGERPRINT)
    assert path.parent == lease_path(tmp_path, FINGERPRINT).parent and path.name.endswith(".jobs")
    assert recorded_job_ids(path) == []  # nothing recorded yet
    for job_id in ("ftjob-a", "ftjob-b", "ftjob-a"):
        record_job_id(path, job_id)
    assert recorded_job_ids(path) == ["ftjob-a", "ftjob-b"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_a_recorded_job_the_listing_does_not_show_yet_is_attached_to(tmp_path: Path, clock: Clock) -> None:
    client = _lagging_client(tmp_path, clock)
    created = _create(client)
    record = job_record_path(tmp_path, FINGERPRINT)
    record_job_id(record, created)
    clock.advance(1)
    assert find_jobs(client, FINGERPRINT) == []  # the lag: a look-up by listing alone would create a second job

    log = RecordingLog()
    jobs = find_jobs_with_recorded(client, FINGERPRINT, recorded_job_ids(record), log)
    assert [job.id for job in jobs] == [created]
    assert choose_job(jobs, force_retrain=False).job.id == created
    assert ("info", f"Recorded fine-tuning job {created} (validating_files) is not listed by the provider yet; counting it.") \
        in log.lines

    clock.advance(LAG_SECONDS)  # listed now: found once, not twice, and not retrieved again
    assert [job.id for job in find_jobs_with_recorded(client, FINGERPRINT, [created], RecordingLog())] == [created]


def test_a_recorded_id_the_provider_does_not_know_is_ignored_with_a_log_line(tmp_path: Path, clock: Clock) -> None:
    client = _lagging_client(tmp_path, clock)
    created = _create(client)
    elsewhere = _create(client, fingerprint="e" * 64)  # a job of another fingerprint is not this one's either
    log = RecordingLog()
    jobs = find_jobs_with_recorded(client, FINGERPRINT, ["ftjob-gone404", elsewhere, created], log)
    assert [job.id for job in jobs] == [created]
    assert ("warning", "Recorded fine-tuning job ftjob-gone404 is unknown to the provider (404); ignoring it.") in log.lines
    assert ("warning", f"Recorded fine-tuning job {elsewhere} has another fingerprint; ignoring it.") in log.lines
    assert find_jobs_with_recorded(client, FINGERPRINT, ["ftjob-gone404"], RecordingLog()) == []  # nothing left: create
