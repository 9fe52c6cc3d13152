"""Second ledger audit.

1. Booking a night's outcomes into the household ledger
(:func:`shared.household.book_outcome`, one account after another) gives what replaying the
same trades through one :class:`shared.ledger.Ledger` gives, on a household whose night washes
losses both ways across accounts, an IRA and an identical pair (IRC §1091, Rev. Rul. 2008-5,
Treas. Reg. §1.1091-1(b)-(d)).  Key numbers are computed by hand in the comments.

2. On random households (two taxable accounts and an IRA, longs and shorts, FIFO, HIFO and named
lots, an identical pair), the ledger agrees with an independent per-share model of the same
documented rules that keeps every share apart, in exact fractions, with nothing to split.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import msgspec
import pytest

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


# --------------------------------------------------------------------------------------------
# A per-share reference model of the documented rules, against the ledger on random households
# --------------------------------------------------------------------------------------------


@dataclass
class _Share:
    """One share (or one share sold short) of the reference model, with an exact basis."""

    account: str
    account_type: str
    symbol: str
    lot_id: str
    seq: int
    idx: int
    trade: dt.date
    acquired: dt.date
    basis: Fraction
    short: bool
    adj: Fraction = Fraction(0)
    used: bool = False


@dataclass
class _LossShare:
    """One share sold (covered) at a loss, waiting for a replacement."""

    txn: str
    date: dt.date
    acquired: dt.date
    loss: Fraction
    account: str
    lot_id: str
    group: str
    short: bool


class _PerShare:
    """The wash-sale rules of docs/ledger.md applied share by share, in exact fractions, with
    no lots to split and no rounding (IRC §1091(a), (d); §1223(3); §1233(a); Treas. Reg.
    §1.1091-1(b)-(d); Rev. Rul. 2008-5; Rev. Rul. 56-602):

    * a loss share looks back 30 days for unused shares of its group held anywhere in the
      household (not of its own purchase; a long loss never takes a short), earliest acquired
      first; if none, it waits 30 days for the next purchase (a cover loss also for a short);
    * the loss shares of one sale are taken in the order their shares were acquired;
    * a taxable replacement takes the loss into its basis (a short's proceeds go down) and, for
      a long loss replaced by a purchase, the sold share's holding period; an IRA/Roth
      replacement loses it for good.
    """

    def __init__(self, groups: dict[str, str], lot_method: str) -> None:
        self.groups = groups
        self.lot_method = lot_method
        self.shares: list[_Share] = []
        self.pending: list[_LossShare] = []
        self.seq = 0
        self.sales: dict[str, dict[str, Fraction]] = {}

    def _group(self, symbol: str) -> str:
        return self.groups.get(symbol, symbol)

    def open(self, t: Transaction) -> None:
        self.seq += 1
        short = t.side == "short"
        new = [
            _Share(
                t.account,
                t.account_type,
                t.symbol,
                t.lot_id,
                self.seq,
                i,
                t.date,
                t.date,
                Fraction(t.price),
                short,
            )
            for i in range(int(t.quantity))
        ]
        self.shares.extend(new)
        start = t.date - dt.timedelta(days=30)
        self.pending = [p for p in self.pending if p.date >= start]
        for share in new:
            fits = [
                p
                for p in self.pending
                if p.group == self._group(t.symbol) and (p.short or not short)
            ]
            if not fits:
                break
            self.pending.remove(fits[0])
            self._match(fits[0], share)

    def _match(self, loss: _LossShare, share: _Share) -> None:
        share.used = True
        sale = self.sales[loss.txn]
        sale["disallowed"] += loss.loss
        if share.account_type != "taxable":
            sale["permanent"] += loss.loss
        elif share.short:
            share.basis -= loss.loss
            share.adj += loss.loss
        else:
            share.basis += loss.loss
            share.adj += loss.loss
            if not loss.short:
                share.acquired = share.trade - (loss.date - loss.acquired)

    def close(self, t: Transaction) -> None:
        short = t.side == "cover"
        own = [
            s
            for s in self.shares
            if s.account == t.account and s.symbol == t.symbol and s.short == short
        ]
        if t.lot_id:
            own = [s for s in own if s.lot_id == t.lot_id]
        if self.lot_method == "hifo" and not t.lot_id:
            sign = 1 if short else -1
            own.sort(key=lambda s: (sign * s.basis, s.trade, s.seq, s.acquired, s.idx))
        else:  # FIFO: purchases of one day in the order they were made
            own.sort(key=lambda s: (s.trade, s.seq, s.acquired, s.idx))
        sold = own[: int(t.quantity)]
        for s in sold:
            self.shares.remove(s)
        if t.account_type != "taxable":
            return  # not reported, starts no wash sale
        zero = Fraction(0)
        sale = self.sales.setdefault(
            t.id,
            {"proceeds": zero, "basis": zero, "disallowed": zero, "permanent": zero},
        )
        price = Fraction(t.price)
        losses = []
        for s in sorted(sold, key=lambda s: (s.trade, s.acquired, s.seq, s.idx)):
            proceeds, cost = (s.basis, price) if short else (price, s.basis)
            sale["proceeds"] += proceeds
            sale["basis"] += cost
            if cost > proceeds:
                losses.append(
                    _LossShare(
                        t.id,
                        t.date,
                        s.trade if short else s.acquired,
                        cost - proceeds,
                        s.account,
                        s.lot_id,
                        self._group(s.symbol),
                        short,
                    )
                )
        start = t.date - dt.timedelta(days=30)
        for loss in losses:
            candidates = sorted(
                (
                    s
                    for s in self.shares
                    if not s.used
                    and self._group(s.symbol) == loss.group
                    and s.trade >= start
                    and (loss.short or not s.short)
                    and not (s.account == loss.account and s.lot_id == loss.lot_id)
                ),
                key=lambda s: (s.trade, s.seq, s.idx),
            )
            if candidates:
                self._match(loss, candidates[0])
            else:
                self.pending.append(loss)


def _random_household(
    seed: int, lot_method: str, symbols: tuple[str, ...]
) -> tuple[Ledger, _PerShare]:
    """30 random trades (whole shares) in two taxable accounts and an IRA, applied to both."""
    rng = random.Random(seed)
    groups = {s: symbols[0] for s in symbols}
    ledger = Ledger(
        lot_method=lot_method,  # type: ignore[arg-type]
        identical=[list(symbols)] if len(symbols) > 1 else [],
    )
    model = _PerShare(groups, lot_method)
    day = dt.date(2024, 1, 2)
    for i in range(30):
        day += dt.timedelta(days=rng.choice([0, 0, 1, 3, 7, 12, 20, 29, 30, 31, 40]))
        account = rng.choice("AABI")
        symbol = rng.choice(symbols)
        short = rng.random() < 0.4
        held = [
            lot for lot in ledger.open_lots(account) if lot.short == short and lot.symbol == symbol
        ]
        if held and rng.random() < 0.5:
            lot_id = rng.choice(sorted({lot.lot_id for lot in held})) if rng.random() < 0.5 else ""
            most = sum(lot.quantity for lot in held if lot.lot_id == lot_id or not lot_id)
            quantity = rng.randint(1, int(most))
            side = "cover" if short else "sell"
        else:
            lot_id, quantity, side = f"L{i}", rng.randint(1, 10), "short" if short else "buy"
        txn = Transaction(
            id=f"t{i}",
            date=day,
            account=account,
            account_type="ira" if account == "I" else "taxable",
            symbol=symbol,
            side=side,  # type: ignore[arg-type]
            quantity=Decimal(quantity),
            price=Decimal(rng.randint(80, 120)),
            lot_id=lot_id,
        )
        ledger.apply(txn)
        (model.open if side in ("buy", "short") else model.close)(txn)
    return ledger, model


@pytest.mark.parametrize(
    ("lot_method", "symbols"),
    [("fifo", ("X",)), ("hifo", ("X",)), ("fifo", ("X", "Y")), ("hifo", ("X", "Y"))],
)
def test_the_ledger_agrees_with_a_per_share_model_of_the_rules_on_random_households(
    lot_method: str, symbols: tuple[str, ...]
) -> None:
    # The model keeps exact fractions and the ledger whole cents rounded per slice, split and
    # match, so amounts may differ by the cents rounding moves (≤ 10 cents here); shares,
    # holding periods and who absorbed which loss must agree exactly.
    cents = Fraction(1, 10)
    for seed in range(400):
        ledger, model = _random_household(seed, lot_method, symbols)
        got: dict[str, dict[str, Fraction]] = {}
        for s in ledger.sales:
            row = got.setdefault(
                s.txn, dict.fromkeys(("proceeds", "basis", "dis", "perm"), Fraction(0))
            )
            row["proceeds"] += Fraction(s.proceeds)
            row["basis"] += Fraction(s.cost_basis)
            row["dis"] += Fraction(s.disallowed_loss)
            row["perm"] += Fraction(s.permanently_disallowed)
        assert set(got) == set(model.sales), seed
        for txn, want in model.sales.items():
            have = got[txn]
            for key, ref in (
                ("proceeds", "proceeds"),
                ("basis", "basis"),
                ("dis", "disallowed"),
                ("perm", "permanent"),
            ):
                assert abs(have[key] - want[ref]) <= cents, (seed, txn, key)
        lots: dict[tuple[str, str], list] = {}
        for lot in ledger.open_lots():
            row = lots.setdefault((lot.account, lot.lot_id), [0, Fraction(0), Fraction(0), []])
            row[0] += int(lot.quantity)
            row[1] += Fraction(lot.cost_basis_usd)
            row[2] += Fraction(lot.wash_adjustment_usd)
            row[3] += [lot.acquired] * int(lot.quantity)
        shares: dict[tuple[str, str], list] = {}
        for share in model.shares:
            row = shares.setdefault(
                (share.account, share.lot_id), [0, Fraction(0), Fraction(0), []]
            )
            row[0] += 1
            row[1] += share.basis
            row[2] += share.adj
            row[3].append(share.acquired)
        assert set(lots) == set(shares), seed
        for key, (qty, basis, adj, acquired) in lots.items():
            w_qty, w_basis, w_adj, w_acquired = shares[key]
            assert qty == w_qty and sorted(acquired) == sorted(w_acquired), (seed, key)
            assert abs(basis - w_basis) <= cents and abs(adj - w_adj) <= cents, (seed, key)
