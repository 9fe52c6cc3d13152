"""Example requests and synthetic books are realistic, deterministic and fast."""

from __future__ import annotations

import functools

import msgspec
import pytest

from shared.examples import DEFAULT_AS_OF, example_request, synthetic_book
from shared.ledger import Ledger, is_long_term
from shared.messages import RebalanceRequest


@functools.cache
def _request(seed: int) -> RebalanceRequest:
    return example_request(names=30, seed=seed)


def test_the_same_seed_gives_the_same_request() -> None:
    assert example_request(names=30, seed=7) == _request(7)


def test_an_example_account_has_gains_losses_short_and_long_term_lots() -> None:
    r = _request(7)
    price = dict(zip(r.market.symbols, r.market.prices, strict=True))
    own = [x for x in r.ledger.lots if x.account == r.account.account_id]
    held = {x.symbol for x in own}
    assert len(own) >= 3 * len(held)  # ~4 lots per held name
    gains = [float(x.quantity) * price[x.symbol] - float(x.cost_basis_usd) for x in own]
    assert any(g > 0 for g in gains)
    assert any(g < 0 for g in gains)
    terms = {is_long_term(x.acquired, r.as_of) for x in own}
    assert terms == {True, False}


def test_the_wash_sale_restrictions_bite_in_an_example_household() -> None:
    for seed in (1, 2, 7):
        r = _request(seed)
        restrictions = Ledger.from_state(r.ledger).restrictions(r.as_of)
        assert restrictions.no_buy, seed
        assert restrictions.no_loss_sale_lots, seed
        assert {x.account_type for x in r.ledger.lots} == {"taxable", "ira"}
        assert r.history


def test_the_example_market_is_the_day_snapshot_with_the_true_risk_model() -> None:
    r = _request(1)
    assert r.market.as_of == r.as_of == r.ledger.as_of
    assert len(r.market.risk_model.loadings) == len(r.market.symbols)


def test_long_short_and_market_neutral_examples_carry_their_fields_and_short_lots() -> None:
    ls = example_request(names=30, seed=2, strategy="long-short")
    assert ls.account.long_short is not None
    assert any(x.short for x in ls.ledger.lots)
    mn = example_request(names=30, seed=2, strategy="market-neutral")
    assert mn.market.alpha
    assert any(x.short for x in mn.ledger.lots)


def test_a_synthetic_book_shares_ledger_state_within_a_household() -> None:
    market, book = synthetic_book(accounts=30, names=40, seed=3, as_of=DEFAULT_AS_OF)
    assert len(book) == 30
    assert len({spec.account_id for spec, _ in book}) == 30
    by_household: dict[str, list[object]] = {}
    for spec, state in book:
        assert state.household_id == spec.household_id
        assert any(x.account == spec.account_id for x in state.lots) or spec.account_type == "ira"
        by_household.setdefault(spec.household_id, []).append(state)
    assert any(len(v) > 1 for v in by_household.values())
    for states in by_household.values():
        assert all(s is states[0] for s in states)
    known = set(market.symbols)
    assert all(x.symbol in known for _, s in book for x in s.lots)


def test_a_steady_state_book_has_few_harvestable_old_losses() -> None:
    market, book = synthetic_book(accounts=10, names=60, seed=5, as_of=DEFAULT_AS_OF)
    _, fresh = synthetic_book(
        accounts=10, names=60, seed=5, as_of=DEFAULT_AS_OF, steady_state=False
    )
    price = dict(zip(market.symbols, market.prices, strict=True))

    def deep_losses(pairs: list) -> int:  # type: ignore[type-arg]
        return sum(
            1
            for spec, s in pairs
            for x in s.lots
            if x.account == spec.account_id
            and float(x.cost_basis_usd) > 1.05 * float(x.quantity) * price[x.symbol]
        )

    assert deep_losses(book) < deep_losses(fresh) / 3


def test_the_warm_up_request_is_deterministic_and_solves_with_both_wash_rules_biting() -> None:
    from shared.examples import warmup_request
    from shared.ledger import Ledger
    from shared.rebalance import rebalance

    request = warmup_request()
    assert msgspec.json.encode(request) == msgspec.json.encode(warmup_request())
    rules = Ledger.from_state(request.ledger).restrictions(request.as_of)
    assert rules.no_buy, "a loss sale in the window should bar a buy (IRC §1091)"
    assert rules.no_loss_sale_lots, "a recent purchase should put loss lots in the window"
    out = rebalance(request)
    assert out.status == "ok"
    assert any(t.reason == "harvest" for t in out.trades)
    assert not {t.symbol for t in out.trades if t.side == "buy"} & set(rules.no_buy)


def test_a_synthetic_books_pending_losses_are_of_names_its_household_did_not_buy_around_them() -> (
    None
):
    # Nightly audit (2026-12-07): 4 of a 40-account demo book's pending losses sat beside an
    # unused purchase of the name within 30 days of the sale (2 in IRAs), which a ledger would
    # have washed (IRC §1091(a)); a night then sold such a lot at -$2.85 where a full replay
    # says -$54.67.
    _, book = synthetic_book(accounts=200, names=60, seed=3, as_of=DEFAULT_AS_OF)
    states = {id(state): state for _, state in book}.values()
    pending = 0
    for state in states:
        for p in state.pending_losses:
            pending += 1
            near = [
                x.lot_id
                for x in state.lots
                if x.symbol == p.symbol and abs((x.trade_date - p.date_sold).days) <= 30
            ]
            assert near == [], (state.household_id, p.symbol, near)
    assert pending >= 20


@pytest.mark.parametrize(("names", "seed"), [(3, 0), (10, 0)])
def test_an_account_that_draws_no_lot_on_a_tiny_universe_is_a_newly_funded_cash_account(
    names: int, seed: int
) -> None:
    # Contract audit (2026-12-07): `nightly --names 3 --seed 0` and `bench solve --names 10
    # --accounts 20 --seed 0` died with a KeyError on the account that held nothing.
    from shared.examples import NEW_ACCOUNT_CASH_USD

    _, book = synthetic_book(accounts=20, names=names, seed=seed, as_of=DEFAULT_AS_OF)
    holders = {lot.account for _, state in book for lot in state.lots}
    empty = [spec for spec, _ in book if spec.account_id not in holders]
    assert empty, "the case needs an account without lots"
    assert all(spec.cash_usd == NEW_ACCOUNT_CASH_USD for spec in empty)
    assert all(spec.cash_usd < NEW_ACCOUNT_CASH_USD for spec, _ in book if spec not in empty)


def test_a_synthetic_books_lots_and_loss_sales_are_dated_on_nyse_sessions() -> None:
    # Contract audit (2026-12-07): a third of the lots were bought on weekends and holidays.
    from shared.calendar import is_trading_day

    _, book = synthetic_book(accounts=12, names=40, seed=7, as_of=DEFAULT_AS_OF)
    lots = [lot for _, state in book for lot in state.lots]
    sales = [p.date_sold for _, state in book for p in state.pending_losses]
    assert len(lots) > 1000 and sales
    assert all(is_trading_day(x.trade_date) and is_trading_day(x.acquired) for x in lots)
    assert all(is_trading_day(d) for d in sales)
