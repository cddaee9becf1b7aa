"""cokernel.engine._caller: the four doors onto a Caller's loop, their ordering and their cancellation.

Every test runs with the Caller's loop on asyncio and on trio. Gates (events the test opens)
make each ordering claim deterministic: a job that must run *while* another one is suspended is
the one that lets the other one go on.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiologic
import anyio
import anyio.lowlevel
import pytest

from cokernel.engine._caller import Caller, Pending, PendingCancelled
from cokernel.engine._lending import Lender
from cokernel.engine._pending import DoneFlag

pytestmark = pytest.mark.timeout(30)

WAIT = 10.0  # bound on every wait; a correct Caller finishes each step at once


@pytest.fixture(params=["asyncio", "trio"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def caller(backend: str) -> Iterator[Caller]:
    caller = Caller(f"test-{backend}", backend=backend).start_thread()
    try:
        yield caller
    finally:
        caller.stop()
        assert caller.join(WAIT), "the caller's loop did not stop"


async def hold_forever(started: threading.Event, finished: threading.Event | None = None) -> None:
    started.set()
    try:
        await anyio.sleep_forever()
    finally:
        if finished is not None:
            finished.set()


def wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "the job never got there"


# -- call_soon ----------------------------------------------------------------------------------
def test_call_soon_runs_jobs_concurrently(caller: Caller) -> None:
    gate = aiologic.Event()

    async def waits_for_gate() -> str:
        await gate
        return "passed"

    async def opens_gate() -> str:
        gate.set()
        return "opened"

    # Run one after the other, the first would wait forever for the second.
    first = caller.call_soon(waits_for_gate)
    second = caller.call_soon(opens_gate)
    assert second.result(WAIT) == "opened"
    assert first.result(WAIT) == "passed"


def test_call_soon_runs_on_the_loop_thread_in_the_submitters_context(caller: Caller) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("submitter")

    def probe() -> tuple[threading.Thread, str]:
        return threading.current_thread(), var.get()

    thread, value = caller.call_soon(probe).result(WAIT)
    assert thread is caller.thread
    assert value == "submitter"


# -- queue_call ---------------------------------------------------------------------------------
def test_queue_call_keeps_fifo_order_in_a_lane_while_another_lane_runs(caller: Caller) -> None:
    events: list[str] = []
    a1_started = aiologic.Event()
    gate = aiologic.Event()

    async def a1() -> None:
        events.append("a1 start")
        a1_started.set()
        await gate
        events.append("a1 end")

    def a2() -> None:
        events.append("a2")

    async def b1() -> None:
        await a1_started
        events.append("b1")
        gate.set()  # lane "a" can only finish because lane "b" ran meanwhile

    jobs = [caller.queue_call("a", a1), caller.queue_call("a", a2), caller.queue_call("b", b1)]
    for job in jobs:
        job.result(WAIT)
    assert events == ["a1 start", "b1", "a1 end", "a2"]


def test_lanes_begin_in_the_order_their_first_jobs_arrived(caller: Caller) -> None:
    # Jobs on different lanes run concurrently, but each begins (runs up to its first await)
    # in arrival order, on trio too, whose scheduler may run a batch of new tasks reversed.
    begun: list[int] = []
    gate = aiologic.Event()

    async def job(index: int) -> None:
        begun.append(index)
        await gate

    for _ in range(5):
        begun.clear()
        gate = aiologic.Event()
        pendings = [caller.queue_call(("lane", i), job, i) for i in range(20)]
        while len(begun) < 20:
            caller.call_soon(anyio.lowlevel.checkpoint).result(WAIT)
        gate.set()
        for pending in pendings:
            pending.result(WAIT)
        assert begun == list(range(20))


def test_queue_call_preserves_submission_order_across_checkpoints(caller: Caller) -> None:
    order: list[tuple[str, int]] = []

    async def step(lane: str, n: int) -> None:
        await anyio.lowlevel.checkpoint()  # give every other job the chance to overtake
        order.append((lane, n))

    jobs = [caller.queue_call(lane, step, lane, n) for n in range(30) for lane in ("x", "y")]
    for job in jobs:
        job.result(WAIT)
    for lane in ("x", "y"):
        assert [n for name, n in order if name == lane] == list(range(30))


def test_a_failing_job_does_not_stop_its_lane(caller: Caller) -> None:
    def fail() -> None:
        raise ValueError("first job fails")

    failed = caller.queue_call("lane", fail)
    after = caller.queue_call("lane", lambda: "still served")
    with pytest.raises(ValueError, match="first job fails"):
        failed.result(WAIT)
    assert after.result(WAIT) == "still served"


# -- to_thread and call_direct ------------------------------------------------------------------
def test_to_thread_blocks_a_worker_while_the_loop_stays_responsive(caller: Caller) -> None:
    started, release = threading.Event(), threading.Event()

    def blocking() -> threading.Thread:
        started.set()
        assert release.wait(WAIT)
        return threading.current_thread()

    worker = caller.to_thread(blocking)
    wait(started)
    assert caller.call_soon(lambda: "loop answers").result(WAIT) == "loop answers"
    assert caller.queue_call("lane", lambda: "lane answers").result(WAIT) == "lane answers"
    assert not worker.done()
    release.set()
    thread = worker.result(WAIT)
    assert thread is not caller.thread
    assert thread is not threading.current_thread()


def test_call_direct_runs_at_once_on_the_calling_thread(caller: Caller) -> None:
    here = caller.call_direct(threading.current_thread)
    assert here.done()
    assert here.result() is threading.current_thread()

    elsewhere: list[Pending[threading.Thread]] = []
    thread = threading.Thread(
        target=lambda: elsewhere.append(caller.call_direct(threading.current_thread))
    )
    thread.start()
    thread.join(WAIT)
    assert elsewhere[0].result() is thread


# -- cancellation -------------------------------------------------------------------------------
def test_cancel_stops_a_running_task_at_its_next_checkpoint(caller: Caller) -> None:
    started, finished = threading.Event(), threading.Event()
    job = caller.call_soon(hold_forever, started, finished)
    wait(started)

    assert job.cancel() is True
    with pytest.raises(PendingCancelled):
        job.result(WAIT)
    assert job.cancelled()
    assert finished.is_set()  # the job's own cleanup ran
    assert job.cancel() is False  # already finished
    assert caller.call_soon(lambda: "loop lives on").result(WAIT) == "loop lives on"


def test_cancelling_a_running_lane_job_lets_the_lane_go_on(caller: Caller) -> None:
    started = threading.Event()
    ran: list[str] = []
    holder = caller.queue_call("lane", hold_forever, started)
    skipped = caller.queue_call("lane", ran.append, "skipped")
    served = caller.queue_call("lane", ran.append, "served")
    wait(started)

    assert skipped.cancel() is True  # not started yet: settled at once
    assert skipped.cancelled()
    assert holder.cancel() is True
    served.result(WAIT)
    with pytest.raises(PendingCancelled):
        holder.result(WAIT)
    with pytest.raises(PendingCancelled):
        skipped.result(WAIT)
    assert ran == ["served"]


def test_a_lane_job_that_swallows_its_cancellation_leaves_the_next_job_alone(
    caller: Caller,
) -> None:
    """The jobs a lane runs in a row share one cancel scope: cancelling one must not reach the
    job after it, even when the cancelled job catches the cancellation and returns."""
    started = threading.Event()

    async def swallow() -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            return "swallowed"
        return "not reached"

    async def checkpoints() -> str:
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        return "next job ran"

    first = caller.queue_call("lane", swallow)
    second = caller.queue_call("lane", checkpoints)
    wait(started)
    assert first.cancel() is True
    assert first.result(WAIT) == "swallowed"
    assert second.result(WAIT) == "next job ran"
    assert caller.queue_call("lane", checkpoints).result(WAIT) == "next job ran"


def test_a_task_cancelled_before_it_starts_never_runs(caller: Caller) -> None:
    loop_blocked, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def block_the_loop() -> None:
        loop_blocked.set()
        assert release.wait(WAIT)

    blocker = caller.call_soon(block_the_loop)
    wait(loop_blocked)
    job = caller.call_soon(ran.append, "ran")  # cannot start: the loop thread is blocked
    assert job.cancel() is True
    release.set()
    blocker.result(WAIT)
    assert caller.call_soon(lambda: None).result(WAIT) is None  # the loop went past the job
    with pytest.raises(PendingCancelled):
        job.result(WAIT)
    assert ran == []


def test_thread_work_cancelled_before_a_worker_is_free_never_runs(backend: str) -> None:
    caller = Caller(f"one-worker-{backend}", backend=backend, max_threads=1).start_thread()
    try:
        started, release = threading.Event(), threading.Event()
        ran: list[str] = []

        def occupy() -> None:
            started.set()
            assert release.wait(WAIT)

        busy = caller.to_thread(occupy)
        wait(started)
        waiting = caller.to_thread(ran.append, "cancelled")
        after = caller.to_thread(ran.append, "after")
        assert waiting.cancel() is True
        release.set()
        busy.result(WAIT)
        after.result(WAIT)
        assert ran == ["after"]
        with pytest.raises(PendingCancelled):
            waiting.result(WAIT)
    finally:
        caller.stop()
        assert caller.join(WAIT)


def test_to_thread_work_that_stop_drops_unstarted_is_cancelled_not_lost(backend: str) -> None:
    # Found by the interleaving property tests: an inspect_request queued on a subshell's
    # worker pool when the subshell was deleted never got a reply.
    caller = Caller(f"one-worker-{backend}", backend=backend, max_threads=1).start_thread()
    started, release = threading.Event(), threading.Event()

    def occupy() -> None:
        started.set()
        assert release.wait(WAIT)

    try:
        busy = caller.to_thread(occupy)
        wait(started)
        queued = caller.to_thread(lambda: "never runs")
        caller.stop()  # drops the queued work (cancel_futures)
        with pytest.raises(PendingCancelled):
            queued.result(WAIT)
        with pytest.raises(PendingCancelled):  # and work sent after the stop
            caller.to_thread(lambda: "late").result(WAIT)
    finally:
        release.set()
        busy.result(WAIT)
        assert caller.join(WAIT)


# -- Pending --------------------------------------------------------------------------------------
@pytest.mark.parametrize("awaiting_backend", ["asyncio", "trio"])
def test_pending_is_awaitable_from_another_threads_loop(
    caller: Caller, awaiting_backend: str
) -> None:
    release = aiologic.Event()

    async def work() -> int:
        await release
        return 42

    job = caller.call_soon(work)
    results: list[int] = []

    async def main() -> None:
        awaiting = anyio.Event()

        async def await_job() -> None:
            awaiting.set()
            results.append(await job)

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(await_job)
                await awaiting.wait()
                # await_job is now suspended in `await job`; had it blocked the thread, this
                # task could not run and the job would never be released.
                release.set()

    anyio.run(main, backend=awaiting_backend)
    assert results == [42]


def test_pending_result_blocks_a_plain_thread_until_done(caller: Caller) -> None:
    release = aiologic.Event()

    async def work() -> str:
        await release
        return "done"

    job = caller.call_soon(work)
    with pytest.raises(TimeoutError):
        job.result(timeout=0)
    results: list[str] = []
    reader = threading.Thread(target=lambda: results.append(job.result(WAIT)))
    reader.start()
    release.set()
    reader.join(WAIT)
    assert results == ["done"]


def test_done_callbacks_run_once_including_those_added_after_completion(caller: Caller) -> None:
    seen: list[Any] = []
    job = caller.call_soon(lambda: "value")
    job.add_done_callback(lambda p: seen.append(("before", p.result())))
    job.result(WAIT)
    job.add_done_callback(lambda p: seen.append(("after", p.result())))
    assert sorted(seen) == [("after", "value"), ("before", "value")]


def raises_value_error() -> None:
    raise ValueError("boom")


async def raises_value_error_async() -> None:
    await anyio.lowlevel.checkpoint()
    raise ValueError("boom")


DOORS: dict[str, Callable[[Caller], Pending[Any]]] = {
    "call_soon": lambda c: c.call_soon(raises_value_error),
    "call_soon-async": lambda c: c.call_soon(raises_value_error_async),
    "queue_call": lambda c: c.queue_call("lane", raises_value_error_async),
    "to_thread": lambda c: c.to_thread(raises_value_error),
    "call_direct": lambda c: c.call_direct(raises_value_error),
}


@pytest.mark.parametrize("door", DOORS)
def test_exceptions_propagate_to_the_pending(caller: Caller, door: str) -> None:
    job = DOORS[door](caller)
    with pytest.raises(ValueError, match="boom"):
        job.result(WAIT)
    assert job.done()
    assert not job.cancelled()

    async def awaited() -> None:
        with pytest.raises(ValueError, match="boom"):
            await job

    anyio.run(awaited)


# -- lifecycle ----------------------------------------------------------------------------------
def test_stop_cancels_running_and_queued_work_and_ends_the_thread(backend: str) -> None:
    caller = Caller(f"stopping-{backend}", backend=backend).start_thread()
    assert caller.running
    task_started, lane_started = threading.Event(), threading.Event()
    task = caller.call_soon(hold_forever, task_started)
    lane_head = caller.queue_call("lane", hold_forever, lane_started)
    lane_queued = caller.queue_call("lane", lambda: "never")
    wait(task_started)
    wait(lane_started)

    caller.stop()
    assert caller.join(WAIT)
    assert caller.thread is not None
    caller.thread.join(WAIT)
    assert not caller.thread.is_alive()
    assert not caller.running
    for job in (task, lane_head, lane_queued):
        with pytest.raises(PendingCancelled):
            job.result(WAIT)
    caller.stop()  # idempotent


def test_lanes_started_together_as_the_loop_stops_are_all_settled(backend: str) -> None:
    # Lanes started in one scheduling batch: on trio each lane task waits for the one started
    # before it to begin, and a task still waiting when the loop stops must settle its jobs.
    async def forever() -> None:
        await anyio.sleep_forever()

    for round_ in range(10):
        caller = Caller(f"stopping-lanes-{backend}-{round_}", backend=backend).start_thread()
        jobs = [caller.queue_call(("lane", i), forever) for i in range(30)]
        caller.stop()
        assert caller.join(WAIT)
        for job in jobs:
            with pytest.raises(PendingCancelled):
                job.result(WAIT)


def test_work_submitted_after_stop_is_cancelled_not_lost(backend: str) -> None:
    caller = Caller(f"stopped-{backend}", backend=backend).start_thread()
    caller.stop()
    assert caller.join(WAIT)
    for job in (caller.call_soon(lambda: "late"), caller.queue_call("lane", lambda: "late")):
        with pytest.raises(PendingCancelled):
            job.result(WAIT)


# -- lendable lanes (cokernel.engine._lending) ---------------------------------------------------------
class StuckCell:
    """Plays a cell stuck in synchronous code on the loop's thread until :meth:`release`."""

    def __init__(self, caller: Caller) -> None:
        self.caller = caller
        self.inside = threading.Event()
        self.gate = threading.Event()
        self.left = threading.Event()
        self.job = caller.call_soon(self._run)

    def _run(self) -> None:
        lender = self.caller.lender
        lender.enter()
        try:
            self.inside.set()
            wait(self.gate)
        finally:
            lender.leave()
            self.left.set()

    def release(self) -> None:
        self.gate.set()
        self.job.result(WAIT)


