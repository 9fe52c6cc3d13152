"""Targeted rules of the rebalance: identical groups, tilt annotations, rounding, IRAs, the
other strategies, the post-solve lock, and failures that must not be hidden."""

from __future__ import annotations

import functools
from decimal import Decimal

import msgspec
import numpy as np
import pytest

from shared.errors import Infeasible, InputError, SolverFailed
from shared.examples import example_request
from shared.messages import FactorTilt, RebalanceRequest, Solved
from shared.optimizer.data import ProblemData, Solution
from shared.optimizer.problem import solve
from shared.rebalance import rebalance


@functools.cache
def _request(seed: int = 1, strategy: str = "direct-index") -> RebalanceRequest:
    return example_request(names=40, seed=seed, strategy=strategy)  # type: ignore[arg-type]


def _with_account(request: RebalanceRequest, **changes: object) -> RebalanceRequest:
    return msgspec.structs.replace(
        request, account=msgspec.structs.replace(request.account, **changes)
    )


def _loss_symbols(request: RebalanceRequest) -> list[str]:
    price = dict(zip(request.market.symbols, request.market.prices, strict=True))
    out = []
    for x in request.ledger.lots:
        if x.account == request.account.account_id and (
            float(x.cost_basis_usd) > 1.1 * float(x.quantity) * price[x.symbol]
        ):
            out.append(x.symbol)
    return sorted(set(out))


def test_a_harvested_name_blocks_buys_of_its_substantially_identical_twin() -> None:
    request = _request(2)
    harvested = [t.symbol for t in rebalance(request).trades if t.reason == "harvest"]
    bought = [t.symbol for t in rebalance(request).trades if t.side == "buy"]
    assert harvested and bought
    pairs = [[h, b] for h in harvested for b in bought if h != b][:3]
    out = rebalance(_with_account(request, identical=pairs))
    sold_at_loss = {t.symbol for t in out.trades if t.reason == "harvest"}
    for group in pairs:
        if sold_at_loss & set(group):
            assert not {t.symbol for t in out.trades if t.side == "buy"} & set(group)


def test_a_binding_tilt_annotates_its_trades_with_the_factor_and_the_score() -> None:
    request = _request(3)
    factor = (
        "momentum"
        if "momentum" in request.market.risk_model.factor_names
        else (request.market.risk_model.factor_names[-1])
    )
    tilted = _with_account(request, tilts=[FactorTilt(factor=factor, min_exposure=0.25)])
    out = rebalance(tilted)
    assert out.status in {"ok", "relaxed"}
    exposure = {f.factor: f for f in out.factor_exposures}[factor]
    assert exposure.target_min == 0.25
    if "tilt" in out.relaxations:
        pytest.skip("tilt relaxed for this book")
    tilt_trades = [t for t in out.trades if t.reason == "tilt"]
    assert tilt_trades
    f = list(request.market.risk_model.factor_names).index(factor)
    loading = dict(
        zip(
            request.market.symbols,
            (row[f] for row in request.market.risk_model.loadings),
            strict=True,
        )
    )
    for t in tilt_trades:
        assert t.driver == factor
        assert t.factor_score == pytest.approx(loading[t.symbol])
        direction = 1 if t.side == "buy" else -1
        assert direction * loading[t.symbol] > 0


def test_fractional_accounts_trade_ten_thousandths_and_whole_share_accounts_shares() -> None:
    whole = rebalance(_request(1))
    frac = rebalance(_with_account(_request(1), fractional_shares=True))
    lots = {x.lot_id: x for x in _request(1).ledger.lots}
    for t in whole.trades:
        if t.side == "buy" or (t.side == "sell" and t.quantity != lots[t.lot_id].quantity):
            assert t.quantity == t.quantity.to_integral_value()
    assert any(t.quantity != t.quantity.to_integral_value() for t in frac.trades)
    for t in frac.trades:
        assert t.quantity == t.quantity.quantize(Decimal("0.0001"))


def test_rounding_never_spends_cash_the_account_does_not_have() -> None:
    for seed in (1, 2, 3):
        request = _request(seed)
        out = rebalance(request)
        cash = request.account.cash_usd
        for t in out.trades:
            cash += t.notional_usd if t.side == "sell" else -t.notional_usd
        assert cash >= 0
        assert out.cash_w <= request.account.max_cash_w + 2e-3


def test_an_ira_account_has_no_tax_and_no_harvest_but_keeps_the_household_no_buy_list() -> None:
    request = _request(1)
    ira_lots = [
        msgspec.structs.replace(x, account_type="ira")
        for x in request.ledger.lots
        if x.account == request.account.account_id
    ]
    others = [x for x in request.ledger.lots if x.account != request.account.account_id]
    ledger = msgspec.structs.replace(request.ledger, lots=[*others, *ira_lots])
    ira = msgspec.structs.replace(
        _with_account(request, account_type="ira", exclusions=[]), ledger=ledger
    )
    out = rebalance(ira)
    assert out.realized == []
    assert out.estimated_tax_usd == 0
    assert all(t.reason != "harvest" for t in out.trades)
    from shared.ledger import Ledger

    no_buy = Ledger.from_state(ledger).restrictions(request.as_of).no_buy
    assert not {t.symbol for t in out.trades if t.side == "buy"} & set(no_buy)


def test_the_long_short_book_stays_within_its_long_short_and_gross_limits() -> None:
    request = _request(1, "long-short")
    out = rebalance(request)
    w = np.array(list(out.weights.values()))
    spec = request.account.long_short
    assert spec is not None
    assert w[w > 0].sum() <= spec.long_w + 2e-3
    assert -w[w < 0].sum() <= spec.short_w + 2e-3
    assert {t.side for t in out.trades} <= {"buy", "sell", "short", "cover"}
    lots = {x.lot_id: x for x in request.ledger.lots}
    for t in out.trades:
        if t.side == "cover":
            assert lots[t.lot_id].short
            assert t.reason in {"cover", "harvest", "exclusion", "tilt"}


