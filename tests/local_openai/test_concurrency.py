"""Several processes (and threads) using one store at once: nothing lost, duplicated or torn."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local_openai.transport import local_client

from tests.support.local_openai import BASE_MODEL, Backend, jsonl, upload, wait_for
from tests.support.toy_books import toy_examples

pytestmark = pytest.mark.slow  # worker processes and thread pools

WORKERS = 4


def worker(store: str, index: int, shared_job: str) -> dict[str, object]:
    """One process: upload, create jobs, and poll its own jobs and the shared one."""
    client = local_client(store, job_seconds=0.5)
    files = [upload(client, jsonl(toy_examples(12, seed=index * 10 + i)), f"w{index}-{i}.jsonl") for i in range(3)]
    jobs = [client.fine_tuning.jobs.create(model=BASE_MODEL, training_file=f, suffix=f"w{index}").id for f in files[:2]]
    for _ in range(5):  # listings while other processes write must never see a torn record
        assert all(job.id for job in client.fine_tuning.jobs.list(limit=100))
        assert all(f.id for f in client.files.list())
    statuses = {job: wait_for(client, job).status for job in [shared_job, *jobs]}
    return {"files": files, "jobs": jobs, "statuses": statuses}


def test_processes_share_one_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    parent = local_client(store, job_seconds=0.5)
    shared = parent.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(parent, jsonl(toy_examples(200)))
    ).id
    # spawn, not fork: forked children would inherit signal handlers and locks that earlier
    # in-process Dagster runs installed in this pytest process (seen hanging Pool shutdown).
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(WORKERS)
    try:
        results = pool.starmap_async(worker, [(str(store), i, shared) for i in range(WORKERS)]).get(timeout=180)
        pool.close()
    finally:
        pool.terminate()
        pool.join()

    files = [f for r in results for f in r["files"]]
    jobs = [j for r in results for j in r["jobs"]]
    assert len(set(files)) == len(files) == 3 * WORKERS
    assert len(set(jobs)) == len(jobs) == 2 * WORKERS
    assert all(status == "succeeded" for r in results for status in r["statuses"].values())
    listed_jobs = [j.id for j in parent.fine_tuning.jobs.list(limit=100)]
    assert sorted(listed_jobs) == sorted([*jobs, shared])
    uploaded = {f.id for f in parent.files.list(purpose="fine-tune")}
    assert set(files) <= uploaded and len(uploaded) == len(files) + 1
    # The shared job was polled by every process at once, yet trained exactly once.
    events = list(parent.fine_tuning.jobs.list_events(shared, limit=1000))
    assert sum(e.message == "Fine-tuning job started" for e in events) == 1
    assert sum(e.message == "The job has successfully completed" for e in events) == 1
    assert len(parent.fine_tuning.jobs.checkpoints.list(shared).data) == 3
    assert len(parent.fine_tuning.jobs.retrieve(shared).result_files) == 1
    results_files = [f for f in parent.files.list() if f.purpose == "fine-tune-results"]
    assert len(results_files) == 2 * WORKERS + 1
    # Every record on disk is complete JSON; no temp files were left behind.
    for path in store.rglob("*.json"):
        json.loads(path.read_text())
    assert not list(store.rglob(".tmp-*"))


def test_threads_polling_one_job(backend: Backend) -> None:
    client = backend.client(job_seconds=0.5)
    job = client.fine_tuning.jobs.create(
        model=BASE_MODEL, training_file=upload(client, jsonl(toy_examples(100)))
    ).id
    with ThreadPoolExecutor(8) as pool:
        finals = list(pool.map(lambda _: wait_for(client, job).model_dump(), range(8)))
    assert all(f == finals[0] for f in finals) and finals[0]["status"] == "succeeded"
    events = list(client.fine_tuning.jobs.list_events(job, limit=1000))
    assert sum(e.message == "Fine-tuning job started" for e in events) == 1
