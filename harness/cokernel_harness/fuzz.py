"""``cokernel-harness fuzz``: hypothesis-generated wire attacks on a kernel's shell and control.

Each case is one message (or a few frames) an attacker or a broken client could send: a
forged or missing signature, frames in the wrong number or shape, parts that are not JSON,
header and content fields of the wrong types, a replay of a message already sent, oversized
content, unknown message types. After every batch the fuzzer checks that the kernel still
answers a normal ``kernel_info_request`` on both channels. It reports how many cases it tried
(by kind), how many liveness checks passed, and the kernel's memory, fds and threads before and
after. Every wait is bounded: the run never hangs, it reports the kernel dead instead.

The cases never ask the kernel to stop (no shutdown_request) or run code (execute_request
appears only with a malformed ``code``): a kernel that obeys a valid request is not at fault.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cokernel_harness.cliruns import add_run_options, run_each_kernel
from cokernel_harness.rawkernel import KernelGone, ProcessStats, RawKernel

#: Request types whose replies are harmless with any content (no code runs, nothing stops).
SAFE_TYPES = (
    "kernel_info_request",
    "comm_info_request",
    "complete_request",
    "inspect_request",
    "is_complete_request",
    "history_request",
    "comm_open",
    "comm_msg",
    "comm_close",
    "list_subshell_request",
    "delete_subshell_request",
)
KINDS = (
    "bad_signature",
    "missing_signature",
    "wrong_frames",
    "bad_json",
    "bad_field_types",
    "bad_content",
    "replay",
    "oversized",
    "unknown_type",
)
LIVENESS_TIMEOUT = 30.0


@dataclass
class FuzzReport:
    kernel: str
    cases: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    liveness_checks: int = 0
    liveness_passed: int = 0
    alive_at_end: bool = False
    failure: str | None = None
    seconds: float = 0.0
    before: ProcessStats | None = None
    after: ProcessStats | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None and self.alive_at_end

    def to_json(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "cases": self.cases,
            "by_kind": dict(sorted(self.by_kind.items())),
            "by_channel": dict(sorted(self.by_channel.items())),
            "liveness_checks": self.liveness_checks,
            "liveness_passed": self.liveness_passed,
            "alive_at_end": self.alive_at_end,
            "failure": self.failure,
            "seconds": round(self.seconds, 1),
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
            "ok": self.ok,
        }

    def text(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.by_kind.items()))
        lines = [
            f"fuzz {self.kernel}: {self.cases} cases in {self.seconds:.1f} s ({kinds})",
            f"  liveness: {self.liveness_passed}/{self.liveness_checks} checks answered; "
            f"alive at the end: {'yes' if self.alive_at_end else 'NO'}",
        ]
        if self.before and self.after:
            lines.append(
                f"  kernel RSS {self.before.rss_mib:.1f} -> {self.after.rss_mib:.1f} MiB, "
                f"fds {self.before.fds} -> {self.after.fds}, "
                f"threads {self.before.threads} -> {self.after.threads}"
            )
        if self.failure:
            lines.append(f"  FAILURE: {self.failure}")
        return "\n".join(lines)


#: Content fields of the requests the fuzz sends, given values of the wrong type.
_CONTENT_FIELDS = (
    "code",
    "cursor_pos",
    "detail_level",
    "comm_id",
    "target_name",
    "data",
    "hist_access_type",
    "n",
    "subshell_id",
    "silent",
    "stop_on_error",
    "user_expressions",
    "allow_stdin",
)


def _strategies(max_oversize: int) -> Any:
    """The hypothesis strategy of one case: (kind, channel, parameters)."""
    from hypothesis import strategies as st

    json_scalar = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )
    json_value = st.recursive(
        json_scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=8,
    )
    not_a_dict = st.one_of(json_scalar, st.lists(json_value, max_size=3))
    channel = st.sampled_from(("shell", "control"))
    safe_type = st.sampled_from(SAFE_TYPES)
    field_name = st.sampled_from(
        ("msg_type", "msg_id", "session", "username", "date", "version", "subshell_id")
    )
    part = st.sampled_from(("header", "parent_header", "metadata", "content"))
    cases = {
        "bad_signature": st.tuples(safe_type, st.binary(min_size=1, max_size=80)),
        "missing_signature": safe_type,
        "wrong_frames": st.tuples(
            st.lists(st.binary(max_size=64), min_size=1, max_size=9), st.booleans(), st.booleans()
        ),
        "bad_json": st.tuples(safe_type, st.integers(0, 3), st.binary(max_size=64)),
        "bad_field_types": st.one_of(
            st.tuples(st.just("header"), safe_type, field_name, json_value),
            st.tuples(st.just("part"), safe_type, part, not_a_dict),
        ),
        "bad_content": st.tuples(
            st.sampled_from((*SAFE_TYPES, "execute_request")),
            st.dictionaries(st.sampled_from(_CONTENT_FIELDS), json_value, max_size=5).filter(
                lambda c: not isinstance(c.get("code"), str)
            ),
        ),
        "replay": safe_type,
        "oversized": st.tuples(safe_type, st.integers(1, max_oversize)),
        "unknown_type": st.tuples(st.text(min_size=0, max_size=40), st.booleans()),
    }
    return st.sampled_from(KINDS).flatmap(
        lambda kind: st.tuples(st.just(kind), channel, cases[kind])
    )


def _packed(session: Any, msg: dict[str, Any]) -> list[bytes]:
    """The four packed parts of ``msg``, as a kernel's session would send them."""
    return [session.pack(msg[part]) for part in ("header", "parent_header", "metadata", "content")]


