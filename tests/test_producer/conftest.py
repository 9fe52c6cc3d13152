"""Fixtures shared by the producer's fleet tests (pytest injects them; no import needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from producer.book import Book
from producer.enqueue import plan_night
from shared.messages import MarketSnapshot
from worker.handlers import Start, handle_account


class _MemoryStore:
    """The results store as dicts (the worker's store protocol), for an in-process night."""

    def __init__(self) -> None:
        self.outcomes: dict[str, object] = {}
        self.ledgers: dict[tuple[str, int], object] = {}

    def begin(self, as_of, account_id, *, ledger, market_digest=""):
        state = self.ledgers.get(ledger) if ledger is not None else None
        return Start(outcome=None, ledger=state, attempts=1)

    def end_attempt(self, as_of, account_id):
        pass

    def release(self, as_of, household):
        self.ledgers = {k: v for k, v in self.ledgers.items() if k[0] != household}

    def put(self, outcome, *, next_ledger=None, release=None, booked_from=None, market_digest=""):
        self.outcomes[outcome.account_id] = outcome
        if next_ledger is not None:
            self.ledgers[next_ledger[:2]] = next_ledger[2]


class _OneMarket:
    def __init__(self, market: MarketSnapshot) -> None:
        self.market = market

    def get(self, key: str, digest: str = "") -> MarketSnapshot:
        return self.market


def _inline_night(book: Book, market: MarketSnapshot) -> dict[str, object]:
    store = _MemoryStore()
    for chain in plan_night(book, market.as_of):
        store.ledgers[(chain[0].household_id, 0)] = book.ledgers[chain[0].household_id]
        for task in chain:
            handle_account(task, store=store, markets=_OneMarket(market), retries=0, max_retries=0)
    return store.outcomes


@pytest.fixture(scope="session")
def inline_night() -> Callable[[Book, MarketSnapshot], dict[str, object]]:
    """The fault-free reference night: the worker's handler, chains in order, in this process,
    with the code as it is now (a test's workers import the same code).  Returns the outcomes
    by account."""
    return _inline_night
