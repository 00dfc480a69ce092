"""Reading a request: multipart uploads, JSON bodies, query parameters (a 400 for anything malformed)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from local_openai.exceptions import (
    InvalidContentType,
    InvalidJson,
    InvalidMultipart,
    InvalidValue,
    MissingRequiredParameter,
)
from local_openai.http.messages import LocalRequest
from local_openai.json_values import loads_finite

_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*.\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def header_params(value: str) -> dict[str, str]:
    """Parameters of a header like `form-data; name="file"; filename="a.jsonl"` (RFC 7578/5987)."""
    params: dict[str, str] = {}
    for name, raw in _PARAM_RE.findall(";" + value.split(";", 1)[1] if ";" in value else ""):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        name = name.lower()
        if name.endswith("*"):
            charset, _, rest = raw.partition("'")
            _, _, encoded = rest.partition("'")
            try:
                params[name[:-1]] = urllib.parse.unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
        elif name not in params:
            params[name] = raw
    return params


@dataclass
class FormPart:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    data: bytes


def parse_multipart(body: bytes, content_type: str) -> dict[str, FormPart]:
    """Parts of a multipart/form-data body by field name; 400 on anything malformed."""
    boundary = header_params(content_type).get("boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidMultipart("missing boundary")
    parts: dict[str, FormPart] = {}
    for chunk in _multipart_chunks(b"\r\n" + body, b"\r\n--" + boundary.encode("latin-1")):
        head, separator, data = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise InvalidMultipart("part without headers")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = header_params(disposition)
        if not disposition.lower().startswith("form-data") or "name" not in params:
            raise InvalidMultipart("part without a name")
        parts[params["name"]] = FormPart(params["name"], params.get("filename"), data)
    return parts


def _multipart_chunks(data: bytes, delimiter: bytes) -> list[bytes]:
    """The bodies between delimiter lines (RFC 2046: a delimiter is followed by CRLF or '--').

    A delimiter-like string inside content (not followed by CRLF / '--') is content.
    """
    chunks: list[bytes] = []
    start: int | None = None
    position = data.find(delimiter)
    while position != -1:
        after = position + len(delimiter)
        if data[after : after + 2] == b"--":
            if start is None:
                break
            chunks.append(data[start:position])
            return chunks
        line_end = after
        while data[line_end : line_end + 1] in (b" ", b"\t"):
            line_end += 1
        if data[line_end : line_end + 2] == b"\r\n":
            if start is not None:
                chunks.append(data[start:position])
            start = line_end + 2
        position = data.find(delimiter, after)
    raise InvalidMultipart("body is not terminated")


def parse_json_body(request: LocalRequest) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 like OpenAI's (non-finite numbers included)."""
    try:
        payload = loads_finite(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise InvalidJson(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)"
        ) from exc
    if not isinstance(payload, dict):
        raise InvalidJson("The request body must be a JSON object.")
    return payload


def query_value(request: LocalRequest, name: str) -> str | None:
    """The last value of a query parameter."""
    value = None
    for key, item in request.query:
        if key == name:
            value = item
    return value


def query_int(request: LocalRequest, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]."""
    raw = query_value(request, name)
    if raw is None or raw == "":
        return default
    try:
        if not (raw.isascii() and raw.lstrip("-").isdigit()):  # int() also takes "1_000", " 7 ", "٣"
            raise ValueError(raw)
        value = int(raw)
    except ValueError as exc:
        raise InvalidValue(f"Invalid '{name}': expected an integer, got '{raw[:40]}'.", name) from exc
    if not low <= value <= high:
        raise InvalidValue(f"Invalid '{name}': must be between {low} and {high}.", name)
    return value


def metadata_filter(request: LocalRequest) -> tuple[dict[str, str], bool]:
    """`metadata[key]=value` query parameters (the openai client's encoding), and `metadata=null`."""
    filters: dict[str, str] = {}
    for key, value in request.query:
        match = re.fullmatch(r"metadata\[(.*)\]", key)
        if match:
            filters[match.group(1)] = value
    return filters, query_value(request, "metadata") == "null"


def query_choice(request: LocalRequest, name: str, choices: tuple[str, ...], default: str) -> str:
    """A query parameter that must be one of `choices`."""
    value = query_value(request, name) or default
    if value not in choices:
        raise InvalidValue(f"Invalid '{name}': must be {' or '.join(repr(c) for c in choices)}.", name)
    return value


@dataclass
class Upload:
    """A file upload: the file's name and bytes and the purpose it is for."""

    filename: str
    purpose: str
    data: bytes
    expires_after: dict[str, str] | None = None


def parse_upload(request: LocalRequest) -> Upload:
    """The `file`, `purpose` and `expires_after[anchor|seconds]` fields of a multipart/form-data upload."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise InvalidContentType("Uploads must be multipart/form-data.")
    parts = parse_multipart(request.body, content_type)
    purpose_part = parts.get("purpose")
    if purpose_part is None:
        raise MissingRequiredParameter("purpose")
    file_part = parts.get("file")
    if file_part is None or file_part.filename is None:
        raise MissingRequiredParameter("file")
    purpose = purpose_part.data.decode("utf-8", "replace").strip()
    # The client flattens the expires_after object into `expires_after[anchor]` / `[seconds]` fields.
    expires_after = {
        match.group(1): part.data.decode("utf-8", "replace").strip()
        for name, part in parts.items()
        if (match := re.fullmatch(r"expires_after\[(\w+)\]", name))
    }
    return Upload(file_part.filename, purpose, file_part.data, expires_after or None)
