"""What a local model replies: plain text, a json_object, or an instance of a strict json_schema.

`answer` is the entry point. `check_response_schema` refuses what the backend cannot interpret
(a 400, never a 500); `structured_answer` builds an instance with the predicted label in the
first string-enum slot (depth-first) and schema-valid fillers elsewhere, and every answer is
validated against the schema before it leaves.
"""

from __future__ import annotations

import json
import math
import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from fine_tuning.local_openai.learner import Message, SoftmaxModel, system_prompt_candidates, zero_shot_choice

JSON_TYPES = ("string", "number", "integer", "boolean", "null", "array", "object")
MAX_SCHEMA_DEPTH = 64  # nesting of the schema document, and of the generated instance
MAX_REF_HOPS = 32  # a $ref chain longer than this is a loop
SCHEMA_BUDGET = 200_000  # generation + validation steps per answer: bounds exponential schemas
_SCHEMA_KEYWORDS = ("anyOf", "oneOf", "allOf")
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_COUNTS = ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties")
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_UNSUPPORTED = (
    "prefixItems", "patternProperties", "if", "then", "else", "contains", "dependentRequired",
    "dependentSchemas", "propertyNames", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef",
    "$recursiveRef",
)
_FORMATS: dict[str, tuple[str, str]] = {  # format: (a regex an instance must match, a filler)
    "date-time": (r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
                  "1970-01-01T00:00:00Z"),
    "date": (r"^\d{4}-\d{2}-\d{2}$", "1970-01-01"),
    "time": (r"^\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$", "00:00:00Z"),
    "duration": (r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$", "P0D"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "user@example.com"),
    "hostname": (r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
                 "example.com"),
    "ipv4": (r"^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$", "0.0.0.0"),
    "ipv6": (r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$", "::"),
    "uuid": (r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
             "00000000-0000-0000-0000-000000000000"),
}
_MISSING = object()


class SchemaError(ValueError):
    """A response_format schema the backend cannot interpret or cannot produce an instance of."""


class _Fatal(SchemaError):
    """An error no other anyOf branch can avoid: the budget ran out, or a $ref is broken."""


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema of a json_schema response_format, else None."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_schema(schema: Any, where: str = "schema", depth: int = 0) -> None:
    """Raise SchemaError unless `schema` (and every subschema) is one this backend interprets.

    Structure only: $ref targets are resolved (and so checked) when an answer is generated.
    """
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise SchemaError(f"{where} must be a JSON schema object (or a boolean).")
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaError(f"The schema is nested deeper than {MAX_SCHEMA_DEPTH} levels.")
    for key in _UNSUPPORTED:
        if key in schema:
            raise SchemaError(f"{where}: the keyword '{key}' is not supported.")
    kind = schema.get("type", _MISSING)
    if kind is not _MISSING:
        kinds = kind if isinstance(kind, list) else [kind]
        if not kinds or not all(isinstance(k, str) and k in JSON_TYPES for k in kinds) or len(set(kinds)) < len(kinds):
            raise SchemaError(
                f"{where}.type must be one of {', '.join(JSON_TYPES)} or a non-empty list of distinct ones."
            )
    if "enum" in schema and (not isinstance(schema["enum"], list) or not schema["enum"]):
        raise SchemaError(f"{where}.enum must be a non-empty array.")
    for value in [*schema.get("enum", []), schema.get("const")] if isinstance(schema.get("enum", []), list) else []:
        _check_finite(value, where)
    if "$ref" in schema and not isinstance(schema["$ref"], str):
        raise SchemaError(f"{where}.$ref must be a string.")
    if "required" in schema and (
        not isinstance(schema["required"], list) or not all(isinstance(r, str) for r in schema["required"])
    ):
        raise SchemaError(f"{where}.required must be an array of property names.")
    for key in _COUNTS:
        if key in schema and not _is_count(schema[key]):
            raise SchemaError(f"{where}.{key} must be a non-negative integer.")
    for key in (*_BOUNDS, "multipleOf"):
        if key in schema and not (_is_number(schema[key]) and math.isfinite(schema[key])):
            raise SchemaError(f"{where}.{key} must be a finite number.")
    if "multipleOf" in schema and schema["multipleOf"] <= 0:
        raise SchemaError(f"{where}.multipleOf must be greater than 0.")
    if "uniqueItems" in schema and not isinstance(schema["uniqueItems"], bool):
        raise SchemaError(f"{where}.uniqueItems must be a boolean.")
    if "format" in schema and not isinstance(schema["format"], str):
        raise SchemaError(f"{where}.format must be a string.")
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise SchemaError(f"{where}.pattern must be a string.")
        try:
            re.compile(schema["pattern"])
        except (re.error, OverflowError, RecursionError) as exc:
            raise SchemaError(f"{where}.pattern is not a valid regular expression: {exc}") from None
    for key in _SCHEMA_MAPS:
        if key in schema:
            if not isinstance(schema[key], dict):
                raise SchemaError(f"{where}.{key} must be an object of schemas.")
            for name, sub in schema[key].items():
                check_schema(sub, f"{where}.{key}.{name}", depth + 1)
    for key in _SCHEMA_KEYWORDS:
        if key in schema:
            if not isinstance(schema[key], list) or not schema[key]:
                raise SchemaError(f"{where}.{key} must be a non-empty array of schemas.")
            for index, sub in enumerate(schema[key]):
                check_schema(sub, f"{where}.{key}[{index}]", depth + 1)
    for key in ("items", "additionalProperties", "not"):
        if key in schema:
            if isinstance(schema[key], list):
                raise SchemaError(f"{where}.{key} must be a schema (tuple-style 'items' is not supported).")
            check_schema(schema[key], f"{where}.{key}", depth + 1)


def check_response_schema(schema: Any) -> None:
    """check_schema, and every $ref in the document resolves (without looping)."""
    check_schema(schema)
    if isinstance(schema, dict):
        schemas = _Schemas(schema)
        for node in _ref_nodes(schema):
            schemas.resolve(node)


def _ref_nodes(schema: Any, depth: int = 0) -> list[dict[str, Any]]:
    """The subschemas holding a $ref (in a document check_schema accepted)."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return []
    found = [schema] if "$ref" in schema else []
    children: list[Any] = [schema.get(k) for k in ("items", "additionalProperties", "not")]
    for key in _SCHEMA_MAPS:
        children += list(schema.get(key, {}).values())
    for key in _SCHEMA_KEYWORDS:
        children += schema.get(key, [])
    return found + [node for child in children for node in _ref_nodes(child, depth + 1)]


def _check_finite(value: Any, where: str) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        raise SchemaError(f"{where}: enum and const values must be finite JSON values.") from None


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, objects compare by key, arrays by position."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _has_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return _is_number(value) and math.isfinite(value) and float(value).is_integer()
    if kind == "number":
        return _is_number(value) and math.isfinite(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


class _Schemas:
    """$ref resolution against one root schema, and a step budget shared by every walk."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.steps = 0
        self._targets: dict[str, Any] = {}  # $ref -> checked target: the root never changes

    def tick(self) -> None:
        self.steps += 1
        if self.steps > SCHEMA_BUDGET:
            raise _Fatal("The schema is too large to produce an answer for.")

    def resolve(self, schema: Any) -> Any:
        """The schema with $ref followed (its sibling keywords kept on top of the target)."""
        for _ in range(MAX_REF_HOPS):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            target = self._pointer(schema["$ref"])
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            if isinstance(target, bool):
                if not siblings:
                    return target
                target = {} if target else {"not": {}}
            schema = {**target, **siblings}
        raise _Fatal("The schema's $ref chain loops.")

    def _pointer(self, ref: str) -> Any:
        if ref in self._targets:
            return self._targets[ref]
        if not ref.startswith("#"):
            raise _Fatal(f"Cannot resolve $ref '{ref}': only local references ('#/$defs/...') are supported.")
        node: Any = self.root
        pointer = urllib.parse.unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise _Fatal(f"Cannot resolve $ref '{ref}'.")
        for part in pointer.split("/")[1:] if pointer else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise _Fatal(f"Cannot resolve $ref '{ref}'.")
        if not isinstance(node, (dict, bool)):
            raise _Fatal(f"$ref '{ref}' does not point to a schema.")
        check_schema(node, ref)
        self._targets[ref] = node
        return node

    # ------------------------------------------------------------------------ validation
    def valid(self, schema: Any, value: Any, depth: int = 0) -> bool:
        """Whether `value` is an instance of `schema` (the keywords check_schema accepts)."""
        self.tick()
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaError(f"The schema is nested deeper than {MAX_SCHEMA_DEPTH} levels.")
        schema = self.resolve(schema)
        if isinstance(schema, bool):
            return schema
        deeper = depth + 1
        kind = schema.get("type")
        if kind is not None and not any(_has_type(value, k) for k in (kind if isinstance(kind, list) else [kind])):
            return False
        if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
            return False
        if "const" in schema and not _json_equal(value, schema["const"]):
            return False
        if "anyOf" in schema and not any(self.valid(s, value, deeper) for s in schema["anyOf"]):
            return False
        if "oneOf" in schema and sum(1 for s in schema["oneOf"] if self.valid(s, value, deeper)) != 1:
            return False
        if "allOf" in schema and not all(self.valid(s, value, deeper) for s in schema["allOf"]):
            return False
        if "not" in schema and self.valid(schema["not"], value, deeper):
            return False
        if isinstance(value, str):
            return self._valid_string(schema, value)
        if _is_number(value):
            return self._valid_number(schema, value)
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
                return False
            if schema.get("uniqueItems") and any(
                _json_equal(value[i], value[j]) for i in range(len(value)) for j in range(i)
            ):
                return False
            return all(self.valid(schema.get("items", True), item, deeper) for item in value)
        if isinstance(value, dict):
            if len(value) < schema.get("minProperties", 0) or len(value) > schema.get("maxProperties", len(value)):
                return False
            if any(name not in value for name in schema.get("required", [])):
                return False
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties", True)
            return all(self.valid(properties.get(k, extra), v, deeper) for k, v in value.items())
        return True

    @staticmethod
    def _valid_string(schema: dict[str, Any], value: str) -> bool:
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return False
        fmt = _FORMATS.get(schema.get("format", ""))
        return fmt is None or re.match(fmt[0], value) is not None

    @staticmethod
    def _valid_number(schema: dict[str, Any], value: float) -> bool:
        if not math.isfinite(value):
            return False
        if "minimum" in schema and value < schema["minimum"]:
            return False
        if "maximum" in schema and value > schema["maximum"]:
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            return False
        if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
            return False
        if "multipleOf" in schema:
            quotient = value / schema["multipleOf"]
            if not math.isfinite(quotient) or abs(quotient - round(quotient)) > 1e-9 * max(1.0, abs(quotient)):
                return False
        return True


def _lookup(value: Any, path: Sequence[Any]) -> Any:
    for part in path:
        if isinstance(part, str) and isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(part, int) and isinstance(value, list) and part < len(value):
            value = value[part]
        else:
            return _MISSING
    return value


def _find_key(value: Any, name: str, depth: int = 0) -> Any:
    """The first value under key `name`, depth-first, in a parsed JSON reply."""
    if depth > MAX_SCHEMA_DEPTH:
        return _MISSING
    if isinstance(value, dict):
        if name in value:
            return value[name]
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    else:
        return _MISSING
    for child in children:
        found = _find_key(child, name, depth + 1)
        if found is not _MISSING:
            return found
    return _MISSING


def _string_leaves(value: Any, depth: int = 0) -> list[str]:
    if depth > MAX_SCHEMA_DEPTH:
        return []
    if isinstance(value, str):
        return [value]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [leaf for child in children for leaf in _string_leaves(child, depth + 1)]


class _Generator:
    """Builds one instance of a schema, depth-first, putting the predicted label in its slot.

    mode "enum": the label goes into the first slot with a string enum (mapped into that enum);
    mode "string": into the first free string slot. Other leaves take the fine-tuned model's
    own value at the same place when it is valid there, else a schema-valid filler.
    """

    def __init__(
        self, schemas: _Schemas, mode: str, replies: Sequence[str], parsed: Sequence[Any],
        messages: Sequence[Message],
    ) -> None:
        self.schemas = schemas
        self.mode = mode
        self.replies = replies
        self.parsed = parsed
        self.messages = messages
        self.hint_root = parsed[0] if parsed else _MISSING
        self.placed = False
        self.active: list[str] = ["#"]  # $refs being expanded: a branch back into one recurses

    # ------------------------------------------------------------------------ the label
    def _enum_label(self, path: Sequence[Any], options: list[str]) -> str | None:
        folded = {o.casefold(): o for o in reversed(options)}
        for reply, value in zip(self.replies, self.parsed):
            name = next((p for p in reversed(path) if isinstance(p, str)), None)
            candidates = [_lookup(value, path), _find_key(value, name) if name else _MISSING,
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
        for candidate in (_lookup(value, path), _find_key(value, name) if name else _MISSING,
                          *_string_leaves(value)[:1]):
            if isinstance(candidate, str):
                return candidate
        return reply.strip()

    # ------------------------------------------------------------------------ generation
    def generate(self, schema: Any, path: list[Any], depth: int = 0) -> Any:
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
        hint = _lookup(self.hint_root, path) if self.hint_root is not _MISSING else _MISSING
        if hint is not _MISSING and not isinstance(hint, dict) and valid(schema, hint):
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
            except _Fatal:
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
        if any(k in schema for k in (*_BOUNDS, "multipleOf")):
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
            hint = _lookup(self.hint_root, path) if self.hint_root is not _MISSING else _MISSING
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
            except _Fatal:
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
        fmt = _FORMATS.get(schema.get("format", ""))
        length = schema.get("minLength", 0)
        for candidate in ([fmt[1]] if fmt else []) + ["", "x" * length]:
            if valid(schema, candidate):
                return candidate
        raise SchemaError("Cannot produce a string that satisfies the schema (pattern/format/length).")

    def _number(self, schema: dict[str, Any], kind: str) -> float:
        candidates: list[float] = [0]
        for key in _BOUNDS:
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


def structured_answer(
    schema: dict[str, Any], ranked_replies: Sequence[str], messages: Sequence[Message]
) -> str:
    """Compact JSON that is an instance of `schema`; raises SchemaError when there can be none.

    A fine-tuned model's top reply is kept verbatim when it already is an instance. Otherwise
    the predicted label goes into the first string-enum slot (depth-first), mapped into that
    enum: the first ranked reply with a value in the enum (its JSON property of the slot's
    name, any string in it, or its bare text), else the zero-shot choice; with no string enum,
    into the first string slot. Every other slot gets the model's own value there if valid,
    else a filler (first enum value, const, "", 0, false, null, [], {}).
    """
    check_response_schema(schema)
    schemas = _Schemas(schema)
    parsed = [_parse_json(reply) for reply in ranked_replies]
    if parsed and parsed[0] is not _MISSING and schemas.valid(schema, parsed[0]):
        return _dump(parsed[0])
    result: Any = _MISSING
    for mode in ("enum", "string"):
        generator = _Generator(schemas, mode, ranked_replies, parsed, messages)
        result = generator.generate(schema, [])
        if generator.placed:
            break
    if not schemas.valid(schema, result):
        raise SchemaError("Cannot produce an answer that satisfies the schema.")
    return _dump(result)


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise SchemaError("Cannot produce a finite JSON answer for the schema.") from None


def _parse_json(text: str) -> Any:
    """The JSON value of a reply, or _MISSING when it is not JSON."""
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return _MISSING


def answer(
    messages: Sequence[Message],
    response_format: dict[str, Any] | None,
    model: SoftmaxModel | None,
) -> str:
    """The reply content: a fine-tuned model's learned reply or a base model's zero-shot guess."""
    ranked = model.ranked_replies(messages) if model is not None else []
    schema = schema_of(response_format)
    if schema is not None:
        return structured_answer(schema, ranked, messages)
    json_object = isinstance(response_format, dict) and response_format.get("type") == "json_object"
    if ranked:
        if not json_object:
            return ranked[0]
        parsed = _parse_json(ranked[0])
        return _dump(parsed if isinstance(parsed, dict) else {"answer": ranked[0]})
    choice = zero_shot_choice(messages, system_prompt_candidates(messages))
    if json_object:
        return _dump({"answer": choice})
    return choice or "This is a local stand-in model; it only answers with labels it was given."