def test_a_130_30_account_ends_at_130_long_30_short_and_net_100_within_the_band() -> None:
    from shared.rebalance import LONG_SHORT_BAND

    # 100 names (the example-request default): at 40 names 30% of shorts cannot fit a 4% TE
    # budget and the chain relaxes it (the shape still holds).
    request = example_request(names=100, seed=1, strategy="long-short")
    spec = request.account.long_short
    assert spec is not None and (spec.long_w, spec.short_w) == (1.3, 0.3)
    out = rebalance(request)
    assert out.status == "ok"
    w = np.array(list(out.weights.values()))
    band, rounding = LONG_SHORT_BAND, 2e-3  # whole shares, new shorts rounded down
    assert spec.long_w - band - rounding <= w[w > 0].sum() <= spec.long_w + rounding
    assert spec.short_w - band - rounding <= -w[w < 0].sum() <= spec.short_w + rounding
    assert 1.0 - band - rounding <= w.sum() <= 1.0 + rounding
    assert out.cash_w >= 0


def test_the_market_neutral_sleeve_is_dollar_and_factor_neutral() -> None:
    request = _request(1, "market-neutral")
    out = rebalance(request)
    assert out.status == "ok"
    w = np.array([out.weights.get(s, 0.0) for s in request.market.symbols])
    assert (w > 1e-3).sum() >= 5 and (w < -1e-3).sum() >= 5, "a sleeve with real positions"
    assert abs(w.sum()) < 5e-3
    assert np.abs(w).sum() <= request.account.gross_limit_w + 5e-3
    for f in out.factor_exposures:
        assert abs(f.active) < 5e-3, f
    assert any(t.reason == "alpha" for t in out.trades)


def test_a_solver_failure_is_raised_not_hidden_behind_a_worse_portfolio() -> None:
    def failing(data: ProblemData) -> Solution:
        raise SolverFailed("clarabel: NumericalError; clarabel-safe: NumericalError")

    with pytest.raises(SolverFailed):
        rebalance(_request(1), solve=failing)


def test_a_ticket_the_ledger_finds_washing_is_locked_and_re_solved() -> None:
    request = _request(1)
    first = rebalance(request)
    victim = next(t for t in first.trades if t.reason == "harvest")
    calls: list[ProblemData] = []

    def sloppy(data: ProblemData) -> Solution:
        # An optimizer that ignores the side constraints on the victim until the name is locked
        # (its loss lots no longer sellable): it buys the name it harvests, which the wash check
        # must catch and fix.  (Every answer before the lock is sloppy: the side refinement may
        # re-solve before the wash check runs.)
        calls.append(data)
        sol = solve(data)
        i = data.symbols.index(victim.symbol)
        if (data.lot_sellable & (data.lot_name == i) & (data.lot_tax < 0)).any():
            buy = sol.buy.copy()
            buy[i] += 0.002
            w = sol.w.copy()
            w[i] += 0.002
            return msgspec_replace(sol, buy=buy, w=w, cash_w=sol.cash_w - 0.002)
        return sol

    out = rebalance(request, solve=sloppy)
    assert len(calls) >= 2
    assert any("locked" in a and victim.symbol in a for a in out.solver.attempts)
    bought = {t.symbol for t in out.trades if t.side == "buy"}
    assert victim.symbol not in bought
    assert out.wash_sale_issues == []


def msgspec_replace(sol: Solution, **changes: object) -> Solution:
    import dataclasses

    return dataclasses.replace(sol, **changes)  # type: ignore[arg-type]


def test_infeasible_never_escapes_the_relaxation_chain() -> None:
    def never(data: ProblemData) -> Solution:
        raise Infeasible("no")

    request = _with_account(
        _request(1),
        tilts=[FactorTilt(factor=_request(1).market.risk_model.factor_names[-1], min_exposure=0.1)],
        gain_budget_usd=Decimal(1000),
    )
    out = rebalance(request, solve=never)
    assert out.status == "held"
    assert out.trades == []
    assert out.relaxations == [
        "tilt",
        "te_budget×1.5",
        "te_budget×2",
        "no_te_budget",
        "gain_budget",
        "hold",
    ]
    assert out.solver.solver == "none"
    plain = rebalance(_with_account(_request(1), tilts=[]), solve=never)
    assert plain.relaxations == ["te_budget×1.5", "te_budget×2", "no_te_budget", "hold"]


def _infeasible_while(conflict: object) -> object:
    """A solver that finds the problem infeasible while ``conflict(data)`` holds."""

    def solve_unless(data: ProblemData) -> Solution:
        if conflict(data):  # type: ignore[operator]
            raise Infeasible("conflict")
        return solve(data)

    return solve_unless