def test_lendable_jobs_run_on_the_loop_when_it_is_free(caller: Caller) -> None:
    seen = [caller.queue_lendable("comm", threading.current_thread).result(WAIT) for _ in range(3)]
    assert seen == [caller.thread] * 3


def test_a_loop_stuck_in_user_code_lends_its_lane_to_a_stand_in_and_takes_it_back(
    caller: Caller,
) -> None:
    ran: list[tuple[int, threading.Thread]] = []

    def job(n: int) -> None:
        ran.append((n, threading.current_thread()))

    first = caller.queue_lendable("comm", job, 0)  # before the cell: on the loop
    first.result(WAIT)
    cell = StuckCell(caller)
    wait(cell.inside)
    lent = [caller.queue_lendable("comm", job, n) for n in range(1, 6)]
    for pending in lent:  # served while the loop's thread is still stuck
        pending.result(WAIT)
    assert not cell.left.is_set()
    cell.release()
    caller.queue_lendable("comm", job, 6).result(WAIT)
    assert [n for n, _ in ran] == list(range(7))
    threads = [thread for _, thread in ran]
    assert threads[0] is caller.thread
    assert threads[6] is caller.thread
    assert all(t is not caller.thread for t in threads[1:6])


def test_jobs_queued_for_the_loop_before_it_got_stuck_are_lent_in_order(caller: Caller) -> None:
    ran: list[int] = []
    gate = threading.Event()

    async def block_then_stick() -> None:
        # The lane's jobs are posted to the loop while this job holds it; then it gets stuck.
        wait(gate)
        caller.lender.enter()
        try:
            wait(done)
        finally:
            caller.lender.leave()

    done = threading.Event()
    stuck = caller.call_soon(block_then_stick)
    pendings = [caller.queue_lendable("comm", ran.append, n) for n in range(5)]
    gate.set()
    for pending in pendings:
        pending.result(WAIT)
    done.set()
    stuck.result(WAIT)
    assert ran == list(range(5))


