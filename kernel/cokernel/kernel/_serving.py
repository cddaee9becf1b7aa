"""Serving: busy, exactly one reply, idle, for every request whatever its run mode (mixed into
:class:`~cokernel.kernel._kernel.Kernel`).

A handler returns its reply's content, a :class:`~cokernel.kernel._host.Reply`, or None (messages
that are not requests); :meth:`Serving._end` sends that reply, or an error reply if the handler
raised or gave none.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import anyio

from cokernel.kernel._host import HandlerFn, KernelHost, Reply
from cokernel.protocol._backlog import ShellBacklog
from cokernel.protocol._request import Request, current_request
from cokernel.shell import _warmup as warmup
from cokernel.shell._comms import KernelComms, current_comms

if TYPE_CHECKING:
    from cokernel.options import KernelOptions
    from cokernel.shell._shell import CokernelShell
    from cokernel.shell._streams import StreamRouter

log = logging.getLogger("cokernel")

_Tokens = tuple["contextvars.Token[Request | None]", "contextvars.Token[KernelComms | None]"]


class Serving:
    # Supplied by Kernel.
    options: KernelOptions
    streams: StreamRouter | None
    shell: CokernelShell | None
    _warm_pending: bool
    _last_served: float  # time.monotonic() of the last request begun or ended
    _comms: KernelComms | None
    backlog: ShellBacklog

    if TYPE_CHECKING:  # supplied by Kernel; declared here for the type checker only

        def _status(self, state: str, request: Request) -> None: ...

        def reply(
            self,
            request: Request,
            content: dict[str, Any],
            metadata: dict[str, Any] | None = None,
        ) -> None: ...

    # busy -> outputs -> exactly one reply -> idle, for every request, whatever the run mode.
    def _serve_sync(self, fn: HandlerFn, request: Request) -> None:
        tokens = self._begin(request)
        answer: Any = None
        failure: Exception | None = None
        try:
            answer = fn(cast(KernelHost, self), request)
            if inspect.iscoroutine(answer):  # an async handler run in thread mode: its own loop
                answer = anyio.run(_await, answer, backend=self.options.backend)
        except Exception as e:
            failure = e
        finally:
            self._end(request, tokens, answer, failure)

    async def _serve_async(self, fn: HandlerFn, request: Request) -> None:
        tokens = self._begin(request)
        answer: Any = None
        failure: Exception | None = None
        try:
            answer = fn(cast(KernelHost, self), request)
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as e:
            failure = e
        finally:
            self._end(request, tokens, answer, failure)

    def _begin(self, request: Request) -> _Tokens:
        request.served = True
        self._last_served = time.monotonic()
        self.backlog.release_for(request)
        # The handler, and the cells, tasks and threads it starts, know their request and
        # their kernel's comms.
        tokens = (current_request.set(request), current_comms.set(self._comms))
        self._status("busy", request)
        return tokens

    def _end(
        self,
        request: Request,
        tokens: _Tokens,
        answer: Any,
        failure: Exception | None,
    ) -> None:
        """Send the one reply (the handler's answer, or an error if it raised), then idle."""
        try:
            after = self._reply_with(request, answer, failure)
            if after is not None:
                after()
        except Exception:
            log.exception("answering %s failed", request.msg_type)
        finally:
            if self.streams is not None:
                self.streams.flush(request)
            self._last_served = time.monotonic()
            if self._warm_pending and request.msg_type == "execute_request":
                self._warm_pending = False
                shell = self.shell
                if shell is not None:
                    warmup.start(
                        completion=bool(shell.Completer.use_jedi),
                        traceback_style=(shell.InteractiveTB.mode, shell.colors),
                        quiet_for=lambda: time.monotonic() - self._last_served,
                    )
            self._status("idle", request)
            current_request.reset(tokens[0])
            current_comms.reset(tokens[1])

    def _reply_with(
        self, request: Request, answer: Any, failure: Exception | None
    ) -> Callable[[], None] | None:
        if failure is not None:
            log.error("%s handler failed", request.msg_type, exc_info=failure)
        if not request.msg_type.endswith("_request"):
            return None  # comm_msg & co. are never answered
        if failure is None and isinstance(answer, Reply):
            self.reply(request, answer.content, answer.metadata)
            return answer.then
        if failure is None and isinstance(answer, dict):
            self.reply(request, answer)
            return None
        if failure is None:
            failure = TypeError(f"the {request.msg_type} handler gave no reply content")
            log.error("%s", failure)
        self.reply(
            request,
            {
                "status": "error",
                "ename": type(failure).__name__,
                "evalue": str(failure),
                "traceback": traceback.format_exception(failure),
            },
        )
        return None


async def _await(coro: Any) -> Any:
    return await coro