def test_steps_a_later_relaxation_made_unnecessary_are_put_back() -> None:
    # Only the turnover limit conflicts: the chain drops the tilt and the TE cap on its way
    # to it, and once the turnover limit is gone both come back (reference-solve audit: a
    # 300-name book kept TE 4.27% against its 2% budget and missed its value floor).
    request = _with_account(
        _request(1),
        tilts=[FactorTilt(factor=_request(1).market.risk_model.factor_names[-1], min_exposure=0.0)],
        turnover_limit_w=0.05,
    )
    out = rebalance(request, solve=_infeasible_while(lambda d: d.turnover_max_w is not None))  # type: ignore[arg-type]
    assert out.status == "relaxed"
    assert out.relaxations == ["turnover"]
    assert out.te_ex_ante <= request.account.te_budget + 1e-9
    (tilt,) = [x for x in out.factor_exposures if x.target_min is not None]
    assert tilt.active >= -1e-6
    assert any("put back: tilt" in a for a in out.solver.attempts)

    # The TE cap is put back as far as it goes: here to ×2, which the turnover limit's
    # absence does not make unnecessary.
    budget = request.account.te_budget

    def te_or_turnover(d: ProblemData) -> bool:
        return d.turnover_max_w is not None or (d.te_max is not None and d.te_max < 1.9 * budget)

    out = rebalance(request, solve=_infeasible_while(te_or_turnover))  # type: ignore[arg-type]
    assert out.relaxations == ["te_budget×1.5", "te_budget×2", "turnover"]


def test_steps_before_exclusions_over_time_are_put_back_while_the_budgets_still_bind() -> None:
    # Diff review: on the exclusions_over_time path the chain kept its dropped tilt although
    # the level with the tilt solved with the gain budget binding (low_vol -0.036 against 0.3).
    base = example_request(names=50, seed=3)
    request = _with_account(
        base,
        exclusions=["ZSP"],
        gain_budget_usd=Decimal(0),
        te_budget=0.004,
        tilts=[FactorTilt(factor="low_vol", min_exposure=0.3)],
    )
    out = rebalance(request)
    assert out.relaxations[-1] == "exclusions_over_time"
    assert "tilt" not in out.relaxations
    (tilt,) = [x for x in out.factor_exposures if x.target_min is not None]
    assert tilt.active >= 0.3 - 1e-3 or "tilt" in " ".join(out.limit_breaches)


def test_the_last_relaxation_step_stays_when_it_alone_makes_the_account_feasible() -> None:
    # The TE cap is the conflict: nothing after it is tried, and the tilt comes back.
    request = _with_account(
        _request(1),
        tilts=[FactorTilt(factor=_request(1).market.risk_model.factor_names[-1], min_exposure=0.0)],
    )
    budget = request.account.te_budget
    out = rebalance(
        request,
        solve=_infeasible_while(lambda d: d.te_max is not None and d.te_max < 1.4 * budget),  # type: ignore[arg-type]
    )
    assert out.relaxations == ["te_budget×1.5"]


def test_a_sleeve_no_ticket_can_pin_to_neutral_trades_within_the_narrow_band_not_held() -> None:
    # 17 factor exposures pinned with 30 names, several tradable one way only: this sleeve was
    # held (no trades, its exposures left up to 0.64).  The chain's band steps come before
    # hold, and the TE steps taken on the way are put back.
    import shared.rebalance as rb

    out = rebalance(example_request(names=30, seed=2, strategy="market-neutral"))
    assert out.status == "relaxed" and out.relaxations == ["neutral_band=0.05"]
    assert out.trades
    assert max(abs(x.active) for x in out.factor_exposures) <= 0.05 + rb.ROUNDED_EQ_TOL
    assert out.te_ex_ante <= out.te_budget + 1e-9
    assert out.limit_breaches == []


def test_a_long_short_book_without_a_long_loss_lot_rebalances() -> None:
    # Households audit: every long lot at a gain, short lots at a loss: numpy's bincount of
    # no items is int64, and an in-place float add on it ended the account `failed`.
    request = _request(1, "long-short")
    aid = request.account.account_id
    lots = [
        msgspec.structs.replace(lot, cost_basis_usd=Decimal("0.01") * lot.quantity)
        if lot.account == aid and not lot.short
        else lot
        for lot in request.ledger.lots
    ]
    request = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )
    out = rebalance(request)
    assert out.status in ("ok", "relaxed")
    assert any(t.side == "cover" for t in out.trades)


def test_a_gain_budget_and_a_turnover_limit_hold_on_the_rounded_ticket() -> None:
    request = _with_account(
        _request(2), gain_budget_usd=Decimal(0), turnover_limit_w=0.05, exclusions=[]
    )
    out = rebalance(request)
    assert out.status in {"ok", "relaxed"}
    if {"turnover", "gain_budget"} & set(out.relaxations):
        pytest.skip("budgets relaxed for this book")
    nav = float(out.nav_usd)
    traded = sum(float(t.notional_usd) for t in out.trades)
    assert traded / 2 / nav <= 0.05 + 2e-3  # one-way turnover: half of what is traded
    net = out.realized_st_usd + out.realized_lt_usd
    # Held a cent per lot inside (gain_budget_margin_usd): the booked gain meets it exactly.
    assert net <= 0


def test_an_excluded_name_is_sold_whole_even_from_a_lot_in_the_wash_window() -> None:
    from shared.ledger import Ledger

    request = _request(1)
    blocked = Ledger.from_state(request.ledger).restrictions(request.as_of).no_loss_sale_lots
    own = {x.lot_id: x for x in request.ledger.lots if x.account == request.account.account_id}
    target = next(own[lot_id].symbol for (a, lot_id) in blocked if lot_id in own)
    out = rebalance(_with_account(request, exclusions=[target]))
    assert out.weights.get(target, 0.0) == 0.0
    sold = {t.lot_id for t in out.trades if t.symbol == target}
    assert sold == {x.lot_id for x in own.values() if x.symbol == target}
    assert all(t.reason == "exclusion" for t in out.trades if t.symbol == target)
    for issue in out.wash_sale_issues:
        assert issue.symbol == target
        assert "excluded" in issue.reason