def test_the_loop_does_not_go_back_while_a_lent_job_runs(caller: Caller) -> None:
    order: list[str] = []
    cell = StuckCell(caller)
    wait(cell.inside)

    def lent_job() -> None:
        cell.gate.set()  # the cell ends its synchronous stretch now...
        # ...and its thread must wait in Lender.leave until this job is over.
        frames = sys._current_frames
        deadline = time.monotonic() + WAIT
        ident = caller.thread.ident if caller.thread is not None else 0
        while not any(f.f_code is Lender.leave.__code__ for f in _stack(frames().get(ident or 0))):
            assert time.monotonic() < deadline, "the loop's thread never waited for the job"
            time.sleep(0.001)
        order.append("job over")

    caller.queue_lendable("comm", lent_job).result(WAIT)
    cell.job.result(WAIT)
    order.append("cell left")
    assert order == ["job over", "cell left"]


def _stack(frame: Any) -> Iterator[Any]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def test_a_parked_loop_thread_runs_its_lent_jobs_itself(caller: Caller) -> None:
    ran: list[tuple[int, threading.Thread]] = []
    parked = threading.Event()
    answered = threading.Event()

    def cell() -> None:  # like input(): in user code, parked until its answer comes
        lender = caller.lender
        lender.enter()
        try:
            with lender.parked() as park_wait:
                parked.set()
                park_wait(answered.is_set)
        finally:
            lender.leave()

    job = caller.call_soon(cell)
    wait(parked)
    for n in range(4):
        caller.queue_lendable("comm", lambda n=n: ran.append((n, threading.current_thread())))
    last = caller.queue_lendable("comm", answered.set)
    last.result(WAIT)
    caller.lender.wake()
    job.result(WAIT)
    assert [n for n, _ in ran] == [0, 1, 2, 3]
    assert all(thread is caller.thread for _, thread in ran)


