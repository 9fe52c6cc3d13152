"""Regression tests for the request fuzz audit: 3,542 one-field mutations of ``taxview
example-request`` requests (the three strategies, 40 names, seed 1) run through the use case.
Each test is a mutation that ended in a traceback, a ``failed`` solve, a rejection naming a field
no request has, or an ``ok`` ticket breaking its own rules before its fix."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from shared.errors import InputError
from shared.examples import example_request
from shared.messages import LongShortSpec, RebalanceRequest, RiskModel, Solved
from shared.rebalance import rebalance


def _di() -> RebalanceRequest:
    return example_request(names=40, seed=1)


def _with_market(request: RebalanceRequest, **changes: Any) -> RebalanceRequest:
    return msgspec.structs.replace(
        request, market=msgspec.structs.replace(request.market, **changes)
    )


def _with_account(request: RebalanceRequest, **changes: Any) -> RebalanceRequest:
    return msgspec.structs.replace(
        request, account=msgspec.structs.replace(request.account, **changes)
    )


def _with_lot(request: RebalanceRequest, i: int, **changes: Any) -> RebalanceRequest:
    lots = list(request.ledger.lots)
    lots[i] = msgspec.structs.replace(lots[i], **changes)
    ledger = msgspec.structs.replace(request.ledger, lots=lots)
    return msgspec.structs.replace(request, ledger=ledger)


def _with_risk(request: RebalanceRequest, **changes: Any) -> RebalanceRequest:
    rm = msgspec.structs.replace(request.market.risk_model, **changes)
    return _with_market(request, risk_model=rm)


def _rejected(request: RebalanceRequest, field: str, match: str | None = None) -> InputError:
    with pytest.raises(InputError, match=None if match is None else re.escape(match)) as info:
        rebalance(request)
    assert info.value.field == field
    assert info.value.account == request.account.account_id
    return info.value


@pytest.mark.parametrize("field", ["quantity", "cost_basis_usd"])
def test_a_lot_amount_of_snan_is_rejected_naming_the_field_not_a_traceback(field: str) -> None:
    _rejected(_with_lot(_di(), 0, **{field: Decimal("sNaN")}), f"ledger.lots[0].{field}")


def test_dates_the_ledger_cannot_count_from_are_rejected_naming_the_field() -> None:
    request = _di()
    far = dt.date(9999, 12, 31)
    late = msgspec.structs.replace(
        request, as_of=far, market=msgspec.structs.replace(request.market, as_of=far)
    )
    _rejected(late, "as_of", "outside 1900-01-01 to 2999-12-31")
    early = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, as_of=dt.date(1, 1, 1))
    )
    _rejected(early, "ledger.as_of", "outside 1900-01-01 to 2999-12-31")
    future = request.as_of + dt.timedelta(days=3)
    _rejected(_with_lot(request, 0, trade_date=future), "ledger.lots[0].trade_date")
    # A start tacked before 1900 is a holding period, not a trade date: the ledger tacks back
    # to 0001-01-01 at most (docs/ledger.md), and the account solves with it.
    assert rebalance(_with_lot(request, 0, acquired=dt.date(1, 1, 1))).status != "rejected"
    # Book audit: tacking (IRC §1223(3)) only moves the start earlier; a later one made a
    # long-term lot a short-term loss.
    lot = request.ledger.lots[0]
    later = _with_lot(request, 0, acquired=lot.trade_date + dt.timedelta(days=1))
    _rejected(later, "ledger.lots[0].acquired", "after its trade date")


def test_a_risk_model_in_the_wrong_units_is_rejected_naming_the_entry() -> None:
    request = _di()
    rm = request.market.risk_model
    loadings = [list(row) for row in rm.loadings]
    loadings[3][0] = 1e300
    _rejected(_with_risk(request, loadings=loadings), "market.risk_model.loadings[3]", "1e+300")
    specific = list(rm.specific_var)
    specific[5] = 1e20
    _rejected(_with_risk(request, specific_var=specific), "market.risk_model.specific_var[5]")
    wrong_units = [[x * 1e12 for x in row] for row in rm.factor_cov]
    _rejected(
        _with_risk(request, factor_cov=wrong_units), "market.risk_model.factor_cov", "beyond ±10000"
    )
    # Not lower: the product's own estimate gives ~120 to a name with a x10 day (review).
    loadings[3][0] = 150.0
    assert isinstance(rebalance(_with_risk(request, loadings=loadings)), Solved)


def test_absurd_costs_tilts_and_book_shapes_are_rejected_not_failed() -> None:
    request = _di()
    _rejected(_with_account(request, trading_cost_bps=1e300), "account.trading_cost_bps")
    factor = request.market.risk_model.factor_names[-1]
    tilt = msgspec.convert({"factor": factor, "min_exposure": 1e300}, type=_tilt_type())
    _rejected(_with_account(request, tilts=[tilt]), "account.tilts[0].min_exposure")
    book = example_request(names=40, seed=1, strategy="long-short")
    huge = LongShortSpec(long_w=1e15 + 1, short_w=1e15)
    _rejected(_with_account(book, long_short=huge), "account.long_short.long_w")


def _tilt_type() -> Any:
    from shared.messages import FactorTilt

    return FactorTilt


def test_a_price_four_decimals_cannot_carry_is_rejected_naming_it() -> None:
    request = _di()
    prices = list(request.market.prices)
    prices[0] = 0.00015  # a ticket fills at 0.0002: cash and weights were $6,795 off the ticket
    _rejected(_with_market(request, prices=prices), "market.prices[0]", "would trade at 0.0002")
    prices[0] = 0.0002  # a sub-cent price with 4 decimals is fine
    assert isinstance(rebalance(_with_market(request, prices=prices)), Solved)


def test_a_ticket_line_above_the_ledgers_share_limit_names_the_price_not_a_phantom_field() -> None:
    # $1e13 is within the documented cash limit; 10% of it in a $40 name is 2.5e10 shares.
    request = _with_account(_di(), cash_usd=Decimal("1e13"))
    with pytest.raises(InputError, match="shares one transaction may carry") as info:
        rebalance(request)
    assert info.value.account == request.account.account_id
    assert info.value.field is not None and info.value.field.startswith("market.prices[")


def test_an_excluded_name_is_sold_whole_however_small_a_share_of_a_huge_nav_it_is() -> None:
    request = _di()
    prices = list(request.market.prices)
    prices[0] = 1e10  # the account's lots of name 0 make NAV ~$2e12: ALT's lots ~4e-9 of it
    request = _with_market(request, prices=prices)
    excluded = set(request.account.exclusions)
    assert excluded
    out = rebalance(request)
    assert isinstance(out, Solved) and out.status == "ok"
    aid = request.account.account_id
    for sym in excluded:
        held = sum(
            (x.quantity for x in request.ledger.lots if x.account == aid and x.symbol == sym),
            Decimal(0),
        )
        sold = sum((t.quantity for t in out.trades if t.symbol == sym and t.side == "sell"), 0)
        assert held > 0 and sold == held, sym


def test_a_long_short_book_never_shorts_a_name_it_keeps_long_lots_of_however_large_its_nav() -> (
    None
):
    # Lot 0 of 1e8 shares makes NAV $4.5e9: a loss lot the sides keep (109 shares, 2.7e-7 of
    # NAV) was under the guard's tolerance, and the name was shorted 11 million shares.
    book = example_request(names=40, seed=1, strategy="long-short")
    request = _with_lot(book, 0, quantity=Decimal("1e8"))
    out = rebalance(request)
    assert isinstance(out, Solved)
    aid = request.account.account_id
    for sym in {t.symbol for t in out.trades if t.side == "short"}:
        held = sum(
            (
                x.quantity
                for x in request.ledger.lots
                if x.account == aid and x.symbol == sym and not x.short
            ),
            Decimal(0),
        )
        sold = sum((t.quantity for t in out.trades if t.symbol == sym and t.side == "sell"), 0)
        assert sold == held, sym


def test_a_lot_basis_with_more_than_cents_realizes_whole_cents() -> None:
    request = example_request(names=40, seed=1, strategy="long-short")
    request = _with_lot(request, 33, cost_basis_usd=Decimal("0.000000001"))
    odd = [
        (i, x.cost_basis_usd + Decimal("0.005"))
        for i, x in enumerate(request.ledger.lots)
        if x.account == request.account.account_id and not x.short
    ]
    for i, basis in odd:
        request = _with_lot(request, i, cost_basis_usd=basis)
    out = rebalance(request)
    assert isinstance(out, Solved) and out.realized
    for s in out.realized:
        for amount in (s.gain_usd, s.cost_basis_usd, s.proceeds_usd):
            assert amount == amount.quantize(Decimal("0.01")), s
    st = sum((s.gain_usd for s in out.realized if s.term == "short"), Decimal(0))
    assert st == out.realized_st_usd


def test_a_risk_model_without_factors_solves_on_specific_risk() -> None:
    request = _with_account(_di(), tilts=[])
    m = request.market
    rm = RiskModel(
        factor_names=[],
        loadings=[[] for _ in m.symbols],
        factor_cov=[],
        specific_var=list(m.risk_model.specific_var),
    )
    out = rebalance(_with_market(request, risk_model=rm))
    assert isinstance(out, Solved) and out.status == "ok"


def test_a_long_short_ticket_that_overdraws_its_cash_by_its_commissions_says_so() -> None:
    # Outcome audit: 10 bps on a 130/30 book left $0.37 before commissions of $1,087.88, and
    # the outcome reported cash_w 2.6e-7 with no breach.
    book = example_request(names=30, seed=1, strategy="long-short")
    out = rebalance(_with_account(book, commission_bps=10.0))
    assert isinstance(out, Solved) and out.trades
    cash = book.account.cash_usd
    for t in out.trades:
        cash += t.notional_usd if t.side in ("sell", "short") else -t.notional_usd
    rate = Decimal("0.001")
    fees = sum(
        (
            (t.notional_usd * rate).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")
            for t in out.trades
        ),
        Decimal(0),
    )
    overdrawn = [b for b in out.limit_breaches if b.startswith("cash:") and "commissions" in b]
    assert (cash - fees < 0) == bool(overdrawn)
    assert cash - fees < 0  # this book spends its cash to the cent
    assert not any(
        b.startswith("cash:") and "commissions" in b
        for b in rebalance(book).limit_breaches  # no commission: nothing to say
    )
