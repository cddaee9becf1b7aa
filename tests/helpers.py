"""Talk to real kernel processes over ZMQ through jupyter_client, and wait on their messages.

Everything here waits on messages, never on the clock: each wait has a bound (``timeout``) and
fails with a diagnosis (what never came, the last messages that did) when the bound is hit.

- :func:`start_kernel` / :func:`stop_kernel` launch and end one kernel process, optionally from a
  kernelspec with extra command-line options written to a temporary directory.
- :class:`Wire` receives from every channel of one client in a single ordered log, so a test can
  assert the order in which replies and outputs arrived across channels.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import zmq
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

from cokernel_harness.messages import WaitTimeout

KERNEL_NAME = "cokernel"
DEFAULT_TIMEOUT = 30.0
STARTUP_TIMEOUT = 60.0
REPLY_CHANNELS = ("shell", "control")
CHANNELS = ("shell", "control", "iopub", "stdin")

Msg = dict[str, Any]


# -- kernel processes ----------------------------------------------------------------------------
#: A started kernel and its client (fixtures in tests/conftest.py yield these).
KernelPair = tuple[KernelManager, BlockingKernelClient]


def write_kernelspec(directory: Path, name: str, extra_argv: list[str]) -> KernelSpecManager:
    """Write a copy of the installed cokernel kernelspec with ``extra_argv`` appended.

    Returns a KernelSpecManager that looks only in ``directory``, so nothing is installed where
    other tests or the user would see it.
    """
    base = KernelSpecManager().get_kernel_spec(KERNEL_NAME).to_dict()
    base["argv"] = [sys.executable, *base["argv"][1:], *extra_argv]
    base["display_name"] = f"cokernel test ({' '.join(extra_argv)})"
    spec_dir = directory / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    (spec_dir / "kernel.json").write_text(json.dumps(base, indent=1))
    return KernelSpecManager(kernel_dirs=[str(directory)])


def start_kernel(
    kernel_name: str = KERNEL_NAME, *, kernel_spec_manager: KernelSpecManager | None = None
) -> tuple[KernelManager, BlockingKernelClient]:
    """Start a kernel process and return its manager and a client whose channels are ready."""
    extra: dict[str, Any] = {}
    if kernel_spec_manager is not None:
        extra["kernel_spec_manager"] = kernel_spec_manager
    km = KernelManager(kernel_name=kernel_name, **extra)
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=STARTUP_TIMEOUT)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def stop_kernel(km: KernelManager, kc: BlockingKernelClient) -> None:
    """Close the client and shut the kernel down (by request; killed if it does not comply)."""
    kc.stop_channels()
    if km.has_kernel:
        km.shutdown_kernel(now=False)
    else:
        km.cleanup_resources()


def kernel_pid(km: KernelManager) -> int:
    """The process id of the kernel ``km`` launched."""
    process = getattr(km.provisioner, "process", None)
    assert process is not None, "the kernel manager has no local kernel process"
    return int(process.pid)


def wait_for_exit(km: KernelManager, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Block until the kernel process of ``km`` exits; returns its exit status."""
    process = getattr(km.provisioner, "process", None)
    assert process is not None, "the kernel manager has no local kernel process"
    return int(process.wait(timeout=timeout))


# -- one ordered log of everything a client receives --------------------------------------------
@dataclass
class Received:
    """One message as it arrived: its position in the client's log and its channel."""

    seq: int
    channel: str
    msg: Msg

    @property
    def msg_type(self) -> str:
        return str(self.msg["header"]["msg_type"])

    @property
    def parent_id(self) -> str | None:
        parent = self.msg.get("parent_header") or {}
        value = parent.get("msg_id")
        return str(value) if value else None

    def __repr__(self) -> str:
        content = json.dumps(self.msg.get("content"), default=str)
        if len(content) > 120:
            content = content[:117] + "..."
        return f"#{self.seq} {self.channel} {self.msg_type} (parent {self.parent_id}) {content}"


@dataclass
class Execution:
    """The reply to one execute_request and the iopub messages of that request."""

    reply: Msg
    iopub: list[Msg] = field(default_factory=list)

    @property
    def content(self) -> Msg:
        return dict(self.reply["content"])

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    def of_type(self, msg_type: str) -> list[Msg]:
        return [m for m in self.iopub if m["header"]["msg_type"] == msg_type]

    @property
    def stdout(self) -> str:
        return "".join(
            m["content"]["text"] for m in self.of_type("stream") if m["content"]["name"] == "stdout"
        )


