"""Frontend profiles: how a simulated page routes its comm traffic, as a real frontend does.

JupyterLab 4.4 and later send comm messages on kernel subshells (JEP 91) when the kernel lists
``"kernel subshells"`` in ``supported_features``; its setting *Kernel Comms over subshells*
picks one subshell per comm target (the default), one per comm, or none. Older frontends and
nbclient never use subshells. A :class:`FrontendProfile` names one of these behaviours, and a
:class:`CommRouter` plays it for one :class:`~cokernel_harness.frontend.Frontend`:

=======================  ====================================================================
profile                  comm traffic
=======================  ====================================================================
``jupyterlab``           one subshell per comm target, shared by every comm of that target,
                         created with the first comm, deleted when the last one closes
``jupyterlab-per-comm``  one subshell per comm, created when it opens, deleted when it closes
``no-subshells``         everything on the main shell (older frontends, nbclient)
=======================  ====================================================================

What JupyterLab does (``packages/services/src/kernel/comm.ts``, ``default.ts``), and so what
the router does:

- A comm object is made both for a comm the page opens and for a ``comm_open`` the kernel
  sends on iopub; making it starts getting its subshell (``create_subshell_request`` on
  control), asynchronously. The page's own ``comm_open`` is sent at once, before that
  request, so it always goes on the main shell.
- Until the ``create_subshell_reply`` arrives, the comm's messages go on the main shell; after
  it, ``comm_msg`` and ``comm_close`` carry the subshell's id in ``header.subshell_id``.
- Closing a comm (from either side) releases its subshell: per comm, a
  ``delete_subshell_request`` if its id is known by then (if not, JupyterLab never deletes it);
  per target, once the target's last comm is gone (waiting for the id if need be).
- ``comm_info_request`` and every other request stay on the main shell; every header JupyterLab
  sends has a ``subshell_id`` field, ``null`` off a subshell.
- Nothing of this happens when the kernel does not declare subshell support: the profile falls
  back to ``no-subshells``. A restart forgets every subshell without deleting any.

The router never blocks: it sends what JupyterLab would send at the moment JupyterLab would
send it, and learns subshell ids from the replies the Frontend receives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anyio

__all__ = [
    "DEFAULT_PROFILE",
    "JUPYTERLAB",
    "JUPYTERLAB_PER_COMM",
    "NO_SUBSHELLS",
    "PROFILES",
    "CommRouter",
    "CommsOverSubshells",
    "FrontendProfile",
    "UnknownProfile",
    "get_profile",
]


class CommsOverSubshells(StrEnum):
    """JupyterLab's setting *Kernel Comms over subshells* (its values, as JupyterLab spells them)."""

    disabled = "disabled"
    per_comm = "perComm"
    per_comm_target = "perCommTarget"


@dataclass(frozen=True)
class FrontendProfile:
    """How a frontend routes comm traffic (see the module's docstring)."""

    name: str
    comms_over_subshells: CommsOverSubshells
    description: str
    # JupyterLab puts ``subshell_id`` in every header it sends, null when not on a subshell.
    null_subshell_header: bool = False

    @property
    def uses_subshells(self) -> bool:
        return self.comms_over_subshells is not CommsOverSubshells.disabled


JUPYTERLAB = FrontendProfile(
    "jupyterlab",
    CommsOverSubshells.per_comm_target,
    "JupyterLab >= 4.4, default setting: comms over one subshell per comm target",
    null_subshell_header=True,
)
JUPYTERLAB_PER_COMM = FrontendProfile(
    "jupyterlab-per-comm",
    CommsOverSubshells.per_comm,
    "JupyterLab >= 4.4 set to one subshell per comm",
    null_subshell_header=True,
)
NO_SUBSHELLS = FrontendProfile(
    "no-subshells",
    CommsOverSubshells.disabled,
    "every message on the main shell (JupyterLab < 4.4, Notebook 6, nbclient, VS Code)",
)
PROFILES: dict[str, FrontendProfile] = {
    p.name: p for p in (JUPYTERLAB, JUPYTERLAB_PER_COMM, NO_SUBSHELLS)
}
# A Frontend made without a profile speaks the plain protocol: nothing it does on its own.
DEFAULT_PROFILE = NO_SUBSHELLS


class UnknownProfile(ValueError):
    """No profile has that name; the message lists the known ones."""