def test_a_lent_job_sets_an_event_of_the_stuck_loop_and_its_waiter_wakes_later(
    caller: Caller,
) -> None:
    made = threading.Event()
    events: list[anyio.Event] = []

    async def waiter() -> str:
        events.append(anyio.Event())
        made.set()
        await events[0].wait()
        return "woken"

    woken = caller.call_soon(waiter)
    wait(made)
    cell = StuckCell(caller)
    wait(cell.inside)
    # Run by a stand-in while the loop is stuck: no error, and the waiter wakes once it runs.
    caller.queue_lendable("comm", lambda: events[0].set()).result(WAIT)
    assert not woken.done()
    cell.release()
    assert woken.result(WAIT) == "woken"


def test_a_future_completed_from_another_thread_wakes_an_idle_asyncio_loop() -> None:
    import asyncio

    caller = Caller("test-foreign", backend="asyncio").start_thread()
    try:
        made = threading.Event()
        futures: list[asyncio.Future[int]] = []

        async def waiter() -> int:
            futures.append(asyncio.get_running_loop().create_future())
            made.set()
            return await futures[0]

        result = caller.call_soon(waiter)
        wait(made)
        threading.Thread(target=futures[0].set_result, args=(7,)).start()
        assert result.result(WAIT) == 7
    finally:
        caller.stop()
        assert caller.join(WAIT)


