"""A small least-recently-used dict, for the renderer's caches of fragments and shells."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    """A dict of at most ``size`` entries, dropping the least recently used first (a run
    visits subscribers in no order of their queries: popular papers and highlights come
    back all along, and would be rendered again and again if the oldest went first)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._data: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        value = self._data.pop(key, None)  # values are never None
        if value is not None:
            self._data[key] = value  # now the most recent
        return value

    def put(self, key: K, value: V) -> V:
        self._data[key] = value
        if len(self._data) > self.size:
            del self._data[next(iter(self._data))]
        return value

    def __len__(self) -> int:
        return len(self._data)
