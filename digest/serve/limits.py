"""Rate limits on the subscribe form and the live preview: a sliding window per key, in
memory."""

from __future__ import annotations

import time
from collections import deque


class RateLimiter:
    """At most ``limit`` events per key in a sliding ``window`` of seconds (in memory)."""

    def __init__(self, limit: int, window: float = 3600.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds until the next attempt is allowed."""
        now = time.monotonic() if now is None else now
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            return events[0] + self.window - now
        events.append(now)
        if len(self._events) > 100_000:  # forget idle keys
            for k in [k for k, v in self._events.items() if not v][:50_000]:
                del self._events[k]
        return 0.0
