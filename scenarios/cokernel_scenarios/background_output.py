"""Output printed by a cell's asyncio task and thread after the cell finished is that cell's.

Cell A starts a task and a thread that wait for a signal; cell B, run after A finished, gives
the signal. Their prints must carry A's msg_id as parent, not B's (the cell running when they
print) and none: a frontend shows output under the cell whose parent it names.
"""

from __future__ import annotations

import functools

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received
from cokernel_scenarios.scenario import PATIENCE, PYTHON, Scenario, expect, expect_ok

STARTER = """\
import asyncio, threading
_bg_task_go = asyncio.Event()
_bg_thread_go = threading.Event()

async def _bg_task():
    await _bg_task_go.wait()
    print("printed by the task", flush=True)

def _bg_thread():
    if _bg_thread_go.wait(120):
        print("printed by the thread", flush=True)

_bg_task_handle = asyncio.get_running_loop().create_task(_bg_task())
threading.Thread(target=_bg_thread, daemon=True).start()
"""

RELEASE = "_bg_task_go.set()\n_bg_thread_go.set()\nprint('cell B released them')\n"


class BackgroundOutput(Scenario):
    name = "background_output"
    description = "prints from a cell's asyncio task and thread after it finished go to that cell"
    requires = PYTHON | {"asyncio"}

    async def run(self, fe: Frontend) -> None:
        starter = await fe.run(STARTER)
        expect_ok(starter, "the cell starting the task and the thread", fe)
        release = await fe.run(RELEASE)
        expect_ok(release, "the cell releasing them", fe)
        for source in ("task", "thread"):
            printed = await fe.wait_for(
                functools.partial(_stdout_with, text=f"printed by the {source}"),
                timeout=PATIENCE,
                what=f"the {source}'s print",
            )
            owner = {starter.msg_id: "cell A", release.msg_id: "cell B"}.get(
                printed.parent_id or "", f"parent {printed.parent_id}"
            )
            expect(
                printed.parent_id == starter.msg_id,
                f"the {source}'s print to have cell A (which started it) as parent",
                f"it went to {owner}",
                fe,
            )


def _stdout_with(message: Received, text: str) -> bool:
    return (
        message.msg_type == "stream"
        and message.content.get("name") == "stdout"
        and text in message.content.get("text", "")
    )
