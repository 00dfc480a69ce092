"""The OPENAI_API_KEY never appears anywhere a run leaves a trace, even when things go wrong.

The whole job runs in-process with a canary key in the environment against (a) a server that
echoes the bearer token back in its 401 error, the worst a provider could do, (b) a nonsense
setting, and (c) the local backend served over HTTP with that key, to the end. Then the event
log (every record, serialized), the run record, every file of the instance, the workdir (DuckDB,
JSONL files, downloads) and the served store, and everything printed are searched for the key.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_shared.serdes import serialize_value

from fine_tuning.core.settings import workdir
from fine_tuning.defs.resources import build_resources
from local_openai.server import running_server

from tests.support.goodreads_task import project_job

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]
KEY = "sk-canary-3f9a7c1e5b2d4f60"
FAST = {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.2}}}}


class _EchoingHandler(http.server.BaseHTTPRequestHandler):
    """Refuses every request with a 401 whose message repeats the bearer token it was sent."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {token}.",
                                     "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST = do_DELETE = _refuse  # noqa: N815 (http.server naming)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echoing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def run_job(instance: dg.DagsterInstance, run_config: dict) -> dg.ExecuteInProcessResult:
    """fine_tuning_job with the resources the environment selects (OpenAIResource with the key from the env)."""
    return project_job(build_resources()).execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=False
    )


def assert_key_nowhere(instance: dg.DagsterInstance, run_id: str, roots: list[Path], printed: str) -> None:
    needle = KEY.encode()
    for record in instance.all_logs(run_id):
        assert KEY not in serialize_value(record), f"key in event {record.dagster_event_type}"
    assert KEY not in serialize_value(instance.get_run_by_id(run_id))
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"key stored in {path}"
    assert KEY not in printed


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "instance").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "instance")) as real:
        yield real


def test_a_provider_that_echoes_the_key_cannot_make_the_run_store_it(
    instance: dg.DagsterInstance, echoing_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", echoing_server)
    result = run_job(instance, FAST)
    assert not result.success
    failed = {event.step_key for event in result.get_step_failure_events()}
    assert failed & {"upload_training_file", "upload_validation_file"}
    out = capfd.readouterr()
    assert "invalid_api_key" in out.out + out.err  # the refusal is reported ...
    assert_key_nowhere(instance, result.run_id, [tmp_path / "instance", workdir()], out.out + out.err)  # ... the key is not


def test_a_nonsense_setting_with_a_key_set_stores_no_key(
    instance: dg.DagsterInstance, echoing_server: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", echoing_server)
    result = run_job(instance, {"resources": {"tuning": {"config": {"suffix": "x" * 93}}}})
    assert not result.success
    out = capfd.readouterr()
    assert_key_nowhere(instance, result.run_id, [tmp_path / "instance", workdir()], out.out + out.err)


def test_a_whole_run_against_a_keyed_server_stores_no_key(
    instance: dg.DagsterInstance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "served"
    with running_server(store, api_key=KEY, job_seconds=0.5) as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        result = run_job(instance, FAST)
    assert result.success
    out = capfd.readouterr()
    assert_key_nowhere(instance, result.run_id, [tmp_path / "instance", workdir(), store], out.out + out.err)
