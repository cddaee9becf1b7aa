"""The differential corpus: every notebook on cokernel and on ipykernel, compared cell by cell.

Both kernels run the same notebooks with the real nbclient, a few kernels at a time, once per
session (ipykernel's results do not depend on the cokernel backend under test). cokernel is the
``cokernel`` kernelspec, which the suite's conftest points at the backend of
``COKERNEL_TEST_BACKEND``; ipykernel is the one installed in this interpreter's prefix, through a
kernelspec written for this session (see ``runner.ipykernel_spec_manager``).

``DIFFERENTIAL_IPYKERNEL_CACHE=dir`` keeps ipykernel's results in ``dir``, keyed by the
notebooks, the runner, ipykernel's and Python's versions: ci/test.sh sets it so the second
backend axis reuses the first one's reference run.

``DIFFERENTIAL_DUMP=path.json`` writes every cell's normalized view on both kernels to a file.

A cell whose normalized outputs differ must be listed in ``intended.toml`` for this backend, and
cokernel must show exactly what the list pins; a listed cell that no longer differs fails too.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
from pathlib import Path

import pytest

from differential import build_notebooks, intended
from differential.runner import (
    CellResult,
    NotebookResult,
    corpus_paths,
    ipykernel_spec_manager,
    load_results,
    reference_key,
    run_corpus,
    save_results,
)
from helpers import KERNEL_NAME

BACKEND = os.environ.get("COKERNEL_TEST_BACKEND", "asyncio")
PATHS = corpus_paths()
Runs = tuple[dict[str, NotebookResult], dict[str, NotebookResult]]


@pytest.fixture(scope="session")
def corpus_runs(isolated_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """(cokernel results, ipykernel results), by notebook name."""
    root = tmp_path_factory.mktemp("differential")
    specs = ipykernel_spec_manager(root / "ipykernel-spec")

    cache_dir = os.environ.get("DIFFERENTIAL_IPYKERNEL_CACHE")
    cached = Path(cache_dir) / f"ipykernel-{reference_key(PATHS)}.json" if cache_dir else None

    async def reference() -> dict[str, NotebookResult]:
        if cached is not None and cached.exists():
            return load_results(cached)
        results = await run_corpus(
            PATHS, "python3", root / "ipykernel", kernel_spec_manager=specs, reference=True
        )
        if cached is not None and all(result.error is None for result in results.values()):
            save_results(results, cached)
        return results

    async def both() -> Runs:
        return await asyncio.gather(run_corpus(PATHS, KERNEL_NAME, root / "cokernel"), reference())

    runs = asyncio.run(both())
    dump = os.environ.get("DIFFERENTIAL_DUMP")
    if dump:  # every cell's normalized view on both kernels, to study or to write intended.toml
        Path(dump).write_text(
            json.dumps(
                {
                    kernel: {
                        name: {
                            "error": result.error,
                            "seconds": result.seconds,
                            "cell_seconds": result.cell_seconds,
                        }
                        | {cell_id: cell.view() for cell_id, cell in result.cells.items()}
                        for name, result in results.items()
                    }
                    for kernel, results in zip(("cokernel", "ipykernel"), runs, strict=True)
                },
                indent=1,
                ensure_ascii=False,
            )
        )
    return runs


def _pretty(view: object) -> list[str]:
    return json.dumps(view, indent=1, ensure_ascii=False).splitlines()


def _diff(a: object, b: object, a_name: str, b_name: str) -> str:
    return "\n".join(
        difflib.unified_diff(_pretty(b), _pretty(a), fromfile=b_name, tofile=a_name, lineterm="")
    )


def compare(
    notebook: str,
    cokernel: NotebookResult,
    ipykernel: NotebookResult,
    entries: list[intended.Difference],
    backend: str,
) -> list[str]:
    """Every way the notebook's cells break the rule "differ only as intended.toml says"."""
    listed = {
        key: entry
        for key, entry in intended.for_backend(entries, backend).items()
        if key[0] == notebook
    }
    problems = []
    if list(cokernel.cells) != list(ipykernel.cells):
        return [f"{notebook}: the kernels ran different cells: {cokernel.cells} {ipykernel.cells}"]
    for cell_id, theirs in ipykernel.cells.items():
        ours = cokernel.cells[cell_id].view()
        entry = listed.pop((notebook, cell_id), None)
        if ours == theirs.view():
            if entry is not None:
                problems.append(
                    f"{notebook}/{cell_id} is listed as an intended difference ({entry.what}) "
                    f"but now matches ipykernel: remove it from intended.toml and re-render docs"
                )
            continue
        if entry is None:
            problems.append(
                f"{notebook}/{cell_id} differs from ipykernel (- ipykernel, + cokernel):\n"
                + _diff(ours, theirs.view(), "cokernel", "ipykernel")
                + "\nIf intended, list it in intended.toml:\n"
                + intended.toml_entry(notebook, cell_id, ours, (backend,))
            )
        elif intended.pin_view(ours) != entry.cokernel:
            problems.append(
                f"{notebook}/{cell_id} is an intended difference ({entry.what}), but cokernel "
                "no longer shows what intended.toml pins (- pinned, + now):\n"
                + _diff(intended.pin_view(ours), entry.cokernel, "now", "pinned")
            )
    for key in listed:
        problems.append(f"intended.toml lists {key}, a cell the notebook does not have")
    return problems


