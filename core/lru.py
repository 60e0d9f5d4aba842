"""One bounded, thread-safe least-recently-used memory for everything the project keeps in
process memory: the result cache's memory layer (`Store._lookup`), the facts and views
kept per dataset content (`Store.per_content`) and the dashboard's figures
(`dashboard.state.figure`). Each bounds the number of entries and, where sizes are
given, the bytes held; the oldest entries go first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most `max_entries` values and `max_bytes` bytes (by the sizes given to `put`);
    a value larger than `max_bytes` alone is not kept. Safe to share between threads."""

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(True, value) when `key` is held (it becomes the most recent), else (False,
        None): a held value may itself be None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return False, None
            self._items.move_to_end(key)
            return True, item[0]

    def put(self, key: K, value: V, size: int = 0) -> bool:
        """Keep `value` under `key` (replacing what it held), then drop the oldest entries
        until both bounds hold. Returns whether the value is kept."""
        if self.max_bytes is not None and size > self.max_bytes:
            return False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or (
                self.max_bytes is not None and self._bytes > self.max_bytes
            ):
                self._bytes -= self._items.popitem(last=False)[1][1]
        return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def held_bytes(self) -> int:
        """The sum of the sizes of the values held."""
        return self._bytes
