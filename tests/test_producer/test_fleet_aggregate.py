"""The aggregator: completeness check naming what is missing, exact folds, reports and the next
day's book with the night's trades booked through the ledger."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal

import msgspec
import pytest

from producer.aggregate import IncompleteNight, aggregate
from producer.book import book_from_pairs, read_book
from producer.cli import main
from producer.embedded import RedisServer
from producer.enqueue import plan_night, write_manifest
from producer.results_reader import ManifestEntry, connect
from shared import pnl
from shared.errors import InputError
from shared.examples import synthetic_book
from shared.ledger import cents
from shared.messages import Solved

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def night(inline_night):
    market, pairs = synthetic_book(accounts=6, names=15, seed=4, as_of=DAY)
    book = book_from_pairs(market.as_of, pairs)
    manifest = {
        task.account.account_id: ManifestEntry(
            household=task.household_id,
            index=task.household_index,
            size=task.household_size,
            strategy=task.account.strategy,
        )
        for chain in plan_night(book, market.as_of)
        for task in chain
    }
    return book, market, manifest, inline_night(book, market)


def test_a_night_with_a_missing_account_is_refused_and_the_account_named(night, tmp_path) -> None:
    _, market, manifest, outcomes = night
    missing = sorted(outcomes)[2]
    partial = {a: o for a, o in outcomes.items() if a != missing}
    with pytest.raises(IncompleteNight) as err:
        aggregate(market.as_of, manifest, partial, tmp_path / "out")
    assert missing in str(err.value) and err.value.missing == [missing]
    assert not (tmp_path / "out" / "firm_pnl.json").exists()

    summary = aggregate(market.as_of, manifest, partial, tmp_path / "out", allow_partial=True)
    assert not summary.complete and summary.missing == [missing]
    rows = list(csv.DictReader((tmp_path / "out" / "not_ok.csv").open()))
    assert {"account_id": missing, "status": "missing"}.items() <= next(
        r for r in rows if r["account_id"] == missing
    ).items()


def test_the_reports_add_up_to_the_firm_total(night, tmp_path) -> None:
    book, market, manifest, outcomes = night
    summary = aggregate(market.as_of, manifest, outcomes, tmp_path, book=book)
    firm = json.loads((tmp_path / "firm_pnl.json").read_text())
    assert firm["complete"] and firm["received"] == 6
    total = pnl.fold(pnl.account_pnl(o) for o in outcomes.values())
    assert summary.totals == total.row() == firm["totals"]
    for name, key in (
        ("pnl_by_account.csv", "account_id"),
        ("pnl_by_household.csv", "household_id"),
    ):
        rows = list(csv.DictReader((tmp_path / name).open()))
        assert sum(Decimal(r["st_net_usd"]) for r in rows) == total.st_net_usd
        assert sum(int(r["accounts"]) for r in rows) == 6, key
    trades = list(csv.DictReader((tmp_path / "trades.csv").open()))
    solved = [o for o in outcomes.values() if isinstance(o, Solved)]
    assert len(trades) == sum(len(o.trades) for o in solved) == total.trades
    assert all(t["lot_id"] for t in trades), "every trade names its lot"
    assert len((tmp_path / "outcomes.jsonl").read_text().splitlines()) == 6


def test_the_next_book_holds_the_nights_trades(night, tmp_path) -> None:
    book, market, manifest, outcomes = night
    aggregate(market.as_of, manifest, outcomes, tmp_path, book=book)
    nxt = read_book(tmp_path / "next_book")

    def shares(b) -> dict[tuple[str, str], Decimal]:
        out: dict[tuple[str, str], Decimal] = {}
        for state in b.ledgers.values():
            for lot in state.lots:
                key = (lot.account, lot.symbol)
                out[key] = out.get(key, Decimal(0)) + (-lot.quantity if lot.short else lot.quantity)
        return out

    before, after = shares(book), shares(nxt)
    expected = dict(before)
    for o in outcomes.values():
        if isinstance(o, Solved):
            for t in o.trades:
                sign = 1 if t.side in ("buy", "cover") else -1
                key = (o.account_id, t.symbol)
                expected[key] = expected.get(key, Decimal(0)) + sign * t.quantity
    assert {k: v for k, v in expected.items() if v} == {k: v for k, v in after.items() if v}
    traded = [o for o in outcomes.values() if isinstance(o, Solved) and o.trades]
    assert traded, "the night must trade for this test to mean anything"
    cash = {a.account_id: a.cash_usd for a in nxt.accounts}
    for o in traded:
        old = next(a.cash_usd for a in book.accounts if a.account_id == o.account_id)
        flow = sum(
            (t.notional_usd if t.side in ("sell", "short") else -t.notional_usd for t in o.trades),
            Decimal(0),
        )
        assert cash[o.account_id] == cents(old + flow)


def test_an_aggregate_killed_half_way_leaves_no_firm_pnl_saying_complete(
    night, tmp_path, monkeypatch
) -> None:
    # Fleet fault audit: a re-run into a completed night's directory, killed while it rewrote
    # next_book, left `"complete": true` beside a third of the lots.  firm_pnl.json is removed
    # first and written last; the next_book without its book.json is refused (test_fleet_book).
    import producer.aggregate as agg

    book, market, manifest, outcomes = night
    aggregate(market.as_of, manifest, outcomes, tmp_path, book=book)
    assert json.loads((tmp_path / "firm_pnl.json").read_text())["complete"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(agg, "write_book", killed)
    with pytest.raises(KeyboardInterrupt):
        aggregate(market.as_of, manifest, outcomes, tmp_path, book=book)
    assert not (tmp_path / "firm_pnl.json").exists()


def test_taxview_aggregate_exits_2_naming_the_missing_account(night, tmp_path, capsys) -> None:
    book, market, _, _ = night
    with RedisServer() as server:
        client = connect(f"{server.url}/1")
        write_manifest(client, market.as_of, plan_night(book, market.as_of), ttl_s=600)

        def aggregate_cli(out: str, *extra: str) -> int:
            urls = ["--broker-url", f"{server.url}/0", "--redis-url", f"{server.url}/1"]
            day = market.as_of.isoformat()
            return main(["aggregate", "--date", day, "--out", str(tmp_path / out), *extra, *urls])

        rc = aggregate_cli("agg")
        err = capsys.readouterr().err
        assert rc == 2 and "6 account(s) have no outcome" in err
        assert sorted(a.account_id for a in book.accounts)[0] in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        # Sweep only once the workers are idle: while they solve, the rest are still queued
        # (fleet fault audit: a sweep at 54/200 re-sent 146 queued accounts).
        assert "once they are idle" in err
        # Published partial: exit 1, "complete": false, and a line saying so (fleet fault audit:
        # only the JSON said it).
        rc = aggregate_cli("partial", "--allow-partial")
        client.close()
    out, err = capsys.readouterr()
    assert rc == 1 and json.loads(out)["complete"] is False
    assert "published PARTIAL" in err and "6 account(s) missing" in err


def test_the_next_book_carries_the_wash_window_and_runs_the_next_trading_day(
    night, tmp_path, inline_night
) -> None:
    book, market, manifest, outcomes = night
    aggregate(market.as_of, manifest, outcomes, tmp_path / "d1", book=book)
    nxt = read_book(tmp_path / "d1" / "next_book")
    assert nxt.as_of == market.as_of
    household = {a.account_id: a.household_id or a.account_id for a in book.accounts}
    pending = {
        (p.account, p.lot_id, p.symbol) for s in nxt.ledgers.values() for p in s.pending_losses
    }
    recent = {(r.account, r.symbol) for s in nxt.ledgers.values() for r in s.recent_purchases}
    losses: dict[str, set[str]] = {}
    for o in outcomes.values():
        if not isinstance(o, Solved):
            continue
        for s in o.realized:  # IRC §1091(a): a loss sale bars buys for the next 30 days
            if s.gain_usd < 0:
                assert (o.account_id, s.lot_id, s.symbol) in pending
                losses.setdefault(household[o.account_id], set()).add(s.symbol)
        for t in o.trades:
            if t.side == "buy":
                assert (o.account_id, t.symbol) in recent
    assert losses, "the night must harvest for this test to mean anything"

    # The next trading day, from the next book (the same synthetic market one session later).
    market2, _ = synthetic_book(accounts=1, names=15, seed=4, as_of=DAY + dt.timedelta(days=1))
    assert market2.as_of == DAY + dt.timedelta(days=1)
    outcomes2 = inline_night(nxt, market2)
    assert sorted(outcomes2) == sorted(outcomes)
    assert all(o.status in ("ok", "relaxed", "held") for o in outcomes2.values())
    for o in outcomes2.values():
        bought = {t.symbol for t in o.trades if t.side == "buy"}
        assert not bought & losses.get(household[o.account_id], set()), o.account_id
        assert all(s.disallowed_loss_usd == 0 for s in o.realized)
    manifest2 = {a: manifest[a] for a in manifest}
    summary = aggregate(market2.as_of, manifest2, outcomes2, tmp_path / "d2", book=nxt)
    assert summary.complete
    assert read_book(tmp_path / "d2" / "next_book").as_of == market2.as_of


def test_aggregating_with_another_nights_book_is_refused_naming_the_accounts(
    night, tmp_path
) -> None:
    book, market, manifest, outcomes = night
    dropped = sorted(a.account_id for a in book.accounts)[0]
    other = msgspec.structs.replace(
        book, accounts=[a for a in book.accounts if a.account_id != dropped]
    )
    with pytest.raises(InputError) as err:
        aggregate(market.as_of, manifest, outcomes, tmp_path / "x", book=other)
    assert dropped in str(err.value) and err.value.field == "--book"
    later = msgspec.structs.replace(book, as_of=market.as_of + dt.timedelta(days=1))
    with pytest.raises(InputError, match="after the night"):
        aggregate(market.as_of, manifest, outcomes, tmp_path / "y", book=later)
    assert not (tmp_path / "x" / "firm_pnl.json").exists()


def test_a_reused_folder_keeps_no_output_of_an_earlier_run_this_one_does_not_write(
    night, tmp_path
) -> None:
    # Contract audit, 2026-12-08: aggregate without --book into an earlier run's folder left
    # that run's next_book/ and wash_amendments.csv beside its own trades.
    book, market, manifest, outcomes = night
    aggregate(market.as_of, manifest, outcomes, tmp_path / "d", book=book)
    assert (tmp_path / "d" / "next_book" / "book.json").exists()
    aggregate(market.as_of, manifest, outcomes, tmp_path / "d")
    assert not (tmp_path / "d" / "next_book").exists()
    assert not (tmp_path / "d" / "wash_amendments.csv").exists()
    summary = json.loads((tmp_path / "d" / "firm_pnl.json").read_text())
    # the documented order (docs/fleet.md), not alphabetical (contract audit)
    assert list(summary)[:6] == ["as_of", "complete", "expected", "received", "missing", "totals"]


def test_a_directory_where_a_report_goes_is_refused_before_anything_is_written(
    night, tmp_path
) -> None:
    book, market, manifest, outcomes = night
    (tmp_path / "d" / "realized.csv").mkdir(parents=True)
    with pytest.raises(InputError, match=r"realized.csv: it is a directory") as err:
        aggregate(market.as_of, manifest, outcomes, tmp_path / "d", book=book)
    assert err.value.field == "--out"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["realized.csv"]


def test_a_book_that_already_holds_the_nights_trades_is_refused(night, tmp_path) -> None:
    book, market, manifest, outcomes = night
    aggregate(market.as_of, manifest, outcomes, tmp_path / "d1", book=book)
    nxt = read_book(tmp_path / "d1" / "next_book")  # as_of is the night too
    with pytest.raises(InputError) as err:  # booking the night twice would sell lots twice
        aggregate(market.as_of, manifest, outcomes, tmp_path / "again", book=nxt)
    assert "already holds" in str(err.value) and err.value.field == "--book"
    assert not (tmp_path / "again" / "next_book").exists()
    # The history is optional (nights audit, 2026-12-08: without it the night ran twice on its
    # own next book): the lots its buys opened and its window memory carry the night's ids.
    bare = msgspec.structs.replace(nxt, history=[])
    with pytest.raises(InputError) as err:
        aggregate(market.as_of, manifest, outcomes, tmp_path / "again", book=bare)
    assert "already holds" in str(err.value) and err.value.field == "--book"


def test_a_held_account_in_not_ok_says_what_was_relaxed_and_which_limits_its_book_misses(
    night, tmp_path
) -> None:
    _, market, manifest, outcomes = night
    account, solved = next((a, o) for a, o in sorted(outcomes.items()) if isinstance(o, Solved))
    held = msgspec.structs.replace(
        solved,
        status="held",
        trades=[],
        relaxations=["tilt", "te_budget×1.5", "no_te_budget", "hold"],
        limit_breaches=[f"held: w > max_w: N{k} (0.0012)" for k in range(5)],
    )
    aggregate(market.as_of, manifest, {**outcomes, account: held}, tmp_path)
    row = next(
        r for r in csv.DictReader((tmp_path / "not_ok.csv").open()) if r["account_id"] == account
    )
    assert row["status"] == "held"
    assert row["reason"] == (
        "held: no trade list is feasible even after relaxing tilt, te_budget×1.5, no_te_budget; "
        "the unchanged book misses w > max_w: N0 (0.0012); w > max_w: N1 (0.0012); "
        "w > max_w: N2 (0.0012) (+2 more)"
    )


def test_a_corrupt_or_misfiled_stored_outcome_is_refused_naming_the_account(night) -> None:
    # Fleet fault audit: an undecodable outcome was a 23-line traceback with the "partial night"
    # exit code; one filed under another account was counted twice, its own account silently
    # absent from a night published as complete.
    import fakeredis

    from producer import results_reader as reader
    from shared import results_keys as keys

    _, market, _, outcomes = night
    first, second = sorted(outcomes)[:2]
    client = fakeredis.FakeRedis()
    field = keys.results_key(market.as_of)
    for account, outcome in outcomes.items():
        client.hset(field, account, msgspec.json.encode(outcome))
    assert reader.outcomes(client, market.as_of) == dict(sorted(outcomes.items()))
    client.hset(field, first, msgspec.json.encode(outcomes[second]))
    with pytest.raises(InputError, match=f"belongs to account {second}") as err:
        reader.outcomes(client, market.as_of)
    assert err.value.account == first and err.value.field == "outcome"
    client.hset(field, first, b"{not json")
    with pytest.raises(InputError, match="cannot be read") as err:
        reader.outcomes(client, market.as_of)
    assert err.value.account == first


def test_a_household_whose_ledger_its_accounts_were_rejected_on_is_carried_into_the_next_book() -> (
    None
):
    # Book audit: a pending loss the ledger refuses rejected its account, then stopped the
    # night while the next book was written (no firm_pnl.json, no next_book/).
    from producer.aggregate import next_book
    from shared.messages import PendingLoss, Rejected

    market, pairs = synthetic_book(accounts=3, names=15, seed=1, as_of=dt.date(2025, 6, 2))
    book = book_from_pairs(market.as_of, pairs)
    spec = book.accounts[0]
    household = next(h for h, specs in book.households().items() if spec in specs)
    bad = PendingLoss(
        txn="T1",
        account=spec.account_id,
        symbol=market.symbols[0],
        lot_id="L0",
        date_sold=market.as_of,
        quantity=Decimal(0),
        sold_quantity=Decimal(10),
        loss_usd=Decimal(50),
        acquired=market.as_of,
    )
    broken = msgspec.structs.replace(book.ledgers[household], pending_losses=[bad])
    book = msgspec.structs.replace(book, ledgers={**book.ledgers, household: broken})
    outcomes = {
        a.account_id: Rejected(
            account_id=a.account_id,
            household_id=household,
            as_of=market.as_of,
            field="x",
            reason="x",
        )
        for a in book.households()[household]
    }
    after = next_book(book, market.as_of, outcomes)
    assert after.ledgers[household] is broken
    assert set(after.ledgers) == set(book.ledgers)


def test_the_next_book_books_a_household_in_the_order_its_chain_was_enqueued(monkeypatch) -> None:
    # Diff review: a night enqueued by a taxview that ordered the chains otherwise was booked in
    # the new order; a replacement lot's basis and holding period then differed from the
    # workers' realized slices.  The manifest's `index` says the order the workers solved in.
    import shared.rebalance as rb
    from producer.aggregate import next_book
    from shared.messages import RebalanceRequest

    market, pairs = synthetic_book(accounts=6, names=15, seed=2, as_of=dt.date(2025, 6, 2))
    book = book_from_pairs(market.as_of, pairs)
    household, specs = next((h, s) for h, s in book.households().items() if len(s) >= 2)
    outcomes = {
        spec.account_id: rb.rebalance(
            RebalanceRequest(
                as_of=market.as_of, account=spec, ledger=book.ledgers[household], market=market
            )
        )
        for spec in specs
    }
    assert all(isinstance(o, Solved) and o.trades for o in outcomes.values())
    booked: list[str] = []
    real = rb.outcome_transactions

    def spy(outcome, *, account_type):  # type: ignore[no-untyped-def]
        booked.append(outcome.account_id)
        return real(outcome, account_type=account_type)

    monkeypatch.setattr(rb, "outcome_transactions", spy)
    ran = [s.account_id for s in specs]
    next_book(book, market.as_of, outcomes)
    assert booked == ran
    booked.clear()
    enqueued = {a: k for k, a in enumerate(reversed(ran))}
    next_book(book, market.as_of, outcomes, order=enqueued)
    assert booked == list(reversed(ran))


def test_no_manifest_on_a_weekend_says_no_night_runs_then_not_to_enqueue_it() -> None:
    # Contracts audit: `aggregate --date <a Saturday>` said to run `taxview enqueue --date` for
    # that Saturday, which enqueue refuses.
    from producer.aggregate import check_complete

    with pytest.raises(InputError) as saturday:
        check_complete(dt.date(2024, 3, 2), {}, {}, allow_partial=False)
    assert "not an NYSE session" in saturday.value.reason
    assert "enqueue" not in saturday.value.reason
    with pytest.raises(InputError) as monday:
        check_complete(dt.date(2024, 3, 4), {}, {}, allow_partial=False)
    assert "run `taxview enqueue --date 2024-03-04` first" in monday.value.reason


@pytest.mark.parametrize("bought_days_ago", [2, 35])
def test_a_wash_sale_that_reading_the_book_makes_is_listed_for_the_earlier_sales_8949_line(
    night, tmp_path, capsys, bought_days_ago
) -> None:
    # Review audit (2026-12-07): a client's purchase entered into the book two days after a
    # harvest is matched with the harvest's pending loss when the book is read (its basis takes
    # the loss), but no output of the night said that the earlier sale's loss is now disallowed.
    # 35 days ago: a purchase 29 days *before* the harvest, keyed in late (IRC §1091(a): "within
    # 30 days before or after"; matched on reading since the eighth session of 2026-12-07).
    from shared.messages import Lot, PendingLoss

    book, market, manifest, outcomes = night
    spec = book.accounts[0]
    household = next(h for h, specs in book.households().items() if spec in specs)
    sym = market.symbols[0]
    sold, bought = DAY - dt.timedelta(days=6), DAY - dt.timedelta(days=bought_days_ago)
    loss = PendingLoss(
        txn="N-6:1",
        account=spec.account_id,
        symbol=sym,
        lot_id="GONE",
        date_sold=sold,
        quantity=Decimal(10),
        sold_quantity=Decimal(10),
        loss_usd=Decimal("50.00"),
        acquired=dt.date(2025, 1, 6),
    )
    hand = Lot(
        account=spec.account_id,
        symbol=sym,
        lot_id="CLIENT-1",
        quantity=Decimal(4),
        trade_date=bought,
        acquired=bought,
        cost_basis_usd=Decimal("400.00"),
    )
    state = book.ledgers[household]
    edited = msgspec.structs.replace(
        state, lots=[*state.lots, hand], pending_losses=[*state.pending_losses, loss]
    )
    book = msgspec.structs.replace(book, ledgers={**book.ledgers, household: edited})
    summary = aggregate(market.as_of, manifest, outcomes, tmp_path, book=book)
    rows = list(csv.DictReader((tmp_path / "wash_amendments.csv").open()))
    # IRC §1091(a), (d): 4 of the 10 loss shares, 50.00 × 4/10 = 20.00, into CLIENT-1's basis.
    assert [
        (r["loss_txn"], r["symbol"], r["replacement_lot_id"], r["quantity"], r["disallowed_usd"])
        for r in rows
    ] == [("N-6:1", sym, "CLIENT-1", "4", "20.00")]
    assert rows[0]["household_id"] == household and rows[0]["permanent"] == "false"
    assert summary.book_washes == 1
    assert json.loads((tmp_path / "firm_pnl.json").read_text())["book_washes"] == 1
    lots = read_book(tmp_path / "next_book").ledgers[household].lots
    assert [x.cost_basis_usd for x in lots if x.lot_id == "CLIENT-1"] == [Decimal("420.00")]
    # The book as taxview writes it makes none: a header only.
    again = aggregate(market.as_of, manifest, outcomes, tmp_path / "plain", book=night[0])
    assert again.book_washes == 0
    assert (tmp_path / "plain" / "wash_amendments.csv").read_text().count("\n") == 1
