"""One AST conversion at a time, on the CPython versions that need it.

CPython 3.11 keeps the depth counter of its C-to-Python AST conversion (``ast.parse``, and
``compile`` with ``PyCF_ONLY_AST``) in per-interpreter state. A conversion allocates, the
allocation can run the garbage collector, a finalizer can let another thread take the GIL, and
when that thread converts too, the shared counter is corrupted: ``SystemError: AST constructor
recursion depth mismatch`` (CPython gh-106905, fixed in 3.12 with per-call state). A kernel that
runs cells, completions and traceback rendering on several threads at once meets it: the
interleaving property tests caught a completion's parse (IPython's completer and guarded_eval
call ``ast.parse``) beside a cell's compile.

The kernel's own conversions take :data:`AST_CONVERSION`. On 3.11, :func:`serialise_ast_parse`
makes ``ast.parse`` take it too, which covers IPython's completer, stack_data's traceback
rendering and the user's own threads. Each conversion holds the lock for its own length only
(microseconds to milliseconds), so a cell never waits for a whole completion.

Left as CPython has it: a finalizer that itself parses, run by the collector inside a parse on
the same thread, resets the counter of the parse it interrupted. No lock can keep a thread from
itself; the lock is reentrant so that such a finalizer fails as it would anywhere, instead of
deadlocking.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

#: Held during every AST conversion the kernel makes (reentrant: see the module's docstring).
AST_CONVERSION = threading.RLock()

_MARK = "__cokernel_one_at_a_time__"


def needs_serialising(version: tuple[int, ...] = tuple(sys.version_info[:2])) -> bool:
    """Whether this CPython shares the AST conversion's depth counter between threads."""
    return version[:2] == (3, 11)


def serialise_ast_parse() -> None:
    """Make ``ast.parse`` take :data:`AST_CONVERSION` where CPython needs it (idempotent)."""
    if not needs_serialising() or getattr(ast.parse, _MARK, False):
        return
    ast.parse = _one_at_a_time(ast.parse)


def _one_at_a_time(parse: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(parse)
    def parse_one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with AST_CONVERSION:
            return parse(*args, **kwargs)

    setattr(parse_one_at_a_time, _MARK, True)
    return parse_one_at_a_time
