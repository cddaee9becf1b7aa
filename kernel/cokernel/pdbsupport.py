"""``pdb`` in a cell: IPython's debugger, and an interrupt at its prompt ends the cell.

The standard library's pdb catches KeyboardInterrupt around its prompt and prompts again
(``--KeyboardInterrupt--``): in a kernel, where the prompt is an ``input()`` over the stdin
channel, interrupting it would only bring back a fresh ``(Pdb)``, and the cell and everything
queued behind it would wait for an answer forever.

While a kernel runs, ``pdb.set_trace`` (and so ``breakpoint()``), ``pdb.Pdb`` and the shell's
``%debug`` use :class:`KernelPdb`: IPython's debugger (``ipdb>`` prompt, colours, as in
ipykernel), where an interrupt at the prompt stops debugging and ends the cell with
KeyboardInterrupt; the next cells then run. (ipykernel also stops debugging there, but lets
the cell run on after ``set_trace()``.)

``pdb`` is patched when a cell first imports it (a finder on ``sys.meta_path`` until then), so a
kernel that never debugs does not pay for importing it at start-up.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

_kernel_pdb: type | None = None


def kernel_pdb_class() -> type:
    """:class:`KernelPdb`, made on first use (it subclasses IPython's Pdb, which imports pdb)."""
    global _kernel_pdb
    if _kernel_pdb is None:
        from IPython.core.debugger import Pdb as IPythonPdb

        class KernelPdb(IPythonPdb):  # type: ignore[misc]
            """IPython's Pdb; an interrupt at its prompt ends debugging and the cell."""

            _interrupted = False

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                # pdb's "continue" would put its own SIGINT handler in the kernel's place (to
                # break into the debugger on Ctrl-C), and every later interrupt would go to it.
                kwargs["nosigint"] = True
                super().__init__(*args, **kwargs)

            def _cmdloop(self) -> None:
                # pdb's own loop answers KeyboardInterrupt with another prompt.
                try:
                    self.allow_kbdint = True
                    self.cmdloop()
                    self.allow_kbdint = False
                except KeyboardInterrupt:
                    self.message("--KeyboardInterrupt--")
                    self._interrupted = True
                    self.stop_here = lambda frame: False
                    self.set_quit()
                    self.quitting = False  # no BdbQuit from the trace function on its way out
                    sys.settrace(None)
                    raise

            def interaction(self, frame: types.FrameType | None, tb_or_exc: Any) -> None:
                # IPython's interaction reports a KeyboardInterrupt and returns, so the cell
                # would run on: the interrupt is the cell's end.
                super().interaction(frame, tb_or_exc)
                if self._interrupted:
                    self._interrupted = False
                    raise KeyboardInterrupt

        _kernel_pdb = KernelPdb
    return _kernel_pdb


def set_trace(frame: types.FrameType | None = None, *, header: str | None = None) -> None:
    """``pdb.set_trace`` for cells: a KernelPdb on the caller's frame."""
    debugger = kernel_pdb_class()()
    if header is not None:
        debugger.message(header)
    debugger.set_trace(frame or sys._getframe().f_back)


_saved: tuple[Any, Any] | None = None


def _patch(pdb: types.ModuleType) -> None:
    global _saved
    if _saved is None:
        _saved = (getattr(pdb, "Pdb"), getattr(pdb, "set_trace"))  # noqa: B009
    setattr(pdb, "Pdb", kernel_pdb_class())  # noqa: B010 (a module typed as any module)
    setattr(pdb, "set_trace", set_trace)  # noqa: B010


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        _patch(module)
        if _hook in sys.meta_path:  # its work is done: no more look-ups pass through it
            sys.meta_path.remove(_hook)


class _PdbImportHook(importlib.abc.MetaPathFinder):
    """Finds ``pdb`` through the other finders and patches it once it has run."""

    def find_spec(
        self, fullname: str, path: Any, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "pdb":
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


_hook = _PdbImportHook()


def install() -> None:
    """Make ``pdb.set_trace``, ``breakpoint()`` and ``pdb.Pdb`` use KernelPdb."""
    pdb = sys.modules.get("pdb")
    if pdb is not None:
        _patch(pdb)
    elif _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)


def uninstall() -> None:
    """Give ``pdb`` its own ``Pdb`` and ``set_trace`` back (the kernel has stopped)."""
    global _saved
    if _hook in sys.meta_path:
        sys.meta_path.remove(_hook)
    pdb = sys.modules.get("pdb")
    if pdb is not None and _saved is not None:
        setattr(pdb, "Pdb", _saved[0])  # noqa: B010
        setattr(pdb, "set_trace", _saved[1])  # noqa: B010
    _saved = None
