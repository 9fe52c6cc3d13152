"""Differential properties of ledger commissions over random households (hypothesis).

IRS Pub. 550 ("Basis of Investment Property"; "How To Figure Gain or Loss") and the Form 8949
instructions: a purchase's commission is part of its cost basis and a sale's reduces the amount
realized.  So a trade with commission ``c`` must leave *exactly* the ledger the same trade
without commission leaves when its amount is moved by ``c`` instead: a buy (cover) that cost
``amount + c``, a sale (short sale) that brought in ``amount − c``.  Wash sales (IRC §1091;
Treas. Reg. §1.1091-1) then see the same losses, so every lot, realized slice, disallowed amount
(IRA replacements included, Rev. Rul. 2008-5), wash match, snapshot and restriction agrees.

The reference ledger takes no commission: its trade's price is moved by ``c / quantity``
(rounded so its amount to the cent is exactly ``amount ± c``).  A sale over several lots splits
its amount and its commission over the lots separately (each cumulatively rounded, the ledger's
documented rule), which equals splitting the net amount except where a half cent falls between
them: there the test takes the nearest smaller commission for which both agree, and a second
property checks that split itself against the cumulative rounding, for any commission.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.ledger import Ledger, SaleSlice
from shared.messages import Transaction

D = Decimal
CENT = D("0.01")
ACCOUNTS = (("A", "taxable"), ("B", "taxable"), ("I", "ira"))
SYMBOLS = ("X", "Y", "Z")  # X and Y are substantially identical (IRS Pub. 550)
IDENTICAL = [["X", "Y"]]
START = dt.date(2024, 1, 2)
EXACT = Context(prec=200)

op = st.tuples(
    st.integers(0, 6),  # days since the previous trade
    st.integers(0, 2),  # account
    st.sampled_from([0, 0, 1, 2]),  # symbol (X twice as likely)
    st.integers(0, 7),  # action: 0-1 buy, 2-4 sell, 5 short, 6-7 cover
    st.integers(1, 40),  # quantity seed
    st.integers(1_000, 6_000),  # price in cents
    st.integers(0, 9),  # lot choice (< 4: name a lot) and a snapshot round trip when 9
    st.sampled_from([1, 3, 4, 7]),  # quantity divisor (fractional shares)
    st.integers(0, 3_000),  # commission seed (cents)
)
household = st.tuples(
    st.sampled_from(["fifo", "hifo", "specific"]), st.lists(op, min_size=12, max_size=45)
)
FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def half_up(x: Decimal) -> Decimal:
    """To the cent, half up, of an exact value."""
    return x.quantize(CENT, rounding=ROUND_HALF_UP, context=EXACT)


def amount(quantity: Decimal, price: Decimal) -> Decimal:
    return half_up(EXACT.multiply(quantity, price))


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``total × part / whole`` to the cent, half up (ties away from zero), exactly."""
    return half_up(EXACT.divide(EXACT.multiply(total, part), whole))


def cumulative(total: Decimal, takes: list[Decimal]) -> list[Decimal]:
    """``total`` split over ``takes`` pro rata, cumulatively rounded (the slices add up to it)."""
    whole = sum(takes, D(0))
    out, done, given_ = [], D(0), D(0)
    for take in takes:
        done += take
        part = share(total, done, whole) - given_
        given_ += part
        out.append(part)
    return out


def moved_price(txn: Transaction, delta: Decimal) -> Decimal:
    """A price whose amount for ``txn.quantity`` shares is exactly ``amount + delta`` (delta in
    whole cents): ``price + delta / quantity`` rounded up at 60 digits, a surplus far below any
    half cent the exact product could reach."""
    up = Context(prec=60, rounding=ROUND_CEILING)
    moved = EXACT.add(txn.price, up.divide(delta, txn.quantity))
    assert amount(txn.quantity, moved) == amount(txn.quantity, txn.price) + delta
    return moved


def intent(
    led: Ledger, method: str, n: int, day: dt.date, raw: tuple[int, ...]
) -> tuple[Transaction, Decimal]:
    """A valid transaction for ``led`` from a random intent, and its commission seed."""
    _, a, s, action, qseed, pcents, pick, div, fee = raw
    account, kind = ACCOUNTS[a]
    symbol = SYMBOLS[s]
    qty = D(qseed) / div if div in (4,) else D(qseed)
    if div in (3, 7):  # a fraction with a terminating but long expansion
        qty = (D(qseed) / D(div * 8)).quantize(D("0.0001")) or D("0.0001")
    price = D(pcents) / 100
    short = action >= 5
    closing = action in (2, 3, 4, 6, 7)
    side = ("cover" if closing else "short") if short else ("sell" if closing else "buy")
    lot_id = ""
    if closing:
        lots = [x for x in led.open_lots(account) if x.symbol == symbol and x.short == short]
        if not lots:
            side = "short" if short else "buy"
        else:
            by_id: dict[str, Decimal] = defaultdict(Decimal)
            for x in lots:
                by_id[x.lot_id] += x.quantity
            if method == "specific" or pick < 4:
                lot_id = sorted(by_id)[pick % len(by_id)]
                qty = min(qty, by_id[lot_id])
            else:
                qty = min(qty, sum(by_id.values(), D(0)))
    txn = Transaction(
        id=f"t{n}",
        date=day,
        account=account,
        account_type=kind,  # type: ignore[arg-type]
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=qty,
        price=price,
        lot_id=lot_id,
    )
    commission = D(fee) / 100
    if txn.side in ("sell", "short"):
        # The reference sale's price, price − c / quantity, cannot be negative.
        most = EXACT.multiply(txn.quantity, txn.price).quantize(CENT, rounding=ROUND_FLOOR)
        commission = min(commission, most)
    return txn, commission


