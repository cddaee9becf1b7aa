"""Kernel subshells (JEP 91): parallel shells in one kernel.

Each subshell owns a :class:`~cokernel.engine._caller.Caller` (one thread, one event loop), so its cells
run in parallel with the main shell's and with other subshells'; requests on one subshell keep
their order. Shell requests name their subshell in ``header.subshell_id``.

- Namespace: shared with the main shell (the JEP's model) unless the kernel option
  ``--subshell-namespace=own`` or the create request's ``namespace: "own"`` gives the subshell a
  fresh namespace of its own.
- The execution counter and history are kernel-wide: every stored execution, whichever shell ran
  it, takes the next number, so ``In[n]`` stays unique in history.
- Interrupts: ``interrupt_request`` stops running cells in every shell (the frontend's stop
  button means "stop"); a cell stepping in a subshell thread gets KeyboardInterrupt at its next
  bytecode (a blocking C call such as ``time.sleep`` finishes first: only the main thread
  receives signals), an awaiting one is cancelled at once.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from cokernel.engine._caller import Caller


class SubshellNotFound(LookupError):
    """A request named a subshell that does not exist (never created, or deleted)."""


@dataclass(eq=False)
class Subshell:
    subshell_id: str
    caller: Caller
    namespace: dict[str, Any] | None = None  # None: the main shell's namespace
    created: float = 0.0
    busy: int = field(default=0)
    # Set by SubshellRegistry.delete: listed no more, but still routable until its loop has
    # settled what was queued on it (see SubshellRegistry.route).
    deleted: bool = False

    @property
    def thread(self) -> threading.Thread | None:
        return self.caller.thread


# The namespace the running cell executes in, when its subshell has one of its own.
current_namespace: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "cokernel_current_namespace", default=None
)


class SubshellRegistry:
    """Creates, finds, lists and deletes subshells; thread-safe."""

    def __init__(self, backend: str, *, own_namespace_by_default: bool = False) -> None:
        self.backend = backend
        self.own_namespace_by_default = own_namespace_by_default
        self._subshells: dict[str, Subshell] = {}
        self._lock = threading.Lock()
        self._deleting = 0  # subshells marked deleted and not pruned yet (under _lock)

    def create(self, *, own_namespace: bool | None = None) -> Subshell:
        """Start a new subshell thread and return it once it accepts work."""
        with self._lock:
            self._prune()
        subshell_id = uuid.uuid4().hex
        caller = Caller(f"cokernel-subshell-{subshell_id[:8]}", backend=self.backend, max_threads=4)
        caller.start_thread()
        own = self.own_namespace_by_default if own_namespace is None else own_namespace
        namespace: dict[str, Any] | None = (
            {"__name__": "__main__", "__builtins__": __builtins__} if own else None
        )
        subshell = Subshell(subshell_id, caller, namespace)
        with self._lock:
            self._subshells[subshell_id] = subshell
        return subshell

    def get(self, subshell_id: str) -> Subshell:
        """The live subshell ``subshell_id`` (not one being deleted)."""
        with self._lock:
            found = self._subshells.get(subshell_id)
        if found is None or found.deleted:
            raise _not_found(subshell_id)
        return found

    def route(self, subshell_id: str) -> Caller:
        """The Caller a request for ``subshell_id`` is queued on.

        A subshell being deleted keeps its Caller here until that loop has ended: its stop
        settles (answers) what waits in its lanes in order, and a request routed to it
        meanwhile joins the end of its lane and is answered after them. Refusing it at once
        would answer it before requests the client sent earlier on the same lane (the
        deletion travels on control and may overtake shell requests).
        """
        with self._lock:
            self._prune()
            found = self._subshells.get(subshell_id)
        if found is None:
            raise _not_found(subshell_id)
        return found.caller

    def ids(self) -> list[str]:
        with self._lock:
            self._prune()
            return [i for i, s in self._subshells.items() if not s.deleted]

    def on_thread(self, thread: threading.Thread) -> Subshell | None:
        """The subshell (live or being deleted) whose loop runs on ``thread``, if any."""
        with self._lock:
            return next((s for s in self._subshells.values() if s.thread is thread), None)

    def _prune(self) -> None:
        """Forget deleted subshells whose loop has ended (hold ``_lock``)."""
        if not self._deleting:  # the usual case: nothing to look at, on every routed request
            return
        for subshell_id in [i for i, s in self._subshells.items() if s.deleted]:
            if self._subshells[subshell_id].caller.join(0):
                del self._subshells[subshell_id]
                self._deleting -= 1

    def delete(self, subshell_id: str, *, timeout: float = 1.0) -> None:
        """Stop a subshell: its running work is cancelled and its thread ends.

        Waits at most ``timeout`` seconds for the thread: a cell blocked in a C call (say
        ``time.sleep``) is stopped when that call returns, and its thread ends then.
        """
        with self._lock:
            subshell = self._subshells.get(subshell_id)
            if subshell is None or subshell.deleted:
                raise SubshellNotFound(f"no subshell {subshell_id!r} to delete")
            subshell.deleted = True
            self._deleting += 1
        subshell.caller.stop()
        thread = subshell.caller.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._lock:
            self._prune()

    def delete_all(self) -> None:
        for subshell_id in self.ids():
            try:
                self.delete(subshell_id)
            except SubshellNotFound:
                pass


def _not_found(subshell_id: str) -> SubshellNotFound:
    return SubshellNotFound(
        f"no subshell {subshell_id!r}: it was never created or has been deleted "
        "(create one with create_subshell_request on the control channel)"
    )
