"""The list of intended differences between cokernel and ipykernel on the corpus.

``intended.toml`` holds one ``[[difference]]`` table per cell that is meant to differ:

- ``notebook``, ``cell``: the notebook's file stem and the cell's id;
- ``backends`` (optional): the cokernel backends it applies to (both when absent);
- ``what``: the difference, in one line;
- ``why``: the reason it is intended;
- ``cokernel``: what cokernel shows for that cell, as the runner's normalized JSON, with error
  tracebacks cut to the cell's own frames and the last line (:func:`pin_view`; library frames
  would tie the list to one Python version). The test checks cokernel shows exactly this, so a
  listed cell cannot hide a new difference.

``python tests/differential/intended.py`` rewrites the section of docs/compatibility.md that
renders this list; the test fails when the two disagree.
"""

from __future__ import annotations

import json
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
INTENDED = HERE / "intended.toml"
DOCS = HERE.parent.parent / "docs" / "compatibility.md"
HEADING = "## Differential corpus: intended differences"
BACKENDS = ("asyncio", "trio")


@dataclass(frozen=True)
class Difference:
    notebook: str
    cell: str
    backends: tuple[str, ...]
    what: str
    why: str
    cokernel: Any

    @property
    def key(self) -> tuple[str, str]:
        return (self.notebook, self.cell)


def load(path: Path = INTENDED) -> list[Difference]:
    """Read and check the list: known keys, known backends, one entry per cell and backend."""
    data = tomllib.loads(path.read_text())
    unknown_top = set(data) - {"difference"}
    if unknown_top:
        raise ValueError(f"{path.name}: unknown top-level keys {sorted(unknown_top)}")
    entries = []
    seen: set[tuple[str, str, str]] = set()
    for number, raw in enumerate(data.get("difference", []), 1):
        where = f"{path.name}, difference #{number}"
        extra = set(raw) - {"notebook", "cell", "backends", "what", "why", "cokernel"}
        missing = {"notebook", "cell", "what", "why", "cokernel"} - set(raw)
        if extra or missing:
            raise ValueError(f"{where}: unknown keys {sorted(extra)}, missing {sorted(missing)}")
        backends = tuple(raw.get("backends", BACKENDS))
        if not set(backends) <= set(BACKENDS) or not backends:
            raise ValueError(f"{where}: backends must be a non-empty subset of {BACKENDS}")
        for backend in backends:
            slot = (raw["notebook"], raw["cell"], backend)
            if slot in seen:
                raise ValueError(f"{where}: {slot} is listed twice")
            seen.add(slot)
        entries.append(
            Difference(
                notebook=raw["notebook"],
                cell=raw["cell"],
                backends=backends,
                what=" ".join(raw["what"].split()),
                why=" ".join(raw["why"].split()),
                cokernel=pin_view(json.loads(raw["cokernel"])),
            )
        )
    return entries


def pin_view(view: Any) -> Any:
    """``view`` with every error traceback cut to its ``Cell In[N]`` frames and its last line."""
    pinned = json.loads(json.dumps(view))
    lists = [pinned.get("outputs", []), *pinned.get("widgets", {}).values()]
    for outputs in lists:
        for output in outputs:
            if output.get("output_type") == "error" and output.get("traceback"):
                trace = output["traceback"]
                output["traceback"] = [
                    line for line in trace[:-1] if line.startswith("Cell In[N]")
                ] + [trace[-1]]
    return pinned


def for_backend(entries: list[Difference], backend: str) -> dict[tuple[str, str], Difference]:
    return {entry.key: entry for entry in entries if backend in entry.backends}


def toml_entry(notebook: str, cell: str, view: Any, backends: tuple[str, ...] = BACKENDS) -> str:
    """A ready-to-edit ``[[difference]]`` block for a cell (printed by a failing test)."""
    lines = ["[[difference]]", f'notebook = "{notebook}"', f'cell = "{cell}"']
    if backends != BACKENDS:
        lines.append("backends = [" + ", ".join(f'"{b}"' for b in backends) + "]")
    lines += ['what = "..."', 'why = """..."""']
    pinned = json.dumps(pin_view(view), indent=1, ensure_ascii=False)
    lines.append("cokernel = '''\n" + pinned + "\n'''")
    return "\n".join(lines)


def render(entries: list[Difference]) -> str:
    """The docs section: the heading, how the corpus works, and one row per difference."""
    rows = [
        HEADING,
        "",
        "`tests/differential/` runs a corpus of small notebooks (`notebooks/*.ipynb`, built by",
        "`build_notebooks.py`) with nbclient on cokernel (both backends) and on ipykernel, and",
        "compares every cell's outputs after normalizing addresses, timings, execution counts,",
        "temporary paths, cell file names, widget model ids, ANSI colours and the kernels' own",
        "traceback frames. A cell may differ only if it is listed below (from",
        "`tests/differential/intended.toml`, which also pins what cokernel shows); the test fails",
        "on any other difference, and on a listed one that no longer occurs. It runs in CI on",
        "both backends; ipykernel runs once (`DIFFERENTIAL_IPYKERNEL_CACHE`). A failing cell",
        "prints both views and a ready-to-edit `[[difference]]` block; `DIFFERENTIAL_DUMP=FILE`",
        "writes every cell's normalized view on both kernels. papermill runs a parameterized",
        "notebook on cokernel in `tests/differential/test_papermill.py`.",
        "",
        "| notebook / cell | backends | what differs | why |",
        "| --- | --- | --- | --- |",
    ]
    for entry in sorted(entries, key=lambda e: (e.notebook, e.cell, e.backends)):
        backends = ", ".join(entry.backends) if entry.backends != BACKENDS else "both"
        rows.append(
            f"| `{entry.notebook}` / `{entry.cell}` | {backends} | {_cell(entry.what)} "
            f"| {_cell(entry.why)} |"
        )
    if not entries:
        rows.append("| — | — | none | — |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def docs_section(text: str) -> str | None:
    """The section under :data:`HEADING` in ``text``, up to the next heading of level 1 or 2."""
    start = text.find(HEADING + "\n")
    if start < 0:
        return None
    end = len(text)
    for marker in ("\n## ", "\n# "):
        found = text.find(marker, start + len(HEADING))
        if found >= 0:
            end = min(end, found + 1)
    return text[start:end]


def write_docs(entries: list[Difference], path: Path = DOCS) -> None:
    section = render(entries)
    text = path.read_text() if path.exists() else "# Compatibility with ipykernel\n\n"
    current = docs_section(text)
    if current is None:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text[text.index(current) + len(current) :]
        text = text[: text.index(current)] + section + ("\n" if following else "") + following
    path.write_text(text)


def main() -> None:
    write_docs(load())
    print(f"wrote the intended differences into {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
