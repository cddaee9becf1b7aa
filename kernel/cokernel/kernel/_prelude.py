"""The first reply before the rest of the kernel: what a kernel process serves while it starts.

A frontend waits for the first ``kernel_info_reply`` before it shows a kernel as ready. That
reply needs no shell, no IPython and no event loop, only a few facts about the process, so
``cokernel start`` binds its sockets and serves a :class:`Prelude` first (this module imports
nothing heavy), then imports and builds the kernel. Meanwhile the prelude:

- answers ``kernel_info_request`` (shell or control) at once, with busy/idle around it, with
  the very content the kernel's own handler gives (:func:`kernel_info_content`);
- keeps every other message, in arrival order, and hands them to the kernel as soon as it has
  started (:meth:`Prelude.hand_over`), then forwards everything to it. Nothing is lost and the
  order of a channel's messages is kept: a ``kernel_info_request`` that arrives while others
  are kept waits its turn with them, so it never overtakes an earlier request.

A process that cannot start threads (``COKERNEL_NO_THREADS``) answers nothing early: the
prelude keeps every message for the kernel.
"""

from __future__ import annotations

import os
import platform
import sys
import threading
from collections.abc import Callable
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from cokernel.options import KernelOptions
from cokernel.protocol._backlog import ShellBacklog
from cokernel.protocol._messages import PROTOCOL_VERSION, Channel, Message, Session

if TYPE_CHECKING:
    from cokernel.kernel._kernel import Kernel

Send = Callable[[Channel, Message, "list[bytes] | None"], None]

__all__ = ["Prelude", "backend_detail", "dist_version", "kernel_info_content"]


def dist_version(name: str) -> str | None:
    """The installed version of distribution ``name``, read from its ``*.dist-info``
    directory name on ``sys.path`` (as importlib.metadata does, without importing it and the
    email, zipfile and csv modules it needs); None if not found."""
    wanted = name.lower().replace("-", "_")
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for found in names:
            stem, dot, ext = found.rpartition(".")
            if not dot or ext != "dist-info":
                continue
            dist, _, version = stem.partition("-")
            if dist.lower().replace("-", "_").replace(".", "_") == wanted and version:
                return version
    return None


def _versions() -> tuple[str, str]:
    cokernel = dist_version("cokernel") or "0.1.0"  # a source tree that is not installed
    ipython = dist_version("ipython")
    if ipython is None:  # not in a dist-info directory: ask IPython itself
        import IPython

        ipython = IPython.__version__
    return cokernel, ipython


_VERSIONS: tuple[str, str] | None = None


def versions() -> tuple[str, str]:
    """(cokernel's version, IPython's version), looked up once."""
    global _VERSIONS
    if _VERSIONS is None:
        _VERSIONS = _versions()
    return _VERSIONS


def backend_detail(options: KernelOptions) -> str:
    """How the kernel's loop will run, as kernel_info's banner says it, known before it runs:
    the backend, uvloop where it will be used, the GUI host."""
    if options.host is not None:
        from cokernel.gui import describe_hosted

        return describe_hosted(options.backend, options.host)
    if options.backend == "asyncio" and options.use_uvloop and find_spec("uvloop") is not None:
        return "asyncio (uvloop)"
    return options.backend


def kernel_info_content(*, threads: bool, debugger: bool, backend: str) -> dict[str, Any]:
    """The content of cokernel's kernel_info_reply."""
    cokernel, ipython = versions()
    features: list[str] = ["kernel subshells"] if threads else []
    if debugger:
        features.append("debugger")
    return {
        "status": "ok",
        "protocol_version": PROTOCOL_VERSION,
        "implementation": "cokernel",
        "implementation_version": cokernel,
        "language_info": {
            "name": "python",
            "version": platform.python_version(),
            "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
            "pygments_lexer": "ipython3",
            "nbconvert_exporter": "python",
            "file_extension": ".py",
        },
        "banner": (
            f"Python {sys.version.split()[0]} | cokernel {cokernel} on "
            f"{backend} | IPython {ipython}\n"
            "Concurrent: comms, completion and control stay live while cells run.\n"
        ),
        "help_links": [
            {"text": "Python", "url": "https://docs.python.org/3/"},
            {"text": "IPython", "url": "https://ipython.readthedocs.io/en/stable/"},
        ],
        "debugger": debugger,
        "supported_features": features,
    }


