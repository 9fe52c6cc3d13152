"""The nightly loop's progress line: every line it draws is one snapshot of the store."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import fakeredis

from producer import nightly
from producer.book import book_from_pairs
from producer.results_reader import Progress
from shared import results_keys as keys
from shared.examples import synthetic_book

LINE = re.compile(r"(\d+)/(\d+) done \(ok (\d+), rejected (\d+), failed (\d+), retried (\d+)\)")


def test_every_progress_line_counts_the_same_outcomes_it_says_are_done(monkeypatch) -> None:
    market, pairs = synthetic_book(accounts=12, names=15, seed=3, as_of=dt.date(2025, 6, 2))
    book = book_from_pairs(market.as_of, pairs)
    accounts = sorted(a.account_id for a in book.accounts)
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(
        nightly, "send_chains", lambda app, client, chains, ledgers, ttl_s: sum(map(len, chains))
    )
    statuses = ["ok", "rejected", "relaxed", "failed"]

    def one_more_outcome(_: Progress) -> None:
        # a worker finishes one account between two polls
        done = client.hlen(keys.status_key(market.as_of))
        if done < len(accounts):
            client.hset(keys.status_key(market.as_of), accounts[done], statuses[done % 4])

    out = io.StringIO()
    stats = nightly.run_night(
        client=client,
        app=Any,
        book=book,
        market=market,
        ttl_s=60,
        poll_s=0.0,
        progress_out=out,
        on_poll=one_more_outcome,
        check_store=False,
    )
    lines = [LINE.search(part) for part in out.getvalue().split("\r") if part.strip()]
    counts = [tuple(int(g) for g in m.groups()) for m in lines if m]
    assert len(counts) >= 3, out.getvalue()  # lines drawn while the night ran, and the last
    for done, expected, ok, rejected, failed, _ in counts:
        assert expected == len(accounts)
        assert done == ok + rejected + failed, counts
    assert counts[-1][0] == len(accounts) and counts[-1][3] == 3 and counts[-1][4] == 3
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)
    assert stats.progress.done == len(accounts)
    assert out.getvalue().count(f"{len(accounts)}/{len(accounts)} done") == 1


def test_a_night_that_times_out_ends_on_a_consistent_line(monkeypatch) -> None:
    market, pairs = synthetic_book(accounts=5, names=15, seed=3, as_of=dt.date(2025, 6, 2))
    book = book_from_pairs(market.as_of, pairs)
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(
        nightly, "send_chains", lambda app, client, chains, ledgers, ttl_s: sum(map(len, chains))
    )
    accounts = sorted(a.account_id for a in book.accounts)

    def slow(_: Progress) -> None:
        done = client.hlen(keys.status_key(market.as_of))
        if done < 3:
            client.hset(keys.status_key(market.as_of), accounts[done], "rejected")

    out = io.StringIO()
    stats = nightly.run_night(
        client=client,
        app=Any,
        book=book,
        market=market,
        ttl_s=60,
        poll_s=0.0,
        progress_out=out,
        on_poll=slow,
        timeout_s=0.3,
        check_store=False,
    )
    last = [LINE.search(p) for p in out.getvalue().split("\r") if p.strip()][-1]
    assert last is not None
    done, _, ok, rejected, failed, _ = (int(g) for g in last.groups())
    assert (done, ok, rejected, failed) == (3, 0, 3, 0)
    assert stats.progress.rejected == 3
