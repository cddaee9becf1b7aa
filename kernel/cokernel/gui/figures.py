"""matplotlib defaults of a kernel process: inline figures unless the user chose otherwise."""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def set_default_backend(environ: dict[str, str] | None = None) -> None:
    """Make matplotlib's default backend the inline one, unless ``MPLBACKEND`` is already set.

    Set for the kernel process before any cell imports matplotlib: figures are then sent as
    image/png ``display_data`` at the end of the cell that drew them, and closed (matplotlib
    -inline registers that with IPython when matplotlib loads it). ``%matplotlib tk`` or
    ``%matplotlib qt`` on a kernel with that host switches to live windows, and
    ``%matplotlib widget`` to ipympl.
    """
    env = os.environ if environ is None else environ
    env.setdefault("MPLBACKEND", INLINE_BACKEND)


def _nbagg_comm(target_name: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """What matplotlib's nbagg backend calls ``Comm(...)``: a comm of this kernel's."""
    import comm

    return comm.create_comm(target_name=target_name, data=data or {}, **kwargs)


def prepare_nbagg() -> None:
    """Make matplotlib's ``nbagg`` backend (``%matplotlib notebook``) open its comms here.

    The backend creates its comm with ``ipykernel.comm.Comm``, which sends nothing unless an
    ipykernel kernel runs the process (and cannot be imported without ipykernel). Its module
    is imported with that name stood in for if need be, then pointed at ``comm.create_comm``,
    which cokernel serves.
    """
    name = "matplotlib.backends.backend_nbagg"
    module = sys.modules.get(name)
    if module is None:
        stand_ins: dict[str, types.ModuleType] = {}
        if "ipykernel.comm" not in sys.modules:
            for stub in ("ipykernel", "ipykernel.comm"):
                if stub not in sys.modules:
                    stand_ins[stub] = sys.modules[stub] = types.ModuleType(stub)
            sys.modules["ipykernel.comm"].Comm = _nbagg_comm  # type: ignore[attr-defined]
        try:
            module = importlib.import_module(name)
        finally:
            for stub, made in stand_ins.items():
                if sys.modules.get(stub) is made:
                    del sys.modules[stub]
    module.Comm = _nbagg_comm  # type: ignore[attr-defined]
