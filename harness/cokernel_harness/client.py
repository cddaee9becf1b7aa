"""The harness's blocking message client: every channel in one log, bounded waits, no threads.

:class:`BlockingClient` is the synchronous counterpart of
:class:`~cokernel_harness.frontend.Frontend`, for code that has no event loop to run one in (a
plain pytest test, the bench's timing loops). It speaks the same vocabulary (``send(channel,
msg_type, ...)``, ``execute``, ``run``, ``collect``, ``reply``, ``request``, ``wait_for``),
keeps the same :class:`~cokernel_harness.messages.Received` records, returns the same
:class:`~cokernel_harness.messages.Execution` and fails the same way
(:class:`~cokernel_harness.messages.WaitTimeout`)::

    km, kc = start_kernel()            # any started jupyter_client client
    client = BlockingClient(kc)
    run = client.run("print(6 * 7)")
    assert run.status == "ok" and run.stdout == "42\\n"

``BlockingClient(kc)`` reads the shell, control, iopub and stdin sockets of a started
jupyter_client client. The bench's :class:`~cokernel_harness.bench_wire.Wire` is a
BlockingClient that launches and owns its kernel process instead.

Ordering: the sockets are read by one poll, on the caller's thread, into one list
(:attr:`BlockingClient.log`), each message stamped with :func:`time.perf_counter` as it leaves
its socket (before it is verified and decoded). Within one channel the log follows the kernel's
sending order; across channels it does only for messages sent well apart (each channel is its
own connection, and messages that arrive together on several are logged channel by channel).
:meth:`BlockingClient.index` is a message's place in the log. Nothing is consumed: any number
of waits may look at the same message, and a wait searches what arrived before it began.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import zmq

from cokernel_harness.messages import (
    Execution,
    KernelDied,
    Received,
    WaitTimeout,
    describe,
    execute_content,
)

if TYPE_CHECKING:
    from jupyter_client.client import KernelClient
    from jupyter_client.session import Session

#: The bound of a wait unless the caller gives one (seconds).
DEFAULT_TIMEOUT = 30.0

#: Channels a reply comes on.
REPLY_CHANNELS = ("shell", "control")

#: Messages taken from one socket before the next socket gets its turn, so that a flood on
#: iopub does not delay the stamps of replies waiting on shell or control.
BATCH = 256

#: How long a wait polls before it checks that the kernel process is still alive.
_LIVENESS_INTERVAL = 0.5

Msg = dict[str, Any]
Predicate = Callable[[Received], bool]


class Sent(str):
    """What :meth:`BlockingClient.send` returns: the sent message's ``msg_id`` (it *is* that
    string), with :attr:`time`, the :func:`time.perf_counter` time just before it was sent."""

    time: float

    def __new__(cls, msg_id: str, time: float) -> Sent:
        sent = super().__new__(cls, msg_id)
        sent.time = time
        return sent

    @property
    def msg_id(self) -> str:
        return str(self)


class BlockingClient:
    """A synchronous client of one kernel: sends requests, logs every message it receives.

    ``BlockingClient(kc)`` attaches to the sockets of ``kc``, a started jupyter_client client
    (the client's own ``get_*_msg`` then must not be used: the two would split the messages).
    Subclasses that connect sockets of their own (the bench's ``Wire``) pass no ``kc``.
    """

    def __init__(self, kc: KernelClient | None = None) -> None:
        #: Every message received, in the order this client took them from its sockets.
        self.log: list[Received] = []
        #: The jupyter_client client attached to, if any.
        self.kc = kc
        self.kernel_name = ""
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._poller = zmq.Poller()
        if kc is not None:
            sockets = {}
            for name in ("shell", "control", "iopub", "stdin"):
                socket = getattr(kc, f"{name}_channel").socket
                if socket is None:
                    raise RuntimeError(f"the client's {name} channel is not started")
                sockets[name] = socket
            self._plug(sockets)

    # -- sending ----------------------------------------------------------------------------
    def send(
        self,
        channel: str,
        msg_type: str,
        content: Msg | None = None,
        *,
        subshell_id: str | None = None,
        metadata: Msg | None = None,
        parent: Msg | None = None,
        buffers: list[bytes] | None = None,
    ) -> Sent:
        """Send a message on ``channel`` (to kernel subshell ``subshell_id``, if given)."""
        msg = self._session_of().msg(msg_type, content or {}, parent=parent, metadata=metadata)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        if buffers:
            msg["buffers"] = list(buffers)
        stamp = time.perf_counter()
        self._deliver(channel, msg)
        return Sent(msg["header"]["msg_id"], stamp)

    def execute(
        self,
        code: str,
        *,
        silent: bool = False,
        store_history: bool = True,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        user_expressions: dict[str, str] | None = None,
        channel: str = "shell",
        subshell_id: str | None = None,
        metadata: Msg | None = None,
    ) -> Sent:
        """Send an execute_request; by default as a notebook does (history on, no stdin)."""
        content = execute_content(
            code,
            silent=silent,
            store_history=store_history,
            allow_stdin=allow_stdin,
            stop_on_error=stop_on_error,
            user_expressions=user_expressions,
        )
        return self.send(
            channel, "execute_request", content, subshell_id=subshell_id, metadata=metadata
        )

    def input_reply(self, value: str, *, parent: Msg | None = None) -> Sent:
        """Answer an input_request (``parent``: its message or header) on stdin."""
        return self.send("stdin", "input_reply", {"value": value}, parent=parent)

    # -- waiting ----------------------------------------------------------------------------
    def wait_for(
        self,
        predicate: Predicate,
        timeout: float = DEFAULT_TIMEOUT,
        what: str = "a matching message",
        *,
        start: int = 0,
        after: Received | None = None,
    ) -> Received:
        """The first logged message (from index ``start``, or after ``after``) that matches.

        Receives until one arrives; raises :class:`WaitTimeout` after ``timeout`` seconds, or
        :class:`KernelDied` if the kernel process (when this client knows it) has exited.
        """
        deadline = time.perf_counter() + timeout
        index = start if after is None else self.index(after) + 1
        while True:
            while index < len(self.log):
                arrival = self.log[index]
                index += 1
                if predicate(arrival):
                    return arrival
            left = deadline - time.perf_counter()
            if left <= 0:
                raise WaitTimeout(
                    f"timed out after {timeout:g} s waiting for {what}\n{self.describe()}"
                )
            if not self._pump(min(left, _LIVENESS_INTERVAL)) and not self._alive():
                raise KernelDied(f"kernel {self.kernel_name!r} exited while awaiting {what}")

    def reply_message(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The reply (on shell or control) to request ``msg_id``, as received."""
        return self.wait_for(
            lambda r: r.parent_id == msg_id and r.channel in REPLY_CHANNELS,
            timeout=timeout,
            what=f"the reply to {msg_id}",
        )

    def reply(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Msg:
        """The content of the reply to request ``msg_id``."""
        return self.reply_message(msg_id, timeout=timeout).content

    def status(self, msg_id: str, state: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The iopub ``status`` message ``state`` ("busy", "idle") of request ``msg_id``."""
        return self.wait_for(
            lambda r: (
                r.channel == "iopub"
                and r.parent_id == msg_id
                and r.msg_type == "status"
                and r.content.get("execution_state") == state
            ),
            timeout=timeout,
            what=f"status {state} of {msg_id}",
        )

    def finish(self, msg_id: str, timeout: float = DEFAULT_TIMEOUT) -> tuple[Received, Received]:
        """Block until the reply to ``msg_id`` and its idle status have both arrived (within
        ``timeout`` seconds in all); return them (reply, idle)."""
        deadline = time.perf_counter() + timeout
        reply = self.reply_message(msg_id, timeout=timeout)
        idle = self.status(msg_id, "idle", timeout=max(deadline - time.perf_counter(), 0.0))
        return reply, idle

    def iopub(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[Received]:
        """The iopub messages of request ``msg_id`` (status included) up to its idle."""
        end = self.index(self.status(msg_id, "idle", timeout=timeout))
        return [r for r in self.log[: end + 1] if r.channel == "iopub" and r.parent_id == msg_id]

    def collect(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Execution:
        """The reply to request ``msg_id`` and its outputs: its iopub messages other than
        status, up to its idle (later ones, from threads it started, are in :attr:`log`)."""
        reply = self.reply(msg_id, timeout=timeout)
        outputs = [r for r in self.iopub(msg_id, timeout=timeout) if r.msg_type != "status"]
        return Execution(msg_id, reply, outputs)

    def run(self, code: str, *, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> Execution:
        """Execute ``code`` (``options`` as for :meth:`execute`); wait for its reply and idle."""
        return self.collect(self.execute(code, **options), timeout=timeout)

    def request(
        self,
        channel: str,
        msg_type: str,
        content: Msg | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        subshell_id: str | None = None,
    ) -> Msg:
        """Send a request; return its reply's content once its idle has arrived as well."""
        msg_id = self.send(channel, msg_type, content, subshell_id=subshell_id)
        reply, _ = self.finish(msg_id, timeout)
        return reply.content

    def input_request(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The (first) input_request that request ``msg_id`` sent on stdin."""
        return self.wait_for(
            lambda r: r.channel == "stdin" and r.parent_id == msg_id,
            timeout=timeout,
            what=f"the input_request of {msg_id}",
        )

    def quiet(self, silence: float = 0.05, limit: float = 5.0) -> None:
        """Receive until nothing has arrived for ``silence`` seconds (at most ``limit``), then
        :meth:`forget` everything received."""
        deadline = time.perf_counter() + limit
        while time.perf_counter() < deadline and self._pump(silence):
            pass
        self.forget()

    # -- the log ----------------------------------------------------------------------------
    def forget(self) -> None:
        """Empty :attr:`log`; later waits only see what arrives from now on (and indices into
        the old log mean nothing any more)."""
        self.log.clear()

    def find(self, predicate: Predicate) -> list[Received]:
        """Every message logged so far that matches (receives nothing new)."""
        return [r for r in self.log if predicate(r)]

    def index(self, message: Received) -> int:
        """The place of ``message`` (this very record) in :attr:`log`: its order of arrival."""
        for place in range(len(self.log) - 1, -1, -1):
            if self.log[place] is message:
                return place
        raise ValueError("the message is not in this client's log")

    def describe(self, last: int = 15) -> str:
        """The last messages received, one line each, for failure messages."""
        lines = [describe(r) for r in self.log[-last:]] or ["(none)"]
        return "last messages received:\n  " + "\n  ".join(lines)

    def __iter__(self) -> Iterator[Received]:
        return iter(self.log)

    # -- sockets ----------------------------------------------------------------------------
    def _session_of(self) -> Session:
        if self.kc is None:
            raise RuntimeError("this client is not connected to a kernel")
        session: Session = self.kc.session
        return session

    def _deliver(self, channel: str, msg: Msg) -> None:
        self._session_of().send(self._sockets[channel], msg)

    def _alive(self) -> bool:
        """Whether the kernel may still answer; a client attached to ``kc`` cannot tell."""
        return True

    def _plug(self, sockets: dict[str, zmq.Socket[bytes]]) -> None:
        self._sockets = sockets
        for socket in sockets.values():
            self._poller.register(socket, zmq.POLLIN)

    def _pump(self, timeout: float) -> bool:
        """Receive whatever arrives within ``timeout`` seconds into :attr:`log`; return
        whether anything did."""
        ready = dict(self._poller.poll(round(max(timeout, 0.0) * 1000)))
        if not ready:
            return False
        raw: list[tuple[str, list[bytes], float]] = []
        for channel, socket in self._sockets.items():
            if socket not in ready:
                continue
            for _ in range(BATCH):
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                raw.append((channel, frames, time.perf_counter()))
        # Decode only after every waiting message has its stamp.
        session = self._session_of()
        for channel, frames, stamp in raw:
            _, body = session.feed_identities(frames, copy=True)
            self.log.append(Received(channel, session.deserialize(body), stamp))
        return True
