"""What a well-formed message from a kernel looks like, per Jupyter messaging protocol 5.5.

This is the harness's own reading of the specification, written independently of any kernel
(the harness must not trust the code it tests): the catalogue of message types a kernel may
send and on which channels, the header fields, and the content fields of every reply, iopub and
stdin message. :func:`check_message` returns the problems of one message in isolation; the
rules that need more than one message (order, replies per request, execution counts) live in
:mod:`cokernel_harness.validator`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# -- the catalogue --------------------------------------------------------------------------

#: Requests a frontend sends that the kernel must answer with exactly one ``*_reply``.
#: ``usage_request`` is not in the specification; ipykernel and jupyter-resource-usage use it.
REQUEST_TYPES = frozenset(
    {
        "execute_request",
        "inspect_request",
        "complete_request",
        "history_request",
        "is_complete_request",
        "comm_info_request",
        "kernel_info_request",
        "connect_request",
        "shutdown_request",
        "interrupt_request",
        "debug_request",
        "create_subshell_request",
        "delete_subshell_request",
        "list_subshell_request",
        "usage_request",
    }
)

REPLY_CHANNELS = frozenset({"shell", "control"})

IOPUB_TYPES = frozenset(
    {
        "status",
        "stream",
        "display_data",
        "update_display_data",
        "execute_input",
        "execute_result",
        "error",
        "clear_output",
        "comm_open",
        "comm_msg",
        "comm_close",
        "iopub_welcome",
        "debug_event",
    }
)


def reply_type(request_type: str) -> str:
    """``execute_request`` -> ``execute_reply``."""
    return request_type.removesuffix("_request") + "_reply"


#: Every msg_type a kernel may send, with the channels it may arrive on. Replies travel on the
#: channel of their request (checked per request); shutdown_reply is also broadcast on iopub
#: since protocol 5.4 so that every frontend learns of the shutdown.
KERNEL_MESSAGES: Mapping[str, frozenset[str]] = {
    **{reply_type(r): REPLY_CHANNELS for r in REQUEST_TYPES},
    "shutdown_reply": REPLY_CHANNELS | {"iopub"},
    **{t: frozenset({"iopub"}) for t in IOPUB_TYPES},
    "input_request": frozenset({"stdin"}),
}

#: Replies whose content carries ``status`` ok | error | aborted. debug_reply is a DAP
#: response, connect_reply predates the status field, usage_reply is outside the spec.
STATUS_REPLIES = frozenset(
    reply_type(r) for r in REQUEST_TYPES - {"debug_request", "connect_request", "usage_request"}
)


# -- problems -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with one message: the rule it breaks and what was expected instead."""

    rule: str
    detail: str


# -- value kinds ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """A JSON value type, named as a reader of the violation expects to see it."""

    name: str
    test: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


STR = Kind("str", lambda v: isinstance(v, str))
INT = Kind("int", _is_int)
BOOL = Kind("bool", lambda v: isinstance(v, bool))
DICT = Kind("dict", lambda v: isinstance(v, dict))
LIST = Kind("list", lambda v: isinstance(v, list))
STR_LIST = Kind("list of str", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v))


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Field:
    """One content field: its kind, whether it must be present, and its allowed values."""

    name: str
    kind: Kind
    required: bool = True
    values: tuple[str, ...] | None = None

    def check(self, content: Mapping[str, Any], where: str = "content") -> Iterator[Problem]:
        if self.name not in content:
            if self.required:
                yield Problem(
                    "content.missing", f"{where}.{self.name} ({self.kind.name}) is missing"
                )
            return
        value = content[self.name]
        if not self.kind.test(value):
            yield Problem(
                "content.type",
                f"{where}.{self.name} should be {self.kind.name}, got {_type_name(value)} {value!r:.80}",
            )
        elif self.values is not None and value not in self.values:
            allowed = " | ".join(self.values)
            yield Problem(
                "content.value", f"{where}.{self.name} should be {allowed}, got {value!r}"
            )


def check_fields(
    content: Mapping[str, Any], fields: tuple[Field, ...], where: str = "content"
) -> Iterator[Problem]:
    for spec in fields:
        yield from spec.check(content, where)


# -- content of each message type -----------------------------------------------------------
ERROR_FIELDS = (Field("ename", STR), Field("evalue", STR), Field("traceback", STR_LIST))
MIME_BUNDLE = (Field("data", DICT), Field("metadata", DICT))
COMM_FIELDS = (Field("comm_id", STR), Field("data", DICT))

