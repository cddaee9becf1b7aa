"""cokernel.shell._warmup: the warm-up leaves what the user's cells share intact."""

from __future__ import annotations

import linecache
import threading
from typing import Any

import pytest

from cokernel.shell import _warmup

pytestmark = pytest.mark.timeout(60)


class _RecordingCache(dict[str, Any]):
    """linecache's dict, recording every removal (the warm-up must never make one)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.removed: list[str] = []

    def __delitem__(self, key: str) -> None:
        self.removed.append(key)
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.removed.append(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self.removed.append(item[0])
        return item

    def clear(self) -> None:
        self.removed.extend(self)
        super().clear()


def test_the_traceback_warm_up_never_removes_a_linecache_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``linecache.checkcache()`` (pdb runs it as it starts) lists the names, then reads each:
    a warm-up thread that removed its own entry in between made a ``pdb.set_trace()`` cell
    fail with KeyError('<cokernel-warmup-...>')."""
    cache = _RecordingCache(linecache.cache)
    monkeypatch.setattr(linecache, "cache", cache)
    before = set(cache)
    warm = threading.Thread(target=_warmup.warm_tracebacks, args=(("Context", "nocolor"),))
    warm.start()
    while warm.is_alive():
        linecache.checkcache()  # what pdb does, beside the warm-up
        warm.join(0.001)
    assert [k for k in cache.removed if k not in before] == []
    name = _warmup.register_warm_source()
    assert cache[name][1] is None  # no mtime: checkcache keeps it
    assert "".join(cache[name][2]).startswith("def _cokernel_warmup")


def test_starting_the_warm_up_registers_its_source_on_the_calling_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(linecache, "cache", _RecordingCache())
    gate = threading.Event()
    thread = _warmup.start(
        completion=False,
        traceback_style=("Context", "nocolor"),
        quiet_for=lambda: 0.0 if not gate.is_set() else 1e9,  # held until the gate opens
    )
    try:
        assert "<cokernel-warmup>" in linecache.cache  # before the thread did anything
    finally:
        gate.set()
        thread.join(30)
    assert not thread.is_alive()
