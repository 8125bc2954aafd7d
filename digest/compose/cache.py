"""A small least-recently-used dict, for the renderer's caches of fragments and shells."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    """A dict of at most ``size`` entries, dropping the least recently used first (a run
    visits subscribers in no order of their queries: popular papers and highlights come
    back all along, and would be rendered again and again if the oldest went first).

    With ``weigh``, ``size`` bounds the sum of ``weigh(value)`` over the entries instead
    (bytes, say), and the most recent entry always stays."""

    def __init__(self, size: int, weigh: Callable[[V], int] | None = None) -> None:
        self.size = max(1, size)
        self.weight = 0  # with ``weigh``: the sum of the entries' weights
        self._weigh = weigh
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._data.pop(key, None)  # values are never None
        if value is not None:
            self._data[key] = value  # now the most recent
        return value

    def put(self, key: K, value: V) -> V:
        data, weigh = self._data, self._weigh
        if weigh is None:
            data[key] = value
            if len(data) > self.size:
                del data[next(iter(data))]
            return value
        old = data.pop(key, None)
        if old is not None:
            self.weight -= weigh(old)
        data[key] = value
        self.weight += weigh(value)
        while self.weight > self.size and len(data) > 1:
            self.weight -= weigh(data.pop(next(iter(data))))
        return value

    def __len__(self) -> int:
        return len(self._data)
