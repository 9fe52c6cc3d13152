"""Wash-sale properties of the rebalance over random households (hypothesis).

Whatever the household did in the last 30 days (loss sales, purchases in an IRA, identical
groups, exclusions), the trade list never buys a name barred by a recent loss sale, never buys
and sells at a loss one name or identical group, and replaying it through the ledger creates no
wash sale except the ones an exclusion forces, which the outcome reports.
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.examples import DEFAULT_AS_OF, synthetic_book
from shared.ledger import Ledger
from shared.messages import (
    AccountSpec,
    LedgerState,
    Lot,
    MarketSnapshot,
    PendingLoss,
    RebalanceRequest,
    RecentPurchase,
    Trade,
)
from shared.rebalance import (
    _context,
    _realized,
    _scan_lots,
    _transactions,
    _wash_check,
    household_restrictions,
    identical_groups,
    outcome_transactions,
    rebalance,
    validate_request,
    wash_check_state,
)


@functools.cache
def _book() -> tuple[MarketSnapshot, list[tuple[AccountSpec, LedgerState]]]:
    return synthetic_book(accounts=10, names=30, seed=4, as_of=DEFAULT_AS_OF)


@st.composite
def households(draw: st.DrawFn) -> RebalanceRequest:
    market, book = _book()
    spec, state = book[draw(st.integers(0, len(book) - 1))]
    spec = msgspec.structs.replace(spec, tilts=[])
    symbols = market.symbols
    as_of = market.as_of
    pick = st.sampled_from(symbols)
    pending = list(state.pending_losses)
    for k, sym in enumerate(draw(st.lists(pick, max_size=4, unique=True))):
        ago = draw(st.integers(0, 35))
        qty = Decimal(draw(st.integers(1, 50)))
        pending.append(
            PendingLoss(
                txn=f"P{k}",
                account=spec.account_id,
                symbol=sym,
                lot_id=f"PL{k}",
                date_sold=as_of - dt.timedelta(days=ago),
                quantity=qty,
                loss_usd=Decimal(100),
                sold_quantity=qty,
                acquired=as_of - dt.timedelta(days=400),
            )
        )
    lots = list(state.lots)
    recent = list(state.recent_purchases)
    for k, sym in enumerate(draw(st.lists(pick, max_size=4, unique=True))):
        # Up to 65 days back: a purchase of the 30 days before a pending loss's sale is matched
        # with it when the ledger is read, and the reduced ledgers must keep it (reconcile_reach).
        day = as_of - dt.timedelta(days=draw(st.integers(0, 65)))
        i = symbols.index(sym)
        qty = Decimal(draw(st.integers(1, 20)))
        lot = Lot(
            account="HX-IRA",
            symbol=sym,
            lot_id=f"R{k}",
            quantity=qty,
            trade_date=day,
            acquired=day,
            cost_basis_usd=(qty * Decimal(repr(market.prices[i]))).quantize(Decimal("0.01")),
            account_type="ira",
        )
        lots.append(lot)
        if (as_of - day).days > 30:
            continue  # a snapshot's recent purchases are of the last 30 days
        recent.append(
            RecentPurchase(
                txn=f"R{k}",
                account="HX-IRA",
                account_type="ira",
                symbol=sym,
                lot_id=f"R{k}",
                date=day,
                quantity=qty,
            )
        )
    identical = [
        list(g)
        for g in draw(st.lists(st.lists(pick, min_size=2, max_size=2, unique=True), max_size=1))
    ]
    if identical and len(set(identical[0])) < 2:
        identical = []
    exclusions = draw(st.lists(pick, max_size=1))
    spec = msgspec.structs.replace(spec, identical=identical, exclusions=exclusions)
    state = msgspec.structs.replace(
        state, lots=lots, pending_losses=pending, recent_purchases=recent
    )
    return RebalanceRequest(as_of=as_of, account=spec, ledger=state, market=market)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(households())
def test_random_households_never_get_a_wash_sale_from_the_ticket(request: RebalanceRequest) -> None:
    out = rebalance(request)
    acct = request.account
    key = {s: min(g) for g in acct.identical for s in g}
    ledger = Ledger.from_state(msgspec.structs.replace(request.ledger, identical=acct.identical))
    no_buy = ledger.restrictions(request.as_of).no_buy
    own = {x.lot_id: x for x in request.ledger.lots if x.account == acct.account_id}
    price = dict(zip(request.market.symbols, request.market.prices, strict=True))

    bought = {t.symbol for t in out.trades if t.side == "buy"}
    assert not bought & set(no_buy), "a buy inside the window of a recent loss sale"
    # A sale inside an IRA reports no loss, so it starts no wash sale (IRS Pub. 550).
    loss_sold = {
        t.symbol
        for t in out.trades
        if acct.account_type == "taxable"
        and t.side == "sell"
        and float(t.quantity) * price[t.symbol]
        < float(own[t.lot_id].cost_basis_usd * t.quantity / own[t.lot_id].quantity)
    }
    groups_bought = {key.get(s, s) for s in bought}
    assert not {key.get(s, s) for s in loss_sold} & groups_bought, "buy and loss sale"

    before = len(ledger.wash_matches)
    for txn in outcome_transactions(out, account_type=acct.account_type):
        ledger.apply(txn)
    new = ledger.wash_matches[before:]
    forced = {i.lot_id for i in out.wash_sale_issues if "excluded" in i.reason}
    assert {m.loss_lot_id for m in new} == forced, (new, out.wash_sale_issues, out.solver.attempts)
    for m in new:
        assert own[m.loss_lot_id].symbol in acct.exclusions


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(households())
def test_the_reduced_ledger_restrictions_equal_the_whole_household_ledger(
    request: RebalanceRequest,
) -> None:
    market = validate_request(request)
    scan = _scan_lots(request, market)
    groups = identical_groups(request.account.identical, request.ledger.identical)
    ctx = _context(request, market, scan)
    no_buy, no_short, blocked = household_restrictions(request, groups, scan, ctx.group, market)
    full = Ledger.from_state(
        msgspec.structs.replace(request.ledger, identical=[sorted(g) for g in groups])
    ).restrictions(request.as_of)
    aid = request.account.account_id
    assert no_buy == full.no_buy
    assert no_short == full.no_short
    own = [x for x in request.ledger.lots if x.account == aid]
    expected = [(aid, x.lot_id) in full.no_loss_sale_lots for x in own]
    assert blocked.tolist() == expected


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(households())
def test_the_wash_check_ledger_of_the_traded_groups_matches_the_whole_household(
    request: RebalanceRequest,
) -> None:
    out = rebalance(request)
    market = validate_request(request)
    scan = _scan_lots(request, market)
    groups = identical_groups(request.account.identical, request.ledger.identical)
    txns = outcome_transactions(out, account_type=request.account.account_type)
    whole = Ledger.from_state(
        msgspec.structs.replace(request.ledger, identical=[sorted(g) for g in groups])
    )
    sold = {t.lot_id for t in txns if t.side in ("sell", "cover") and t.lot_id}
    reduced = Ledger.from_state(
        wash_check_state(request, groups, scan, sold, {t.symbol for t in txns})
    )
    before = (len(whole.wash_matches), len(reduced.wash_matches))
    for txn in txns:
        assert whole.apply(txn) == reduced.apply(txn)
    assert whole.wash_matches[before[0] :] == reduced.wash_matches[before[1] :]


@st.composite
def wash_prone_tickets(draw: st.DrawFn) -> tuple[RebalanceRequest, list[Trade]]:
    """A household and a ticket built to wash: whole-lot sales of the account's own lots (at a
    loss when the price is below basis) and buys of names the household sold at a loss or
    bought in the last 30 days, plus a few random names."""
    request = draw(households())
    market = request.market
    price = dict(zip(market.symbols, market.prices, strict=True))
    aid = request.account.account_id
    own = [x for x in request.ledger.lots if x.account == aid and not x.short]
    trades: list[Trade] = []
    for lot in draw(st.lists(st.sampled_from(own), max_size=6, unique_by=lambda x: x.lot_id)):
        p = Decimal(repr(price[lot.symbol]))
        trades.append(
            Trade(
                symbol=lot.symbol,
                side="sell",
                quantity=lot.quantity,
                price=p,
                notional_usd=(lot.quantity * p).quantize(Decimal("0.01")),
                lot_id=lot.lot_id,
                reason="harvest",
            )
        )
    hot = sorted(
        {p.symbol for p in request.ledger.pending_losses}
        | {p.symbol for p in request.ledger.recent_purchases}
    )
    names = draw(st.lists(st.sampled_from(hot + list(market.symbols)), max_size=4, unique=True))
    for k, sym in enumerate(names):
        qty = Decimal(draw(st.integers(1, 20)))
        p = Decimal(repr(price[sym]))
        trades.append(
            Trade(
                symbol=sym,
                side="buy",
                quantity=qty,
                price=p,
                notional_usd=(qty * p).quantize(Decimal("0.01")),
                lot_id=f"NEW{k}",
                reason="rebalance",
            )
        )
    return request, trades


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wash_prone_tickets())
def test_the_wash_check_reports_what_the_whole_household_ledger_does_for_any_ticket(
    case: tuple[RebalanceRequest, list[Trade]],
) -> None:
    request, trades = case
    market = validate_request(request)
    ctx = _context(request, market, _scan_lots(request, market))
    checked = _wash_check(ctx, trades)
    # The reference: every transaction (an IRA's sales too) through the whole household ledger.
    whole = Ledger.from_state(
        msgspec.structs.replace(request.ledger, identical=[sorted(g) for g in ctx.groups])
    )
    before = len(whole.wash_matches)
    txns = _transactions(request, trades, request.account.account_type)
    for txn in txns:
        whole.apply(txn)
    sells = {t.id for t in txns if t.side == "sell"}
    assert checked.realized == [_realized(s) for s in whole.sales if s.txn in sells]
    assert sorted(i.lot_id for i in checked.issues) == sorted(
        m.loss_lot_id for m in whole.wash_matches[before:]
    )
