"""execute_request over ZMQ: numbering, silence, expressions, magics, payloads, history, display.

Every test talks to the module's shared kernel (the ``wire`` fixture), so execution counts are
checked relative to each other, never as absolute numbers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from cokernel_harness.client import BlockingClient
from cokernel_harness.messages import Execution, Received

Msg = dict[str, Any]

# Tracebacks are coloured with ANSI escapes, as a terminal would show them.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def output_types(execution: Execution) -> list[str]:
    """The msg_types of a request's iopub messages between busy and idle."""
    return [m.msg_type for m in execution.outputs]


def execute_with(wire: BlockingClient, code: str, **content: Any) -> Execution:
    """Execute ``code`` with extra execute_request content (user_expressions, ...)."""
    full = {
        "code": code,
        "silent": False,
        "store_history": True,
        "user_expressions": {},
        "allow_stdin": False,
        "stop_on_error": True,
        **content,
    }
    return wire.collect(wire.send("shell", "execute_request", full))


def one(messages: list[Received]) -> Received:
    assert len(messages) == 1, messages
    return messages[0]


# -- execution_count ---------------------------------------------------------------------------
def test_each_stored_execute_takes_the_next_execution_count(wire: BlockingClient) -> None:
    first = wire.run("'first'")
    second = wire.run("'second'")

    n = first.reply["execution_count"]
    assert second.reply["execution_count"] == n + 1
    for execution, count in ((first, n), (second, n + 1)):
        assert one(execution.of_type("execute_input")).content["execution_count"] == count
        assert one(execution.of_type("execute_result")).content["execution_count"] == count


def test_an_unstored_execute_takes_no_execution_count(wire: BlockingClient) -> None:
    before = wire.run("'stored'").reply["execution_count"]

    unstored = wire.run("'not stored'", store_history=False)
    after = wire.run("'stored again'").reply["execution_count"]

    assert unstored.status == "ok"
    assert unstored.reply["execution_count"] == before
    assert one(unstored.of_type("execute_input")).content["execution_count"] == before
    assert one(unstored.of_type("execute_result")).content["execution_count"] == before
    assert after == before + 1


def test_a_silent_execute_broadcasts_nothing_and_takes_no_execution_count(
    wire: BlockingClient,
) -> None:
    before = wire.run("'stored'").reply["execution_count"]

    silent = wire.run(
        "import sys\n"
        "from IPython.display import display\n"
        "print('out'); print('err', file=sys.stderr); display('shown')\n"
        "silent_marker = 1\n"
        "'result'",
        silent=True,
    )
    after = wire.run("silent_marker")

    assert silent.status == "ok"
    assert output_types(silent) == [], silent.outputs
    assert after.reply["execution_count"] == before + 1
    assert after.of_type("execute_result")[0].content["data"]["text/plain"] == "1"


def test_an_error_in_a_silent_execute_is_in_its_reply_only(wire: BlockingClient) -> None:
    silent = wire.run("1/0", silent=True)

    assert silent.status == "error"
    assert silent.reply["ename"] == "ZeroDivisionError"
    assert output_types(silent) == []


# -- user_expressions --------------------------------------------------------------------------
def test_user_expressions_are_evaluated_after_the_cell(wire: BlockingClient) -> None:
    execution = execute_with(
        wire,
        "expr_value = 20",
        user_expressions={"good": "expr_value + 1", "bad": "1/0", "missing": "no_such_name"},
    )

    assert execution.status == "ok"
    expressions = execution.reply["user_expressions"]
    assert expressions["good"] == {"status": "ok", "data": {"text/plain": "21"}, "metadata": {}}
    bad = expressions["bad"]
    assert bad["status"] == "error"
    assert bad["ename"] == "ZeroDivisionError"
    assert bad["evalue"] == "division by zero"
    assert isinstance(bad["traceback"], list)
    assert bad["traceback"]
    assert expressions["missing"]["status"] == "error"
    assert expressions["missing"]["ename"] == "NameError"


# -- magics, shell commands, payloads ----------------------------------------------------------
def test_time_magic_reports_to_stdout(wire: BlockingClient) -> None:
    execution = wire.run("%time timed_value = sum(range(10))\ntimed_value")

    assert execution.status == "ok"
    assert "Wall time" in execution.stdout
    assert one(execution.of_type("execute_result")).content["data"]["text/plain"] == "45"


