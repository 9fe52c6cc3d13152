"""Enqueue a night: publish the market once, write the manifest, send one task per account.

Messages stay small: the household's ledger (every account's lots, often hundreds of KB) is
staged in the results store under ``ledger:{date}:{household}`` field ``0`` just before its
chain is sent, and each task carries only a reference (its household and place in the chain).

Accounts of one household go as one Celery chain (in ``producer.book.run_rank`` order), so
their solves see each other's same-day trades and never create a cross-account wash sale
(IRC §1091, household-wide).  Task ids are ``date:account``; re-running the producer re-sends
the same ids, and accounts that already have an outcome are skipped, so a crashed producer is
simply run again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, cast

import msgspec
import redis
from celery import Celery

from producer.book import Book, CompressedLedgers
from producer.broker import send_household
from producer.results_reader import ManifestEntry, done_accounts, manifest_json
from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import (
    AccountSpec,
    AccountTask,
    BookError,
    LedgerState,
    MarketSnapshot,
    encode_json,
)
from shared.types import AccountType


def plan_night(
    book: Book, as_of: dt.date, *, market: MarketSnapshot | None = None
) -> list[list[AccountTask]]:
    """One chain of tasks per household, households and accounts in a stable order.

    Args:
        book: the book at the previous close.
        as_of: the night's date.
        market: the night's snapshot: each task carries the digest of its stored bytes, so a
            worker never solves it on another snapshot stored under the night's key (a cached
            one of an earlier run of the night included).

    Returns:
        Household chains (the ledgers are staged in the store by :func:`send_chains`).
    """
    market_key = keys.market_key(as_of)
    digest = "" if market is None else keys.snapshot_digest(encode_json(market))

    def chain(
        household: str, specs: list[AccountSpec], error: BookError | None = None
    ) -> list[AccountTask]:
        return [
            AccountTask(
                as_of=as_of,
                market_key=market_key,
                account=spec,
                household_id=household,
                household_index=k,
                household_size=len(specs),
                market_digest=digest,
                book_error=error,
            )
            for k, spec in enumerate(specs)
        ]

    chains = [chain(household, specs) for household, specs in book.households().items()]
    # A household set aside on reading the book: one task per account all the same (the
    # manifest expects it, the night reports it), which the worker stores as `rejected`.
    for household, q in sorted(book.quarantined.items()):
        if not q.accounts:  # rows of accounts the firm does not run: carried, nothing to send
            continue
        where = f" (account {q.account})" if q.account else ""
        error = BookError(
            field=q.field or "book",
            reason=f"the book's rows of household {household} cannot be read{where}: "
            f"{q.reason}; its rows are carried unchanged to next_book",
        )
        chains.append(chain(household, q.accounts, error))
    return chains


def publish_market(client: redis.Redis[bytes], market: MarketSnapshot, *, ttl_s: int) -> str:
    """Store the day's market snapshot once; returns its key.

    Raises:
        InputError: the night already has another snapshot: its outcomes (and the workers'
            cached copies) were solved on that one, and one night never mixes two markets.
    """
    key = keys.market_key(market.as_of)
    raw = _same_market(client, market)
    pipe = client.pipeline(transaction=True)
    pipe.set(key, raw, ex=ttl_s)
    pipe.set(keys.market_digest_key(market.as_of), keys.snapshot_digest(raw), ex=ttl_s)
    pipe.execute()
    return key


def _same_market(client: redis.Redis[bytes], market: MarketSnapshot) -> bytes:
    """The snapshot's stored bytes, checked against the night's snapshot if one is stored.

    Raises:
        InputError: the night already has another snapshot.
    """
    raw = encode_json(market)
    stored: Any = client.get(keys.market_key(market.as_of))
    if stored is not None and bytes(stored) != raw:
        raise InputError(
            f"night {market.as_of} was enqueued with another market snapshot; its outcomes were "
            f"solved on that one. Re-run it with the same market, or delete the night's keys "
            f"first ({keys.night_keys_pattern(market.as_of)!r})",
            field="market",
        )
    return raw


def book_digests(book: Book) -> dict[str, str]:
    """Per account, ``KIND:HEX``: a BLAKE2b (128 bits) of its settings and of its household's
    whole ledger — what ties a night's manifest to the book it was enqueued from.

    A generated book's ledgers are hashed as stored, compressed (kind ``z``: ~50 µs a
    household; decompressing 10,000 accounts' ledgers to hash their text took ~6 s of the
    night), a book read from files as JSON text (kind ``j``).  Digests of two kinds are not
    compared (:func:`producer.aggregate.check_book`)."""
    out: dict[str, str] = {}
    ledgers = book.ledgers
    for household, specs in book.households().items():
        if isinstance(ledgers, CompressedLedgers) and household in ledgers:
            kind, text = "z", ledgers.raw(household)
        else:
            state = ledgers.get(household)
            kind, text = "j", b"" if state is None else encode_json(state)
        base = hashlib.blake2b(text, digest_size=16).digest()
        for spec in specs:
            mark = hashlib.blake2b(base + encode_json(spec), digest_size=16).hexdigest()
            out[spec.account_id] = f"{kind}:{mark}"
    for q in book.quarantined.values():  # its rows as read (book.Quarantine), not the
        # reason's wording (which names the file: a book converted to Parquet is the same book)
        base = hashlib.blake2b(msgspec.json.encode(q.rows), digest_size=16).digest()
        for spec in q.accounts:
            mark = hashlib.blake2b(base + encode_json(spec), digest_size=16).hexdigest()
            out[spec.account_id] = f"j:{mark}"
    return out


def write_manifest(
    client: redis.Redis[bytes],
    as_of: dt.date,
    chains: list[list[AccountTask]],
    *,
    ttl_s: int,
    digests: Mapping[str, str] | None = None,
) -> int:
    """Record every expected account (before any task is sent); returns the count.
    ``digests``: :func:`book_digests` of the book the chains come from."""
    mapping = manifest_mapping(chains, digests)
    key = keys.manifest_key(as_of)
    _same_night(client, key, as_of, mapping)
    pipe = client.pipeline(transaction=True)
    pipe.delete(key)
    for start in range(0, len(mapping), 5000):
        pipe.hset(key, mapping=dict(list(mapping.items())[start : start + 5000]))
    pipe.expire(key, ttl_s)
    pipe.execute()
    return len(mapping)


def check_same_book(
    client: redis.Redis[bytes], book: Book, market: MarketSnapshot, chains: list[list[AccountTask]]
) -> None:
    """Refuse a book or market other than the ones the night was enqueued from, as
    :func:`write_manifest` and :func:`publish_market` do, without writing anything
    (``taxview sweep``: settings audit, a sweep from an edited book re-sent its accounts and the
    night was published complete on two books).

    Raises:
        InputError: naming the difference (``--book`` or ``market``).
    """
    _same_market(client, market)
    mapping = manifest_mapping(chains, book_digests(book))
    _same_night(client, keys.manifest_key(market.as_of), market.as_of, mapping)


def manifest_mapping(
    chains: list[list[AccountTask]], digests: Mapping[str, str] | None
) -> dict[str, Any]:
    """The manifest's entries (account → JSON) of ``chains``."""
    mapping: dict[str, Any] = {}
    for chain in chains:
        for task in chain:
            aid = task.account.account_id
            mapping[aid] = manifest_json(
                ManifestEntry(
                    household=task.household_id,
                    index=task.household_index,
                    size=task.household_size,
                    strategy=task.account.strategy,
                    account_type=task.account.account_type,
                    book=(digests or {}).get(aid, ""),
                )
            )
    return mapping


