"""`make screenshots`: pictures of the real Dagster UI for the README, taken with headless Chromium.

Starts `dagster dev` on a throw-away DAGSTER_HOME with the project's dagster.yaml, offline
(the local backend, the shipped sample), runs fine_tuning_job a few times with more and more
training examples (so the accuracy check has a history worth plotting), then saves PNGs of:
the asset graph, fine_tuned_model's latest materialization, the accuracy check's plots, its
per-label metrics and confusion matrices, and production_model when that asset exists. Needs
Debian's `chromium` package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser  # noqa: E402  (a sibling module of this script)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION, REPOSITORY, JOB = "fine_tuning", "__repository__", "fine_tuning_job"
# One run per cap on training examples (None: all of them): the check's plot then shows the
# fine-tuned model getting better with more data.
TRAINING_EXAMPLE_CAPS = (50, 200, 600, None)
STARTUP_LIMIT_SECONDS = 240
RUNS_LIMIT_SECONDS = 900
WIDTH, HEIGHT, PLOTS_HEIGHT = 1600, 1000, 1400
# Variables that would take the demo off the shipped sample or onto a paid API.
NOT_PASSED_ON = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "GOODREADS_BOOKS_URL",
                 "GOODREADS_AUTHORS_URL", "FINE_TUNING_DUCKDB_DATABASE", "MOTHERDUCK_TOKEN")

LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"
LOCATION_STATUS = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
ASSET_KEYS = "{ assetNodes { assetKey { path } } }"
# Opens the dialog of one markdown metadata entry (the check's latest execution) by its key.
SHOW_MARKDOWN = """((key) => {
  const row = [...document.querySelectorAll('tr')].find(tr => tr.innerText.trim().startsWith(key));
  const link = row && [...row.querySelectorAll('*')]
    .find(el => el.childElementCount === 0 && el.textContent.includes('Show Markdown'));
  if (!link) return false;
  link.click();
  return true;
})(%s)"""
# The accuracy check's tables a person reads first, each saved from its dialog.
CHECK_TABLES = {"per_label_metrics": "accuracy-check-per-label.png", "confusion_matrix": "accuracy-check-confusion.png"}
# Scrolls the check's "Plots" section to the top of the page.
SCROLL_TO_PLOTS = """(() => {
  const heading = [...document.querySelectorAll('*')]
    .find(el => el.childElementCount === 0 && el.textContent.trim() === 'Plots');
  if (!heading) return false;
  heading.scrollIntoView({block: 'start'});
  return true;
})()"""


@dataclass(frozen=True)
class DagsterDev:
    """A running `dagster dev` and its GraphQL endpoint."""

    port: int

    @property
    def url(self) -> str:
        """The UI's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """One GraphQL request; raises on a GraphQL error."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        if answer.get("errors"):
            raise RuntimeError(f"GraphQL error: {answer['errors']}")
        return answer["data"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_loaded(dev: DagsterDev, process: subprocess.Popen[bytes]) -> None:
    """Until the code location has loaded (or the server died)."""
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while True:
        try:
            entries = dev.graphql(LOCATION_STATUS)["workspaceOrError"]["locationEntries"]
            if any(entry["name"] == LOCATION and entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except OSError:
            pass  # not listening yet
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("dagster dev did not load the code location")
        time.sleep(1)


@contextmanager
def dagster_dev(root: Path) -> Iterator[DagsterDev]:
    """`dagster dev` on a free port with its own DAGSTER_HOME and workdir; always stopped."""
    home, workdir = root / "dagster_home", root / "workdir"
    home.mkdir()
    workdir.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {name: value for name, value in os.environ.items() if name not in NOT_PASSED_ON}
    env.update(DAGSTER_HOME=str(home), FINE_TUNING_WORKDIR=str(workdir), LOCAL_OPENAI_JOB_SECONDS="2")
    dev = DagsterDev(port=_free_port())
    with open(root / "dagster_dev.log", "wb") as log:
        process = subprocess.Popen([str(BIN / "dagster"), "dev", "--host", "127.0.0.1", "--port", str(dev.port)],
                                   cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_loaded(dev, process)
        yield dev
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C first (dagster dev then stops its webserver, daemon and code server cleanly), then
    SIGTERM (a background shell leaves SIGINT ignored in its children), then SIGKILL; whatever
    is left in the group goes too."""
    for stop_signal, grace_seconds in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if process.poll() is not None:
            break
        os.killpg(process.pid, stop_signal)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_config(max_train_examples: int | None) -> dict[str, Any]:
    """Fast polling against the local backend, and a cap on training examples."""
    return {"ops": {"fine_tuned_model": {"config": {"poll_interval_seconds": 0.3}},
                    "training_files": {"config": {"max_train_examples": max_train_examples}}}}


def run_the_job_a_few_times(dev: DagsterDev) -> None:
    """Queue one run per cap (the run queue runs them one after the other) and wait for all."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB}
    for cap in TRAINING_EXAMPLE_CAPS:
        result = dev.graphql(LAUNCH, {"params": {"selector": selector, "runConfigData": run_config(cap)}})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {result}")
    deadline = time.monotonic() + RUNS_LIMIT_SECONDS
    while True:
        statuses = [run["status"] for run in dev.graphql(RUNS)["runsOrError"]["results"]]
        print(f"  runs: {', '.join(statuses)}", flush=True)
        if all(status in ("SUCCESS", "FAILURE", "CANCELED") for status in statuses):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the runs did not finish in time")
        time.sleep(5)
    if any(status != "SUCCESS" for status in statuses):
        raise RuntimeError(f"not every run succeeded: {statuses}")


def asset_exists(dev: DagsterDev, name: str) -> bool:
    """Whether the code location defines an asset with this key."""
    return any(node["assetKey"]["path"] == [name] for node in dev.graphql(ASSET_KEYS)["assetNodes"])


def take_screenshots(dev: DagsterDev, out: Path, profile: Path) -> list[Path]:
    """Every picture, each once its page shows the text that proves the data has arrived."""
    has_production_model = asset_exists(dev, "production_model")
    lineage_of = "production_model" if has_production_model else "fine_tuned_model"
    saved: list[Path] = []
    browser = Browser(profile, WIDTH, HEIGHT)
    try:
        browser.open(f"{dev.url}/assets/{lineage_of}?view=lineage&lineageScope=upstream&lineageDepth=20",
                     wait_for_text="training_file", settle=4.0)
        saved.append(_save(browser, out / "asset-graph.png"))
        browser.open(f"{dev.url}/assets/fine_tuned_model?view=events", wait_for_text="model_name")
        saved.append(_save(browser, out / "fine-tuned-model.png"))
        if has_production_model:
            browser.open(f"{dev.url}/assets/production_model?view=events", wait_for_text="model_name")
            saved.append(_save(browser, out / "production-model.png"))
        else:
            print("  production_model is not defined yet: no production-model.png")
        browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=PLOTS_HEIGHT, deviceScaleFactor=1, mobile=False)
        browser.open(f"{dev.url}/assets/fine_tuned_model?view=checks&checkDetail=fine_tuned_model_accuracy",
                     wait_for_text="fine_tuned_accuracy")
        if not browser.evaluate(SCROLL_TO_PLOTS):
            raise RuntimeError("the accuracy check's page has no Plots section")
        time.sleep(2.0)  # the charts draw after scrolling into view
        saved.append(_save(browser, out / "accuracy-check-history.png"))
        for key, name in CHECK_TABLES.items():
            browser.open(f"{dev.url}/assets/fine_tuned_model?view=checks&checkDetail=fine_tuned_model_accuracy",
                         wait_for_text=key)
            if not browser.evaluate(SHOW_MARKDOWN % json.dumps(key)):
                raise RuntimeError(f"the accuracy check's latest execution has no {key} table")
            time.sleep(1.0)  # the dialog fades in
            saved.append(_save(browser, out / name))
    finally:
        browser.close()
    return saved


def _save(browser: Browser, path: Path) -> Path:
    browser.screenshot(path)
    print(f"  saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Start the UI, make some history, take the pictures, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args(argv)
    if not shutil.which("chromium"):
        print("chromium not found: on Debian, apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fine_tuning_screenshots_") as tmp:
        root = Path(tmp)
        print("starting dagster dev (offline, shipped sample)", flush=True)
        with dagster_dev(root) as dev:
            print(f"running {JOB} {len(TRAINING_EXAMPLE_CAPS)} times", flush=True)
            run_the_job_a_few_times(dev)
            print("taking screenshots", flush=True)
            take_screenshots(dev, args.out.resolve(), root / "chromium_profile")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
