"""Malformed requests are rejected with the account and the field named."""

from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from shared.errors import InputError
from shared.examples import example_request
from shared.messages import FactorTilt, RebalanceRequest
from shared.rebalance import rebalance, validate_request

Edit = Callable[[RebalanceRequest], RebalanceRequest]


@functools.cache
def _request() -> RebalanceRequest:
    return example_request(names=20, seed=11)


def _account(**changes: Any) -> Edit:
    return lambda r: msgspec.structs.replace(
        r, account=msgspec.structs.replace(r.account, **changes)
    )


def _market(**changes: Any) -> Edit:
    return lambda r: msgspec.structs.replace(r, market=msgspec.structs.replace(r.market, **changes))


def _own_lot(i: int, **changes: Any) -> Edit:
    def edit(r: RebalanceRequest) -> RebalanceRequest:
        lots = list(r.ledger.lots)
        j = [k for k, x in enumerate(lots) if x.account == r.account.account_id][i]
        lots[j] = msgspec.structs.replace(lots[j], **changes)
        return msgspec.structs.replace(r, ledger=msgspec.structs.replace(r.ledger, lots=lots))

    return edit


def _own_index(r: RebalanceRequest, i: int) -> int:
    return [k for k, x in enumerate(r.ledger.lots) if x.account == r.account.account_id][i]


def _prices(r: RebalanceRequest, i: int, value: float) -> list[float]:
    p = list(r.market.prices)
    p[i] = value
    return p


CASES: list[tuple[str, Edit, str]] = [
    (
        "a newer schema version",
        lambda r: msgspec.structs.replace(r, schema_version=2),
        "schema_version",
    ),
    ("nan price", lambda r: _market(prices=_prices(r, 3, float("nan")))(r), "market.prices[3]"),
    ("zero price", lambda r: _market(prices=_prices(r, 0, 0.0))(r), "market.prices[0]"),
    ("short prices", lambda r: _market(prices=r.market.prices[:-1])(r), "market.prices"),
    (
        "benchmark not summing to one",
        lambda r: _market(benchmark_weights=[w * 2 for w in r.market.benchmark_weights])(r),
        "market.benchmark_weights",
    ),
    (
        "negative benchmark weight",
        lambda r: _market(benchmark_weights=[-0.01, *r.market.benchmark_weights[1:]])(r),
        "market.benchmark_weights[0]",
    ),
    (
        "market of another day",
        lambda r: _market(as_of=r.ledger.lots[0].trade_date)(r),
        "market.as_of",
    ),
    ("zero quantity", _own_lot(0, quantity=Decimal(0)), "ledger.lots[{own0}].quantity"),
    ("nan basis", _own_lot(1, cost_basis_usd=Decimal("NaN")), "ledger.lots[{own1}].cost_basis_usd"),
    # A dust lot of 1e-30 shares with an ordinary basis came back "objective unbounded" (failed).
    ("dust quantity", _own_lot(0, quantity=Decimal("1E-30")), "ledger.lots[{own0}].quantity"),
    (
        "basis of a billion dollars a share",
        _own_lot(1, quantity=Decimal("1E-6"), cost_basis_usd=Decimal(5000)),
        "ledger.lots[{own1}].cost_basis_usd",
    ),
    ("unknown symbol", _own_lot(0, symbol="NOPE"), "ledger.lots[{own0}].symbol"),
    (
        "acquired after as_of",
        lambda r: _own_lot(2, acquired=r.as_of.replace(year=r.as_of.year + 1))(r),
        "ledger.lots[{own2}].acquired",
    ),
    ("short lot in a long-only account", _own_lot(0, short=True), "ledger.lots[{own0}].short"),
    (
        "unknown tilt factor",
        _account(tilts=[FactorTilt(factor="astrology", min_exposure=0.1)]),
        "account.tilts[0].factor",
    ),
    ("zero TE budget", _account(te_budget=0.0), "account.te_budget"),
    # fleet fault audit: 1e15 hung the solve past its time limits / ended "unbounded"
    ("huge risk weight", _account(lambda_te=1e15), "account.lambda_te"),
    ("huge tax weight", _account(lambda_tax=1e15), "account.lambda_tax"),
    ("cap above one", _account(max_weight=1.5), "account.max_weight"),
    ("min cash above max", _account(min_cash_w=0.5, max_cash_w=0.1), "account.max_cash_w"),
    ("negative cash", _account(cash_usd=Decimal(-5)), "account.cash_usd"),
    ("one-name identical group", _account(identical=[["AAA"]]), "account.identical[0]"),
    ("long-short without its spec", _account(strategy="long-short"), "account.long_short"),
    (
        "market-neutral without alpha",
        lambda r: _account(strategy="market-neutral")(_market(alpha=[])(r)),
        "market.alpha",
    ),
    (
        "infinite gain budget",
        _account(gain_budget_usd=Decimal("Infinity")),
        "account.gain_budget_usd",
    ),
]