def test_an_exclusion_matches_regardless_of_case_and_one_outside_the_market_is_noted() -> None:
    request = _request(1)
    held = next(x.symbol for x in request.ledger.lots if x.account == request.account.account_id)
    exact = rebalance(_with_account(request, exclusions=[held]))
    assert held not in exact.weights and exact.notes == []
    lower = rebalance(_with_account(request, exclusions=[held.lower(), "NOT-A-TICKER"]))
    assert held not in lower.weights
    assert {t.reason for t in lower.trades if t.symbol == held} == {"exclusion"}
    assert lower.notes == [
        f"exclusion {held.lower()!r} matched {held} (case ignored)",
        "exclusion 'NOT-A-TICKER' is not in the market: it excludes nothing",
    ]
    assert lower.trades == exact.trades  # the unknown symbol changes nothing


def test_a_held_account_lists_the_limits_its_unchanged_book_misses() -> None:
    def never(data: ProblemData) -> Solution:
        raise Infeasible("no")

    request = _request(1)
    held = max(
        (x for x in request.ledger.lots if x.account == request.account.account_id),
        key=lambda x: x.quantity,
    ).symbol
    out = rebalance(_with_account(request, exclusions=[held]), solve=never)
    assert out.status == "held" and out.trades == []
    # The excluded name is still held (a hold never trades): its weight is above its cap of 0.
    assert any(b.startswith("held: ") and held in b for b in out.limit_breaches), out.limit_breaches
    fine = rebalance(_with_account(request, exclusions=[]))
    assert fine.status == "ok" and fine.limit_breaches == []


def test_a_forced_loss_sale_washed_by_a_household_ira_purchase_is_reported_lost_for_good() -> None:
    import datetime as dt

    from shared.messages import Lot

    request = _request(1)
    aid = request.account.account_id
    loser = _loss_symbols(request)[0]
    ira_buy = Lot(
        account="IRA-OF-" + aid,
        symbol=loser,
        lot_id="IRA-1",
        quantity=Decimal(5),
        trade_date=request.as_of - dt.timedelta(days=3),
        acquired=request.as_of - dt.timedelta(days=3),
        cost_basis_usd=Decimal("500.00"),
        account_type="ira",
    )
    ledger = msgspec.structs.replace(request.ledger, lots=[*request.ledger.lots, ira_buy])
    forced = msgspec.structs.replace(
        request,
        ledger=ledger,
        account=msgspec.structs.replace(request.account, exclusions=[loser]),
    )
    out = rebalance(forced)
    washed = [s for s in out.realized if s.symbol == loser and s.disallowed_loss_usd > 0]
    assert washed, out.wash_sale_issues
    # Rev. Rul. 2008-5: the IRA replacement carries no basis, so the disallowed loss is lost
    # for good and the slice says so; a slice with no wash says nothing.
    assert sum(s.disallowed_loss_usd for s in washed) > 0
    assert all(s.permanently_disallowed_usd == s.disallowed_loss_usd for s in washed)
    assert all(
        s.permanently_disallowed_usd == 0 for s in out.realized if s.disallowed_loss_usd == 0
    )


def test_an_exclusion_a_gain_budget_keeps_from_a_whole_sale_is_sold_over_time() -> None:
    # DESIGN §2: exclusions are sold "tax-aware, over time if a gain budget says so".  DI audit
    # (60 names, seed 1, the largest-gain name excluded, $1,000 gain budget): the chain dropped
    # the TE budget and then the gain budget, realizing $27,513.31 of gain at TE 4.6%.
    request = example_request(names=60, seed=1)
    aid = request.account.account_id
    price = dict(zip(request.market.symbols, request.market.prices, strict=True))
    gain: dict[str, float] = {}
    for x in request.ledger.lots:
        if x.account == aid and not x.short:
            value = float(x.quantity) * price[x.symbol] - float(x.cost_basis_usd)
            gain[x.symbol] = gain.get(x.symbol, 0.0) + value
    target = max(gain, key=lambda s: gain[s])
    before = rebalance(_with_account(request, exclusions=[])).weights.get(target, 0.0)
    out = rebalance(_with_account(request, exclusions=[target], gain_budget_usd=Decimal(1000)))
    assert "exclusions_over_time" in out.relaxations and "gain_budget" not in out.relaxations
    assert out.realized_st_usd + out.realized_lt_usd <= Decimal("1001.00")  # rounding: cents
    assert 0.0 < out.weights.get(target, 0.0) < before
    assert all(t.side == "sell" for t in out.trades if t.symbol == target)
    assert any(n.startswith(f"exclusion {target}: ") for n in out.notes), out.notes
    # Without a budget the exclusion is sold whole tonight, whatever it realizes.
    whole = rebalance(_with_account(request, exclusions=[target]))
    assert target not in whole.weights and "exclusions_over_time" not in whole.relaxations


def test_an_excluded_short_whose_cover_would_break_the_gain_budget_is_covered_over_time() -> None:
    # Review: exclusions_over_time only knew names held long; a long/short book's excluded
    # short (one lot's proceeds raised so that covering it gains ~$400k) was covered whole at
    # $252,979 of gain against a $1,000 budget.
    request = example_request(names=60, seed=1, strategy="long-short")
    aid = request.account.account_id
    lot = next(x for x in request.ledger.lots if x.account == aid and x.short)
    rich = msgspec.structs.replace(lot, cost_basis_usd=lot.cost_basis_usd + Decimal(400_000))
    ledger = msgspec.structs.replace(
        request.ledger, lots=[rich if x is lot else x for x in request.ledger.lots]
    )
    account = msgspec.structs.replace(
        request.account, exclusions=[lot.symbol], gain_budget_usd=Decimal(1000)
    )
    out = rebalance(msgspec.structs.replace(request, ledger=ledger, account=account))
    assert "exclusions_over_time" in out.relaxations and "gain_budget" not in out.relaxations
    assert out.realized_st_usd + out.realized_lt_usd <= Decimal("1001.00")
    assert out.weights.get(lot.symbol, 0.0) < 0.0  # still short, less than before or equal
    assert all(t.side == "cover" for t in out.trades if t.symbol == lot.symbol)
    assert rich.lot_id not in {t.lot_id for t in out.trades}  # the big-gain lot waits
    assert any(n.startswith(f"exclusion {lot.symbol}: ") and "cover" in n for n in out.notes)


