"""Child processes and ports: free loopback ports, waiting for a server to listen, stopping children."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a server to bind, or to be refused on)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, limit_seconds: float = 60) -> None:
    """Return once `process` accepts connections on 127.0.0.1:`port`; fail if it exits or takes too long."""
    deadline = time.monotonic() + limit_seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert process.poll() is None, f"the server exited with status {process.returncode} before it listened"
            assert time.monotonic() < deadline, f"nothing listened on port {port} within {limit_seconds} s"
            time.sleep(0.1)


def stop(process: subprocess.Popen, limit_seconds: float = 30) -> None:
    """End a child process this test started: SIGINT, then SIGTERM, then SIGKILL as each lingers.

    SIGTERM because a shell that ran the suite in the background leaves SIGINT ignored in its
    children. A child started with `start_new_session=True` leads its own process group: the
    signals go to the whole group, and whatever is left of it (a code server, a run worker) is
    killed at the end, so the servers it spawned (e.g. `dagster dev`'s) end with it.
    """
    group = process.poll() is None and os.getsid(process.pid) == process.pid

    def send(signum: int) -> None:
        try:
            os.killpg(process.pid, signum) if group else process.send_signal(signum)
        except ProcessLookupError:
            pass

    for signum, grace_seconds in ((signal.SIGINT, limit_seconds), (signal.SIGTERM, 15), (signal.SIGKILL, 15)):
        if process.poll() is not None:
            break
        send(signum)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            continue
    if group:
        send(signal.SIGKILL)


@contextmanager
def code_server_workspace(defs_file: Path, cwd: Path, env: dict[str, str], location_name: str,
                          limit_seconds: float = 60) -> Iterator[Path]:
    """A `dagster code-server` for `defs_file` on a unix socket; yields a workspace.yaml pointing at it.

    Runs launched against that workspace get their own run worker, so a test can terminate or
    kill one as the UI or a crash would.
    """
    socket_dir = Path(tempfile.mkdtemp(prefix=f"{location_name}-"))  # unix socket paths must stay short
    socket_path = socket_dir / "code.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "dagster", "code-server", "start", "-f", str(defs_file), "--socket", str(socket_path)],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + limit_seconds
        while not socket_path.exists():
            assert server.poll() is None, "the code server exited at startup"
            assert time.monotonic() < deadline, "the code server never opened its socket"
            time.sleep(0.1)
        workspace = cwd / "workspace.yaml"
        workspace.write_text(
            f"load_from:\n  - grpc_server:\n      socket: {socket_path}\n      location_name: {location_name}\n"
        )
        yield workspace
    finally:
        stop(server)
        shutil.rmtree(socket_dir, ignore_errors=True)