def test_a_lent_job_may_start_an_asyncio_task_on_the_stuck_loop() -> None:
    import asyncio

    caller = Caller("test-lent-task", backend="asyncio").start_thread()
    try:
        ran = threading.Event()
        cell = StuckCell(caller)
        wait(cell.inside)

        async def later() -> None:
            ran.set()

        tasks: list[Any] = []
        caller.queue_lendable("comm", lambda: tasks.append(asyncio.create_task(later()))).result(
            WAIT
        )
        cell.release()
        wait(ran)
    finally:
        caller.stop()
        assert caller.join(WAIT)


def test_every_lendable_job_is_settled_when_the_loop_stops(backend: str) -> None:
    caller = Caller(f"test-lend-stop-{backend}", backend=backend).start_thread()
    cell = StuckCell(caller)
    wait(cell.inside)
    blocker = threading.Event()
    pendings = [caller.queue_lendable("comm", blocker.wait, WAIT)]
    pendings += [caller.queue_lendable("comm", lambda: "maybe") for _ in range(20)]
    caller.stop()
    blocker.set()
    cell.release()
    assert caller.join(WAIT)
    late = caller.queue_lendable("comm", lambda: "never")
    for pending in pendings:  # run, or cancelled: none is left hanging
        try:
            pending.result(WAIT)
        except PendingCancelled:
            pass
    with pytest.raises(PendingCancelled):
        late.result(WAIT)


# -- DoneFlag (a cell's "done") -----------------------------------------------------------------
def test_done_flag_wakes_a_thread_that_waits_before_it_is_set() -> None:
    flag = DoneFlag()
    assert not flag.is_set()
    assert flag.wait(0) is False
    waiting, woke = threading.Event(), threading.Event()

    def waiter() -> None:
        waiting.set()
        if flag.wait(WAIT):
            woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    wait(waiting)
    flag.set()
    thread.join(WAIT)
    assert woke.is_set()
    assert flag.is_set()
    assert flag.wait(0) is True


def test_done_flag_set_first_never_blocks_a_later_wait() -> None:
    flag = DoneFlag()
    flag.set()
    flag.set()  # idempotent, as Event.set
    assert flag.wait(None) is True
