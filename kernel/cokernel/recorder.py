"""A record of the messages a kernel receives: one JSON line per message, for fixtures.

Turned on by ``--record=PATH`` or the environment variable ``COKERNEL_RECORD=PATH`` (which a
Jupyter server passes on to every kernel it starts). Each line describes the *shape* of one
message as it arrived: its channel, type and subshell, and for comms which comm, target and
method it concerns. Code, comm state values, stdin answers and keys are never written, so a
recording made against a real frontend can be kept as a test fixture.

Lines are appended, one ``write`` each, so several kernels (a restart, two notebooks) may share
one file; ``pid`` tells them apart. A failure to write is logged once and recording stops: it
never disturbs the kernel.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from cokernel.protocol import Channel, Message

log = logging.getLogger("cokernel")

RECORD_ENV = "COKERNEL_RECORD"

# Control requests about subshells: their content (ids only) is recorded whole.
_SUBSHELL_REQUESTS = frozenset(
    {"create_subshell_request", "delete_subshell_request", "list_subshell_request"}
)
# Flags of an execute_request that describe how the frontend runs cells (never its code).
_EXECUTE_FLAGS = ("silent", "store_history", "allow_stdin", "stop_on_error")


def record_path(option: str | None) -> str | None:
    """The file to record into: the ``--record`` option, else ``$COKERNEL_RECORD``, else none."""
    return option or os.environ.get(RECORD_ENV) or None


def describe(channel: Channel, msg: Message) -> dict[str, Any]:
    """The recorded fields of one received message (see the module's docstring)."""
    header = msg.get("header") or {}
    content = msg.get("content")
    if not isinstance(content, dict):
        content = {}
    msg_type = header.get("msg_type")
    subshell = header.get("subshell_id")
    entry: dict[str, Any] = {
        "channel": channel.value,
        "msg_type": msg_type,
        "subshell_id": subshell if isinstance(subshell, str) else None,
    }
    if msg_type in ("comm_open", "comm_msg", "comm_close"):
        entry["comm_id"] = content.get("comm_id")
        if msg_type == "comm_open":
            entry["target_name"] = content.get("target_name")
        data = content.get("data")
        if isinstance(data, dict):
            method = data.get("method")
            entry["method"] = method if isinstance(method, str) else None
            state = data.get("state")
            if isinstance(state, dict):
                entry["state_keys"] = sorted(str(k) for k in state)
        else:
            entry["method"] = None
        entry["buffers"] = len(msg.get("buffers") or [])
    elif msg_type in _SUBSHELL_REQUESTS:
        entry["content"] = content
    elif msg_type == "execute_request":
        entry.update({k: content[k] for k in _EXECUTE_FLAGS if k in content})
    elif msg_type == "debug_request":
        entry["command"] = content.get("command")
    elif msg_type == "comm_info_request":
        entry["target_name"] = content.get("target_name")
    return entry


class MessageRecorder:
    """Appends :func:`describe` of each received message to a JSON-lines file (thread-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._count = 0
        self._pid = os.getpid()
        self._file: Any = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def record(self, channel: Channel, msg: Message) -> None:
        """Write one line for ``msg``; never raises."""
        try:
            entry = describe(channel, msg)
            with self._lock:
                if self._file is None:
                    return
                self._count += 1
                line = {
                    "n": self._count,
                    "t": round(time.monotonic() - self._start, 4),
                    "pid": self._pid,
                    **entry,
                }
                self._file.write(json.dumps(line, sort_keys=False) + "\n")
                self._file.flush()
        except Exception:
            log.exception("recording to %s failed: recording stops", self.path)
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                finally:
                    self._file = None
