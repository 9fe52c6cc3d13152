"""What the optimizer asks the ledger (IRC §1091 windows as restrictions), the snapshot it
ships to workers, and the copy it uses for post-solve checks."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import pytest

from shared.errors import InputError
from shared.ledger import Ledger
from shared.messages import LedgerState, Lot, Transaction, decode_json, encode_json, to_wire

D = Decimal
_ids = itertools.count(1)


def tx(
    date: str,
    side: str,
    qty: str,
    price: str,
    *,
    sym: str = "X",
    acct: str = "A",
    kind: str = "taxable",
    lot: str = "",
) -> Transaction:
    return Transaction(
        id=f"r{next(_ids)}",
        date=dt.date.fromisoformat(date),
        account=acct,
        account_type=kind,  # type: ignore[arg-type]
        symbol=sym,
        side=side,  # type: ignore[arg-type]
        quantity=D(qty),
        price=D(price),
        lot_id=lot,
    )


def day(s: str) -> dt.date:
    return dt.date.fromisoformat(s)


def test_a_loss_sale_blocks_buys_of_the_name_and_its_twins_for_30_days() -> None:
    led = Ledger(identical=[["GOOG", "GOOGL"]])
    led.apply(tx("2026-09-01", "buy", "40", "100", sym="GOOG"))
    led.apply(tx("2026-11-10", "sell", "40", "90", sym="GOOG"))
    r = led.restrictions(day("2026-11-10"))
    assert r.no_buy == {
        "GOOG": "loss sale of 40 sh GOOG in acct A on 2026-11-10 (IRC §1091)",
        "GOOGL": "loss sale of 40 sh GOOG in acct A on 2026-11-10 (IRC §1091)",
    }
    assert r.is_blocked_buy("GOOGL") and not r.is_blocked_buy("MSFT")
    assert led.restrictions(day("2026-12-10")).is_blocked_buy("GOOG")
    assert led.restrictions(day("2026-12-11")).no_buy == {}


def test_a_gain_sale_blocks_nothing() -> None:
    led = Ledger()
    led.apply(tx("2026-09-01", "buy", "40", "100"))
    led.apply(tx("2026-11-10", "sell", "40", "110"))
    assert led.restrictions(day("2026-11-10")).no_buy == {}


def test_a_loss_already_fully_replaced_no_longer_blocks_buys() -> None:
    led = Ledger()
    led.apply(tx("2026-09-01", "buy", "40", "100"))
    led.apply(tx("2026-11-10", "sell", "40", "90"))
    led.apply(tx("2026-11-12", "buy", "25", "90", acct="B"))
    r = led.restrictions(day("2026-11-12"))
    assert r.no_buy == {"X": "loss sale of 15 sh X in acct A on 2026-11-10 (IRC §1091)"}
    led.apply(tx("2026-11-13", "buy", "15", "90", acct="B"))
    assert led.restrictions(day("2026-11-13")).no_buy == {}


def test_a_recent_purchase_anywhere_in_the_household_blocks_loss_sales_of_other_lots() -> None:
    led = Ledger()
    led.apply(tx("2026-01-05", "buy", "10", "100", lot="OLD"))
    led.apply(tx("2026-03-02", "buy", "10", "80", acct="IRA", kind="ira", lot="I1"))
    r = led.restrictions(day("2026-03-20"))
    assert r.no_loss_sale_lots == {
        ("A", "OLD"): "purchase of 10 sh X in acct IRA on 2026-03-02 (IRC §1091)"
    }
    assert r.is_blocked_loss_sale("A", "OLD") and not r.is_blocked_loss_sale("IRA", "I1")
    assert led.restrictions(day("2026-04-01")).is_blocked_loss_sale("A", "OLD")
    assert led.restrictions(day("2026-04-02")).no_loss_sale_lots == {}


def test_a_lot_is_never_blocked_by_its_own_purchase() -> None:
    led = Ledger()
    led.apply(tx("2026-03-02", "buy", "10", "100", lot="NEW"))
    led.apply(tx("2026-03-03", "sell", "4", "100", lot="NEW"))
    assert led.restrictions(day("2026-03-05")).no_loss_sale_lots == {}


def test_a_recent_purchase_that_already_absorbed_a_loss_blocks_nothing_more() -> None:
    led = Ledger()
    led.apply(tx("2026-01-05", "buy", "10", "100", lot="L1"))
    led.apply(tx("2026-01-06", "buy", "10", "100", lot="L2"))
    led.apply(tx("2026-03-02", "sell", "10", "80", lot="L1"))
    led.apply(tx("2026-03-03", "buy", "10", "80", lot="R"))
    r = led.restrictions(day("2026-03-03"))
    assert r.no_loss_sale_lots == {} and r.no_buy == {}


def test_a_loss_on_a_cover_blocks_new_shorts_and_buys() -> None:
    led = Ledger()
    led.apply(tx("2026-03-02", "short", "10", "50", lot="S1"))
    led.apply(tx("2026-03-09", "cover", "10", "55", lot="S1"))
    r = led.restrictions(day("2026-03-10"))
    assert set(r.no_short) == {"X"} and set(r.no_buy) == {"X"}


def test_a_recent_short_sale_blocks_covering_another_short_lot_at_a_loss_but_not_long_sales() -> (
    None
):
    led = Ledger()
    led.apply(tx("2026-01-05", "short", "10", "50", lot="S1"))
    led.apply(tx("2026-01-05", "buy", "10", "50", acct="B", lot="L1"))
    led.apply(tx("2026-03-02", "short", "10", "45", lot="S2"))
    r = led.restrictions(day("2026-03-03"))
    assert set(r.no_loss_sale_lots) == {("A", "S1")}


def test_the_snapshot_survives_the_wire_and_a_resumed_ledger_washes_a_pending_loss() -> None:
    led = Ledger(identical=[["GOOG", "GOOGL"]], household_id="H1")
    led.apply(tx("2026-01-05", "buy", "30", "100", sym="GOOG", lot="G1"))
    led.apply(tx("2026-03-02", "sell", "30", "90", sym="GOOG", lot="G1"))  # loss 300
    led.apply(tx("2026-03-03", "buy", "10", "90", sym="GOOGL", acct="B", lot="B1"))
    state = led.state(day("2026-03-03"))
    assert [(p.quantity, p.loss_usd) for p in state.pending_losses] == [(D(20), D("300.00"))]
    assert [lot.replacement_used for lot in state.lots] == [True]
    wire = decode_json(encode_json(to_wire(state)), LedgerState)
    assert wire == state
    resumed = Ledger.from_state(wire)
    both = [resumed, led]
    for book in both:
        book.apply(tx("2026-03-20", "buy", "20", "88", sym="GOOG", acct="B", lot="B2"))
    assert resumed.open_lots() == led.open_lots()
    assert resumed.wash_matches[-1].disallowed_usd == D("200.00")
    assert led.sales[0].disallowed_loss == D("300.00")
    assert resumed.state(day("2026-03-20")) == led.state(day("2026-03-20"))


def test_a_resumed_ledger_refuses_a_transaction_dated_before_the_snapshot() -> None:
    led = Ledger()
    led.apply(tx("2026-03-02", "buy", "1", "1"))
    resumed = Ledger.from_state(led.state(day("2026-03-05")))
    with pytest.raises(InputError) as err:
        resumed.apply(tx("2026-03-04", "buy", "1", "1"))
    assert getattr(err.value, "field", None) == "date"


def test_a_snapshot_with_a_non_positive_lot_is_refused_naming_the_lot() -> None:
    bad = Lot(
        account="A",
        symbol="X",
        lot_id="L1",
        quantity=D(0),
        trade_date=day("2026-01-02"),
        acquired=day("2026-01-02"),
        cost_basis_usd=D(0),
    )
    with pytest.raises(InputError) as err:
        Ledger.from_state(LedgerState(as_of=day("2026-01-02"), lots=[bad]))
    assert err.value.account == "A" and err.value.field == "lots[0].quantity"


def test_a_copy_is_independent_of_the_original() -> None:
    led = Ledger()
    led.apply(tx("2026-01-05", "buy", "10", "100", lot="L1"))
    led.apply(tx("2026-03-02", "sell", "5", "90", lot="L1"))
    before = led.state(day("2026-03-02"))
    trial = led.copy()
    trial.apply(tx("2026-03-03", "buy", "10", "90", lot="L2"))
    trial.apply(tx("2026-03-03", "sell", "5", "80", lot="L1"))
    assert led.state(day("2026-03-02")) == before
    assert len(led.sales) == 1 and led.sales[0].adjustment_code == ""
    assert trial.sales[0].adjustment_code == "W"


def test_restrictions_of_one_account_are_the_households_restricted_lots_of_that_account() -> None:
    from shared.examples import DEFAULT_AS_OF, synthetic_book

    _, book = synthetic_book(accounts=6, names=40, seed=3, as_of=DEFAULT_AS_OF)
    checked = 0
    for spec, state in book:
        ledger = Ledger.from_state(state)
        whole = ledger.restrictions(DEFAULT_AS_OF)
        mine = ledger.restrictions(DEFAULT_AS_OF, account=spec.account_id)
        assert mine.no_buy == whole.no_buy
        assert mine.no_short == whole.no_short
        assert mine.no_loss_sale_lots == {
            k: v for k, v in whole.no_loss_sale_lots.items() if k[0] == spec.account_id
        }
        checked += len(mine.no_loss_sale_lots)
    assert checked > 0, "the sample book restricts no lot: the test would prove nothing"