def takes_of(led: Ledger, txn: Transaction) -> list[Decimal]:
    """The shares of each lot a sell/cover relieves (on a copy: the ledger is unchanged)."""
    return [s.quantity for s in led.copy().apply(txn)]


def splits_agree(total: Decimal, fee: Decimal, takes: list[Decimal], sign: int) -> bool:
    """Whether splitting the amount and the commission apart gives the split of the net."""
    gross, fees = cumulative(total, takes), cumulative(fee, takes)
    net = cumulative(total + sign * fee, takes)
    return all(g + sign * f == x for g, f, x in zip(gross, fees, net, strict=True))


def same(a: Ledger, b: Ledger, day: dt.date) -> None:
    assert a.open_lots() == b.open_lots()
    assert a.sales == b.sales
    assert a.wash_matches == b.wash_matches
    assert a.state(day) == b.state(day)
    assert a.restrictions(day) == b.restrictions(day)


@FAST
@given(household)
def test_a_commission_leaves_the_ledger_of_the_same_trade_with_its_amount_moved_by_it(
    case: tuple[str, list[tuple[int, ...]]],
) -> None:
    method, ops = case
    real = Ledger(lot_method=method, identical=IDENTICAL)  # type: ignore[arg-type]
    ref = Ledger(lot_method=method, identical=IDENTICAL)  # type: ignore[arg-type]
    day = START
    for n, raw in enumerate(ops):
        day += dt.timedelta(days=raw[0])
        txn, fee = intent(real, method, n, day, raw)
        sign = 1 if txn.side in ("buy", "cover") else -1
        if txn.side in ("sell", "cover"):
            takes = takes_of(ref, txn)
            total = amount(txn.quantity, txn.price)
            while fee and not splits_agree(total, fee, takes, sign):
                fee -= CENT
        got = real.apply(txn, commission=fee)
        if len(got) > 1 and fee:
            event("a sale over several lots with a commission")
        want = ref.apply(msgspec.structs.replace(txn, price=moved_price(txn, sign * fee)))
        assert got == want, (txn, fee)
        same(real, ref, day)
        if raw[6] == 9:  # snapshot and resume both: the basis (commissions in it) survives
            resumed = Ledger.from_state(real.state(day), lot_method=method)  # type: ignore[arg-type]
            assert resumed.open_lots() == real.open_lots()
            assert resumed.state(day) == real.state(day)
            real = resumed
            ref = Ledger.from_state(ref.state(day), lot_method=method)  # type: ignore[arg-type]
    matches = real.wash_matches
    event(f"wash matches: {'none' if not matches else 'some'}")
    if any(m.permanent for m in matches):
        event("an IRA replacement")
    if any(
        m.quantity < s.quantity for m in matches for s in real.sales if s.lot_id == m.loss_lot_id
    ):
        event("a partial replacement")


@FAST
@given(household)
def test_a_sale_over_several_lots_takes_off_each_slice_its_cumulatively_rounded_commission(
    case: tuple[str, list[tuple[int, ...]]],
) -> None:
    """Each slice's proceeds (a cover's cost) differ from the commission-free sale's by its
    part of the commission, split pro rata by shares and cumulatively rounded; the basis, the
    holding period and the shares relieved are the same; the parts add up to the commission."""
    method, ops = case
    led = Ledger(lot_method=method, identical=IDENTICAL)  # type: ignore[arg-type]
    day = START
    for n, raw in enumerate(ops):
        day += dt.timedelta(days=raw[0])
        txn, fee = intent(led, method, n, day, raw)
        if txn.side in ("sell", "cover"):
            free: list[SaleSlice] = led.copy().apply(txn)
            paid: list[SaleSlice] = led.copy().apply(txn, commission=fee)
            parts = cumulative(fee, [s.quantity for s in free])
            assert sum(parts, D(0)) == fee
            assert len(paid) == len(free)
            for f, p, part in zip(free, paid, parts, strict=True):
                key = (p.lot_id, p.quantity, p.date_acquired, p.term)
                assert key == (f.lot_id, f.quantity, f.date_acquired, f.term)
                if txn.side == "sell":
                    assert (p.proceeds, p.cost_basis) == (f.proceeds - part, f.cost_basis)
                else:  # IRC §1233: a short lot's basis is its proceeds; covering is the cost
                    assert (p.proceeds, p.cost_basis) == (f.proceeds, f.cost_basis + part)
        led.apply(txn, commission=fee)