@pytest.mark.parametrize(("what", "edit", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_request_is_rejected_naming_the_account_and_the_field(
    what: str, edit: Edit, field: str
) -> None:
    request = edit(_request())
    field = field.format(**{f"own{i}": _own_index(request, i) for i in range(3)})
    with pytest.raises(InputError) as info:
        rebalance(request)
    assert info.value.account == request.account.account_id, what
    assert info.value.field == field, str(info.value)
    assert request.account.account_id in str(info.value)


def test_a_well_formed_request_passes_validation() -> None:
    arrays = validate_request(_request())
    assert arrays.prices.shape == (len(_request().market.symbols),)


def test_a_non_psd_factor_covariance_is_rejected() -> None:
    r = _request()
    k = len(r.market.risk_model.factor_names)
    cov = [[-1.0 if i == j else 0.0 for j in range(k)] for i in range(k)]
    rm = msgspec.structs.replace(r.market.risk_model, factor_cov=cov)
    with pytest.raises(InputError, match="positive semidefinite") as info:
        rebalance(_market(risk_model=rm)(r))
    assert info.value.field == "market.risk_model.factor_cov"


def _split_own_lot(r: RebalanceRequest, *, other_day: bool) -> RebalanceRequest:
    """The account's first lot as two parts under one id, as a partial wash sale leaves it:
    one part with a tacked holding period and an adjusted basis (Treas. Reg. §1.1091-1(d))."""
    lots = list(r.ledger.lots)
    j = _own_index(r, 0)
    lot = lots[j]
    half = (lot.quantity / 2).quantize(Decimal("1")) or Decimal(1)
    washed = msgspec.structs.replace(
        lot,
        quantity=lot.quantity - half,
        cost_basis_usd=lot.cost_basis_usd / 2 + Decimal(25),
        wash_adjustment_usd=Decimal(25),
        acquired=lot.acquired.replace(day=1),
        replacement_used=True,
    )
    if other_day:
        washed = msgspec.structs.replace(washed, trade_date=lot.trade_date.replace(day=1))
    rest = msgspec.structs.replace(lot, quantity=half, cost_basis_usd=lot.cost_basis_usd / 2)
    lots[j : j + 1] = [washed, rest]
    return msgspec.structs.replace(r, ledger=msgspec.structs.replace(r.ledger, lots=lots))


def test_the_parts_of_one_purchase_split_by_a_wash_sale_share_their_lot_id() -> None:
    request = _request()
    assert request.ledger.lots[_own_index(request, 0)].trade_date.day != 1
    out = rebalance(_split_own_lot(request, other_day=False))
    assert out.status in ("ok", "relaxed")
    with pytest.raises(InputError) as err:
        validate_request(_split_own_lot(request, other_day=True))
    assert err.value.field == f"ledger.lots[{_own_index(request, 0) + 1}].lot_id"


def test_two_word_for_word_equal_parts_of_one_purchase_are_accepted() -> None:
    # Two losses that each absorbed one share of a two-share lot leave two equal used parts
    # (the fleet bench met this in an IRA lot); they are one purchase, not a duplicate.
    request = _request()
    lots = list(request.ledger.lots)
    j = _own_index(request, 0)
    lot = lots[j]
    part = msgspec.structs.replace(
        lot,
        quantity=lot.quantity / 2,
        cost_basis_usd=lot.cost_basis_usd / 2,
        replacement_used=True,
    )
    lots[j : j + 1] = [part, msgspec.structs.replace(part)]
    split = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )
    assert rebalance(split).status in ("ok", "relaxed")


def test_a_repeated_lot_row_is_refused_as_it_would_double_the_position() -> None:
    # A wash sale's split marks the part it matched replacement_used and leaves one unused
    # remainder; two unused copies of one lot are a repeated row (data-path audit: the night
    # ran on a doubled position and sold "lot A-1-AAA-1" twice).
    request = _request()
    lots = list(request.ledger.lots)
    j = _own_index(request, 0)
    assert not lots[j].replacement_used
    lots.insert(j + 1, lots[j])
    doubled = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )
    with pytest.raises(InputError, match="neither copy marked replacement_used") as err:
        validate_request(doubled)
    assert err.value.field == f"ledger.lots[{j + 1}].lot_id"