def _tampered_parts(session: Any, params: Any) -> list[bytes]:
    """The parts of a message with one header field, or one whole part, of a wrong type."""
    where, msg_type, name, value = params
    msg: dict[str, Any] = session.msg(msg_type, {})
    if where == "header":
        msg["header"][name] = value
        return _packed(session, msg)
    parts = _packed(session, msg)
    index = ("header", "parent_header", "metadata", "content").index(name)
    parts[index] = json.dumps(value).encode()
    return parts


def _frames(kernel: RawKernel, kind: str, params: Any, sent: list[list[bytes]]) -> list[bytes]:
    """The frames of one case (``sent`` holds earlier valid frames, for replays)."""
    session = kernel.session
    delimiter = b"<IDS|MSG>"

    def signed(parts: list[bytes]) -> list[bytes]:
        return [delimiter, session.sign(parts), *parts]

    def message(msg_type: str, content: dict[str, Any] | None = None) -> dict[str, Any]:
        msg: dict[str, Any] = session.msg(msg_type, content or {})
        return msg

    def parts_of(msg: dict[str, Any]) -> list[bytes]:
        return _packed(session, msg)

    if kind == "bad_signature":
        msg_type, signature = params
        return [delimiter, signature, *parts_of(message(msg_type))]
    if kind == "missing_signature":
        return [delimiter, b"", *parts_of(message(params))]
    if kind == "wrong_frames":
        frames, with_delimiter, sign_first = params
        out = list(frames)
        if with_delimiter:
            out.insert(0, delimiter)
        if sign_first and len(out) > 1:
            out.insert(1, session.sign(out[1:5]))
        return out
    if kind == "bad_json":
        msg_type, index, garbage = params
        parts = parts_of(message(msg_type))
        parts[index] = garbage
        return signed(parts)
    if kind == "bad_field_types":
        return signed(_tampered_parts(session, params))
    if kind == "bad_content":
        msg_type, content = params
        return signed(parts_of(message(msg_type, content)))
    if kind == "replay":
        if sent:
            return sent[len(sent) // 2]
        frames = signed(parts_of(message(params)))
        sent.append(frames)
        return frames
    if kind == "oversized":
        msg_type, size = params
        content = {"code": "x" * size, "cursor_pos": 0, "data": {"blob": "y" * size}}
        return signed(parts_of(message(msg_type, content)))
    if kind == "unknown_type":
        name, as_request = params
        msg_type = f"{name}_request" if as_request else name
        if msg_type in SAFE_TYPES or msg_type in ("shutdown_request", "execute_request"):
            msg_type = f"x-{msg_type}"
        return signed(parts_of(message(msg_type)))
    raise AssertionError(kind)


def _check_alive(kernel: RawKernel, report: FuzzReport) -> None:
    for channel in ("shell", "control"):
        report.liveness_checks += 1
        try:
            reply = kernel.request(channel, "kernel_info_request", timeout=LIVENESS_TIMEOUT)
        except (TimeoutError, KernelGone) as e:
            raise KernelGone(f"no kernel_info_reply on {channel}: {e}") from None
        if reply.get("status") != "ok":
            raise KernelGone(f"kernel_info_reply on {channel} says {reply.get('status')!r}")
        report.liveness_passed += 1


def _one_case_test(
    kernel: RawKernel,
    report: FuzzReport,
    sent: list[list[bytes]],
    cases: int,
    batch: int,
    max_oversize: int,
    progress: Any,
) -> Any:
    """The hypothesis test that sends one generated case (and, every ``batch`` cases, checks
    that the kernel still answers); calling it runs ``cases`` of them."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # no shrinking: every case goes to the same live kernel
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(_strategies(max_oversize))
    def one_case(case: tuple[str, str, Any]) -> None:
        kind, channel, params = case
        frames = _frames(kernel, kind, params, sent)
        kernel.send_frames(kernel.sockets[channel], frames)
        report.cases += 1
        report.by_kind[kind] += 1
        report.by_channel[channel] += 1
        if kind == "bad_content" and len(sent) < 64:
            sent.append(frames)  # a signed, well-formed message to replay later
        if report.cases % batch == 0:
            try:
                _check_alive(kernel, report)
            except KernelGone as e:
                report.failure = str(e)  # hypothesis may wrap what it raises: keep it here
                raise
            if progress is not None:
                print(f"  {report.cases} cases, kernel answering", file=progress, flush=True)

    return one_case


def fuzz(
    kernel_name: str,
    cases: int = 1000,
    *,
    batch: int = 100,
    seed: int | None = None,
    max_oversize: int = 1 << 20,
    progress: Any = None,
) -> FuzzReport:
    """Send ``cases`` generated attacks to a new kernel of ``kernel_name``; report."""
    try:
        from hypothesis import seed as hypothesis_seed
    except ImportError as e:  # pragma: no cover - hypothesis ships with the harness's extras
        raise RuntimeError("cokernel-harness fuzz needs hypothesis (pip install hypothesis)") from e

    report = FuzzReport(kernel_name)
    started = time.monotonic()
    kernel = RawKernel(kernel_name)
    sent: list[list[bytes]] = []
    try:
        report.before = kernel.stats()
        one_case = _one_case_test(kernel, report, sent, cases, batch, max_oversize, progress)
        runner = hypothesis_seed(seed)(one_case) if seed is not None else one_case
        try:
            runner()
            _check_alive(kernel, report)
        except KernelGone as e:
            report.failure = str(e)
        except Exception as e:  # hypothesis wraps a failure it cannot replay (a dead kernel)
            if report.failure is None:
                report.failure = f"{type(e).__name__}: {e}"
        report.alive_at_end = kernel.alive() and report.failure is None
        if kernel.alive():
            report.after = kernel.stats()
    finally:
        kernel.close()
        report.seconds = time.monotonic() - started
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cokernel-harness fuzz",
        description="Hypothesis-generated wire attacks on a kernel's shell and control sockets.",
    )
    parser.add_argument("--cases", type=int, default=1000, help="cases per kernel")
    parser.add_argument("--batch", type=int, default=100, help="cases between liveness checks")
    parser.add_argument("--seed", type=int, help="hypothesis seed (default: random)")
    parser.add_argument(
        "--max-oversize", type=int, default=1 << 20, help="largest oversized string (bytes)"
    )
    add_run_options(parser)
    args = parser.parse_args(argv)
    return run_each_kernel(
        args,
        lambda name, progress: fuzz(
            name,
            args.cases,
            batch=args.batch,
            seed=args.seed,
            max_oversize=args.max_oversize,
            progress=progress,
        ),
    )
