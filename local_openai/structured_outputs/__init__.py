"""Structured outputs: what a local model replies to a `response_format`, split by role.

- `schema_check`: the schema subset the backend interprets (`check_schema`, `SchemaError`);
  anything else is a 400, never a 500.
- `validation`: one schema document: $ref resolution, a step budget shared by every walk, and
  instance validation (`SchemaDocument.valid`); `check_response_schema` checks a whole document.
- `generation`: builds an instance with the predicted label in the first string-enum slot
  (depth-first) and schema-valid fillers elsewhere.
- `replies`: `answer`, the entry point: plain text, a json_object, or a validated instance.
"""

from local_openai.structured_outputs.replies import (
    answer,
    answer_from_ranking,
    schema_of,
    structured_answer,
)
from local_openai.structured_outputs.schema_check import SchemaError, check_schema
from local_openai.structured_outputs.validation import check_response_schema

__all__ = [
    "SchemaError", "answer", "answer_from_ranking", "check_response_schema", "check_schema", "schema_of",
    "structured_answer",
]