@pytest.mark.parametrize(("seed", "excluded"), [(0, "UQO"), (1, "DNK")])
def test_an_exclusion_tracking_keeps_is_sold_whole_at_a_wider_te_not_blamed_on_the_budget(
    seed: int, excluded: str
) -> None:
    # Outcome audit, 2026-12-08: a long/short book kept UQO at 7.35% of NAV "over time", the
    # note blaming a +$1,000 gain budget the ticket missed by $59,845; sold whole, the book
    # needs the TE budget ×1.5 and still meets the budget.  Tracking kept it, so the
    # exclusion stays whole and the chain goes on (docs/rebalance.md §6).
    request = example_request(names=50, seed=seed, strategy="long-short")
    out = rebalance(_with_account(request, exclusions=[excluded], gain_budget_usd=Decimal(1000)))
    assert isinstance(out, Solved)
    assert "exclusions_over_time" not in out.relaxations, out.relaxations
    assert "te_budget×1.5" in out.relaxations and "gain_budget" not in out.relaxations
    assert excluded not in out.weights
    assert out.realized_st_usd + out.realized_lt_usd <= Decimal("1001.00")


@pytest.mark.parametrize(
    ("names", "seed", "strategy", "cap", "name"),
    [(50, 0, "direct-index", 0.12, "DFQ"), (20, 1, "long-short", None, "WGJ")],
)
def test_a_name_over_its_cap_that_the_wash_window_keeps_does_not_hold_the_account(
    names: int, seed: int, strategy: str, cap: float | None, name: str
) -> None:
    # Outcome audit, 2026-12-08: DFQ at 12.5% against a 12% cap, its loss lots bought by the
    # household four days earlier (IRC §1091: no loss sale), made the book infeasible at every
    # rung and it was held without a trade; so was an unedited 20-name long/short example (WGJ
    # at 35.5% against 27%, bought by the IRA the day before).  The name may stay at what its
    # unsellable lots hold tonight, said in the notes; the rest of the book trades.
    request = example_request(names=names, seed=seed, strategy=strategy)  # type: ignore[arg-type]
    if cap is not None:
        request = _with_account(request, max_weight=cap)
    out = rebalance(request)
    assert isinstance(out, Solved) and out.status == "relaxed" and out.trades
    # not `ok`: the cap is not met tonight, and the aggregator's not-ok list shows it
    assert out.relaxations[0] == "caps_over_time"
    note = next(n for n in out.notes if n.startswith(f"cap {name}: "))
    assert "IRC §1091" in note
    assert not any(t.symbol == name and t.side == "buy" for t in out.trades)
    assert not out.limit_breaches


def test_no_limit_is_given_up_for_an_exclusion_the_looser_level_still_sells_over_time() -> None:
    # Review audit, 2026-12-08: with the TE budget and the gain budget both in the way of a
    # whole sale, the chain gave up the tilt and the TE budget (TE 2.22%, momentum floor
    # missed) and still sold MDC and JSE over time, no further.  Over time stays at the level
    # where the next one cannot sell them whole within the budget either.
    request = example_request(names=30, seed=36)
    out = rebalance(
        _with_account(
            request, max_weight=0.1326, exclusions=["MDC", "JSE"], gain_budget_usd=Decimal(1000)
        )
    )
    assert isinstance(out, Solved)
    assert out.relaxations == ["exclusions_over_time"], out.relaxations
    assert out.te_ex_ante <= 0.02 + 1e-7


def test_the_cash_row_counts_the_commissions_of_the_repaired_ticket() -> None:
    # Outcome audit, 2026-12-08: the share repair counted the commissions of the ticket before
    # it ($5,688.42) though it moved enough shares to pay $5,664.78; the cash ended $9.38 above
    # max_cash_w with nothing in limit_breaches.
    request = example_request(names=50, seed=1)
    out = rebalance(
        _with_account(
            request, exclusions=["DNK"], gain_budget_usd=Decimal(1000), commission_bps=50.0
        )
    )
    assert isinstance(out, Solved)
    assert out.cash_w <= request.account.max_cash_w + 1e-9 or out.limit_breaches


def test_a_turnover_limit_that_cannot_hold_is_dropped_before_the_gain_budget() -> None:
    # Exclusions audit: a 50-name long/short book (seed 3) with a $500 gain budget and a 0.05
    # turnover limit — only the turnover conflicted, but one `budgets` step dropped both and
    # the night realized $42,171.  Now the turnover goes alone; the gain budget holds.
    request = example_request(names=50, seed=3, strategy="long-short")
    out = rebalance(_with_account(request, gain_budget_usd=Decimal(500), turnover_limit_w=0.05))
    assert "turnover" in out.relaxations and "gain_budget" not in out.relaxations
    assert out.realized_st_usd + out.realized_lt_usd <= Decimal("501.00")


