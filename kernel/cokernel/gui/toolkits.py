"""Which GUI toolkit a ``%gui`` or ``%matplotlib`` request needs, and whether this kernel has it.

A hosted kernel runs one toolkit's loop for its whole life, so ``%gui`` does not start or stop
anything: asking for the host's own toolkit succeeds as a no-op, asking for another fails with
an error that says how to start a kernel hosted by that one. This module imports nothing of
the kernel, so the shell can use it.
"""

from __future__ import annotations

# What IPython and matplotlib call a toolkit -> the host that runs its loop (None: no loop).
_TOOLKITS: dict[str, str | None] = {
    "tk": "tk",
    "tkinter": "tk",
    "qt": "qt",
    "qt6": "qt",
    "qt5": "qt",
    "inline": None,
    "agg": None,
    "none": None,
    "": None,
    # Web backends: the browser draws, over a comm (nbagg, ipympl's widget) or matplotlib's
    # own web server (webagg); no GUI event loop is involved.
    "nbagg": None,
    "notebook": None,
    "webagg": None,
    "widget": None,
    "ipympl": None,
}
# Loops that are async libraries, not GUI toolkits: the kernel's backend runs one of them.
_ASYNC_LOOPS = ("asyncio", "trio")
# Toolkits IPython knows that no cokernel host runs.
_UNSUPPORTED = ("wx", "gtk", "gtk3", "gtk4", "osx", "macosx", "glut", "pyglet")


class GuiUnavailable(RuntimeError):
    """A ``%gui`` or ``%matplotlib`` request needs an event loop this kernel does not run."""


def _install_hint(toolkit: str) -> str:
    return (
        f"start a kernel hosted by {toolkit}: `cokernel install --name cokernel-{toolkit} "
        f"--host {toolkit}`, then choose that kernel"
    )


def check_gui(gui: str | None, host: str | None, backend: str | None = None) -> None:
    """Return if toolkit ``gui`` can run in a kernel hosted by ``host`` (None: no host).

    ``None``, "inline", "agg" and the web backends (nbagg, webagg, ipympl) need no loop and
    always pass; the host's own toolkit passes (its loop already runs); "asyncio" passes on a
    kernel whose ``backend`` is asyncio (that loop always runs). Anything else raises
    :class:`GuiUnavailable` with the way out.
    """
    name = (gui or "").strip().lower()
    if name in _ASYNC_LOOPS:
        if backend is None or name == backend:
            return  # the kernel's own loop: it runs already, whatever hosts it
        raise GuiUnavailable(
            f"%gui {gui}: this kernel runs the {backend} backend, and one thread runs one "
            f"async loop. Run {name} code inside a cell with {name}.run(...) (cokernel runs "
            f"it on a worker thread), use anyio (it runs on both), or use a kernel with the "
            f"{name} backend: `cokernel install --name cokernel-{name} --backend {name}`"
        )
    if name in _TOOLKITS:
        needed = _TOOLKITS[name]
        if needed is None or needed == host:
            return
        if host is None:
            raise GuiUnavailable(
                f"this kernel runs without a GUI host, so %gui {gui} has no {needed} event "
                f"loop to attach to; {_install_hint(needed)}"
            )
        raise GuiUnavailable(
            f"this kernel's event loop is hosted by {host}, so %gui {gui} cannot run here "
            f"(one process runs one toolkit's loop); {_install_hint(needed)}"
        )
    if name in _UNSUPPORTED:
        raise GuiUnavailable(
            f"cokernel hosts the tk and qt event loops only; %gui {gui} is not supported"
        )
    raise GuiUnavailable(
        f"unknown GUI toolkit {gui!r}: cokernel hosts tk and qt (and needs no loop for inline, "
        "nbagg, webagg and ipympl)"
    )