#: Fields of an ``ok`` reply (beyond ``status``) and of every other kernel message.
FIELDS: Mapping[str, tuple[Field, ...]] = {
    "kernel_info_reply": (
        Field("protocol_version", STR),
        Field("implementation", STR),
        Field("implementation_version", STR),
        Field("language_info", DICT),
        Field("banner", STR),
        Field("help_links", LIST, required=False),
        Field("supported_features", STR_LIST, required=False),
        Field("debugger", BOOL, required=False),
    ),
    "execute_reply": (
        Field("execution_count", INT),
        Field("payload", LIST),
        Field("user_expressions", DICT),
    ),
    "inspect_reply": (Field("found", BOOL), *MIME_BUNDLE),
    "complete_reply": (
        Field("matches", STR_LIST),
        Field("cursor_start", INT),
        Field("cursor_end", INT),
        Field("metadata", DICT),
    ),
    "history_reply": (Field("history", LIST),),
    "is_complete_reply": (Field("indent", STR, required=False),),
    "comm_info_reply": (Field("comms", DICT),),
    "shutdown_reply": (Field("restart", BOOL),),
    "interrupt_reply": (),
    "connect_reply": tuple(
        Field(f"{name}_port", INT) for name in ("shell", "iopub", "stdin", "hb")
    ),
    "debug_reply": (),
    "create_subshell_reply": (Field("subshell_id", STR),),
    "delete_subshell_reply": (),
    "list_subshell_reply": (Field("subshell_id", STR_LIST),),
    "usage_reply": (),
    "status": (Field("execution_state", STR, values=("busy", "idle", "starting")),),
    "stream": (Field("name", STR, values=("stdout", "stderr")), Field("text", STR)),
    "display_data": (*MIME_BUNDLE, Field("transient", DICT, required=False)),
    "update_display_data": (*MIME_BUNDLE, Field("transient", DICT)),
    "execute_input": (Field("code", STR), Field("execution_count", INT)),
    "execute_result": (Field("execution_count", INT), *MIME_BUNDLE),
    "error": ERROR_FIELDS,
    "clear_output": (Field("wait", BOOL),),
    "comm_open": (
        *COMM_FIELDS,
        Field("target_name", STR),
        Field("target_module", STR, required=False),
    ),
    "comm_msg": COMM_FIELDS,
    "comm_close": COMM_FIELDS,
    "iopub_welcome": (Field("subscription", STR),),
    "debug_event": (
        Field("type", STR, values=("event",)),
        Field("event", STR),
        Field("seq", INT),
    ),
    "input_request": (Field("prompt", STR), Field("password", BOOL)),
}


def _mime_bundle(content: Mapping[str, Any]) -> Iterator[Problem]:
    data = content.get("data")
    if not isinstance(data, dict):
        return
    for mimetype, value in data.items():
        if not isinstance(mimetype, str) or "/" not in mimetype:
            yield Problem("content.value", f"content.data key {mimetype!r} is not a MIME type")
        # JSON mimetypes (application/json, application/*+json) carry any JSON value; every
        # other representation, images included (base64), is a string on the wire.
        elif not mimetype.endswith("json") and not isinstance(value, str):
            yield Problem(
                "content.type",
                f"content.data[{mimetype!r}] should be str, got {_type_name(value)}",
            )


def _transient_display_id(content: Mapping[str, Any]) -> Iterator[Problem]:
    transient = content.get("transient")
    if isinstance(transient, dict):
        yield from Field("display_id", STR).check(transient, "content.transient")


def _optional_display_id(content: Mapping[str, Any]) -> Iterator[Problem]:
    transient = content.get("transient")
    if isinstance(transient, dict) and "display_id" in transient:
        yield from _transient_display_id(content)


def _language_info(content: Mapping[str, Any]) -> Iterator[Problem]:
    info = content.get("language_info")
    if isinstance(info, dict):
        fields = (
            Field("name", STR),
            Field("version", STR, required=False),
            Field("mimetype", STR, required=False),
            Field("file_extension", STR, required=False),
        )
        yield from check_fields(info, fields, "content.language_info")
    links = content.get("help_links")
    if isinstance(links, list):
        for i, link in enumerate(links):
            where = f"content.help_links[{i}]"
            if not isinstance(link, dict):
                yield Problem("content.type", f"{where} should be dict, got {_type_name(link)}")
            else:
                yield from check_fields(link, (Field("text", STR), Field("url", STR)), where)


def _comms(content: Mapping[str, Any]) -> Iterator[Problem]:
    comms = content.get("comms")
    if isinstance(comms, dict):
        for comm_id, info in comms.items():
            where = f"content.comms[{comm_id!r}]"
            if not isinstance(info, dict):
                yield Problem("content.type", f"{where} should be dict, got {_type_name(info)}")
            else:
                yield from Field("target_name", STR).check(info, where)


