"""The ``cokernel`` command: install, remove and list kernelspecs, and start a kernel.

``cokernel install``, ``cokernel remove NAME``, ``cokernel list`` and
``cokernel start -f CONNECTION_FILE`` are the subcommands; ``install`` and ``start`` accept
kernel options (``--timeout=5``, ``--no-use-uvloop``, …) as parsed by
:func:`cokernel.options.parse_kernel_args`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from cokernel import kernelspec
from cokernel.options import (
    BACKENDS,
    HOSTS,
    KernelOptions,
    OptionError,
    apply_option,
    parse_kernel_args,
)

PROG = "cokernel"
FALLBACK_VERSION = "0.1.0"
USAGE_ERROR = 2
FAILURE = 1

_KERNEL_OPTIONS_HELP = (
    "Further kernel options such as --timeout=SECONDS, --[no-]use-uvloop, "
    "--log-level=LEVEL are passed on to the kernel"
)


def version() -> str:
    """Return the installed cokernel version, or ``0.1.0`` when the package is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("cokernel")
    except PackageNotFoundError:
        return FALLBACK_VERSION


class _VersionAction(argparse.Action):
    """``--version``, looked up only when asked: importlib.metadata (with email, zipfile and
    csv) cost every kernel start about 20 ms and 2 MB."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version"
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"{parser.prog} {version()}")  # on stdout, as argparse's own version action
        parser.exit()


def _add_location(parser: argparse.ArgumentParser, verb: str) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--prefix",
        metavar="P",
        help=f"{verb} under P/share/jupyter/kernels (default: the running Python's prefix)",
    )
    where.add_argument(
        "--user", action="store_true", help=f"{verb} in the user's Jupyter data directory"
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``cokernel`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="A concurrent Python kernel for Jupyter.", allow_abbrev=False
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    install = commands.add_parser(
        "install",
        help="install a cokernel kernelspec",
        description="Install a cokernel kernelspec. " + _KERNEL_OPTIONS_HELP + ".",
        allow_abbrev=False,
    )
    install.add_argument(
        "--name", default=kernelspec.DEFAULT_NAME, help="kernel name (default: %(default)s)"
    )
    install.add_argument("--display-name", metavar="D", help="name shown in Jupyter frontends")
    install.add_argument(
        "--backend", metavar="|".join(BACKENDS), help="event loop library (default: asyncio)"
    )
    install.add_argument(
        "--host", metavar="|".join(HOSTS), help="GUI toolkit whose event loop hosts the kernel"
    )
    _add_location(install, "install")

    remove = commands.add_parser("remove", help="remove a cokernel kernelspec", allow_abbrev=False)
    remove.add_argument("name", metavar="NAME", help="kernel name")
    _add_location(remove, "remove from")

    listing = commands.add_parser(
        "list", help="list the kernelspecs Jupyter finds", allow_abbrev=False
    )
    listing.add_argument(
        "--json", action="store_true", help="print name -> {resource_dir, cokernel} as JSON"
    )

    start = commands.add_parser(
        "start",
        help="start a kernel (as Jupyter does through the kernelspec)",
        description="Start a kernel. " + _KERNEL_OPTIONS_HELP + ".",
        allow_abbrev=False,
    )
    start.add_argument(
        "-f",
        dest="connection_file",
        metavar="CONNECTION_FILE",
        required=True,
        help="Jupyter connection file",
    )
    return parser


def _kernel_options(ns: argparse.Namespace, extra: list[str]) -> KernelOptions:
    options = KernelOptions()
    if getattr(ns, "backend", None) is not None:
        apply_option(options, "backend", ns.backend)
    if getattr(ns, "host", None) is not None:
        apply_option(options, "host", ns.host)
    return parse_kernel_args(extra, options)


def _print_list(out: TextIO, as_json: bool) -> None:
    specs = kernelspec.list_specs()
    marked = {name: kernelspec.is_cokernel_spec(path) for name, path in specs.items()}
    if as_json:
        data = {n: {"resource_dir": p, "cokernel": marked[n]} for n, p in specs.items()}
        print(json.dumps(data, indent=2), file=out)
        return
    if not specs:
        print("No kernelspecs found.", file=out)
        return
    width = max(len(name) for name in specs)
    print("Available kernels (* = cokernel):", file=out)
    for name, path in specs.items():
        mark = "*" if marked[name] else " "
        print(f"{mark} {name:<{width}}  {path}", file=out)


def _run(ns: argparse.Namespace, extra: list[str]) -> int:
    if ns.command in ("remove", "list") and extra:
        raise OptionError(f"unrecognized arguments: {' '.join(extra)}")
    if ns.command == "install":
        options = _kernel_options(ns, extra)
        path = kernelspec.install(ns.name, ns.display_name, options, prefix=ns.prefix, user=ns.user)
        print(f"Installed kernelspec {kernelspec.validate_name(ns.name)} in {path}")
        return 0
    if ns.command == "remove":
        path = kernelspec.remove(ns.name, prefix=ns.prefix, user=ns.user)
        print(f"Removed kernelspec {kernelspec.validate_name(ns.name)} from {path}")
        return 0
    if ns.command == "list":
        _print_list(sys.stdout, ns.json)
        return 0
    if ns.command == "start":
        options = _kernel_options(ns, extra)
        from cokernel.app import run_kernel

        status: int = run_kernel(ns.connection_file, options)
        return status
    raise AssertionError(f"unhandled command {ns.command!r}")


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``cokernel`` command with ``argv`` (default: ``sys.argv[1:]``); return its status.

    Returns 0 on success, 2 for a usage error (unknown option, bad value, invalid name; the
    message goes to stderr as ``cokernel: error: …``) and 1 when the work itself fails (missing
    kernelspec, unwritable directory). ``start`` returns the kernel's own exit status.
    """
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        ns, extra = parser.parse_known_args(args)
    except SystemExit as exit_:
        # argparse has already printed usage or help; report its status instead of exiting.
        code = exit_.code
        return code if isinstance(code, int) else USAGE_ERROR if code else 0
    try:
        return _run(ns, extra)
    except OptionError as exc:
        _error(str(exc))
        return USAGE_ERROR
    except kernelspec.KernelSpecNotFound as exc:
        _error(str(exc.args[0]) if exc.args else "kernelspec not found")
        return FAILURE
    except OSError as exc:
        _error(str(exc))
        return FAILURE
