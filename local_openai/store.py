"""Persistent state of the local backend: the on-disk store, typed tables over it, ids, pagination.

`Store` is the on-disk layout: one JSON document per object plus file blobs under one data
directory, written atomically (temp file + os.replace) so a reader never sees half a record,
and serialised across processes with fcntl.flock where a read-modify-write happens. `Table`
and `Timeline` read and write typed records (records.py) in it; what the records mean is the
business of the resources (files.py, jobs/, models.py, chat.py).

Layout of the data directory:
    .lock                  global lock (sequence counter, creating and deleting objects)
    meta.json              {"seq": last sequence number}; orders lists newest first
    files/{file-id}.json   file records          blobs/{file-id}   file contents
    jobs/{ftjob-id}.json   job records           locks/{ftjob-id}.lock   per-job lock
    events/{ftjob-id}.json job events            checkpoints/{ftjob-id}.json
    models/{ftjob-id}.json final weights         models/{ftjob-id}.step-{n}.json checkpoints
    deleted/{file-id}.json tombstones: where a deleted file stood in the list
    batches/{batch_id}.json batch records    batch_results/{batch_id}.json answered requests
    completions/{chatcmpl-id}.json stored chat completions (`store: true`)
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

_ID_ALPHABET = string.ascii_letters + string.digits
# Ids a path may be built from: OpenAI's prefixes (batches join theirs with "_", the rest with "-").
_ID_RE = re.compile(r"^(?:(?:file|ftjob|ftevent|ftckpt|chatcmpl)-|batch_)[A-Za-z0-9]{1,64}$")


def new_id(prefix: str, separator: str = "-") -> str:
    """A random id like OpenAI's: prefix, separator, 24 letters/digits from `secrets`."""
    return f"{prefix}{separator}" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------


class Store:
    """JSON records and blobs under one directory, atomic and safe across processes."""

    SUBDIRS = (
        "files", "blobs", "jobs", "locks", "events", "checkpoints", "models", "deleted",
        "batches", "batch_results", "completions",
    )

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
        """Exclusive lock for advancing or cancelling one job or batch (never taken inside global_lock)."""
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

    def put(self, kind: str, object_id: str, document: dict[str, Any]) -> None:
        """Atomically write an object's document."""
        self.write_json(self.path(kind, object_id), document)

    def blob(self, file_id: str) -> Path:
        """Path of a file's contents; raises KeyError for anything that is not a valid id."""
        return self.path("blobs", file_id, "")

    def read_list(self, kind: str, object_id: str) -> list[dict[str, Any]]:
        """A per-object JSON list (events, checkpoints); empty when there is none yet."""
        return self.read_json(self.path(kind, object_id)) or []

    def write_list(self, kind: str, object_id: str, items: list[dict[str, Any]]) -> None:
        """Atomically replace a per-object JSON list."""
        self.write_json(self.path(kind, object_id), items)

    def documents(self, kind: str) -> list[dict[str, Any]]:
        """Every stored document of a kind, in no particular order."""
        documents = []
        for path in (self.root / kind).glob("*.json"):
            if path.name.startswith("."):
                continue
            document = self.read_json(path)
            if isinstance(document, dict):
                documents.append(document)
        return documents


# ---------------------------------------------------------------------------------------------
# Typed access
# ---------------------------------------------------------------------------------------------


class StoredRecord(Protocol):
    """A record kept as one document: it has an id, a list position and a stored form."""

    id: str
    seq: int

    def to_store(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=StoredRecord)


class Table(Generic[R]):
    """One kind of record (files, jobs) in a `Store`, read and written as typed records."""

    def __init__(self, store: Store, kind: str, load: Callable[[dict[str, Any]], R]) -> None:
        self.store = store
        self.kind = kind
        self.load = load

    def get(self, object_id: str) -> R | None:
        """A record by id, or None (also for ids that are not valid)."""
        document = self.store.get(self.kind, object_id)
        return None if document is None else self.load(document)

    def put(self, record: R) -> None:
        """Atomically write a record under its own id."""
        self.store.put(self.kind, record.id, record.to_store())

    def insert(self, record: R) -> None:
        """Write a new record stamped with the next sequence number (which orders lists)."""
        # Numbering and writing under one lock: two creators can never share a number.
        with self.store.global_lock():
            record.seq = self.store.next_seq()
            self.put(record)

    def all(self) -> list[R]:
        """Every record, newest first."""
        records = [self.load(document) for document in self.store.documents(self.kind)]
        records.sort(key=lambda record: record.seq, reverse=True)
        return records


class TimelineItem(Protocol):
    """An event or checkpoint: dated exactly (`at`), stored in its job's list."""

    id: str
    at: float

    def to_store(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=TimelineItem)


class Timeline(Generic[T]):
    """A job's events or checkpoints, oldest first, in one JSON list per job."""

    def __init__(self, store: Store, kind: str, load: Callable[[dict[str, Any]], T]) -> None:
        self.store = store
        self.kind = kind
        self.load = load

    def read(self, job_id: str) -> list[T]:
        """Every item of a job (empty when there is none yet)."""
        return [self.load(item) for item in self.store.read_list(self.kind, job_id)]

    def write(self, job_id: str, items: Sequence[T]) -> None:
        """Atomically replace a job's items."""
        self.store.write_list(self.kind, job_id, [item.to_store() for item in items])

    def append(self, job_id: str, items: Sequence[T]) -> None:
        """Add items, keeping the list in time order (stable: items of one time keep their order)."""
        self.write(job_id, sorted([*self.read(job_id), *items], key=lambda item: item.at))

    def until(self, job_id: str, now: float) -> list[T]:
        """The items dated by `now`, oldest first (later ones are not visible yet)."""
        return [item for item in self.read(job_id) if item.at <= now]


# ---------------------------------------------------------------------------------------------
# Pagination
# ---------------------------------------------------------------------------------------------


class Listed(Protocol):
    """Anything a list endpoint pages through."""

    id: str


L = TypeVar("L", bound=Listed)


def paginate(items: Sequence[L], after: str | None, limit: int, after_seq: int | None = None) -> tuple[list[L], bool]:
    """Cursor pagination over items already in list order: those after `after`, at most `limit`.

    `after_seq` places a cursor that is no longer listed (a deleted object, as in a
    delete-while-listing loop) by its sequence number, so the walk goes on where it was; the
    items then need a `seq`.
    """
    start = 0
    if after:
        ids = [item.id for item in items]
        if after in ids:
            start = ids.index(after) + 1
        elif after_seq is not None:
            seqs = [getattr(item, "seq", 0) for item in items]
            descending = len(seqs) < 2 or seqs[0] >= seqs[-1]
            start = next(
                (i for i, seq in enumerate(seqs) if (seq < after_seq if descending else seq > after_seq)),
                len(items),
            )
        else:
            start = len(items)
    page = list(items[start : start + limit])
    return page, start + limit < len(items)
