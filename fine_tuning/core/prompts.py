"""The one prompt builder: training files and evaluation both call it, so they cannot drift.

A task's prompt (`Prompt`) is its system text, the label set and the JSON key the answer goes
under; a `UserTemplate` turns one row's columns into the user message. Both come from a task's
`defs.yaml`; the Goodreads task's are the defaults below, so the functions at the end of this
module (`build_messages`, `training_example`, ...) still speak of books.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fine_tuning.core.grading import Grading

Message = dict[str, str]

GOODREADS_SYSTEM = "You classify graphic novels and comics by their main category."
GOODREADS_USER_TEMPLATE = "Title: {title}\nAuthor: {author}\nDescription: {description}"
GOODREADS_ANSWER_KEY = "category"
GOODREADS_SCHEMA_NAME = "book_category"


class TemplateError(ValueError):
    """A user template that cannot be rendered from a row (bad syntax, positional or dotted fields)."""


@functools.lru_cache(maxsize=64)
def _template_columns(text: str) -> tuple[str, ...]:
    """`UserTemplate.columns` of a template text (a malformed one raises every time: errors are not cached)."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as error:
        raise TemplateError(f"{error} in template {text!r} (write a literal brace as '{{{{' or '}}}}')") from None
    names: list[str] = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field or field.isdigit() or any(char in field for char in ".[]"):
            raise TemplateError(f"field {{{field}}} in template {text!r} is not a column name")
        if spec or conversion:
            raise TemplateError(f"field {{{field}}} in template {text!r}: format specs and conversions "
                                "are not supported")
        if field not in names:
            names.append(field)
    if not names:
        raise TemplateError(f"template {text!r} names no column: every example would get the same prompt")
    return tuple(names)


@dataclass(frozen=True)
class UserTemplate:
    """`str.format`-style text over a row's columns, e.g. "Title: {title}\\n\\n{description}".

    Only plain `{column}` fields are allowed (no positions, attributes, indexes, conversions or
    format specs), so what a template can reach is exactly the columns it names. A NULL value
    renders as an empty string.
    """

    text: str

    def columns(self) -> tuple[str, ...]:
        """The columns the template names, in order of first use (TemplateError when malformed)."""
        # Parsed once per template text: every example's render asks (twice per row: 115k parses at Goodreads scale).
        return _template_columns(self.text)

    def render(self, values: Mapping[str, Any]) -> str:
        """The user message for one row (`values` by column name; None renders as '')."""
        return self.text.format_map({name: "" if values.get(name) is None else values[name] for name in self.columns()})


@dataclass(frozen=True)
class Prompt:
    """What every example of a task shares: the system message, the labels and the answer's shape.

    A free-form prompt (`grading` set, no labels) asks for plain text: no answer format in the
    system message, no response_format, and the assistant's answer is the answer column's text
    as it is; `grading` is the metric its answers are scored with (`core.grading`).
    """

    labels: tuple[str, ...]
    system: str = GOODREADS_SYSTEM
    answer_key: str = GOODREADS_ANSWER_KEY
    schema_name: str = GOODREADS_SCHEMA_NAME
    grading: Grading | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        if self.grading is not None and self.labels:
            raise ValueError("a free-form prompt (with a grading) has no label set")

    @property
    def free_form(self) -> bool:
        """Whether answers are free text graded by the task's grader (not one of a label set)."""
        return self.grading is not None

    def system_message(self) -> Message:
        """The task's system text followed by the answer format naming every allowed label (free-form:
        the system text alone)."""
        if self.free_form:
            return {"role": "system", "content": self.system.rstrip()}
        answer = (f"Answer with a JSON object {{\"{self.answer_key}\": <one of: {', '.join(self.labels)}>}} "
                  "and nothing else.")
        return {"role": "system", "content": f"{self.system.rstrip()} {answer}"}

    def messages(self, user_content: str) -> list[Message]:
        """The prompt for one example: what the model sees at training and at evaluation time."""
        return [self.system_message(), {"role": "user", "content": user_content}]

    def answer_text(self, label: str) -> str:
        """The assistant's reply for a label, exactly as the strict json_schema would produce it (free-form:
        the answer column's text itself)."""
        if self.free_form:
            return label
        return json.dumps({self.answer_key: label}, separators=(",", ":"))

    def training_example(self, user_content: str, label: str) -> dict[str, list[Message]]:
        """One chat-format fine-tuning example: the prompt plus the expected answer."""
        messages = self.messages(user_content)
        messages.append({"role": "assistant", "content": self.answer_text(label)})
        return {"messages": messages}

    def response_format(self) -> dict[str, Any] | None:
        """Strict json_schema response format that forces the answer into the label enum (free-form: None,
        the model answers plain text)."""
        if self.free_form:
            return None
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.schema_name,
                "strict": True,
                "schema": {
                    "type": "object",
                    "properties": {self.answer_key: {"type": "string", "enum": list(self.labels)}},
                    "required": [self.answer_key],
                    "additionalProperties": False,
                },
            },
        }

    def parse_answer(self, text: str | None) -> str | None:
        """The label a model answered, or None when the answer names no known label (free-form: the text
        itself, None when empty)."""
        if not text:
            return None
        if self.free_form:
            return text
        allowed = {label.lower(): label for label in self.labels}
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        if isinstance(value, dict):
            value = value.get(self.answer_key)
        if not isinstance(value, str):
            return None
        return allowed.get(value.strip().strip('"').lower())


