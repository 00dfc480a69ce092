"""Instance generation: a schema-valid answer with the predicted label in its slot."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from local_openai.learner import Message, system_prompt_candidates, zero_shot_choice
from local_openai.structured_outputs.schema_check import (
    BOUNDS,
    FORMATS,
    MAX_SCHEMA_DEPTH,
    MISSING,
    FatalSchemaError,
    SchemaError,
)
from local_openai.structured_outputs.validation import SchemaDocument


def _lookup(value: Any, path: Sequence[Any]) -> Any:
    for part in path:
        if isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        else:
            return MISSING
    return value


def _find_key(value: Any, name: str, depth: int = 0) -> Any:
    """The first value under key `name`, depth-first, in a parsed JSON reply."""
    if depth > MAX_SCHEMA_DEPTH:
        return MISSING
    if isinstance(value, dict):
        if name in value:
            return value[name]
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return MISSING
    for child in children:
        found = _find_key(child, name, depth + 1)
        if found is not MISSING:
            return found
    return MISSING


def _string_leaves(value: Any, depth: int = 0) -> list[str]:
    if depth > MAX_SCHEMA_DEPTH:
        return []
    if isinstance(value, str):
        return [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [leaf for child in children for leaf in _string_leaves(child, depth + 1)]


class Generator:
    """Builds one instance of a schema, depth-first, putting the predicted label in its slot.

    mode "enum": the label goes into the first slot with a string enum (mapped into that enum);
    mode "string": into the first free string slot. Other leaves take the fine-tuned model's
    own value at the same place when it is valid there, else a schema-valid filler.
    """

    def __init__(
        self, schemas: SchemaDocument, mode: str, replies: Sequence[str], parsed: Sequence[Any],
        messages: Sequence[Message],
    ) -> None:
        self.schemas = schemas
        self.mode = mode
        self.replies = replies
        self.parsed = parsed
        self.messages = messages
        self.hint_root = parsed[0] if parsed else MISSING
        self.placed = False
        self.active: list[str] = ["#"]  # $refs being expanded: a branch back into one recurses

    # ------------------------------------------------------------------------ the label
    def _enum_label(self, path: Sequence[Any], options: list[str]) -> str | None:
        folded = {o.casefold(): o for o in reversed(options)}
        for reply, value in zip(self.replies, self.parsed):
            name = next((p for p in reversed(path) if isinstance(p, str)), None)
            candidates = [_lookup(value, path), _find_key(value, name) if name else MISSING,
                          *_string_leaves(value), reply.strip()]
            for candidate in candidates:
                if isinstance(candidate, str) and candidate in options:
                    return candidate
            for candidate in candidates:
                if isinstance(candidate, str) and candidate.strip().casefold() in folded:
                    return folded[candidate.strip().casefold()]
            for candidate in candidates:  # "negative" -> "neg", "sci" -> "sci-fi": one option only
                key = candidate.strip().casefold() if isinstance(candidate, str) else ""
                matches = [o for o in options if key and o and (key.startswith(o.casefold()) or o.casefold().startswith(key))]
                if len(matches) == 1:
                    return matches[0]
        return zero_shot_choice(self.messages, options)

    def _string_label(self, path: Sequence[Any]) -> str:
        if not self.replies:
            return zero_shot_choice(self.messages, system_prompt_candidates(self.messages)) or ""
        value, reply = self.parsed[0], self.replies[0]
        name = next((p for p in reversed(path) if isinstance(p, str)), None)
        for candidate in (_lookup(value, path), _find_key(value, name) if name else MISSING,
                          *_string_leaves(value)[:1]):
            if isinstance(candidate, str):
                return candidate
        return reply.strip()

    # ------------------------------------------------------------------------ generation
    def generate(self, schema: Any, path: list[Any], depth: int = 0) -> Any:
        """An instance of `schema` at `path` of the answer (the $ref being expanded is tracked)."""
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if ref is None:
            return self._generate(schema, path, depth)
        self.active.append(ref)
        try:
            return self._generate(schema, path, depth)
        finally:
            self.active.pop()

    def _generate(self, schema: Any, path: list[Any], depth: int) -> Any:
        self.schemas.tick()
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaError(f"Cannot produce an answer: the schema nests (or recurses) deeper than {MAX_SCHEMA_DEPTH}.")
        schema = self.schemas.resolve(schema)
        if schema is True:
            return None
        if schema is False:
            raise SchemaError("Cannot produce an answer: the schema admits no value.")
        valid = self.schemas.valid
        enum_strings = [v for v in schema.get("enum", []) if isinstance(v, str) and valid(schema, v)]
        if not self.placed and self.mode == "enum" and enum_strings:
            value = self._enum_label(path, enum_strings)
            if value is not None and valid(schema, value):
                self.placed = True
                return value
        hint = _lookup(self.hint_root, path) if self.hint_root is not MISSING else MISSING
        if hint is not MISSING and not isinstance(hint, dict) and valid(schema, hint):
            return hint
        if "const" in schema:
            return self._checked(schema, schema["const"])
        if "enum" in schema:
            for value in schema["enum"]:
                if valid(schema, value):
                    return value
            raise SchemaError("Cannot produce an answer: no enum value satisfies the rest of its schema.")
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                # A branch that recurses into a schema being expanded goes last (Optional["Tree"] -> null).
                recursive = [isinstance(b, dict) and b.get("$ref") in self.active for b in schema[key]]
                ordered = [b for b, r in zip(schema[key], recursive) if not r] + [
                    b for b, r in zip(schema[key], recursive) if r]
                branches = [self._merge(rest, b) for b in ordered]
                return self._first_valid(schema, [lambda b=b: self.generate(b, path, depth + 1) for b in branches])
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for branch in schema["allOf"]:
                merged = self._merge(merged, branch)
            return self._checked(schema, self.generate(merged, path, depth + 1))
        kind = schema.get("type")
        kinds = list(kind) if isinstance(kind, list) else [kind] if kind else [self._implied_type(schema)]
        if self.mode == "string" and not self.placed and "string" in kinds:
            kinds.remove("string")
            kinds.insert(0, "string")
        return self._first_valid(
            schema, [lambda k=k: self._of_type(dict(schema, type=k), k, path, depth) for k in kinds]
        )

    def _first_valid(self, schema: dict[str, Any], attempts: list[Callable[[], Any]]) -> Any:
        """The first attempt's value that is an instance of `schema` (label placement rolled back on failure)."""
        error: SchemaError | None = None
        for attempt in attempts:
            placed = self.placed
            try:
                value = attempt()
                if self.schemas.valid(schema, value):
                    return value
                error = SchemaError("Cannot produce an answer that satisfies the schema's combined constraints.")
            except FatalSchemaError:
                raise
            except SchemaError as exc:
                error = exc
            self.placed = placed
        raise error or SchemaError("Cannot produce an answer for the schema.")

    @staticmethod
    def _merge(base: dict[str, Any], branch: Any) -> Any:
        if isinstance(branch, bool) or not base:
            return branch if not base or branch is False else base
        if "$ref" in branch:
            return {**base, **branch} if not any(k in base for k in ("type", "enum", "const")) else {
                "allOf": [base, branch]}
        merged = {**base, **branch}
        if "properties" in base and "properties" in branch:
            merged["properties"] = {**base["properties"], **branch["properties"]}
        if "required" in base and "required" in branch:
            merged["required"] = list(dict.fromkeys([*base["required"], *branch["required"]]))
        return merged

    @staticmethod
    def _implied_type(schema: dict[str, Any]) -> str:
        if any(k in schema for k in ("properties", "required", "additionalProperties", "minProperties")):
            return "object"
        if any(k in schema for k in ("items", "minItems", "maxItems", "uniqueItems")):
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "pattern", "format")):
            return "string"
        if any(k in schema for k in (*BOUNDS, "multipleOf")):
            return "number"
        return "null"

    def _checked(self, schema: Any, value: Any) -> Any:
        if not self.schemas.valid(schema, value):
            raise SchemaError("Cannot produce an answer: the schema's constraints contradict each other.")
        return value

    def _of_type(self, schema: dict[str, Any], kind: str, path: list[Any], depth: int) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            return False
        if kind in ("integer", "number"):
            return self._number(schema, kind)
        if kind == "string":
            return self._string(schema, path)
        if kind == "array":
            hint = _lookup(self.hint_root, path) if self.hint_root is not MISSING else MISSING
            if isinstance(hint, list) and self.schemas.valid(schema, hint):
                return hint
            return [self.generate(schema.get("items", True), [*path, i], depth + 1)
                    for i in range(schema.get("minItems", 0))]
        return self._object(schema, path, depth)

    def _object(self, schema: dict[str, Any], path: list[Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        answer: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required:
                answer[name] = self.generate(sub, [*path, name], depth + 1)
                continue
            placed = self.placed
            try:  # an optional property is filled when it can be, as strict schemas list them all
                answer[name] = self.generate(sub, [*path, name], depth + 1)
            except FatalSchemaError:
                raise
            except SchemaError:
                self.placed = placed
        for name in required:
            if name not in answer:
                if extra is False:
                    raise SchemaError(f"Cannot produce an answer: required '{name}' is not an allowed property.")
                answer[name] = self.generate(extra, [*path, name], depth + 1)
        return answer

    def _string(self, schema: dict[str, Any], path: list[Any]) -> str:
        valid = self.schemas.valid
        if self.mode == "string" and not self.placed:
            label = self._string_label(path)
            if valid(schema, label):
                self.placed = True
                return label
        fmt = FORMATS.get(schema.get("format", ""))
        length = schema.get("minLength", 0)
        for candidate in ([fmt[1]] if fmt else []) + ["", "x" * length]:
            if valid(schema, candidate):
                return candidate
        raise SchemaError("Cannot produce a string that satisfies the schema (pattern/format/length).")

    def _number(self, schema: dict[str, Any], kind: str) -> float:
        candidates: list[float] = [0]
        for key in BOUNDS:
            if key in schema:
                bound = schema[key]
                candidates += [bound, math.floor(bound) + 1, math.ceil(bound) - 1, bound + 1, bound - 1]
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            candidates.append((low + high) / 2)
        step = schema.get("multipleOf")
        if step:
            candidates += [m * step for c in list(candidates) for m in (math.ceil(c / step), math.floor(c / step))]
        for candidate in candidates:
            if kind == "integer":
                if not float(candidate).is_integer():
                    continue
                candidate = int(candidate)
            if self.schemas.valid(dict(schema, type=kind), candidate):
                return candidate
        raise SchemaError("Cannot produce a number that satisfies the schema's bounds.")