def test_a_history_row_dated_after_the_request_is_rejected_naming_it() -> None:
    # Fuzz audit (2026-12-07, eighth session): a purchase of 2026-08-01 in the history of a
    # request of 2026-06-30 was read silently (window-memory entries after the ledger's date
    # were already refused).
    import datetime as dt

    from shared.messages import Transaction

    r = _request()
    late = Transaction(
        id="LATE",
        date=r.as_of + dt.timedelta(days=32),
        account=r.account.account_id,
        symbol=r.market.symbols[0],
        side="buy",
        quantity=Decimal(1),
        price=Decimal(10),
        lot_id="LATE1",
    )
    with pytest.raises(InputError) as err:
        validate_request(msgspec.structs.replace(r, history=[late, *r.history]))
    assert err.value.field == "history[0].date" and "after the request's as_of" in err.value.reason


def test_a_long_short_account_holding_a_name_both_long_and_short_is_rejected_as_a_box() -> None:
    # IRC §1259: a box is a constructive sale of the long shares; the rebalance never creates
    # one and cannot read one (fuzz audit, 2026-12-07 eighth session: accepted silently, the
    # ticket left the name long 701 and short 422 and both shape floors missed).
    r = example_request(names=40, seed=3, strategy="long-short")
    aid = r.account.account_id
    short = next(x for x in r.ledger.lots if x.account == aid and x.short)
    box = msgspec.structs.replace(short, short=False, lot_id="BOX-LONG")
    with pytest.raises(InputError) as err:
        rebalance(
            msgspec.structs.replace(
                r, ledger=msgspec.structs.replace(r.ledger, lots=[*r.ledger.lots, box])
            )
        )
    assert err.value.account == aid and err.value.field.endswith(".short")
    assert short.symbol in err.value.reason and "§1259" in err.value.reason


def test_a_bad_older_sibling_lot_a_pending_loss_reaches_is_named_for_why_it_is_read() -> None:
    # Review audit (2026-12-07, eighth session): a sibling's lot 40 days old, read because a
    # pending loss can still be matched with it, was said to be "bought in the last 30 days".
    import datetime as dt

    from shared.messages import Lot

    r = example_request(names=30, seed=3)
    loss = min(r.ledger.pending_losses, key=lambda p: p.date_sold)
    day = loss.date_sold - dt.timedelta(days=25)
    assert (r.as_of - day).days > 30
    bad = Lot(
        account="SIBLING",
        symbol=loss.symbol,
        lot_id="S1",
        quantity=Decimal(10),
        trade_date=day,
        acquired=day + dt.timedelta(days=1),
        cost_basis_usd=Decimal("1000.00"),
    )
    with pytest.raises(InputError) as err:
        rebalance(
            msgspec.structs.replace(
                r, ledger=msgspec.structs.replace(r.ledger, lots=[*r.ledger.lots, bad])
            )
        )
    assert "SIBLING" in err.value.reason and "before a pending loss's sale" in err.value.reason
