"""The ipykernel-compatible surface: what libraries reach for on ``get_ipython().kernel``.

Widely used code talks to the kernel object directly, not only through the protocol:

- ipywidgets' ``Output`` widget asks ``kernel.get_parent()`` (and the shell's ``get_parent``/
  ``set_parent``) which request is running, and stores its ``msg_id``: the frontend then moves
  every output with that parent into the widget;
- nbclient's update-display-id notebook sends its own messages with
  ``kernel.session.send(kernel.iopub_socket, msg_type, content, parent=ip.parent_header)``;
- older libraries call ``kernel.send_response(kernel.iopub_socket, ...)``.

cokernel keeps "the request being served" in a context variable
(:data:`cokernel.request.current_request`) instead of ipykernel's per-channel attributes, so it
is right in tasks, threads and comm handlers as well: ``get_parent()`` reads it, ``set_parent()``
sets it for the code that calls it (and what that code starts). The list of what is offered
and what is not is in docs/compatibility.md.
"""

from __future__ import annotations

import logging
import sys
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cokernel.protocol import Channel, Message
from cokernel.request import Request, current_request

if TYPE_CHECKING:
    from cokernel.kernel import Kernel

_OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "update_display_data", "execute_result", "clear_output", "error"}
)


def parent_message(request: Request | None) -> dict[str, Any]:
    """The message dict ipykernel's ``get_parent()`` returns: ``{}`` outside any request."""
    return dict(request.msg) if request is not None else {}


# Requests that set_parent switched away from, by msg_id: switching back finds the original
# object (it collects the cell's error for its reply, and keys its output buffer).
_left: weakref.WeakValueDictionary[str, Request] = weakref.WeakValueDictionary()


def adopt_parent(
    parent: Mapping[str, Any] | None, ident: Any = None, channel: str = "shell"
) -> Request | None:
    """Make ``parent`` (a whole request message) the current request of the calling code.

    A no-op when it already is (ipywidgets sets the parent it has just read): the running
    request keeps its own object, which collects the cell's error for its reply. Returns the
    request now current.
    """
    current = current_request.get()
    header = parent.get("header") if parent else None
    if not isinstance(header, Mapping) or not header.get("msg_id"):
        return current
    if current is not None and current.msg_id == header.get("msg_id"):
        return current
    assert parent is not None
    known = _left.get(str(header.get("msg_id")))
    if current is not None:
        _left[current.msg_id] = current
    sys.stdout.flush()  # what was printed before the switch keeps its parent
    if known is not None:  # back to a request switched away from: its own object again
        _make_current(known)
        return known
    msg: Message = {
        "header": dict(header),
        "parent_header": dict(parent.get("parent_header") or {}),
        "metadata": dict(parent.get("metadata") or {}),
        "content": dict(parent.get("content") or {}),
        "buffers": list(parent.get("buffers") or []),
    }
    if isinstance(ident, bytes):
        identities = [ident]
    elif isinstance(ident, list | tuple):
        identities = [bytes(i) for i in ident]
    else:
        identities = list(current.identities) if current is not None else []
    try:
        kind = Channel(channel)
    except ValueError:
        kind = Channel.shell
    request = Request(kind, identities, msg)
    request.served = True  # never answered by the kernel: only output is parented to it
    _make_current(request)
    return request


def _make_current(request: Request) -> None:
    current_request.set(request)
    # A cell's code runs statement by statement in its shell's context, and the kernel sets
    # the cell's own request at each entry: the choice is kept on the cell so it lasts for
    # the rest of the cell (and no further).
    from cokernel.shell import current_cell

    cell = current_cell.get()
    if cell is not None:
        cell.parent = request


class IOPubSocket:
    """Stands in for ipykernel's ``kernel.iopub_socket``: pass it to ``kernel.session.send``.

    Messages sent through it go out on iopub in order with the cell's buffered stdout/stderr
    (which is flushed first). ``send_multipart`` takes the frames of a message serialised with
    ``kernel.session.serialize`` (signed with the kernel's key), as a zmq socket would.
    """

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel

    def cokernel_send(self, msg: Message, identities: list[bytes] | None) -> None:
        kernel = self._kernel
        msg_type = str(msg["header"].get("msg_type"))
        current = current_request.get()
        parent_id = msg["parent_header"].get("msg_id")
        same = current is not None and current.msg_id == parent_id
        if same and current is not None and current.silent and msg_type in _OUTPUT_TYPES:
            return  # a silent execute broadcasts no output (as Kernel.publish)
        if kernel.streams is not None:
            kernel.streams.flush(current if same else None)
        topic = [f"kernel.{kernel.session.session_id}.{msg_type}".encode()]
        kernel._send(Channel.iopub, msg, identities or topic)

    def send_multipart(self, frames: list[bytes], *args: Any, **kwargs: Any) -> None:
        identities, msg = self._kernel.session.deserialize(list(frames))
        self.cokernel_send(msg, identities)

    def flush(self, *args: Any, **kwargs: Any) -> None:
        """ipykernel's iopub socket can be flushed; cokernel's io thread sends at once."""

    def __repr__(self) -> str:
        return "<cokernel iopub socket>"


class _ParentIdents(Mapping[str, bytes]):
    """``kernel._parent_ident``: the routing identity of the current request, per channel."""

    def __getitem__(self, channel: str) -> bytes:
        request = current_request.get()
        if request is None or str(request.channel) != channel or not request.identities:
            return b""
        return request.identities[0]

    def __iter__(self) -> Iterator[str]:
        return iter(("shell", "control"))

    def __len__(self) -> int:
        return 2


