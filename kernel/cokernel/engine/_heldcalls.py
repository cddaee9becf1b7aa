"""Non-blocking system calls on the hot path that do not let go of the GIL.

CPython releases the GIL around every system call it wraps (``os.write``, ``select.poll``),
also around one that cannot block. In the kernel the GIL is the scarce resource: the main
thread runs cells and builds messages, the io thread receives and sends them, and a 1,000-cell
pipelined burst keeps both busy (their GIL time adds up to about 95% of the wall time).
Whenever the main thread lets the GIL go, the io thread takes it, and the main thread then
waits for the io thread's next blocking call before it runs again: in a profile of that burst,
the main thread spent 55 us in each zero-timeout ``poll`` of the fd drain, and 57 us in each
wake-up ``write`` to the io thread's pipe, almost all of it waiting to get the GIL back.

The calls here go to libc through :class:`ctypes.PyDLL`, whose functions run with the GIL held.
That is only right for calls that cannot block: a ``write`` to a non-blocking pipe and a
``poll`` with a zero timeout. Where libc cannot be loaded (not a POSIX system), the usual
GIL-releasing calls are used instead: the same results, only slower.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
from typing import Any

__all__ = ["HOLDS_GIL", "ReadyPoll", "write"]


class _PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def _load_libc() -> tuple[Any, Any] | None:
    if os.name != "posix":
        return None
    try:
        libc = ctypes.PyDLL(None, use_errno=True)  # the process's own symbols: libc is there
        c_write, c_poll = libc.write, libc.poll
    except (OSError, AttributeError):
        return None
    c_write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
    c_write.restype = ctypes.c_ssize_t
    c_poll.argtypes = [ctypes.POINTER(_PollFd), ctypes.c_ulong, ctypes.c_int]
    c_poll.restype = ctypes.c_int
    return c_write, c_poll


_LIBC = _load_libc()
#: Whether these calls keep the GIL here (libc was found); if not, they are the usual ones.
HOLDS_GIL = _LIBC is not None


def _raise_errno() -> None:
    code = ctypes.get_errno()
    raise OSError(code, os.strerror(code))  # EAGAIN becomes BlockingIOError, as from os.write


def write(fd: int, data: bytes) -> int:
    """``os.write(fd, data)`` holding the GIL; for descriptors in non-blocking mode only."""
    if _LIBC is None:
        return os.write(fd, data)
    written = int(_LIBC[0](fd, data, len(data)))
    if written < 0:
        _raise_errno()
    return written


class ReadyPoll:
    """A set of descriptors to ask, without waiting, which have something to read (or hit
    end-of-file): ``select.poll`` with a zero timeout, holding the GIL. One thread at a time,
    as for a ``select.poll`` object."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._table: Any = None
        self._fallback: Any = select.poll() if _LIBC is None else None

    def register(self, fd: int) -> None:
        if fd not in self._fds:
            self._fds.append(fd)
            self._changed(fd, True)

    def unregister(self, fd: int) -> None:
        """Forget ``fd``; KeyError if it is not registered (as ``select.poll``)."""
        if fd not in self._fds:
            raise KeyError(fd)
        self._fds.remove(fd)
        self._changed(fd, False)

    def _changed(self, fd: int, added: bool) -> None:
        if self._fallback is not None:
            if added:
                self._fallback.register(fd, select.POLLIN)
            else:
                self._fallback.unregister(fd)
            return
        table = (_PollFd * len(self._fds))()
        for entry, registered in zip(table, self._fds, strict=True):
            entry.fd, entry.events = registered, select.POLLIN
        self._table = table

    def ready(self) -> list[int]:
        """The registered descriptors that are readable now (or closed at the other end)."""
        if self._fallback is not None:
            return [fd for fd, _events in self._fallback.poll(0)]
        table = self._table
        if not self._fds or _LIBC is None:
            return []
        found = int(_LIBC[1](table, len(self._fds), 0))
        if found < 0:
            if ctypes.get_errno() == errno.EINTR:  # a signal came first: ask again next time
                return []
            _raise_errno()
        if found == 0:
            return []
        return [entry.fd for entry in table if entry.revents]
