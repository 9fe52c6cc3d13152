"""Property tests over random household ledgers (two taxable accounts and an IRA, an identical
pair, longs and shorts, fractional shares, every lot method): the money and share identities
hold exactly in Decimal, wash adjustments stay within the loss, the snapshot resumes exactly, and
the optimizer's restrictions say exactly what a trade today would wash."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.ledger import Ledger, cents
from shared.messages import Transaction

D = Decimal
ACCOUNTS = (("A", "taxable"), ("B", "taxable"), ("I", "ira"))
SYMBOLS = ("X", "Y", "Z")  # X and Y are declared substantially identical
IDENTICAL = [["X", "Y"]]
START = dt.date(2024, 1, 2)

op = st.tuples(
    st.integers(0, 6),  # days since the previous trade
    st.integers(0, 2),  # account
    st.sampled_from([0, 0, 1, 2]),  # symbol (X twice as likely)
    st.integers(0, 7),  # action
    st.integers(1, 40),  # quantity seed
    st.integers(4_000, 6_000),  # price in cents
    st.integers(0, 9),  # lot choice
    st.booleans(),  # fractional
)
household = st.tuples(
    st.sampled_from(["fifo", "hifo", "specific"]), st.lists(op, min_size=12, max_size=40)
)


def build(
    method: str, ops: list[tuple[int, int, int, int, int, int, int, bool]]
) -> list[Transaction]:
    """Turn random intents into a valid transaction list by replaying them through a ledger."""
    led = Ledger(lot_method=method, identical=IDENTICAL)  # type: ignore[arg-type]
    day = START
    out: list[Transaction] = []
    for n, (gap, a, s, action, qseed, pcents, pick, frac) in enumerate(ops):
        day += dt.timedelta(days=gap)
        account, kind = ACCOUNTS[a]
        symbol = SYMBOLS[s]
        qty = D(qseed) / 4 if frac else D(qseed)
        price = D(pcents) / 100
        short = action in (5, 6, 7)
        closing = action in (2, 3, 4, 6, 7)
        side = {(False, False): "buy", (False, True): "sell"}.get((short, closing))
        side = side or ("cover" if closing else "short")
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
                    qty = min(qty, sum(by_id.values()))
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
        led.apply(txn)
        out.append(txn)
    return out


def replay(method: str, txns: list[Transaction]) -> Ledger:
    led = Ledger(lot_method=method, identical=IDENTICAL)  # type: ignore[arg-type]
    led.apply_all(txns)
    return led


FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(household)
def test_recognized_gain_equals_net_cash_plus_open_basis_plus_permanently_disallowed(
    case: tuple[str, list],
) -> None:
    method, ops = case
    txns = build(method, ops)
    led = replay(method, txns)
    taxable = {a for a, k in ACCOUNTS if k == "taxable"}
    cash_in = sum(
        (
            cents(t.quantity * t.price)
            for t in txns
            if t.account in taxable and t.side in ("sell", "short")
        ),
        D(0),
    )
    cash_out = sum(
        (
            cents(t.quantity * t.price)
            for t in txns
            if t.account in taxable and t.side in ("buy", "cover")
        ),
        D(0),
    )
    open_net = sum(
        (-x.cost_basis_usd if x.short else x.cost_basis_usd)
        for x in led.open_lots()
        if x.account in taxable
    )
    gain = sum((s.gain for s in led.sales), D(0))
    permanent = sum((s.permanently_disallowed for s in led.sales), D(0))
    # Proceeds of sells and shorts are cash in, buys and covers cash out (taxable accounts).
    assert gain == (cash_in - cash_out) + open_net + permanent
    deferred = sum((s.disallowed_loss - s.permanently_disallowed for s in led.sales), D(0))
    assert deferred == sum((m.disallowed_usd for m in led.wash_matches if not m.permanent), D(0))


@FAST
@given(household)
def test_shares_are_conserved_per_account_symbol_and_side(case: tuple[str, list]) -> None:
    method, ops = case
    txns = build(method, ops)
    led = replay(method, txns)
    flow: dict[tuple[str, str, bool], Decimal] = defaultdict(Decimal)
    sign = {"buy": 1, "sell": -1, "short": 1, "cover": -1}
    for t in txns:
        flow[(t.account, t.symbol, t.side in ("short", "cover"))] += sign[t.side] * t.quantity
    held: dict[tuple[str, str, bool], Decimal] = defaultdict(Decimal)
    for x in led.open_lots():
        assert x.quantity > 0
        held[(x.account, x.symbol, x.short)] += x.quantity
    assert {k: v for k, v in flow.items() if v} == dict(held)
    sold = sum((s.quantity for s in led.sales), D(0))
    assert sold == sum(
        (t.quantity for t in txns if t.account != "I" and t.side in ("sell", "cover")), D(0)
    )


@FAST
@given(household)
def test_every_disallowed_loss_is_non_negative_and_at_most_the_loss(case: tuple[str, list]) -> None:
    method, ops = case
    led = replay(method, build(method, ops))
    for s in led.sales:
        loss = s.cost_basis - s.proceeds
        assert s.disallowed_loss >= 0 and s.permanently_disallowed >= 0
        assert s.permanently_disallowed <= s.disallowed_loss
        assert s.disallowed_loss <= max(loss, D(0))
        assert s.gain == s.proceeds - s.cost_basis + s.disallowed_loss
        assert (s.adjustment_code == "W") == (s.disallowed_loss > 0) or s.disallowed_loss == 0
        if loss > 0:
            assert s.gain <= 0
        else:
            assert s.disallowed_loss == 0 and s.adjustment_code == ""
        if s.short:
            assert s.term == "short"
        for money in (s.proceeds, s.cost_basis, s.gain, s.disallowed_loss):
            assert money == cents(money)
    for x in led.open_lots():
        assert x.wash_adjustment_usd >= 0 and x.acquired <= x.trade_date
        if x.account == "I":
            assert x.wash_adjustment_usd == 0


@FAST
@given(household, st.integers(0, 45))
def test_a_snapshot_resumed_and_fed_the_rest_equals_the_uninterrupted_ledger(
    case: tuple[str, list], cut: int
) -> None:
    method, ops = case
    txns = build(method, ops)
    cut = min(cut, len(txns))
    whole = replay(method, txns)
    first = replay(method, txns[:cut])
    as_of = txns[cut - 1].date if cut else START
    n_before = len(first.sales)
    disallowed_before = [s.disallowed_loss for s in first.sales]
    resumed = Ledger.from_state(first.state(as_of), lot_method=method)  # type: ignore[arg-type]
    resumed.apply_all(txns[cut:])
    end = txns[-1].date if txns else START
    assert resumed.open_lots() == whole.open_lots()
    assert resumed.state(end) == whole.state(end)
    assert resumed.sales == whole.sales[n_before:]
    late = sum(
        (
            m.disallowed_usd
            for m in resumed.wash_matches
            if m.date_sold <= as_of and m.loss_txn in {t.id for t in txns[:cut]}
        ),
        D(0),
    )
    assert late == sum((s.disallowed_loss for s in whole.sales[:n_before]), D(0)) - sum(
        disallowed_before, D(0)
    )


@FAST
@given(household)
def test_restrictions_say_exactly_which_trades_today_would_wash(case: tuple[str, list]) -> None:
    method, ops = case
    txns = build(method, ops)
    led = replay(method, txns)
    today = txns[-1].date if txns else START
    r = led.restrictions(today)
    for symbol in SYMBOLS:
        trial = led.copy()
        before = len(trial.wash_matches)
        trial.apply(
            Transaction(
                id="probe",
                date=today,
                account="A",
                symbol=symbol,
                side="buy",
                quantity=D(1000),
                price=D(1),
                lot_id="probe",
            )
        )
        # A match, even one whose disallowed share rounds to 0.00, is a wash sale.
        washed = len(trial.wash_matches) > before
        assert washed == r.is_blocked_buy(symbol), symbol
    seen: set[tuple[str, str]] = set()
    for lot in led.open_lots():
        key = (lot.account, lot.lot_id)
        if lot.account == "I" or key in seen:
            continue
        seen.add(key)
        qty = sum((x.quantity for x in led.open_lots(lot.account) if x.lot_id == lot.lot_id), D(0))
        trial = led.copy()
        slices = trial.apply(
            Transaction(
                id="probe",
                date=today,
                account=lot.account,
                symbol=lot.symbol,
                side="cover" if lot.short else "sell",
                quantity=qty,
                price=D(1000) if lot.short else D("0.001"),
                lot_id=lot.lot_id,
            )
        )
        washed = any(m.loss_txn == "probe" for m in trial.wash_matches)
        assert washed >= any(s.adjustment_code == "W" for s in slices)
        assert washed == (key in r.no_loss_sale_lots), key
    # The copy used for the probes left the original untouched.
    assert led.state(today) == replay(method, txns).state(today)
