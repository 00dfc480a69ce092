"""The one prompt builder: training files and evaluation both call it, so they cannot drift."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

Message = dict[str, str]

_SYSTEM_TEMPLATE = (
    "You classify graphic novels and comics by their main category. "
    "Answer with a JSON object {{\"category\": <one of: {categories}>}} and nothing else."
)


def system_message(categories: Sequence[str]) -> Message:
    """The system message naming every allowed category."""
    return {"role": "system", "content": _SYSTEM_TEMPLATE.format(categories=", ".join(categories))}


def user_message(title: str, author: str, description: str) -> Message:
    """The user message describing one book."""
    return {
        "role": "user",
        "content": f"Title: {title}\nAuthor: {author}\nDescription: {description}",
    }


def answer_text(category: str) -> str:
    """The assistant's reply for a category, exactly as the strict json_schema would produce it."""
    return json.dumps({"category": category}, separators=(",", ":"))


def build_messages(
    title: str, author: str, description: str, categories: Sequence[str]
) -> list[Message]:
    """The prompt for one book: what the model sees at training and at evaluation time."""
    return [system_message(categories), user_message(title, author, description)]


def training_example(
    title: str, author: str, description: str, category: str, categories: Sequence[str]
) -> dict[str, list[Message]]:
    """One chat-format fine-tuning example: the prompt plus the expected answer."""
    messages = build_messages(title, author, description, categories)
    messages.append({"role": "assistant", "content": answer_text(category)})
    return {"messages": messages}


class TrainingExampleLines:
    """`training_example(...)` as JSON text, byte for byte, with what every example shares encoded once.

    Writing a file of 56k examples spent most of its time building and encoding the same system
    message and answers again and again; only the user message differs between examples.
    """

    # Stands for the user message while the template is encoded; json.dumps escapes the NULs,
    # so no real content can be mistaken for it.
    _SLOT = "\x00user message\x00"

    def __init__(self, categories: Sequence[str]) -> None:
        self.categories = tuple(categories)
        self._around: dict[str, tuple[str, str]] = {}

    def messages(self, user_content: str, category: str) -> list[Message]:
        """The example's messages for a user message text (what `training_example` builds)."""
        messages = training_example("", "", "", category, self.categories)["messages"]
        messages[1]["content"] = user_content
        return messages

    def line(self, user_content: str, category: str) -> str:
        """`json.dumps(training_example(...), ensure_ascii=False)` for this user message and answer."""
        around = self._around.get(category)
        if around is None:
            template = json.dumps({"messages": self.messages(self._SLOT, category)}, ensure_ascii=False)
            before, after = template.split(json.dumps(self._SLOT, ensure_ascii=False))
            around = self._around[category] = (before, after)
        return around[0] + json.dumps(user_content, ensure_ascii=False) + around[1]


def response_format(categories: Sequence[str]) -> dict[str, Any]:
    """Strict json_schema response format that forces the answer into the category enum."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "book_category",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {"category": {"type": "string", "enum": list(categories)}},
                "required": ["category"],
                "additionalProperties": False,
            },
        },
    }


def parse_answer(text: str | None, categories: Sequence[str]) -> str | None:
    """The category a model answered, or None when the answer names no known category."""
    if not text:
        return None
    allowed = {c.lower(): c for c in categories}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(value, dict):
        value = value.get("category")
    if not isinstance(value, str):
        return None
    return allowed.get(value.strip().strip('"').lower())
