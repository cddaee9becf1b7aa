"""Rate-limited warnings for messages the kernel drops on its receive path.

A client that sends junk (bad signatures, unknown types, malformed fields) must not be able to
flood the log: within each interval the first few drops are logged in full, the rest are only
counted, and one summary line with that count is logged when the interval ends.
"""

from __future__ import annotations

import logging
import threading
import time

#: Drops logged in full per interval, and the interval's length in seconds.
BURST = 5
INTERVAL = 10.0


class DropLog:
    """Logs drop warnings on ``logger``: ``burst`` in full per ``interval``, then a count."""

    def __init__(
        self, logger: logging.Logger, *, burst: int = BURST, interval: float = INTERVAL
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self._lock = threading.Lock()
        self._window_end = 0.0
        self._shown = 0
        self._suppressed = 0
        self._timer: threading.Timer | None = None

    def warning(self, message: str, *args: object) -> None:
        """Log one dropped message, or count it if this interval's burst is used up."""
        with self._lock:
            now = time.monotonic()
            if now >= self._window_end and self._timer is None:
                self._window_end, self._shown = now + self.interval, 0
            if self._shown < self.burst:
                self._shown += 1
                show = True
            else:
                show = False
                self._suppressed += 1
                if self._timer is None:
                    self._timer = threading.Timer(max(0.0, self._window_end - now), self._summary)
                    self._timer.name = "cokernel-droplog"
                    self._timer.daemon = True
                    self._timer.start()
        if show:
            self.logger.warning(message, *args)

    def _summary(self) -> None:
        with self._lock:
            count, self._suppressed = self._suppressed, 0
            self._timer = None
            self._window_end, self._shown = time.monotonic() + self.interval, 0
        if count:
            self.logger.warning(
                "%d more dropped message(s) in the last %g s were not logged one by one",
                count,
                self.interval,
            )


#: The one budget shared by every drop warning of the process (interfaces and kernel).
drop_log = DropLog(logging.getLogger("cokernel.drops"))
