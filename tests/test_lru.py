"""The one bounded memory (`core.lru.Lru`) behind the result cache's memory layer, the
views kept per dataset content and the dashboard's figures."""

from __future__ import annotations

import threading

import pytest

from core.lru import Lru


def test_the_oldest_unused_entry_goes_first() -> None:
    lru: Lru[str, int] = Lru(3)
    for i, key in enumerate("abc"):
        assert lru.put(key, i)
    assert lru.get("a") == (True, 0)  # "a" is now the most recent
    lru.put("d", 3)
    assert "b" not in lru and all(k in lru for k in "acd") and len(lru) == 3
    assert lru.get("b") == (False, None)


def test_a_held_none_is_a_hit() -> None:
    lru: Lru[str, None] = Lru(2)
    lru.put("x", None)
    assert lru.get("x") == (True, None)


def test_bytes_bound_drops_old_entries_and_refuses_one_too_large() -> None:
    lru: Lru[str, str] = Lru(100, max_bytes=1000)
    for key in "abcd":
        lru.put(key, key, size=300)  # the fourth brings 1200 > 1000: "a" goes
    assert "a" not in lru and lru.held_bytes == 900
    assert not lru.put("huge", "h", size=1001)
    assert "huge" not in lru and lru.held_bytes == 900
    lru.put("b", "B", size=100)  # replacing counts the new size only
    assert lru.held_bytes == 700 and lru.get("b") == (True, "B")
    lru.clear()
    assert len(lru) == 0 and lru.held_bytes == 0


def test_bounds_hold_under_threads() -> None:
    lru: Lru[int, int] = Lru(50, max_bytes=5000)

    def work(offset: int) -> None:
        for i in range(2000):
            lru.put(offset + i % 200, i, size=(i % 7) * 40)
            lru.get(offset + (i * 7) % 200)

    threads = [threading.Thread(target=work, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lru) <= 50 and 0 <= lru.held_bytes <= 5000


def test_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        Lru(0)
