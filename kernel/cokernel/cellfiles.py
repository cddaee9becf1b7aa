"""Where a cell's code "lives": one stable file name per cell text.

The shell compiles each cell under this name and the debugger writes the cell's text there
(``dumpCell``), so a breakpoint set on a cell in JupyterLab still holds when the cell runs
again. JupyterLab does not ask the kernel for the name: it computes it itself from the
``debugInfo`` reply (``tmpFilePrefix`` + hash of the cell text + ``tmpFileSuffix``, the hash
being MurmurHash2 of the text's UTF-8 bytes with ``hashSeed``, written in decimal). The kernel
therefore names cells by exactly that rule; :data:`HASH_METHOD` and :data:`HASH_SEED` are what
``debugInfo`` announces.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Iterable

HASH_METHOD = "Murmur2"
HASH_SEED = 0xC0C0_4E11  # any 32-bit value works: JupyterLab uses whatever debugInfo says
CELL_SUFFIX = ".py"
CELL_DIR = os.path.join(tempfile.gettempdir(), f"cokernel_{os.getpid()}")
CELL_PREFIX = CELL_DIR + os.sep

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(text: str, seed: int = HASH_SEED) -> int:
    """MurmurHash2 (32 bit) of ``text``'s UTF-8 bytes, as JupyterLab's debugger computes it."""
    data = text.encode("utf-8")
    length = len(data)
    h = (seed ^ length) & _MASK
    whole = length - length % 4
    if sys.byteorder == "little":  # the 32-bit words as ints without slicing (~2x faster)
        words: Iterable[int] = memoryview(data)[:whole].cast("I")
    else:
        words = (int.from_bytes(data[i : i + 4], "little") for i in range(0, whole, 4))
    for k in words:
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[whole:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


@functools.lru_cache(maxsize=256)
def cell_path(code: str) -> str:
    """The file name of a cell whose text is ``code`` (the same for the same text).

    Cached: a cell run again (or compiled twice, as IPython does for magics) costs no hash.
    """
    return f"{CELL_PREFIX}{murmur2(code)}{CELL_SUFFIX}"


def is_cell_path(path: str) -> bool:
    """Whether ``path`` names a cell file of this kernel process."""
    return path.startswith(CELL_PREFIX) and path.endswith(CELL_SUFFIX)


def write_cell(code: str) -> str:
    """Write ``code`` to its cell file (if it is not there yet) and return the path."""
    path = cell_path(code)
    os.makedirs(CELL_DIR, exist_ok=True)
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == code:
                return path
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(code)
    os.replace(tmp, path)  # a reader (debugpy) never sees half a file
    return path


def blank_lines_before_cell_magic(lines: list[str]) -> list[str]:
    """An IPython cleanup transform that keeps a cell's line numbers.

    IPython's ``leading_empty_lines`` drops a cell's leading blank lines, so the compiled code's
    line 1 is the cell's first non-blank line. The debugger's breakpoints are set in the cell's
    file (its full text, :func:`write_cell`): while it is attached, the shell uses this instead,
    which drops them only before a cell magic (``%%time`` must be the first line to be one, and
    its body is run from a string anyway).
    """
    for i, line in enumerate(lines):
        if line and not line.isspace():
            return lines[i:] if line.startswith("%%") else lines
    return lines
