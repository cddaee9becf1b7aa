"""input() and getpass over the stdin channel, answered the ways real frontends answer."""

from __future__ import annotations

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution


def result_text(execution: Execution) -> str:
    assert execution.status == "ok", execution.reply
    results = execution.of_type("execute_result")
    assert len(results) == 1, execution.outputs
    return str(results[0].content["data"]["text/plain"])


def test_input_is_answered_the_way_jupyter_client_answers(wire: BlockingClient) -> None:
    cell = wire.execute("name = input('name? ')\nname", allow_stdin=True)

    asked = wire.input_request(cell)
    assert asked.msg["header"]["msg_type"] == "input_request"
    assert asked.msg["content"] == {"prompt": "name? ", "password": False}
    # jupyter_client (jupyter console, nbclient) replies without a parent header.
    wire.kc.input("Ada")

    assert result_text(wire.collect(cell)) == "'Ada'"


def test_input_is_answered_with_a_parent_header_the_way_jupyterlab_answers(
    wire: BlockingClient,
) -> None:
    cell = wire.execute("input('colour? ')", allow_stdin=True)

    asked = wire.input_request(cell)
    wire.input_reply("teal", parent=asked.msg)

    assert result_text(wire.collect(cell)) == "'teal'"


def test_getpass_asks_for_a_password(wire: BlockingClient) -> None:
    cell = wire.execute("import getpass\nsecret = getpass.getpass()\nlen(secret)", allow_stdin=True)

    asked = wire.input_request(cell)
    assert asked.msg["content"] == {"prompt": "Password: ", "password": True}
    wire.kc.input("hunter22")

    assert result_text(wire.collect(cell)) == "8"


def test_input_without_allow_stdin_raises_stdin_not_implemented(wire: BlockingClient) -> None:
    execution = wire.run("input('never asked? ')", allow_stdin=False)

    assert execution.status == "error"
    assert execution.reply["ename"] == "StdinNotImplementedError"
    errors = execution.of_type("error")
    assert [m.content["ename"] for m in errors] == ["StdinNotImplementedError"]
    assert not wire.find(lambda r: r.channel == "stdin" and r.parent_id == execution.msg_id)


def test_two_inputs_in_one_cell_are_asked_and_answered_in_turn(wire: BlockingClient) -> None:
    cell = wire.execute(
        "first = input('first? ')\nsecond = input('second? ')\n(first, second)", allow_stdin=True
    )

    asked_first = wire.input_request(cell)
    assert asked_first.msg["content"]["prompt"] == "first? "
    wire.kc.input("one")
    asked_second = wire.wait_for(
        lambda r: r.channel == "stdin" and r.parent_id == cell,
        after=asked_first,
        what="the second input_request",
    )
    assert asked_second.msg["content"]["prompt"] == "second? "
    wire.kc.input("two")

    assert result_text(wire.collect(cell)) == "('one', 'two')"