def _same_night(
    client: redis.Redis[bytes], key: str, as_of: dt.date, mapping: dict[str, Any]
) -> None:
    """Refuse to replace a night's manifest with another book's: the manifest is what the
    completeness check counts, so a second book would drop the first one's solved accounts
    from a night reported complete (found by an operator audit).  The same book (a crashed
    producer run again) passes.

    Raises:
        InputError: the stored manifest lists other accounts, or the same accounts in other
            households, positions or strategies.
    """
    stored: Any = client.hgetall(key)
    if not stored:
        return
    old = {bytes(k).decode(): bytes(v) for k, v in stored.items()}
    new = {a: str(v).encode() for a, v in mapping.items()}  # manifest_json's text, as stored
    if old == new:
        return
    only_old = sorted(set(old) - set(new))
    only_new = sorted(set(new) - set(old))
    changed = sorted(a for a in set(old) & set(new) if not _same_entry(old[a], new[a]))
    if not (only_old or only_new or changed):
        return
    # Entries that differ in their place in the chain alone: the night was enqueued by a
    # taxview that ordered households otherwise (review: reported as "other lots or cash").
    moved = [a for a in changed if _same_entry(old[a], new[a], ignore_index=True)]
    changed = [a for a in changed if a not in moved]
    parts = [
        f"{len(x)} {what} (e.g. {', '.join(x[:3])})"
        for x, what in (
            (only_old, "only in the night"),
            (only_new, "only in this book"),
            (changed, "in other households, with another strategy, or other lots or cash"),
            (
                moved,
                "at another place of their household's chain (enqueued by a taxview that "
                "orders households otherwise: use that version for this night)",
            ),
        )
        if x
    ]
    raise InputError(
        f"night {as_of} was enqueued from another book: its manifest lists {len(old)} accounts, "
        f"this book {len(new)}; {'; '.join(parts)}. Aggregate that night with its own book, or "
        f"delete the night's keys first ({keys.night_keys_pattern(as_of)!r})",
        field="--book",
    )


