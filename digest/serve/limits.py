"""Rate limits on the subscribe form and the live preview: at most ``limit`` events per key
in a sliding window of seconds.

The web app counts in the database (``store.limits``: the limit holds across processes and
restarts, and the table keeps only live events); :class:`MemoryEvents` counts in this
process only, for a bounded number of keys. Keys are hashed with the limit's name, so the
database holds no client address or email address.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from typing import Protocol


class Events(Protocol):
    """Where a limit's events are counted (``store.limits`` or :class:`MemoryEvents`)."""

    def hit(self, key: str, limit: int, window: float, now: float) -> float:
        """0.0 if fewer than ``limit`` events of ``key`` are in the window (and this one is
        counted), else the seconds until one leaves it."""
        ...


class MemoryEvents:
    """Events in this process, for at most ``max_keys`` keys: keys whose events have all
    expired are forgotten first, then the least recently used. O(1) per event (amortised)."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._expiries: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiries)

    def hit(self, key: str, limit: int, window: float, now: float) -> float:
        expiries = self._expiries.pop(key, None) or deque()
        while expiries and expiries[0] <= now:
            expiries.popleft()
        self._expiries[key] = expiries  # now the most recently used
        if len(expiries) >= limit:
            return expiries[len(expiries) - limit] - now
        expiries.append(now + window)
        self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        """Drop the least recently used keys while they are idle or too many."""
        while self._expiries:
            oldest, expiries = next(iter(self._expiries.items()))
            if len(self._expiries) <= self.max_keys and expiries and expiries[-1] > now:
                return
            del self._expiries[oldest]


class RateLimiter:
    """At most ``limit`` events per key in a sliding ``window`` of seconds, counted in
    ``events`` (default: in memory) under this limiter's ``name``."""

    def __init__(
        self,
        limit: int,
        window: float = 3600.0,
        *,
        name: str = "",
        events: Events | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.name = name
        self.events: Events = events if events is not None else MemoryEvents()

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if allowed (and counted), else the seconds until the next attempt is allowed.
        ``now``: seconds since the epoch (the database is shared across processes)."""
        now = time.time() if now is None else now
        hashed = hashlib.blake2b(f"{self.name}\0{key}".encode(), digest_size=16).hexdigest()
        return self.events.hit(hashed, self.limit, self.window, now)
