"""stdout and stderr over iopub: complete, coalesced, ordered, and parented to the right cell."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution, Received


def streams(execution: Execution) -> list[tuple[str, str]]:
    return [(m.content["name"], m.content["text"]) for m in execution.of_type("stream")]


def stream_of(msg_id: str) -> Callable[[Received], bool]:
    """A predicate: an iopub stream message whose parent is ``msg_id``."""

    def match(item: Received) -> bool:
        return item.channel == "iopub" and item.parent_id == msg_id and item.msg_type == "stream"

    return match


def stream_text(wire: BlockingClient, msg_id: str, length: int) -> str:
    """The stream text parented to ``msg_id``, received until ``length`` characters arrived."""
    text, last = "", None  # the last stream message taken
    while len(text) < length:
        item = wire.wait_for(
            stream_of(msg_id),
            after=last,
            what=f"more output of {msg_id} after {len(text)} characters",
        )
        text, last = text + item.content["text"], item
    return text


def test_a_hundred_thousand_prints_arrive_complete_in_order_and_coalesced(
    wire: BlockingClient,
) -> None:
    execution = wire.run("for i in range(100_000):\n    print(i)", timeout=90)

    assert execution.status == "ok"
    messages = streams(execution)
    assert {name for name, _ in messages} == {"stdout"}
    assert "".join(text for _, text in messages) == "".join(f"{i}\n" for i in range(100_000))
    # One message per print would be 100,000; the kernel batches them.
    assert len(messages) < 1000, len(messages)


def test_stdout_and_stderr_keep_their_relative_order(wire: BlockingClient) -> None:
    execution = wire.run(
        "import sys\n"
        "for i in range(5):\n"
        "    print(f'out{i}')\n"
        "    print(f'err{i}', file=sys.stderr)\n"
        "sys.stdout.write('tail-out\\n')"
    )

    expected: list[tuple[str, str]] = []
    for i in range(5):
        expected += [("stdout", f"out{i}\n"), ("stderr", f"err{i}\n")]
    expected.append(("stdout", "tail-out\n"))
    assert streams(execution) == expected


@pytest.mark.skipif(
    os.environ.get("COKERNEL_TEST_BACKEND", "asyncio") != "asyncio",
    reason="asyncio.create_task needs an asyncio kernel (a trio cell has no loop to spawn on)",
)
def test_output_of_an_asyncio_task_goes_to_the_cell_that_created_it(wire: BlockingClient) -> None:
    creator = wire.run(
        "import asyncio\n"
        "task_gate = asyncio.Event()\n"
        "async def report_later():\n"
        "    await task_gate.wait()\n"
        "    print('from the task')\n"
        "late_task = asyncio.create_task(report_later())"
    )
    assert creator.status == "ok"
    assert streams(creator) == []
    creator_id = creator.msg_id
    creator_idle = wire.status(creator_id, "idle")

    # The next cell opens the gate; the task prints once that cell has given the loop back.
    opener = wire.run("task_gate.set()\nawait late_task")

    assert opener.status == "ok"
    assert streams(opener) == []
    late = wire.wait_for(stream_of(creator_id), after=creator_idle, what="the task's output")
    assert late.msg["content"] == {"name": "stdout", "text": "from the task\n"}


def test_output_of_a_thread_goes_to_the_cell_that_started_it(wire: BlockingClient) -> None:
    starter = wire.run(
        "import threading\n"
        "thread_gate = threading.Event()\n"
        "def report_later():\n"
        "    thread_gate.wait(60)\n"
        "    print('from the thread')\n"
        "late_thread = threading.Thread(target=report_later)\n"
        "late_thread.start()"
    )
    assert starter.status == "ok"
    assert streams(starter) == []
    starter_id = starter.msg_id
    starter_idle = wire.status(starter_id, "idle")

    opener = wire.run("thread_gate.set()\nlate_thread.join(60)\nlate_thread.is_alive()")

    assert opener.of_type("execute_result")[0].content["data"]["text/plain"] == "False"
    assert streams(opener) == []
    late = wire.wait_for(stream_of(starter_id), after=starter_idle, what="the thread's output")
    assert late.msg["content"] == {"name": "stdout", "text": "from the thread\n"}


def test_a_thread_printing_while_a_later_cell_prints_does_not_mix_their_outputs(
    wire: BlockingClient,
) -> None:
    lines = 2000
    starter = wire.run(
        "import threading\n"
        "tick_gate = threading.Event()\n"
        "def ticker():\n"
        "    tick_gate.wait(60)\n"
        f"    for i in range({lines}):\n"
        "        print(f'tick{i}')\n"
        "tick_thread = threading.Thread(target=ticker)\n"
        "tick_thread.start()"
    )
    starter_id = starter.msg_id

    # Both print at once: the thread for the first cell, this cell for itself.
    printer = wire.run(
        f"tick_gate.set()\nfor i in range({lines}):\n    print(f'own{{i}}')\ntick_thread.join(60)"
    )

    assert "".join(text for _, text in streams(printer)) == "".join(
        f"own{i}\n" for i in range(lines)
    )
    expected_ticks = "".join(f"tick{i}\n" for i in range(lines))
    ticks = stream_text(wire, starter_id, len(expected_ticks))
    assert ticks == expected_ticks


def test_pipelined_cells_each_get_their_own_output(wire: BlockingClient) -> None:
    msg_ids = [wire.execute(f"for i in range(300):\n    print('cell{n}', i)") for n in range(3)]

    for n, msg_id in enumerate(msg_ids):
        execution = wire.collect(msg_id)
        assert execution.status == "ok"
        text = "".join(t for _, t in streams(execution))
        assert text == "".join(f"cell{n} {i}\n" for i in range(300))