class TrainingExampleLines:
    """`prompt.training_example(...)` as JSON text, byte for byte, with what every example shares encoded once.

    Writing a file of 56k examples spent most of its time building and encoding the same system
    message and answers again and again; only the user message differs between examples.
    """

    # Stands for the user message while the template is encoded; json.dumps escapes the NULs,
    # so no real content can be mistaken for it.
    _SLOT = "\x00user message\x00"

    def __init__(self, prompt: Prompt | Sequence[str]) -> None:
        self.prompt = prompt if isinstance(prompt, Prompt) else Prompt(tuple(prompt))
        self._around: dict[str, tuple[str, str]] = {}

    def messages(self, user_content: str, label: str) -> list[Message]:
        """The example's messages for a user message text."""
        return self.prompt.training_example(user_content, label)["messages"]

    def line(self, user_content: str, label: str) -> str:
        """`json.dumps(prompt.training_example(...), ensure_ascii=False)` for this user message and answer."""
        if self.prompt.free_form:  # every answer is its own: nothing shared to encode once
            return json.dumps(self.prompt.training_example(user_content, label), ensure_ascii=False)
        around = self._around.get(label)
        if around is None:
            template = json.dumps({"messages": self.messages(self._SLOT, label)}, ensure_ascii=False)
            before, after = template.split(json.dumps(self._SLOT, ensure_ascii=False))
            around = self._around[label] = (before, after)
        return around[0] + json.dumps(user_content, ensure_ascii=False) + around[1]


# The Goodreads task's prompt, as functions of a book (the local backend's tests and the toy data use them).

def system_message(categories: Sequence[str]) -> Message:
    """The Goodreads system message naming every allowed category."""
    return Prompt(tuple(categories)).system_message()


def user_message(title: str, author: str, description: str) -> Message:
    """The Goodreads user message describing one book."""
    content = UserTemplate(GOODREADS_USER_TEMPLATE).render({"title": title, "author": author, "description": description})
    return {"role": "user", "content": content}


def answer_text(category: str) -> str:
    """The assistant's reply for a category, exactly as the strict json_schema would produce it."""
    return Prompt(()).answer_text(category)


def build_messages(title: str, author: str, description: str, categories: Sequence[str]) -> list[Message]:
    """The prompt for one book: what the model sees at training and at evaluation time."""
    return Prompt(tuple(categories)).messages(user_message(title, author, description)["content"])


def training_example(
    title: str, author: str, description: str, category: str, categories: Sequence[str]
) -> dict[str, list[Message]]:
    """One chat-format fine-tuning example of a book: the prompt plus the expected answer."""
    return Prompt(tuple(categories)).training_example(user_message(title, author, description)["content"], category)


def response_format(categories: Sequence[str]) -> dict[str, Any]:
    """Strict json_schema response format that forces the answer into the category enum."""
    return Prompt(tuple(categories)).response_format()


def parse_answer(text: str | None, categories: Sequence[str]) -> str | None:
    """The category a model answered, or None when the answer names no known category."""
    return Prompt(tuple(categories)).parse_answer(text)
