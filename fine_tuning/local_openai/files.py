"""The files resource: uploads, their records and contents, listing and deletion."""

from __future__ import annotations

import re
from collections.abc import Callable

from fine_tuning.local_openai.exceptions import InvalidFileFormat, InvalidRequest, NoSuchFile
from fine_tuning.local_openai.records import DeletedFile, FileObject, Page
from fine_tuning.local_openai.store import Store, Table, new_id, paginate

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data")
MAX_FILENAME_CHARS = 255


class Files:
    """Uploaded files (and the result files jobs produce) in a `Store`."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.table = Table(store, "files", FileObject.from_store)
        self.clock = clock

    def create(self, filename: str, purpose: str, content: bytes) -> FileObject:
        """Store an uploaded file; the name is kept as data (its last path component)."""
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(f"Invalid purpose '{purpose}'. Expected one of {', '.join(FILE_PURPOSES)}.", "purpose")
        name = re.split(r"[\\/]", filename or "")[-1][:MAX_FILENAME_CHARS] or "upload"
        if purpose == "fine-tune" and not name.lower().endswith(".jsonl"):
            raise InvalidFileFormat(f"Invalid file format for Fine-Tuning API. Must be .jsonl (got '{name}').", "file")
        return self.add(name, purpose, content, created_at=int(self.clock()))

    def add(self, name: str, purpose: str, content: bytes, created_at: int, file_id: str | None = None) -> FileObject:
        """Record a file without request validation (also publishes a job's result file).

        With `file_id`, contents already written under that id are kept, not rewritten.
        """
        record = FileObject(file_id or new_id("file"), len(content), created_at, name, purpose)
        blob = self.store.blob(record.id)
        if not blob.exists():
            self.store.write_bytes(blob, content)
        self.table.insert(record)
        return record

    def find(self, file_id: str) -> FileObject | None:
        """A file, or None."""
        return self.table.get(file_id)

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
        record = self.get(file_id)
        with self.store.global_lock():
            # A tombstone keeps the deleted id's place, so a list cursor pointing at it still works.
            self.store.put("deleted", file_id, {"id": file_id, "seq": record.seq})
            for path in (self.store.path("files", file_id), self.store.blob(file_id)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        return DeletedFile(file_id)

    def _deleted_seq(self, file_id: str | None) -> int | None:
        """The list position a deleted file had, from its tombstone."""
        tombstone = self.store.get("deleted", file_id) if file_id else None
        return (tombstone or {}).get("seq")

    def list(self, purpose: str | None, after: str | None, limit: int, order: str) -> Page[FileObject]:
        """Files newest first (order=desc) or oldest first, optionally of one purpose."""
        records = [r for r in self.table.all() if purpose is None or r.purpose == purpose]
        if order == "asc":
            records.reverse()
        items, has_more = paginate(records, after, limit, after_seq=self._deleted_seq(after))
        return Page(items, has_more)
