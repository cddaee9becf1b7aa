"""Simulated widgets: the browser's side of the ipywidgets comm protocol (version 2.1.0).

A kernel creates a widget by opening a comm with target ``jupyter.widget``; the open message
carries the model's whole state (binary parts as buffers, placed by ``buffer_paths``) and
``metadata.version`` (the protocol version). From then on both sides exchange ``comm_msg``
whose ``data.method`` says what they mean:

==============  ==============  ===========================================================
method          direction       meaning
==============  ==============  ===========================================================
update          both            new values for some attributes (``state``, ``buffer_paths``)
echo_update     kernel → page   the kernel's copy of values the page just set (ipywidgets 8)
request_state   page → kernel   ask for the whole state (answered by an ``update``)
custom          both            an application message (``content``), outside the state
==============  ==============  ===========================================================

:class:`Widgets` keeps a :class:`WidgetModel` mirror of every widget the kernel opened, read
from the Frontend's log, and sends what a page would: :meth:`Widgets.set_state` is dragging a
slider. Waits are bounded and fail like the Frontend's (:class:`WaitTimeout`).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cokernel_harness.frontend import Frontend
from cokernel_harness.messages import Received, WaitTimeout
from cokernel_harness.profiles import FrontendProfile

WIDGET_TARGET = "jupyter.widget"
PROTOCOL_VERSION = "2.1.0"
# The widget manager's control comm (ipywidgets 8): one request for every widget's state.
CONTROL_TARGET = "jupyter.widget.control"
CONTROL_PROTOCOL_VERSION = "1.0.0"
# How long the manager waits for the control comm's answer before it falls back.
CONTROL_TIMEOUT = 4.0

__all__ = [
    "CONTROL_TARGET",
    "PROTOCOL_VERSION",
    "WIDGET_TARGET",
    "WidgetModel",
    "Widgets",
    "put_buffers",
    "remove_buffers",
]


def put_buffers(state: dict[str, Any], buffer_paths: list[list[Any]], buffers: list[Any]) -> None:
    """Place each binary buffer into ``state`` at its path (in place), as ipywidgets does."""
    for path, buffer in zip(buffer_paths, buffers, strict=False):
        target: Any = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = bytes(buffer)


def remove_buffers(state: dict[str, Any]) -> tuple[dict[str, Any], list[list[Any]], list[bytes]]:
    """Split binary values out of ``state``: (state without them, their paths, the buffers)."""
    paths: list[list[Any]] = []
    buffers: list[bytes] = []

    def split(value: Any, path: list[Any]) -> Any:
        if isinstance(value, bytes | bytearray | memoryview):
            paths.append(path)
            buffers.append(bytes(value))
            return None
        if isinstance(value, dict):
            return {k: split(v, [*path, k]) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [split(v, [*path, i]) for i, v in enumerate(value)]
        return value

    return split(state, []), paths, buffers


@dataclass
class WidgetModel:
    """The page's copy of one kernel widget."""

    comm_id: str
    state: dict[str, Any]
    version: str | None = None
    closed: bool = False
    custom: list[dict[str, Any]] = field(default_factory=list)  # custom contents from the kernel
    echoes: int = 0  # echo_update messages received
    updates: int = 0  # update messages received (after the open)
    # Attributes this page set and whose echo has not come back yet.
    pending_echo: dict[str, int] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.state.get("_model_name", ""))

    @property
    def value(self) -> Any:
        return self.state.get("value")


