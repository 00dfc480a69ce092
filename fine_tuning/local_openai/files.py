"""The files resource: uploads, their records and contents, listing and deletion."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fine_tuning.local_openai.exceptions import InvalidFileFormat, InvalidRequest, NoSuchFile
from fine_tuning.local_openai.state import Store, new_id, paginate, public

FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data")
MAX_FILENAME_CHARS = 255


class Files:
    """Uploaded files (and the result files jobs produce) in a `Store`."""

    def __init__(self, store: Store, clock: Callable[[], float]) -> None:
        self.store = store
        self.clock = clock

    def create(self, filename: str, purpose: str, content: bytes) -> dict[str, Any]:
        """Store an uploaded file; the name is kept as data (its last path component)."""
        if purpose not in FILE_PURPOSES:
            raise InvalidRequest(f"Invalid purpose '{purpose}'. Expected one of {', '.join(FILE_PURPOSES)}.", "purpose")
        name = re.split(r"[\\/]", filename or "")[-1][:MAX_FILENAME_CHARS] or "upload"
        if purpose == "fine-tune" and not name.lower().endswith(".jsonl"):
            raise InvalidFileFormat(f"Invalid file format for Fine-Tuning API. Must be .jsonl (got '{name}').", "file")
        return self.add(name, purpose, content, created_at=int(self.clock()))

    def add(
        self, name: str, purpose: str, content: bytes, created_at: int, file_id: str | None = None
    ) -> dict[str, Any]:
        """Record a file without request validation (also publishes a job's result file).

        With `file_id`, contents already written under that id are kept, not rewritten.
        """
        file_id = file_id or new_id("file")
        record = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": created_at,
            "filename": name,
            "purpose": purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }
        blob = self.store.blob(file_id)
        if not blob.exists():
            self.store.write_bytes(blob, content)
        self.store.insert("files", record)
        return public(record)

    def record(self, file_id: str) -> dict[str, Any]:
        """A file's stored record, or 404."""
        record = self.store.get("files", file_id)
        if record is None:
            raise NoSuchFile(file_id)
        return record

    def get(self, file_id: str) -> dict[str, Any]:
        """A file object."""
        return public(self.record(file_id))

    def content(self, file_id: str) -> bytes:
        """A file's bytes."""
        self.record(file_id)
        try:
            return self.store.blob(file_id).read_bytes()
        except FileNotFoundError as exc:
            raise NoSuchFile(file_id) from exc

    def delete(self, file_id: str) -> dict[str, Any]:
        """Delete a file and its contents."""
        record = self.record(file_id)
        with self.store.global_lock():
            # A tombstone keeps the deleted id's place, so a list cursor pointing at it still works.
            self.store.write_json(self.store.path("deleted", file_id), {"id": file_id, **record.get("_local", {})})
            for path in (self.store.path("files", file_id), self.store.blob(file_id)):
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        return {"id": file_id, "object": "file", "deleted": True}

    def _deleted_seq(self, file_id: str | None) -> int | None:
        """The list position a deleted file had, from its tombstone."""
        try:
            tombstone = self.store.read_json(self.store.path("deleted", file_id)) if file_id else None
        except KeyError:  # not an id at all
            return None
        return (tombstone or {}).get("seq")

    def list(
        self, purpose: str | None, after: str | None, limit: int, order: str
    ) -> tuple[list[dict[str, Any]], bool]:
        """Files newest first (order=desc) or oldest first, optionally of one purpose."""
        records = [r for r in self.store.all("files") if purpose is None or r.get("purpose") == purpose]
        if order == "asc":
            records.reverse()
        page, has_more = paginate(records, after, limit, after_seq=self._deleted_seq(after))
        return [public(r) for r in page], has_more