def test_capture_cell_magic_keeps_output_out_of_the_stream(wire: BlockingClient) -> None:
    captured = wire.run("%%capture captured\nprint('inside capture')")
    shown = wire.run("captured.stdout")

    assert captured.status == "ok"
    assert captured.of_type("stream") == []
    assert (
        one(shown.of_type("execute_result")).content["data"]["text/plain"] == "'inside capture\\n'"
    )


def test_who_magic_lists_user_variables(wire: BlockingClient) -> None:
    wire.run("who_alpha = 1\nwho_beta = 'b'")
    execution = wire.run("%who")

    assert execution.status == "ok"
    names = execution.stdout.split()
    assert "who_alpha" in names
    assert "who_beta" in names


def test_shell_command_output_arrives_as_stream(wire: BlockingClient) -> None:
    execution = wire.run("!echo hi")

    assert execution.status == "ok"
    # The command runs in a pseudo-terminal, whose line ends are "\r\n".
    assert execution.stdout.replace("\r\n", "\n") == "hi\n"


def test_set_next_input_is_a_payload_of_the_reply(wire: BlockingClient) -> None:
    execution = wire.run("get_ipython().set_next_input('next_cell = 1')")

    assert execution.reply["payload"] == [
        {"source": "set_next_input", "text": "next_cell = 1", "replace": False}
    ]
    # Payloads belong to one reply only.
    assert wire.run("None").reply["payload"] == []


# -- is_complete -------------------------------------------------------------------------------
def is_complete(wire: BlockingClient, code: str) -> Msg:
    return dict(wire.request("shell", "is_complete_request", {"code": code}))


def test_is_complete_statuses(wire: BlockingClient) -> None:
    assert is_complete(wire, "x = 1") == {"status": "complete"}
    assert is_complete(wire, "for i in range(3):") == {"status": "incomplete", "indent": "    "}
    assert is_complete(wire, "x = (1,") == {"status": "incomplete", "indent": ""}
    assert is_complete(wire, "x = = 1")["status"] == "invalid"


# -- history -----------------------------------------------------------------------------------
def history(wire: BlockingClient, **content: Any) -> list[list[Any]]:
    reply = wire.request("shell", "history_request", {"output": False, "raw": True, **content})
    assert reply["status"] == "ok", reply
    return list(reply["history"])


def test_history_tail_range_and_search(wire: BlockingClient) -> None:
    marker = f"hist_{uuid.uuid4().hex[:8]}"
    codes = [f"{marker}_a = 1", f"{marker}_b = 2", f"{marker}_a + {marker}_b"]
    counts = [wire.run(code).reply["execution_count"] for code in codes]

    tail = history(wire, hist_access_type="tail", n=3)
    assert [entry[2] for entry in tail] == codes
    assert [entry[1] for entry in tail] == counts
    session = tail[0][0]
    assert session > 0
    assert {entry[0] for entry in tail} == {session}

    ranged = history(
        wire, hist_access_type="range", session=session, start=counts[0], stop=counts[-1] + 1
    )
    assert ranged == tail
    # Session 0 means "the current session": the same entries, under the real session number.
    assert history(wire, hist_access_type="range", session=0, start=counts[1], stop=counts[2]) == [
        tail[1]
    ]

    found = history(wire, hist_access_type="search", pattern=f"{marker}_a*")
    assert [entry[2] for entry in found] == [codes[0], codes[2]]

    # With output, each entry's third item is [input, output]; the output is None unless
    # IPython's HistoryManager.db_log_output is on (it is off by default).
    with_output = history(wire, hist_access_type="tail", n=1, output=True)
    assert with_output == [[session, counts[2], [codes[2], None]]]


# A write-out of the history waits on a database that another connection holds locked, while the
# cell stores more history: the store must not wait for the write-out (IPython's own write-out
# holds the cache's lock through its commit, which stalled a cell once a second for the fsync).
_STORE_DURING_WRITE_OUT = """\
import sqlite3, threading, time
hm = get_ipython().history_manager
blocker = sqlite3.connect(hm.hist_file, timeout=0, isolation_level=None)
blocker.execute("BEGIN EXCLUSIVE")
try:
    hm.store_inputs(10**6, "# written while the database is locked")
    writer = threading.Thread(target=hm.writeout_cache)
    writer.start()
    deadline = time.monotonic() + 10
    while not get_ipython().history_batcher._lock.locked() and time.monotonic() < deadline:
        pass  # the writer has begun its write-out
    hm.store_inputs(10**6 + 1, "# stored while the write-out waits")
    print(writer.is_alive())
finally:
    blocker.rollback()
    blocker.close()
writer.join()
print(writer.is_alive())
"""


