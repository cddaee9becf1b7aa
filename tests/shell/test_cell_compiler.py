"""The cell compiler shared by the shells of one kernel (main shell and subshells, one thread
each): what one thread asks of it must not change what another compiles."""

from __future__ import annotations

import ast
import inspect
import threading

import pytest

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
