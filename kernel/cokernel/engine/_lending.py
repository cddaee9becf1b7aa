"""Lending a blocked loop's lanes to another runner.

A :class:`~cokernel.engine._caller.Caller` runs a *lendable* lane's jobs on its own loop whenever the
loop can take them: it is idle, or the code it runs is suspended at an ``await``. When the loop's
thread is stuck in synchronous user code (``time.sleep``, a tight loop, ``input()``, a
breakpoint) the lane is *lent*, so its jobs are still served at once, in order:

- to the loop's own thread, if it is *parked* in a wait that can run them (``input()``: see
  :meth:`Lender.parked`). It runs them between its checks for the reply, on the loop's thread;
- otherwise to a *stand-in* thread, once a job has waited :data:`LEND_AFTER` seconds for a loop
  whose thread stayed in user code all that time, without coming back to its scheduler. From
  then on, until the thread comes back, later jobs go to the stand-in at once.

The wait is measured from the job's arrival, not from the start of the user code: a cell that
sends a widget and then awaits its change takes the change on its own loop when it awaits, even
if its synchronous part ran long; only a loop that stays away a while longer is lent.

The Caller does not guess that its loop is blocked: the code that runs user code on the loop's
thread (the kernel's cell stepper) brackets it with :meth:`Lender.enter` / :meth:`Lender.leave`,
so the Lender knows when the thread left the scheduler and that it has not come back.

Guarantees:

- one runner at a time per lane, and jobs in submission order across every hand-over
  (loop -> stand-in -> loop, loop -> parked thread -> loop);
- the loop's thread never returns to its scheduler while a stand-in runs a lent job
  (:meth:`Lender.leave` waits for it), so a lent job runs while the loop's own data is at rest;
- a lent job runs with the owner loop *borrowed*: on asyncio the stand-in sees the owner loop as
  its running loop, and the owner loop's ``call_soon`` is thread-aware (see
  :func:`cokernel.engine._backends._asyncio.make_call_soon_thread_aware`), so completing a future, setting an Event or creating a
  task takes effect on the owner loop as soon as it runs again; on trio the stand-in runs in the
  owner run's context, so a ``trio.Event``/``anyio.Event`` set there wakes its waiter when the
  loop runs again.

Lendable jobs are synchronous callables: a borrower runs them outside any event loop step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from cokernel.engine import _backends as backends

log = logging.getLogger("cokernel.lending")

#: How long a job waits for a loop whose thread stays in user code before a stand-in takes it.
LEND_AFTER = 0.05

#: At most this many jobs of one lane run in one turn of the loop before it yields to others.
_JOBS_PER_TURN = 64

#: How often a main thread parked in a wait wakes to let Python run a signal handler that is due.
#: CPython runs handlers between bytecodes: a SIGINT whose C handler ran after the thread's last
#: check and before it blocked in the lock wait (a window as wide as the GIL hand-over, so wide
#: on a loaded machine) interrupts nothing, and the interrupt of a cell at an ``input()`` or pdb
#: prompt would wait for the reply. (A message interrupt also wakes the wait; a SIGINT sent to
#: the process has no one else to.) Other threads never run signal handlers: they wait unpolled.
SIGNAL_POLL = 0.1


def _signal_poll() -> float | None:
    return SIGNAL_POLL if threading.current_thread() is threading.main_thread() else None


_LOOP, _STANDIN, _PARKED = "loop", "standin", "parked"


class _Lane:
    __slots__ = ("in_job", "jobs", "runner", "since")

    def __init__(self) -> None:
        self.jobs: deque[tuple[Callable[..., Any], tuple[Any, ...], Any]] = deque()
        self.runner: str | None = None  # None (idle), _LOOP, _STANDIN or _PARKED
        self.in_job = False
        self.since = 0.0  # when its jobs began to wait for the loop (runner _LOOP)


class Lender:
    """The lendable lanes of one Caller, and who runs them.

    ``post(fn, *args)`` schedules a callback on the owner loop (thread-safe); ``settle(pending,
    fn, args)`` runs a job and settles its handle (it never raises).
    """

    def __init__(
        self,
        name: str,
        post: Callable[..., bool],
        settle: Callable[[Any, Callable[..., Any], tuple[Any, ...]], None],
        borrowed: backends.Borrowed,
        *,
        threads: bool = True,
    ) -> None:
        self.name = name
        self._post = post
        self._settle = settle
        self._borrowed = borrowed
        self._threads = threads
        self._cond = threading.Condition(threading.Lock())
        self._lanes: dict[Hashable, _Lane] = {}
        self._depth = 0  # nesting of user code on the loop's thread
        self._since = 0.0  # when the loop's thread entered user code
        self._stuck = False  # a job waited LEND_AFTER in this stretch of user code
        self._parked = 0
        self._lent_running = 0
        self._standin: threading.Thread | None = None
        self._closed = False

    # -- the submitting side (any thread) ---------------------------------------------------
    def submit(
        self, lane_key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...], pending: Any
    ) -> None:
        post = False
        with self._cond:
            if self._closed:
                pending.mark_cancelled()
                return
            lane = self._lanes.get(lane_key)
            if lane is None:
                lane = self._lanes[lane_key] = _Lane()
            lane.jobs.append((fn, args, pending))
            if lane.runner is None:
                if self._parked:
                    lane.runner = _PARKED
                elif self._depth and self._threads and self._stuck:
                    lane.runner = _STANDIN
                    self._ensure_standin()
                else:
                    lane.runner = _LOOP
                    lane.since = time.monotonic()
                    post = True
            if self._depth and lane.runner in (_LOOP, _STANDIN) and self._threads:
                self._ensure_standin()
            self._cond.notify_all()
        if post and not self._post(self._loop_turn, lane_key):
            self._cancel_lane(lane_key)

    # -- the loop's thread ------------------------------------------------------------------
    def enter(self) -> None:
        """The loop's thread starts running user code (it leaves its scheduler)."""
        with self._cond:
            self._depth += 1
            if self._depth == 1:
                self._since = time.monotonic()
                self._stuck = False
                self._borrowed.capture_task()
                if self._threads and any(
                    lane.runner == _LOOP and lane.jobs for lane in self._lanes.values()
                ):
                    self._ensure_standin()
                    self._cond.notify_all()

    def leave(self) -> None:
        """The loop's thread is done with user code; waits until no lent job runs."""
        with self._cond:
            self._depth -= 1
            if self._depth:
                return
            interrupted: BaseException | None = None
            while self._lent_running:
                try:
                    self._cond.wait()
                except BaseException as e:  # an interrupt aimed at the cell that just ended
                    interrupted = e
            self._cond.notify_all()
        if interrupted is not None:
            raise interrupted

    def _loop_turn(self, lane_key: Hashable) -> None:
        """On the loop: run up to a turn's worth of the lane's jobs, then yield the loop."""
        for _ in range(_JOBS_PER_TURN):
            with self._cond:
                lane = self._lanes.get(lane_key)
                if lane is None or lane.runner != _LOOP or lane.in_job or not lane.jobs:
                    return
                job = lane.jobs.popleft()
                lane.in_job = True
            self._run_taken(lane_key, lane, job)
        if not self._post(self._loop_turn, lane_key):
            self._cancel_lane(lane_key)

    @contextlib.contextmanager
    def parked(
        self, wake: threading.Condition | None = None
    ) -> Iterator[Callable[[Callable[[], bool]], None]]:
        """Park the loop's thread (in user code) in a wait that runs lent jobs meanwhile.

        Yields ``wait(until)``: blocks until ``until()`` is true (checked after each
        :meth:`wake`), running the jobs lent to this thread. When the block ends, the jobs of
        the lanes lent to it run before the loop resumes, so later jobs follow them in order.
        """
        with self._cond:
            self._parked += 1
            for lane in self._lanes.values():
                if lane.runner == _LOOP and not lane.in_job:
                    lane.runner = _PARKED

        def wait(until: Callable[[], bool]) -> None:
            __tracebackhide__ = True  # hidden from tracebacks
            while True:
                with self._cond:
                    while True:
                        found = self._take(_PARKED)
                        if found is not None or until():
                            break
                        self._cond.wait(_signal_poll())
                    if found is None:
                        return
                self._run_taken(*found)

        try:
            yield wait
        finally:
            with self._cond:
                self._parked -= 1
                last = self._parked == 0
            if last:
                while True:
                    with self._cond:
                        found = self._take(_PARKED)
                        if found is None:
                            break
                    self._run_taken(*found)

    def wake(self) -> None:
        """Make a parked thread look again at what it waits for (thread-safe)."""
        with self._cond:
            self._cond.notify_all()

    # -- the stand-in -----------------------------------------------------------------------
    def _ensure_standin(self) -> None:
        if self._standin is None and not self._closed:
            self._standin = threading.Thread(
                target=self._standin_main, name=f"{self.name}-standin", daemon=True
            )
            self._standin.start()

    def _standin_main(self) -> None:
        while True:
            with self._cond:
                found = self._next_for_standin()
                if found is None:
                    return
                self._lent_running += 1
            try:
                with self._borrowed.entered():
                    self._run_taken(*found)
            finally:
                with self._cond:
                    self._lent_running -= 1
                    self._cond.notify_all()

    def _next_for_standin(self) -> tuple[Hashable, _Lane, Any] | None:
        """Under the lock: wait for a job the stand-in may run now; None when closed."""
        while not self._closed:
            if self._depth == 0 or self._parked:
                # The loop came back (or its thread parked): lent lanes go home first.
                for key, lane in list(self._lanes.items()):
                    if lane.runner == _STANDIN and not lane.in_job:
                        lane.runner = _PARKED if self._parked else _LOOP
                        if lane.runner == _LOOP and not self._post(self._loop_turn, key):
                            self._abandon(key, lane)
                self._cond.notify_all()
                self._cond.wait()
                continue
            waiting = [
                lane for lane in self._lanes.values() if lane.runner == _LOOP and not lane.in_job
            ]
            if waiting:
                now = time.monotonic()
                # A job waits "for a stuck loop" from its arrival or from the loop's leaving
                # its scheduler, whichever came later.
                due = [lane for lane in waiting if max(lane.since, self._since) + LEND_AFTER <= now]
                for lane in due:
                    lane.runner = _STANDIN
                    self._stuck = True
                if not due:
                    left = min(max(lane.since, self._since) for lane in waiting) + LEND_AFTER
                    self._cond.wait(left - now)
                    continue
            found = self._take(_STANDIN)
            if found is not None:
                return found
            self._cond.wait()
        return None

    # -- shared -------------------------------------------------------------------------------
    def _take(self, runner: str) -> tuple[Hashable, _Lane, Any] | None:
        for key, lane in self._lanes.items():
            if lane.runner == runner and not lane.in_job and lane.jobs:
                lane.in_job = True
                return key, lane, lane.jobs.popleft()
        return None

    def _run_taken(self, key: Hashable, lane: _Lane, job: Any) -> None:
        fn, args, pending = job
        try:
            self._settle(pending, fn, args)
        finally:
            with self._cond:
                lane.in_job = False
                self._release_if_empty(key, lane)
                self._cond.notify_all()

    def _release_if_empty(self, key: Hashable, lane: _Lane) -> None:
        if not lane.jobs and not lane.in_job:
            lane.runner = None
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    def _cancel_lane(self, key: Hashable) -> None:
        with self._cond:
            lane = self._lanes.get(key)
            if lane is not None and lane.runner == _LOOP and not lane.in_job:
                self._abandon(key, lane)

    def _abandon(self, key: Hashable, lane: _Lane) -> None:
        while lane.jobs:
            lane.jobs.popleft()[2].mark_cancelled()
        lane.runner = None
        if self._lanes.get(key) is lane:
            del self._lanes[key]

    def close(self) -> None:
        """The loop is ending: queued jobs are settled as cancelled, the stand-in ends."""
        with self._cond:
            self._closed = True
            for key, lane in list(self._lanes.items()):
                if not lane.in_job:
                    self._abandon(key, lane)
                else:
                    while lane.jobs:
                        lane.jobs.popleft()[2].mark_cancelled()
            self._cond.notify_all()

    def depth(self, lane_key: Hashable) -> int:
        """Jobs waiting (not running) on ``lane_key``."""
        with self._cond:
            lane = self._lanes.get(lane_key)
            return len(lane.jobs) if lane is not None else 0
