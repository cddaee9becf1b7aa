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
to the requests. Before jedi, the warm-up imports what IPython's traceback formatter needs on the
first error and renders one traceback with a formatter of its own, so a first interrupt's or
error's reply does not wait for that (:func:`warm_tracebacks`).

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

__all__ = [
    "JEDI_LOCK",
    "TRACEBACK_MODULES",
    "start",
    "traceback_twin",
    "warm_completion",
    "warm_tracebacks",
]

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


def warm_tracebacks(formatter: Any = None) -> None:
    """Import the modules of the first traceback; then, given ``formatter`` (a traceback
    formatter of the warm-up's own, configured like the shell's: the shell's object belongs to
    the cells), render one traceback with it.

    The imports alone leave most of a first traceback's cost: the syntax highlighter compiles
    its token tables and stack_data builds its per-file caches on first use. Measured: the first
    rendered traceback took 100-170 ms and the next ones 15-25 ms; with the imports done first,
    about 75-110 ms; after a render here, 20-25 ms.
    """
    import importlib

    for name in TRACEBACK_MODULES:
        if find_spec(name.partition(".")[0]) is not None:
            importlib.import_module(name)
    if formatter is None:
        return
    code = compile(
        "def warm_up():\n    raise ValueError('warm-up')\nwarm_up()", "<warm-up>", "exec"
    )
    try:
        exec(code, {})
    except ValueError as e:
        formatter.structured_traceback(type(e), e, e.__traceback__)


def traceback_twin(shell: Any) -> Any:
    """A new traceback formatter set up like ``shell``'s (mode, colours, line cache check)."""
    from IPython.core import ultratb

    tb = shell.InteractiveTB
    options: dict[str, Any] = {"mode": tb.mode, "check_cache": getattr(tb, "check_cache", None)}
    theme = getattr(tb, "_theme_name", None)  # IPython 9; older versions use a colour scheme
    try:
        return ultratb.AutoFormattedTB(**options, **({"theme_name": theme} if theme else {}))
    except TypeError:
        return ultratb.AutoFormattedTB(mode=tb.mode)


def start(*, completion: bool = True, shell: Any = None) -> threading.Thread:
    """Warm up on a daemon thread; returns the thread (nothing waits for it). ``shell``: the
    IPython shell whose traceback formatting to warm (see :func:`warm_tracebacks`)."""

    def run() -> None:
        try:
            warm_tracebacks(traceback_twin(shell) if shell is not None else None)
            if completion:
                warm_completion()
        except Exception:  # a warm-up is an optimisation: never a failure of the kernel
            log.debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="cokernel-warmup", daemon=True)
    thread.start()
    return thread
