"""The request a piece of code is running for, carried in a context variable.

Output, display, stdin and comm messages take their parent header from :data:`current_request`,
which follows tasks (anyio copies contexts into new tasks) and threads started by a cell (the
kernel patches :class:`threading.Thread` to start in the starter's context).
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cokernel.protocol import Channel, Message


@dataclass(eq=False)
class Request:
    """One received message and what the kernel learns while serving it."""

    channel: Channel
    identities: list[bytes]
    msg: Message
    received: float = field(default_factory=time.monotonic)
    error: dict[str, Any] | None = None
    served: bool = False  # a handler started on it (else it may still need an answer)
    held: int | None = None  # wire bytes counted in the shell backlog until it starts

    @property
    def header(self) -> dict[str, Any]:
        return self.msg["header"]

    @property
    def msg_type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def msg_id(self) -> str:
        return str(self.msg["header"]["msg_id"])

    @property
    def content(self) -> dict[str, Any]:
        return self.msg["content"]

    @property
    def subshell_id(self) -> str | None:
        value = self.msg["header"].get("subshell_id")
        return value if isinstance(value, str) else None

    @property
    def subshell_id_valid(self) -> bool:
        """Whether ``header.subshell_id`` is absent, null or a string (anything else is bad)."""
        value = self.msg["header"].get("subshell_id")
        return value is None or isinstance(value, str)

    @property
    def allow_stdin(self) -> bool:
        return self.msg_type == "execute_request" and bool(self.content.get("allow_stdin", True))

    @property
    def silent(self) -> bool:
        """A silent execute: the protocol says it broadcasts no output on iopub."""
        return self.msg_type == "execute_request" and bool(self.content.get("silent", False))


current_request: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "cokernel_current_request", default=None
)

_original_start = threading.Thread.start
_original_bootstrap_inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]


def _start(self: threading.Thread) -> None:
    self._cokernel_request = current_request.get()  # type: ignore[attr-defined]
    _original_start(self)


def _bootstrap_inner(self: threading.Thread) -> None:
    request: Request | None = getattr(self, "_cokernel_request", None)
    if request is not None:
        current_request.set(request)
    _original_bootstrap_inner(self)


def propagate_context_to_threads() -> None:
    """Make every thread start knowing the request its starter served (idempotent).

    Python threads start with an empty context; a cell's background thread would otherwise
    lose track of the cell it belongs to and its prints would land in the wrong output area.
    Only :data:`current_request` is carried over, not the whole context: a copied context
    would also carry the starter's "an event loop runs here" markers (sniffio, anyio), and a
    thread that starts its own loop would then be refused.
    """
    threading.Thread.start = _start  # type: ignore[method-assign]
    threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[attr-defined]
