"""A guided tour: start a kernel under a real Jupyter client and show what concurrency buys.

``python -m cokernel_harness.demo [--kernel NAME]`` starts the kernelspec (default ``cokernel``)
through jupyter_client and plays the situations that stall a sequential kernel: requests sent
while a cell blocks, a cell on a subshell while the main shell blocks, a cell awaiting a value
that a later comm message delivers, an interrupt of an awaiting cell, and a cell printing
100,000 lines. It prints what happened, with timings, and
exits non-zero when the kernel did not get through. It speaks only the protocol, so any kernel
can be toured (try ``--kernel python3`` for ipykernel).
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager, start_new_kernel

WIDGET_CELL = """\
import asyncio, comm
_box = comm.create_comm(target_name="cokernel.demo")
_got = asyncio.get_running_loop().create_future()
_box.on_msg(lambda msg: _got.done() or _got.set_result(msg["content"]["data"]["value"]))
value = await asyncio.wait_for(_got, 20)
print("the cell received", value)
"""


@dataclass
class Step:
    title: str
    ok: bool
    detail: str


class Tour:
    """Drives one kernel through the tour; every wait is bounded."""

    def __init__(self, km: KernelManager, kc: BlockingKernelClient) -> None:
        self.km, self.kc = km, kc
        self.steps: list[Step] = []

    def record(self, title: str, ok: bool, detail: str) -> None:
        self.steps.append(Step(title, ok, detail))
        mark = "PASS" if ok else "FAIL"
        print(f"  [{mark}] {title}: {detail}", flush=True)

    def wait_reply(
        self, get: Callable[..., dict[str, Any]], msg_id: str, timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = get(timeout=left)
            except queue.Empty:
                return None
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    def iopub_until_idle(self, msg_id: str, timeout: float) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.kc.get_iopub_msg(timeout=left)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            seen.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        return seen

    def run(self) -> bool:
        kc = self.kc
        info = kc.kernel_info(reply=True, timeout=30)["content"]
        print(f"kernel: {info.get('implementation')} {info.get('implementation_version')}")
        print((info.get("banner") or "").strip(), "\n", flush=True)

        reply = kc.execute("6 * 7", reply=True, timeout=30)["content"]
        self.record("execute 6 * 7", reply["status"] == "ok", f"status {reply['status']}")

        # 1. Requests while a cell blocks the interpreter.
        cell = kc.execute("import time; time.sleep(2)")
        time_sent = time.perf_counter()
        request = kc.session.msg("kernel_info_request")
        kc.control_channel.send(request)
        got = self.wait_reply(kc.get_control_msg, request["header"]["msg_id"], 10)
        latency = (time.perf_counter() - time_sent) * 1000
        self.record(
            "kernel_info on control while a cell sleeps", got is not None, f"{latency:.1f} ms"
        )
        time_sent = time.perf_counter()
        complete_id = kc.complete("import ti", 9)
        got = self.wait_reply(kc.get_shell_msg, complete_id, 10)
        latency = (time.perf_counter() - time_sent) * 1000
        # Its reply must come before the sleeping cell's (which wait_reply would have skipped).
        cell_done = self.wait_reply(kc.get_shell_msg, cell, 30) is not None
        self.record(
            "completion on shell while a cell sleeps",
            got is not None and cell_done,
            f"{latency:.1f} ms" + ("" if cell_done else ", after the sleeping cell's reply"),
        )
        self.iopub_until_idle(cell, 10)

        # 2. A subshell (JEP 91) runs a cell while the main shell sleeps.
        self._subshell_step()

        # 3. The widget deadlock: a cell awaits what a later comm message delivers.
        cell = kc.execute(WIDGET_CELL)
        comm_id = None
        deadline = time.monotonic() + 20
        while comm_id is None and time.monotonic() < deadline:
            try:
                msg = kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["msg_type"] == "comm_open" and msg["parent_header"].get("msg_id") == cell:
                comm_id = msg["content"]["comm_id"]
        if comm_id is None:
            self.record(
                "a cell awaits a value sent later by the frontend", False, "no comm_open arrived"
            )
        else:
            kc.shell_channel.send(
                kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {"value": 42}})
            )
            reply_msg = self.wait_reply(kc.get_shell_msg, cell, 25)
            status = reply_msg["content"]["status"] if reply_msg else "no reply (deadlocked)"
            self.record(
                "a cell awaits a value sent later by the frontend",
                status == "ok",
                f"cell status: {status}",
            )
        self.iopub_until_idle(cell, 10)

        # 4. Interrupt a cell that awaits.
        cell = kc.execute("import asyncio\nawait asyncio.sleep(100)")
        self._wait_busy(cell)
        started = time.perf_counter()
        self.km.interrupt_kernel()
        reply_msg = self.wait_reply(kc.get_shell_msg, cell, 20)
        latency = (time.perf_counter() - started) * 1000
        ename = reply_msg["content"].get("ename") if reply_msg else None
        self.record(
            "interrupt `await asyncio.sleep(100)`",
            ename == "KeyboardInterrupt",
            f"{ename} after {latency:.1f} ms",
        )
        self.iopub_until_idle(cell, 10)

        # 5. 100,000 printed lines.
        started = time.perf_counter()
        cell = kc.execute("for i in range(100_000): print(i)")
        msgs = self.iopub_until_idle(cell, 120)
        elapsed = (time.perf_counter() - started) * 1000
        streams = [m for m in msgs if m["msg_type"] == "stream"]
        text = "".join(m["content"]["text"] for m in streams)
        lines = text.count("\n")
        self.record(
            "100,000 printed lines",
            lines == 100_000,
            f"{lines} lines in {len(streams)} stream messages, {elapsed:.0f} ms",
        )
        return all(step.ok for step in self.steps)

    def _subshell_step(self) -> None:
        kc = self.kc
        title = "a cell on a subshell while the main shell sleeps"
        create = kc.session.msg("create_subshell_request")
        kc.control_channel.send(create)
        created = self.wait_reply(kc.get_control_msg, create["header"]["msg_id"], 10)
        if created is None or created["content"].get("status") != "ok":
            detail = "no subshells" if created is not None else "no create_subshell_reply"
            self.record(title, False, detail)
            return
        subshell_id = created["content"]["subshell_id"]
        cell = kc.execute("import time; time.sleep(2)")
        self._wait_busy(cell)
        header = kc.session.msg_header("execute_request")
        header["subshell_id"] = subshell_id
        request = kc.session.msg(
            "execute_request",
            {"code": "6 * 7", "silent": False, "store_history": True},
            header=header,
        )
        sent = time.perf_counter()
        kc.shell_channel.send(request)
        # Replies to both cells come on shell; the subshell's must come first.
        first = self.wait_reply(kc.get_shell_msg, request["header"]["msg_id"], 10)
        latency = (time.perf_counter() - sent) * 1000
        main_after = self.wait_reply(kc.get_shell_msg, cell, 30) is not None
        self.record(
            title,
            first is not None and first["content"].get("status") == "ok" and main_after,
            f"{latency:.1f} ms"
            + (", before the main cell's reply" if main_after else ", after the main cell's"),
        )
        self.iopub_until_idle(cell, 10)
        delete = kc.session.msg("delete_subshell_request", {"subshell_id": subshell_id})
        kc.control_channel.send(delete)
        self.wait_reply(kc.get_control_msg, delete["header"]["msg_id"], 10)

    def _wait_busy(self, msg_id: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_input":
                return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cokernel_harness.demo", description=__doc__)
    parser.add_argument("--kernel", default="cokernel", help="kernelspec name (default: cokernel)")
    args = parser.parse_args(argv)
    print(f"Starting kernelspec {args.kernel!r} under jupyter_client…", flush=True)
    km, kc = start_new_kernel(kernel_name=args.kernel, startup_timeout=60)
    try:
        ok = Tour(km, kc).run()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    print(
        "\nresult:",
        "the kernel stayed live throughout" if ok else "the kernel stalled somewhere (see FAIL)",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