def test_an_own_lot_spelled_in_another_case_than_the_market_is_rejected_naming_the_spelling() -> (
    None
):
    # A lower-case vendor export beside an upper-case book rejected every account saying only
    # "not in the market snapshot" (market audit).
    request = _request(1)
    aid = request.account.account_id
    k = next(i for i, x in enumerate(request.ledger.lots) if x.account == aid)
    held = request.ledger.lots[k].symbol
    lots = list(request.ledger.lots)
    lots[k] = msgspec.structs.replace(lots[k], symbol=held.lower())
    bad = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )
    with pytest.raises(InputError, match=f"the market lists it as {held}") as info:
        rebalance(bad)
    assert info.value.field == f"ledger.lots[{k}].symbol"
    assert info.value.account == aid


def test_a_te_budget_in_percent_is_refused_with_the_hint() -> None:
    # Badinput audit: `te_budget: 2` (2%) ran as 200%/y; TE ended 4.93%, no word.
    request = _request(1)
    with pytest.raises(InputError, match="percent\\? give a fraction") as info:
        rebalance(_with_account(request, te_budget=2.0))
    assert info.value.field == "account.te_budget"
    rebalance(_with_account(request, te_budget=1.0))  # the bound itself is accepted


def test_an_account_that_holds_none_of_its_ledgers_lots_is_solved_with_a_note() -> None:
    # Badinput audit: `ACC-003` for `ACC-0003` ran the real lots as a sibling's, no word.
    request = _request(1)
    real = request.account.account_id
    out = rebalance(_with_account(request, account_id=real + "X"))
    assert any("holds no lot of the ledger (its lots are of" in n for n in out.notes), out.notes
    assert real in next(n for n in out.notes if "holds no lot" in n)
    assert not any("holds no lot" in n for n in rebalance(request).notes)


def test_a_bad_lot_of_another_account_in_the_window_says_whose_it_is() -> None:
    # Badinput audit: a sibling was rejected over a lot id only its own account's, unsaid.
    request = _request(1)
    aid = request.account.account_id
    k, lot = next(
        (i, x)
        for i, x in enumerate(request.ledger.lots)
        if x.account != aid and (request.as_of - x.trade_date).days <= 30
    )
    lots = list(request.ledger.lots)
    lots[k] = msgspec.structs.replace(lot, cost_basis_usd=Decimal("-336.30"))
    bad = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )
    with pytest.raises(InputError, match=f"a lot of household account {lot.account}") as info:
        rebalance(bad)
    assert info.value.account == aid and info.value.field == f"ledger.lots[{k}].cost_basis_usd"


def test_an_optional_pass_that_fails_once_the_deadline_is_spent_fails_the_solve() -> None:
    # Fleet fault audit: a stalled worker ran out of its deadline in the flip pass, skipped it
    # as optional and stored an `ok` ticket of 20 trades ($0 harvested) where a full solve made
    # 66 ($2,121.77): the ticket depended on how fast the host was.
    import inspect
    import time

    from shared.optimizer import problem

    request = _request(1)
    flips: list[int] = []

    def in_flip_pass() -> bool:
        return any(f.function == "_flip_search" for f in inspect.stack()[2:12])

    def failing_flips(data: ProblemData) -> Solution:
        if in_flip_pass():
            flips.append(1)
            raise SolverFailed("a flip's solve failed")
        return solve(data)

    out = rebalance(request, solve=failing_flips)  # no deadline: an optional pass is skipped
    assert flips and out.status in ("ok", "relaxed")
    token = problem._DEADLINE.set(None)
    try:

        def out_of_time(data: ProblemData) -> Solution:
            if in_flip_pass():
                problem._DEADLINE.set(time.monotonic() - 1.0)  # spent from here on
                raise SolverFailed("the solve's time ran out")
            return solve(data)

        with pytest.raises(SolverFailed, match="time ran out"):
            rebalance(request, solve=out_of_time)
    finally:
        problem._DEADLINE.reset(token)


def _with_and_without(
    monkeypatch: pytest.MonkeyPatch, request: RebalanceRequest, name: str, off: object
) -> tuple[Solved, float, float]:
    """The outcome and the solved (continuous, before rounding) objective of ``request``, then
    the objective again with ``shared.rebalance.<name>`` replaced by ``off`` (a pass switched
    off)."""
    import shared.rebalance as rb

    chain = rb._solve_chain
    seen: list[float] = []

    def spy(*args: object, **kwargs: object) -> object:
        out = chain(*args, **kwargs)  # type: ignore[arg-type]
        if out[0] is not None:
            seen.append(out[0].objective)
        return out

    monkeypatch.setattr(rb, "_solve_chain", spy)
    out = rebalance(request)
    with_pass = seen[-1]
    monkeypatch.setattr(rb, name, off)
    rebalance(request)
    return out, with_pass, seen[-1]


def _skip(level: object, sol: Solution, data: ProblemData) -> tuple[Solution, ProblemData]:
    return sol, data


def _no_revisit(
    level: object, sol: Solution, data: ProblemData, after: float
) -> tuple[Solution, ProblemData]:
    return sol, data


