"""The harness's BlockingClient on a real kernel: one ordered log of every channel, nothing
consumed by a wait, and the records and failures the Frontend has too."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from cokernel_harness import BlockingClient, Execution, Received, WaitTimeout
from helpers import KernelPair


@pytest.fixture
def client(kernel: KernelPair) -> BlockingClient:
    """A BlockingClient attached to the module's kernel (a fresh, empty log per test)."""
    return BlockingClient(kernel[1])


def test_send_returns_the_msg_id_stamped_with_the_time_it_left(client: BlockingClient) -> None:
    before = time.perf_counter()
    sent = client.send("control", "kernel_info_request")
    reply = client.reply_message(sent)

    assert isinstance(sent, str)
    assert reply.parent_id == sent == sent.msg_id
    assert reply.channel == "control"
    assert before <= sent.time <= reply.time


def test_waits_consume_nothing_and_after_starts_past_a_message(client: BlockingClient) -> None:
    first, second = (client.send("shell", "kernel_info_request") for _ in range(2))
    a, b = client.reply_message(first), client.reply_message(second)

    def kernel_info_reply(r: Received) -> bool:
        return r.msg_type == "kernel_info_reply"

    assert client.wait_for(kernel_info_reply) is a  # the same message, found again
    assert client.wait_for(kernel_info_reply, after=a) is b
    assert client.index(a) < client.index(b)
    assert client.find(kernel_info_reply) == [a, b]


def test_run_collects_the_reply_and_the_outputs_up_to_idle(client: BlockingClient) -> None:
    run = client.run("print('hi')\n6 * 7")

    assert isinstance(run, Execution)
    assert run.status == "ok"
    assert run.reply["status"] == "ok"
    assert [m.msg_type for m in run.outputs] == ["execute_input", "stream", "execute_result"]
    assert run.stdout == "hi\n"
    assert run.result == {"text/plain": "42"}
    states = [
        m.content["execution_state"] for m in client.iopub(run.msg_id) if m.msg_type == "status"
    ]
    assert states == ["busy", "idle"]


def test_request_returns_the_reply_content_once_idle_came(client: BlockingClient) -> None:
    content = client.request("shell", "complete_request", {"code": "pri", "cursor_pos": 3})

    assert content["status"] == "ok"
    assert "print" in content["matches"]
    (reply,) = client.find(lambda r: r.channel == "shell")
    # find() receives nothing new: the idle was in the log when request() returned.
    idle = client.find(
        lambda r: (
            r.parent_id == reply.parent_id
            and r.msg_type == "status"
            and r.content["execution_state"] == "idle"
        )
    )
    assert len(idle) == 1


def test_a_wait_in_vain_says_what_never_came_and_what_did(client: BlockingClient) -> None:
    client.run("1")
    with pytest.raises(WaitTimeout, match="waiting for the impossible") as failed:
        client.wait_for(lambda r: False, 0.2, "the impossible")
    assert "iopub:execute_result" in str(failed.value)
    assert "shell:execute_reply(ok)" in str(failed.value)


def test_the_tests_have_no_message_client_of_their_own() -> None:
    # tests/helpers.py starts and ends kernels; talking to them is the harness's job.
    helpers = Path(__file__).resolve().parents[1] / "helpers.py"
    tree = ast.parse(helpers.read_text())
    assert [node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)] == []
