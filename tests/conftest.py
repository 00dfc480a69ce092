"""Suite-wide safety: no test ever reaches the real OpenAI API or the repository's data/ folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

SHARED_TIKTOKEN = Path(__file__).resolve().parents[2] / "shared" / "tiktoken"
if SHARED_TIKTOKEN.is_dir():
    # o200k_base ships beside the checkout; tiktoken must never download it at test time.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED_TIKTOKEN))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _session_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away DAGSTER_HOME with the project's instance config, for CLI calls and instances."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own workdir and talks only to the local backend."""
    workdir = tmp_path_factory.mktemp("workdir")
    monkeypatch.setenv("FINE_TUNING_WORKDIR", str(workdir))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GOODREADS_BOOKS_URL", raising=False)
    monkeypatch.delenv("GOODREADS_AUTHORS_URL", raising=False)
    return workdir
