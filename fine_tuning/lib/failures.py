"""Failures of the Dagster steps: OpenAI client errors, provider-job errors and a full disk as `dg.Failure`."""

import errno
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import openai as openai_sdk

from fine_tuning.core.openai_errors import describe_api_error
from fine_tuning.core.provider_jobs import ProviderJobError
from fine_tuning.core.settings import workdir

_OUT_OF_SPACE = ("No space left on device", "Disk quota exceeded", "not enough space", "out of disk")
_MB = 1 << 20


@contextmanager
def api_errors(action: str, client: openai_sdk.OpenAI | None = None) -> Iterator[None]:
    """Turn `openai.APIError`s into a clear `dg.Failure` (interrupts pass through untouched)."""
    try:
        yield
    except openai_sdk.APIError as error:
        raise dg.Failure(description=describe_api_error(error, action, client)) from None


def job_failure(error: ProviderJobError) -> dg.Failure:
    """The `dg.Failure` that reports a provider-job error, with its facts as metadata."""
    return dg.Failure(description=error.description, metadata=error.metadata)


@contextmanager
def provider_job_failures() -> Iterator[None]:
    """Turn `ProviderJobError`s raised inside the block into `dg.Failure`s."""
    try:
        yield
    except ProviderJobError as error:
        raise job_failure(error) from None


def is_out_of_space(error: BaseException) -> bool:
    """True for a full disk (ENOSPC, EDQUOT), from Python's I/O or from DuckDB's message."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(marker.lower() in str(error).lower() for marker in _OUT_OF_SPACE)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) if path.is_dir() else 0


def what_to_free(path: Path) -> str:
    """Free space on the filesystem of `path` and what the pipeline keeps in its workdir, largest first."""
    folder = path if path.is_dir() else path.parent
    try:
        usage = shutil.disk_usage(folder)
        free = f"{usage.free / _MB:.1f} MB free of {usage.total / _MB:.1f} MB on the filesystem holding {folder}"
    except OSError:
        free = f"the filesystem holding {folder}"
    root = workdir()
    parts = sorted(((_size(item), item) for item in root.iterdir()), key=lambda pair: pair[0], reverse=True)
    largest = ", ".join(f"{item} ({size / _MB:.1f} MB)" for size, item in parts[:4] if size)
    return f"{free}; the workdir's largest entries: {largest or 'none'}"


def out_of_space_failure(path: Path, kept: str) -> dg.Failure:
    """The failure for a full disk while writing `path`: what was kept, and what could be freed."""
    room = what_to_free(path)
    return dg.Failure(
        description=(
            f"out of disk space writing {path}: nothing half-written was kept; {kept} stay as they were. "
            f"Free space and run again: {room} (the Goodreads inputs are not the cause)."
        ),
        metadata={"path": str(path), "kept": kept, "space": room},
    )


@contextmanager
def disk_space_failures(path: Path, kept: str) -> Iterator[None]:
    """Turn a full disk inside the block (writing `path`) into a failure naming the path and what was kept."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as error:
        if is_out_of_space(error):
            raise out_of_space_failure(path, kept) from error
        raise
