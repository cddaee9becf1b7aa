"""The shape of the code: layers, cycles and sizes, read from the source with ``ast``.

- kernel/cokernel is made of layers, one folder each (``LAYERS``, lowest first). A module may
  import modules of its own layer and of lower ones, never of a higher one; docs/design.md opens
  with the same table (checked here).
- No two modules import each other, directly or through others (imports inside functions and
  under ``TYPE_CHECKING`` count: they are the same dependency, only later).
- No module is over ``MAX_MODULE_LINES`` lines, no function over ``MAX_FUNCTION_LINES``: in the
  kernel, the harness and the scenario library (``SIZED_PACKAGES``).
- harness/ and scenarios/ speak only the protocol: they import nothing from cokernel.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "kernel" / "cokernel"

# (layer, the modules it is made of: a folder, or top-level modules), lowest first.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("options", ("cokernel.options",)),
    ("protocol", ("cokernel.protocol",)),
    ("engine", ("cokernel.engine",)),
    ("gui", ("cokernel.gui",)),
    ("shell", ("cokernel.shell",)),
    ("debugger", ("cokernel.debugger",)),
    ("kernel", ("cokernel.kernel",)),
    ("interfaces", ("cokernel.interfaces",)),
    (
        "entry",
        (
            "cokernel",
            "cokernel.__main__",
            "cokernel.app",
            "cokernel.cli",
            "cokernel.kernelspec",
            "cokernel.launcher",
            "cokernel.testing",
            "cokernel.tracing",
        ),
    ),
]

MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: Path) -> dict[str, Path]:
    return {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}


def imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    """Every module name ``tree`` imports (at any depth: functions, TYPE_CHECKING blocks)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                if not is_package:
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            for alias in node.names:
                yield f"{base}.{alias.name}"  # a submodule, if there is one by that name


def import_graph(package: Path) -> dict[str, set[str]]:
    found = modules(package)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for target in imported(tree, name, path.name == "__init__.py"):
            # "from cokernel.x import y" names module cokernel.x.y when there is one, else x.
            if target in found and target != name:
                targets.add(target)
        # "from cokernel.x import y" also counts as importing cokernel.x only when y is not a
        # module: drop a package whose submodule was named by the same statement.
        graph[name] = {
            t for t in targets if not any(o.startswith(t + ".") for o in targets) or t == "cokernel"
        }
    return graph


def layer_of(module: str) -> int:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer index)
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or module.startswith(member + "."):
                if member == "cokernel" and module != "cokernel":
                    continue  # the package's own __init__ only
                if best is None or len(member) > best[0]:
                    best = (len(member), index)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (and design.md)")
    return best[1]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_every_module_has_a_layer() -> None:
    for name in modules(PACKAGE):
        layer_of(name)


def test_no_import_cycles() -> None:
    assert find_cycles(import_graph(PACKAGE)) == []


def test_no_upward_imports() -> None:
    upward = [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in sorted(import_graph(PACKAGE).items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(source)
    ]
    assert upward == []


def test_the_checks_see_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    pkg = tmp_path / "cokernel"
    (pkg / "shell").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "shell" / "__init__.py").write_text("")
    (pkg / "shell" / "_a.py").write_text("from cokernel.shell import _b\n")
    (pkg / "shell" / "_b.py").write_text(
        "def f():\n    from cokernel.shell._a import x\n    from cokernel.kernel import _k\n"
    )
    (pkg / "kernel").mkdir()
    (pkg / "kernel" / "__init__.py").write_text("")
    (pkg / "kernel" / "_k.py").write_text("")
    graph = import_graph(pkg)
    assert find_cycles(graph) == [["cokernel.shell._a", "cokernel.shell._b"]]
    assert "cokernel.kernel._k" in graph["cokernel.shell._b"]
    assert layer_of("cokernel.kernel._k") > layer_of("cokernel.shell._b")


def test_design_doc_opens_with_the_layer_map() -> None:
    """docs/design.md's first table lists the layers in the order above, lowest first, and
    says of each what it may import: exactly the layers below it."""
    text = (ROOT / "docs" / "design.md").read_text()
    table = re.search(r"^\| layer \|.*?\n((?:\|.*\n)+)", text, re.M)
    assert table is not None, "docs/design.md has no layer map (| layer | ... |)"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.group(1).splitlines()
        if not set(line) <= set("|- ")
    ]
    assert [row[0].strip("`") for row in rows] == [name for name, _ in LAYERS]
    for index, row in enumerate(rows):
        members = re.findall(r"`([^`]+)`", row[1])
        expected = [m.removeprefix("cokernel.").replace(".", "/") for m in LAYERS[index][1]]
        assert [m.rstrip("/").removesuffix(".py") for m in members] == [
            e if e != "cokernel" else "__init__" for e in expected
        ], row
        may_import = re.findall(r"`([^`]+)`", row[3])
        assert may_import == [name for name, _ in LAYERS[:index]], row


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


#: Every package the size rule covers: the kernel, the harness and the scenario library.
SIZED_PACKAGES = (
    PACKAGE,
    ROOT / "harness" / "cokernel_harness",
    ROOT / "scenarios" / "cokernel_scenarios",
)


@pytest.mark.parametrize("package", SIZED_PACKAGES, ids=lambda p: p.name)
def test_sizes(package: Path) -> None:
    too_big = []
    for name, path in modules(package).items():
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{name}: {lines} lines")
        for fn in _functions(ast.parse(source)):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_big.append(f"{name}.{fn.name} (line {fn.lineno}): {length} lines")
    assert too_big == []


@pytest.mark.parametrize("folder", ["harness", "scenarios"])
def test_harness_and_scenarios_import_no_kernel(folder: str) -> None:
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for target in imported(tree, module_name(path, ROOT / folder), path.name == "__init__.py"):
            if target == "cokernel" or target.startswith("cokernel."):
                offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    assert sorted(set(offenders)) == []
