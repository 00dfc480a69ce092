"""One creator per training job: an exclusive lease on looking up and creating a provider job (no Dagster here).

Two runs outside the run queue (two `dagster job execute`, a UI materialization beside the job)
can reach `fine_tuned_model` with the same training fingerprint at the same instant: each would
list no job with that fingerprint and create one, and both would be billed. So the look-up and
the creation happen under a lease, an exclusive `flock` on one file per fingerprint
(`<FINE_TUNING_WORKDIR>/leases/fine_tuning_job-<fingerprint>.lock`, where every run of the
project looks). A run that finds the lease held waits for it, then looks again: it finds the job
the holder created and attaches to it instead of creating one.

The kernel drops a `flock` when the process holding it ends, however it ends (an exception, a
terminated run, SIGKILL), so a dead holder never blocks anyone; a live one that hangs is waited
for up to a limit, after which the waiter fails having created nothing. The holder removes the
file before it unlocks, and a waiter that locked a removed file tries again on the new one, so
no lease files pile up and no two holders ever hold "the same" lease through different files.

A provider's job listing may lag behind a create (OpenAI's list endpoints are eventually
consistent), so a waiter that gets the lease right after the holder may list no job and create
a second one. So before releasing, the holder records the id of the job it created or attached
to beside the lease (`fine_tuning_job-<fingerprint>.jobs`, which stays), and the next holder
retrieves the recorded jobs by id, which is consistent, besides listing
(`provider_jobs.find_jobs_with_recorded`).

The lease is as shared as the filesystem: runs on other hosts, or with another workdir, do not
see it; `provider_jobs.settle_concurrent_jobs` stays for them.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from fine_tuning.core.provider_jobs import Log

LEASE_FOLDER = "leases"
# Creating a job is a look-up and one create request, retried a few times on transient errors
# (core.provider_jobs.CREATE_ATTEMPTS): a minute at worst in practice; 15 minutes only matter
# for a holder hung on the network.
DEFAULT_WAIT_SECONDS = 900.0
POLL_SECONDS = 0.2


class LeaseWaitExpired(Exception):
    """Another run held the lease for longer than this run would wait; nothing was created."""


def lease_path(workdir: Path, fingerprint: str) -> Path:
    """The lease file of a training fingerprint (the identity the provider finds a job by)."""
    return workdir / LEASE_FOLDER / f"fine_tuning_job-{fingerprint}.lock"


def job_record_path(workdir: Path, fingerprint: str) -> Path:
    """The file beside the lease where its holders record the jobs they created or attached to."""
    return workdir / LEASE_FOLDER / f"fine_tuning_job-{fingerprint}.jobs"


def recorded_job_ids(path: Path) -> list[str]:
    """The job ids recorded at `path`, oldest first; none when nothing was recorded yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def record_job_id(path: Path, job_id: str) -> None:
    """Add `job_id` to the record at `path` unless it is there already; call it under the lease, before releasing it.

    The file is replaced atomically (a temporary file, flushed to disk, renamed over it), so a
    holder that dies mid-write leaves the previous record whole.
    """
    known = recorded_job_ids(path)
    if job_id in known:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write("".join(f"{known_id}\n" for known_id in [*known, job_id]))
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def holder_description(run_id: str, task: str) -> str:
    """Who holds a lease, as a waiter names it: run, task, process, host and since when (UTC)."""
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"run {run_id} of task {task}, PID {os.getpid()} on {socket.gethostname()}, since {since}"


def _is_current_file(handle: IO[str], path: Path) -> bool:
    """Whether the locked `handle` is still the file at `path` (its holder may have removed it meanwhile)."""
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(handle.fileno())
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _holder_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "a run that is starting"
    except FileNotFoundError:
        return "a run that has just finished"


def _try_lock(path: Path) -> IO[str] | None:
    """The locked lease file, or None when another process holds it."""
    handle = open(path, "a+", encoding="utf-8")  # "a+": never truncate what the holder wrote
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    if _is_current_file(handle, path):
        return handle
    handle.close()  # locked a file its holder removed on release: the lease is free again, take it anew
    return _try_lock(path)


@contextmanager
def creation_lease(
    path: Path,
    holder: str,
    log: Log,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[None]:
    """Hold the lease at `path` for the block, waiting up to `wait_seconds` while another process holds it.

    `holder` (see `holder_description`) is written into the file for waiters to name. Raises
    `LeaseWaitExpired` when the wait runs out.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = clock() + wait_seconds
    waited_for = None
    while (handle := _try_lock(path)) is None:
        current = _holder_of(path)
        if waited_for is None:
            log.info(f"Another run is creating the fine-tuning job with this fingerprint ({current}); "
                     "waiting for it, to attach to its job instead of creating one.")
            waited_for = current
        if clock() >= deadline:
            raise LeaseWaitExpired(
                f"Another run has been creating the fine-tuning job with this fingerprint for more than "
                f"{wait_seconds:.0f} s ({current}; lease file {path}). This run created nothing: run it again "
                "once that run is done, or stop that run (a stopped run's lease is free at once)."
            )
        sleep(POLL_SECONDS)
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(holder)
        handle.flush()
        if waited_for is not None:
            log.info("The other run is done creating; looking for its job.")
        yield
    finally:
        # Remove before unlocking: a waiter that locks the removed file sees it is gone and retries.
        path.unlink(missing_ok=True)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
