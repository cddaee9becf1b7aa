"""What a handler sees of its kernel (:class:`KernelHost`), and the handler table.

Handlers are registered in a :class:`HandlerTable`: message type -> run mode, lane and
function. The kernel receives the table (from whoever builds it: the application, the callback
interface) instead of importing the handlers, so the handlers depend on the kernel only through
the :class:`KernelHost` protocol, and the kernel not at all on them.

A handler returns its reply's content (or a :class:`Reply`); the kernel sends busy, that reply
(or an error reply if the handler raised) and idle. Handlers of messages that are not requests
(``comm_msg`` & co.) return None.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from cokernel.engine._dispatch import RunMode
from cokernel.protocol._messages import Channel

if TYPE_CHECKING:
    from cokernel.debugger._debugger import Debugger
    from cokernel.engine._subshells import SubshellRegistry
    from cokernel.options import KernelOptions
    from cokernel.protocol._request import Request
    from cokernel.shell._comms import KernelCommManager
    from cokernel.shell._shell import CokernelShell
    from cokernel.shell._streams import StreamRouter


@dataclass
class Reply:
    """A reply with more than content: its metadata, and what to do once it has been sent."""

    content: dict[str, Any]
    metadata: dict[str, Any] | None = None
    then: Callable[[], None] | None = None


Answer: TypeAlias = "dict[str, Any] | Reply | None"
HandlerFn: TypeAlias = "Callable[[KernelHost, Request], Answer | Awaitable[Answer]]"


@dataclass(frozen=True)
class Handler:
    """How one message type is served: by ``fn``, in run mode ``mode``, in lane ``lane``."""

    fn: HandlerFn
    mode: RunMode
    lane: str
    control_only: bool = False  # served on the control channel only


@dataclass(frozen=True)
class HandlerTable(Mapping[str, Handler]):
    """msg_type -> :class:`Handler`; the same on shell and control unless ``control_only``."""

    handlers: Mapping[str, Handler] = field(default_factory=dict)

    def __getitem__(self, msg_type: str) -> Handler:
        return self.handlers[msg_type]

    def __iter__(self) -> Iterator[str]:
        return iter(self.handlers)

    def __len__(self) -> int:
        return len(self.handlers)

    def route(self, channel: Channel, msg_type: str) -> Handler | None:
        """The handler of ``msg_type`` on ``channel``; None if it is not served there."""
        handler = self.handlers.get(msg_type)
        if handler is None or (handler.control_only and channel is Channel.shell):
            return None
        return handler


class KernelHost(Protocol):
    """The kernel as its handlers use it. (:class:`~cokernel.kernel._kernel.Kernel` is one.)"""

    @property
    def shell(self) -> CokernelShell | None: ...
    @property
    def options(self) -> KernelOptions: ...
    @property
    def threads(self) -> bool: ...
    @property
    def backend_detail(self) -> str: ...
    @property
    def connection_info(self) -> dict[str, Any]: ...
    @property
    def debugger(self) -> Debugger: ...
    @property
    def comm_manager(self) -> KernelCommManager: ...
    @property
    def subshells(self) -> SubshellRegistry: ...
    @property
    def streams(self) -> StreamRouter | None: ...

    last_execute: Request | None

    def publish(
        self,
        msg_type: str,
        content: dict[str, Any],
        parent: Request | None,
        metadata: dict[str, Any] | None = None,
        buffers: list[bytes] | None = None,
    ) -> None: ...

    def interrupt(self) -> int: ...

    def request_shutdown(self, restart: bool) -> None: ...

    def abort_queued(self, request: Request) -> None: ...

    def is_aborted(self, request: Request) -> bool: ...

    def drain_fd_output(self) -> None: ...