@pytest.mark.timeout(600)
@pytest.mark.parametrize("notebook", [path.stem for path in PATHS])
def test_notebook_matches_ipykernel(notebook: str, corpus_runs: Runs) -> None:
    cokernel, ipykernel = corpus_runs[0][notebook], corpus_runs[1][notebook]
    assert ipykernel.error is None, f"ipykernel could not run {notebook}: {ipykernel.error}"
    assert cokernel.error is None, f"cokernel could not run {notebook}: {cokernel.error}"
    problems = compare(notebook, cokernel, ipykernel, intended.load(), BACKEND)
    assert not problems, "\n\n".join(problems)


def _result(**cells: list[dict[str, object]]) -> NotebookResult:
    return NotebookResult(
        "nb", "k", {key: CellResult(key, "", outputs) for key, outputs in cells.items()}, 0.0
    )


def _entry(cell: str, pinned: list[dict[str, object]]) -> intended.Difference:
    return intended.Difference("nb", cell, intended.BACKENDS, "what", "why", {"outputs": pinned})


def test_compare_fails_on_unlisted_stale_and_unpinned_differences() -> None:
    """The rule itself: the checks above can fail, in each of the ways they claim."""
    one = [{"output_type": "stream", "name": "stdout", "text": "1\n"}]
    two = [{"output_type": "stream", "name": "stdout", "text": "2\n"}]
    same, differ = _result(a=one, b=one), _result(a=one, b=two)
    assert compare("nb", same, same, [], "asyncio") == []
    [unlisted] = compare("nb", differ, same, [], "asyncio")
    assert "nb/b differs from ipykernel" in unlisted
    assert compare("nb", differ, same, [_entry("b", two)], "trio") == []
    [stale] = compare("nb", same, same, [_entry("b", two)], "asyncio")
    assert "now matches ipykernel" in stale
    [unpinned] = compare("nb", differ, same, [_entry("b", one)], "asyncio")
    assert "no longer shows what intended.toml pins" in unpinned
    [unknown] = compare("nb", same, same, [_entry("c", one)], "asyncio")
    assert "a cell the notebook does not have" in unknown


def test_intended_list_is_rendered_in_docs() -> None:
    entries = intended.load()
    text = intended.DOCS.read_text() if intended.DOCS.exists() else ""
    section = intended.docs_section(text)
    assert section is not None, f"{intended.DOCS} has no '{intended.HEADING}' section"
    assert section.rstrip("\n") == intended.render(entries).rstrip("\n"), (
        "docs/compatibility.md is out of date: run python tests/differential/intended.py"
    )


def test_intended_list_names_cells_of_the_corpus() -> None:
    cells = {
        (notebook.name, cell.id) for notebook in build_notebooks.CORPUS for cell in notebook.cells
    }
    unknown = [entry.key for entry in intended.load() if entry.key not in cells]
    assert not unknown, f"intended.toml names cells the corpus does not have: {unknown}"


def test_notebooks_are_built_from_the_corpus_source() -> None:
    expected = {
        f"{notebook.name}.ipynb": build_notebooks.render(notebook)
        for notebook in build_notebooks.CORPUS
    }
    found = {path.name: path.read_text() for path in PATHS}
    stale = sorted(
        name for name in set(expected) | set(found) if expected.get(name) != found.get(name)
    )
    assert not stale, (
        f"notebooks out of date with build_notebooks.py: {stale}; "
        "run python tests/differential/build_notebooks.py"
    )