def get_profile(profile: str | FrontendProfile) -> FrontendProfile:
    """The profile called ``profile`` (a profile passes through)."""
    if isinstance(profile, FrontendProfile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise UnknownProfile(
            f"no frontend profile {profile!r}; known: {', '.join(PROFILES)}"
        ) from None


@dataclass
class _Subshell:
    """A subshell the page asked for: one per comm, or shared by a comm target's comms."""

    create_msg_id: str
    subshell_id: str | None = None
    references: int = 1
    failed: bool = False
    delete_when_known: bool = False
    settled: anyio.Event = field(default_factory=anyio.Event)


@dataclass
class _Comm:
    target: str
    subshell: _Subshell | None = None


Send = Callable[..., str]


class CommRouter:
    """Which subshell each comm's messages go on, for one page; sends the subshell requests.

    ``send(channel, msg_type, content)`` sends a message and returns its msg_id (the Frontend's
    :meth:`~cokernel_harness.frontend.Frontend.send`).
    """

    def __init__(self, profile: FrontendProfile, send: Send) -> None:
        self.profile = profile
        self._send = send
        self.supports_subshells = False
        self._comms: dict[str, _Comm] = {}
        self._targets: dict[str, _Subshell] = {}
        self._creating: dict[str, _Subshell] = {}
        self.created: list[str] = []  # subshell ids this router was given, in order
        self.deleted: list[str] = []  # and those it asked the kernel to delete

    @property
    def active(self) -> bool:
        """True when comms go on subshells: the profile wants it and the kernel supports it."""
        return self.profile.uses_subshells and self.supports_subshells

    def subshell_of(self, comm_id: str) -> str | None:
        """The subshell ``comm_id``'s messages go on now (None: the main shell)."""
        comm = self._comms.get(comm_id)
        if comm is None or comm.subshell is None:
            return None
        return comm.subshell.subshell_id

    async def ready(self, comm_id: str, *, timeout: float) -> str | None:
        """Wait until ``comm_id`` has its subshell (if it gets one); return its id."""
        comm = self._comms.get(comm_id)
        if comm is None or comm.subshell is None:
            return None
        with anyio.fail_after(timeout):
            await comm.subshell.settled.wait()
        return comm.subshell.subshell_id

    # -- events ---------------------------------------------------------------------------------
    def opened(self, comm_id: str, target: str) -> None:
        """A comm object was made (the page opened it, or the kernel's comm_open arrived)."""
        if comm_id in self._comms:
            return
        comm = _Comm(target)
        self._comms[comm_id] = comm
        if not self.active:
            return
        mode = self.profile.comms_over_subshells
        if mode is CommsOverSubshells.per_comm_target:
            shared = self._targets.get(target)
            if shared is not None:
                shared.references += 1
                comm.subshell = shared
                return
            comm.subshell = self._targets[target] = self._create()
        else:
            comm.subshell = self._create()

    def closed(self, comm_id: str) -> None:
        """A comm is gone (the page closed it, or the kernel's comm_close arrived)."""
        comm = self._comms.pop(comm_id, None)
        if comm is None or comm.subshell is None:
            return
        subshell, comm.subshell = comm.subshell, None
        if self.profile.comms_over_subshells is CommsOverSubshells.per_comm:
            # JupyterLab deletes it only if the id is known by then; otherwise it is left.
            if subshell.subshell_id is not None:
                self._delete(subshell.subshell_id)
            return
        subshell.references -= 1
        if subshell.references > 0:
            return
        if self._targets.get(comm.target) is subshell:
            del self._targets[comm.target]
        if subshell.subshell_id is not None:
            self._delete(subshell.subshell_id)
        elif not subshell.failed:
            subshell.delete_when_known = True

    def replied(self, msg_type: str, parent_id: str | None, content: dict[str, Any]) -> None:
        """A reply arrived; a ``create_subshell_reply`` settles the subshell it was for."""
        if msg_type != "create_subshell_reply" or parent_id not in self._creating:
            return
        subshell = self._creating.pop(parent_id)
        subshell_id = content.get("subshell_id")
        if content.get("status") == "ok" and isinstance(subshell_id, str):
            subshell.subshell_id = subshell_id
            self.created.append(subshell_id)
            if subshell.delete_when_known:
                self._delete(subshell_id)
        else:
            subshell.failed = True
            for target, shared in list(self._targets.items()):
                if shared is subshell:
                    del self._targets[target]
        subshell.settled.set()

    def reset(self) -> None:
        """The kernel restarts: its subshells are gone, and so is every comm (nothing is sent)."""
        for subshell in self._creating.values():
            subshell.failed = True
            subshell.settled.set()
        self._comms.clear()
        self._targets.clear()
        self._creating.clear()

    # -- requests -------------------------------------------------------------------------------
    def _create(self) -> _Subshell:
        msg_id = self._send("control", "create_subshell_request", {})
        subshell = _Subshell(msg_id)
        self._creating[msg_id] = subshell
        return subshell

    def _delete(self, subshell_id: str) -> None:
        self.deleted.append(subshell_id)
        self._send("control", "delete_subshell_request", {"subshell_id": subshell_id})
