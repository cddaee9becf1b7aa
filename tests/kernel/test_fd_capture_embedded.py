"""An embedded kernel (callback interface) leaves the host's fds 1 and 2 alone unless asked.

Each case runs in a fresh Python process, so the descriptors of the test process (which pytest
itself captures) are never touched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    from cokernel.interfaces import callback
    from cokernel.options import KernelOptions

    capture = {capture!r}
    outbox, got = [], threading.Condition()

    def send(channel, msg):
        with got:
            outbox.append((channel, msg))
            got.notify_all()

    def run(handle, code):
        msg = handle.session.msg("execute_request", {{"code": code, "silent": False}})
        handle.receive("shell", msg)
        msg_id = msg["header"]["msg_id"]
        with got:
            assert got.wait_for(
                lambda: any(c == "shell" and m["parent_header"].get("msg_id") == msg_id
                            for c, m in outbox), 30)
        return "".join(m["content"]["text"] for c, m in outbox
                       if m["header"]["msg_type"] == "stream"
                       and m["parent_header"].get("msg_id") == msg_id)

    handle = callback.start(send, options=KernelOptions(capture_fds=capture))
    try:
        cell = run(handle, "import os, sys\\n"
                           "try:\\n    print('fileno', sys.stdout.fileno())\\n"
                           "except OSError as e:\\n    print('no fileno:', type(e).__name__)\\n"
                           "os.write(1, b'host-fd-1\\\\n')")
    finally:
        handle.stop()
    os.write(1, b"after-stop\\n")
    sys.__stdout__.write("CELL " + repr(cell) + "\\n")
    """
)


def run_host(tmp_path: Path, capture: bool | None) -> str:
    env = {"IPYTHONDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(capture=capture)],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(60)
def test_an_embedded_kernel_does_not_take_the_hosts_fds_by_default(tmp_path: Path) -> None:
    out = run_host(tmp_path, None)

    assert "CELL 'no fileno: UnsupportedOperation\\n'" in out
    assert out.index("host-fd-1") < out.index("after-stop")


@pytest.mark.timeout(60)
def test_an_embedded_kernel_captures_fds_when_asked_and_gives_them_back(tmp_path: Path) -> None:
    out = run_host(tmp_path, True)

    assert "CELL 'fileno 1\\nhost-fd-1\\n'" in out
    # Echoed to the original fd 1 while captured, and fd 1 is the host's again after stop().
    assert out.index("host-fd-1") < out.index("after-stop")
