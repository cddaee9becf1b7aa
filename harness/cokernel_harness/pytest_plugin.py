"""A pytest plugin: the ``frontend`` fixture, a :class:`~cokernel_harness.frontend.Frontend`
on a freshly launched kernel, once per kernelspec named with ``--harness-kernel``.

Installed with cokernel (entry point ``pytest11``), so any project's suite can use it::

    import pytest

    @pytest.mark.anyio
    async def test_cell_prints(frontend):
        run = await frontend.run("print('hi')")
        assert run.stdout == "hi\\n"

``pytest --harness-kernel python3 --harness-kernel cokernel`` runs each such test against both
kernels (default: ``cokernel``). The fixture is async, so tests using it need an async runner:
anyio's plugin (``@pytest.mark.anyio``, as above) is what it is written for; ``harness_kernel``
gives the kernelspec name alone. Nothing here runs unless a test asks for these fixtures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cokernel_harness.frontend import Frontend

OPTION = "--harness-kernel"
DEFAULT_KERNEL = "cokernel"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cokernel-harness", "simulated Jupyter frontends (cokernel_harness)")
    group.addoption(
        OPTION,
        action="append",
        default=None,
        metavar="NAME",
        help=f"kernelspec the `frontend` fixture launches (repeatable; default {DEFAULT_KERNEL})",
    )


def harness_kernels(config: pytest.Config) -> list[str]:
    """The kernelspecs named on the command line, or the default."""
    named: list[str] | None = config.getoption(OPTION)
    return list(dict.fromkeys(named)) if named else [DEFAULT_KERNEL]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Parametrise only tests that use the fixtures, each kernel its own test id.
    if "harness_kernel" in metafunc.fixturenames:
        kernels = harness_kernels(metafunc.config)
        metafunc.parametrize("harness_kernel", kernels, ids=kernels, indirect=True)


@pytest.fixture
def harness_kernel(request: pytest.FixtureRequest) -> str:
    """The kernelspec name this test runs against."""
    return str(getattr(request, "param", harness_kernels(request.config)[0]))


@pytest.fixture
async def frontend(harness_kernel: str, anyio_backend: object) -> AsyncIterator[Frontend]:
    """A Frontend on a new kernel of ``harness_kernel``; the kernel is stopped afterwards."""
    from cokernel_harness.frontend import Frontend

    async with Frontend.launch(harness_kernel) as fe:
        yield fe
