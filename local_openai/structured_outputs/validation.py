"""Instance validation against one schema document: $ref resolution, a step budget, `valid`."""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import Any

from local_openai.structured_outputs.schema_check import (
    COMBINATORS,
    FORMATS,
    MAX_REF_HOPS,
    MAX_SCHEMA_DEPTH,
    SCHEMA_BUDGET,
    SCHEMA_MAPS,
    FatalSchemaError,
    SchemaError,
    check_schema,
    is_number,
)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, objects compare by key, arrays by position."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def has_type(value: Any, kind: str) -> bool:
    """Whether a value is of one JSON schema type (an integral float is an integer)."""
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return is_number(value) and math.isfinite(value) and float(value).is_integer()
    if kind == "number":
        return is_number(value) and math.isfinite(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


class SchemaDocument:
    """$ref resolution against one root schema, and a step budget shared by every walk."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.steps = 0
        self._targets: dict[str, Any] = {}  # $ref -> checked target: the root never changes

    def tick(self) -> None:
        """Count one step; past SCHEMA_BUDGET the schema is too large to answer (a 400)."""
        self.steps += 1
        if self.steps > SCHEMA_BUDGET:
            raise FatalSchemaError("The schema is too large to produce an answer for.")

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
        raise FatalSchemaError("The schema's $ref chain loops.")

    def _pointer(self, ref: str) -> Any:
        if ref in self._targets:
            return self._targets[ref]
        if not ref.startswith("#"):
            raise FatalSchemaError(f"Cannot resolve $ref '{ref}': only local references ('#/$defs/...') are supported.")
        node: Any = self.root
        pointer = urllib.parse.unquote(ref[1:])
        if pointer and not pointer.startswith("/"):
            raise FatalSchemaError(f"Cannot resolve $ref '{ref}'.")
        for part in pointer.split("/")[1:] if pointer else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                raise FatalSchemaError(f"Cannot resolve $ref '{ref}'.")
        if not isinstance(node, (dict, bool)):
            raise FatalSchemaError(f"$ref '{ref}' does not point to a schema.")
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
        if kind is not None and not any(has_type(value, k) for k in (kind if isinstance(kind, list) else [kind])):
            return False
        if "enum" in schema and not any(json_equal(value, e) for e in schema["enum"]):
            return False
        if "const" in schema and not json_equal(value, schema["const"]):
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
        if is_number(value):
            return self._valid_number(schema, value)
        if isinstance(value, list):
            if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
                return False
            if schema.get("uniqueItems") and any(
                json_equal(value[i], value[j]) for i in range(len(value)) for j in range(i)
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
        fmt = FORMATS.get(schema.get("format", ""))
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


def check_response_schema(schema: Any) -> None:
    """check_schema, and every $ref in the document resolves (without looping)."""
    check_schema(schema)
    if isinstance(schema, dict):
        schemas = SchemaDocument(schema)
        for node in _ref_nodes(schema):
            schemas.resolve(node)


def _ref_nodes(schema: Any, depth: int = 0) -> list[dict[str, Any]]:
    """The subschemas holding a $ref (in a document check_schema accepted)."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return []
    found = [schema] if "$ref" in schema else []
    children: list[Any] = [schema.get(k) for k in ("items", "additionalProperties", "not")]
    for key in SCHEMA_MAPS:
        children += list(schema.get(key, {}).values())
    for key in COMBINATORS:
        children += schema.get(key, [])
    return found + [node for child in children for node in _ref_nodes(child, depth + 1)]
