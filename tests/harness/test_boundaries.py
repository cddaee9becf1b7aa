"""The harness speaks only the protocol: it and the scenarios import nothing from the kernel,
and the kernel's in-process transport fits the harness's Transport protocol without importing it.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from cokernel.testing import InProcessTransport
from cokernel_harness.transport import (
    TRANSPORT_GROUP,
    BlockingTransport,
    Transport,
    named_transport,
)

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_ONLY = (ROOT / "harness" / "cokernel_harness", ROOT / "scenarios" / "cokernel_scenarios")


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an ``import`` or ``from ... import`` in ``tree`` names (relative ones
    excepted), wherever the statement is: at the top, in a function, under TYPE_CHECKING."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def kernel_imports(source: str) -> list[tuple[int, str]]:
    return [
        (line, name)
        for line, name in imported_modules(ast.parse(source))
        if name == "cokernel" or name.startswith("cokernel.")
    ]


def test_the_check_sees_every_form_of_import() -> None:
    source = (
        "import cokernel\n"
        "import os, cokernel.options as o\n"
        "from cokernel.testing import InProcessTransport\n"
        "def f():\n    from cokernel import interfaces\n"
        "from cokernel_harness import Frontend\n"
        "import cokernel_scenarios\n"
    )
    assert kernel_imports(source) == [
        (1, "cokernel"),
        (2, "cokernel.options"),
        (3, "cokernel.testing"),
        (5, "cokernel"),
    ]


@pytest.mark.parametrize("package", PROTOCOL_ONLY, ids=lambda p: p.name)
def test_the_harness_and_the_scenarios_import_nothing_from_the_kernel(package: Path) -> None:
    files = sorted(package.rglob("*.py"))
    assert len(files) > 5, f"no sources found under {package}"
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in files
        for line, name in kernel_imports(path.read_text())
    ]
    assert not offenders, "imports of the kernel:\n  " + "\n  ".join(offenders)


def protocol_members(protocol: type) -> set[str]:
    """The attributes and methods a Protocol class and the protocols it extends declare."""
    members: set[str] = set()
    for cls in protocol.__mro__:
        if cls is object or cls is typing.Protocol or cls is typing.Generic:
            continue
        members |= set(getattr(cls, "__annotations__", {}))
        members |= {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}
    return members


def test_the_in_process_transport_has_every_member_of_blocking_transport() -> None:
    transport = InProcessTransport()
    members = protocol_members(BlockingTransport)
    assert protocol_members(Transport) < members
    assert {"session", "interrupt_mode", "receive", "wait_exit"} <= members
    for name in sorted(members):
        assert hasattr(transport, name), f"InProcessTransport lacks {name}"
        wanted = getattr(BlockingTransport, name, None)
        if not callable(wanted):
            continue
        got = getattr(transport, name)
        assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(wanted), name
        wanted_params = list(inspect.signature(wanted).parameters)[1:]  # without self
        assert list(inspect.signature(got).parameters) == wanted_params, name


def test_the_kernel_registers_its_transport_by_name() -> None:
    transport = named_transport("inprocess:trio")
    assert isinstance(transport, InProcessTransport)
    assert transport.backend == "trio"
    assert named_transport("inprocess").backend == "asyncio"  # type: ignore[union-attr]
    assert named_transport("cokernel") is None  # a kernelspec name: left to ZMQ
    assert TRANSPORT_GROUP == "cokernel_harness.transports"


def test_a_bad_backend_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="backend must be one of asyncio, trio"):
        named_transport("inprocess:curio")


def test_the_public_face_names_resolve_to_the_one_client_and_its_failures() -> None:
    import cokernel_harness
    from cokernel_harness import bench_wire, client, frontend, messages

    for name in cokernel_harness.__all__:
        assert getattr(cokernel_harness, name) is not None, name
    assert cokernel_harness.Frontend is frontend.Frontend
    # One blocking client: the bench's kernels are BlockingClients.
    assert cokernel_harness.BlockingClient is client.BlockingClient
    assert issubclass(bench_wire.Wire, client.BlockingClient)
    # One WaitTimeout and one message record, whichever client waits.
    assert frontend.WaitTimeout is bench_wire.WaitTimeout is client.WaitTimeout
    assert client.WaitTimeout is messages.WaitTimeout
    assert bench_wire.Received is frontend.Received is client.Received is cokernel_harness.Received
    assert client.Execution is frontend.Execution is cokernel_harness.Execution
    assert issubclass(cokernel_harness.WaitTimeout, AssertionError)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = cokernel_harness.Nope


def test_loading_the_pytest_plugin_imports_neither_zmq_nor_the_harness_proper() -> None:
    # pytest loads the plugin in every project where cokernel is installed.
    code = (
        "import sys, cokernel_harness.pytest_plugin\n"
        "heavy = [m for m in ('zmq', 'jupyter_client', 'cokernel_harness.frontend',"
        " 'cokernel_scenarios', 'cokernel') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
