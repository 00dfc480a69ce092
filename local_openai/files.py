"""The files resource: uploads, their records and contents, expiry, listing and deletion."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from local_openai.exceptions import InvalidFileFormat, InvalidFileName, InvalidRequest, NoSuchFile
from local_openai.records import DeletedFile, FileObject, Page
from local_openai.store import Store, Table, new_id, paginate

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_FILENAME_CHARS = 255
# expires_after.seconds bounds (1 hour, 30 days); batch files expire after 30 days by default.
MIN_EXPIRY_SECONDS = 3600
MAX_EXPIRY_SECONDS = 30 * 24 * 3600
DEFAULT_BATCH_EXPIRY_SECONDS = MAX_EXPIRY_SECONDS


def expiry_seconds(value: Any, param: str) -> int | None:
    """Seconds after creation from an `expires_after` object ({"anchor": "created_at", "seconds": N}).

    Multipart uploads carry the number as text, JSON bodies as a number; both are accepted.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{param}' must be an object with 'anchor' and 'seconds'.", param)
    if value.get("anchor") != "created_at":
        raise InvalidRequest(
            f"Invalid value for '{param}.anchor': expected 'created_at'.", f"{param}.anchor"
        )
    seconds = value.get("seconds")
    if isinstance(seconds, str) and seconds.strip().isascii() and seconds.strip().isdigit():
        seconds = int(seconds.strip())
    if not isinstance(seconds, int) or isinstance(seconds, bool) or not (
        MIN_EXPIRY_SECONDS <= seconds <= MAX_EXPIRY_SECONDS
    ):
        raise InvalidRequest(
            f"Invalid value for '{param}.seconds': must be an integer between {MIN_EXPIRY_SECONDS} "
            f"and {MAX_EXPIRY_SECONDS}.",
            f"{param}.seconds",
        )
    return seconds


def stored_file_name(filename: str) -> str:
    """The name a file is stored under: its last path component (what clients send), checked.

    Refused rather than rewritten: control characters (a NUL, CR or LF would corrupt headers and
    listings), a name longer than 255 characters, or no name at all.
    """
    name = re.split(r"[\\/]", filename or "")[-1]
    if not name or name in (".", ".."):
        raise InvalidFileName(f"Invalid file name {filename[:80]!r}: a file needs a name.", "file")
    if len(name) > MAX_FILENAME_CHARS:
        raise InvalidFileName(
            f"Invalid file name: it is {len(name)} characters long; the maximum is {MAX_FILENAME_CHARS}.", "file"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidFileName(f"Invalid file name {name[:80]!r}: control characters are not allowed.", "file")
    return name


class Files:
    """Uploaded files (and the result files jobs and batches produce) in a `Store`."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.table = Table(store, "files", FileObject.from_store)
        self.clock = clock

    def create(self, filename: str, purpose: str, content: bytes, expires_after: Any = None) -> FileObject:
        """Store an uploaded file; the name is kept as data (its last path component)."""
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(f"Invalid purpose '{purpose}'. Expected one of {', '.join(FILE_PURPOSES)}.", "purpose")
        name = stored_file_name(filename)
        if purpose == "fine-tune" and not name.lower().endswith(".jsonl"):
            raise InvalidFileFormat(f"Invalid file format for Fine-Tuning API. Must be .jsonl (got '{name}').", "file")
        if purpose == "batch" and not name.lower().endswith(".jsonl"):
            raise InvalidRequest("Invalid file format for Batch API. Must be .jsonl", "file")
        seconds = expiry_seconds(expires_after, "expires_after")
        if seconds is None and purpose == "batch":
            seconds = DEFAULT_BATCH_EXPIRY_SECONDS
        created_at = int(self.clock())
        expires_at = None if seconds is None else created_at + seconds
        return self.add(name, purpose, content, created_at=created_at, expires_at=expires_at)

    def add(
        self, name: str, purpose: str, content: bytes, created_at: int, file_id: str | None = None,
        expires_at: int | None = None,
    ) -> FileObject:
        """Record a file without request validation (also publishes a job's or batch's result file).

        With `file_id`, contents already written under that id are kept, not rewritten.
        """
        record = FileObject(file_id or new_id("file"), len(content), created_at, name, purpose, expires_at)
        blob = self.store.blob(record.id)
        if not blob.exists():
            self.store.write_bytes(blob, content)
        self.table.insert(record)
        return record

    def find(self, file_id: str) -> FileObject | None:
        """A file, or None (also once it has expired: an expired file is deleted when next seen)."""
        record = self.table.get(file_id)
        if record is not None and self._expired(record):
            self._remove(record)
            return None
        return record

    def _expired(self, record: FileObject) -> bool:
        return record.expires_at is not None and self.clock() >= record.expires_at

    def get(self, file_id: str) -> FileObject:
        """A file, or 404."""
        record = self.find(file_id)
        if record is None:
            raise NoSuchFile(file_id)
        return record

    def content(self, file_id: str) -> bytes:
        """A file's bytes."""
        self.get(file_id)
        try:
            return self.store.blob(file_id).read_bytes()
        except FileNotFoundError as exc:
            raise NoSuchFile(file_id) from exc

    def delete(self, file_id: str) -> DeletedFile:
        """Delete a file and its contents."""
        self._remove(self.get(file_id))
        return DeletedFile(file_id)

    def _remove(self, record: FileObject) -> None:
        with self.store.global_lock():
            # A tombstone keeps the deleted id's place, so a list cursor pointing at it still works.
            self.store.put("deleted", record.id, {"id": record.id, "seq": record.seq})
            for path in (self.store.path("files", record.id), self.store.blob(record.id)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass

    def _deleted_seq(self, file_id: str | None) -> int | None:
        """The list position a deleted file had, from its tombstone."""
        tombstone = self.store.get("deleted", file_id) if file_id else None
        return (tombstone or {}).get("seq")

    def list(self, purpose: str | None, after: str | None, limit: int, order: str) -> Page[FileObject]:
        """Files newest first (order=desc) or oldest first, optionally of one purpose; expired ones are gone."""
        records = []
        for record in self.table.all():
            if self._expired(record):
                self._remove(record)
            elif purpose is None or record.purpose == purpose:
                records.append(record)
        if order == "asc":
            records.reverse()
        items, has_more = paginate(records, after, limit, after_seq=self._deleted_seq(after))
        return Page(items, has_more)
