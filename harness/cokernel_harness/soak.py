"""``cokernel-harness soak``: sustained load, then an account of every message and of the process.

Against a new kernel of any kernelspec, in turn:

1. ``--executes`` execute requests sent at once (pipelined), each answered by one reply;
2. ``--comms`` comm messages sent at once to an echo comm, each echoed on iopub;
3. ``--churn`` subshells created, used once and deleted (if the kernel has subshells);

while two iopub subscribers listen: a fast one, and a slow one that takes at most
``--slow-batch`` messages every ``--slow-delay`` seconds and catches up once the load is over.
The report counts lost, duplicated and out-of-order replies and echoes, compares the slow
reader's messages with the fast one's, and gives the kernel's RSS (idle, peak, final), open fds
and threads before and after. Every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cokernel_harness.cliruns import add_run_options, run_each_kernel
from cokernel_harness.rawkernel import KernelGone, ProcessStats, RawKernel
from cokernel_harness.soak_wire import (
    JOIN_WARMUP,
    Sampler,
    SlowReader,
    SoakRun,
    execute_content,
    has_idle,
    has_reply,
)

ECHO_TARGET = "cokernel_harness.soak.echo"
REGISTER_ECHO = f"""
import comm as _soak_comm

def _soak_target(c, msg):
    @c.on_msg
    def _echo(m):
        c.send(m["content"]["data"])

