"""Second ledger audit: booking a night's outcomes into the household ledger
(:func:`shared.household.book_outcome`, one account after another) gives what replaying the
same trades through one :class:`shared.ledger.Ledger` gives, on a household whose night washes
losses both ways across accounts, an IRA and an identical pair (IRC §1091, Rev. Rul. 2008-5,
Treas. Reg. §1.1091-1(b)-(d)).  Key numbers are computed by hand in the comments.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from shared.household import book_outcome
from shared.ledger import Ledger
from shared.messages import LedgerState, Lot, Solved, Trade, Transaction, encode_json
from shared.types import AccountType

DAY = dt.date(2025, 6, 2)
IDENTICAL = [["GOOG", "GOOGL"]]

# The household's history up to the night before (id, date, account, type, symbol, side,
# quantity, price, lot).
HISTORY = """
h1 2025-01-02 A taxable X buy 10 100 a1
h2 2025-01-02 B taxable Y buy 10 50 b1
h3 2025-04-01 A taxable GOOG buy 10 150 a2
h4 2025-05-10 I ira X buy 3 90 i1
h5 2025-05-15 B taxable X buy 10 95 b2
h6 2025-05-20 B taxable X sell 4 85 b2
h7 2025-05-25 A taxable GOOG sell 10 140 a2
h8 2025-05-28 B taxable GOOGL buy 4 141 b3
"""
# The night, per account in booking order: (symbol, side, quantity, price, lot).
NIGHT: list[tuple[str, AccountType, list[tuple[str, str, str, str, str]]]] = [
    (
        "A",
        "taxable",
        [
            ("X", "sell", "10", "80", "a1"),
            ("GOOG", "buy", "3", "139", "a3"),
            ("X", "buy", "2", "81", "a4"),
        ],
    ),
    ("B", "taxable", [("Y", "sell", "5", "40", "b1"), ("X", "buy", "1", "82", "b4")]),
]


def _history() -> list[Transaction]:
    out = []
    for line in HISTORY.strip().splitlines():
        ident, day, account, kind, symbol, side, qty, price, lot = line.split()
        out.append(
            msgspec.convert(
                {
                    "id": ident,
                    "date": day,
                    "account": account,
                    "account_type": kind,
                    "symbol": symbol,
                    "side": side,
                    "quantity": qty,
                    "price": price,
                    "lot_id": lot,
                },
                Transaction,
                strict=False,
            )
        )
    return out


def _solved(account: str, trades: list[tuple[str, str, str, str, str]]) -> Solved:
    return msgspec.convert(
        {
            "account_id": account,
            "household_id": "H",
            "as_of": DAY.isoformat(),
            "nav_usd": "0",
            "weights": {},
            "cash_w": 0.0,
            "trades": [
                msgspec.to_builtins(
                    msgspec.convert(
                        {
                            "symbol": symbol,
                            "side": side,
                            "quantity": qty,
                            "price": price,
                            "notional_usd": str(Decimal(qty) * Decimal(price)),
                            "lot_id": lot,
                            "reason": "rebalance",
                        },
                        Trade,
                        strict=False,
                    )
                )
                for symbol, side, qty, price, lot in trades
            ],
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


def _replayed() -> LedgerState:
    """Every trade, the night's included, through one ledger (ids as the worker writes them)."""
    ledger = Ledger(identical=IDENTICAL, household_id="H")
    ledger.apply_all(_history())
    for account, kind, trades in NIGHT:
        for n, (symbol, side, qty, price, lot) in enumerate(trades):
            ledger.apply(
                Transaction(
                    id=f"{DAY}:{account}:{n}",
                    date=DAY,
                    account=account,
                    account_type=kind,
                    symbol=symbol,
                    side=side,  # type: ignore[arg-type]
                    quantity=Decimal(qty),
                    price=Decimal(price),
                    lot_id=lot,
                )
            )
    return ledger.state(DAY)


def _booked() -> LedgerState:
    """The night booked account by account from last night's snapshot, as the fleet does."""
    ledger = Ledger(identical=IDENTICAL, household_id="H")
    ledger.apply_all(_history())
    state = ledger.state(DAY - dt.timedelta(days=1))
    for account, kind, trades in NIGHT:
        state = book_outcome(state, _solved(account, trades), account_type=kind)
    return state


def _lot(state: LedgerState, account: str, lot_id: str) -> list[Lot]:
    return [lot for lot in state.lots if lot.account == account and lot.lot_id == lot_id]


def test_booking_a_night_account_by_account_equals_replaying_every_trade() -> None:
    assert encode_json(_booked()) == encode_json(_replayed())


def test_the_booked_night_carries_each_loss_to_the_hand_computed_replacement() -> None:
    state = _booked()
    # A sells a1 (10 × 80 = 800 against 1000: loss 200, held 2025-01-02 -> 06-02 = 151 days).
    # The IRA's i1 already absorbed b2's May loss; the 6 unsold b2 shares (bought 05-15) are
    # in the window: 200 × 6/10 = 120, 950 - 380 + 120 = 690, acquired 05-15 - 151 days =
    # 2024-12-15.
    (b2,) = _lot(state, "B", "b2")
    assert (b2.quantity, b2.cost_basis_usd, b2.wash_adjustment_usd, b2.acquired) == (
        Decimal(6),
        Decimal("690.00"),
        Decimal("120.00"),
        dt.date(2024, 12, 15),
    )
    # A buys 3 GOOG: a2's GOOG loss of 05-25 (100 on 10, held 54 days) has 6 shares left after
    # B's 4 GOOGL: 100 × 7/10 - 40 = 30, 417 + 30 = 447, acquired 06-02 - 54 = 2025-04-09.
    (a3,) = _lot(state, "A", "a3")
    assert (a3.cost_basis_usd, a3.acquired) == (Decimal("447.00"), dt.date(2025, 4, 9))
    # A buys 2 X: b2's May loss (40 on 4, 30 lost to the IRA) has 1 share left, then a1's
    # loss: 1 share each.  b2's: 81 + 10 = 91, held 5 days -> 2025-05-28; a1's: 200 × 7/10 -
    # 120 = 20, 81 + 20 = 101, acquired 06-02 - 151 = 2025-01-02.
    assert [(x.cost_basis_usd, x.acquired) for x in _lot(state, "A", "a4")] == [
        (Decimal("91.00"), dt.date(2025, 5, 28)),
        (Decimal("101.00"), dt.date(2025, 1, 2)),
    ]
    # B's buy of 1 X after A's: a1's loss again: 200 × 8/10 - 140 = 20, 82 + 20 = 102.
    (b4,) = _lot(state, "B", "b4")
    assert (b4.cost_basis_usd, b4.acquired) == (Decimal("102.00"), dt.date(2025, 1, 2))
    # Still open: a1's last 2 shares, a2's last 3, and B's Y loss (5 × 40 - 250 = -50).
    assert [(p.txn, p.quantity) for p in state.pending_losses] == [
        ("h7", Decimal(3)),
        (f"{DAY}:A:0", Decimal(2)),
        (f"{DAY}:B:0", Decimal(5)),
    ]
