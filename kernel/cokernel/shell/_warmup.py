"""Work done once the kernel is up, off its loops, so that first uses do not pay for it.

The first completion of a session costs far more than the next ones: it imports jedi and parso,
and has parso build its grammar tables for this Python. None of that depends on the user's
namespace, so :func:`start` does it on a daemon thread, which the kernel starts when its first
execute_request has been served and which begins once no request has come or ended for
:data:`QUIET_MS`: not during start-up (the first reply and the first cell are not slowed), not
beside a burst of requests, and not before the session is used. It stops short of completing
anything, which would parse type stubs that the first real completion may not need (see
:func:`warm_completion`): the warm-up holds about 9 MB, and after a first completion the kernel
holds what a kernel without a warm-up holds. jedi and parso are not thread-safe (two threads
completing at once can make jedi raise, which IPython's completer turns into no matches at all),
so the warm-up and every completion take turns on :data:`JEDI_LOCK`. Nothing here touches
IPython's completer object, which belongs to the requests. The first traceback is rendered first,
with a formatter of the warm-up's own, so a first interrupt's reply does not wait for the imports,
the lexer's token tables and the caches that IPython's first render builds; last, ``inspect``'s
index of module files is brought up to date (:func:`index_modules`).

Two pygments packages, ``pygments.lexers`` and ``pygments.formatters``, replace themselves in
``sys.modules`` at the end of their import. A thread that does ``from pygments.lexers import
PythonLexer`` while another thread is importing the package gets the replaced module object,
which lacks the lazily loaded names, and fails with "cannot import name" (seen in a property run,
when the warm-up and an inspect_request imported it at once). :func:`settle_lazy_packages`
imports both on the shell's thread before any request runs concurrently (about 4 ms, 1 MB), which
also protects a user's cell that imports them while an inspect_request or the warm-up does.

The warm-up leaves the process's recursion limit alone: jedi raises it around each completion
and, when done, puts back the value it found, which from a background thread would undo a limit
set meanwhile (by a cell, or by the host of an in-process kernel: hypothesis sets its own around
every example). Importing jedi and loading a grammar change no limit.
"""

from __future__ import annotations

import linecache
import logging
import threading
import time
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from cokernel.options import env_int
from cokernel.shell import _tbhighlight as tbhighlight

log = logging.getLogger("cokernel")

