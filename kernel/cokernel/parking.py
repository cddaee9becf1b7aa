"""Comm messages for a thread that is blocked in a synchronous wait (``input()``).

A cell on the main shell that calls ``input()`` blocks the shell's loop thread until the frontend
answers, and the comm lane lives on that loop: a widget the user must click to answer (or any
comm traffic) would wait behind the very prompt it is meant to serve. While a thread is *parked*
in such a wait it takes comm jobs meant for its loop itself, one by one, inside the wait.

Order is kept: a job is handed to a parked thread only while nothing of its lane is queued or
running on the loop (the loop is blocked, so anything in flight there would otherwise be
overtaken); later jobs of the lane then follow it into the same inbox. When the wait ends, the
thread runs what its inbox still holds before its loop resumes, so lane jobs queued afterwards
run after them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Iterator

log = logging.getLogger("cokernel.parking")

Job = Callable[[], None]


class Parking:
    """Parked threads, their inboxes, and how many jobs each lane has in flight on a loop."""

    def __init__(self, adopt: Callable[[threading.Thread], list[Job]] | None = None) -> None:
        self._cond = threading.Condition()
        self._inboxes: dict[threading.Thread, deque[Job]] = {}
        self._in_flight: dict[Hashable, int] = {}
        # Called as a thread parks: the jobs already queued for it on its (blocked) loop, which
        # it then runs first, so that the ones sent during the wait need not queue behind them.
        self._adopt = adopt

    def submit(self, thread: threading.Thread | None, lane: Hashable, job: Job) -> bool:
        """Give ``job`` to ``thread`` if it is parked and ``lane`` has nothing in flight.

        Returns False when the job must go to the loop as usual: it is then counted in flight
        on ``lane`` until :meth:`landed` is called for it.
        """
        with self._cond:
            inbox = self._inboxes.get(thread) if thread is not None else None
            if inbox is not None and not self._in_flight.get(lane):
                inbox.append(job)
                self._cond.notify_all()
                return True
            self._in_flight[lane] = self._in_flight.get(lane, 0) + 1
            return False

    def landed(self, lane: Hashable) -> None:
        """A job :meth:`submit` sent to the loop has finished (or was cancelled)."""
        with self._cond:
            left = self._in_flight.get(lane, 0) - 1
            if left > 0:
                self._in_flight[lane] = left
            else:
                self._in_flight.pop(lane, None)

    def wake(self) -> None:
        """Make parked threads look again at what they wait for (thread-safe)."""
        with self._cond:
            self._cond.notify_all()

    @contextlib.contextmanager
    def parked(self) -> Iterator[Callable[[Callable[[], bool]], None]]:
        """Park this thread for the ``with`` block; yields ``wait(until)``.

        Park *before* asking for what you will wait for (send the input_request inside the
        block): a comm message that follows the request must already find the thread parked,
        or it would queue on the blocked loop and hold back all later ones (order is kept).
        """
        me = threading.current_thread()
        with self._cond:
            outer = self._inboxes.get(me)  # a comm handler run here may itself call input()
            inbox = self._inboxes[me] = outer if outer is not None else deque()
        if self._adopt is not None and outer is None:
            adopted = self._adopt(me)
            with self._cond:
                inbox.extendleft(reversed(adopted))

        def wait(until: Callable[[], bool]) -> None:
            """Block until ``until()`` is true (checked after each :meth:`wake`), running the
            jobs handed to this thread meanwhile. Interruptible: the waits are lock waits."""
            __tracebackhide__ = True  # hidden from tracebacks
            while True:
                with self._cond:
                    while not inbox and not until():
                        self._cond.wait()
                    if not inbox:
                        return
                    job = inbox.popleft()
                _run(job)

        try:
            yield wait
        finally:
            if outer is None:
                with self._cond:
                    self._inboxes.pop(me, None)
                # Nothing more can arrive; what did must run before the loop resumes.
                while inbox:
                    _run(inbox.popleft())


def _run(job: Job) -> None:
    try:
        job()
    except Exception:
        log.exception("a job run by a parked thread failed")
