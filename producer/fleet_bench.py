"""``taxview bench fleet``: fleet throughput against the same accounts solved in a plain loop.

``overhead_vs_inline = fleet wall ÷ (inline seconds per account × accounts ÷ workers) − 1``: what
the broker, the results store, serialisation and scheduling cost on top of the solves.  The fleet
clock starts once the embedded workers answer a ping (process start-up is not throughput) and
stops when the last outcome is stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from typing import Any

from producer.book import book_from_pairs
from producer.broker import client_app
from producer.embedded import EmbeddedFleet
from producer.nightly import run_night
from producer.results_reader import connect
from shared.config import Settings
from shared.errors import TaxviewError
from shared.messages import RebalanceRequest


def wait_for_workers(app: Any, expected: int, timeout_s: float = 120.0) -> None:
    """Block until ``expected`` workers answer a broadcast ping.

    Raises:
        TaxviewError: they did not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if len(replies) >= expected:
            return
    raise TaxviewError(f"only some of {expected} workers answered within {timeout_s:.0f}s")


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
    from shared.examples import synthetic_book
    from shared.rebalance import rebalance

    market, pairs = synthetic_book(accounts=accounts, names=names, seed=seed, as_of=as_of)
    book = book_from_pairs(market.as_of, pairs)
    sample = book.accounts[: min(inline_sample, len(book.accounts))]
    rebalance(  # warm-up, as each pool process does at start
        RebalanceRequest(
            as_of=market.as_of,
            account=sample[0],
            ledger=book.ledgers[sample[0].household_id or sample[0].account_id],
            market=market,
        )
    )
    t0 = time.perf_counter()
    for spec in sample:
        household = spec.household_id or spec.account_id
        # A rejected/failed account costs its time in both runs.
        with contextlib.suppress(TaxviewError):
            rebalance(
                RebalanceRequest(
                    as_of=market.as_of, account=spec, ledger=book.ledgers[household], market=market
                )
            )
    inline_per_account = (time.perf_counter() - t0) / len(sample)

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
    }
