"""``cokernel-harness``: conformance, scenarios and benchmarks against any installed kernelspec.

::

    cokernel-harness conformance --kernel python3 [--json report.json] [-k interrupt]
    cokernel-harness conformance --kernel cokernel --frontend jupyterlab -k widget
    cokernel-harness conformance --kernel cokernel --kernel python3 --html matrix.html
    cokernel-harness scenarios --kernel cokernel -k widget_await
    cokernel-harness scenarios --list
    cokernel-harness conformance --server http://127.0.0.1:8888 --token T --kernel cokernel
    cokernel-harness conformance --server http://127.0.0.1:8888 --frontend jupyterlab -k comm
    cokernel-harness bench --kernel cokernel --kernel python3
    cokernel-harness fuzz --kernel cokernel --cases 10000
    cokernel-harness soak --kernel cokernel --executes 1000 --comms 10000

``conformance`` plays every scenario and validates all traffic against the protocol;
``scenarios`` only plays them. Both print a table (and the full diagnosis of whatever did not
pass) and exit non-zero when anything failed, errored or broke the protocol. Scenarios that talk
over comms run under each ``--frontend`` profile (default: all; see
:mod:`cokernel_harness.profiles`), and their rows say which. ``bench`` hands
its arguments to :func:`cokernel_harness.bench.main`.

``--server URL`` reaches the kernels through a Jupyter Server or a kernel gateway instead of
launching them here: REST starts each kernel by name, one websocket carries its messages
(:class:`~cokernel_harness.websocket.WebSocketTransport`). ``--token`` (default: the
``JUPYTER_TOKEN`` environment variable) authenticates. Scenarios that need a local process
(watching it exit, a connection file) are then reported unsupported. ``--frontend`` works the
same way there: the profile's subshell requests and comm routing travel over the websocket, as
JupyterLab's do when its kernels run behind a gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import anyio

from cokernel_harness.frontend import Frontend
from cokernel_harness.profiles import PROFILES
from cokernel_harness.runner import Connect, Report, ScenarioResult, run_conformance
from cokernel_scenarios import Scenario, UnknownScenario, select

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cokernel-harness",
        description="Play Jupyter frontends against any kernel: conformance, scenarios, bench.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("conformance", "run every scenario and validate all traffic against the protocol"),
        ("scenarios", "run the scenarios only (no protocol validation)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        _add_scenario_options(sub)
        _add_server_options(sub)
    commands.add_parser(
        "bench", add_help=False, help="benchmarks (see `cokernel-harness bench --help`)"
    )
    commands.add_parser(
        "fuzz", add_help=False, help="wire attacks on shell and control, with liveness checks"
    )
    commands.add_parser(
        "soak", add_help=False, help="long pipelined load: lost/reordered messages, RSS, fds"
    )
    return parser


def _add_scenario_options(sub: argparse.ArgumentParser) -> None:
    """What to run, on which kernels, and where the results go."""
    sub.add_argument(
        "--kernel",
        action="append",
        metavar="NAME",
        help="kernelspec to test (repeatable; default: cokernel)",
    )
    sub.add_argument(
        "-k",
        dest="patterns",
        action="append",
        metavar="PATTERN",
        help="only scenarios whose name contains PATTERN or matches it as a glob "
        "(repeatable; commas separate)",
    )
    sub.add_argument(
        "--json", metavar="FILE", help="also write the report(s) as JSON ('-': stdout)"
    )
    sub.add_argument(
        "--html",
        metavar="FILE",
        help="also write the results as a self-contained page: scenario x kernel, "
        "each cell linking to its diagnosis",
    )
    sub.add_argument(
        "--share-kernel",
        action="store_true",
        help="run the scenarios on one kernel (a new one after a scenario ends or breaks it)",
    )
    sub.add_argument(
        "--frontend",
        action="append",
        choices=list(PROFILES),
        metavar="PROFILE",
        help="the frontend to play comm scenarios as (repeatable; default: every one of "
        f"{', '.join(PROFILES)})",
    )
    sub.add_argument("--list", action="store_true", help="list the scenarios and exit")
    sub.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="the harness's own event loop (not the kernel's)",
    )
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _add_server_options(sub: argparse.ArgumentParser) -> None:
    """Reaching the kernels through a Jupyter Server or gateway instead of ZMQ."""
    sub.add_argument(
        "--server",
        metavar="URL",
        help="start the kernels through this Jupyter Server or gateway (REST + websocket)",
    )
    sub.add_argument(
        "--token",
        metavar="T",
        default=os.environ.get("JUPYTER_TOKEN"),
        help="the server's token (default: $JUPYTER_TOKEN)",
    )
    sub.add_argument(
        "--ws-protocol",
        choices=("v1", "legacy"),
        help="websocket format with --server (default: v1 if the server offers it)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:
        return _bench(args_list[1:])
    if args_list[:1] == ["fuzz"]:
        from cokernel_harness.fuzz import main as fuzz_main

        return fuzz_main(args_list[1:])
    if args_list[:1] == ["soak"]:
        from cokernel_harness.soak import main as soak_main

        return soak_main(args_list[1:])
    args = _parser().parse_args(args_list)
    try:
        scenarios = select(args.patterns)
    except UnknownScenario as e:
        print(f"cokernel-harness: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        for scenario in scenarios:
            needs = ", ".join(sorted(scenario.requires))
            print(f"{scenario.name:28} {scenario.description} [needs: {needs}]")
        return EXIT_OK
    kernels = args.kernel or ["cokernel"]
    validate = args.command == "conformance"
    server = None
    if args.server:
        protocol = {"v1": None, "legacy": ""}.get(args.ws_protocol or "v1")
        server = (args.server, args.token, protocol)
    reports = anyio.run(
        _run_all,
        kernels,
        scenarios,
        validate,
        args.share_kernel,
        args.quiet,
        args.frontend or list(PROFILES),
        server,
        backend=args.backend,
    )
    _write_reports(reports, args.json, args.html)
    return EXIT_OK if all(r.ok for r in reports) else EXIT_FAILED


def _write_reports(reports: list[Report], json_file: str | None, html_file: str | None) -> None:
    """Print each report's table and details; write the JSON and the page asked for."""
    for report in reports:
        print(report.table())
        details = report.details()
        if details:
            print(f"\ndetails for {report.kernel}:\n{details}")
        print()
    if json_file:
        data = [r.to_json() for r in reports]
        text = json.dumps(data[0] if len(data) == 1 else data, indent=2)
        if json_file == "-":
            print(text)
        else:
            with open(json_file, "w") as f:
                f.write(text + "\n")
    if html_file:
        from cokernel_harness.matrix import render_html

        with open(html_file, "w") as f:
            f.write(render_html([r.to_json() for r in reports]))


