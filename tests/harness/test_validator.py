"""The protocol validator catches what it claims to, and passes what is correct.

Each conversation here is built by hand (no kernel): a frontend's requests and a kernel's
answers, on a fake clock. Every well-formed exchange must pass with no violation at all; every
broken one must be reported under exactly the rule that names its fault. One test at the end
plays a real cokernel process through the validator.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received
from cokernel_harness.validator import RULES, Validator, Violation, validate

Msg = dict[str, Any]
EPOCH = datetime(2025, 1, 1, tzinfo=UTC)


class Conversation:
    """A frontend's requests and a kernel's messages, in the order they happened.

    Times come from a counter, so each message is sent or received after the previous one.
    The conversation opens with ``iopub_welcome``: iopub delivers from the first request on.
    """

    def __init__(self, *, welcome: bool = True) -> None:
        self.sent: dict[str, tuple[str, Msg, float]] = {}
        self.received: list[Received] = []
        self._tick = itertools.count()
        self._ids = itertools.count()
        if welcome:
            self.kernel("iopub", "iopub_welcome", {"subscription": ""}, parent=None)

    def _header(self, msg_type: str, session: str) -> Msg:
        return {
            "msg_id": f"{session}-{next(self._ids)}",
            "msg_type": msg_type,
            "session": session,
            "username": "tester",
            "date": (EPOCH + timedelta(microseconds=next(self._tick))).isoformat(),
            "version": "5.5",
        }

    def request(self, channel: str, msg_type: str, content: Msg | None = None) -> Msg:
        """Record a message the frontend sends; returns it."""
        msg = {
            "header": self._header(msg_type, "frontend"),
            "parent_header": {},
            "metadata": {},
            "content": content or {},
        }
        self.sent[msg["header"]["msg_id"]] = (channel, msg, float(next(self._tick)))
        return msg

    def kernel(
        self,
        channel: str,
        msg_type: str,
        content: Msg | None = None,
        *,
        parent: Msg | None,
        session: str = "kernel",
        **header: Any,
    ) -> Received:
        """Record a message the kernel sends (``header`` overrides header fields); returns it."""
        msg = {
            "header": {**self._header(msg_type, session), **header},
            "parent_header": dict(parent["header"]) if parent is not None else {},
            "metadata": {},
            "content": content or {},
        }
        message = Received(channel, msg, float(next(self._tick)))
        self.received.append(message)
        return message

    def busy(self, parent: Msg) -> Received:
        return self.kernel("iopub", "status", {"execution_state": "busy"}, parent=parent)

    def idle(self, parent: Msg) -> Received:
        return self.kernel("iopub", "status", {"execution_state": "idle"}, parent=parent)

    def output(self, parent: Msg, msg_type: str, content: Msg) -> Received:
        return self.kernel("iopub", msg_type, content, parent=parent)

    def reply(self, request: Msg, content: Msg, *, channel: str | None = None) -> Received:
        """The reply to ``request`` on its own channel (or on ``channel``)."""
        msg_type = request["header"]["msg_type"].removesuffix("_request") + "_reply"
        sent_on = self.sent[request["header"]["msg_id"]][0]
        return self.kernel(channel or sent_on, msg_type, content, parent=request)

    def exchange(
        self, channel: str, msg_type: str, content: Msg | None, reply: Msg, *outputs: Msg
    ) -> Msg:
        """A whole well-behaved exchange: request, busy, outputs, reply, idle."""
        request = self.request(channel, msg_type, content)
        self.busy(request)
        for output in outputs:
            self.output(request, output["msg_type"], output["content"])
        self.reply(request, reply)
        self.idle(request)
        return request

    def execute(self, code: str, count: int | None, *outputs: Msg, **options: Any) -> Msg:
        """An execute_request that ran; ``count`` is None for a silent one."""
        content = {"code": code, "silent": False, "store_history": True, **options}
        published = [] if options.get("silent") else [execute_input(code, count)]
        reply = ok_execute(count if count is not None else 0)
        return self.exchange("shell", "execute_request", content, reply, *published, *outputs)

    def violations(self, **options: Any) -> list[Violation]:
        found = validate(self.sent, self.received, **options)
        assert {v.rule for v in found} <= RULES.keys(), "every rule id is documented in RULES"
        return found

    def rules(self, **options: Any) -> list[str]:
        return sorted({v.rule for v in self.violations(**options)})


def execute_input(code: str, count: int | None) -> Msg:
    return {"msg_type": "execute_input", "content": {"code": code, "execution_count": count}}


def ok_execute(count: int) -> Msg:
    return {"status": "ok", "execution_count": count, "payload": [], "user_expressions": {}}


def stream(text: str, name: str = "stdout") -> Msg:
    return {"msg_type": "stream", "content": {"name": name, "text": text}}


def execute_result(count: int, text: str) -> Msg:
    content = {"execution_count": count, "data": {"text/plain": text}, "metadata": {}}
    return {"msg_type": "execute_result", "content": content}


KERNEL_INFO = {
    "status": "ok",
    "protocol_version": "5.5",
    "implementation": "fake",
    "implementation_version": "1.0",
    "language_info": {"name": "python", "version": "3.12", "mimetype": "text/x-python"},
    "banner": "a fake kernel",
    "help_links": [{"text": "Python", "url": "https://docs.python.org"}],
    "supported_features": ["kernel subshells"],
}

ERROR = {"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["Traceback"]}


def assert_clean(conversation: Conversation, **options: Any) -> None:
    violations = conversation.violations(**options)
    assert not violations, "\n".join(map(str, violations))


# -- well-formed conversations pass ------------------------------------------------------------
def test_execute_with_every_kind_of_output_passes() -> None:
    c = Conversation()
    display = {"data": {"text/html": "<b>x</b>"}, "metadata": {}, "transient": {"display_id": "d"}}
    c.execute(
        "f()",
        1,
        stream("out"),
        stream("err", "stderr"),
        {"msg_type": "display_data", "content": display},
        {"msg_type": "update_display_data", "content": display},
        {"msg_type": "clear_output", "content": {"wait": True}},
        {
            "msg_type": "display_data",
            "content": {"data": {"application/json": {"a": [1]}}, "metadata": {}},
        },
        execute_result(1, "42"),
    )
    assert_clean(c, check_kernel_clock=True)


def test_execute_error_silent_unstored_and_aborted_pass() -> None:
    c = Conversation()
    failing = c.request("shell", "execute_request", {"code": "1/0"})
    c.busy(failing)
    c.output(failing, "execute_input", {"code": "1/0", "execution_count": 1})
    c.output(failing, "error", ERROR)
    c.reply(failing, {"status": "error", "execution_count": 1, **ERROR})
    c.idle(failing)
    aborted = c.request("shell", "execute_request", {"code": "never"})
    c.busy(aborted)
    c.reply(aborted, {"status": "aborted"})
    c.idle(aborted)
    c.execute("x = 1", None, silent=True)
    # store_history=False runs and shows the current count but does not take a new one.
    c.exchange(
        "shell",
        "execute_request",
        {"code": "2", "store_history": False},
        ok_execute(1),
        execute_input("2", 2),
    )
    c.execute("3", 2, execute_result(2, "3"))
    assert_clean(c)


@pytest.mark.parametrize(
    ("channel", "msg_type", "content", "reply", "outputs"),
    [
        ("shell", "kernel_info_request", None, KERNEL_INFO, []),
        ("control", "kernel_info_request", None, KERNEL_INFO, []),
        (
            "shell",
            "inspect_request",
            {"code": "print", "cursor_pos": 5, "detail_level": 0},
            {"status": "ok", "found": True, "data": {"text/plain": "print(...)"}, "metadata": {}},
            [],
        ),
        (
            "shell",
            "complete_request",
            {"code": "impo", "cursor_pos": 4},
            {
                "status": "ok",
                "matches": ["import"],
                "cursor_start": 0,
                "cursor_end": 4,
                "metadata": {},
            },
            [],
        ),
        (
            "shell",
            "is_complete_request",
            {"code": "for x in y:"},
            {"status": "incomplete", "indent": "    "},
            [],
        ),
        ("shell", "is_complete_request", {"code": "x"}, {"status": "complete"}, []),
        (
            "shell",
            "history_request",
            {"hist_access_type": "tail", "n": 2, "output": False, "raw": True},
            {"status": "ok", "history": [[0, 1, "a = 1"], [0, 2, ["b", "out"]]]},
            [],
        ),
        (
            "shell",
            "comm_info_request",
            {},
            {"status": "ok", "comms": {"c1": {"target_name": "jupyter.widget"}}},
            [],
        ),
        (
            "control",
            "shutdown_request",
            {"restart": False},
            {"status": "ok", "restart": False},
            [{"msg_type": "shutdown_reply", "content": {"status": "ok", "restart": False}}],
        ),
        ("control", "interrupt_request", {}, {"status": "ok"}, []),
        (
            "shell",
            "connect_request",
            {},
            {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "hb_port": 4, "control_port": 5},
            [],
        ),
        (
            "control",
            "debug_request",
            {"type": "request", "seq": 1, "command": "initialize", "arguments": {}},
            {
                "type": "response",
                "seq": 1,
                "request_seq": 1,
                "success": True,
                "command": "initialize",
            },
            [
                {
                    "msg_type": "debug_event",
                    "content": {"seq": 2, "type": "event", "event": "initialized"},
                }
            ],
        ),
        ("control", "debug_request", {"type": "request", "seq": 1, "command": "x"}, {}, []),
        ("control", "create_subshell_request", {}, {"status": "ok", "subshell_id": "s1"}, []),
        ("control", "delete_subshell_request", {"subshell_id": "s1"}, {"status": "ok"}, []),
        ("control", "list_subshell_request", {}, {"status": "ok", "subshell_id": ["s1"]}, []),
        ("control", "usage_request", {}, {"hostname": "h", "kernel_cpu": 0.5}, []),
    ],
)
def test_each_request_type_answered_correctly_passes(
    channel: str, msg_type: str, content: Msg | None, reply: Msg, outputs: list[Msg]
) -> None:
    c = Conversation()
    c.exchange(channel, msg_type, content, reply, *outputs)
    assert_clean(c, check_kernel_clock=True)


def test_comms_both_ways_and_stdin_pass() -> None:
    c = Conversation()
    opened = c.request("shell", "comm_open", {"comm_id": "c1", "target_name": "t", "data": {}})
    c.busy(opened)
    c.output(opened, "comm_msg", {"comm_id": "c1", "data": {"ack": True}})
    c.idle(opened)
    cell = c.request("shell", "execute_request", {"code": "input()", "allow_stdin": True})
    c.busy(cell)
    c.output(cell, "execute_input", {"code": "input()", "execution_count": 1})
    c.kernel("stdin", "input_request", {"prompt": "? ", "password": False}, parent=cell)
    c.output(
        cell, "comm_open", {"comm_id": "c2", "target_name": "t", "data": {}, "target_module": "m"}
    )
    c.output(cell, "comm_close", {"comm_id": "c2", "data": {}})
    c.reply(cell, ok_execute(1))
    c.idle(cell)
    assert_clean(c)


def test_late_thread_output_after_idle_passes_by_default() -> None:
    c = Conversation()
    cell = c.execute("Thread(target=work).start()", 1)
    c.output(cell, "stream", {"name": "stdout", "text": "done later\n"})
    assert_clean(c)


def test_requests_sent_before_iopub_delivered_are_exempt_from_iopub_rules() -> None:
    c = Conversation(welcome=False)
    first = c.request("shell", "kernel_info_request")
    # The SUB socket was not subscribed yet: the busy was lost, the idle got through.
    c.reply(first, KERNEL_INFO)
    c.idle(first)
    c.exchange("shell", "kernel_info_request", None, KERNEL_INFO)
    assert_clean(c)


def test_incremental_validator_reports_as_messages_arrive() -> None:
    c = Conversation()
    validator = Validator()
    for message in c.received:
        assert validator.received(message) == []
    request = c.request("shell", "kernel_info_request")
    validator.sent("shell", request)
    assert [v.rule for v in validator.received(c.reply(request, KERNEL_INFO))] == []
    second = c.reply(request, KERNEL_INFO)
    found = validator.received(second)
    assert [v.rule for v in found] == ["reply.duplicate"]
    assert found[0].msg_id == second.msg["header"]["msg_id"]
    assert found[0].parent_id == request["header"]["msg_id"]
    assert found[0].channel == "shell"
    assert found[0].index == 2
    final = validator.finish()
    assert [v.rule for v in final] == [
        "reply.duplicate",
        "status.busy-missing",
        "status.idle-missing",
    ]
    assert validator.finish() is final


def test_sent_as_a_plain_list_counts_every_request_as_sent_first() -> None:
    c = Conversation()
    c.execute("1", 1)
    sent = [(channel, msg) for channel, msg, _ in c.sent.values()]
    assert validate(sent, c.received) == []


# -- each broken rule is caught under its own name ---------------------------------------------
def broken(build: Callable[[Conversation], None], **options: Any) -> list[str]:
    c = Conversation()
    build(c)
    return c.rules(**options)


def test_missing_content_field_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.exchange(
            "shell",
            "execute_request",
            {"code": "1"},
            {"status": "ok", "payload": [], "user_expressions": {}},
            execute_input("1", 1),
        )

    assert broken(build) == ["content.missing"]


def test_wrong_field_type_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.execute("print()", 1, {"msg_type": "stream", "content": {"name": "stdout", "text": 5}})

    assert broken(build) == ["content.type"]


@pytest.mark.parametrize(
    ("msg_type", "content", "rule"),
    [
        ("status", {"execution_state": "sleeping"}, "content.value"),
        ("stream", {"name": "stdlog", "text": "x"}, "content.value"),
        ("error", {"ename": "E", "evalue": "v", "traceback": "not a list"}, "content.type"),
        ("error", {"ename": "E", "evalue": "v", "traceback": [1, 2]}, "content.type"),
        ("display_data", {"data": {"text/plain": "x"}}, "content.missing"),
        ("display_data", {"data": {"plain": "x"}, "metadata": {}}, "content.value"),
        ("display_data", {"data": {"image/png": b"\x89PNG"}, "metadata": {}}, "content.type"),
        ("update_display_data", {"data": {}, "metadata": {}, "transient": {}}, "content.missing"),
        ("update_display_data", {"data": {}, "metadata": {}}, "content.missing"),
        ("execute_result", {"execution_count": "1", "data": {}, "metadata": {}}, "content.type"),
        ("clear_output", {}, "content.missing"),
        ("comm_open", {"comm_id": "c", "data": {}}, "content.missing"),
        ("comm_msg", {"comm_id": 3, "data": {}}, "content.type"),
        ("debug_event", {"seq": 3, "type": "response", "event": "stopped"}, "content.value"),
        ("debug_event", {"type": "event", "event": "stopped"}, "content.missing"),
    ],
)
def test_malformed_iopub_content_is_caught(msg_type: str, content: Msg, rule: str) -> None:
    def build(c: Conversation) -> None:
        c.exchange(
            "shell",
            "comm_info_request",
            {},
            {"status": "ok", "comms": {}},
            {"msg_type": msg_type, "content": content},
        )

    assert broken(build) == [rule]


@pytest.mark.parametrize(
    ("msg_type", "reply", "rule"),
    [
        (
            "kernel_info_request",
            {**KERNEL_INFO, "language_info": {"version": "3"}},
            "content.missing",
        ),
        ("kernel_info_request", {**KERNEL_INFO, "help_links": [{"text": "t"}]}, "content.missing"),
        ("kernel_info_request", {**KERNEL_INFO, "supported_features": "all"}, "content.type"),
        (
            "kernel_info_request",
            {k: v for k, v in KERNEL_INFO.items() if k != "banner"},
            "content.missing",
        ),
        ("kernel_info_request", {**KERNEL_INFO, "status": "fine"}, "content.value"),
        (
            "complete_request",
            {"status": "ok", "matches": ["a"], "cursor_start": 0, "metadata": {}},
            "content.missing",
        ),
        (
            "inspect_request",
            {"status": "ok", "found": "yes", "data": {}, "metadata": {}},
            "content.type",
        ),
        ("is_complete_request", {"status": "incomplete"}, "content.missing"),
        ("is_complete_request", {"status": "ok"}, "content.value"),
        ("history_request", {"status": "ok", "history": [[1, "x"]]}, "content.type"),
        ("comm_info_request", {"status": "ok", "comms": {"c": {}}}, "content.missing"),
        ("shutdown_request", {"status": "ok"}, "content.missing"),
        ("list_subshell_request", {"status": "ok", "subshell_id": [1]}, "content.type"),
        ("create_subshell_request", {"status": "ok"}, "content.missing"),
        ("interrupt_request", {"status": "error", "ename": "E", "evalue": "v"}, "content.missing"),
        ("interrupt_request", {}, "content.missing"),
        (
            "debug_request",
            {"type": "response", "command": "x", "request_seq": 1},
            "content.missing",
        ),
    ],
)
def test_malformed_reply_content_is_caught(msg_type: str, reply: Msg, rule: str) -> None:
    def build(c: Conversation) -> None:
        c.exchange("control", msg_type, {}, reply)

    assert broken(build) == [rule]


def test_input_request_without_password_field_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.request("shell", "execute_request", {"code": "input()", "allow_stdin": True})
        c.busy(cell)
        c.output(cell, "execute_input", {"code": "input()", "execution_count": 1})
        c.kernel("stdin", "input_request", {"prompt": ""}, parent=cell)
        c.reply(cell, ok_execute(1))
        c.idle(cell)

    assert broken(build) == ["content.missing"]


def test_input_request_when_stdin_was_not_allowed_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.request("shell", "execute_request", {"code": "input()", "allow_stdin": False})
        c.busy(cell)
        c.output(cell, "execute_input", {"code": "input()", "execution_count": 1})
        c.kernel("stdin", "input_request", {"prompt": "", "password": False}, parent=cell)
        c.reply(cell, ok_execute(1))
        c.idle(cell)

    assert broken(build) == ["stdin.not-allowed"]


def test_input_request_for_a_request_other_than_execute_is_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "complete_request", {"code": "x", "cursor_pos": 1})
        c.busy(request)
        c.kernel("stdin", "input_request", {"prompt": "", "password": False}, parent=request)
        reply = {"status": "ok", "matches": [], "cursor_start": 1, "cursor_end": 1, "metadata": {}}
        c.reply(request, reply)
        c.idle(request)

    assert broken(build) == ["stdin.unrequested"]


def test_reply_on_the_wrong_channel_is_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("control", "kernel_info_request")
        c.busy(request)
        c.reply(request, KERNEL_INFO, channel="shell")
        c.idle(request)

    assert broken(build) == ["reply.channel"]


def test_reply_of_the_wrong_type_is_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        c.kernel("shell", "comm_info_reply", {"status": "ok", "comms": {}}, parent=request)
        c.idle(request)

    assert broken(build) == ["reply.type"]


def test_reply_whose_parent_header_misnames_the_request_is_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        reply = c.reply(request, KERNEL_INFO)
        reply.msg["parent_header"]["msg_type"] = "execute_request"
        c.idle(request)

    assert broken(build) == ["parent.mismatch"]


def test_two_replies_to_one_request_are_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        c.reply(request, KERNEL_INFO)
        c.reply(request, KERNEL_INFO)
        c.idle(request)

    assert broken(build) == ["reply.duplicate"]


def test_request_never_answered_is_caught_unless_cut_off() -> None:
    c = Conversation()
    request = c.request("shell", "execute_request", {"code": "import time; time.sleep(99)"})
    c.busy(request)
    c.output(request, "execute_input", {"code": "...", "execution_count": 1})
    assert c.rules() == ["reply.missing", "status.idle-missing"]
    assert c.rules(cut_off={request["header"]["msg_id"]}) == []


def test_reply_to_a_request_never_sent_is_caught() -> None:
    def build(c: Conversation) -> None:
        stranger = {"header": {"msg_id": "nobody-sent-this", "msg_type": "kernel_info_request"}}
        c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=stranger)

    assert broken(build) == ["reply.unrequested"]


def test_output_before_busy_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.request("shell", "execute_request", {"code": "print(1)"})
        c.output(cell, "execute_input", {"code": "print(1)", "execution_count": 1})
        c.busy(cell)
        c.output(cell, "stream", {"name": "stdout", "text": "1\n"})
        c.reply(cell, ok_execute(1))
        c.idle(cell)

    assert broken(build) == ["status.busy-before-output"]


def test_missing_busy_and_idle_are_caught() -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.reply(request, KERNEL_INFO)

    assert broken(build) == ["status.busy-missing", "status.idle-missing"]


def test_output_after_idle_is_caught_when_late_output_is_not_allowed() -> None:
    def build(c: Conversation) -> None:
        cell = c.execute("Thread(target=work).start()", 1)
        c.output(cell, "stream", {"name": "stdout", "text": "late\n"})

    assert broken(build) == []
    assert broken(build, allow_late_output=False) == ["status.output-after-idle"]


def test_result_after_idle_is_caught_even_when_late_output_is_allowed() -> None:
    def build(c: Conversation) -> None:
        cell = c.execute("1", 1)
        c.output(cell, "execute_result", execute_result(1, "1")["content"])

    assert broken(build) == ["status.output-after-idle"]


def test_second_busy_for_one_request_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.execute("1", 1)
        c.busy(cell)

    assert broken(build) == ["status.repeated"]


def test_skipped_execution_count_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.execute("a", 1)
        c.execute("b", 3)

    assert broken(build) == ["execute.count-skipped"]


def test_count_taken_by_an_unstored_execute_is_named_as_the_cause() -> None:
    c = Conversation()
    c.execute("a", 1)
    unstored = c.exchange(
        "shell",
        "execute_request",
        {"code": "b", "store_history": False},
        ok_execute(2),
        execute_input("b", 2),
    )
    c.execute("c", 3)
    (violation,) = c.violations()
    assert violation.rule == "execute.count-skipped"
    assert unstored["header"]["msg_id"] in violation.message


def test_repeated_execution_count_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.execute("a", 1)
        c.execute("b", 1)

    assert broken(build) == ["execute.count-repeated"]


def test_counts_restart_with_a_new_kernel_session() -> None:
    c = Conversation()
    c.execute("a", 1)
    c.execute("b", 2)
    # After a restart the kernel has another session id and counts from 1 again.
    cell = c.request("shell", "execute_request", {"code": "c"})
    c.kernel("iopub", "status", {"execution_state": "busy"}, parent=cell, session="restarted")
    input_content = {"code": "c", "execution_count": 1}
    c.kernel("iopub", "execute_input", input_content, parent=cell, session="restarted")
    c.kernel("shell", "execute_reply", ok_execute(1), parent=cell, session="restarted")
    c.kernel("iopub", "status", {"execution_state": "idle"}, parent=cell, session="restarted")
    assert_clean(c)


def test_requests_sent_before_a_restarted_kernel_delivers_iopub_are_exempt() -> None:
    c = Conversation()
    c.execute("a", 1)
    c.exchange("control", "shutdown_request", {"restart": True}, {"status": "ok", "restart": True})
    # The new process has not been heard on iopub yet: its status messages may be lost.
    early = c.request("shell", "kernel_info_request")
    c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=early, session="restarted")
    c.kernel("iopub", "iopub_welcome", {"subscription": ""}, parent=None, session="restarted")
    late = c.request("shell", "kernel_info_request")
    c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=late, session="restarted")
    assert [v.rule for v in c.violations()] == ["status.busy-missing", "status.idle-missing"]
    assert {v.msg_id for v in c.violations()} == {late["header"]["msg_id"]}


def test_execute_input_count_differing_from_reply_count_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.exchange("shell", "execute_request", {"code": "a"}, ok_execute(1), execute_input("a", 2))

    assert broken(build) == ["execute.count-mismatch"]


def test_execute_result_count_differing_from_reply_count_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.execute("a", 1, execute_result(7, "a"))

    assert broken(build) == ["execute.count-mismatch"]


def test_silent_execute_publishing_input_or_result_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.exchange(
            "shell",
            "execute_request",
            {"code": "x", "silent": True},
            ok_execute(0),
            execute_input("x", 1),
            execute_result(1, "x"),
        )

    assert broken(build) == ["execute.silent-output"]


def test_non_silent_execute_without_execute_input_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.exchange("shell", "execute_request", {"code": "x"}, ok_execute(1))

    assert broken(build) == ["execute.input-missing"]


def test_execute_refused_before_it_ran_takes_no_input_and_no_count() -> None:
    # A kernel may refuse an execute it cannot run (its subshell was deleted): an error reply
    # with the last count used, no execute_input, no error output. The next cell goes on.
    c = Conversation()
    c.execute("a", 1)
    refused = {"status": "error", "execution_count": 1, "ename": "SubshellNotFound"}
    c.exchange(
        "shell", "execute_request", {"code": "b"}, {**refused, "evalue": "", "traceback": []}
    )
    c.execute("c", 2)
    assert_clean(c)


def test_execute_error_with_error_output_but_no_execute_input_is_caught() -> None:
    def build(c: Conversation) -> None:
        failed = {"status": "error", "execution_count": 1, **ERROR}
        error = {"msg_type": "error", "content": ERROR}
        c.exchange("shell", "execute_request", {"code": "1/0"}, failed, error)

    assert broken(build) == ["execute.input-missing"]


def test_unknown_msg_type_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.request("shell", "execute_request", {"code": "h.update(x)"})
        c.busy(cell)
        c.output(cell, "execute_input", {"code": "h.update(x)", "execution_count": 1})
        c.output(cell, "iopub_update_display_data", {"data": {}, "metadata": {}})
        c.reply(cell, ok_execute(1))
        c.idle(cell)

    assert broken(build) == ["msgtype.unknown"]


def test_known_msg_type_on_the_wrong_channel_is_caught() -> None:
    def build(c: Conversation) -> None:
        cell = c.request("shell", "execute_request", {"code": "print(1)"})
        c.busy(cell)
        c.output(cell, "execute_input", {"code": "print(1)", "execution_count": 1})
        c.kernel("shell", "stream", {"name": "stdout", "text": "1"}, parent=cell)
        c.reply(cell, ok_execute(1))
        c.idle(cell)

    assert broken(build) == ["msgtype.channel"]


@pytest.mark.parametrize("date", ["yesterday", "2025-13-45T99:00:00Z", 1735689600, None])
def test_bad_header_date_is_caught(date: object) -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=request, date=date)
        c.idle(request)

    assert broken(build) == ["header.date"]


def test_datetime_header_date_from_jupyter_client_passes() -> None:
    # jupyter_client's Session.deserialize turns header dates into datetimes.
    c = Conversation()
    request = c.request("shell", "kernel_info_request")
    c.busy(request)
    c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=request, date=EPOCH)
    c.idle(request)
    assert_clean(c)


@pytest.mark.parametrize(
    ("header", "rule"),
    [
        ({"version": "4.1"}, "header.version"),
        ({"version": 5.3}, "header.field"),
        ({"session": None}, "header.field"),
        ({"username": 7}, "header.field"),
    ],
)
def test_bad_header_field_is_caught(header: Msg, rule: str) -> None:
    def build(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        c.kernel("shell", "kernel_info_reply", KERNEL_INFO, parent=request, **header)
        c.idle(request)

    assert broken(build) == [rule]


def test_missing_header_field_and_bad_envelope_are_caught() -> None:
    c = Conversation()
    request = c.request("shell", "kernel_info_request")
    c.busy(request)
    reply = c.reply(request, KERNEL_INFO)
    del reply.msg["header"]["username"]
    reply.msg["metadata"] = None
    c.idle(request)
    assert c.rules() == ["envelope.field", "header.field"]


def test_output_without_parent_is_caught() -> None:
    def build(c: Conversation) -> None:
        c.kernel("iopub", "stream", {"name": "stdout", "text": "who am I?"}, parent=None)
        c.kernel("iopub", "status", {"execution_state": "starting"}, parent=None)

    assert broken(build) == ["parent.missing"]


def test_undecodable_message_is_caught() -> None:
    c = Conversation()
    c.received.append(
        Received(
            "shell",
            {
                "header": {"msg_type": "harness_undecodable", "msg_id": ""},
                "content": {"error": "bad sig"},
            },
            99.0,
        )
    )
    assert c.rules() == ["wire.undecodable"]


def test_reply_stamped_outside_busy_and_idle_is_caught_by_the_kernel_clock_check() -> None:
    def after_idle(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        c.busy(request)
        idle = c.idle(request)
        reply = c.reply(request, KERNEL_INFO)
        # The reply arrives first (another socket) but the kernel stamped it after the idle.
        c.received[-2:] = [reply, idle]

    def before_busy(c: Conversation) -> None:
        request = c.request("shell", "kernel_info_request")
        reply = c.reply(request, KERNEL_INFO)
        c.received.pop()
        c.busy(request)
        c.received.append(reply)
        c.idle(request)

    assert broken(after_idle) == []
    assert broken(after_idle, check_kernel_clock=True) == ["order.reply-after-idle"]
    assert broken(before_busy) == []
    assert broken(before_busy, check_kernel_clock=True) == ["order.reply-before-busy"]


def test_violation_reads_as_a_diagnosis() -> None:
    c = Conversation()
    request = c.request("control", "kernel_info_request")
    c.busy(request)
    c.reply(request, KERNEL_INFO, channel="shell")
    c.idle(request)
    (violation,) = c.violations()
    text = str(violation)
    assert "[reply.channel]" in text
    assert "shell:kernel_info_reply" in text
    assert "control" in violation.message


# -- a real kernel -----------------------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settle(fe: Frontend, msg_ids: list[str]) -> None:
    """Wait for the idle of each request: a reply may overtake its request's last iopub
    messages, and whatever arrives after the frontend closes is never recorded."""
    for msg_id in msg_ids:

        def is_idle(m: Received, msg_id: str = msg_id) -> bool:
            state = m.content.get("execution_state")
            return m.parent_id == msg_id and m.msg_type == "status" and state == "idle"

        await fe.wait_for(is_idle, timeout=30, what=f"idle after {msg_id}")


@pytest.mark.anyio
async def test_cokernel_conversation_has_no_violations() -> None:
    async with Frontend.launch("cokernel") as fe:
        ready = len(fe.sent)  # start-up requests may have lost their iopub to the subscription
        ok = await fe.run("x = 6 * 7\nx")
        assert ok.reply["status"] == "ok"
        failed = await fe.run("1 / 0")
        assert failed.reply["status"] == "error"
        await fe.run("from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))")
        printed = await fe.run("print('hello')")
        assert printed.stdout == "hello\n"
        await fe.run("y = 1", silent=True)
        completion = await fe.complete("impo")
        assert "import" in completion["matches"]
        info = await fe.kernel_info(channel="control")
        assert info["status"] == "ok"
        await fe.inspect("print")
        await fe.request("shell", "is_complete_request", {"code": "for i in x:"})
        await settle(fe, list(fe.sent)[ready:])
    violations = validate(fe.sent, fe.log)
    assert not violations, "\n".join(map(str, violations))
