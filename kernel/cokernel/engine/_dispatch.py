"""Lanes and run modes: how each incoming message is scheduled.

A lane is keyed by ``(channel, lane name, subshell_id)``; messages of one lane are served in
arrival order, different lanes concurrently. The run mode says where a handler runs:

=========  ========================================================================
direct     at once on the interface's receiving thread; short, non-blocking handlers
queue      in its lane's FIFO on the channel's event loop (the main thread for shell)
task       as a new task on the channel's event loop, concurrent with everything
thread     in a worker thread, so it answers even while the event loop is blocked
=========  ========================================================================

Which message type runs in which mode and lane is the kernel's handler table
(:data:`cokernel.kernel._handlers.HANDLERS`); a cell may choose its own mode with a directive
(:func:`cell_directives`).
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any


class RunMode(StrEnum):
    direct = "direct"
    queue = "queue"
    task = "task"
    thread = "thread"


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
