"""IPython display machinery speaking the Jupyter protocol.

``display()``, ``update_display`` and ``clear_output`` become ``display_data``,
``update_display_data`` and ``clear_output`` messages; a cell's last expression becomes
``execute_result``. Each goes to the request of the code that produced it, after that request's
buffered stream output, so the order a person sees is the order the code ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from traitlets import Any as AnyTrait

from cokernel.protocol._request import Request, current_request

Publish = Callable[[str, dict[str, Any], "Request | None"], None]


class KernelDisplayPublisher(DisplayPublisher):  # type: ignore[misc]
    publish_msg = AnyTrait(help="callable(msg_type, content, parent) sending on iopub")
    flush_streams = AnyTrait(help="callable() sending the current request's buffered streams")
    wait_for_room = AnyTrait(
        None, help="callable() run first: waits while the outbox is full (producer backpressure)"
    )

    def publish(
        self,
        data: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        source: Any = None,
        *,
        transient: dict[str, Any] | None = None,
        update: bool = False,
        **kwargs: Any,
    ) -> None:
        wait_for_room = self.wait_for_room  # read once: a trait lookup costs a microsecond
        if wait_for_room is not None:
            wait_for_room()
        self._validate_data(data, metadata)
        self.flush_streams()
        content = {"data": data, "metadata": metadata or {}, "transient": transient or {}}
        msg_type = "update_display_data" if update else "display_data"
        self.publish_msg(msg_type, content, current_request.get())

    def clear_output(self, wait: bool = False) -> None:
        wait_for_room = self.wait_for_room  # read once: a trait lookup costs a microsecond
        if wait_for_room is not None:
            wait_for_room()
        self.flush_streams()
        self.publish_msg("clear_output", {"wait": bool(wait)}, current_request.get())


class KernelDisplayHook(DisplayHook):  # type: ignore[misc]
    """Sends a cell's result as ``execute_result`` with that cell's execution count."""

    publish_msg = AnyTrait()
    flush_streams = AnyTrait()
    cell_number = AnyTrait(help="callable() -> the running cell's execution count, or None")

    @property
    def prompt_count(self) -> int:
        # IPython's is "the shell's counter minus one": with cells running on subshells at the
        # same time, that may be another cell's number. Out[n], _n and _oh use this one too.
        number = self.cell_number() if self.cell_number is not None else None
        return int(number) if number is not None else int(self.shell.execution_count - 1)

    def start_displayhook(self) -> None:
        self._is_active = True

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(
        self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None
    ) -> None:
        self.flush_streams()
        content = {
            "execution_count": self.prompt_count,
            "data": format_dict,
            "metadata": md_dict or {},
        }
        self.publish_msg("execute_result", content, current_request.get())

    def finish_displayhook(self) -> None:
        self._is_active = False
