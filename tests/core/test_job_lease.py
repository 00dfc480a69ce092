"""The job-creation lease between real processes: a live holder is waited for and named, a killed one frees it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fine_tuning.core.job_lease import LeaseWaitExpired, creation_lease, holder_description, lease_path

from tests.support.logs import RecordingLog

pytestmark = pytest.mark.slow

HOLD = """
import sys, time
from pathlib import Path
from fine_tuning.core.job_lease import creation_lease, holder_description
class Log:
    def info(self, message): print(message, flush=True)
with creation_lease(Path(sys.argv[1]), holder_description("run-child", "tickets"), Log()):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_held_lease_is_waited_for_and_a_killed_holder_frees_it(tmp_path: Path) -> None:
    path = lease_path(tmp_path, "f" * 64)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        log = RecordingLog()
        with pytest.raises(LeaseWaitExpired, match=rf"run run-child of task tickets, PID {holder.pid} .*created nothing"):
            with creation_lease(path, holder_description("run-a", "tickets"), log, wait_seconds=0.5):
                pytest.fail("the lease was taken while another process held it")
        assert "waiting for it" in log.messages()[0] and f"PID {holder.pid}" in log.messages()[0]
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops its lock
        holder.wait(timeout=10)
        with creation_lease(path, holder_description("run-b", "tickets"), RecordingLog(), wait_seconds=5):
            assert "run run-b" in path.read_text()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert not path.exists()  # the holder removes the file as it releases: no lease files pile up
