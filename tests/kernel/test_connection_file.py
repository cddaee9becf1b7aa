"""The connection file a kernel writes itself is private (0600 from creation) and removed on exit.

Each test starts a real ``python -m cokernel start -f FILE`` process under ``umask 022`` (the
common default, which would make an ordinary file 0644), talks to it with jupyter_client, and
ends it by ``shutdown_request`` or by SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient

from cokernel.interfaces.zmq import write_private_file
from cokernel_harness.client import BlockingClient

pytestmark = pytest.mark.timeout(90)

STARTUP = 60.0


def _umask_022() -> None:
    os.umask(0o022)


def _start(path: Path) -> subprocess.Popen[bytes]:
    backend = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
    return subprocess.Popen(
        [sys.executable, "-m", "cokernel", "start", "-f", str(path), f"--backend={backend}"],
        preexec_fn=_umask_022,
        stdin=subprocess.DEVNULL,
    )


def _wait_for_file(path: Path, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """Wait until the kernel has written ``path`` completely (it is valid JSON with a key)."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the kernel exited with {process.returncode}"
        try:
            info: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)  # poll the condition, bounded by the deadline
            continue
        if info.get("key") and info.get("shell_port"):
            return info
    raise AssertionError(f"the kernel did not write {path} within {STARTUP} s")


@pytest.fixture
def client_for() -> Iterator[Any]:
    clients: list[BlockingKernelClient] = []

    def connect(path: Path) -> BlockingKernelClient:
        kc = BlockingKernelClient(connection_file=str(path))
        kc.load_connection_file()
        kc.start_channels()
        clients.append(kc)
        # A kernel_info round trip, not kc.wait_for_ready(): without a kernel manager that judges
        # liveness by heartbeat, and calls a kernel still starting under load "dead".
        wire = BlockingClient(kc)
        reply = wire.reply_message(wire.send("shell", "kernel_info_request"), timeout=STARTUP)
        assert reply.msg["content"]["status"] == "ok"
        return kc

    yield connect
    for kc in clients:
        kc.stop_channels()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_written_connection_file_is_0600_and_removed_after_shutdown(
    tmp_path: Path, client_for: Any
) -> None:
    path = tmp_path / "kernel-new.json"
    process = _start(path)
    try:
        _wait_for_file(path, process)
        assert _mode(path) == 0o600
        kc = client_for(path)
        kc.shutdown()
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not path.exists()


def test_a_written_connection_file_is_removed_on_sigterm(tmp_path: Path, client_for: Any) -> None:
    path = tmp_path / "kernel-term.json"
    process = _start(path)
    try:
        _wait_for_file(path, process)
        client_for(path)  # the kernel is serving
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not path.exists()


def test_a_connection_file_given_by_the_frontend_is_left_alone(
    tmp_path: Path, client_for: Any
) -> None:
    # Ports 0 would make the kernel pick ports it cannot report: write a complete file, as a
    # frontend does, by letting a first kernel choose them and copying its file.
    first = tmp_path / "first.json"
    process = _start(first)
    try:
        info = _wait_for_file(first, process)
        client_for(first).shutdown()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    given = tmp_path / "given.json"
    given.write_text(json.dumps(info))
    given.chmod(0o640)
    process = _start(given)
    try:
        kc = client_for(given)
        kc.shutdown()
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert given.exists()
    assert _mode(given) == 0o640
    assert json.loads(given.read_text()) == info


def test_write_private_file_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "taken.json"
    path.write_text("theirs")
    with pytest.raises(FileExistsError):
        write_private_file(path, "ours")
    assert path.read_text() == "theirs"
    old = os.umask(0o022)
    fresh = tmp_path / "fresh.json"
    try:
        write_private_file(fresh, "ours")
    finally:
        os.umask(old)
    assert _mode(fresh) == 0o600
    assert fresh.read_text() == "ours"
