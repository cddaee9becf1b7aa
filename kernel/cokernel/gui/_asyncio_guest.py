"""asyncio as a guest: a selector event loop driven in steps from a host's loop.

asyncio has no guest mode of its own, so this module makes one out of two public contracts of
:class:`asyncio.SelectorEventLoop`: it asks its selector for I/O exactly once per iteration, with
the timeout it computed from its ready callbacks and timers; and ``stop()`` ends
``run_forever()`` after the iteration in progress.

Two threads take turns; only one of them touches the selector at any time::

    poller thread                          host thread (the GUI loop)
    -------------                          --------------------------
    selector.select(timeout)  --events-->  step: loop.run_forever(), in which
        (blocks: the GUI stays live)         1st select() returns those events (no wait)
                                             callbacks and tasks run
    wait for the next timeout <-timeout--    2nd select(timeout): the loop wants to wait;
                                             record the timeout, stop(), return no events

The loop's self-pipe is in the selector, so ``call_soon_threadsafe`` from any thread (an
interrupt, a finished worker thread, a message from the io thread) wakes the poller. uvloop
cannot be driven like this (it owns its libuv loop and has no pluggable selector), so a hosted
kernel always runs the plain selector loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import selectors
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cokernel.gui._host import AsyncMain, GuestHost, Outcome

log = logging.getLogger("cokernel.gui")

Events = list[tuple[selectors.SelectorKey, int]]

# How long tear-down may wait for leftover tasks, async generators and the default executor.
_TEARDOWN_TIMEOUT = 5.0


class _Stop:
    """Tells the poller thread to end instead of waiting for I/O again."""


_STOP = _Stop()


class _SteppedSelector(selectors.BaseSelector):
    """The loop's view of its selector while it is a guest.

    In a step, the first ``select()`` returns the events the poller thread already collected;
    the next one is the loop asking to wait, which it may not do on the host's thread: the
    timeout it asked for is recorded, the step is ended with ``on_wait``, and no events are
    returned. Registrations go straight to the real selector (the poller is idle during a step).
    After :meth:`stop_stepping` it is a plain pass-through, for tear-down.
    """

    def __init__(self, real: selectors.BaseSelector) -> None:
        self.real = real
        self.on_wait: Callable[[], None] = lambda: None
        self.wanted_timeout: float | None = 0.0
        self._handed: Events | None = None
        self._stepping = True

    def hand(self, events: Events) -> None:
        """Give the events of the poller's last select() to the next step."""
        self._handed = events
        self.wanted_timeout = 0.0  # if the step ends without asking to wait: poll at once

    def stop_stepping(self) -> None:
        self._stepping = False

    def select(self, timeout: float | None = None) -> Events:
        if self._handed is not None:
            events, self._handed = self._handed, None
            return events
        if not self._stepping:
            return self.real.select(timeout)
        self.wanted_timeout = timeout
        self.on_wait()
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self.real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self.real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self.real.get_map()

    def close(self) -> None:
        self.real.close()


class AsyncioGuest:
    """One guest run of an asyncio selector loop on ``host``; see the module's description."""

    def __init__(self, host: GuestHost) -> None:
        self._host = host
        self._selector = _SteppedSelector(selectors.DefaultSelector())
        self.loop = asyncio.SelectorEventLoop(self._selector)
        self._selector.on_wait = self.loop.stop
        self._timeouts: queue.SimpleQueue[float | _Stop | None] = queue.SimpleQueue()
        self._poller = threading.Thread(
            target=self._poll, name="cokernel-asyncio-poller", daemon=True
        )
        self._task: asyncio.Task[Any] | None = None
        self._done: Callable[[Outcome[Any]], None] = lambda outcome: None
        self._finished = False

    def start(self, async_main: AsyncMain, done: Callable[[Outcome[Any]], None]) -> None:
        """Begin running ``async_main()``; ``done(outcome)`` is called on the host's thread when
        it has finished and the loop is closed."""
        self._done = done

        async def main() -> Any:
            try:
                return await async_main()
            finally:
                self._host.main_returned()

        # Outside its steps the loop is not running, but code on the host's thread (a button's
        # callback) still finds it with asyncio.get_event_loop().
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(main(), name="cokernel-guest-main")
        self._poller.start()
        self._host.call_soon_threadsafe(lambda: self._step([]))

    # -- poller thread -----------------------------------------------------------------------
    def _poll(self) -> None:
        while True:
            timeout = self._timeouts.get()
            if isinstance(timeout, _Stop):
                return
            try:
                events = self._selector.real.select(timeout)
            except BaseException as exc:  # the selector broke: end the guest from its thread
                self._post(functools.partial(self._fail, exc))
                return
            if not self._post(functools.partial(self._step, events)):
                return

    def _post(self, fn: Callable[[], object]) -> bool:
        try:
            self._host.call_soon_threadsafe(fn)
        except RuntimeError:
            log.debug("the host closed before the asyncio guest finished")
            return False
        return True

    # -- host thread -------------------------------------------------------------------------
    def _step(self, events: Events) -> None:
        if self._finished:
            return
        self._selector.hand(events)
        try:
            self.loop.run_forever()
        except KeyboardInterrupt:
            # An interrupt that hit the loop's machinery rather than a cell: the callback it
            # cut short is lost, but the kernel must live on (anyio.run would have ended).
            log.warning("interrupt raised inside the asyncio guest loop; serving on")
        except BaseException as exc:
            self._fail(exc)
            return
        assert self._task is not None
        if self._task.done():
            self._finish(None)
        else:
            self._timeouts.put(self._selector.wanted_timeout)

    def _fail(self, exc: BaseException) -> None:
        log.error("the asyncio guest loop failed", exc_info=exc)
        self._finish(exc)

    def _finish(self, error: BaseException | None) -> None:
        """Stop the poller, end what is left on the loop, close it, report the outcome."""
        if self._finished:
            return
        self._finished = True
        self._timeouts.put(_STOP)
        self._poller.join()
        self._selector.stop_stepping()  # from here on the loop may block on its own selector
        loop = self.loop
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                self._run_teardown(asyncio.gather(*leftovers, return_exceptions=True))
            self._run_teardown(loop.shutdown_asyncgens())
            self._run_teardown(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        self._done(Outcome(error=error) if error is not None else self._task_outcome())

    def _run_teardown(self, awaitable: Awaitable[Any]) -> None:
        try:
            self.loop.run_until_complete(asyncio.wait_for(awaitable, _TEARDOWN_TIMEOUT))
        except Exception:
            log.warning("asyncio guest tear-down step failed", exc_info=True)

    def _task_outcome(self) -> Outcome[Any]:
        task = self._task
        assert task is not None
        if task.cancelled():
            return Outcome(error=asyncio.CancelledError("the guest's main task was cancelled"))
        with contextlib.suppress(asyncio.InvalidStateError):
            exc = task.exception()
            if exc is not None:
                return Outcome(error=exc)
            return Outcome(task.result())
        return Outcome(error=RuntimeError("the guest ended before its main task finished"))
