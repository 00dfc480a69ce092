"""`make screenshots`: pictures of the real Dagster UI for the README, taken by following the README.

Starts `dagster dev` on a throw-away DAGSTER_HOME with the project's dagster.yaml, offline
(the local backend, the shipped sample), runs fine_tuning_job a few times with more and more
training examples (so the accuracy check has a history worth plotting), then follows every
direction the README's "In the Dagster UI" section gives in bold (`**Catalog → fine_tuned_model
→ Events**`), clicking each named item in headless Chromium as a reader would, and saves the
pictures at the end of the directions that have one. A direction the UI no longer has, or a
picture no direction leads to, fails the command: the README's directions cannot go stale
unnoticed. Needs Debian's `chromium` package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
TRAINING_EXAMPLE_CAPS = (50, 200, 600)  # then all of them, by the README's Materialize all
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
    env.update(DAGSTER_HOME=str(home), FINE_TUNING_WORKDIR=str(workdir), LOCAL_OPENAI_JOB_SECONDS="2",
               FINE_TUNING_PROVIDER="local")
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


def queue_the_job_a_few_times(dev: DagsterDev) -> None:
    """Queue one run per cap (the run queue runs them one after the other)."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": JOB}
    for cap in TRAINING_EXAMPLE_CAPS:
        result = dev.graphql(LAUNCH, {"params": {"selector": selector, "runConfigData": run_config(cap)}})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(f"launch failed: {result}")


def wait_for_the_runs(dev: DagsterDev) -> None:
    """Until every run has succeeded; the first failed run stops the command (see the UI's Runs)."""
    deadline, shown = time.monotonic() + RUNS_LIMIT_SECONDS, ""
    while True:
        runs = dev.graphql(RUNS)["runsOrError"]["results"]
        statuses = ", ".join(run["status"] for run in runs)
        if statuses != shown:
            print(f"  runs: {statuses}", flush=True)
            shown = statuses
        failed = [run["runId"] for run in runs if run["status"] in ("FAILURE", "CANCELED")]
        if failed:
            raise RuntimeError(f"run {failed[0]} did not succeed")
        if all(run["status"] == "SUCCESS" for run in runs):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the runs did not finish in time")
        time.sleep(5)


UI_SECTION = "## In the Dagster UI"
DIRECTION = re.compile(r"\*\*([^*]+→[^*]+)\*\*")
ARROW_BESIDE = "▾ beside "


@dataclass(frozen=True)
class Destination:
    """What the end of a direction must show, and the picture taken there (None: only checked)."""

    shows: str
    picture: str | None = None
    settle: float = 2.0
    plots: bool = False  # scroll to the check's Plots section first
    close_with_escape: bool = False  # a dialog
    refit: bool = False  # forget the zoom the graph kept from earlier steps, so it fits the view


# Every direction the README may give, with its proof of arrival. A README direction missing
# here, or a picture here that no README direction leads to, fails the command.
DESTINATIONS: dict[tuple[str, ...], Destination] = {
    ("Lineage", "Materialize all"): Destination(shows="Materialize all"),
    ("Lineage", "▾ beside Materialize all", "Open launchpad"): Destination(
        shows="Scaffold all default config", close_with_escape=True),
    ("Catalog", "production_model", "Lineage", "Upstream", "All"): Destination(
        shows="training_file", picture="asset-graph.png", settle=4.0, refit=True),
    ("Catalog", "fine_tuned_model", "Events"): Destination(shows="model_name", picture="fine-tuned-model.png"),
    ("Catalog", "fine_tuned_model", "Checks", "fine_tuned_model_accuracy"): Destination(
        shows="fine_tuned_accuracy", picture="accuracy-check-history.png", plots=True),
    ("Catalog", "fine_tuned_model", "Checks", "fine_tuned_model_accuracy", "Show Markdown of per_label_metrics"):
        Destination(shows="macro-F1", picture="accuracy-check-per-label.png", close_with_escape=True),
    ("Catalog", "fine_tuned_model", "Checks", "fine_tuned_model_accuracy", "Show Markdown of confusion_matrix"):
        Destination(shows="true \\ answer", picture="accuracy-check-confusion.png", close_with_escape=True),
    ("Catalog", "production_model", "Events"): Destination(shows="model_name", picture="production-model.png"),
    ("Automation", "retune_schedule"): Destination(shows="retune_schedule"),
    ("Automation", "retune_on_new_data"): Destination(shows="retune_on_new_data"),
}
# The centre of the visible element a direction's step names: a tab first, else the smallest
# element whose whole text is the name (a count in brackets allowed: "Materialize all (10)"),
# or the drop-down arrow beside a button.
FIND = """((name, besidePrefix) => {
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  let found;
  if (name.startsWith(besidePrefix)) {
    const label = name.slice(besidePrefix.length);
    const main = [...document.querySelectorAll('button')].find(e => visible(e) && e.innerText.trim().startsWith(label));
    const group = main && main.closest('span') && main.closest('span').parentElement;
    found = group ? [...group.querySelectorAll('button')].filter(b => b.querySelector('[aria-label=arrow_drop_down]')) : [];
  } else {
    const named = e => { const t = (e.innerText || '').trim(); return t === name || t.replace(/ \\(\\d+\\)$/, '') === name; };
    found = [...document.querySelectorAll('a,button,[role=tab],[role=menuitem],span,div,td')]
      .filter(e => visible(e) && named(e));
    const rank = e => (e.closest('[role=tab]') ? 0 : 1000000) + e.querySelectorAll('*').length;
    found.sort((a, b) => rank(a) - rank(b));
  }
  if (!found.length) return null;
  const r = found[0].getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})"""