__all__ = [
    "JEDI_LOCK",
    "LAZY_PACKAGES",
    "QUIET_MS",
    "TRACEBACK_MODULES",
    "index_modules",
    "register_warm_source",
    "settle_lazy_packages",
    "start",
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


def warm_completion() -> None:
    """Import jedi as IPython's completer does, and have parso build its grammar for this Python.

    No completion is run: completing even one builtin name makes jedi parse the builtins' type
    stubs, about 15 MB that a session's first real completion may not need (``os.pa`` on a live
    ``os`` module does not). Measured in process (IPython's completer, a namespace with ``os``):
    with this warm-up the first ``os.pa`` takes 90 ms and the process holds 8.9 MB more
    before it and 14.7 MB after it, which is what a kernel without a warm-up holds after that
    completion (210 ms); a warm-up that completed ``int.bit_l`` held 27 MB before it, 29 MB after,
    and still took 240 ms (the stubs it parsed were not the ones ``os.pa`` needs).
    """
    if find_spec("jedi") is None:
        return
    with JEDI_LOCK:
        _jedi()
        from parso.grammar import load_grammar

        load_grammar()  # the running Python's, as jedi.Interpreter asks for


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


#: The packages that replace themselves in sys.modules when imported (see the module's doc).
LAZY_PACKAGES = ("pygments.lexers", "pygments.formatters")


def _import_installed(names: tuple[str, ...]) -> None:
    """Import each of ``names`` whose top-level package is installed."""
    import importlib

    for name in names:
        if find_spec(name.partition(".")[0]) is not None:
            importlib.import_module(name)


def settle_lazy_packages() -> None:
    """Import :data:`LAZY_PACKAGES` now, on this thread: call it before threads import them."""
    _import_installed(LAZY_PACKAGES)


_WARM_CELL = "def _cokernel_warmup():\n    raise KeyboardInterrupt\n\n_cokernel_warmup()\n"
_WARM_FILENAME = "<cokernel-warmup>"


def register_warm_source() -> str:
    """Put the warm-up cell's source in :mod:`linecache` (once; it stays); returns its name.

    The entry is added and never removed: ``linecache.checkcache()`` (pdb calls it as it
    starts) lists the cache's names and then reads each, so a name removed by another thread
    in between raises KeyError in the user's cell. An earlier warm-up removed its entry after
    rendering, and a ``pdb.set_trace()`` cell failed that way, now and then, in the test suite.
    Its mtime is None, so ``checkcache`` keeps it.
    """
    if _WARM_FILENAME not in linecache.cache:
        lines = _WARM_CELL.splitlines(True)
        linecache.cache[_WARM_FILENAME] = (len(_WARM_CELL), None, lines, _WARM_FILENAME)
    return _WARM_FILENAME


def warm_tracebacks(style: tuple[str, str] | None = None) -> None:
    """Import the modules of the first traceback, and render one if ``style`` (IPython's
    exception mode and colour theme, as the shell has them) is given.

    The render uses a formatter of its own and a source of its own: nothing the cells use is
    touched, only module-level state (imports, pygments' compiled token tables, stack_data's
    per-code caches) is left warm.
    """
    _import_installed(TRACEBACK_MODULES)
    tbhighlight.install()
    if style is None:
        return
    from IPython.core.ultratb import AutoFormattedTB

    mode, theme = style
    filename = register_warm_source()
    try:
        exec(compile(_WARM_CELL, filename, "exec"), {})  # our own constant
    except KeyboardInterrupt as e:
        formatter = AutoFormattedTB(mode=mode, theme_name=theme)
        formatter.structured_traceback(type(e), e, e.__traceback__)


def index_modules() -> None:
    """Have ``inspect`` index the files of the modules imported so far.

    A traceback looks up the module of each frame, and ``inspect.getmodule`` first resolves the
    real path of every module imported since its last lookup: after jedi's import, about 120
    ``realpath`` calls, 15 ms the first traceback would otherwise pay (a first interrupt's
    reply waited for them)."""
    import inspect

    inspect.getmodule(compile("", "<cokernel-warmup-index>", "exec"))


#: How long the kernel must have served no request before the warm-up begins (milliseconds,
#: ``COKERNEL_WARMUP_QUIET_MS``). The warm-up takes a few hundred ms of CPU; begun right after
#: the first cell, it shared the GIL with the cells that followed it, and made the slowest tenth
#: of a burst of round trips several times slower (bench, 2026-12-02).
QUIET_MS = env_int("COKERNEL_WARMUP_QUIET_MS", 300)


def start(
    *,
    completion: bool = True,
    traceback_style: tuple[str, str] | None = None,
    quiet_for: Callable[[], float] | None = None,
) -> threading.Thread:
    """Warm up on a daemon thread; returns the thread (nothing waits for it).

    ``traceback_style`` is the shell's (exception mode, colour theme), for the first render.
    ``quiet_for()`` says how long ago the kernel last began or ended a request (seconds): the
    warm-up waits until that is :data:`QUIET_MS` or more.
    """

    if traceback_style is not None:
        register_warm_source()  # here, on the kernel's thread, not beside the user's cells

    def run() -> None:
        if quiet_for is not None:
            while (left := QUIET_MS / 1000 - quiet_for()) > 0:
                time.sleep(left)  # a background thread waiting for a quiet moment
        try:
            warm_tracebacks(traceback_style)
            if completion:
                warm_completion()
            index_modules()
        except Exception:  # a warm-up is an optimisation: never a failure of the kernel
            log.debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="cokernel-warmup", daemon=True)
    thread.start()
    return thread
