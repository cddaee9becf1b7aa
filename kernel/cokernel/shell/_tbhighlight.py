"""Highlighted tracebacks without rebuilding a lexer for every frame.

IPython renders a colored traceback through stack_data, which highlights each frame's source with
a lexer that marks the executing node. stack_data (0.6) defines that lexer as a new subclass of
pygments' Python lexer on every call, and pygments prepares a lexer class's token tables on the
class's first instance: about 5.5 ms, paid again for every frame of every traceback (a three-frame
error costs 17 ms before anything is shown; a busy-loop interrupt, 9 ms of its reply's wait).

:func:`install` replaces stack_data's highlighter with one whose marking lexer class is made
once per process, so pygments builds its tables once. The output is the same: the same tokens,
those inside the executing ranges turned into their ``ExecutingNode`` subtype, the same fallback
to plain source when pygments fails. It is installed only where stack_data's function has the
expected name and parameters; another stack_data keeps its own.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

log = logging.getLogger("cokernel")

__all__ = ["highlight_with_ranges", "install"]

_EXPECTED_PARAMETERS = ["formatter", "code", "ranges"]


@functools.cache
def _marking_lexer() -> Any:
    """A subclass of pygments' Python lexer marking the tokens that start inside its instance's
    ranges (made once: pygments builds a class's token tables at its first instance)."""
    from pygments.lexers import get_lexer_by_name

    base: Any = type(get_lexer_by_name("python3"))  # the class stack_data subclasses

    class MarkingLexer(base):  # type: ignore[misc]
        def __init__(self, ranges: Sequence[tuple[int, int]], **options: Any) -> None:
            super().__init__(**options)
            self.marked_ranges = ranges

        def get_tokens(self, text: str, unfiltered: bool = False) -> Iterator[tuple[Any, str]]:
            offset = 0
            ranges = self.marked_ranges
            for kind, value in super().get_tokens(text, unfiltered):
                if any(start <= offset < end for start, end in ranges):
                    kind = kind.ExecutingNode
                offset += len(value)
                yield kind, value

    MarkingLexer.__qualname__ = MarkingLexer.__name__ = f"Marking{base.__name__}"
    return MarkingLexer


def highlight_with_ranges(
    formatter: Any, code: str, ranges: Sequence[tuple[int, int]]
) -> list[str]:
    """``code`` highlighted by ``formatter``, ``ranges`` marked as the executing node; lines."""
    import pygments

    lexer = _marking_lexer()(ranges, stripnl=False)
    try:
        highlighted: str = pygments.highlight(code, lexer, formatter)
    except Exception:  # pygments failed: the source unhighlighted beats no traceback
        highlighted = code
    return highlighted.splitlines()


def install() -> bool:
    """Put :func:`highlight_with_ranges` in stack_data's place; False where it does not fit."""
    try:
        import stack_data.core
    except ImportError:
        return False
    original: Callable[..., Any] | None = getattr(stack_data.core, "_pygmented_with_ranges", None)
    if original is None or original is highlight_with_ranges:
        return original is highlight_with_ranges
    try:
        parameters = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return False
    if parameters != _EXPECTED_PARAMETERS:
        log.debug("stack_data's highlighter takes %s: left as it is", parameters)
        return False
    stack_data.core._pygmented_with_ranges = highlight_with_ranges
    return True
