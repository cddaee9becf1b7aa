"""cokernel.shell._transform: the quick path gives IPython's own transformations, cell by cell."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.inputtransformer2 import TransformerManager

from cokernel.shell._transform import QuickTransformerManager

pytestmark = pytest.mark.timeout(120)

# Cells of Python-ish lines built from the pieces each transformation looks for, and plain code.
PIECES = [
    "x = 1",
    "print(x)",
    "def f():",
    "    return 2",
    "\tpass",
    "",
    "   ",
    "\t ",
    "for i in y:",
    "%time f()",
    "%%timeit",
    "!ls",
    "x = !ls",
    "y = %pwd",
    "x?",
    "f??",
    "?x",
    ",f a b",
    ";f a b",
    "/f a",
    ">>> 1 + 1",
    "... 2",
    "In [3]: x",
    "   ...: y",
    "...",
    "a = [1,",
    "  ,2]",
    "s = 'a ? b'",
    '"""doc',
    'end"""',
    "x = 5 % 3",
    "# comment ! %",
    "\\",
    "a != b",
    "λ = 'é'",
    "x\r",
    "y\x0c",
    "z\u2028",
]
CELLS = st.lists(st.sampled_from(PIECES), min_size=0, max_size=6).flatmap(
    lambda lines: st.sampled_from(["\n", ""]).map(lambda end: "\n".join(lines) + end)
)


def transformed(manager: TransformerManager, cell: str) -> tuple[str, str | None]:
    try:
        return manager.transform_cell(cell), None
    except Exception as e:  # IPython raises SyntaxError for some help syntax; so must we
        return "", type(e).__name__


@settings(max_examples=3000, deadline=None, database=None)
@given(CELLS)
def test_the_quick_path_transforms_every_cell_as_ipython_does(cell: str) -> None:
    assert transformed(QuickTransformerManager(), cell) == transformed(TransformerManager(), cell)


@given(st.text(max_size=40))
@settings(max_examples=2000, deadline=None, database=None)
def test_any_text_too(cell: str) -> None:
    assert transformed(QuickTransformerManager(), cell) == transformed(TransformerManager(), cell)


@pytest.mark.parametrize(
    "cell",
    ["x=1", "x=1\n", "def f(a, b):\n    return a / b\n", "print('done')", "import os\nos.getcwd()"],
)
def test_plain_cells_take_the_quick_path(cell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_called(self: TransformerManager, lines: list[str]) -> list[str]:
        raise AssertionError("the token transformations ran")

    monkeypatch.setattr(TransformerManager, "do_token_transforms", not_called)
    out = QuickTransformerManager().transform_cell(cell)
    assert out == (cell if cell.endswith("\n") else cell + "\n")


def test_an_added_transformation_is_applied_to_plain_cells_too() -> None:
    manager = QuickTransformerManager()
    manager.cleanup_transforms.append(lambda lines: [line.replace("x", "y") for line in lines])
    assert manager.transform_cell("x=1") == "y=1\n"
    manager = QuickTransformerManager()
    manager.token_transformers = manager.token_transformers[:2]  # one removed
    assert not manager.has_default_transformations()


def test_the_shell_uses_it() -> None:
    from cokernel.shell._shell import CokernelShell

    shell = CokernelShell.instance()
    try:
        assert isinstance(shell.input_transformer_manager, QuickTransformerManager)
        assert shell.transform_cell("x = !echo hi") == "x = get_ipython().getoutput('echo hi')\n"
        assert shell.transform_cell("y=2") == "y=2\n"
    finally:
        CokernelShell.clear_instance()