class Wire:
    """Sends requests through a BlockingKernelClient and logs every message it receives.

    All four channels (shell, control, iopub, stdin) are read by one poll loop into one log, so
    ``seq`` numbers give the order in which this client saw messages, across channels. Nothing is
    consumed: any number of waits may look at the same message.

    Within one channel ``seq`` follows the kernel's sending order. Across channels it does only
    for messages sent well apart: each channel is its own connection, and messages that arrive
    together on several are logged channel by channel.
    """

    def __init__(self, kc: BlockingKernelClient) -> None:
        self.kc = kc
        self.log: list[Received] = []
        self._seq = itertools.count()
        self._channels = {
            "shell": kc.shell_channel,
            "control": kc.control_channel,
            "iopub": kc.iopub_channel,
            "stdin": kc.stdin_channel,
        }
        self._poller = zmq.Poller()
        self._by_socket: dict[zmq.Socket[bytes], str] = {}
        for name, channel in self._channels.items():
            assert channel.socket is not None, f"the {name} channel is not started"
            self._poller.register(channel.socket, zmq.POLLIN)
            self._by_socket[channel.socket] = name

    # -- sending ---------------------------------------------------------------------------
    def send(
        self,
        msg_type: str,
        content: Msg | None = None,
        *,
        channel: str = "shell",
        metadata: Msg | None = None,
        parent: Msg | None = None,
        subshell_id: str | None = None,
    ) -> str:
        """Send one message on ``channel`` (to ``subshell_id``, if given); returns its msg_id."""
        msg = self.kc.session.msg(msg_type, content or {}, parent=parent, metadata=metadata)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self._channels[channel].send(msg)
        return str(msg["header"]["msg_id"])

    def execute(
        self,
        code: str,
        *,
        channel: str = "shell",
        silent: bool = False,
        store_history: bool = True,
        allow_stdin: bool = False,
        stop_on_error: bool = True,
        metadata: Msg | None = None,
        subshell_id: str | None = None,
    ) -> str:
        """Send an execute_request; returns its msg_id."""
        content = {
            "code": code,
            "silent": silent,
            "store_history": store_history,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self.send(
            "execute_request", content, channel=channel, metadata=metadata, subshell_id=subshell_id
        )

    def answer_input(self, input_request: Msg, value: str) -> str:
        """Send the input_reply to ``input_request`` on the stdin channel."""
        return self.send(
            "input_reply", {"value": value}, channel="stdin", parent=input_request["header"]
        )

    # -- receiving -------------------------------------------------------------------------
    def pump(self, timeout: float) -> bool:
        """Receive what arrives within ``timeout`` seconds (at least one poll); True if any."""
        ready = dict(self._poller.poll(max(int(timeout * 1000), 0)))
        got = False
        for sock in ready:
            channel = self._channels[self._by_socket[sock]]
            while True:
                try:
                    msg = channel.get_msg(timeout=0)
                except Empty:
                    break
                self.log.append(Received(next(self._seq), self._by_socket[sock], msg))
                got = True
        return got

    def wait_for(
        self,
        predicate: Callable[[Received], bool],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        what: str = "a matching message",
        after: int = -1,
    ) -> Received:
        """The first logged message (with ``seq > after``) matching ``predicate``.

        Receives until one arrives; raises the harness's :class:`WaitTimeout` (an
        AssertionError) after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for item in self.log[checked:]:
                if item.seq > after and predicate(item):
                    return item
            checked = len(self.log)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"no {what} within {timeout:g} s\n{self.describe()}")
            self.pump(left)

    def find(self, predicate: Callable[[Received], bool]) -> list[Received]:
        """Every message logged so far that matches ``predicate`` (receives nothing new)."""
        return [item for item in self.log if predicate(item)]

    def reply(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The reply (on shell or control) whose parent is ``msg_id``."""
        return self.wait_for(
            lambda r: r.channel in REPLY_CHANNELS and r.parent_id == msg_id,
            timeout=timeout,
            what=f"reply to {msg_id}",
        )

    def status(self, msg_id: str, state: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The iopub ``status`` message ``state`` whose parent is ``msg_id``."""
        return self.wait_for(
            lambda r: (
                r.channel == "iopub"
                and r.parent_id == msg_id
                and r.msg_type == "status"
                and r.msg["content"]["execution_state"] == state
            ),
            timeout=timeout,
            what=f"status {state} for {msg_id}",
        )

    def iopub(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> list[Msg]:
        """The iopub messages whose parent is ``msg_id``, up to and including its ``idle``."""
        idle = self.status(msg_id, "idle", timeout=timeout)
        return [
            item.msg
            for item in self.log
            if item.channel == "iopub" and item.parent_id == msg_id and item.seq <= idle.seq
        ]

    def input_request(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Received:
        """The input_request a cell (``msg_id``) sent on stdin."""
        return self.wait_for(
            lambda r: r.channel == "stdin" and r.parent_id == msg_id,
            timeout=timeout,
            what=f"input_request of {msg_id}",
        )

    def result(self, msg_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Execution:
        """The reply and the iopub messages (through idle) of request ``msg_id``."""
        reply = self.reply(msg_id, timeout=timeout)
        return Execution(reply.msg, self.iopub(msg_id, timeout=timeout))

    def run(self, code: str, *, timeout: float = DEFAULT_TIMEOUT, **options: Any) -> Execution:
        """Execute ``code`` and wait for its reply and its idle."""
        return self.result(self.execute(code, **options), timeout=timeout)

    def request(
        self,
        msg_type: str,
        content: Msg | None = None,
        *,
        channel: str = "shell",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Msg:
        """Send a request and return its reply message (after its idle arrived as well)."""
        msg_id = self.send(msg_type, content, channel=channel)
        reply = self.reply(msg_id, timeout=timeout)
        self.status(msg_id, "idle", timeout=timeout)
        return reply.msg

    def describe(self, last: int = 15) -> str:
        """The last messages received, for failure messages."""
        lines = [repr(item) for item in self.log[-last:]]
        return "last messages received:\n  " + ("\n  ".join(lines) if lines else "(none)")

    def __iter__(self) -> Iterator[Received]:
        return iter(self.log)
