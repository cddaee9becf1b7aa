"""IPython's static input transformations, skipped for a cell they cannot change.

Before a cell runs, IPython rewrites its text (``TransformerManager.transform_cell``): blank
leading lines and a common indentation go, ``>>>`` and ``In [1]:`` prompts are stripped,
``%%magic`` cells, ``%magic`` and ``!cmd`` lines (also after ``x =``), ``obj?`` help and the
``,``/``;``/``/`` autocall escapes become calls. It tokenizes the whole cell with the pure-Python
tokenizer to find them: for ``x=1``, about a tenth of the kernel's main-thread time in a stream
of pipelined cells (py-spy, GIL samples).

Most cells have none of that syntax. :class:`QuickTransformerManager` looks for the characters
each default transformation needs, with one regular expression; where none is present, the
transformations would return the text unchanged (plus a final newline), and so does it. Any
other cell, and every cell once a transformation was added, removed or replaced (an extension,
a profile), goes through IPython's code. The equivalence is property-tested against IPython's
own manager (tests/shell/test_transform.py). The dynamic transformations (``prefilter``:
autocall, automagic) depend on the namespace and always run.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from IPython.core.inputtransformer2 import TransformerManager

__all__ = ["QuickTransformerManager"]

# What any default transformation acts on (IPython.core.inputtransformer2), and more:
# - `%`, `!`, `?`: magics, cell magics, shell commands, help (also `x = %magic`, `x = !cmd`);
# - `>>>`, `In [`, `...:`: pasted prompts (the doctest and IPython strippers);
# - a line starting with `,`, `;` or `/` after indentation: the autocall escapes;
# - a line of spaces and tabs only: the dedent step rewrites it as an empty line;
# - line breaks other than `\n` (str.splitlines breaks at them, the checks above do not).
_MAY_TRANSFORM = re.compile(
    "[%!?]|>>>|In \\[|\\.\\.\\.:|^[ \\t]*[,;/]|^[ \\t]+$|[\\r\\x0b\\x0c\\x1c-\\x1e\\x85\\u2028\\u2029]",
    re.MULTILINE,
)

_DEFAULT = TransformerManager()


def _same(current: list[Any], default: list[Any]) -> bool:
    # perf: map over operator.is_ runs in C; a generator expression costs a frame per item
    return len(current) == len(default) and all(map(operator.is_, current, default))


class QuickTransformerManager(TransformerManager):  # type: ignore[misc]
    """IPython's manager, answering at once for a cell no default transformation changes."""

    def transform_cell(self, cell: str) -> str:
        if (
            cell
            and not cell[0].isspace()  # no leading blank line, no indentation to remove
            and _MAY_TRANSFORM.search(cell) is None
            and self.has_default_transformations()
        ):
            return cell if cell.endswith("\n") else cell + "\n"
        result: str = super().transform_cell(cell)
        return result

    def has_default_transformations(self) -> bool:
        """Whether the transformation lists are IPython's defaults, none added or replaced."""
        return (
            _same(self.cleanup_transforms, _DEFAULT.cleanup_transforms)
            and _same(self.line_transforms, _DEFAULT.line_transforms)
            and _same(self.token_transformers, _DEFAULT.token_transformers)
        )