# "Show Markdown of <key>": the [Show Markdown] link in the metadata row of <key> (a table in a dialog).
SHOW_MARKDOWN_OF = "Show Markdown of "
FIND_MARKDOWN = """((key) => {
  const row = [...document.querySelectorAll('tr')].find(tr => tr.innerText.trim().startsWith(key));
  const link = row && [...row.querySelectorAll('*')]
    .find(el => el.childElementCount === 0 && el.textContent.includes('Show Markdown'));
  if (!link) return null;
  link.scrollIntoView({block: 'center'});
  const r = link.getBoundingClientRect();
  return [r.x + r.width / 2, r.y + r.height / 2];
})"""


def readme_directions(readme: str) -> list[tuple[str, ...]]:
    """The bold `A → B → C` directions of the README's UI section, in order."""
    section = readme.split(UI_SECTION, 1)[1].split("\n## ", 1)[0]
    return [tuple(" ".join(step.split()) for step in found.split("→")) for found in DIRECTION.findall(section)]


def check_directions(directions: list[tuple[str, ...]]) -> None:
    """Every README direction is one this script can check; every picture has a README direction."""
    unknown = [" → ".join(direction) for direction in directions if direction not in DESTINATIONS]
    if unknown:
        raise RuntimeError(f"the README gives directions this script cannot check: {unknown}")
    orphans = [destination.picture for direction, destination in DESTINATIONS.items()
               if destination.picture and direction not in directions]
    if orphans:
        raise RuntimeError(f"no README direction leads to {orphans}")


def click(browser: Browser, name: str, timeout: float = 30.0) -> None:
    """Click what `name` names, as a mouse would (some menus open on pointer events, not on click())."""
    deadline = time.monotonic() + timeout
    if name.startswith(SHOW_MARKDOWN_OF):
        locate = f"{FIND_MARKDOWN}({json.dumps(name.removeprefix(SHOW_MARKDOWN_OF))})"
    else:
        locate = f"{FIND}({json.dumps(name)}, {json.dumps(ARROW_BESIDE)})"
    while (at := browser.evaluate(locate)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the UI shows nothing called {name!r}")
        time.sleep(0.5)
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=at[0], y=at[1], button="left", clickCount=1)
    time.sleep(1.0)


def follow(browser: Browser, dev: DagsterDev, direction: tuple[str, ...]) -> Destination:
    """From the UI's front page, click each step of `direction`; check where it ends."""
    destination = DESTINATIONS[direction]
    browser.open(dev.url, wait_for_text="Catalog")
    for step in direction:
        click(browser, step)
    browser.wait_for_text(destination.shows)
    print(f"  followed: {' → '.join(direction)}", flush=True)
    return destination


def launch_by_direction(dev: DagsterDev, browser: Browser, direction: tuple[str, ...]) -> None:
    """Follow a direction that launches a run, and check that a run was queued."""
    before = len(dev.graphql(RUNS)["runsOrError"]["results"])
    follow(browser, dev, direction)
    deadline = time.monotonic() + 30
    while len(dev.graphql(RUNS)["runsOrError"]["results"]) == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{' → '.join(direction)} launched no run")
        time.sleep(1)


def take_screenshots(dev: DagsterDev, out: Path, browser: Browser, directions: list[tuple[str, ...]]) -> list[Path]:
    """Follow every direction that does not launch anything; save the pictures at their ends."""
    saved: list[Path] = []
    for direction in directions:
        if direction[-1] == "Materialize all":
            continue
        destination = follow(browser, dev, direction)
        if destination.refit:
            browser.evaluate("localStorage.clear(); sessionStorage.clear(); true")
            browser.call("Page.reload", ignoreCache=True)
            browser.wait_for_text(destination.shows)
        if destination.plots:
            browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=PLOTS_HEIGHT, deviceScaleFactor=1,
                         mobile=False)
            if not browser.evaluate(SCROLL_TO_PLOTS):
                raise RuntimeError("the accuracy check's page has no Plots section")
        time.sleep(destination.settle)
        if destination.picture:
            saved.append(_save(browser, out / destination.picture))
        if destination.plots:
            browser.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1,
                         mobile=False)
        if destination.close_with_escape:
            browser.call("Input.dispatchKeyEvent", type="keyDown", key="Escape", code="Escape",
                         windowsVirtualKeyCode=27)
    return saved


def _save(browser: Browser, path: Path) -> Path:
    browser.screenshot(path)
    print(f"  saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}", flush=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Start the UI, make some history by API and by the README's directions, take the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="where the PNGs go")
    args = parser.parse_args(argv)
    directions = readme_directions((REPO / "README.md").read_text(encoding="utf-8"))
    check_directions(directions)
    if not shutil.which("chromium"):
        print("chromium not found: on Debian, apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fine_tuning_screenshots_") as tmp:
        root = Path(tmp)
        print("starting dagster dev (offline, shipped sample)", flush=True)
        with dagster_dev(root) as dev:
            browser = Browser(root / "chromium_profile", WIDTH, HEIGHT)
            try:
                print(f"queueing {JOB} with {len(TRAINING_EXAMPLE_CAPS)} caps on training examples, then the "
                      "README's launch directions", flush=True)
                queue_the_job_a_few_times(dev)
                for direction in directions:
                    if direction[-1] == "Materialize all":
                        launch_by_direction(dev, browser, direction)
                wait_for_the_runs(dev)
                print("following the README's directions", flush=True)
                take_screenshots(dev, args.out.resolve(), browser, directions)
            finally:
                browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
