"""An embedded kernel patches ``pdb`` only while it runs, and gives it back when it stops."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, threading
    from cokernel.interfaces import callback

    replies, got = {}, threading.Condition()

    def send(channel, msg):
        with got:
            if msg["header"]["msg_type"] == "stream":
                replies.setdefault(msg["parent_header"]["msg_id"], []).append(msg["content"]["text"])
            if channel == "shell":
                replies[msg["parent_header"]["msg_id"] + "-reply"] = True
                got.notify_all()

    handle = callback.start(send)
    try:
        assert "pdb" not in sys.modules, "the kernel imported pdb at start-up"
        msg = handle.session.msg("execute_request", {"code": "import pdb; print(pdb.Pdb.__name__)"})
        handle.receive("shell", msg)
        with got:
            assert got.wait_for(lambda: msg["header"]["msg_id"] + "-reply" in replies, 30)
    finally:
        handle.stop()
    import pdb
    print("in the cell:", "".join(replies[msg["header"]["msg_id"]]).strip())
    print("after stop:", pdb.Pdb.__module__, pdb.set_trace.__module__)
    """
)


@pytest.mark.timeout(60)
def test_pdb_is_the_kernels_while_it_runs_and_the_standard_one_after(tmp_path: Path) -> None:
    env = {"IPYTHONDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=50, env=env
    )

    assert done.returncode == 0, done.stderr
    assert "in the cell: KernelPdb" in done.stdout
    assert "after stop: pdb pdb" in done.stdout
