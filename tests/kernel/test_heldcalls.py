"""cokernel.engine._heldcalls: non-blocking write and poll that keep the GIL, on real pipes."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Iterator

import pytest

from cokernel.engine import _heldcalls
from cokernel.engine._heldcalls import ReadyPoll, write

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(params=["libc", "fallback"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs on the GIL-keeping calls and on the fallback (os.write, select.poll)."""
    if request.param == "fallback":
        monkeypatch.setattr(_heldcalls, "_LIBC", None)
    elif _heldcalls._LIBC is None:
        pytest.skip("no libc on this platform")
    return str(request.param)


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    try:
        yield read_end, write_end
    finally:
        for fd in (read_end, write_end):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libc is checked on Linux")
def test_on_linux_the_calls_go_to_libc_without_releasing_the_gil() -> None:
    assert _heldcalls.HOLDS_GIL
    assert _heldcalls._LIBC is not None
    for function in _heldcalls._LIBC:
        # ctypes runs a function of a PyDLL with the GIL held (the flag it marks them with)
        assert function._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]


def test_write_puts_the_bytes_in_the_pipe(implementation: str, pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    assert write(write_end, b"wake") == 4
    assert os.read(read_end, 100) == b"wake"


def test_a_full_pipe_raises_blocking_io_error_like_os_write(
    implementation: str, pipe: tuple[int, int]
) -> None:
    _read_end, write_end = pipe
    chunk = b"x" * 65536

    def fill() -> None:
        for _ in range(1000):  # a pipe holds 64 KiB by default, at most 1 MiB unprivileged
            write(write_end, chunk)

    with pytest.raises(BlockingIOError):
        fill()


def test_a_closed_descriptor_raises_ebadf(implementation: str, pipe: tuple[int, int]) -> None:
    _read_end, write_end = pipe
    os.close(write_end)
    with pytest.raises(OSError, match="Bad file descriptor") as raised:
        write(write_end, b"x")
    assert raised.value.errno == errno.EBADF


def test_ready_poll_reports_readable_and_closed_pipes(
    implementation: str, pipe: tuple[int, int]
) -> None:
    read_end, write_end = pipe
    other_read, other_write = os.pipe()
    try:
        poll = ReadyPoll()
        assert poll.ready() == []  # nothing registered
        poll.register(read_end)
        poll.register(other_read)
        poll.register(read_end)  # twice is once
        assert poll.ready() == []  # nothing written yet
        os.write(write_end, b"out")
        assert poll.ready() == [read_end]
        os.close(other_write)  # end of file counts: the reader then sees b"" and unregisters
        assert sorted(poll.ready()) == sorted([read_end, other_read])
        poll.unregister(other_read)
        assert poll.ready() == [read_end]
        os.read(read_end, 10)
        assert poll.ready() == []
        with pytest.raises(KeyError):
            poll.unregister(other_read)
    finally:
        os.close(other_read)
