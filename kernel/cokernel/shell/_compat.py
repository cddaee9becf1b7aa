"""The ipykernel-compatible surface of the shell, and the parent-request helpers the kernel's
(:mod:`cokernel.kernel._compat`) shares: what libraries reach for on ``get_ipython()``.

Widely used code talks to the kernel object directly, not only through the protocol:

- ipywidgets' ``Output`` widget asks ``kernel.get_parent()`` (and the shell's ``get_parent``/
  ``set_parent``) which request is running, and stores its ``msg_id``: the frontend then moves
  every output with that parent into the widget;
- nbclient's update-display-id notebook sends its own messages with
  ``kernel.session.send(kernel.iopub_socket, msg_type, content, parent=ip.parent_header)``;
- older libraries call ``kernel.send_response(kernel.iopub_socket, ...)``.

cokernel keeps "the request being served" in a context variable
(:data:`cokernel.protocol._request.current_request`) instead of ipykernel's per-channel attributes, so it
is right in tasks, threads and comm handlers as well: ``get_parent()`` reads it, ``set_parent()``
sets it for the code that calls it (and what that code starts). The list of what is offered
and what is not is in docs/compatibility.md.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping
from typing import Any

from cokernel.protocol._messages import Channel, Message
from cokernel.protocol._request import Request, current_request

OUTPUT_TYPES = frozenset(
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
    from cokernel.shell._cells import current_cell

    cell = current_cell.get()
    if cell is not None:
        cell.parent = request


class ShellCompat:
    """Mixed into :class:`cokernel.shell._shell.CokernelShell`: ipykernel's ``ZMQInteractiveShell``
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