@pytest.mark.parametrize(
    ("search", "book", "gain"),
    [
        # Reference-solve audit: a 30-name 130/30 book (seed 1) kept the guard's directions;
        # selling BZQ's long lots and shorting it was 3.2e-3 of NAV better.  (The guard now
        # tries a caller's flips on that book itself; seed 4 still needs the search: 3.1e-3.)
        ("_direction_search", ("long-short", 30, 4), 1e-3),
        # Refsolve audit (market-neutral): sleeves got no direction trials; a 12-name sleeve
        # (seed 7) kept a held name on the guard's first direction, 4.1e-3 of NAV worse.
        ("_direction_search", ("market-neutral", 12, 7), 2e-3),
        # Refls audit (2026-12-07, exact MIQP reference): this 50-name 130/30 book sold every
        # lot of a 2% long with 14–22% gains and shorted it, and never retried a side flip (EBG
        # to harvest) that the direction trials had made worth 1.07e-3 of NAV: 3.3e-3 short of
        # the optimum, which undoing the flip and revisiting the side flips reach.
        ("_revisit_flips", ("long-short", 50, 0), 2e-3),
        # The same audit: this 80-name sleeve covered a short with 51–87% gains whole and went
        # long (2.0e-3 of NAV short of the optimum; 4.5e-4 with the revisit).
        ("_revisit_flips", ("market-neutral", 80, 0), 1e-3),
    ],
)
def test_the_direction_trials_and_the_revisit_lower_the_objective_of_books_with_directions(
    search: str, book: tuple[str, int, int], gain: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    strategy, names, seed = book
    request = example_request(names=names, seed=seed, strategy=strategy)  # type: ignore[arg-type]
    off = _skip if search == "_direction_search" else _no_revisit
    out, searched, without = _with_and_without(monkeypatch, request, search, off)
    marker = "/direction " if search == "_direction_search" else "/undo "
    assert any(marker in a for a in out.solver.attempts)
    assert searched < without - gain, (searched, without)
    assert not out.wash_sale_issues


@pytest.mark.parametrize(
    ("book", "off", "what", "gain"),
    [
        # Refmid audit (2026-12-07, exact MIQP reference): sleeves 5e-3–1.2e-2 of NAV short of
        # the optimum.  A 50-name sleeve's best flip was a position against its alpha, never
        # among the trials ranked by realized loss (2.1e-3 of NAV) ...
        ((50, 5), "MAX_ALPHA_DIRECTIONS", "/direction ", 1.5e-3),
        # ... an 80-name sleeve harvested small losses of names its alpha wanted at their cap,
        # and could then not add to them (5.8e-3).
        ((80, 2), "MAX_ALPHA_FLIPS", "to buy", 4e-3),
        # Refls audit (2026-12-07): a 50-name sleeve held XPK long at 7.2% against its 5% cap;
        # the pre-pass kept it on the harvest side (no new shorts) for the cap alone, and
        # shorting it was worth a third of the 6.9e-3 of NAV gap to the exact optimum.
        ((50, 0), "MAX_OVER_CAP_TRIALS", "/direction XPK to short", 1.5e-3),
    ],
)
def test_a_sleeve_tries_the_directions_and_sides_its_alpha_ranks_first(
    book: tuple[int, int], off: str, what: str, gain: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    names, seed = book
    request = example_request(names=names, seed=seed, strategy="market-neutral")
    out, searched, without = _with_and_without(monkeypatch, request, off, 0)
    assert searched < without - gain, (searched, without)
    assert any(what in a for a in out.solver.attempts)
    assert out.status == "ok"
    assert not out.wash_sale_issues
    assert not out.limit_breaches


@pytest.mark.parametrize(
    ("names", "seed", "level"),
    [
        (10, 1, ["te_budget×1.5", "te_budget×2"]),
        (10, 3, ["te_budget×1.5"]),
        (16, 5, ["te_budget×1.5"]),
    ],
)
def test_a_long_short_book_tries_other_directions_before_relaxing_its_te_budget(
    names: int, seed: int, level: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refsolve audit: on these 130/30 books the unguarded solve's flips (which also flipped
    # both held shorts long) were infeasible, or it picked none, and the chain relaxed to no TE
    # budget (10/1: 14.5% TE; 10/3 and 16/5: twice the budget) though one more held name going
    # short met the tighter cap (an independent exact search proved the levels before
    # infeasible).
    import shared.rebalance as rb

    refine = rb._refine_sides
    starts: list[bool] = []

    def spy(level: object, sol: Solution, data: ProblemData, sides: object) -> object:
        starts.append(sol.searched_flips)
        return refine(level, sol, data, sides)  # type: ignore[arg-type]

    monkeypatch.setattr(rb, "_refine_sides", spy)
    request = example_request(names=names, seed=seed, strategy="long-short")
    out = rebalance(request)
    assert out.relaxations == level, out.solver.attempts
    # A start the guard reached through searched flips is marked (and refined beside the
    # side search's start, the better end kept).
    assert any(starts)
    factor = float(level[-1].removeprefix("te_budget×"))
    assert out.te_ex_ante <= request.account.te_budget * factor + 1e-4
    assert any("other flip sets" in a for a in out.solver.attempts)
    # The flip is whole (IRC §1259): a name held long and shorted today sells every long lot.
    mine = [lot for lot in request.ledger.lots if lot.account == out.account_id]
    held_long = {lot.symbol for lot in mine if not lot.short}
    flipped = {t.symbol for t in out.trades if t.side == "short"} & held_long
    assert flipped, "a held long name went short"
    for sym in flipped:
        held = sum(float(lot.quantity) for lot in mine if lot.symbol == sym and not lot.short)
        sold = sum(float(t.quantity) for t in out.trades if t.symbol == sym and t.side == "sell")
        assert sold == pytest.approx(held), sym


def test_other_directions_for_names_held_neither_way_lower_a_long_short_books_objective(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Refsolve audit: a 10-name 130/30 book (seed 6) kept MMS short-only, the direction the
    # guard's benchmark-median rule gave a name it held neither way; long-only was 8.8e-3 of
    # NAV better.
    request = example_request(names=10, seed=6, strategy="long-short")
    out, searched, without = _with_and_without(
        monkeypatch, request, "_unheld_direction_search", _skip
    )
    assert any("/unheld MMS long-only" in a for a in out.solver.attempts)
    assert not any(t.symbol == "MMS" and t.side == "short" for t in out.trades)
    assert searched < without - 5e-3, (searched, without)


def test_a_side_swap_where_each_single_flip_is_worse_lowers_a_small_books_objective(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Refsolve audit: a 16-name direct-index book (seed 4) was 3.1e-4 of NAV from an exact
    # search over sides, which harvested BQZ and bought ILD at once; each flip alone is worse.
    request = example_request(names=16, seed=4, strategy="direct-index")
    out, swapped, without = _with_and_without(monkeypatch, request, "MAX_PAIR_TRIALS", 0)
    assert any("/swap BQZ to harvest, ILD to buy" in a for a in out.solver.attempts)
    assert swapped < without - 2e-4, (swapped, without)


def test_the_guards_other_flip_sets_are_skipped_on_books_above_their_size_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Review: each set is one more solve; a 2000-name book with a tight TE budget spent its
    # whole deadline on them.  Above the limit the level is infeasible as before.
    from shared.optimizer import problem

    calls: list[int] = []
    other = problem._other_flips

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return other(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(problem, "_other_flips", counting)
    request = example_request(names=10, seed=1, strategy="long-short")
    assert rebalance(request).relaxations == ["te_budget×1.5", "te_budget×2"] and calls
    calls.clear()
    monkeypatch.setattr(problem, "OTHER_FLIPS_MAX_NAMES", 9)
    out = rebalance(request)
    assert not calls
    assert out.relaxations == ["te_budget×1.5", "te_budget×2", "no_te_budget"]


def test_a_fractional_sleeve_never_buys_and_shorts_one_name_in_a_ticket() -> None:
    # Refsolve audit (market-neutral): a 16-name fractional sleeve bought and shorted 0.0001
    # FMJ, a name it did not hold — a box, a constructive sale (IRC §1259(c)(1)(A)) — status ok.
    request = example_request(names=16, seed=2, strategy="market-neutral")
    request = msgspec.structs.replace(
        request, account=msgspec.structs.replace(request.account, fractional_shares=True)
    )
    out = rebalance(request)
    bought = {t.symbol for t in out.trades if t.side == "buy"}
    shorted = {t.symbol for t in out.trades if t.side == "short"}
    assert not bought & shorted
    assert out.trades


def test_the_guards_optional_solves_fail_the_account_once_its_deadline_is_spent() -> None:
    # Review: the guard's release and hint solves swallowed a solver failure even with the
    # solve's deadline spent, so the ticket depended on how fast the host was.
    import time

    import shared.rebalance as rb
    from shared.optimizer import problem

    request = example_request(names=20, seed=1)
    req = rb._market_spelling(request)
    market, scan = rb._validate(req)
    data = rb._context(req, market, scan).base
    cur = solve(data)
    flips = (np.zeros(data.n, dtype=np.bool_), np.zeros(data.n, dtype=np.bool_))
    flips[0][0] = True  # a name "flipped short" the solution opened nothing in: released

    def failing(_: ProblemData, __: bool) -> Solution:
        raise SolverFailed("the solve's time ran out")

    assert problem._release_unused(data, failing, flips, cur, []) == []  # time left: skipped
    token = problem._DEADLINE.set(time.monotonic() - 1.0)
    try:
        with pytest.raises(SolverFailed, match="time ran out"):
            problem._release_unused(data, failing, flips, cur, [])
    finally:
        problem._DEADLINE.reset(token)


@pytest.mark.parametrize(
    ("names", "seed", "strategy", "changes"),
    [
        # Fuzz audit (2026-12-07, eighth session): held on gain / (1 − c), the −$10,000 budget
        # at 50 bps booked −$9,949.85 and the sleeve's −$5,000 at 20 bps −$4,706.37, both `ok`.
        (30, 21, "direct-index", {"commission_bps": 50.0, "max_weight": 0.22, "lambda_tax": 0.0}),
        (40, 1, "market-neutral", {"commission_bps": 20.0, "te_budget": 0.06, "lambda_tax": 0.0}),
        (40, 1, "market-neutral", {"te_budget": 0.06, "lambda_tax": 0.0}),
    ],
)
def test_a_harvest_budget_holds_on_the_gain_the_ledger_books_to_the_cent(
    names: int, seed: int, strategy: str, changes: dict[str, object]
) -> None:
    budget = Decimal(-10000) if strategy == "direct-index" else Decimal(-5000)
    request = example_request(names=names, seed=seed, strategy=strategy)  # type: ignore[arg-type]
    out = rebalance(
        _with_account(
            request, gain_budget_usd=budget, fractional_shares=True, exclusions=[], **changes
        )
    )
    assert out.status in {"ok", "relaxed"} and "gain_budget" not in out.relaxations
    booked = sum((s.gain_usd for s in out.realized), Decimal(0))
    assert booked <= budget
    assert booked == out.realized_st_usd + out.realized_lt_usd
    assert not out.limit_breaches


def test_a_zero_gain_budget_on_a_book_with_no_loss_to_harvest_is_met_without_relaxing_it() -> None:
    # The cent margin of the gain budget is per lot the rounded ticket sells: held on every lot
    # of the book, a $0 budget asked for a loss the book did not have and was dropped.
    request = _request(3)
    aid = request.account.account_id
    price = dict(zip(request.market.symbols, request.market.prices, strict=True))
    lots = [
        msgspec.structs.replace(
            x,
            cost_basis_usd=(x.quantity * Decimal(repr(price[x.symbol])) / 2).quantize(
                Decimal("0.01")
            ),
        )
        if x.account == aid
        else x
        for x in request.ledger.lots
    ]
    request = msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots, pending_losses=[])
    )
    out = rebalance(_with_account(request, gain_budget_usd=Decimal(0), exclusions=[]))
    assert "gain_budget" not in out.relaxations and not out.limit_breaches
    assert out.realized_st_usd + out.realized_lt_usd <= 0
