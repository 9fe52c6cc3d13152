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

    def market_entry(self, key: str) -> tuple[MarketSnapshot, str] | None:
        """The snapshot under ``key`` and the digest of its stored bytes
        (:func:`shared.results_keys.snapshot_digest`), or ``None``."""


class MarketCache:
    """A small LRU of decoded snapshots in front of a :class:`MarketSource`.

    Args:
        source: where snapshots are read from.
        size: snapshots kept (a night uses one; two covers a night boundary).
    """

    def __init__(self, source: MarketSource, *, size: int = 2) -> None:
        self.source = source
        self.size = size
        self._cache: OrderedDict[str, tuple[MarketSnapshot, str]] = OrderedDict()
        self.loads = 0

    def get(self, key: str, digest: str = "") -> MarketSnapshot:
        """The snapshot under ``key`` — the one whose stored bytes have ``digest``, when given.

        A cached snapshot with another digest is read again: a night started over (its keys
        deleted, Runbook) with a corrected market reuses the key, and workers that stayed up
        solved it on their cached copy of the old one (fleet fault audit).

        Raises:
            NotReady: nothing is stored under ``key`` (not published yet, or lost with a store
                that came back empty), or what is stored has another digest than the task's (a
                task of an earlier run of the night, or one sent before the producer published
                the new snapshot).  Transient, like a sibling's ledger not stored yet: the task
                is retried, never a ``rejected`` outcome (fleet fault audit: a store wiped
                mid-night made every account of the night a permanent rejection); a stale task
                runs out of retries without an outcome, its account's current task solves it.
        """
        hit = self._cache.get(key)
        if hit is not None and (not digest or hit[1] == digest):
            self._cache.move_to_end(key)
            return hit[0]
        entry = self.source.market_entry(key)
        if entry is None:
            raise NotReady(f"no market snapshot under {key!r} yet (`taxview enqueue` publishes it)")
        self.loads += 1
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        if digest and entry[1] != digest:
            raise NotReady(
                f"the snapshot under {key!r} (digest {entry[1][:12]}) is not the one this task "
                f"was planned with ({digest[:12]}): a task of an earlier run of the night"
            )
        return entry[0]
