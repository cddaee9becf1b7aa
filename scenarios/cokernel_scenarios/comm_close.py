"""The page closes the comms it opened: every close reaches the kernel's comm.

JupyterLab with comms over subshells sends a comm's ``comm_close`` on the comm's subshell and,
in the same breath, ``delete_subshell_request`` on control for that subshell (per comm: every
close; per comm target: the close of the target's last comm). The two travel on different
sockets, so the deletion may reach the kernel first; the close must still be handled (the
kernel's comm closed, its ``on_close`` handler run), or the kernel keeps a comm nobody can
reach. Under ``no-subshells`` the same scenario checks plain closes.

The kernel-side target records each close; after the page closed every comm (and every
deletion it caused was answered), a cell reports how many closes ran and how many of the
target's comms the kernel still holds.
"""

from __future__ import annotations

from cokernel_harness.frontend import Frontend
from cokernel_scenarios.scenario import PATIENCE, PYTHON, Scenario, expect, expect_ok

COUNT = 8
TARGET = "harness.close"

SETUP = f"""\
import comm as _comm
_harness_closed = []
_harness_close_comms = {{}}

def _harness_close_open(channel, open_msg):
    _harness_close_comms[channel.comm_id] = channel
    def on_close(msg):
        _harness_closed.append(channel.comm_id)
        _harness_close_comms.pop(channel.comm_id, None)
    channel.on_close(on_close)

_comm.get_comm_manager().register_target({TARGET!r}, _harness_close_open)
"""

REPORT = f"""\
import anyio as _anyio
# Closes sent on subshells are handled on their own lanes: wait for them (bounded).
with _anyio.move_on_after({PATIENCE!r}):
    while len(_harness_closed) < {COUNT}:
        await _anyio.sleep(0.01)
_harness_left = [c for c in _harness_close_comms if c in _comm.get_comm_manager().comms]
print(f"closed={{len(_harness_closed)}} left={{len(_harness_left)}}")
"""


class CommClose(Scenario):
    name = "comm_close"
    description = (
        f"the page closes {COUNT} comms (on their subshells, then deletes them): all close"
    )
    requires = PYTHON | {"comms", "anyio"}

    async def run(self, fe: Frontend) -> None:
        expect_ok(await fe.run(SETUP), "registering the comm target", fe)
        comm_ids = [fe.comm_open(TARGET) for _ in range(COUNT)]
        for comm_id in comm_ids:
            await fe.comm_ready(comm_id)
        # A comm's open must have been handled before its close means anything.
        opened = await fe.run(f"print(len(_harness_close_comms) == {COUNT})")
        expect_ok(opened, "counting the opened comms", fe)
        expect("True" in opened.stdout, f"{COUNT} comms open in the kernel", opened.stdout, fe)
        first_sent = len(fe.sent)
        for comm_id in comm_ids:
            fe.comm_close(comm_id)
        for msg_id, (_channel, msg, _) in list(fe.sent.items())[first_sent:]:
            if msg["header"]["msg_type"] == "delete_subshell_request":
                await fe.reply(msg_id)
        report = await fe.run(REPORT)
        expect_ok(report, "the report cell", fe)
        expect(
            f"closed={COUNT} left=0" in report.stdout,
            f"all {COUNT} closes handled (frontend profile {fe.profile.name})",
            report.stdout.strip()
            + " (a comm_close sent on a subshell whose deletion overtook it was dropped)",
            fe,
        )
