"""A pytest plugin: the ``frontend`` fixture, a :class:`~cokernel_harness.frontend.Frontend`
on a freshly launched kernel, once per kernelspec named with ``--harness-kernel``.

Installed with cokernel (entry point ``pytest11``), so any project's suite can use it::

    import pytest

    @pytest.mark.anyio
    async def test_cell_prints(frontend):
        run = await frontend.run("print('hi')")
        assert run.stdout == "hi\\n"

``pytest --harness-kernel python3 --harness-kernel cokernel`` runs each such test against both
kernels, or the ini option does it for every run (``harness_kernel = cokernel python3`` under
``[pytest]``; the command line wins). A name is a kernelspec, launched over ZMQ, or a
registered in-process transport (cokernel's ``inprocess``, ``inprocess:trio``). The fixture is
async, so tests using it need an async runner: anyio's plugin (``@pytest.mark.anyio``, as
above) is what it is written for; ``harness_kernel`` gives the kernel's name alone.

The plugin is inert in projects that do not ask for it: with no kernel named it parametrises
nothing and launches nothing, and a test that asks for ``frontend`` anyway fails with a message
saying how to name one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cokernel_harness.frontend import Frontend

OPTION = "--harness-kernel"
INI = "harness_kernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cokernel-harness", "simulated Jupyter frontends (cokernel_harness)")
    group.addoption(
        OPTION,
        action="append",
        default=None,
        metavar="NAME",
        help=f"kernel the `frontend` fixture starts (repeatable; overrides the {INI} ini option)",
    )
    parser.addini(
        INI,
        type="args",
        default=[],
        help="kernels the `frontend` fixture starts (kernelspec or in-process transport names)",
    )


def harness_kernels(config: pytest.Config) -> list[str]:
    """The kernels named on the command line, else in the ini file; empty if none is."""
    named: list[str] | None = config.getoption(OPTION)
    if not named:
        named = list(config.getini(INI))
    return list(dict.fromkeys(named))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrise only tests that use the fixtures, each kernel its own test id.
    kernels = harness_kernels(metafunc.config)
    if kernels and "harness_kernel" in metafunc.fixturenames:
        metafunc.parametrize("harness_kernel", kernels, ids=kernels, indirect=True)


@pytest.fixture
def harness_kernel(request: pytest.FixtureRequest) -> str:
    """The kernel this test runs against."""
    name = getattr(request, "param", None)
    if name is None:
        raise pytest.UsageError(
            f"{request.node.nodeid} uses the cokernel_harness fixtures but no kernel is named: "
            f"pass {OPTION} NAME, or set `{INI} = NAME` in the [pytest] ini section"
        )
    return str(name)


@pytest.fixture
async def frontend(harness_kernel: str, anyio_backend: object) -> AsyncIterator[Frontend]:
    """A Frontend on a new kernel of ``harness_kernel``; the kernel is stopped afterwards."""
    from cokernel_harness.frontend import Frontend

    async with Frontend.launch(harness_kernel) as fe:
        yield fe
