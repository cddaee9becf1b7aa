"""A guided tour: start a kernel under a real Jupyter client and show what concurrency buys.

``python -m cokernel_harness.demo [--kernel NAME]`` starts the kernelspec (default ``cokernel``)
through jupyter_client and, as a :class:`~cokernel_harness.frontend.Frontend`, plays the situations that stall a sequential kernel: requests sent
while a cell blocks, a cell on a subshell while the main shell blocks, a cell awaiting a value
that a later comm message delivers, an interrupt of an awaiting cell, and a cell printing
100,000 lines. It prints what happened, with timings, and
exits non-zero when the kernel did not get through. It speaks only the protocol, so any kernel
can be toured (try ``--kernel python3`` for ipykernel).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import anyio

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received, WaitTimeout

# The cells use anyio, so that they run on any event loop a kernel offers (asyncio or trio).
WIDGET_CELL = """\
import anyio, comm
_box = comm.create_comm(target_name="cokernel.demo")
_got, _values = anyio.Event(), []
_box.on_msg(lambda msg: (_values.append(msg["content"]["data"]["value"]), _got.set()))
with anyio.fail_after(20):
    await _got.wait()
print("the cell received", _values[0])
"""


@dataclass
class Step:
    title: str
    ok: bool
    detail: str


def since(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.1f} ms"


class Tour:
    """Drives one kernel through the tour, as a Frontend; every wait is bounded."""

    def __init__(self, fe: Frontend) -> None:
        self.fe = fe
        self.steps: list[Step] = []

    def record(self, title: str, ok: bool, detail: str) -> None:
        self.steps.append(Step(title, ok, detail))
        mark = "PASS" if ok else "FAIL"
        print(f"  [{mark}] {title}: {detail}", flush=True)

    async def reply(self, msg_id: str, timeout: float) -> Received | None:
        """The reply to ``msg_id``, or None if it does not come within ``timeout`` s."""
        try:
            return await self.fe.reply_message(msg_id, timeout=timeout)
        except WaitTimeout:
            return None

    async def started(self, cell: str, sign: str = "execute_input") -> None:
        """Wait (up to 10 s) until ``cell`` runs: it published a ``sign`` message."""
        try:
            await self.fe.wait_for(
                lambda m: m.parent_id == cell and m.msg_type == sign, timeout=10, what=sign
            )
        except WaitTimeout:
            pass

    async def settle(self, cell: str) -> None:
        try:
            await self.fe.collect(cell, timeout=10)
        except WaitTimeout:
            pass

    async def run(self) -> bool:
        fe = self.fe
        info = await fe.kernel_info()
        print(f"kernel: {info.get('implementation')} {info.get('implementation_version')}")
        print((info.get("banner") or "").strip(), "\n", flush=True)

        reply = (await fe.run("6 * 7", timeout=30)).reply
        self.record("execute 6 * 7", reply["status"] == "ok", f"status {reply['status']}")

        await self._while_a_cell_sleeps()
        await self._subshell_step()
        await self._widget_step()
        await self._interrupt_step()
        await self._print_step()
        return all(step.ok for step in self.steps)

    async def _while_a_cell_sleeps(self) -> None:
        """1. Requests while a cell blocks the interpreter."""
        fe = self.fe
        cell = fe.execute("import time; time.sleep(2)")
        started = time.perf_counter()
        got = await self.reply(fe.send("control", "kernel_info_request"), 10)
        self.record("kernel_info on control while a cell sleeps", got is not None, since(started))
        started = time.perf_counter()
        content = {"code": "import ti", "cursor_pos": 9}
        completion = await self.reply(fe.send("shell", "complete_request", content), 10)
        latency = since(started)
        # Its reply must come before the sleeping cell's.
        done = await self.reply(cell, 30)
        first = completion is not None and (
            done is None or fe.log.index(completion) < fe.log.index(done)
        )
        self.record(
            "completion on shell while a cell sleeps",
            first,
            latency + ("" if first else ", after the sleeping cell's reply"),
        )
        await self.settle(cell)

    async def _subshell_step(self) -> None:
        """2. A subshell (JEP 91) runs a cell while the main shell sleeps."""
        fe = self.fe
        title = "a cell on a subshell while the main shell sleeps"
        created = await self.reply(fe.send("control", "create_subshell_request"), 10)
        if created is None or created.content.get("status") != "ok":
            self.record(title, False, "no subshells" if created else "no create_subshell_reply")
            return
        subshell_id = str(created.content["subshell_id"])
        cell = fe.execute("import time; time.sleep(2)")
        await self.started(cell)
        started = time.perf_counter()
        first = await self.reply(fe.execute("6 * 7", subshell_id=subshell_id), 10)
        latency = since(started)
        # Replies to both cells come on shell; the subshell's must come first.
        main = await self.reply(cell, 30)
        main_after = main is not None and (
            first is None or fe.log.index(first) < fe.log.index(main)
        )
        self.record(
            title,
            first is not None and first.content.get("status") == "ok" and main_after,
            latency
            + (", before the main cell's reply" if main_after else ", after the main cell's"),
        )
        await self.settle(cell)
        deleted = {"subshell_id": subshell_id}
        await self.reply(fe.send("control", "delete_subshell_request", deleted), 10)

    async def _widget_step(self) -> None:
        """3. The widget deadlock: a cell awaits what a later comm message delivers."""
        fe = self.fe
        title = "a cell awaits a value sent later by the frontend"
        cell = fe.execute(WIDGET_CELL)
        try:
            opened = await fe.wait_for(
                lambda m: m.msg_type == "comm_open" and m.parent_id == cell,
                timeout=20,
                what="comm_open",
            )
        except WaitTimeout:
            self.record(title, False, "no comm_open arrived")
        else:
            fe.comm_msg(opened.content["comm_id"], {"value": 42})
            reply = await self.reply(cell, 25)
            status = reply.content["status"] if reply else "no reply (deadlocked)"
            self.record(title, status == "ok", f"cell status: {status}")
        await self.settle(cell)

    async def _interrupt_step(self) -> None:
        """4. Interrupt a cell that awaits."""
        fe = self.fe
        # Interrupted once it awaits: it says so first (a kernel may drop a SIGINT that comes
        # between the cell's execute_input and its first line).
        cell = fe.execute("import anyio\nprint('awaiting', flush=True)\nawait anyio.sleep(100)")
        await self.started(cell, "stream")
        started = time.perf_counter()
        await fe.interrupt()
        reply = await self.reply(cell, 20)
        ename = reply.content.get("ename") if reply else None
        self.record(
            "interrupt `await anyio.sleep(100)`",
            ename == "KeyboardInterrupt",
            f"{ename} after {since(started)}",
        )
        await self.settle(cell)

    async def _print_step(self) -> None:
        """5. 100,000 printed lines."""
        started = time.perf_counter()
        try:
            run = await self.fe.run("for i in range(100_000): print(i)", timeout=120)
            streams = [m for m in run.outputs if m.msg_type == "stream"]
        except WaitTimeout:
            streams = []
        elapsed = (time.perf_counter() - started) * 1000
        lines = "".join(m.content["text"] for m in streams).count("\n")
        self.record(
            "100,000 printed lines",
            lines == 100_000,
            f"{lines} lines in {len(streams)} stream messages, {elapsed:.0f} ms",
        )


async def tour(kernel: str) -> bool:
    async with Frontend.launch(kernel) as fe:
        return await Tour(fe).run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cokernel_harness.demo", description=__doc__)
    parser.add_argument("--kernel", default="cokernel", help="kernelspec name (default: cokernel)")
    args = parser.parse_args(argv)
    print(f"Starting kernelspec {args.kernel!r} under jupyter_client…", flush=True)
    ok = anyio.run(tour, args.kernel)
    print(
        "\nresult:",
        "the kernel stayed live throughout" if ok else "the kernel stalled somewhere (see FAIL)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
