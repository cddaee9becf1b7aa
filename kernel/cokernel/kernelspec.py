"""Kernelspecs for cokernel: build, install, remove and list the ``kernel.json`` Jupyter reads.

A kernelspec is a directory named after the kernel that holds a ``kernel.json``; Jupyter
frontends find it under ``share/jupyter/kernels`` of an environment prefix or in the user's
Jupyter data directory. The default spec (name ``cokernel``) is also shipped as a static file in
the package's shared data, and :func:`make_spec` produces exactly that file's contents.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from cokernel.options import KernelOptions, OptionError
from cokernel.protocol import PROTOCOL_VERSION

DEFAULT_NAME = "cokernel"
DEFAULT_DISPLAY_NAME = "Python 3 (cokernel)"
SPEC_FILE = "kernel.json"

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")


class KernelSpecNotFound(LookupError):
    """No kernelspec of the requested name exists in the requested place."""


def validate_name(name: str) -> str:
    """Return ``name`` as Jupyter stores it (lower case), or raise :class:`OptionError`.

    A kernel name may hold letters, digits, ``-``, ``_`` and ``.``; it may not be ``.`` or
    ``..``. Jupyter lower-cases names when it looks kernels up, so the returned name is too.
    """
    if not _NAME_PATTERN.match(name) or name in (".", ".."):
        raise OptionError(
            f"invalid kernel name {name!r}: use letters, digits, '-', '_' and '.' only"
        )
    return name.lower()


def _describe(options: KernelOptions) -> list[str]:
    """Short words naming the options that differ from the defaults, for a display name."""
    defaults = KernelOptions()
    words: list[str] = []
    if options.backend != defaults.backend:
        words.append(options.backend)
    if options.host is not None:
        words.append(options.host)
    if options.use_uvloop != defaults.use_uvloop:
        words.append("no uvloop")
    if options.timeout is not None:
        words.append(f"timeout {options.timeout:g}s")
    return words


def make_spec(
    name: str = DEFAULT_NAME,
    display_name: str | None = None,
    options: KernelOptions | None = None,
) -> dict[str, Any]:
    """Return the ``kernel.json`` contents of a cokernel kernelspec named ``name``.

    The argv starts the kernel with ``python -m cokernel start`` followed by the non-default
    ``options``; ``--kernel-name`` is added only for a name other than ``cokernel`` (it replaces
    any ``kernel_name`` set in ``options``). Without ``display_name`` the defaults give
    ``"Python 3 (cokernel)"`` and other settings something like
    ``"Python 3 (cokernel: trio, tk)"``. Raises :class:`OptionError` for an invalid name.
    """
    name = validate_name(name)
    options = options or KernelOptions()
    argv = ["python", "-m", "cokernel", "start", "-f", "{connection_file}"]
    argv += dataclasses.replace(options, kernel_name=DEFAULT_NAME).to_args()
    if name != DEFAULT_NAME:
        argv.append(f"--kernel-name={name}")
    if display_name is None:
        words = _describe(options)
        if not words and name != DEFAULT_NAME:
            words = [name]
        display_name = f"Python 3 (cokernel: {', '.join(words)})" if words else DEFAULT_DISPLAY_NAME
    return {
        "argv": argv,
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",
        "kernel_protocol_version": PROTOCOL_VERSION,
        "metadata": {
            "concurrent": True,
            "backend": options.backend,
            "host": options.host,
            # JupyterLab offers its debugger for kernels that say so (kernel_info confirms).
            "debugger": importlib.util.find_spec("debugpy") is not None,
            # JEP 145: the kernel applies the connection file's CurveZMQ keys to its sockets.
            "supported_encryption": ["curve"],
        },
        "env": {},
    }


def kernels_dir(prefix: str | None = None, user: bool = False) -> Path:
    """Return the directory that holds kernelspecs for ``prefix`` or the user.

    ``user=True`` means the user's Jupyter data directory; otherwise ``prefix`` (default:
    ``sys.prefix``) followed by ``share/jupyter/kernels``. Raises :class:`OptionError` when both
    are given.
    """
    if user and prefix is not None:
        raise OptionError("--prefix and --user exclude each other")
    if user:
        from jupyter_core.paths import jupyter_data_dir

        return Path(jupyter_data_dir()) / "kernels"
    return Path(prefix if prefix is not None else sys.prefix) / "share" / "jupyter" / "kernels"


def install(
    name: str = DEFAULT_NAME,
    display_name: str | None = None,
    options: KernelOptions | None = None,
    prefix: str | None = None,
    user: bool = False,
) -> str:
    """Write the kernelspec made by :func:`make_spec` and return its directory.

    The spec goes to ``<prefix or sys.prefix>/share/jupyter/kernels/<name>/kernel.json``, or
    under the user's Jupyter data directory when ``user`` is true; an existing ``kernel.json``
    there is replaced. Raises :class:`OptionError` for a bad name or both ``prefix`` and
    ``user``, and :class:`OSError` when the directory cannot be written.
    """
    spec = make_spec(name, display_name, options)
    target = kernels_dir(prefix, user) / validate_name(name)
    target.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kernel-", suffix=".json", dir=target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target / SPEC_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)


def remove(name: str, prefix: str | None = None, user: bool = False) -> str:
    """Delete the cokernel kernelspec ``name`` from ``prefix`` or the user dir; return its path.

    Looks only in the place :func:`install` would write to for the same arguments. Raises
    :class:`KernelSpecNotFound` when no kernelspec of that name is there, and
    :class:`OptionError` when the directory holds a kernelspec that does not start cokernel
    (use ``jupyter kernelspec remove`` for those) or the arguments are invalid.
    """
    target = kernels_dir(prefix, user) / validate_name(name)
    spec_file = target / SPEC_FILE
    if not spec_file.is_file():
        raise KernelSpecNotFound(f"no kernelspec named {name!r} in {target.parent}")
    if not is_cokernel_spec(str(target)):
        raise OptionError(
            f"kernelspec {name!r} in {target.parent} does not start cokernel; "
            "remove it with `jupyter kernelspec remove` instead"
        )
    shutil.rmtree(target)
    return str(target)


def read_spec(resource_dir: str) -> dict[str, Any] | None:
    """Return the parsed ``kernel.json`` in ``resource_dir``, or ``None`` if it is unreadable."""
    try:
        with open(os.path.join(resource_dir, SPEC_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_cokernel_spec(resource_dir: str) -> bool:
    """Tell whether the kernelspec in ``resource_dir`` starts cokernel (its argv names it)."""
    spec = read_spec(resource_dir)
    argv = spec.get("argv") if spec else None
    if not isinstance(argv, list):
        return False
    for arg in argv:
        if not isinstance(arg, str):
            continue
        base = os.path.basename(arg).lower()
        if arg == "cokernel" or base in ("cokernel", "cokernel.exe"):
            return True
    return False


def list_specs() -> dict[str, str]:
    """Return every kernelspec Jupyter can see, as kernel name -> resource directory.

    Uses jupyter_client's ``KernelSpecManager``, so it honours ``JUPYTER_PATH`` and the other
    Jupyter path settings; use :func:`is_cokernel_spec` to tell cokernel specs apart.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    specs: dict[str, str] = KernelSpecManager().find_kernel_specs()
    return dict(sorted(specs.items()))
