"""Stored chat completions (`store: true`): list, retrieve, update metadata, delete, and their messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from local_openai.chat.records import ChatCompletion
from local_openai.exceptions import CompletionNotFound, MissingRequiredParameter, UnknownParameter
from local_openai.jobs.create_request import metadata as checked_metadata
from local_openai.learner.features import message_text
from local_openai.records import STATE_KEY, Page
from local_openai.store import Store, Table, paginate


@dataclass
class StoredCompletion:
    """A completion kept because it was created with `store: true`, with the messages that asked for it."""

    id: str
    completion: dict[str, Any]
    messages: list[dict[str, Any]]
    metadata: dict[str, str] | None
    seq: int = 0

    def to_api(self) -> dict[str, Any]:
        """The `chat.completion` object, with its metadata."""
        return {**self.completion, "metadata": self.metadata or {}}

    def to_store(self) -> dict[str, Any]:
        """The stored document."""
        return {**self.to_api(), STATE_KEY: {"messages": self.messages, "seq": self.seq}}

    @classmethod
    def from_store(cls, document: dict[str, Any]) -> StoredCompletion:
        """Inverse of to_store."""
        state = document.pop(STATE_KEY)
        metadata = document.pop("metadata", None)
        return cls(document["id"], document, state["messages"], metadata or None, state.get("seq", 0))


@dataclass(frozen=True)
class StoredMessage:
    """One request message of a stored completion."""

    id: str
    message: dict[str, Any]

    def to_api(self) -> dict[str, Any]:
        """The stored message object: text `content`, and `content_parts` when it was sent as parts."""
        content = self.message.get("content")
        parts = content if isinstance(content, list) else None
        text = message_text(self.message) if content is not None else None
        return {"id": self.id, "role": self.message.get("role"), "content": text, "refusal": None,
                "name": self.message.get("name"), "content_parts": parts}


@dataclass(frozen=True)
class DeletedCompletion:
    """What deleting a stored completion answers."""

    id: str

    def to_api(self) -> dict[str, Any]:
        """The `chat.completion.deleted` object."""
        return {"id": self.id, "object": "chat.completion.deleted", "deleted": True}


class StoredCompletions:
    """The completions created with `store: true`."""

    def __init__(self, store: Store) -> None:
        self.table = Table(store, "completions", StoredCompletion.from_store)

    def save(self, completion: ChatCompletion, messages: list[dict[str, Any]], metadata: dict[str, str] | None) -> None:
        """Keep a completion and the messages that asked for it."""
        self.table.insert(StoredCompletion(completion.id, completion.to_api(), messages, metadata))

    def get(self, completion_id: str) -> StoredCompletion:
        """A stored completion, or 404."""
        found = self.table.get(completion_id)
        if found is None:
            raise CompletionNotFound(completion_id)
        return found

    def list(self, after: str | None, limit: int, order: str, model: str | None,
             metadata: dict[str, str]) -> Page[StoredCompletion]:
        """Stored completions oldest first (order=asc, the default) or newest first."""
        found = [
            item for item in self.table.all()
            if (model is None or item.completion.get("model") == model)
            and all((item.metadata or {}).get(key) == value for key, value in metadata.items())
        ]
        if order == "asc":
            found.reverse()
        page, has_more = paginate(found, after, limit)
        return Page(page, has_more)

    def update(self, completion_id: str, body: dict[str, Any]) -> StoredCompletion:
        """Replace a stored completion's metadata (the only field that can change)."""
        for name in body:
            if name != "metadata":
                raise UnknownParameter(name)
        if "metadata" not in body:
            raise MissingRequiredParameter("metadata")
        item = self.get(completion_id)
        item.metadata = checked_metadata(body["metadata"])
        self.table.put(item)
        return item

    def delete(self, completion_id: str) -> DeletedCompletion:
        """Forget a stored completion."""
        self.get(completion_id)
        self.table.store.path("completions", completion_id).unlink(missing_ok=True)
        return DeletedCompletion(completion_id)

    def messages(self, completion_id: str, after: str | None, limit: int, order: str) -> Page[StoredMessage]:
        """The request messages of a stored completion, in order (order=asc) or reversed."""
        item = self.get(completion_id)
        listed = [StoredMessage(f"{completion_id}-{i}", message) for i, message in enumerate(item.messages)]
        if order == "desc":
            listed.reverse()
        page, has_more = paginate(listed, after, limit)
        return Page(page, has_more)
