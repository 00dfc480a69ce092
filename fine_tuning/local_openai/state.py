"""Persistent state of the local backend: the on-disk store, ids and list helpers.

`Store` is the on-disk layout: one JSON document per object plus file blobs under one data
directory, written atomically (temp file + os.replace) so a reader never sees half a record,
and serialised across processes with fcntl.flock where a read-modify-write happens. What the
records mean (files, jobs, models) is the business of files.py, jobs.py and chat.py.

Layout of the data directory:
    .lock                  global lock (sequence counter, creating and deleting objects)
    meta.json              {"seq": last sequence number}; orders lists newest first
    files/{file-id}.json   file records          blobs/{file-id}   file contents
    jobs/{ftjob-id}.json   job records           locks/{ftjob-id}.lock   per-job lock
    events/{ftjob-id}.json job events            checkpoints/{ftjob-id}.json
    models/{ftjob-id}.json final weights         models/{ftjob-id}.step-{n}.json checkpoints
Uploaded file names are data inside the records; paths are built only from validated ids.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import string
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_RE = re.compile(r"^(file|ftjob|ftevent|ftckpt)-[A-Za-z0-9]{1,64}$")


def new_id(prefix: str) -> str:
    """A random id like OpenAI's: prefix, dash, 24 letters/digits from `secrets`."""
    return f"{prefix}-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


class Store:
    """JSON records and blobs under one directory, atomic and safe across processes."""

    SUBDIRS = ("files", "blobs", "jobs", "locks", "events", "checkpoints", "models", "deleted")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        for sub in self.SUBDIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths: built from validated ids only, so a request can never reach outside the store
    def path(self, kind: str, object_id: str, suffix: str = ".json") -> Path:
        """Path of an object's record; raises KeyError for anything that is not a valid id."""
        if kind not in self.SUBDIRS or not isinstance(object_id, str) or not _ID_RE.match(object_id):
            raise KeyError(object_id)
        return self.root / kind / f"{object_id}{suffix}"

    # -- locking
    @contextmanager
    def _flock(self, path: Path) -> Iterator[None]:
        # flock locks belong to the open file description, so separate opens in one process
        # (server threads) exclude each other just as separate processes do.
        with open(path, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def global_lock(self) -> AbstractContextManager[None]:
        """Exclusive lock for the sequence counter and creating/deleting objects."""
        return self._flock(self.root / ".lock")

    def job_lock(self, job_id: str) -> AbstractContextManager[None]:
        """Exclusive lock for advancing or cancelling one job (never taken inside global_lock)."""
        return self._flock(self.path("locks", job_id, ".lock"))

    @contextmanager
    def try_job_lock(self, job_id: str) -> Iterator[bool]:
        """The job lock if it is free right now (True), else False at once: a reader never waits
        while another request trains the job."""
        with open(self.path("locks", job_id, ".lock"), "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def next_seq(self) -> int:
        """Next sequence number; call only while holding global_lock."""
        meta_path = self.root / "meta.json"
        meta = self.read_json(meta_path) or {"seq": 0}
        meta["seq"] = int(meta.get("seq", 0)) + 1
        self.write_json(meta_path, meta)
        return meta["seq"]

    # -- atomic IO
    @staticmethod
    def read_json(path: Path) -> Any:
        """A JSON document, or None when it does not exist."""
        try:
            with open(path, encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None

    @staticmethod
    def write_bytes(path: Path, data: bytes) -> None:
        """Write via a temp file in the same directory and os.replace (atomic on POSIX)."""
        # The ".tmp" suffix keeps half-written files out of every "*.json" listing.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def write_json(self, path: Path, data: Any) -> None:
        """Atomically write a JSON document."""
        self.write_bytes(path, json.dumps(data, separators=(",", ":")).encode("utf-8"))

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """A record by id, or None (also for ids that are not valid)."""
        try:
            return self.read_json(self.path(kind, object_id))
        except KeyError:
            return None

    def put(self, kind: str, record: dict[str, Any]) -> None:
        """Atomically write a record under its own id."""
        self.write_json(self.path(kind, record["id"]), record)

    def insert(self, kind: str, record: dict[str, Any]) -> None:
        """Write a new record stamped with the next sequence number (which orders lists)."""
        # Numbering and writing under one lock: two creators can never share a number.
        with self.global_lock():
            record.setdefault("_local", {})["seq"] = self.next_seq()
            self.put(kind, record)

    def blob(self, file_id: str) -> Path:
        """Path of a file's contents; raises KeyError for anything that is not a valid id."""
        return self.path("blobs", file_id, "")

    def read_list(self, kind: str, object_id: str) -> list[dict[str, Any]]:
        """A per-object JSON list (events, checkpoints); empty when there is none yet."""
        return self.read_json(self.path(kind, object_id)) or []

    def write_list(self, kind: str, object_id: str, items: list[dict[str, Any]]) -> None:
        """Atomically replace a per-object JSON list."""
        self.write_json(self.path(kind, object_id), items)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every record of a kind, newest first."""
        records = []
        for path in (self.root / kind).glob("*.json"):
            if path.name.startswith("."):
                continue
            record = self.read_json(path)
            if isinstance(record, dict):
                records.append(record)
        records.sort(key=lambda r: r.get("_local", {}).get("seq", 0), reverse=True)
        return records


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def public(record: dict[str, Any]) -> dict[str, Any]:
    """A record without the backend's private bookkeeping."""
    return {k: v for k, v in record.items() if k != "_local"}


def paginate(
    items: Sequence[dict[str, Any]], after: str | None, limit: int, after_seq: int | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Cursor pagination over items already in list order: those after `after`, at most `limit`.

    `after_seq` places a cursor that is no longer listed (a deleted object, as in a
    delete-while-listing loop) by its sequence number, so the walk goes on where it was.
    """
    start = 0
    if after:
        ids = [item["id"] for item in items]
        if after in ids:
            start = ids.index(after) + 1
        elif after_seq is not None:
            seqs = [item.get("_local", {}).get("seq", 0) for item in items]
            descending = len(seqs) < 2 or seqs[0] >= seqs[-1]
            start = next(
                (i for i, seq in enumerate(seqs) if (seq < after_seq if descending else seq > after_seq)),
                len(items),
            )
        else:
            start = len(items)
    page = list(items[start : start + limit])
    return page, start + limit < len(items)
