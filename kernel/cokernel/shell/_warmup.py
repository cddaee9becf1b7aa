"""Work done once the kernel is up, off its loops, so that first uses do not pay for it.

The first completion of a session costs far more than the next ones: it imports jedi and parso,
has parso build its grammar tables for this Python, and parses the builtins' type stubs. None
of that depends on the user's namespace, so :func:`start` does it on a daemon thread, which the
kernel starts when its first execute_request has been served: not during start-up (the first
reply and the first cell are not slowed), and not before the session is used (jedi and the
stubs it reads take about 30 MB, which a kernel nobody types into need not hold). jedi and parso
are not thread-safe (two threads completing at once can make jedi raise, which IPython's
completer turns into no matches at all), so the warm-up and every completion take turns on
:data:`JEDI_LOCK`: a complete_request that comes in meanwhile waits for the warm-up instead of
doing the same work beside it. Nothing here touches IPython's completer object, which belongs
to the requests. The modules IPython's traceback formatter imports on the first error are
imported first, so a first interrupt's reply does not wait for them.

The warm-up leaves the process's recursion limit alone. jedi raises it around each call (to
3000) and puts back the value it found when the call ends: from a background thread, that
restore undoes whatever the limit was set to meanwhile (by a cell, or by the host process of an
in-process kernel: hypothesis sets it around every example and failed the property tests when
the warm-up straddled one). Its one small completion needs no raised limit, so on the warm-up
thread jedi's raise is skipped (:func:`_keep_recursion_limit_on_warmup`); completions that
requests ask for are unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from importlib.util import find_spec
from typing import Any

log = logging.getLogger("cokernel")

__all__ = ["JEDI_LOCK", "TRACEBACK_MODULES", "start", "warm_completion", "warm_tracebacks"]

#: Held while jedi runs: by the warm-up, and by each complete_request (cokernel.kernel._handlers).
JEDI_LOCK = threading.Lock()


def _jedi() -> Any:
    import importlib

    try:  # IPython imports and configures jedi there (case sensitivity, parso's logging)
        from IPython.core.completer import _get_jedi
    except ImportError:
        return importlib.import_module("jedi")
    return _get_jedi()


_warming = threading.local()  # .active: this thread runs the warm-up's completion


def _keep_recursion_limit_on_warmup() -> None:
    """Make jedi's temporary recursion-limit raise a no-op on the warm-up's thread (once)."""
    import importlib

    helpers: Any = importlib.import_module("jedi.api.helpers")
    original = helpers.higher_recursion_limit
    if getattr(original, "cokernel_wrapped", False):
        return

    def higher_recursion_limit() -> contextlib.AbstractContextManager[None]:
        if getattr(_warming, "active", False):
            return contextlib.nullcontext()
        return original()  # type: ignore[no-any-return]

    higher_recursion_limit.cokernel_wrapped = True  # type: ignore[attr-defined]
    # jedi's @recursion_limit wrapper looks the helper up at each call.
    helpers.higher_recursion_limit = higher_recursion_limit


def warm_completion() -> None:
    """Import jedi and complete one builtin name through it, as a completion would."""
    if find_spec("jedi") is None:
        return
    with JEDI_LOCK:
        jedi = _jedi()
        _keep_recursion_limit_on_warmup()
        _warming.active = True
        try:
            for completion in jedi.Interpreter("int.bit_l", [{}]).complete():
                completion.type  # noqa: B018 - resolving the type loads what signatures need
                completion.get_signatures()
        finally:
            _warming.active = False


#: What IPython's traceback formatter imports the first time a cell fails or is interrupted
#: (a first interrupt's reply waited about 200 ms for them on a loaded machine).
TRACEBACK_MODULES = (
    "stack_data",
    "executing",
    "pure_eval",
    "asttokens",
    "pygments.formatters.terminal256",
    "pygments.styles",
    "pydoc",
)


def warm_tracebacks() -> None:
    """Import the modules of the first traceback (imports only: the formatter objects
    belong to the cells)."""
    import importlib

    for name in TRACEBACK_MODULES:
        if find_spec(name.partition(".")[0]) is not None:
            importlib.import_module(name)


def start(*, completion: bool = True) -> threading.Thread:
    """Warm up on a daemon thread; returns the thread (nothing waits for it)."""

    def run() -> None:
        try:
            warm_tracebacks()
            if completion:
                warm_completion()
        except Exception:  # a warm-up is an optimisation: never a failure of the kernel
            log.debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="cokernel-warmup", daemon=True)
    thread.start()
    return thread
