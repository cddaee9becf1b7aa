"""What the debugger sees of its kernel: :class:`DebugHost`, not the whole Kernel."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from cokernel.engine._caller import Pending
    from cokernel.protocol._request import Request
    from cokernel.shell._shell import CokernelShell

T = TypeVar("T")


class DebugHost(Protocol):
    """The kernel, as the debugger uses it: its shell, iopub, and a worker off the control
    loop. (:class:`~cokernel.kernel._kernel.Kernel` is one.)"""

    @property
    def shell(self) -> CokernelShell | None:
        """The kernel's shell; None before the kernel runs."""

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Request | None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None:
        """Send a message on iopub whose parent is ``parent``'s request."""

    def run_in_worker(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """Run blocking ``fn`` in a worker thread of the control loop (debugpy ignores those,
        unlike anyio's)."""
