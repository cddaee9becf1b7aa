"""Living with the other async library: nested ``asyncio.run`` / ``trio.run``, and clear errors.

A cell runs on the kernel's event loop, so with every other kernel ``asyncio.run(main())`` in a
cell fails with "cannot be called from a running event loop" (and ``trio.run`` inside trio with
"Attempted to call run() from inside a run()"). cokernel makes both work: called on a thread
that already runs an event loop, they run on a fresh worker thread with a loop of its own, while
the cell waits. The worker starts in the cell's context, so its prints reach the cell; an
interrupt cancels the nested run and ends the cell with KeyboardInterrupt.

Code for the *other* backend awaited directly in a cell (``await asyncio.sleep(1)`` on a trio
kernel) cannot work: the error gets a note saying which backend runs and what to do instead.

``trio.run`` is patched when trio is imported, not at start: importing trio costs an asyncio
kernel that never uses it about 5.5 MB and 40 ms. A finder at the head of ``sys.meta_path``
wraps trio's loader, so the patch is applied the moment trio's ``__init__`` has run, before the
importing code sees the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

_original_asyncio_run = asyncio.run
_installed = False


def _loop_runs_here() -> bool:
    """Whether this thread already runs an asyncio loop or a trio run."""
    if asyncio._get_running_loop() is not None:
        return True
    try:
        import trio
    except ImportError:
        return False
    return bool(trio.lowlevel.in_trio_run())


def _run_on_worker(run: Callable[[], Any], cancel: Callable[[], None]) -> Any:
    """Call ``run()`` on a new thread and wait; an interrupt while waiting calls ``cancel()``."""
    __tracebackhide__ = True  # hidden from tracebacks
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = run()
        except BaseException as e:
            outcome["error"] = e

    worker = threading.Thread(target=target, name="cokernel-nested-run", daemon=True)
    worker.start()
    try:
        worker.join()  # interruptible: SIGINT raises KeyboardInterrupt here
    except BaseException:
        cancel()
        worker.join(10)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def asyncio_run(main: Any, *, debug: bool | None = None, **kwargs: Any) -> Any:
    """``asyncio.run`` that also works inside a running event loop (on a worker thread)."""
    __tracebackhide__ = True  # hidden from tracebacks
    if not _loop_runs_here():
        return _original_asyncio_run(main, debug=debug, **kwargs)
    holder: dict[str, asyncio.AbstractEventLoop] = {}

    def run() -> Any:
        with asyncio.Runner(debug=debug, **kwargs) as runner:
            holder["loop"] = runner.get_loop()
            return runner.run(main)

    def cancel() -> None:
        loop = holder.get("loop")
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])

    return _run_on_worker(run, cancel)


def _make_trio_run(original: Callable[..., Any]) -> Callable[..., Any]:
    def trio_run(async_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``trio.run`` that also works inside a running event loop (on a worker thread)."""
        __tracebackhide__ = True  # hidden from tracebacks
        if not _loop_runs_here():
            return original(async_fn, *args, **kwargs)
        import trio

        holder: dict[str, Any] = {}

        async def wrapped() -> Any:
            holder["token"] = trio.lowlevel.current_trio_token()
            with trio.CancelScope() as scope:
                holder["scope"] = scope
                return await async_fn(*args)

        def cancel() -> None:
            token, scope = holder.get("token"), holder.get("scope")
            if token is not None and scope is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    token.run_sync_soon(scope.cancel)

        return _run_on_worker(lambda: original(wrapped, **kwargs), cancel)

    return trio_run


_original_ensure_future = asyncio.ensure_future


def ensure_future(coro_or_future: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> Any:
    """``asyncio.ensure_future`` that refuses at once where no asyncio loop can ever run it.

    On a thread that runs trio (a trio kernel's cells) and no asyncio loop, the standard one
    schedules the coroutine on a new, never-running loop: it silently never runs.
    """
    __tracebackhide__ = True  # hidden from tracebacks
    if (
        loop is None
        and not isinstance(coro_or_future, asyncio.Future)
        and asyncio._get_running_loop() is None
        and _trio_runs_here()
    ):
        if asyncio.iscoroutine(coro_or_future):
            coro_or_future.close()  # no "was never awaited" warning on top of the error
        raise RuntimeError(
            "asyncio.ensure_future(): no asyncio event loop runs here (this kernel runs the "
            "trio backend), so the task would never run. Use a trio nursery or an anyio task "
            "group, wrap asyncio code in asyncio.run(...) (cokernel runs it on a worker "
            "thread), or use a kernel with the asyncio backend "
            "(`cokernel install --name cokernel-asyncio --backend asyncio`)."
        )
    return _original_ensure_future(coro_or_future, loop=loop)


def _trio_runs_here() -> bool:
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def _patch_trio(trio: types.ModuleType) -> None:
    if not getattr(trio.run, "cokernel_nested", False):
        trio_run = _make_trio_run(trio.run)
        trio_run.cokernel_nested = True  # type: ignore[attr-defined]
        setattr(trio, "run", trio_run)  # noqa: B010 - a module the type checker cannot see


class _PatchingLoader(importlib.abc.Loader):
    """trio's own loader, which patches ``trio.run`` once the module has run."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # Put the real loader back first: importlib.resources and friends ask the module's.
        module.__loader__ = self._inner
        if module.__spec__ is not None:
            module.__spec__.loader = self._inner
        self._inner.exec_module(module)
        _patch_trio(module)
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_TRIO_FINDER)


class _TrioFinder(importlib.abc.MetaPathFinder):
    """Finds trio through the finders after it, and hands out its spec with a patching loader.

    It stays in place until trio has been imported: a spec looked up without importing (a
    completion of ``import tr``) must not use it up."""

    def find_spec(
        self,
        fullname: str,
        path: Any = None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "trio":
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec: importlib.machinery.ModuleSpec | None = find(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


_TRIO_FINDER = _TrioFinder()


def install() -> None:
    """Patch ``asyncio.run``, ``asyncio.ensure_future`` and ``trio.run`` (now if trio is
    imported, else when it is) for use inside cells. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    asyncio.run = asyncio_run
    asyncio.ensure_future = ensure_future
    trio = sys.modules.get("trio")
    if trio is not None:
        _patch_trio(trio)
    else:
        sys.meta_path.insert(0, _TRIO_FINDER)


_MISMATCH_HINTS = {
    # (kernel backend, error text) -> the library the cell tried to use
    ("trio", "no running event loop"): "asyncio",
    ("asyncio", "must be called from async context"): "trio",
}


def explain_backend_mismatch(exc: BaseException, backend: str) -> None:
    """Add a note to ``exc`` when it comes from awaiting the other backend's primitives."""
    if not isinstance(exc, RuntimeError) or getattr(exc, "_cokernel_explained", False):
        return
    wanted = next(
        (lib for (b, text), lib in _MISMATCH_HINTS.items() if b == backend and text in str(exc)),
        None,
    )
    if wanted is None:
        return
    exc._cokernel_explained = True  # type: ignore[attr-defined]
    exc.add_note(
        f"cokernel: this kernel runs the {backend} backend, and the cell awaited {wanted}-only "
        f"code. Use anyio (it runs on both), wrap the code in {wanted}.run(...) (cokernel runs "
        f"it on a worker thread), or use a kernel with the {wanted} backend "
        f"(`cokernel install --name cokernel-{wanted} --backend {wanted}`)."
    )
