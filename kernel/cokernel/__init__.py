"""cokernel: a concurrent Python kernel for Jupyter.

Messages are scheduled by (channel, msg_type, subshell) lane and run mode, so comms, control,
completion and interrupts stay live while a cell runs. See docs/ for the design, and
docs/design.md for the layers (one folder each) this package is made of.

The public face is ``__all__``. :class:`Kernel`, :func:`start` and :func:`serve` are imported
when first used: importing :mod:`cokernel` alone does not import IPython (``cokernel start``
binds its sockets before it loads the shell).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cokernel.options import KernelOptions as KernelOptions
from cokernel.protocol import PROTOCOL_VERSION as PROTOCOL_VERSION

if TYPE_CHECKING:
    from cokernel.interfaces.callback import KernelHandle as KernelHandle
    from cokernel.interfaces.callback import serve as serve
    from cokernel.interfaces.callback import start as start
    from cokernel.kernel._kernel import Kernel as Kernel

__all__ = ["PROTOCOL_VERSION", "Kernel", "KernelHandle", "KernelOptions", "serve", "start"]

_LAZY = {
    "Kernel": "cokernel.kernel._kernel",
    "KernelHandle": "cokernel.interfaces.callback",
    "serve": "cokernel.interfaces.callback",
    "start": "cokernel.interfaces.callback",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cokernel' has no attribute {name!r}")
