"""The command-line shape ``cokernel-harness fuzz`` and ``soak`` share: one run per ``--kernel``,
each report printed as text, all of them written as JSON with ``--json``, and an exit status
that says whether every kernel came through."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO


class KernelReport(Protocol):
    """What a per-kernel run reports."""

    @property
    def ok(self) -> bool: ...

    def text(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--kernel`` (repeatable), ``--json FILE`` and ``-q``; add them after the run's own."""
    parser.add_argument("--kernel", action="append", metavar="NAME", help="kernelspec (repeat)")
    parser.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def run_each_kernel(
    args: argparse.Namespace,
    run: Callable[[str, TextIO | None], KernelReport],
    default_kernels: Sequence[str] = ("cokernel",),
) -> int:
    """Call ``run(kernel, progress)`` for each ``--kernel``; print and save the reports.

    Returns the exit status: 0 if every report is ok, else 1.
    """
    reports = []
    for name in args.kernel or default_kernels:
        report = run(name, None if args.quiet else sys.stderr)
        print(report.text())
        reports.append(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.to_json() for r in reports], f, indent=2)
    return 0 if all(r.ok for r in reports) else 1
