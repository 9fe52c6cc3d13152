"""``taxview bench fleet``: fleet throughput against the same accounts solved in a plain loop.

``overhead_vs_inline = fleet wall ÷ (inline seconds per account × accounts ÷ workers) − 1``: what
the broker, the results store, serialisation and scheduling cost on top of the solves.  The fleet
clock starts once the embedded workers answer a ping (process start-up is not throughput) and
stops when the last outcome is stored.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from producer.book import Book, book_from_stream
from producer.broker import client_app
from producer.embedded import EmbeddedFleet
from producer.nightly import run_night
from producer.results_reader import connect, outcomes_with_status
from shared.config import Settings
from shared.errors import TaxviewError
from shared.messages import AccountSpec, LedgerState, MarketSnapshot, RebalanceRequest


def wait_for_workers(app: Any, expected: int, timeout_s: float = 120.0) -> None:
    """Block until ``expected`` workers answer a broadcast ping.

    A broker error during a ping (the embedded fakeredis server closed the connection while
    loading a Lua script, under load: contract audit, 2026-12-07, 3 of 33 runs ended in a
    traceback) is retried until the deadline: a ping changes nothing.

    Raises:
        TaxviewError: they did not within ``timeout_s`` (the last broker error named).
    """
    import kombu.exceptions
    import redis.exceptions

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            replies = app.control.ping(timeout=1.0) or []
        except (redis.exceptions.RedisError, kombu.exceptions.KombuError, OSError) as exc:
            last = f" (last broker error: {type(exc).__name__}: {exc})"
            time.sleep(0.5)
            continue
        if len(replies) >= expected:
            return
    raise TaxviewError(f"only some of {expected} workers answered within {timeout_s:.0f}s{last}")


def inline_seconds_per_account(book: Book, market: MarketSnapshot, sample: int) -> float:
    """The plain loop: the same work per account as a worker does (solve, and for all but a
    household's last account, book the trades into the household ledger for the next one), in
    this process, no broker, no store."""
    from shared.household import book_outcome
    from shared.rebalance import rebalance

    households: list[tuple[list[AccountSpec], LedgerState]] = []
    taken = 0
    for household, specs in book.households().items():  # decoded before the clock starts
        if taken >= sample:
            break
        households.append((specs, book.ledgers[household]))
        taken += len(specs)
    first_specs, first_ledger = households[0]
    rebalance(  # warm-up, as each worker does before it forks its pool
        RebalanceRequest(
            as_of=market.as_of, account=first_specs[0], ledger=first_ledger, market=market
        )
    )
    done = 0
    t0 = time.perf_counter()
    for specs, staged in households:
        ledger = staged
        for k, spec in enumerate(specs):
            if done >= sample:
                break
            done += 1
            request = RebalanceRequest(
                as_of=market.as_of, account=spec, ledger=ledger, market=market
            )
            try:
                outcome = rebalance(request)
            except TaxviewError:
                continue  # a rejected/failed account costs its time in both runs
            if k + 1 < len(specs) and outcome.trades:
                ledger = book_outcome(ledger, outcome, account_type=spec.account_type)
    return (time.perf_counter() - t0) / max(done, 1)


def bench_fleet(
    *,
    accounts: int,
    names: int,
    workers: int,
    seed: int,
    inline_sample: int,
    settings: Settings,
    as_of: dt.date = dt.date(2025, 6, 2),
) -> dict[str, Any]:
    """Run the benchmark; returns the JSON line's fields."""
    from shared.examples import synthetic_book_stream

    # Household by household into compressed ledgers: the producer never holds every lot.
    market, pairs = synthetic_book_stream(accounts=accounts, names=names, seed=seed, as_of=as_of)
    book = book_from_stream(market.as_of, pairs)
    inline_per_account = inline_seconds_per_account(book, market, inline_sample)

    with EmbeddedFleet(settings, workers=1, concurrency=workers) as fleet:
        app = client_app(fleet.settings)
        client = connect(fleet.settings.redis_url)
        wait_for_workers(app, 1)
        stats = run_night(
            client=client,
            app=app,
            book=book,
            market=market,
            ttl_s=fleet.settings.results_ttl_s,
            progress_out=None,
            check_store=False,
        )
        not_ok = [
            f"{a}: {o.status}: {getattr(o, 'reason', '')}"
            # Only the not-ok outcomes: decoding all 10,000 (~45 KB each) peaked at ~2 GB.
            for a, o in outcomes_with_status(client, market.as_of, {"failed", "rejected"}).items()
        ]
        app.close()
        client.close()
    inline_wall = inline_per_account * accounts / workers
    return {
        "accounts": accounts,
        "names": names,
        "workers": workers,
        "accounts_per_s": round(stats.accounts_per_s, 2),
        "overhead_vs_inline": round(stats.wall_s / inline_wall - 1, 4),
        "redis_peak_mb": round(stats.redis_peak_mb, 1),
        "fleet_wall_s": round(stats.wall_s, 2),
        "inline_s_per_account": round(inline_per_account, 5),
        "done": stats.progress.done,
        "rejected": stats.progress.rejected,
        "failed": stats.progress.failed,
        "first_not_ok": not_ok[:1],
    }
