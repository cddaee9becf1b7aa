"""Lanes and run modes: how each incoming message is scheduled.

A lane is keyed by ``(channel, lane name, subshell_id)``; messages of one lane are served in
arrival order, different lanes concurrently. The run mode says where a handler runs:

=========  ========================================================================
direct     at once on the interface's receiving thread; short, non-blocking handlers
queue      in its lane's FIFO on the channel's event loop (the main thread for shell)
task       as a new task on the channel's event loop, concurrent with everything
thread     in a worker thread, so it answers even while the event loop is blocked
=========  ========================================================================

One refinement of the starting table in DESIGN.md: ``comm_open``, ``comm_msg`` and
``comm_close`` share one lane ("comm") in queue mode. Running open/close directly on the
receiving thread while earlier ``comm_msg`` still waited in their queue would let a close
overtake the messages sent before it, and would run widget constructors (user code) off the
shell's thread.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from cokernel.protocol._messages import Channel


class RunMode(StrEnum):
    direct = "direct"
    queue = "queue"
    task = "task"
    thread = "thread"


# msg_type -> (run mode, lane name); the same on shell and control unless CONTROL_ONLY says so.
RUN_MODES: dict[str, tuple[RunMode, str]] = {
    "kernel_info_request": (RunMode.direct, "kernel_info_request"),
    "connect_request": (RunMode.direct, "connect_request"),
    "comm_info_request": (RunMode.direct, "comm_info_request"),
    "interrupt_request": (RunMode.direct, "interrupt_request"),
    "shutdown_request": (RunMode.direct, "shutdown_request"),
    "comm_open": (RunMode.queue, "comm"),
    "comm_msg": (RunMode.queue, "comm"),
    "comm_close": (RunMode.queue, "comm"),
    "execute_request": (RunMode.queue, "execute_request"),
    "complete_request": (RunMode.thread, "complete_request"),
    "inspect_request": (RunMode.thread, "inspect_request"),
    "is_complete_request": (RunMode.thread, "is_complete_request"),
    "history_request": (RunMode.thread, "history_request"),
    "usage_request": (RunMode.thread, "usage_request"),
    "debug_request": (RunMode.queue, "debug_request"),
    "create_subshell_request": (RunMode.thread, "create_subshell_request"),
    "delete_subshell_request": (RunMode.thread, "delete_subshell_request"),
    "list_subshell_request": (RunMode.direct, "list_subshell_request"),
}

# Requests that only make sense on the control channel.
CONTROL_ONLY = frozenset(
    {
        "debug_request",
        "usage_request",
        "create_subshell_request",
        "delete_subshell_request",
        "list_subshell_request",
    }
)

_CELL_DIRECTIVE = re.compile(r"^\s*#\s*cokernel\s*:\s*(?P<body>.*)$")


class DirectiveError(ValueError):
    """A ``# cokernel:`` first-line directive could not be understood."""


def cell_directives(code: str, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per-cell settings: ``run_mode`` and ``timeout``.

    They come from the cell's metadata (``{"cokernel": {"run_mode": "task", "timeout": 5}}``)
    or a first-line comment (``# cokernel: task, timeout=5``); the comment wins.
    """
    found: dict[str, Any] = {}
    meta = (metadata or {}).get("cokernel")
    if isinstance(meta, dict):
        found.update({k: meta[k] for k in ("run_mode", "timeout") if k in meta})
    first = code.lstrip("\n").split("\n", 1)[0]
    match = _CELL_DIRECTIVE.match(first)
    if match:
        for item in filter(None, (p.strip() for p in match["body"].split(","))):
            key, _, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not value and key in RunMode.__members__:
                found["run_mode"] = key
            elif key in ("run_mode", "mode") and value:
                found["run_mode"] = value
            elif key == "timeout":
                found["timeout"] = value
            else:
                raise DirectiveError(
                    f"unknown cokernel directive {item!r}; use e.g. '# cokernel: task, timeout=5' "
                    f"(run modes: {', '.join(m.value for m in RunMode if m is not RunMode.direct)})"
                )
    if "run_mode" in found:
        mode = str(found["run_mode"])
        if mode not in (RunMode.queue, RunMode.task, RunMode.thread):
            raise DirectiveError(f"a cell's run mode must be queue, task or thread, not {mode!r}")
        found["run_mode"] = RunMode(mode)
    if "timeout" in found:
        try:
            found["timeout"] = float(found["timeout"])
        except (TypeError, ValueError):
            raise DirectiveError(
                f"a cell's timeout must be seconds, not {found['timeout']!r}"
            ) from None
        if found["timeout"] <= 0:
            found["timeout"] = None
    return found


def route(channel: Channel, msg_type: str) -> tuple[RunMode, str] | None:
    """The run mode and lane name of ``msg_type`` on ``channel``; None if not served there."""
    if channel is Channel.shell and msg_type in CONTROL_ONLY:
        return None
    return RUN_MODES.get(msg_type)