_soak_comm.get_comm_manager().register_target({ECHO_TARGET!r}, _soak_target)
"""


@dataclass
class Account:
    """What became of a numbered series of messages."""

    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    errors: int = 0

    @classmethod
    def of(cls, sent: int, arrivals: list[int], errors: int = 0) -> Account:
        seen: set[int] = set()
        duplicated = out_of_order = 0
        last = -1
        for n in arrivals:
            if n in seen:
                duplicated += 1
                continue
            seen.add(n)
            if n < last:
                out_of_order += 1
            last = max(last, n)
        lost = sum(1 for n in range(sent) if n not in seen)
        return cls(sent, len(arrivals), lost, duplicated, out_of_order, errors)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.out_of_order or self.errors)

    def text(self) -> str:
        return (
            f"{self.received}/{self.sent} received, lost {self.lost}, duplicated "
            f"{self.duplicated}, out of order {self.out_of_order}, errors {self.errors}"
        )


@dataclass
class SoakReport:
    kernel: str
    executes: Account = field(default_factory=Account)
    comms: Account = field(default_factory=Account)
    churn: Account = field(default_factory=Account)
    churn_skipped: str | None = None
    iopub_fast: int = 0
    iopub_slow: int = 0
    slow_matches_fast: bool = False
    idle: ProcessStats | None = None
    peak_rss_mib: float = 0.0
    final: ProcessStats | None = None
    seconds: float = 0.0
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.failure is None
            and self.executes.ok
            and self.comms.ok
            and self.churn.ok
            and self.slow_matches_fast
        )

    def to_json(self) -> dict[str, Any]:
        def account(a: Account) -> dict[str, int]:
            return {k: getattr(a, k) for k in Account.__dataclass_fields__}

        return {
            "kernel": self.kernel,
            "executes": account(self.executes),
            "comms": account(self.comms),
            "churn": account(self.churn),
            "churn_skipped": self.churn_skipped,
            "iopub_fast": self.iopub_fast,
            "iopub_slow": self.iopub_slow,
            "slow_matches_fast": self.slow_matches_fast,
            "idle": self.idle.to_json() if self.idle else None,
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "final": self.final.to_json() if self.final else None,
            "seconds": round(self.seconds, 1),
            "failure": self.failure,
            "ok": self.ok,
        }

    def text(self) -> str:
        lines = [f"soak {self.kernel} ({self.seconds:.1f} s)"]
        lines.append(f"  executes: {self.executes.text()}")
        lines.append(f"  comm echoes: {self.comms.text()}")
        churn = self.churn_skipped or self.churn.text()
        lines.append(f"  subshell churn: {churn}")
        same = "same messages, same order" if self.slow_matches_fast else "DIFFERENT"
        lines.append(
            f"  iopub: fast reader {self.iopub_fast} msgs, slow reader {self.iopub_slow} ({same})"
        )
        if self.idle and self.final:
            lines.append(
                f"  RSS idle {self.idle.rss_mib:.1f} MiB, peak {self.peak_rss_mib:.1f}, final "
                f"{self.final.rss_mib:.1f}; fds {self.idle.fds} -> {self.final.fds}; "
                f"threads {self.idle.threads} -> {self.final.threads}"
            )
        if self.failure:
            lines.append(f"  FAILURE: {self.failure}")
        return "\n".join(lines)


def soak(
    kernel_name: str,
    *,
    executes: int = 1000,
    comms: int = 10000,
    churn: int = 20,
    slow_batch: int = 50,
    slow_delay: float = 0.01,
    timeout: float = 600.0,
    progress: Any = None,
) -> SoakReport:
    """Run the soak against a new kernel of ``kernel_name``; see the module docstring."""

    def say(text: str) -> None:
        if progress is not None:
            print(f"  [{kernel_name}] {text}", file=progress, flush=True)

    report = SoakReport(kernel_name)
    started = time.monotonic()
    kernel = RawKernel(kernel_name)
    slow = SlowReader(kernel, slow_batch, slow_delay)
    sampler: Sampler | None = None
    try:
        run = SoakRun(kernel, timeout)
        slow.start()
        run.until_subscribed(slow)
        comm_id = _settle(run)
        report.idle = kernel.stats()
        sampler = Sampler(kernel.pid)
        sampler.start()

        say(f"{executes} pipelined executes")
        report.executes = _pipelined_executes(run, executes)
        say(f"{comms} comm echoes")
        report.comms = _comm_echoes(run, comm_id, comms)
        features = kernel.kernel_info.get("supported_features") or []
        if "kernel subshells" not in features:
            report.churn_skipped = "skipped (the kernel has no subshells)"
        else:
            say(f"{churn} subshells created, used and deleted")
            report.churn = _subshell_churn(run, churn)
        _wind_down(run, slow, sampler, report)
    except (KernelGone, TimeoutError) as e:
        report.failure = f"{type(e).__name__}: {e}"
    finally:
        slow.stop.set()
        if slow.is_alive():
            slow.join(5)
        if sampler is not None:
            sampler.stop.set()
        kernel.close()
        report.seconds = time.monotonic() - started
    return report


def _settle(run: SoakRun) -> str:
    """Open the echo comm and bring the kernel to rest before measuring it; returns the
    comm's id."""
    kernel = run.kernel
    setup = kernel.send("shell", "execute_request", execute_content(REGISTER_ECHO))
    run.pump(run.deadline(), lambda: has_reply(run, "shell", setup))
    comm_id = "soak-echo"
    kernel.send("shell", "comm_open", {"comm_id": comm_id, "target_name": ECHO_TARGET, "data": {}})
    probe = kernel.send("shell", "kernel_info_request")
    run.pump(run.deadline(), lambda: has_reply(run, "shell", probe))
    # Idle means "in use, at rest": a kernel loads its completer (jedi, about 30 MB) on the
    # first completion, or (cokernel) in the background after its first cell. Measured
    # before that, the soak would count it as memory the load did not give back.
    warm = kernel.send("shell", "complete_request", {"code": "int.bit_l", "cursor_pos": 9})
    run.pump(run.deadline(), lambda: has_reply(run, "shell", warm))
    # A kernel that loads it on a thread (cokernel's "cokernel-warmup") may still be at it
    # when the completion has been answered: wait for such a thread to end. Other kernels
    # have none, and the cell does nothing there.
    rest = kernel.send("shell", "execute_request", execute_content(JOIN_WARMUP))
    run.pump(run.deadline(), lambda: has_reply(run, "shell", rest))
    return comm_id


def _pipelined_executes(run: SoakRun, executes: int) -> Account:
    """Send ``executes`` execute requests at once; account for their replies."""
    ids = []
    for i in range(executes):
        ids.append(run.send_paced("execute_request", execute_content(f"_soak = {i}")))
    index = {msg_id: i for i, msg_id in enumerate(ids)}
    run.pump(run.deadline(), lambda: has_reply(run, "shell", ids[-1]) if ids else True)
    arrivals, errors = [], 0
    for reply in run.replies("shell", "execute_reply"):
        n = index.get(reply.parent or "")
        if n is not None:
            arrivals.append(n)
            errors += reply.detail != "ok"
    return Account.of(executes, arrivals, errors)


