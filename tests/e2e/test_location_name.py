"""One code location name, `fine_tuning`: every documented CLI form switches the schedule and the
sensor the UI and the daemon read, and start-up repeats no warning."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from tests.support.project import REPO, VENV_BIN

pytestmark = pytest.mark.slow  # every command starts a code server

SCHEDULE, SENSOR = "retune_schedule", "retune_on_new_data"
# The forms the README documents: from the checkout (workspace.yaml) and by package name.
FORMS = {"from the checkout": (), "-m fine_tuning": ("-m", "fine_tuning")}


def dagster(*args: str) -> subprocess.CompletedProcess[str]:
    """`dagster` from the project's venv, run in the checkout as a user would."""
    env = {**os.environ, "FINE_TUNING_PROVIDER": "local"}
    return subprocess.run([str(VENV_BIN / "dagster"), *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def switch(kind: str, action: str, name: str, form: tuple[str, ...]) -> str:
    """Run one documented switch; its whole output, after checking it succeeded."""
    result = dagster(kind, action, name, *form)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def daemon_view(instance: dg.DagsterInstance) -> dict[str, bool]:
    """Whether the schedule and the sensor run, read as the daemon reads them: the location named in
    workspace.yaml (what `dagster dev` loads), each instigator's stored state looked up by the id of
    its selector (location, repository, name), defaults from the code when nothing is stored."""
    (entry,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    module = entry["python_module"]
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=module["module_name"], working_directory=str(REPO)),
        location_name=module["location_name"],
    )
    states = {state.selector_id: state for state in instance.all_instigator_state()}
    with origin.create_location(instance) as location:
        (repository,) = location.get_repositories().values()
        instigators = {SCHEDULE: repository.get_schedule(SCHEDULE), SENSOR: repository.get_sensor(SENSOR)}
        view = {}
        for name, instigator in instigators.items():
            selector_id = InstigatorSelector(location_name=location.name, repository_name=repository.name, name=name).get_id()
            assert selector_id == instigator.selector_id
            view[name] = instigator.get_current_instigator_state(states.get(selector_id)).is_running
        return view


def test_every_documented_form_switches_what_the_daemon_reads(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    assert daemon_view(instance) == {SCHEDULE: True, SENSOR: False}  # the defaults
    expected = {SCHEDULE: True, SENSOR: False}
    # The README's commands (schedule stop, sensor start) in one form, their reverse in the other.
    for form_name, form in FORMS.items():
        schedule_action = "stop" if expected[SCHEDULE] else "start"
        sensor_action = "stop" if expected[SENSOR] else "start"
        with ThreadPoolExecutor(2) as pool:  # the two switches are independent: run them side by side
            outputs = list(pool.map(switch, ("schedule", "sensor"), (schedule_action, sensor_action),
                                    (SCHEDULE, SENSOR), (form, form)))
        for output in outputs:
            assert "WARNING" not in output, f"{form_name}: {output[-2000:]}"
        expected = {SCHEDULE: not expected[SCHEDULE], SENSOR: not expected[SENSOR]}
        assert daemon_view(instance) == expected, form_name


def test_the_module_form_under_another_name_says_so_once(dagster_home: Path, instance: dg.DagsterInstance) -> None:
    result = dagster("sensor", "start", SENSOR, "-m", "fine_tuning.definitions")
    output = result.stdout + result.stderr
    assert output.count("does not match") == 0, output[-3000:]  # Dagster's repeated warning is replaced...
    assert output.count("loaded as 'fine_tuning.definitions', not 'fine_tuning'") == 1, output[-3000:]  # ...by one
    assert daemon_view(instance)[SENSOR] is False  # and indeed the daemon's sensor did not start


def test_both_module_forms_load_the_same_definitions_without_a_warning() -> None:
    """`-m fine_tuning` (README) and `-m fine_tuning.definitions` (the documented `dagster job execute`
    form) load the same asset keys without a warning; both forms run whole jobs across the suite
    (tests/concurrency: `-m fine_tuning.definitions`; tests/e2e/test_tasks.py: `-m fine_tuning`)."""
    with ThreadPoolExecutor(2) as pool:
        listed = list(pool.map(lambda module: dagster("asset", "list", "-m", module),
                               ("fine_tuning", "fine_tuning.definitions")))
    for result in listed:
        assert result.returncode == 0 and "WARNING" not in result.stderr, result.stderr[-2000:]
    package, module = (set(result.stdout.split()) for result in listed)
    assert package == module
    assert {"fine_tuned_model", "support_tickets/fine_tuned_model", "support_tickets/tickets"} <= package