class KernelCompat:
    """Mixed into :class:`cokernel.kernel.Kernel`: the ipykernel ``Kernel`` attributes that
    libraries use. Everything else about the kernel is cokernel's own."""

    # Supplied by Kernel.
    shell: Any
    last_execute: Request | None

    #: ipykernel aborts queued cells with this flag; cokernel's abort works per lane.
    _aborting = False

    @property
    def log(self) -> logging.Logger:
        """The kernel's logger (ipykernel's ``kernel.log``); lines go to the kernel's stderr."""
        return logging.getLogger("cokernel")

    @property
    def iopub_socket(self) -> IOPubSocket:
        found: IOPubSocket | None = self.__dict__.get("_iopub_socket")
        if found is None:
            found = self.__dict__["_iopub_socket"] = IOPubSocket(self)  # type: ignore[arg-type]
        return found

    @property
    def execution_count(self) -> int:
        """The number the next stored cell takes (ipykernel mirrors the shell's counter)."""
        return int(self.shell.execution_count) if self.shell is not None else 0

    def get_parent(self, channel: str | None = None) -> dict[str, Any]:
        """The request message the calling code runs for (``{}`` when none).

        Without ``channel``: the current request, whatever its channel (ipykernel guesses the
        channel from the thread). With one: the current request if it came on that channel;
        for "shell", else the latest main-shell execute, which is also where stray output goes.
        """
        request = current_request.get()
        if channel is None or (request is not None and str(request.channel) == channel):
            if request is None and channel is None:
                return parent_message(self.last_execute)
            return parent_message(request)
        if channel == "shell":
            return parent_message(self.last_execute)
        return {}

    def set_parent(self, ident: Any, parent: Mapping[str, Any], channel: str = "shell") -> None:
        """Parent the calling code's output (and what it starts) to ``parent``."""
        adopt_parent(parent, ident, channel)

    @property
    def _parent_header(self) -> dict[str, Any]:
        # ipykernel < 6 kept the parent request here; some libraries still read it.
        return self.get_parent()

    @property
    def _parent_ident(self) -> Mapping[str, bytes]:
        return _ParentIdents()

    @property
    def shell_handlers(self) -> dict[str, Any]:
        """ipykernel's table of shell handlers, by msg_type (jupyter-ui-poll swaps an entry in
        and back). cokernel routes by :mod:`cokernel.dispatch`: changes here have no effect."""
        table: dict[str, Any] | None = self.__dict__.get("_shell_handlers")
        if table is None:
            from cokernel import handlers

            names = ("execute_request", "comm_open", "comm_msg", "comm_close")
            table = self.__dict__["_shell_handlers"] = {n: getattr(handlers, n) for n in names}
        return table

    def do_one_iteration(self) -> Any:
        """ipykernel handles one queued message here (jupyter-ui-poll calls it).

        cokernel needs no help to handle messages while a cell *awaits*: on the kernel's loop
        this returns an awaitable that lets the loop run once, so ``await poll()`` of
        jupyter-ui-poll's async mode serves comms. Called from another thread (its sync mode,
        while the cell blocks the shell's thread), it cannot: the shell's comm lane runs on the
        blocked loop. It then says so once per cell on stderr instead of spinning silently.
        """
        here = threading.current_thread()
        on_a_shell_loop = (self.shell is not None and here is self.shell.loop_thread) or (
            self.subshells.on_thread(here) is not None  # type: ignore[attr-defined]
        )
        if not on_a_shell_loop:
            self._say_sync_poll_cannot_serve()
            return None
        import anyio

        return anyio.sleep(0.001)

    def _say_sync_poll_cannot_serve(self) -> None:
        from cokernel.shell import current_cell

        cell = current_cell.get()
        if cell is None or getattr(cell, "_said_sync_poll", False):
            return
        cell._said_sync_poll = True  # type: ignore[attr-defined]
        print(
            "cokernel: a synchronous UI poll (jupyter-ui-poll's `with ui_events() as poll`) "
            "cannot serve widget messages here, because the cell blocks the thread whose loop "
            "handles them. Make the cell async instead: `async with ui_events() as poll: "
            "await poll(10)`, or simply `await anyio.sleep(0.05)` in the loop (cokernel serves "
            "comms while a cell awaits).",
            file=sys.stderr,
        )

    def send_response(
        self,
        stream: Any,
        msg_or_type: Any,
        content: dict[str, Any] | None = None,
        ident: Any = None,
        buffers: list[bytes] | None = None,
        track: bool = False,
        header: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
    ) -> Message:
        """Send on ``stream`` with the current request as parent (ipykernel's signature)."""
        session: Any = self.session  # type: ignore[attr-defined]
        result: Message = session.send(
            stream,
            msg_or_type,
            content,
            self.get_parent(channel),
            ident,
            buffers,
            track,
            header,
            metadata,
        )
        return result


class ShellCompat:
    """Mixed into :class:`cokernel.shell.CokernelShell`: ipykernel's ``ZMQInteractiveShell``
    parent API, over :data:`current_request`."""

    kernel: Any = None

    def get_parent(self) -> dict[str, Any]:
        """The request message the calling code runs for (``{}`` when none)."""
        request = current_request.get()
        if request is None and self.kernel is not None:
            request = self.kernel.last_execute
        return parent_message(request)

    def set_parent(self, parent: Mapping[str, Any]) -> None:
        """Parent the calling code's output (and what it starts) to ``parent``."""
        adopt_parent(parent)

    @property
    def parent_header(self) -> dict[str, Any]:
        """ipykernel's shell attribute: the current request message."""
        return self.get_parent()