def _comm_echoes(run: SoakRun, comm_id: str, comms: int) -> Account:
    """Send ``comms`` messages at once to the echo comm; account for their echoes."""
    mark = len(run.log)
    for i in range(comms):
        run.send_paced("comm_msg", {"comm_id": comm_id, "data": {"n": i}})
    last = comms - 1

    def echoes() -> list[int]:
        return [
            int(r.detail[1])
            for r in run.log[mark:]
            if r.channel == "iopub"
            and r.msg_type == "comm_msg"
            and r.detail[0] == comm_id
            and isinstance(r.detail[1], int)
        ]

    def all_echoed() -> bool:
        return comms == 0 or any(
            r.msg_type == "comm_msg" and r.detail == (comm_id, last) for r in run.log[-2000:]
        )

    try:
        run.pump(run.deadline(), all_echoed)
    except TimeoutError:
        pass  # counted as lost below
    return Account.of(comms, echoes())


def _subshell_churn(run: SoakRun, churn: int) -> Account:
    """Create, use once and delete ``churn`` subshells, one after another."""
    kernel, timeout = run.kernel, run.timeout
    done, failed = [], 0
    for i in range(churn):
        created = kernel.request("control", "create_subshell_request", timeout=timeout)
        sub = created.get("subshell_id")
        if created.get("status") != "ok" or not isinstance(sub, str):
            failed += 1
            continue
        msg_id = kernel.send("shell", "execute_request", execute_content("1"), subshell_id=sub)
        run.pump(run.deadline(), lambda msg_id=msg_id: has_reply(run, "shell", msg_id))
        deleted = kernel.request(
            "control", "delete_subshell_request", {"subshell_id": sub}, timeout=timeout
        )
        failed += deleted.get("status") != "ok"
        done.append(i)
    return Account.of(churn, done, failed)


def _wind_down(run: SoakRun, slow: SlowReader, sampler: Sampler, report: SoakReport) -> None:
    """End the load, let the slow reader catch up, and take the final figures."""
    kernel = run.kernel
    # The end of the load: a last request whose idle both readers must see.
    final = kernel.send("shell", "kernel_info_request")
    run.pump(run.deadline(), lambda: has_idle(run, final))
    sampler.stop.set()
    sampler.join()
    report.peak_rss_mib = sampler.peak / 2**20
    slow.catch_up.set()
    final_idle = next(
        r.msg_id for r in reversed(run.log) if r.channel == "iopub" and r.parent == final
    )
    deadline = run.deadline()
    while final_idle not in slow.ids[-50:] and time.monotonic() < deadline:
        slow.stop.wait(0.05)  # the slow reader is catching up on its own thread
    slow.stop.set()
    slow.join()
    # After the slow reader's catch-up: the kernel has had a pause to give memory back.
    report.final = kernel.stats()
    report.iopub_fast = len(run.iopub_ids)
    report.iopub_slow = len(slow.ids)
    # Each subscriber may miss what was published before its subscription took effect:
    # compare from the first message both have.
    slow_set = set(slow.ids)
    first = next((m for m in run.iopub_ids if m in slow_set), None)
    if first is not None:
        fast_tail = run.iopub_ids[run.iopub_ids.index(first) :]
        report.slow_matches_fast = slow.ids[slow.ids.index(first) :] == fast_tail


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cokernel-harness soak",
        description="Pipelined load on a kernel; an account of every message and of the process.",
    )
    parser.add_argument("--executes", type=int, default=1000, help="pipelined execute requests")
    parser.add_argument("--comms", type=int, default=10000, help="comm messages to echo")
    parser.add_argument("--churn", type=int, default=20, help="subshells created and deleted")
    parser.add_argument("--slow-batch", type=int, default=50, help="slow reader: msgs per wake")
    parser.add_argument("--slow-delay", type=float, default=0.01, help="slow reader: sleep (s)")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound of every wait (s)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    return run_each_kernel(
        args,
        lambda name, progress: soak(
            name,
            executes=args.executes,
            comms=args.comms,
            churn=args.churn,
            slow_batch=args.slow_batch,
            slow_delay=args.slow_delay,
            timeout=args.timeout,
            progress=progress,
        ),
    )
