"""Tokens per method, as billed: tool definitions count, DPO bills both outputs, images at their price."""

from __future__ import annotations

import json

from fine_tuning.core.catalog import method_problem, supported_methods, takes_images
from fine_tuning.core.example_rules import ImagePart
from fine_tuning.core.example_tokens import example_tokens, image_tokens
from fine_tuning.core.tokens import count_example_tokens, token_counter

from tests.adversarial.training_file_cases import TOOLS, dpo_example, reinforcement_example
from tests.support.chat_files import good_example


def test_tool_definitions_are_counted_on_top_of_the_messages() -> None:
    counter = token_counter()
    example = good_example(1)
    bare = example_tokens(example, "supervised", counter).tokens
    assert bare == count_example_tokens(example["messages"], counter)
    tools = example_tokens({**example, "tools": TOOLS}, "supervised", counter).tokens
    assert tools - bare == counter.count(json.dumps(TOOLS, separators=(",", ":")))


def test_dpo_bills_the_prompt_and_both_outputs() -> None:
    counter = token_counter()
    example = dpo_example(1)
    prompt = count_example_tokens(example["input"]["messages"], counter)
    outputs = sum(counter.count(example[key][0]["content"]) + counter.count("assistant") + 3
                  for key in ("preferred_output", "non_preferred_output"))
    assert example_tokens(example, "dpo", counter).tokens == prompt + outputs


def test_reinforcement_counts_the_prompt() -> None:
    counter = token_counter()
    example = reinforcement_example(1)
    assert example_tokens(example, "reinforcement", counter).tokens == count_example_tokens(example["messages"], counter)


def test_image_tokens_follow_the_tile_rule() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (2048).to_bytes(4, "big") + (4096).to_bytes(4, "big")
    assert image_tokens(ImagePart("low", png)) == (85, True)
    assert image_tokens(ImagePart("high", png)) == (85 + 170 * 6, True)  # 2048x4096 -> 768x1536: 2 x 3 tiles
    assert image_tokens(ImagePart("auto", None)) == (85 + 170 * 4, False)  # a URL: assumed 1024x1024


def test_the_catalog_says_which_model_takes_which_method() -> None:
    assert supported_methods("gpt-4o-mini") == ("supervised", "dpo")
    assert supported_methods("ft:gpt-4.1-2025-04-14:org::abc") == ("supervised", "dpo")
    assert supported_methods("o4-mini") == ("reinforcement",)
    assert method_problem("gpt-4.1-nano-2025-04-14", "dpo") is None
    assert "o4-mini-2025-04-16" in method_problem("gpt-4o-mini-2024-07-18", "reinforcement")
    assert "takes supervised" in method_problem("gpt-3.5-turbo-0125", "dpo")
    assert takes_images("gpt-4o-2024-08-06") and not takes_images("gpt-4o-mini")