def _history(content: Mapping[str, Any]) -> Iterator[Problem]:
    history = content.get("history")
    if isinstance(history, list):
        for i, entry in enumerate(history):
            # (session, line_number, input) or (session, line_number, (input, output))
            if not isinstance(entry, list | tuple) or len(entry) != 3:
                yield Problem(
                    "content.type",
                    f"content.history[{i}] should be a (session, line, input) triple, got {entry!r:.80}",
                )
                return


def _is_complete(content: Mapping[str, Any]) -> Iterator[Problem]:
    if content.get("status") == "incomplete":
        yield from Field("indent", STR).check(content)


def _dap_response(content: Mapping[str, Any]) -> Iterator[Problem]:
    # A kernel without a debugger may answer with an empty dict; otherwise a DAP response.
    if content:
        fields = (
            Field("type", STR, values=("response",)),
            Field("seq", INT),
            Field("success", BOOL),
            Field("command", STR),
            Field("request_seq", INT),
        )
        yield from check_fields(content, fields)


EXTRA_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], Iterable[Problem]]] = {
    "kernel_info_reply": _language_info,
    "inspect_reply": _mime_bundle,
    "comm_info_reply": _comms,
    "history_reply": _history,
    "is_complete_reply": _is_complete,
    "debug_reply": _dap_response,
    "display_data": lambda c: (*_mime_bundle(c), *_optional_display_id(c)),
    "update_display_data": lambda c: (*_mime_bundle(c), *_transient_display_id(c)),
    "execute_result": _mime_bundle,
}

REPLY_STATUSES = ("ok", "error", "aborted")
IS_COMPLETE_STATUSES = ("complete", "incomplete", "invalid", "unknown", "error")


def check_content(msg_type: str, content: Mapping[str, Any]) -> Iterator[Problem]:
    """The problems of ``content`` for a message of ``msg_type`` (known types only)."""
    if msg_type in STATUS_REPLIES:
        statuses = IS_COMPLETE_STATUSES if msg_type == "is_complete_reply" else REPLY_STATUSES
        status_problems = list(Field("status", STR, values=statuses).check(content))
        yield from status_problems
        status = content.get("status")
        if status == "error":
            # An error reply carries the exception; no other field is promised.
            yield from check_fields(content, ERROR_FIELDS)
            if msg_type == "execute_reply":
                yield from Field("execution_count", INT).check(content)
            return
        if status == "aborted" or status_problems:
            return
    yield from check_fields(content, FIELDS.get(msg_type, ()))
    extra = EXTRA_CHECKS.get(msg_type)
    if extra is not None:
        yield from extra(content)


# -- header and envelope --------------------------------------------------------------------
VERSION = re.compile(r"5\.\d+")


def _check_date(value: Any) -> Problem | None:
    # jupyter_client's Session.deserialize turns ISO 8601 strings into datetimes and leaves
    # anything it cannot parse as a string, so a datetime here is already a valid date.
    if isinstance(value, datetime):
        return None
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return None
    return Problem("header.date", f"header.date should be an ISO 8601 timestamp, got {value!r:.60}")


def check_header(header: Mapping[str, Any], where: str = "header") -> Iterator[Problem]:
    for name in ("msg_id", "msg_type", "session", "username", "version"):
        if name not in header:
            yield Problem("header.field", f"{where}.{name} (str) is missing")
        elif not isinstance(header[name], str):
            got = _type_name(header[name])
            yield Problem("header.field", f"{where}.{name} should be str, got {got}")
    if "date" not in header:
        yield Problem("header.field", f"{where}.date (ISO 8601 str) is missing")
    elif (problem := _check_date(header["date"])) is not None:
        yield problem
    version = header.get("version")
    if isinstance(version, str) and not VERSION.fullmatch(version):
        yield Problem("header.version", f"{where}.version should be 5.x, got {version!r}")


def check_envelope(msg: Mapping[str, Any]) -> Iterator[Problem]:
    """Header, parent_header, metadata and content: present and of the right types."""
    header = msg.get("header")
    if not isinstance(header, dict):
        yield Problem("envelope.field", f"header should be dict, got {_type_name(header)}")
    else:
        yield from check_header(header)
    for part in ("parent_header", "metadata", "content"):
        value = msg.get(part)
        if not isinstance(value, dict):
            yield Problem("envelope.field", f"{part} should be dict, got {_type_name(value)}")