def test_storing_history_does_not_wait_for_a_write_out(wire: BlockingClient) -> None:
    done = wire.run(_STORE_DURING_WRITE_OUT)
    assert done.status == "ok", done.reply
    assert done.stdout == "True\nFalse\n"
    # Both entries reach the database (the second with the next write-out).
    found = history(wire, hist_access_type="search", pattern="# * the * locked*")
    assert [entry[2] for entry in found][-1:] == ["# written while the database is locked"]
    found = history(wire, hist_access_type="search", pattern="# stored while the write-out*")
    assert [entry[2] for entry in found][-1:] == ["# stored while the write-out waits"]


# -- rich display ------------------------------------------------------------------------------
def test_display_sends_display_data_with_every_mime_type(wire: BlockingClient) -> None:
    execution = wire.run("from IPython.display import HTML, display\ndisplay(HTML('<b>bold</b>'))")

    data = one(execution.of_type("display_data")).content["data"]
    assert data["text/html"] == "<b>bold</b>"
    assert "text/plain" in data


def test_a_display_is_updated_by_its_display_id(wire: BlockingClient) -> None:
    execution = wire.run(
        "from IPython.display import display\n"
        "handle = display('before', display_id=True)\n"
        "handle.update('after')"
    )

    assert output_types(execution) == ["execute_input", "display_data", "update_display_data"]
    shown = one(execution.of_type("display_data")).content
    updated = one(execution.of_type("update_display_data")).content
    display_id = shown["transient"]["display_id"]
    assert display_id
    assert updated["transient"]["display_id"] == display_id
    assert shown["data"]["text/plain"] == "'before'"
    assert updated["data"]["text/plain"] == "'after'"


def test_a_later_cell_updates_an_earlier_cells_display(wire: BlockingClient) -> None:
    first = wire.run(
        "from IPython.display import display\nlater = display('one', display_id='later-id')"
    )
    second = wire.run("later.update('two')")

    assert one(first.of_type("display_data")).content["transient"] == {"display_id": "later-id"}
    updated = one(second.of_type("update_display_data"))
    assert updated.content["transient"] == {"display_id": "later-id"}
    assert updated.content["data"]["text/plain"] == "'two'"
    assert updated.parent_id == second.msg_id


def test_clear_output_wait_is_sent_after_earlier_output(wire: BlockingClient) -> None:
    execution = wire.run(
        "from IPython.display import clear_output\nprint('old')\nclear_output(wait=True)\nprint('new')"
    )

    assert output_types(execution) == ["execute_input", "stream", "clear_output", "stream"]
    assert one(execution.of_type("clear_output")).content == {"wait": True}
    assert [m.content["text"] for m in execution.of_type("stream")] == ["old\n", "new\n"]


def test_an_object_with_repr_html_gives_an_html_execute_result(wire: BlockingClient) -> None:
    execution = wire.run(
        "class Fancy:\n"
        "    def _repr_html_(self):\n"
        "        return '<i>fancy</i>'\n"
        "    def __repr__(self):\n"
        "        return 'Fancy()'\n"
        "Fancy()"
    )

    result = one(execution.of_type("execute_result")).content
    assert result["data"] == {"text/html": "<i>fancy</i>", "text/plain": "Fancy()"}
    assert result["execution_count"] == execution.reply["execution_count"]


# -- errors ------------------------------------------------------------------------------------
def test_an_exception_gives_an_error_output_and_an_error_reply(wire: BlockingClient) -> None:
    execution = wire.run("print('before')\ndef fail():\n    raise KeyError('missing')\nfail()")

    assert output_types(execution) == ["execute_input", "stream", "error"]
    error = one(execution.of_type("error")).content
    assert error["ename"] == "KeyError"
    assert error["evalue"] == "'missing'"
    plain = [ANSI_ESCAPE.sub("", line) for line in error["traceback"]]
    assert any("fail()" in line for line in plain)
    assert plain[-1] == "KeyError: 'missing'"

    reply = execution.reply
    assert reply["status"] == "error"
    assert (reply["ename"], reply["evalue"], reply["traceback"]) == (
        error["ename"],
        error["evalue"],
        error["traceback"],
    )
    # The kernel lives on after the error.
    assert wire.run("'alive'").status == "ok"


def test_a_syntax_error_is_reported_without_running_the_cell(wire: BlockingClient) -> None:
    execution = wire.run("print('never')\nx = = 1")

    assert execution.status == "error"
    assert execution.reply["ename"] == "SyntaxError"
    assert execution.of_type("stream") == []
    assert one(execution.of_type("error")).content["ename"] == "SyntaxError"
