"""Comms through the ``comm`` package's API, so ipywidgets and friends work unchanged.

``comm.create_comm`` and ``comm.get_comm_manager`` are pointed at this kernel. A comm's
messages go out on iopub with the current request as parent; incoming ``comm_open``,
``comm_msg`` and ``comm_close`` are served in the kernel's comm lanes, concurrently with a
running cell, which is what lets a cell ``await`` a value that a widget sends later.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import comm
from comm.base_comm import BaseComm, CommManager

from cokernel.protocol._request import Request, current_request

log = logging.getLogger("cokernel.comms")

PublishComm = Callable[
    [str, dict[str, Any], "Request | None", dict[str, Any] | None, list[bytes] | None], None
]


class KernelComms(NamedTuple):
    """One kernel's comm registry, how its comms publish, and what they call first (waits
    while the kernel's outbox is full: see cokernel.protocol._outbox)."""

    manager: KernelCommManager
    publish: PublishComm
    wait_for_room: Callable[[], None] = lambda: None


#: The comms of the kernel serving the running code: set by the kernel around every handler
#: (cokernel.kernel._serving), and so seen by cells, the tasks and threads they start, and comm
#: handlers. Two kernels in one process each see their own.
current_comms: contextvars.ContextVar[KernelComms | None] = contextvars.ContextVar(
    "cokernel_current_comms", default=None
)
# For code that runs outside every request (a thread started at import time): the comms of the
# kernel that started last and still runs, as when there was only ever one.
_latest: KernelComms | None = None


def _comms_here() -> KernelComms | None:
    return current_comms.get() or _latest


class KernelComm(BaseComm):  # type: ignore[misc]
    """A comm whose messages are sent on the iopub channel of the kernel that made it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Before BaseComm.__init__, which opens the comm (a first message).
        found = _comms_here()
        self.publisher: PublishComm | None = found.publish if found is not None else None
        self._wait_for_room = found.wait_for_room if found is not None else None
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
        **keys: Any,
    ) -> None:
        if self.publisher is None:
            raise RuntimeError("comms need a running cokernel kernel")
        # A comm_close never waits: widgets close when collected (ipywidgets' __del__), which
        # may happen in kernel code holding a lock; there is one per comm opened.
        if msg_type != "comm_close" and self._wait_for_room is not None:
            self._wait_for_room()
        # BaseComm.open passes target_module=None when there is none; the protocol's optional
        # fields are left out rather than sent as null.
        optional = {k: v for k, v in keys.items() if v is not None}
        content = {"data": data or {}, "comm_id": self.comm_id, **optional}
        self.publisher(msg_type, content, current_request.get(), metadata, buffers)


class KernelCommManager(CommManager):  # type: ignore[misc]
    """The comm registry; reports handler errors to the frontend instead of only logging."""

    def __init__(
        self, report_error: Callable[[], None], home: Callable[[], str | None] = lambda: None
    ) -> None:
        super().__init__()
        self._report_error = report_error
        # Which shell (None: the main shell, else a subshell id) each comm and comm target
        # belongs to: its messages are served on that shell's loop, whichever subshell the
        # frontend sends them on. ``home()`` names the shell of the code running now.
        self._home = home
        self._owners: dict[str, str | None] = {}
        self._target_owners: dict[str, str | None] = {}

    def register_target(self, target_name: str, f: Callable[..., Any] | str) -> None:
        self._target_owners[target_name] = self._home()
        super().register_target(target_name, f)

    def register_comm(self, comm: BaseComm) -> str:
        self._owners.setdefault(comm.comm_id, self._home())
        return str(super().register_comm(comm))

    def unregister_comm(self, comm: BaseComm) -> None:
        # Tolerant, unlike the base class: a widget collected after its kernel's comms were
        # cleared (an in-process kernel that ended) must not raise in its __del__.
        self._owners.pop(comm.comm_id, None)
        self.comms.pop(comm.comm_id, None)

    def owner_of(self, msg: Mapping[str, Any], *, route: bool = True) -> str | None:
        """The shell that owns the comm of an incoming comm message (None: the main shell).

        With ``route`` (the kernel routing the message, in arrival order) a ``comm_open`` from
        the frontend takes its target's owner at once, so that the messages behind it, routed
        before it has run, follow it to the same shell.
        """
        content = msg.get("content") or {}
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str):
            return None
        if comm_id in self._owners:
            return self._owners[comm_id]
        if msg.get("header", {}).get("msg_type") != "comm_open":
            return None
        target = content.get("target_name")
        owner = self._target_owners.get(target) if isinstance(target, str) else None
        if route:
            self._owners[comm_id] = owner
        return owner

    def handle_open(self, msg: Mapping[str, Any]) -> None:
        content = msg["content"]
        comm_id, target_name = content.get("comm_id"), content.get("target_name")
        if not isinstance(comm_id, str) or not isinstance(target_name, str):
            log.warning("comm_open without comm_id/target_name dropped")
            return
        new = comm.create_comm(comm_id=comm_id, primary=False, target_name=target_name)
        self.register_comm(new)
        target = self.targets.get(target_name)
        if target is None:
            log.warning("comm_open for unknown target %r: closing it", target_name)
        else:
            try:
                target(new, msg)
                return
            except Exception:
                self._report_error()
        try:
            new.close()
        except Exception:
            log.exception("closing comm %s after a failed open", comm_id)

    def handle_msg(self, msg: Mapping[str, Any]) -> None:
        comm_id = msg["content"].get("comm_id")
        found = self.comms.get(comm_id) if isinstance(comm_id, str) else None
        if found is None:
            log.debug("comm_msg for unknown comm %r", msg["content"].get("comm_id"))
            return
        try:
            found.handle_msg(msg)
        except Exception:
            self._report_error()

    def handle_close(self, msg: Mapping[str, Any]) -> None:
        comm_id = msg["content"].get("comm_id")
        found = self.comms.pop(comm_id, None) if isinstance(comm_id, str) else None
        self._owners.pop(comm_id, None)
        if found is None:
            return
        found._closed = True
        try:
            found.handle_close(msg)
        except Exception:
            self._report_error()

    def info(self, target_name: str | None = None) -> dict[str, dict[str, str]]:
        return {
            comm_id: {"target_name": c.target_name}
            for comm_id, c in list(self.comms.items())
            if target_name is None or c.target_name == target_name
        }


def install(
    manager: KernelCommManager,
    publisher: PublishComm,
    wait_for_room: Callable[[], None] = lambda: None,
) -> KernelComms:
    """Point the ``comm`` package at the kernels of this process: ``create_comm`` and
    ``get_comm_manager`` answer with the comms of the kernel serving the calling code."""
    global _latest
    comms = _latest = KernelComms(manager, publisher, wait_for_room)
    comm.create_comm = KernelComm
    comm.get_comm_manager = _comm_manager
    return comms


def uninstall(comms: KernelComms) -> None:
    """The kernel of ``comms`` has stopped: it is no longer the fallback."""
    global _latest
    if _latest is comms:
        _latest = None


def _comm_manager() -> KernelCommManager:
    found = _comms_here()
    if found is None:
        raise RuntimeError("comms need a running cokernel kernel")
    return found.manager