def _threads_forbidden() -> bool:
    # As cokernel.engine._caller.threads_available (not imported here: it is heavy) forbids them.
    return os.environ.get("COKERNEL_NO_THREADS", "") not in ("", "0")


class Prelude:
    """Serves an interface until the kernel has started (see the module docstring).

    It has what an interface uses of a kernel: ``started``, ``publish``, ``receive`` and
    ``backlog``: kept shell messages count in the shell backlog (so a flood while the kernel
    starts is bounded too), which the kernel takes over.
    """

    def __init__(self, options: KernelOptions, session: Session, send: Send) -> None:
        self.session = session
        self._send = send
        self.started = threading.Event()
        self.started.set()  # the interface may serve at once
        self._lock = threading.Lock()
        self._kept: list[tuple[Channel, list[bytes], Message, int]] = []
        # Requests answered here, for the kernel's recorder (--record): they all came before
        # the first kept message, since one kept message ends the early answers.
        self._answered: list[tuple[Channel, Message]] = []
        self.backlog = ShellBacklog()
        self._kernel: Kernel | None = None
        self._early = not _threads_forbidden()
        # Computed here, on the starting thread: the interface thread that answers must not
        # import or look up modules (the import lock may be held by the kernel's imports).
        self._content = kernel_info_content(
            threads=True,
            debugger=find_spec("debugpy") is not None,
            backend=backend_detail(options),
        )

    def publish(self, msg_type: str, content: dict[str, Any], parent: Any) -> None:
        """Publish on iopub (the interface announces ``starting`` through this)."""
        kernel = self._kernel
        if kernel is not None:
            kernel.publish(msg_type, content, parent)
            return
        self._publish(msg_type, content, None)

    def _publish(self, msg_type: str, content: dict[str, Any], parent: Message | None) -> None:
        msg = self.session.msg(msg_type, content, parent)
        topic = f"kernel.{self.session.session_id}.{msg_type}".encode()
        self._send(Channel.iopub, msg, [topic])

    def receive(
        self, channel: Channel, identities: list[bytes], msg: Message, size: int = 0
    ) -> None:
        """Take one message from the interface thread: answer, keep or forward it."""
        with self._lock:
            kernel = self._kernel
            if kernel is None:
                if (
                    self._early
                    and not self._kept
                    and channel in (Channel.shell, Channel.control)
                    and msg["header"].get("msg_type") == "kernel_info_request"
                ):
                    self._answer(channel, identities, msg)
                    self._answered.append((channel, msg))
                else:
                    if channel is Channel.shell:
                        self.backlog.hold(size)
                    self._kept.append((channel, identities, msg, size))
                return
        kernel.receive(channel, identities, msg, size)

    def _answer(self, channel: Channel, identities: list[bytes], msg: Message) -> None:
        self._publish("status", {"execution_state": "busy"}, msg)
        reply = self.session.msg("kernel_info_reply", self._content, msg)
        self._send(channel, reply, identities)
        self._publish("status", {"execution_state": "idle"}, msg)

    def hand_over(self, kernel: Kernel) -> None:
        """Forward everything to ``kernel`` once it has started (from a helper thread): first
        the messages kept so far, in order, then each new one. Returns at once."""

        def wait_and_hand_over() -> None:
            kernel.started.wait()
            with self._lock:
                kernel.backlog = self.backlog  # the interface pauses shell on this one
                if kernel.recorder is not None:
                    for channel, msg in self._answered:
                        kernel.recorder.record(channel, msg)
                self._answered.clear()
                for channel, identities, msg, size in self._kept:
                    if channel is Channel.shell:
                        self.backlog.release(size)  # the kernel holds it from now on
                    kernel.receive(channel, identities, msg, size)
                self._kept.clear()
                self._kernel = kernel

        threading.Thread(target=wait_and_hand_over, name="cokernel-prelude", daemon=True).start()
