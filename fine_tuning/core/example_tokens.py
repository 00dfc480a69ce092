"""Tokens of one training example as the provider bills it, per fine-tuning method.

- supervised: every message (the cookbook's count: 3 per message, 1 per name, 3 to prime),
  text parts as text, tool calls as their JSON, image parts at their vision price, plus the
  example's tool (or legacy function) definitions, which the model reads too;
- DPO: the prompt (`input`) and *both* outputs, the preferred and the non-preferred one: the
  preference loss reads each;
- reinforcement: the prompt; the job itself is billed by training time (catalog), so these
  tokens size the examples against the model's limit and are reported, not priced.

The plain chat example (string contents, no tools) goes straight to `tokens.measure_example_tokens`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from typing import Any

from fine_tuning.core.example_rules import DPO, REINFORCEMENT, ImagePart, content_text, image_parts
from fine_tuning.core.tokens import TokenCount, TokenCounter, measure_example_tokens

# OpenAI's image pricing (vision guide, as of 2025-06) for the GPT-4o family: a low-detail
# image costs 85 tokens; otherwise it is scaled to fit 2048x2048, then its short side to 768,
# and costs 85 + 170 per 512-pixel tile.
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
# Dimensions assumed when they cannot be read from the data (an http URL, WEBP): a 1024x1024 image.
ASSUMED_IMAGE_SIZE = (1024, 1024)


def image_tokens(image: ImagePart) -> tuple[int, bool]:
    """(tokens, exact) of one image part."""
    if image.detail == "low":
        return IMAGE_BASE_TOKENS, True
    size = image_size(image.data) if image.data else None
    width, height = size or ASSUMED_IMAGE_SIZE
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height)) if min(width, height) > 0 else 1.0
    width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles, size is not None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG or JPEG image read from its header, or None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if data[:2] == b"\xff\xd8":
        index = 2
        while index + 9 < len(data):
            if data[index] != 0xFF:
                return None
            marker, length = data[index + 1], struct.unpack(">H", data[index + 2 : index + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):  # start of frame: height, then width
                height, width = struct.unpack(">HH", data[index + 5 : index + 9])
                return width, height
            index += 2 + length
    return None


def _countable(message: Any) -> Any:
    """The message as the tokenizer sees it: text parts as one text, no weight, calls as JSON."""
    if not isinstance(message, dict):
        return message
    countable = {key: value for key, value in message.items() if key not in ("weight", "content")}
    content = message.get("content")
    if content is not None:
        countable["content"] = content_text(content)
    return countable


def messages_tokens(messages: Sequence[Any], counter: TokenCounter, tools: Any = None) -> TokenCount:
    """Tokens of a conversation and of the tool definitions it is given."""
    plain = all(type(m) is dict and type(m.get("content")) is str and "weight" not in m for m in messages)
    counted = measure_example_tokens(messages if plain else [_countable(m) for m in messages], counter)
    total, exact = counted.tokens, counted.exact
    if not plain:
        for message in messages:
            if isinstance(message, dict):
                for image in image_parts(message.get("content")):
                    tokens, known = image_tokens(image)
                    total, exact = total + tokens, exact and known
    if tools:
        measured = counter.measure(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
        total, exact = total + measured.tokens, exact and measured.exact
    return TokenCount(total, exact)


def _definitions(container: dict[str, Any]) -> Any:
    return container.get("tools") or container.get("functions") or None


def example_tokens(example: dict[str, Any], method: str, counter: TokenCounter) -> TokenCount:
    """Billed tokens of one well-formed example for `method`."""
    if method == DPO:
        prompt = example["input"]
        counted = messages_tokens(prompt["messages"], counter, _definitions(prompt))
        total, exact = counted.tokens, counted.exact
        for key in ("preferred_output", "non_preferred_output"):
            # Each output is counted as one more message of the conversation (its 3-token overhead included).
            output = measure_example_tokens([_countable(example[key][0])], counter)
            total, exact = total + output.tokens - 3, exact and output.exact
        return TokenCount(total, exact)
    if method == REINFORCEMENT:
        return messages_tokens(example["messages"], counter, _definitions(example))
    return messages_tokens(example["messages"], counter, _definitions(example))
