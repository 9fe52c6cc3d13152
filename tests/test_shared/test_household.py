"""Booking an account's trades into its household ledger through the reduced ledger gives, lot
for lot, what booking into the whole household ledger gives (IRC §1091 across accounts)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from shared.errors import LedgerError
from shared.examples import synthetic_book
from shared.household import book_outcome, book_outcome_carried
from shared.ledger import Ledger
from shared.messages import (
    LedgerState,
    Lot,
    PendingLoss,
    RebalanceRequest,
    Solved,
    Trade,
    Transaction,
    encode_json,
)
from shared.rebalance import outcome_transactions, rebalance
from shared.types import AccountType

AS_OF = dt.date(2025, 6, 2)


def _whole(ledger: LedgerState, outcome: Solved, account_type: AccountType) -> LedgerState:
    book = Ledger.from_state(ledger)
    for txn in outcome_transactions(outcome, account_type=account_type):
        book.apply(txn)
    return book.state(outcome.as_of)


@pytest.fixture(scope="module")
def night() -> list[tuple[LedgerState, Solved, AccountType, LedgerState]]:
    """A small fresh book solved household by household: (ledger, outcome, type, next)."""
    market, pairs = synthetic_book(accounts=8, names=40, seed=3, as_of=AS_OF, steady_state=False)
    out = []
    ledgers: dict[str, LedgerState] = {}
    for spec, state in pairs:
        ledger = ledgers.get(state.household_id, state)
        outcome = rebalance(
            RebalanceRequest(as_of=market.as_of, account=spec, ledger=ledger, market=market)
        )
        after = _whole(ledger, outcome, spec.account_type)
        out.append((ledger, outcome, spec.account_type, after))
        ledgers[state.household_id] = after
    return out


@pytest.mark.slow
def test_booking_a_solved_night_through_the_reduced_ledger_equals_the_whole_household(
    night: list[tuple[LedgerState, Solved, AccountType, LedgerState]],
) -> None:
    assert any(o.trades for _, o, _, _ in night)
    for ledger, outcome, account_type, after in night:
        got = book_outcome(ledger, outcome, account_type=account_type)
        assert encode_json(got) == encode_json(after), outcome.account_id


def _lot(spec: str, day: dt.date, basis: str, account_type: AccountType = "taxable") -> Lot:
    account, symbol, lot_id, qty = spec.split()
    return Lot(
        account=account,
        symbol=symbol,
        lot_id=lot_id,
        quantity=Decimal(qty),
        trade_date=day,
        acquired=day,
        cost_basis_usd=Decimal(basis),
        account_type=account_type,
    )


def _household() -> LedgerState:
    old = AS_OF - dt.timedelta(days=400)
    recent = AS_OF - dt.timedelta(days=10)
    return LedgerState(
        as_of=AS_OF - dt.timedelta(days=1),
        household_id="H1",
        lots=[
            _lot("A XYZ a1 10", old, "1000.00"),
            _lot("B ABC b0 5", old, "500.00", "ira"),
            _lot("A ABC a2 10", old, "400.00"),
            _lot("B XYZ b1 4", recent, "360.00", "ira"),
            _lot("A XYZ a3 10", old - dt.timedelta(days=5), "900.00"),
            _lot("B QQQ b2 3", old, "300.00", "ira"),
        ],
    )


def _solved(trades: list[Trade]) -> Solved:
    return msgspec.convert(
        {
            "account_id": "A",
            "household_id": "H1",
            "as_of": AS_OF.isoformat(),
            "nav_usd": "0",
            "weights": {},
            "cash_w": 0.0,
            "trades": [msgspec.to_builtins(t) for t in trades],
            "realized": [],
            "realized_st_usd": "0",
            "realized_lt_usd": "0",
            "harvested_loss_usd": "0",
            "estimated_tax_usd": "0",
            "te_ex_ante": 0.0,
            "te_budget": 0.0,
            "factor_exposures": [],
            "solver": {
                "solver": "test",
                "status": "optimal",
                "iterations": 0,
                "solver_ms": 0.0,
                "total_ms": 0.0,
            },
        },
        Solved,
        strict=False,
    )


def _trade(symbol: str, side: str, qty: int, price: str, lot_id: str) -> Trade:
    return msgspec.convert(
        {
            "symbol": symbol,
            "side": side,
            "quantity": str(qty),
            "price": price,
            "notional_usd": str(Decimal(qty) * Decimal(price)),
            "lot_id": lot_id,
            "reason": "rebalance",
        },
        Trade,
        strict=False,
    )


def test_a_loss_washed_by_a_siblings_recent_ira_purchase_is_booked_as_on_the_whole_ledger() -> None:
    ledger = _household()
    outcome = _solved(
        [_trade("XYZ", "sell", 6, "80.00", "a1"), _trade("ABC", "buy", 2, "40.00", "new1")]
    )
    got = book_outcome(ledger, outcome, account_type="taxable")
    assert encode_json(got) == encode_json(_whole(ledger, outcome, "taxable"))
    b1 = next(lot for lot in got.lots if lot.lot_id == "b1")
    assert b1.replacement_used  # the IRA lot absorbed the loss (IRC §1091, Rev. Rul. 2008-5)
    assert [lot.lot_id for lot in got.lots][-1] == "new1"


def test_a_pending_loss_read_beside_a_late_entered_earlier_purchase_is_booked_as_on_the_whole() -> (
    None
):
    # A client's purchase of 2025-04-10 (53 days before the night, older than the 45 days
    # booking otherwise keeps) keyed in after the loss sale of 2025-05-08: reading the ledger
    # matches them (IRC §1091(a): within 30 days before the sale), the reduced ledger too.
    sold = AS_OF - dt.timedelta(days=25)
    ledger = msgspec.structs.replace(
        _household(),
        lots=[
            *_household().lots,
            _lot("B XYZ late 5", sold - dt.timedelta(days=28), "350.00", "ira"),
        ],
        pending_losses=[
            PendingLoss(
                txn="S1",
                account="A",
                symbol="XYZ",
                lot_id="a0",
                date_sold=sold,
                quantity=Decimal(8),
                loss_usd=Decimal("240.00"),
                sold_quantity=Decimal(8),
                acquired=sold - dt.timedelta(days=100),
            )
        ],
    )
    outcome = _solved([_trade("ABC", "buy", 2, "40.00", "new1")])
    got = book_outcome(ledger, outcome, account_type="taxable")
    assert encode_json(got) == encode_json(_whole(ledger, outcome, "taxable"))
    late = next(lot for lot in got.lots if lot.lot_id == "late")
    # 240 × 5/8 = 150.00 disallowed for good: an IRA replacement (Rev. Rul. 2008-5)
    assert (late.cost_basis_usd, late.replacement_used) == (Decimal("350.00"), True)


def test_a_buy_reusing_an_open_lot_id_is_refused_as_on_the_whole_ledger() -> None:
    outcome = _solved([_trade("QQQ", "buy", 1, "100.00", "a3")])
    with pytest.raises(LedgerError) as whole:
        _whole(_household(), outcome, "taxable")
    with pytest.raises(LedgerError) as reduced:
        book_outcome(_household(), outcome, account_type="taxable")
    assert str(reduced.value) == str(whole.value)


@pytest.mark.slow
def test_the_lots_booking_says_it_carried_over_are_the_very_lots_of_the_ledger(
    night: list[tuple[LedgerState, Solved, AccountType, LedgerState]],
) -> None:
    from shared import results_keys as keys

    checked = 0
    for ledger, outcome, account_type, _ in night:
        if not outcome.trades:
            continue
        booked = book_outcome_carried(ledger, outcome, account_type=account_type)
        assert booked.carried is not None
        assert len(booked.carried) == len(booked.state.lots)
        ids = {id(lot): i for i, lot in enumerate(ledger.lots)}
        assert booked.carried == [ids.get(id(lot), -1) for lot in booked.state.lots]
        assert 0 < booked.carried.count(-1) < len(booked.carried)
        # The worker's shortcut gives the lineage a search by identity gives.
        lineage = keys.Lineage("", len(ledger.lots), list(range(len(ledger.lots))))
        assert keys.carry(lineage, booked.carried) == keys.trace(ledger, lineage, booked.state)
        checked += 1
    assert checked


def _hl_txn(row: str) -> Transaction:
    """``id,date,account,symbol,side,quantity,price[,lot_id]``."""
    tid, day, account, symbol, side, qty, price, *lot = row.split(",")
    return Transaction(
        id=tid,
        date=dt.date.fromisoformat(day),
        account=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(qty),
        price=Decimal(price),
        lot_id=lot[0] if lot else "",
    )


def _hl_lot(row: str) -> Lot:
    """``account,symbol,lot_id,quantity,basis,date``."""
    account, symbol, lot_id, qty, basis, day = row.split(",")
    d = dt.date.fromisoformat(day)
    return Lot(
        account=account,
        symbol=symbol,
        lot_id=lot_id,
        quantity=Decimal(qty),
        cost_basis_usd=Decimal(basis),
        trade_date=d,
        acquired=d,
    )


def test_history_losses_read_ids_per_account_lots_of_a_gone_lot_and_washed_losses_once() -> None:
    # Review of the history memory: an id reused by another account hid a loss sale; a sale
    # naming a lot that is gone ignored the account's other lots; a loss the lots judge was
    # counted again though a purchase in the window may already hold it in its basis.
    from shared.household import history_losses

    as_of = dt.date(2024, 7, 1)
    history = [
        _hl_txn("T1,2024-01-02,ACC-1,CCC,buy,10,100,L9"),
        _hl_txn("T1,2024-06-21,ACC-4,AAA,sell,10,100"),  # the same id in another account
        _hl_txn("T2,2024-06-21,ACC-1,ccc,sell,10,90,L9"),  # lower case
        _hl_txn("T3,2024-06-22,ACC-1,DDD,sell,10,100,GONE"),
        _hl_txn("T4,2024-06-10,ACC-1,EEE,sell,10,100"),
        _hl_txn("T5,2024-06-15,ACC-2,EEE,buy,10,101,R1"),  # a replacement within 30 days
    ]
    lots = [
        _hl_lot("ACC-4,AAA,A0,5,600,2023-01-03"),  # 120/sh: the no-lot sale was a loss
        _hl_lot("ACC-1,DDD,D3,5,600,2023-02-03"),  # 120/sh: judges the sale of a gone lot
        _hl_lot("ACC-1,EEE,E0,5,650,2023-03-03"),  # 130/sh
    ]
    got = {(p.account, p.symbol): p.loss_usd for p in history_losses(history, lots, [], as_of)}
    assert got == {
        ("ACC-1", "CCC"): Decimal("100.00"),
        ("ACC-4", "AAA"): Decimal("200.00"),
        ("ACC-1", "DDD"): Decimal("200.00"),
        ("ACC-1", "EEE"): Decimal("0.00"),  # restricts, disallows nothing twice
    }


def _booked_c1(lots: list[Lot], as_of: dt.date) -> tuple[list[Lot], list[Decimal]]:
    """The household's C1 rows and pending loss shares once its history memory is read back
    through the ledger, as a night reads a book without window-memory files."""
    from shared.household import history_losses
    from shared.ledger import Ledger

    history = [
        _hl_txn("B1,2023-01-03,ACC-1,BBB,buy,100,60,L1"),
        _hl_txn("S1,2024-06-20,ACC-1,BBB,sell,66,50,L1"),  # a $660.00 loss
        _hl_txn("B2,2024-06-21,ACC-1,BBB,buy,40,51,C1"),  # the client buys back the next day
    ]
    pending = history_losses(history, lots, [], as_of)
    state = Ledger.from_state(LedgerState(as_of=as_of, lots=lots, pending_losses=pending)).state(
        as_of
    )
    return [x for x in state.lots if x.lot_id == "C1"], [p.quantity for p in state.pending_losses]


def test_a_loss_the_history_washes_into_a_lot_the_book_holds_unmarked_lands_in_that_lot_once() -> (
    None
):
    # Nightly audit (2026-12-07): a client's purchase after a harvest, entered by hand as a lot
    # at its price: the replay matched it (pending 26 of 66 shares), the lot kept $2,040.00 and
    # stayed free, so the $400.00 was in nobody's basis and C1 later absorbed another loss.
    as_of = dt.date(2024, 7, 1)
    l1 = _hl_lot("ACC-1,BBB,L1,34,2040,2023-01-03")
    c1, pending = _booked_c1([l1, _hl_lot("ACC-1,BBB,C1,40,2040,2024-06-21")], as_of)
    # IRC §1091(a), (d): 40 of the 66 loss shares are disallowed (660 × 40/66 = 400.00) and
    # added to C1's basis; §1223(3): C1's holding period includes L1's 534 days.
    assert [(x.quantity, x.cost_basis_usd, x.acquired, x.replacement_used) for x in c1] == [
        (Decimal(40), Decimal("2440.00"), dt.date(2023, 1, 4), True)
    ]
    assert pending == [Decimal(26)]
    # A book whose lots already carry the wash sale (the firm's own tax lots) is read as it is.
    marked = msgspec.structs.replace(
        _hl_lot("ACC-1,BBB,C1,40,2440,2024-06-21"),
        acquired=dt.date(2023, 1, 4),
        wash_adjustment_usd=Decimal("400.00"),
        replacement_used=True,
    )
    c1, pending = _booked_c1([l1, marked], as_of)
    assert [(x.cost_basis_usd, x.replacement_used) for x in c1] == [(Decimal("2440.00"), True)]
    assert pending == [Decimal(26)]
    # A LOTS.csv of `taxview realized` carries the adjustment and the tacked start but has no
    # replacement_used column: read as booked too (review audit: the $400.00 went in twice).
    exported = msgspec.structs.replace(marked, replacement_used=False)
    c1, pending = _booked_c1([l1, exported], as_of)
    assert [(x.cost_basis_usd, x.wash_adjustment_usd) for x in c1] == [
        (Decimal("2440.00"), Decimal("400.00"))
    ]
    assert pending == [Decimal(26)]


def _read_book(history: list[Transaction], lots: list[Lot], as_of: dt.date) -> LedgerState:
    """The book read as a night reads one without window-memory files."""
    from shared.household import history_losses

    pending = history_losses(history, lots, [], as_of)
    return Ledger.from_state(LedgerState(as_of=as_of, lots=lots, pending_losses=pending)).state(
        as_of
    )


def test_a_loss_the_history_washes_into_an_earlier_purchase_the_book_holds_raw_lands_in_it() -> (
    None
):
    # The client's purchase of 2024-06-10, ten days before the harvest, entered by hand as a
    # raw lot: the replay matches it backward (IRC §1091(a): within 30 days before the sale)
    # and reading the book puts that match into the lot (before 2026-12-07's eighth session
    # only purchases after the sale were; the $400.00 was in nobody's basis).
    from shared.household import history_losses
    from shared.ledger import Ledger

    as_of = dt.date(2024, 7, 1)
    history = [
        _hl_txn("B1,2023-01-03,ACC-1,BBB,buy,100,60,L1"),
        _hl_txn("B2,2024-06-10,ACC-2,BBB,buy,40,51,C0"),
        _hl_txn("S1,2024-06-20,ACC-1,BBB,sell,66,50,L1"),  # a $660.00 loss
    ]
    lots = [
        _hl_lot("ACC-1,BBB,L1,34,2040,2023-01-03"),
        _hl_lot("ACC-2,BBB,C0,40,2040,2024-06-10"),
    ]
    pending = history_losses(history, lots, [], as_of)
    ledger = Ledger.from_state(LedgerState(as_of=as_of, lots=lots, pending_losses=pending))
    (c0,) = [x for x in ledger.state(as_of).lots if x.lot_id == "C0"]
    # 660 × 40/66 = 400.00 into C0's basis; §1223(3): L1's 534 days tacked onto 2024-06-10.
    assert (c0.cost_basis_usd, c0.acquired, c0.replacement_used) == (
        Decimal("2440.00"),
        dt.date(2022, 12, 24),
        True,
    )
    assert [(m.replacement_lot_id, m.disallowed_usd) for m in ledger.wash_matches] == [
        ("C0", Decimal("400.00"))
    ]


def test_only_the_replacement_shares_the_book_still_holds_take_a_loss_back_on_reading() -> None:
    # Review audit (2026-12-07): the client sold 40 of the 100 replacement shares since; those
    # took $200.00 of the $500.00 into sale Q's loss, so only the 60 held take theirs back.
    history = [
        _hl_txn("B,2026-09-01,T1,AAA,buy,100,20,L"),
        _hl_txn("S,2026-11-10,T1,AAA,sell,100,15,L"),  # a $500.00 loss
        _hl_txn("P,2026-11-20,T1,AAA,buy,100,10,P"),  # replaces it (basis 1,500.00)
        _hl_txn("Q,2026-11-25,T1,AAA,sell,40,10,P"),  # 600.00 basis, 400.00 proceeds: −200.00
    ]
    state = _read_book(history, [_hl_lot("T1,AAA,P,60,600,2026-11-20")], dt.date(2026, 12, 1))
    # IRC §1091(d): 60 of S's 100 shares, 500 × 60/100 = 300.00, into the 60 held.
    assert [(x.quantity, x.cost_basis_usd, x.replacement_used) for x in state.lots] == [
        (Decimal(60), Decimal("900.00"), True)
    ]
    assert [(p.txn, p.quantity, p.loss_usd) for p in state.pending_losses] == [
        ("Q", Decimal(40), Decimal("200.00"))
    ]


def test_each_slice_of_a_sale_that_relieved_two_parts_of_a_lot_takes_its_loss_back() -> None:
    # Review audit (2026-12-07): sale SL relieved both parts of lot L (an earlier wash split
    # it): two loss slices under one (txn, lot id), both washed into P; only the first came back.
    history = [
        _hl_txn("BX,2026-08-23,T1,AAA,buy,50,30,X"),
        _hl_txn("SX,2026-10-17,T1,AAA,sell,50,20,X"),  # −500.00
        _hl_txn("BL,2026-10-22,T1,AAA,buy,100,20,L"),  # 50 sh replace SX: 1,500.00 basis
        _hl_txn("SL,2026-11-11,T1,AAA,sell,100,10,L"),  # slices −1,000.00 and −500.00
        _hl_txn("P,2026-11-21,T1,AAA,buy,100,10,P"),
    ]
    state = _read_book(history, [_hl_lot("T1,AAA,P,100,1000,2026-11-21")], dt.date(2026, 12, 1))
    parts = sorted((x.quantity, x.cost_basis_usd, x.replacement_used) for x in state.lots)
    assert parts == [
        (Decimal(50), Decimal("1000.00"), True),
        (Decimal(50), Decimal("1500.00"), True),
    ]
    assert sum(x.wash_adjustment_usd for x in state.lots) == Decimal("1500.00")
    assert state.pending_losses == []