def _same_entry(old: bytes, new: bytes, *, ignore_index: bool = False) -> bool:
    """Two manifest entries of one account agree (``ignore_index``: but for their place in
    the household's chain); a book digest counts only when both have one of the same kind (a
    manifest written before digests existed has none)."""
    if old == new:
        return True
    a = msgspec.json.decode(old, type=ManifestEntry)
    b = msgspec.json.decode(new, type=ManifestEntry)
    if a.book[:2] != b.book[:2] or not a.book:
        a = msgspec.structs.replace(a, book="")
        b = msgspec.structs.replace(b, book="")
    if ignore_index:
        b = msgspec.structs.replace(b, index=a.index)
    return a == b


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
    client: redis.Redis[bytes],
    chains: Iterable[list[AccountTask]],
    ledgers: Mapping[str, LedgerState],
    *,
    ttl_s: int,
) -> int:
    """Stage each household's ledger (for a chain starting at its first account) and send the
    chain; returns the number of accounts sent."""
    sent = 0
    for chain in chains:
        first = chain[0]
        key = keys.ledger_key(first.as_of, first.household_id)
        field = str(first.household_index)
        if first.household_index == 0:
            staged: bytes | None = _staged(ledgers, first)
        elif not client.hexists(key, field):
            # The chain resumes after its earlier siblings (they have outcomes), and the ledger
            # it starts from is gone — released by the household's last account, whose outcome
            # was then deleted (fleet fault audit: the runbook's re-sent account waited for it
            # ten times and the night could never complete).  Rebuilt here as their workers
            # staged it: the book's ledger with each earlier sibling's trades booked in order.
            staged = keys.encode_ledger(_rebuilt(client, ledgers, first))
        else:
            staged = None
        if staged is not None:
            pipe = client.pipeline(transaction=True)
            pipe.hset(key, field, staged)
            pipe.expire(key, ttl_s)
            pipe.execute()
        send_household(app, chain)
        sent += len(chain)
    return sent


def _rebuilt(
    client: redis.Redis[bytes], ledgers: Mapping[str, LedgerState], first: AccountTask
) -> LedgerState:
    """The household ledger sibling ``first.household_index`` starts from: the book's, with the
    stored outcomes of the siblings before it booked in chain order (the manifest's), as each
    worker booked them (:func:`shared.household.book_outcome_carried`, the worker's own
    booking: IRC §1091 in full, the lots in the same order).

    Raises:
        InputError: an earlier sibling has no outcome stored (the chain cannot resume there).
    """
    from producer.results_reader import checked_outcome, manifest
    from shared.household import book_outcome_carried
    from shared.messages import Solved

    household, as_of = first.household_id, first.as_of
    earlier = sorted(
        (e.index, account, e.account_type)
        for account, e in manifest(client, as_of).items()
        if e.household == household and e.index < first.household_index
    )
    state = ledgers.get(household) or LedgerState(as_of=as_of, household_id=household)
    if not earlier:
        return state
    raw: Any = client.hmget(keys.results_key(as_of), [account for _, account, _ in earlier])
    for (_, account, account_type), value in zip(earlier, raw, strict=True):
        if value is None:
            raise InputError(
                f"household {household}: account {account} has no outcome, so the ledger its "
                f"sibling {first.account.account_id} starts from cannot be rebuilt",
                account=first.account.account_id,
                field="ledger",
            )
        # Decoded and checked as the aggregator does: one line naming an unreadable or
        # misfiled outcome, never a traceback nor another account's trades booked here (review).
        outcome = checked_outcome(value, account, as_of)
        if isinstance(outcome, Solved) and outcome.trades:
            kind = cast(AccountType, account_type)
            state = book_outcome_carried(state, outcome, account_type=kind).state
    return state


def _staged(ledgers: Mapping[str, LedgerState], first: AccountTask) -> bytes:
    """The household's ledger as staged (already compressed in a :class:`CompressedLedgers`)."""
    household = first.household_id
    if isinstance(ledgers, CompressedLedgers) and household in ledgers:
        return ledgers.raw(household)
    state = ledgers.get(household) or LedgerState(as_of=first.as_of, household_id=household)
    return keys.encode_ledger(state)


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
    chains = plan_night(book, as_of, market=market)
    publish_market(client, market, ttl_s=ttl_s)
    expected = write_manifest(client, as_of, chains, ttl_s=ttl_s, digests=book_digests(book))
    todo = pending_chains(client, as_of, chains) if skip_done else chains
    return expected, send_chains(app, client, todo, book.ledgers, ttl_s=ttl_s)
