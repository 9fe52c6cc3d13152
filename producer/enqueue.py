"""Enqueue a night: publish the market once, write the manifest, send one task per account.

Accounts of one household go as one Celery chain (in account-id order), so their solves see each
other's same-day trades and never create a cross-account wash sale (IRC §1091, household-wide).
Task ids are ``date:account``; re-running the producer re-sends the same ids, and accounts that
already have an outcome are skipped, so a crashed producer is simply run again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import redis
from celery import Celery

from producer.book import Book
from producer.broker import send_household
from producer.results_reader import ManifestEntry, done_accounts, manifest_json
from shared import results_keys as keys
from shared.messages import AccountTask, MarketSnapshot, encode_json


def plan_night(book: Book, as_of: dt.date) -> list[list[AccountTask]]:
    """One chain of tasks per household, households and accounts in a stable order.

    Args:
        book: the book at the previous close.
        as_of: the night's date.

    Returns:
        Household chains; the first task of each carries the household's ledger.
    """
    market_key = keys.market_key(as_of)
    chains: list[list[AccountTask]] = []
    for household, specs in book.households().items():
        ledger = book.ledgers.get(household)
        chains.append(
            [
                AccountTask(
                    as_of=as_of,
                    market_key=market_key,
                    account=spec,
                    household_id=household,
                    household_index=k,
                    household_size=len(specs),
                    ledger=ledger if k == 0 else None,
                )
                for k, spec in enumerate(specs)
            ]
        )
    return chains


def publish_market(client: redis.Redis[bytes], market: MarketSnapshot, *, ttl_s: int) -> str:
    """Store the day's market snapshot once; returns its key."""
    key = keys.market_key(market.as_of)
    client.set(key, encode_json(market), ex=ttl_s)
    return key


def write_manifest(
    client: redis.Redis[bytes], as_of: dt.date, chains: list[list[AccountTask]], *, ttl_s: int
) -> int:
    """Record every expected account (before any task is sent); returns the count."""
    mapping: dict[str, Any] = {}
    for chain in chains:
        for task in chain:
            mapping[task.account.account_id] = manifest_json(
                ManifestEntry(
                    household=task.household_id,
                    index=task.household_index,
                    size=task.household_size,
                    strategy=task.account.strategy,
                    account_type=task.account.account_type,
                )
            )
    key = keys.manifest_key(as_of)
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    for start in range(0, len(mapping), 5000):
        pipe.hset(key, mapping=dict(list(mapping.items())[start : start + 5000]))
    pipe.expire(key, ttl_s)
    pipe.execute()
    return len(mapping)


def pending_chains(
    client: redis.Redis[bytes], as_of: dt.date, chains: list[list[AccountTask]]
) -> list[list[AccountTask]]:
    """The part of each chain that has no outcome yet (a household resumes at its first
    account without one; the store holds the ledger it starts from)."""
    done = done_accounts(client, as_of)
    out = []
    for chain in chains:
        for k, task in enumerate(chain):
            if task.account.account_id not in done:
                out.append(chain[k:])
                break
    return out


def send_chains(
    app: Celery,
    chains: Iterator[list[AccountTask]] | list[list[AccountTask]],
    *,
    on_sent: Callable[[list[AccountTask]], None] | None = None,
) -> int:
    """Send household chains; returns the number of accounts sent."""
    sent = 0
    for chain in chains:
        send_household(app, chain)
        sent += len(chain)
        if on_sent is not None:
            on_sent(chain)
    return sent


def enqueue_night(
    client: redis.Redis[bytes],
    app: Celery,
    book: Book,
    market: MarketSnapshot,
    *,
    ttl_s: int,
    skip_done: bool = True,
) -> tuple[int, int]:
    """Publish the market, write the manifest and send every account without an outcome.

    Returns:
        ``(expected, sent)`` account counts.
    """
    as_of = market.as_of
    chains = plan_night(book, as_of)
    publish_market(client, market, ttl_s=ttl_s)
    expected = write_manifest(client, as_of, chains, ttl_s=ttl_s)
    todo = pending_chains(client, as_of, chains) if skip_done else chains
    return expected, send_chains(app, todo)
