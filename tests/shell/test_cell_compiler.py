"""The cell compiler shared by the shells of one kernel (main shell and subshells, one thread
each): what one thread asks of it must not change what another compiles."""

from __future__ import annotations

import ast
import gc
import inspect
import sys
import threading
import time

import pytest

from cokernel.shell._ast_guard import needs_serialising, serialise_ast_parse
from cokernel.shell._shell import CellCompiler

TOP_LEVEL_AWAIT = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
GATE_TIMEOUT = 10


@pytest.mark.timeout(30)
def test_top_level_await_stays_on_for_a_thread_while_another_turns_it_off() -> None:
    # IPython's run_ast_nodes wraps each compile in extra_flags(top-level await). Interleaved
    # on two threads: A turns it on, B enters (already on), A leaves; B must still compile
    # `await` (it got "SyntaxError: 'await' outside function" when the flag was shared).
    compiler = CellCompiler()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    compiled: list[object] = []

    def first() -> None:
        with compiler.extra_flags(TOP_LEVEL_AWAIT):
            a_in.set()
            assert b_in.wait(GATE_TIMEOUT)
        a_out.set()

    def second() -> None:
        assert a_in.wait(GATE_TIMEOUT)
        with compiler.extra_flags(TOP_LEVEL_AWAIT):
            b_in.set()
            assert a_out.wait(GATE_TIMEOUT)
            try:
                compiled.append(compiler(ast.parse("await thing()"), "<cell>", "exec"))
            except SyntaxError as e:
                compiled.append(e)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GATE_TIMEOUT)
    [code] = compiled
    assert not isinstance(code, SyntaxError), code
    assert code.co_flags & inspect.CO_COROUTINE  # type: ignore[attr-defined]


@pytest.mark.timeout(30)
def test_extra_flags_apply_only_inside_and_future_imports_persist() -> None:
    compiler = CellCompiler()
    with pytest.raises(SyntaxError):
        compiler("await thing()", "<cell>", "exec")
    with compiler.extra_flags(TOP_LEVEL_AWAIT):
        tree = compiler.ast_parse("await thing()")
        assert compiler(tree, "<cell>", "exec").co_flags & inspect.CO_COROUTINE
    with pytest.raises(SyntaxError):
        compiler(tree, "<cell>", "exec")
    # As with codeop: a `from __future__` import stays in force for later cells.
    compiler("from __future__ import annotations", "<cell>", "exec")
    code = compiler("def f(x: undefined_name): pass", "<cell>", "exec")
    namespace: dict[str, object] = {}
    exec(code, namespace)
    assert namespace["f"].__annotations__ == {"x": "undefined_name"}  # type: ignore[attr-defined]


class _YieldsWhenCollected:
    """Garbage whose finalizer lets other threads run: the collector calls it in the middle of
    a conversion (an AST's nodes are allocations), as any finalizer that releases the GIL."""

    def __init__(self) -> None:
        self.cycle = self

    def __del__(self) -> None:
        time.sleep(0)


@pytest.mark.timeout(120)
@pytest.mark.skipif(not needs_serialising(), reason="this CPython converts ASTs per call")
def test_threads_parsing_at_once_do_not_corrupt_the_ast_depth_counter() -> None:
    # CPython 3.11 (gh-106905): parses on several threads, with the collector running
    # finalizers that switch threads mid-conversion, fail with "SystemError: AST constructor
    # recursion depth mismatch". Unserialised, this failed within a few rounds every time.
    serialise_ast_parse()
    source = "\n".join(
        f"def f{i}(a, b=[1, {i}]):\n    return [x * {i} for x in a if x] + {{k: v for k, v in b}}"
        for i in range(200)
    )
    errors: list[BaseException] = []

    def parse_repeatedly() -> None:
        try:
            for _ in range(25):
                garbage = [_YieldsWhenCollected() for _ in range(50)]
                del garbage
                ast.parse(source)
        except BaseException as e:
            errors.append(e)

    threshold, switch = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(50)
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=parse_repeatedly) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(100)
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(switch)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []


@pytest.mark.timeout(30)
def test_ast_parse_is_serialised_exactly_where_cpython_needs_it() -> None:
    serialise_ast_parse()
    serialise_ast_parse()  # a second kernel in the process: wrapped once, not twice
    assert needs_serialising((3, 11))
    assert not needs_serialising((3, 12))
    wrapped = getattr(ast.parse, "__wrapped__", None)
    if needs_serialising():
        assert wrapped is not None
        assert getattr(wrapped, "__wrapped__", None) is None
    else:
        assert wrapped is None
