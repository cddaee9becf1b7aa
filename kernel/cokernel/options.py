"""Kernel options: what a kernelspec's argv (or an embedding host) may set.

One dataclass, parsed from ``--name=value`` style arguments by :func:`parse_kernel_args`, so the
CLI, the kernelspec writer and the kernel agree on names, types and defaults.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

Backend = Literal["asyncio", "trio"]
Host = Literal["tk", "qt"]
QtBinding = Literal["PySide6", "PyQt6"]
BACKENDS: tuple[str, ...] = get_args(Backend)
HOSTS: tuple[str, ...] = get_args(Host)
QT_BINDINGS: tuple[str, ...] = get_args(QtBinding)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: The GIL switch interval of a kernel that owns its process (``--switch-interval``), in ms.
DEFAULT_SWITCH_INTERVAL_MS = 1.0


class OptionError(ValueError):
    """A kernel option has an unknown name or a value of the wrong kind."""


@dataclass
class KernelOptions:
    """Settings of one kernel process.

    ``timeout`` is the default execution timeout of a cell in seconds (``None``: no limit); a
    cell may set its own through its metadata (``{"cokernel": {"timeout": 5}}``) or a first-line
    comment (``# cokernel: timeout=5``).

    ``record`` names a JSON-lines file that gets one line per received message (see
    :mod:`cokernel.protocol._recorder`; ``$COKERNEL_RECORD`` does the same when the option is unset).
    """

    backend: Backend = "asyncio"
    use_uvloop: bool = True
    host: Host | None = None
    timeout: float | None = None
    log_level: str = "WARNING"
    kernel_name: str = "cokernel"
    subshell_namespace: Literal["shared", "own"] = "shared"
    qt_binding: QtBinding = "PySide6"
    # Capture file descriptors 1 and 2 (os.system, subprocesses, C libraries, forked children)
    # into the running cell. None: only where the kernel owns its process (``cokernel start``);
    # an embedding host (the callback interface) keeps its descriptors unless it sets True.
    capture_fds: bool | None = None
    # The IPython profile whose config files and startup files apply (cokernel.shell._profile). None:
    # "default" where the kernel owns its process, none in an embedding host's process.
    profile: str | None = None
    # The interpreter's GIL switch interval, in milliseconds (``sys.setswitchinterval``). None:
    # DEFAULT_SWITCH_INTERVAL_MS where the kernel owns its process, Python's own (5 ms) in an
    # embedding host's process; 0 keeps Python's own everywhere. See docs/design.md, "Threads".
    switch_interval: float | None = None
    record: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def to_args(self) -> list[str]:
        """The ``--name=value`` arguments that reproduce these options (defaults omitted)."""
        args: list[str] = []
        defaults = KernelOptions()
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value == getattr(defaults, f.name) or value is None:
                continue
            if isinstance(value, bool):
                args.append(f"--{f.name}" if value else f"--no-{f.name}")
            else:
                args.append(f"--{f.name}={value}")
        return args


def env_int(name: str, default: int) -> int:
    """A positive whole number from the environment variable ``name``; ``default`` when it is
    unset or not a number (a bound read at import, before any option parsing could report)."""
    value = os.environ.get(name, "")
    try:
        return max(1, int(value)) if value else default
    except ValueError:
        return default


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise OptionError(f"--{name} expects true or false, not {raw!r}")


def apply_option(options: KernelOptions, name: str, raw: str | None) -> None:
    """Set option ``name`` from its command-line text; ``raw`` is ``None`` for a bare flag.

    Raises :class:`OptionError` with a message fit for the user when the name is unknown or the
    value does not fit.
    """
    key = name.replace("-", "_")
    negated = False
    if key.startswith("no_") and raw is None:
        key, negated = key[3:], True
    if key in ("use_uvloop", "capture_fds"):
        setattr(options, key, (not negated) if raw is None else _parse_bool(name, raw))
        return
    setter = _SETTERS.get(key)
    if setter is None:
        raise OptionError(
            f"unknown kernel option --{name}; known: --backend, --[no-]use-uvloop, --host, "
            "--[no-]capture-fds, --profile, --timeout, --switch-interval, --log-level, --kernel-name, --subshell-namespace, --qt-binding, --record"
        )
    setter(options, raw)


def _set_backend(options: KernelOptions, raw: str | None) -> None:
    if raw not in BACKENDS:
        raise OptionError(f"--backend must be one of {', '.join(BACKENDS)}, not {raw!r}")
    options.backend = raw  # type: ignore[assignment]


def _set_host(options: KernelOptions, raw: str | None) -> None:
    if raw in (None, "", "none"):
        options.host = None
    elif raw in HOSTS:
        options.host = raw  # type: ignore[assignment]
    else:
        raise OptionError(f"--host must be one of {', '.join(HOSTS)} or none, not {raw!r}")


def _set_timeout(options: KernelOptions, raw: str | None) -> None:
    if raw is None or raw.lower() in ("", "none", "0"):
        options.timeout = None
        return
    try:
        value = float(raw)
    except ValueError:
        raise OptionError(f"--timeout expects seconds, not {raw!r}") from None
    if value < 0:
        raise OptionError(f"--timeout must not be negative, got {raw!r}")
    options.timeout = value


def _set_switch_interval(options: KernelOptions, raw: str | None) -> None:
    try:
        value = float(raw if raw is not None else "")
    except ValueError:
        raise OptionError(
            f"--switch-interval expects milliseconds (0: Python's own), not {raw!r}"
        ) from None
    if not 0 <= value <= 1000:
        raise OptionError(f"--switch-interval must be from 0 to 1000 ms, got {raw!r}")
    options.switch_interval = value


def _set_log_level(options: KernelOptions, raw: str | None) -> None:
    if raw is None or raw.upper() not in LOG_LEVELS:
        raise OptionError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {raw!r}")
    options.log_level = raw.upper()


def _set_subshell_namespace(options: KernelOptions, raw: str | None) -> None:
    if raw not in ("shared", "own"):
        raise OptionError(f"--subshell-namespace must be shared or own, not {raw!r}")
    options.subshell_namespace = raw  # type: ignore[assignment]


def _set_qt_binding(options: KernelOptions, raw: str | None) -> None:
    match = [b for b in QT_BINDINGS if raw is not None and b.lower() == raw.strip().lower()]
    if not match:
        raise OptionError(f"--qt-binding must be one of {', '.join(QT_BINDINGS)}, not {raw!r}")
    options.qt_binding = match[0]  # type: ignore[assignment]


def _set_profile(options: KernelOptions, raw: str | None) -> None:
    if not raw or os.sep in raw or raw in (".", ".."):
        raise OptionError(f"--profile needs an IPython profile name, not {raw!r}")
    options.profile = raw


def _set_record(options: KernelOptions, raw: str | None) -> None:
    if not raw:
        raise OptionError("--record needs a file path")
    options.record = raw


def _set_kernel_name(options: KernelOptions, raw: str | None) -> None:
    if not raw:
        raise OptionError("--kernel-name needs a value")
    options.kernel_name = raw


_SETTERS: dict[str, Callable[[KernelOptions, str | None], None]] = {
    "backend": _set_backend,
    "host": _set_host,
    "timeout": _set_timeout,
    "switch_interval": _set_switch_interval,
    "log_level": _set_log_level,
    "subshell_namespace": _set_subshell_namespace,
    "qt_binding": _set_qt_binding,
    "profile": _set_profile,
    "record": _set_record,
    "kernel_name": _set_kernel_name,
}


def parse_kernel_args(args: list[str], options: KernelOptions | None = None) -> KernelOptions:
    """Parse ``--name=value``, ``--name value`` and ``--flag``/``--no-flag`` arguments."""
    options = options or KernelOptions()
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise OptionError(f"unexpected argument {arg!r}: kernel options look like --name=value")
        body = arg[2:]
        if "=" in body:
            name, raw = body.split("=", 1)
            apply_option(options, name, raw)
        else:
            takes_value = body.replace("-", "_") in (
                "backend",
                "host",
                "timeout",
                "switch_interval",
                "log_level",
                "kernel_name",
                "subshell_namespace",
                "qt_binding",
                "profile",
                "record",
            )
            if takes_value:
                if i + 1 >= len(args):
                    raise OptionError(f"--{body} needs a value")
                apply_option(options, body, args[i + 1])
                i += 1
            else:
                apply_option(options, body, None)
        i += 1
    return options
