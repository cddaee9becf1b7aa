"""Compare what a simulated page sends with a recording of what a real frontend sent.

A recording is a JSON-lines file, one line per message a kernel *received* (as cokernel's
``--record`` option writes them): ``channel``, ``msg_type``, ``subshell_id`` and, for comm
messages, ``comm_id``, ``target_name`` (comm_open) and ``method``; subshell requests keep their
``content``, debug requests their DAP ``command``. :func:`describe_sent` writes the same fields
for a message a :class:`~cokernel_harness.frontend.Frontend` sent, so both sides go through
:func:`shape`.

Ids differ from run to run and the order between two sockets (shell and control) is not fixed,
so the comparison is of the traffic's *shape*: which message types (and widget methods) go on
which channel, on the main shell or on a subshell; how many subshells were created and deleted;
how many comms used a subshell and how many comms shared one; and whether each deleted subshell
was one comms used, deleted after its last comm closed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["TrafficShape", "describe_sent", "load", "shape"]

COMM_TYPES = frozenset({"comm_open", "comm_msg", "comm_close"})
SUBSHELL_TYPES = frozenset(
    {"create_subshell_request", "delete_subshell_request", "list_subshell_request"}
)
# The message types whose route the frontend profile decides, or that say where comms go.
ROUTED = COMM_TYPES | SUBSHELL_TYPES | {"comm_info_request", "execute_request"}


def describe_sent(channel: str, msg: Mapping[str, Any]) -> dict[str, Any]:
    """The recorded fields of a message the harness sent (``Frontend.sent`` holds them)."""
    header = msg.get("header") or {}
    content = msg.get("content") or {}
    msg_type = str(header.get("msg_type"))
    subshell = header.get("subshell_id")
    entry: dict[str, Any] = {
        "channel": channel,
        "msg_type": msg_type,
        "subshell_id": subshell if isinstance(subshell, str) else None,
    }
    if msg_type in COMM_TYPES:
        entry["comm_id"] = content.get("comm_id")
        if msg_type == "comm_open":
            entry["target_name"] = content.get("target_name")
        data = content.get("data")
        method = data.get("method") if isinstance(data, dict) else None
        entry["method"] = method if isinstance(method, str) else None
    elif msg_type in SUBSHELL_TYPES:
        entry["content"] = dict(content)
    elif msg_type == "debug_request":
        entry["command"] = content.get("command")
    return entry


def load(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a recording (blank lines skipped)."""
    lines = Path(path).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class TrafficShape:
    """What the comparison keeps of a conversation (see the module's docstring)."""

    # (msg_type, widget method or "", channel, "main" or "subshell"), each that occurred.
    routes: frozenset[tuple[str, str, str, str]]
    created: int
    deleted: int
    comms_on_subshells: int  # comms with at least one message on a subshell
    subshells_used: int  # distinct subshells comm messages went on
    deleted_unused: int  # deleted subshells no comm message had used
    deleted_before_page_close: (
        int  # deleted before the page closed a comm using it (the kernel may have)
    )

    def without_unused_deletions(self) -> TrafficShape:
        """This shape, less the deletion of subshells no comm message used.

        Per comm, JupyterLab deletes a comm's subshell only if its id is known when the comm
        closes; a comm the kernel closes at once (the widget manager's control comm, to a target
        not yet registered) races its own ``create_subshell_reply``, so whether that subshell is
        deleted differs from run to run.
        """
        routes = self.routes
        if self.deleted == self.deleted_unused:
            routes = frozenset(r for r in routes if r[0] != "delete_subshell_request")
        return replace(
            self, routes=routes, deleted=self.deleted - self.deleted_unused, deleted_unused=0
        )

    def differences(self, other: TrafficShape) -> list[str]:
        """Human-readable differences from ``other`` (empty when the shapes match)."""
        found = []
        for key in self.__dataclass_fields__:
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine == theirs:
                continue
            if key == "routes":
                only_mine = sorted(mine - theirs)
                only_theirs = sorted(theirs - mine)
                found.append(f"routes only here: {only_mine}; only there: {only_theirs}")
            else:
                found.append(f"{key}: {mine} here, {theirs} there")
        return found


def shape(entries: Iterable[Mapping[str, Any]]) -> TrafficShape:
    """The shape of a conversation given as recorded entries, in the order received/sent."""
    routes: set[tuple[str, str, str, str]] = set()
    created = deleted = 0
    comm_subshells: dict[str, set[str]] = {}
    closed_at: dict[str, int] = {}
    deleted_at: dict[str, int] = {}
    for index, entry in enumerate(entries):
        msg_type = str(entry.get("msg_type"))
        if msg_type not in ROUTED:
            continue
        subshell = entry.get("subshell_id")
        place = "subshell" if isinstance(subshell, str) else "main"
        method = entry.get("method") or ""
        routes.add((msg_type, str(method), str(entry.get("channel")), place))
        if msg_type == "create_subshell_request":
            created += 1
        elif msg_type == "delete_subshell_request":
            deleted += 1
            target = (entry.get("content") or {}).get("subshell_id")
            if isinstance(target, str):
                deleted_at[target] = index
        elif msg_type in COMM_TYPES:
            comm_id = str(entry.get("comm_id"))
            if isinstance(subshell, str):
                comm_subshells.setdefault(comm_id, set()).add(subshell)
            if msg_type == "comm_close":
                closed_at[comm_id] = index
    used = {s for subshells in comm_subshells.values() for s in subshells}
    early = 0
    for subshell, at in deleted_at.items():
        users = [c for c, s in comm_subshells.items() if subshell in s]
        if any(closed_at.get(c, at + 1) > at for c in users):
            early += 1
    return TrafficShape(
        routes=frozenset(routes),
        created=created,
        deleted=deleted,
        comms_on_subshells=len(comm_subshells),
        subshells_used=len(used),
        deleted_unused=len(set(deleted_at) - used),
        deleted_before_page_close=early,
    )
