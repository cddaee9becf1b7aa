"""The concurrency engine: a :class:`Caller` owns one thread and one anyio event loop.

Work reaches a Caller from any thread through four doors, each returning a :class:`Pending`:

- :meth:`Caller.call_soon` runs a function as a new task on the loop (concurrent with others);
- :meth:`Caller.queue_call` appends it to a named FIFO lane: one at a time, in arrival order,
  while other lanes and tasks keep running;
- :meth:`Caller.to_thread` runs a blocking function in a worker thread, off the loop;
- :meth:`Caller.call_direct` runs it at once on the calling thread.

This module knows nothing of Jupyter, nor of asyncio or trio: what differs between them (how a
thread wakes the loop, safely from other threads and from signal handlers, which the kernel's
interrupt path relies on; how lane tasks start in order) is in :mod:`cokernel.engine._backends`.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import inspect
import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, TypeVar

import anyio

from cokernel.engine import _backends as backends
from cokernel.engine._lending import Lender
from cokernel.engine._pending import Pending as Pending
from cokernel.engine._pending import PendingCancelled as PendingCancelled
from cokernel.engine._pending import _run_then_settle

T = TypeVar("T")
log = logging.getLogger("cokernel.caller")

_this_thread = threading.local()  # .caller: the Caller whose loop runs on this thread


class _Job:
    __slots__ = ("args", "context", "fn", "pending", "started")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        pending: Pending[Any],
        context: contextvars.Context | None,
    ) -> None:
        self.fn, self.args, self.pending, self.context = fn, args, pending, context
        self.started = False


class Caller:
    """One event loop on one thread, and the doors for getting work onto it.

    Start it with :meth:`start_thread` (a new thread) or by awaiting :meth:`serve` inside an
    already running anyio loop (the kernel does this on the main thread). ``stop()`` cancels
    everything still running and lets the loop end.
    """

    def __init__(
        self,
        name: str,
        *,
        backend: str = "asyncio",
        backend_options: dict[str, Any] | None = None,
        max_threads: int = 16,
    ) -> None:
        self.name = name
        self.backend = backend
        self.backend_options = backend_options or {}
        self.thread: threading.Thread | None = None
        self._threadsafe: Callable[..., Any] | None = None
        self._start_task: Callable[..., None] | None = None
        self._start_lane: Callable[..., None] | None = None
        self._lanes: dict[Hashable, deque[_Job]] = {}
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_event: anyio.Event | None = None
        self._backlog: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._backlog_lock = threading.Lock()
        # Jobs handed to the loop but not yet in a lane or a task (under _backlog_lock): a loop
        # that ends with their callbacks still queued drops them, so serve() settles them.
        self._unplaced: set[_Job] = set()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_threads, thread_name_prefix=f"{name}-worker"
        )
        self._borrowed = backends.get(backend).borrowed()
        #: Lendable lanes (see :mod:`cokernel.engine._lending`): served on this loop, or lent while its
        #: thread is stuck in user code.
        self.lender = Lender(
            name,
            self.call_threadsafe,
            _run_then_settle,
            self._borrowed,
            threads=threads_available(),
        )

    @staticmethod
    def current() -> Caller | None:
        """The Caller whose loop runs on the calling thread, if any."""
        return getattr(_this_thread, "caller", None)

    # -- lifecycle --------------------------------------------------------------------------
    def start_thread(self, *, daemon: bool = True, timeout: float = 10.0) -> Caller:
        """Start the loop on a new thread and return once it accepts work.

        If the thread dies before its loop accepts work (no file descriptor left for the loop's
        selector, say), this raises that thread's exception at once, not after ``timeout``.
        """
        failed: list[BaseException] = []

        def main() -> None:
            try:
                # A fresh context: the starter's (perhaps copied into this thread) would tell
                # anyio that a loop already runs here.
                contextvars.Context().run(self._run_loop)
            except BaseException as exc:
                log.exception("caller %s stopped with an error", self.name)
                if not self._ready.is_set():
                    failed.append(exc)
                    self._stopped.set()
                    self._ready.set()  # wakes start_thread, which reports the failure
                raise

        self.thread = threading.Thread(target=main, name=self.name, daemon=daemon)
        self.thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"caller {self.name} did not start within {timeout} s")
        if failed:
            self._executor.shutdown(wait=False)
            raise failed[0]
        return self

    def _run_loop(self) -> None:
        anyio.run(self.serve, backend=self.backend, backend_options=self.backend_options)

    async def serve(self) -> None:
        """Run this Caller's loop in the current anyio loop until :meth:`stop`."""
        if self.thread is None:
            self.thread = threading.current_thread()
        self._stop_event = anyio.Event()
        outer, _this_thread.caller = getattr(_this_thread, "caller", None), self
        undo_call_soon: Callable[[], None] | None = None
        try:
            backend = backends.current()
            self._threadsafe = backend.scheduler()
            self._borrowed.capture_loop()
            undo_call_soon = backend.make_loop_thread_aware()
            abandon = self._abandon_launch
            async with backend.task_starters(abandon) as (start_task, start_lane):
                self._start_task, self._start_lane = start_task, start_lane
                await self._serve_until_stopped()
        finally:
            self.lender.close()
            if undo_call_soon is not None:
                undo_call_soon()
            _this_thread.caller = outer
            # Under the backlog lock, so that no call_threadsafe() can slip into the backlog
            # between "no scheduler" and "stopped": such work would never run nor settle.
            with self._backlog_lock:
                self._start_task = self._start_lane = None
                self._threadsafe = None
                self._stopped.set()
                stranded, self._unplaced = self._unplaced, set()
            for job in stranded:  # their callbacks will never run: answer, never hang
                job.pending.mark_cancelled()

    async def _serve_until_stopped(self) -> None:
        with self._backlog_lock:
            backlog, self._backlog = self._backlog, deque()
        for fn, args in backlog:
            fn(*args)
        self._ready.set()
        assert self._stop_event is not None
        await self._stop_event.wait()

    @property
    def running(self) -> bool:
        return self._ready.is_set() and not self._stopped.is_set()

    def in_loop_thread(self) -> bool:
        return threading.current_thread() is self.thread

    def stop(self) -> None:
        """End the loop (thread-safe); running tasks are cancelled. Idempotent."""
        if self._stop_event is not None and not self._stopped.is_set():
            event = self._stop_event
            self.call_threadsafe(event.set)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def join(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    # -- the doors --------------------------------------------------------------------------
    def call_threadsafe(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a short sync callback on the loop thread soon. Safe from signal handlers.

        Returns False, and drops the callback, when the loop has already stopped.
        """
        scheduler = self._threadsafe
        if scheduler is None:
            with self._backlog_lock:
                scheduler = self._threadsafe
                if scheduler is None:
                    if self._stopped.is_set():
                        log.debug("caller %s has stopped; dropped %r", self.name, fn)
                        return False
                    self._backlog.append((fn, args))
                    return True
        try:
            scheduler(fn, *args)
        except RuntimeError:
            log.debug("caller %s is closed; dropped %r", self.name, fn)
            return False
        return True

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> Pending[Any]:
        """Run ``fn(*args)`` (sync or async) as a new task on the loop."""
        job = _Job(fn, args, Pending(), contextvars.copy_context())
        self._hand_over(self._spawn, job)
        return job.pending

    def queue_call(self, lane: Hashable, fn: Callable[..., Any], *args: Any) -> Pending[Any]:
        """Run ``fn(*args)`` after everything queued before it on ``lane``, one at a time.

        Unlike :meth:`call_soon`, the job does not inherit the submitter's context variables:
        one task serves the whole lane.
        """
        job = _Job(fn, args, Pending(), None)
        self._hand_over(self._enqueue, lane, job)
        return job.pending

    def _hand_over(self, place: Callable[..., None], *args: Any) -> None:
        """Have the loop ``place(*args)`` (the job last); a job the loop will never place is
        cancelled: now if the loop has stopped, else by serve() as the loop ends (a callback
        queued just before an asyncio loop closes is dropped, and its job would never settle).
        """
        job: _Job = args[-1]
        with self._backlog_lock:
            self._unplaced.add(job)
        if not self.call_threadsafe(place, *args):
            with self._backlog_lock:
                self._unplaced.discard(job)
            job.pending.mark_cancelled()  # the loop has stopped: settle, never hang a waiter

    def to_thread(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Run blocking ``fn(*args)`` in a worker thread; the loop is not involved."""
        pending: Pending[T] = Pending()
        context = contextvars.copy_context()
        try:
            future = self._executor.submit(context.run, _run_then_settle, pending, fn, args)
        except RuntimeError:  # executor shut down: cancelled, like work sent to a stopped loop
            pending.mark_cancelled()
            return pending
        # stop() cancels work no worker has picked up yet (cancel_futures): settle its Pending
        # too, or whoever waits on it (the kernel, to answer the request) waits forever.
        future.add_done_callback(lambda f: f.cancelled() and pending.mark_cancelled())
        return pending

    def call_direct(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Run sync ``fn(*args)`` now, on the calling thread."""
        pending: Pending[T] = Pending()
        _run_then_settle(pending, fn, args)
        return pending

    def queue_lendable(self, lane: Hashable, fn: Callable[..., Any], *args: Any) -> Pending[Any]:
        """Run sync ``fn(*args)`` after everything queued before it on ``lane``, one at a time.

        On this loop whenever it can take the job; while the loop's thread is stuck in user code
        (see :mod:`cokernel.engine._lending`), on the thread that parked in a wait, or on a stand-in.
        """
        pending: Pending[Any] = Pending()
        self.lender.submit(lane, fn, args, pending)
        return pending

    # -- inside the loop --------------------------------------------------------------------
    def _spawn(self, job: _Job) -> None:
        with self._backlog_lock:
            self._unplaced.discard(job)
        if self._start_task is None:
            job.pending.mark_cancelled()
            return
        if job.context is not None:  # the new task inherits the submitter's context
            job.context.run(self._start_task, self._run_alone, job)
        else:
            self._start_task(self._run_alone, job)

    def _enqueue(self, lane: Hashable, job: _Job) -> None:
        with self._backlog_lock:
            self._unplaced.discard(job)
        if self._start_task is None:  # the loop is ending: no task would ever drain the lane
            job.pending.mark_cancelled()
            return
        queue = self._lanes.get(lane)
        if queue is None:
            queue = self._lanes[lane] = deque()
        queue.append(job)
        if len(queue) == 1 and self._start_lane is not None:
            try:
                self._start_lane(self._drain_lane, lane, queue)
            except Exception:  # the launcher has ended (the loop is stopping)
                if self._lanes.get(lane) is queue:
                    del self._lanes[lane]
                self._abandon(queue)

    def _abandon_launch(self, args: tuple[Any, ...]) -> None:
        """A task that was started but never began: a lane's (``_drain_lane(lane, queue)``)
        or a single job's (``_run_alone(job)``)."""
        if len(args) == 1 and isinstance(args[0], _Job):
            args[0].pending.mark_cancelled()
        else:
            self._abandon(args[1])

    @staticmethod
    def _abandon(queue: deque[_Job]) -> None:
        for job in queue:
            job.pending.mark_cancelled()
        queue.clear()

    async def _drain_lane(self, lane: Hashable, queue: deque[_Job]) -> None:
        # One cancel scope for the jobs that run in a row, not one per job: an anyio scope
        # costs 6.6 us on asyncio and 22 us on trio (in a loop). Cancelling the running job
        # cancels the scope, and the jobs after it get a new one.
        try:
            while queue:
                with anyio.CancelScope() as scope:
                    while queue and not scope.cancel_called:
                        await self._run_job(queue[0], scope)
                        queue.popleft()
                if scope.cancelled_caught:  # the job at the head was cancelled (and marked so)
                    queue.popleft()
        finally:
            if not queue:
                if self._lanes.get(lane) is queue:  # not a newer queue of the same lane
                    del self._lanes[lane]
            else:  # the loop is being torn down: nothing queued may be silently lost
                self._abandon(queue)

    async def _run_alone(self, job: _Job) -> None:
        with anyio.CancelScope() as scope:
            await self._run_job(job, scope)

    async def _run_job(self, job: _Job, scope: anyio.CancelScope) -> None:
        """Run ``job`` inside ``scope`` (its own, or its lane's) and settle its Pending.

        A cancellation (of the job, through ``scope``, or of the whole loop as it ends) marks the
        job cancelled and goes on up: ``scope`` catches its own."""
        pending = job.pending
        if pending.done():  # cancelled while it waited in its lane
            return
        job.started = True

        def cancel_in_loop() -> None:
            if not pending.done():  # else a later job of the lane may be running in the scope
                scope.cancel()

        pending.set_canceller(partial(self.call_threadsafe, cancel_in_loop))
        try:
            result = job.fn(*job.args)
            if inspect.isawaitable(result):
                result = await result
            pending.set_result(result)
        except BaseException as e:
            if isinstance(e, anyio.get_cancelled_exc_class()):
                pending.mark_cancelled()
                raise
            pending.set_exception(e)
            if not isinstance(e, Exception | KeyboardInterrupt):
                raise


def threads_available() -> bool:
    """Whether this interpreter can start threads.

    Not so in Pyodide (JupyterLite) and WASI builds without pthreads, where
    ``threading.Thread.start`` raises "can't start new thread": the kernel then runs everything
    on its one event loop (see docs/jupyterlite.md). ``COKERNEL_NO_THREADS=1`` forces that mode.
    """
    if os.environ.get("COKERNEL_NO_THREADS", "") not in ("", "0"):
        return False
    if sys.platform in ("emscripten", "wasi"):
        return bool(getattr(getattr(sys, "_emscripten_info", None), "pthreads", False))
    return True


def loop_callback_scheduler() -> Callable[..., Any]:
    """The running loop's thread- and signal-safe "run this callback soon" function."""
    return backends.current().scheduler()
