"""tokens: exact o200k_base counts when cached, a labelled estimate otherwise, and never the network."""

import socket
from pathlib import Path
from typing import Any

import pytest
import tiktoken

from fine_tuning.core.chat_files import validate_chat_file
from fine_tuning.core.checksums import file_sha256
from fine_tuning.core.tokens import O200K_BASE_SHA256, count_example_tokens, tiktoken_cache_file, token_counter

from tests.support.chat_files import ASSISTANT, SYSTEM, USER, good_example, write_jsonl


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any attempt to open a connection is recorded and refused."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_exact_counts_follow_the_cookbook_formula(exact_tokens: None) -> None:
    counter = token_counter()
    assert counter.exact and counter.method == "exact: tiktoken o200k_base"
    encoding = tiktoken.get_encoding("o200k_base")
    messages = [SYSTEM, {**USER, "name": "reader"}, {**ASSISTANT, "weight": 1}]
    expected = 3 + sum(
        3 + sum(len(encoding.encode(v)) for k, v in m.items() if k != "weight") + (1 if "name" in m else 0)
        for m in messages
    )
    assert count_example_tokens(messages, counter) == expected
    assert counter.count("<|endoftext|>") > 1  # special tokens are plain text in a description


def test_without_the_cached_encoding_tokens_are_estimated_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    counter = token_counter()
    assert not counter.exact and counter.method.startswith("estimate:")
    assert counter.count("abcdef") == 2  # 6 bytes / 3
    report = validate_chat_file(write_jsonl(tmp_path / "d.jsonl", [good_example(n) for n in range(10)]))
    assert report.ok and not report.tokens_exact and "ESTIMATED" in report.text()
    assert no_network == []


def test_a_corrupt_cached_encoding_is_not_replaced_from_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    corrupt = tiktoken_cache_file()
    assert corrupt is not None and corrupt.parent == cache
    corrupt.write_bytes(b"not an encoding")
    assert not token_counter().exact
    assert corrupt.read_bytes() == b"not an encoding"  # tiktoken would have deleted and re-downloaded it
    assert no_network == []


def test_the_cached_file_is_o200k_base(exact_tokens: None) -> None:
    path = tiktoken_cache_file()
    assert path is not None and path.name == "fb374d419588a4632f3f557e76b4b70aebbca790"
    assert file_sha256(path) == O200K_BASE_SHA256
