"""matplotlib defaults of a kernel process: inline figures unless the user chose otherwise."""

from __future__ import annotations

import os

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
