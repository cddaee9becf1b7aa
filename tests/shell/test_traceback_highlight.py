"""cokernel.shell._tbhighlight: stack_data's traceback highlighter without a lexer class per frame.

The replacement must render exactly what stack_data renders (compared against the function it
replaces), build its lexer class once, and show a kernel's tracebacks as before."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pygments
import pytest
import stack_data.core
import stack_data.utils
from pygments.formatters.terminal256 import Terminal256Formatter
from pygments.styles import get_style_by_name

from cokernel.shell import _tbhighlight
from cokernel_harness.client import BlockingClient
from helpers import KernelPair

pytestmark = pytest.mark.timeout(60)

SOURCES = [
    ("x = 1\n", [(0, 1)]),
    (
        "def f(n):\n    if n == 0: raise ValueError('x')\n    return f(n - 1) + 1\nf(3)\n",
        [(72, 76)],
    ),
    ("while True:\n    pass\n", [(16, 20), (0, 5)]),
    ("s = '''unterminated\n", []),
    ("print('ünïcode', 1_000, f'{x!r:>10}')  # comment\n", [(0, 5), (40, 49)]),
]


@pytest.fixture
def original() -> Iterator[Any]:
    """stack_data's own highlighter, put back after the test."""
    saved = stack_data.core._pygmented_with_ranges  # type: ignore[attr-defined]
    # Installed earlier in this process, the original is still stack_data.utils'.
    yield stack_data.utils._pygmented_with_ranges
    stack_data.core._pygmented_with_ranges = saved  # type: ignore[attr-defined]


def formatter() -> Terminal256Formatter:
    style = stack_data.style_with_executing_node(get_style_by_name("default"), "bg:ansiyellow")
    return Terminal256Formatter(style=style)


@pytest.mark.parametrize(("code", "ranges"), SOURCES)
def test_the_replacement_renders_what_stack_data_renders(
    original: Any, code: str, ranges: list[tuple[int, int]]
) -> None:
    ours = _tbhighlight.highlight_with_ranges(formatter(), code, ranges)
    assert ours == original(formatter(), code, ranges)
    if ranges:  # the marking is really there: the same source unmarked differs
        assert ours != original(formatter(), code, [])


def test_the_lexer_class_is_made_once(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[type[Any]] = []
    real = pygments.highlight

    def spy(code: str, lexer: Any, formatter: Any, outfile: Any = None) -> Any:
        seen.append(type(lexer))
        return real(code, lexer, formatter, outfile)

    monkeypatch.setattr(pygments, "highlight", spy)
    for code, ranges in SOURCES:
        _tbhighlight.highlight_with_ranges(formatter(), code, ranges)
    assert len(seen) == len(SOURCES)
    assert len(set(seen)) == 1
    assert "_tokens" in seen[0].__dict__  # pygments' tables, built for this class and kept


def test_a_failing_highlight_gives_the_plain_source(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("pygments failed")

    monkeypatch.setattr(pygments, "highlight", broken)
    assert _tbhighlight.highlight_with_ranges(formatter(), "a = 1\nb = 2\n", [(0, 1)]) == [
        "a = 1",
        "b = 2",
    ]


def test_install_replaces_only_the_expected_function(original: Any) -> None:
    stack_data.core._pygmented_with_ranges = original  # type: ignore[attr-defined]
    assert _tbhighlight.install()
    assert stack_data.core._pygmented_with_ranges is _tbhighlight.highlight_with_ranges  # type: ignore[attr-defined]
    assert _tbhighlight.install()  # a second time changes nothing

    def other(formatter: Any, code: str) -> list[str]:
        return []

    stack_data.core._pygmented_with_ranges = other  # type: ignore[attr-defined]
    assert not _tbhighlight.install()
    assert stack_data.core._pygmented_with_ranges is other  # type: ignore[attr-defined]


def test_a_kernels_traceback_is_highlighted_as_ipykernels(kernel: KernelPair) -> None:
    wire = BlockingClient(kernel[1])
    done = wire.run("def tb_inner():\n    raise ValueError('boom')\n\ntb_inner()\n")
    assert done.status == "error", done.reply
    text = "\n".join(done.reply["traceback"])
    assert "ValueError: boom" in text.replace("\x1b[31mValueError\x1b[39m", "ValueError")
    # The frames' source went through the lexer: keywords and strings carry pygments' colours
    # (ipykernel 7.4's traceback of this cell has these same sequences).
    assert "\x1b[38;5;28;01mdef\x1b[39;00m tb_inner():" in text
    assert "\x1b[38;5;28;01mraise\x1b[39;00m ValueError(\x1b[33m'boom'\x1b[39m)" in text


def test_threads_that_build_the_lexer_at_once_all_highlight_correctly(original: Any) -> None:
    # Tracebacks are rendered on the threads where cells fail; the first ones may build the
    # shared class's token tables at the same moment.
    code, ranges = SOURCES[1]
    expected = original(formatter(), code, ranges)
    for _ in range(5):
        _tbhighlight._marking_lexer.cache_clear()  # a class whose tables nobody built yet
        start = threading.Barrier(8)
        results: list[list[str]] = []

        def render(start: threading.Barrier, results: list[list[str]]) -> None:
            start.wait(timeout=10)
            results.append(_tbhighlight.highlight_with_ranges(formatter(), code, ranges))

        threads = [threading.Thread(target=render, args=(start, results)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert results == [expected] * 8