async def _run_all(
    kernels: list[str],
    scenarios: list[Scenario],
    validate: bool,
    share_kernel: bool,
    quiet: bool,
    frontends: list[str],
    server: tuple[str, str | None, str | None] | None = None,
) -> list[Report]:
    reports = []
    for kernel in kernels:
        connect: Connect | None = None
        if server is not None:
            connect = _through_server(kernel, *server)

        def progress(result: ScenarioResult, kernel: str = kernel) -> None:
            if not quiet:
                print(
                    f"[{kernel}] {result.outcome.value:11} {result.label} ({result.seconds:.2f} s)",
                    file=sys.stderr,
                    flush=True,
                )

        reports.append(
            await run_conformance(
                kernel,
                scenarios,
                share_kernel=share_kernel,
                validate=validate,
                connect=connect,
                on_result=progress,
                frontends=frontends,
            )
        )
    return reports


def _through_server(kernel: str, url: str, token: str | None, protocol: str | None) -> Connect:
    from cokernel_harness.websocket import WebSocketTransport

    return lambda: Frontend.connect(WebSocketTransport(url, kernel, token=token, protocol=protocol))


def _bench(argv: list[str]) -> int:
    try:
        from cokernel_harness.bench import main as bench_main
    except ImportError as e:
        print(f"cokernel-harness: the bench runner is not available ({e})", file=sys.stderr)
        return EXIT_USAGE
    return int(bench_main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