class Widgets:
    """The widget manager of one simulated page, over a :class:`Frontend`.

    It reads the Frontend's log lazily (every call catches up), so it can be created at any
    time and sees every widget opened since the Frontend connected. Where its messages go
    (main shell or subshells) is the Frontend's :attr:`~Frontend.profile`; ``profile`` sets it.
    """

    def __init__(self, fe: Frontend, *, profile: str | FrontendProfile | None = None) -> None:
        self.fe = fe
        if profile is not None:
            fe.profile = profile
        self.models: dict[str, WidgetModel] = {}
        self._seen = 0

    # -- mirror ---------------------------------------------------------------------------------
    def sync(self) -> dict[str, WidgetModel]:
        """Apply every widget message logged since the last call; returns :attr:`models`."""
        log = self.fe.log
        while self._seen < len(log):
            message = log[self._seen]
            self._seen += 1
            if message.channel == "iopub":
                self._apply(message)
        return self.models

    def _apply(self, message: Received) -> None:
        content = message.content
        comm_id = content.get("comm_id")
        if not isinstance(comm_id, str):
            return
        buffers = list(message.msg.get("buffers") or [])
        if message.msg_type == "comm_open" and content.get("target_name") == WIDGET_TARGET:
            data = content.get("data") or {}
            state = copy.deepcopy(data.get("state") or {})
            put_buffers(state, data.get("buffer_paths") or [], buffers)
            version = (message.msg.get("metadata") or {}).get("version")
            self.models[comm_id] = WidgetModel(comm_id, state, version)
            return
        model = self.models.get(comm_id)
        if model is None:
            return
        if message.msg_type == "comm_close":
            model.closed = True
        elif message.msg_type == "comm_msg":
            data = content.get("data") or {}
            method = data.get("method")
            if method in ("update", "echo_update"):
                state = copy.deepcopy(data.get("state") or {})
                put_buffers(state, data.get("buffer_paths") or [], buffers)
                if method == "update":
                    model.updates += 1
                    model.state.update(state)
                else:
                    model.echoes += 1
                    self._apply_echo(model, state)
            elif method == "custom":
                model.custom.append(data.get("content") or {})

    @staticmethod
    def _apply_echo(model: WidgetModel, state: dict[str, Any]) -> None:
        # As in @jupyter-widgets/base: an echo of a value this page set acknowledges it and is
        # otherwise ignored (a newer local value may be on its way); echoes of values set by
        # another page update this one.
        for key, value in state.items():
            waiting = model.pending_echo.get(key, 0)
            if waiting:
                if waiting == 1:
                    del model.pending_echo[key]
                else:
                    model.pending_echo[key] = waiting - 1
            else:
                model.state[key] = value

    def get(self, comm_id: str) -> WidgetModel:
        """The model of widget ``comm_id``; KeyError if the kernel never opened it."""
        try:
            return self.sync()[comm_id]
        except KeyError:
            raise KeyError(f"no widget {comm_id!r} was opened by the kernel") from None

    def find(self, model_name: str | None = None) -> list[WidgetModel]:
        """Open widgets, optionally only those whose ``_model_name`` is ``model_name``."""
        return [
            m
            for m in self.sync().values()
            if not m.closed and (model_name is None or m.model_name == model_name)
        ]

    # -- waits ----------------------------------------------------------------------------------
    async def wait_for_model(
        self,
        predicate: Callable[[WidgetModel], bool] = lambda model: True,
        *,
        timeout: float = 30.0,
        what: str = "a widget",
        start: int = 0,
        settled: bool = True,
    ) -> WidgetModel:
        """The first widget opened (from log index ``start``) whose model matches.

        With ``settled`` it returns once the page's profile has the widget's subshell too (as
        a page has by the time a user touches the widget): what the page sends then goes
        where a real page's would.
        """

        def opened(message: Received) -> bool:
            if message.msg_type != "comm_open" or message.content.get("target_name") != (
                WIDGET_TARGET
            ):
                return False
            self.sync()
            model = self.models.get(str(message.content.get("comm_id")))
            return model is not None and predicate(model)

        message = await self.fe.wait_for(opened, timeout=timeout, what=what, start=start)
        model = self.get(str(message.content["comm_id"]))
        if settled:
            await self.fe.comm_ready(model.comm_id, timeout=timeout)
        return model

    @property
    def subshells(self) -> dict[str, str | None]:
        """The subshell each open widget's messages go on now (None: the main shell)."""
        return {c: self.fe.comms.subshell_of(c) for c, m in self.sync().items() if not m.closed}

    async def wait_for_state(
        self,
        comm_id: str,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = 30.0,
        what: str | None = None,
    ) -> WidgetModel:
        """Wait until the mirrored state of ``comm_id`` matches ``predicate``."""
        model = self.get(comm_id)
        if predicate(model.state):
            return model

        def matches(message: Received) -> bool:
            self.sync()
            return message.content.get("comm_id") == comm_id and predicate(model.state)

        await self.fe.wait_for(
            matches,
            timeout=timeout,
            what=what or f"a state update of widget {comm_id}",
            start=self._seen,
        )
        return model

    async def wait_for_echo(self, comm_id: str, *, timeout: float = 30.0) -> WidgetModel:
        """Wait until the kernel echoed every value this page set on ``comm_id``."""
        model = self.get(comm_id)
        if not model.pending_echo:
            return model

        def acknowledged(message: Received) -> bool:
            self.sync()
            return message.content.get("comm_id") == comm_id and not model.pending_echo

        try:
            await self.fe.wait_for(
                acknowledged, timeout=timeout, what=f"echo_update of {comm_id}", start=self._seen
            )
        except WaitTimeout as e:
            raise WaitTimeout(f"{e}\n(still unechoed: {sorted(model.pending_echo)})") from None
        return model

    # -- what a page does when it connects -------------------------------------------------------
    async def load_from_kernel(self, *, timeout: float = 30.0) -> str:
        """Play the widget manager's start-up, as a notebook page does when its kernel connects.

        As ``@jupyter-widgets/base-manager`` (``_loadFromKernel``): open a comm to
        ``jupyter.widget.control`` (metadata version 1.0.0) and send ``request_states``; on the
        answer (``update_states``) mirror every widget, make a comm object for each (which, under
        a JupyterLab profile, gets the ``jupyter.widget`` subshell) and close the control comm.
        If the kernel closes the control comm instead (ipywidgets not imported yet: no such
        target) or stays silent for 4 s, fall back to ``comm_info_request`` for
        ``jupyter.widget`` and a ``request_state`` per listed comm. Returns which path it took:
        ``"control"`` or ``"comm_info"``.
        """
        control = uuid.uuid4().hex
        start = len(self.fe.log)
        self.fe.comm_open(
            CONTROL_TARGET, {}, comm_id=control, metadata={"version": CONTROL_PROTOCOL_VERSION}
        )
        self.fe.comm_msg(control, {"method": "request_states"})

        def answered(message: Received) -> bool:
            return (
                message.channel == "iopub"
                and message.content.get("comm_id") == control
                and message.msg_type in ("comm_msg", "comm_close")
                and (
                    message.msg_type == "comm_close"
                    or (message.content.get("data") or {}).get("method") == "update_states"
                )
            )

        try:
            answer = await self.fe.wait_for(
                answered,
                timeout=min(timeout, CONTROL_TIMEOUT),
                what="the control comm's update_states",
                start=start,
            )
        except WaitTimeout:
            answer = None
        if answer is not None and answer.msg_type == "comm_msg":
            data = answer.content.get("data") or {}
            self._restore(data.get("states") or {}, data.get("buffer_paths") or [], answer)
            self.fe.comm_close(control)
            return "control"
        await self._load_comm_by_comm(timeout=timeout)
        return "comm_info"

    def _restore(self, states: dict[str, Any], paths: list[list[Any]], answer: Received) -> None:
        buffers = list(answer.msg.get("buffers") or [])
        by_widget: dict[str, tuple[list[list[Any]], list[Any]]] = {}
        for path, buffer in zip(paths, buffers, strict=False):
            widget_paths, widget_buffers = by_widget.setdefault(str(path[0]), ([], []))
            widget_paths.append(list(path[1:]))
            widget_buffers.append(buffer)
        self.sync()
        for widget_id, entry in states.items():
            if widget_id in self.models:
                continue
            state = copy.deepcopy(entry.get("state") or {})
            put_buffers(state, *by_widget.get(widget_id, ([], [])))
            self.models[widget_id] = WidgetModel(widget_id, state)
            self.fe.comms.opened(widget_id, WIDGET_TARGET)

    async def _load_comm_by_comm(self, *, timeout: float) -> None:
        reply = await self.fe.request(
            "shell", "comm_info_request", {"target_name": WIDGET_TARGET}, timeout=timeout
        )
        comms = reply.get("comms") if reply.get("status") == "ok" else None
        self.sync()
        unknown = [c for c in comms or {} if c not in self.models]
        requests = {}
        for comm_id in unknown:
            self.fe.comms.opened(comm_id, WIDGET_TARGET)
            requests[comm_id] = self.fe.comm_msg(comm_id, {"method": "request_state"})
        for comm_id, msg_id in requests.items():
            message = await self.fe.wait_for(
                _state_answer(msg_id),
                timeout=timeout,
                what=f"the state of widget {comm_id}",
            )
            data = message.content.get("data") or {}
            state = copy.deepcopy(data.get("state") or {})
            put_buffers(
                state, data.get("buffer_paths") or [], list(message.msg.get("buffers") or [])
            )
            self.models[comm_id] = WidgetModel(comm_id, state)

    # -- what a page sends ----------------------------------------------------------------------
    def set_state(self, comm_id: str, state: dict[str, Any], *, expect_echo: bool = True) -> str:
        """Set attributes as a user would (drag a slider): update locally, send ``update``.

        Returns the comm_msg's msg_id. With ``expect_echo`` the attributes wait for the
        kernel's ``echo_update`` (see :meth:`wait_for_echo`); kernels running ipywidgets 8 send
        one unless ``JUPYTER_WIDGETS_ECHO`` is off.
        """
        model = self.get(comm_id)
        plain, paths, buffers = remove_buffers(state)
        model.state.update(copy.deepcopy(state))
        if expect_echo:
            for key in state:
                model.pending_echo[key] = model.pending_echo.get(key, 0) + 1
        data = {"method": "update", "state": plain, "buffer_paths": paths}
        return self.fe.comm_msg(comm_id, data, buffers=buffers or None)

    def request_state(self, comm_id: str) -> str:
        """Ask the kernel for the whole state of ``comm_id``; it answers with an ``update``."""
        self.get(comm_id)
        return self.fe.comm_msg(comm_id, {"method": "request_state"})

    def send_custom(
        self, comm_id: str, content: dict[str, Any], buffers: list[bytes] | None = None
    ) -> str:
        """Send an application message (``Widget.on_msg`` handlers receive it in the kernel)."""
        self.get(comm_id)
        return self.fe.comm_msg(comm_id, {"method": "custom", "content": content}, buffers=buffers)

    def close(self, comm_id: str) -> str:
        """Close the widget from the page side, as when a frontend discards a model."""
        self.get(comm_id).closed = True
        return self.fe.comm_close(comm_id)


def _state_answer(msg_id: str) -> Callable[[Received], bool]:
    """Match the ``update`` a kernel sends in answer to the ``request_state`` ``msg_id``."""

    def match(m: Received) -> bool:
        data = m.content.get("data") or {}
        return m.parent_id == msg_id and m.msg_type == "comm_msg" and data.get("method") == "update"

    return match
