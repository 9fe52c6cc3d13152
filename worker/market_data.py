"""The day's market snapshot, loaded by key from the results store, cached per process.

A night has one snapshot (``taxview:market:{as_of}``), published once by the producer; each pool
process decodes it on its first task and reuses it for every later account of the night.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from shared.messages import MarketSnapshot
from worker.handlers import NotReady


class MarketSource(Protocol):
    """Anything that can fetch a snapshot by key (the results store)."""

    def market(self, key: str) -> MarketSnapshot | None:
        """The snapshot under ``key``, or ``None``."""


class MarketCache:
    """A small LRU of decoded snapshots in front of a :class:`MarketSource`.

    Args:
        source: where snapshots are read from.
        size: snapshots kept (a night uses one; two covers a night boundary).
    """

    def __init__(self, source: MarketSource, *, size: int = 2) -> None:
        self.source = source
        self.size = size
        self._cache: OrderedDict[str, MarketSnapshot] = OrderedDict()
        self.loads = 0

    def get(self, key: str) -> MarketSnapshot:
        """The snapshot under ``key``.

        Raises:
            NotReady: nothing is stored under ``key``: not published yet, or lost with a store
                that came back empty.  Transient, like a sibling's ledger not stored yet: the
                task is retried (the producer publishes the snapshot again before it re-sends
                accounts), never a ``rejected`` outcome (fleet fault audit: a store wiped
                mid-night made every account of the night a permanent rejection).
        """
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        snapshot = self.source.market(key)
        if snapshot is None:
            raise NotReady(f"no market snapshot under {key!r} yet (`taxview enqueue` publishes it)")
        self.loads += 1
        self._cache[key] = snapshot
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return snapshot
