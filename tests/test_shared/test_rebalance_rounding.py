"""After the solve: the side refinement (audit F1) and the share-rounding repair that keeps the
hard limits on the rounded ticket (audit F2, F3), on the 12-name warm-up request (fast)."""

from __future__ import annotations

import dataclasses
import gzip
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pytest

import shared.rebalance as rb
from shared.examples import warmup_request
from shared.messages import RebalanceRequest, decode_json
from shared.optimizer.data import ProblemData, Solution
from shared.optimizer.problem import solve
from shared.rebalance import rebalance


def _context() -> rb._Context:
    request = warmup_request()
    market, scan = rb._validate(request)
    return rb._context(request, market, scan)


def _no_orders() -> rb._Orders:
    """A fresh empty ticket (its own lists: the repair may grow them)."""
    return dataclasses.replace(rb._NO_ORDERS, sell_qty=[], cover_qty=[], buy_qty=[], short_qty=[])


def test_unharvested_harvest_side_names_are_reopened_and_the_objective_never_worsens() -> None:
    calls: list[tuple[ProblemData, Solution]] = []

    def recording(data: ProblemData) -> Solution:
        sol = solve(data)
        calls.append((data, sol))
        return sol

    out = rebalance(warmup_request(), solve=recording)
    assert any("reopened" in a for a in out.solver.attempts)
    (d1, first), (d2, second) = calls[0], calls[1]
    # The refinement only adds buys (never forbids one) ...
    assert not (d1.buy_allowed & ~d2.buy_allowed).any()
    assert (d2.buy_allowed & ~d1.buy_allowed).any()
    # ... and the first solution is feasible for it: no lot it sold became unsellable.
    assert not (first.sell[~d2.lot_sellable] > 1e-9).any()
    assert second.objective <= first.objective + 1e-9
    # No name is both bought and sold at a loss (IRC §1091): the reopened names' loss lots
    # stay unsellable.
    reopened = d2.buy_allowed & ~d1.buy_allowed
    loss_lot = d2.lot_tax < 0
    assert not (d2.lot_sellable & loss_lot & reopened[d2.lot_name]).any()


def test_a_reopened_name_whose_marginal_te_is_positive_is_still_re_solved_and_can_help() -> None:
    # Audit against an independent formulation (30-name example, seed 0): the only reopened
    # name has a positive marginal TE, but the TE budget binds, so buying it while selling a
    # name of higher marginal TE helps.  A first-order shortcut used to skip this re-solve.
    from shared.examples import example_request

    request = example_request(names=30, seed=0)
    market, scan = rb._validate(request)
    ctx = rb._context(request, market, scan)
    none = np.zeros(ctx.base.n, dtype=np.bool_)
    harvest = rb.harvest_sides(ctx, none)
    data = rb._with_sides(ctx, harvest, none)
    sol = solve(data)
    keep = rb._loss_sold_names(ctx, sol) | ~ctx.base.buy_allowed
    keep |= ctx.w0 > ctx.base.max_w + rb.WEIGHT_EPS
    reopened = harvest & ~(rb._spread_to_groups(keep, ctx.group) & harvest)
    active = sol.w - data.w_bench
    marginal = data.loadings @ (data.factor_cov @ (data.loadings.T @ active))
    marginal += data.specific_var * active
    assert reopened.any() and (marginal[reopened] > 0).all()
    assert data.te_max is not None and sol.te > data.te_max - 1e-6  # the budget binds
    level = rb._Level(
        ctx=ctx, locked=none, transform=lambda d: d, solve=solve, log=rb._SolveLog(), label="x"
    )
    kept, _ = rb._refine_sides(level, sol, data, harvest)
    assert kept.objective < sol.objective - 4e-5  # 5.3e-5 of NAV better


def test_cash_left_above_its_maximum_by_rounding_is_spent_on_names_the_account_may_buy() -> None:
    request = warmup_request()

    def short_buys(data: ProblemData) -> Solution:
        # An optimizer whose buys fall short by 0.3% of NAV (a few shares of each name, as
        # rounding many buys down does): cash ends above max_cash_w.
        sol = solve(data)
        cut = data.cash_max_w - sol.cash_w + 0.003
        buy = sol.buy * (1 - cut / float(sol.buy.sum()))
        return dataclasses.replace(sol, buy=buy, w=sol.w - sol.buy + buy, cash_w=sol.cash_w + cut)

    out = rebalance(request, solve=short_buys)
    assert out.limit_breaches == []
    assert request.account.min_cash_w <= out.cash_w <= request.account.max_cash_w
    assert out.te_ex_ante <= request.account.te_budget
    assert any(t.side == "buy" for t in out.trades)
    sold_at_loss = {t.symbol for t in out.trades if t.reason == "harvest"}
    assert not sold_at_loss & {t.symbol for t in out.trades if t.side == "buy"}


def test_the_cash_top_up_never_buys_back_a_name_the_ticket_sells() -> None:
    # A 50-name long/short example request sold 173 shares of a lot at a gain and bought 1
    # back: the solver's buy of that name was noise (~1e-8 of NAV), "short" of its wanted
    # shares like any rounded-down buy, and the top-up gave it one.
    request = warmup_request()
    ctx = _context()
    noisy: list[int] = []

    def noise_on_sold_names(data: ProblemData) -> Solution:
        sol = solve(data)
        sold = np.unique(data.lot_name[sol.sell > 1e-6])
        noisy[:] = sold.tolist()
        # Cash above what the buys spend, so the top-up has a surplus to place ...
        cut = data.cash_max_w - sol.cash_w + 0.003
        buy = sol.buy * (1 - cut / float(sol.buy.sum()))
        # ... and each sold name "bought" 0.9 of a share: the most rounded-down name of all.
        buy[sold] = 0.9 * ctx.market.prices[sold] / ctx.nav
        return dataclasses.replace(sol, buy=buy, w=sol.w - sol.buy + buy, cash_w=sol.cash_w + cut)

    out = rebalance(request, solve=noise_on_sold_names)
    assert noisy, "the warm-up request's ticket sells something"
    sold = {t.symbol for t in out.trades if t.side == "sell"}
    bought = {t.symbol for t in out.trades if t.side == "buy"}
    assert sold and bought
    assert not sold & bought


def test_a_limit_the_repair_cannot_meet_is_reported_in_limit_breaches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_buys(data: ProblemData) -> Solution:
        sol = solve(data)
        return dataclasses.replace(
            sol,
            buy=np.zeros_like(sol.buy),
            w=sol.w - sol.buy,
            cash_w=sol.cash_w + float(sol.buy.sum()),
        )

    monkeypatch.setattr(rb, "MAX_REPAIR_STEPS", 0)
    out = rebalance(warmup_request(), solve=no_buys)
    assert any(b.startswith("cash_max:") for b in out.limit_breaches), out.limit_breaches


def test_an_unreachable_tracking_error_budget_is_named_not_silently_missed() -> None:
    ctx = _context()
    nothing = np.zeros(ctx.base.n, dtype=np.bool_)
    data = dataclasses.replace(ctx.base, te_max=1e-6, buy_allowed=nothing)
    orders, breaches = rb._enforce_limits(ctx, data, _no_orders())
    assert orders.buy_qty == [] and orders.sell_qty == []
    assert any(b.startswith("te:") and "above the budget" in b for b in breaches), breaches


def test_a_fractional_share_of_noise_at_the_te_budget_and_a_tilt_floor_is_not_a_breach() -> None:
    # The 150-name example (seed 4) in fractional shares: the solve sits on its TE budget and
    # its value tilt floor, and the last 1/10,000 share leaves TE 1e-11 above the one and the
    # exposure 1.7e-8 σ below the other; both were listed as breaches.
    from shared.examples import example_request

    base = example_request(names=150, seed=4)
    account = msgspec.structs.replace(base.account, fractional_shares=True)
    out = rebalance(msgspec.structs.replace(base, account=account))
    assert out.limit_breaches == []
    assert out.te_ex_ante <= out.te_budget + rb.ROUNDED_RISK_TOL
    floors = [f for f in out.factor_exposures if f.target_min is not None]
    assert floors and all(f.active >= f.target_min - rb.ROUNDED_RISK_TOL for f in floors)


def test_a_te_budget_missed_beyond_the_noise_after_rounding_is_still_reported() -> None:
    from shared.optimizer.check import tracking_error

    ctx = _context()
    te0 = tracking_error(ctx.base, ctx.w0)  # no move is allowed: the ticket stays empty
    frozen = {
        "buy_allowed": np.zeros(ctx.base.n, dtype=np.bool_),
        "lot_sellable": np.zeros(len(ctx.base.lot_name), dtype=np.bool_),
    }
    for gap, reported in ((0.5 * rb.ROUNDED_RISK_TOL, False), (20 * rb.ROUNDED_RISK_TOL, True)):
        data = dataclasses.replace(ctx.base, te_max=te0 - gap, **frozen)
        _, breaches = rb._enforce_limits(ctx, data, _no_orders())
        assert any(b.startswith("te:") for b in breaches) is reported, (gap, breaches)


def test_the_repair_lifts_a_tilt_floor_the_rounded_weights_miss_with_whole_shares() -> None:
    ctx = _context()
    base = ctx.base
    w0 = ctx.w0
    factor = base.factor_names.index("value")
    now = float(base.loadings[:, factor] @ (w0 - base.w_bench))
    # A floor just above today's exposure: a few shares of high-value names meet it.
    data = dataclasses.replace(
        base, tilts=((factor, now + 1e-4),), te_max=None, cash_max_w=1.0, turnover_max_w=None
    )
    orders, breaches = rb._enforce_limits(ctx, data, _no_orders())
    assert breaches == []
    w, _cash = rb._final_weights(ctx, orders)
    assert float(base.loadings[:, factor] @ (w - base.w_bench)) >= now + 1e-4
    traded = [*orders.buy_qty, *orders.sell_qty]
    assert traded and all(q == q.to_integral_value() for q in traded)
    # Every sale is allowed by the sides: no loss lot of a name the problem may buy.
    for j in orders.sell_lot.tolist():
        assert data.lot_sellable[j]


def test_an_all_cash_account_with_no_lots_is_invested_and_its_rounded_ticket_repaired() -> None:
    # The backtest's first day: $1M of cash, no lots at all.  The rounding repair must cope
    # with an empty lot table (it once indexed into it unconditionally).
    from decimal import Decimal

    import msgspec

    request = warmup_request()
    others = [lot for lot in request.ledger.lots if lot.account != request.account.account_id]
    request = msgspec.structs.replace(
        request,
        account=msgspec.structs.replace(request.account, cash_usd=Decimal("1000000")),
        ledger=msgspec.structs.replace(
            request.ledger, lots=others, pending_losses=[], recent_purchases=[]
        ),
    )
    outcome = rebalance(request)
    assert outcome.status in ("ok", "relaxed")
    assert outcome.trades and all(t.side == "buy" for t in outcome.trades)
    assert outcome.cash_w <= request.account.max_cash_w + 1e-12
    assert outcome.limit_breaches == []


def test_the_repair_batches_helpful_moves_of_distinct_names_but_not_the_finishing_one() -> None:
    _batch = rb._batch
    g = np.array([1.0, -0.5])  # one breached limit, one with slack
    # Moves (rows): each removes 0.3 of the breach; move 2 is of the same name as move 0;
    # move 3 would use more slack than the other limit has.
    dg = np.array([[-0.3, 0.0], [-0.3, 0.1], [-0.3, 0.0], [-0.3, 0.6], [-0.3, 0.0]])
    name = np.array([7, 8, 7, 9, 10])
    assert _batch(g, dg, [0, 1, 2, 4], name) == (0, 1, 4)  # 0.9 removed, 0.1 left for the greedy
    assert _batch(g, dg, [0, 2, 3], name) == ()  # 0 alone (2 repeats its name, 3 hurts): no batch
    # The finishing move is not batched: two moves of 0.5 clear a breach of 1 exactly.
    assert _batch(g, dg * (0.5 / 0.3), [0, 1, 4], name) == ()


def test_a_repaired_ticket_never_spends_cash_the_account_does_not_have_to_the_cent() -> None:
    # The backtest's request of 2002-09-24 (sp500-sample, 20 names, $8.68 of cash): the repair
    # bought back TE share by share in weights and left the ticket's cash at -$0.01 once each
    # line's notional was rounded to the cent, so the next day's long-only solve refused the
    # account ("cash must be >= 0").  Every line moves cash by its notional (to the cent).
    raw = gzip.decompress(
        (Path(__file__).parent / "data" / "sp500_sample_2002-09-24_request.json.gz").read_bytes()
    )
    request = decode_json(raw, RebalanceRequest)
    out = rebalance(request)
    cash = request.account.cash_usd + sum(
        (t.notional_usd if t.side in ("sell", "short") else -t.notional_usd for t in out.trades),
        Decimal(0),
    )
    assert cash >= 0
    assert all(b.startswith("te:") for b in out.limit_breaches)  # reported, never silent


def test_a_loss_sale_at_solver_noise_does_not_keep_a_name_on_the_harvest_side() -> None:
    # Audit (60-name example, seed 0): a first solve "sold" two names' loss lots at ~1.5e-9 of
    # NAV; counted as harvests they stayed unbuyable, and the book lost 1.9e-4 of NAV.
    ctx = _context()
    none = np.zeros(ctx.base.n, dtype=np.bool_)
    sol = solve(rb._with_sides(ctx, rb.harvest_sides(ctx, none), none))
    loss = np.flatnonzero(rb._tax_loss(ctx, short=False) & (sol.sell == 0))
    lot = int(loss[0])
    name = int(ctx.base.lot_name[lot])

    def selling(amount: float) -> Solution:
        sell = sol.sell.copy()
        sell[ctx.base.lot_name == name] = 0.0
        sell[lot] = amount
        return dataclasses.replace(sol, sell=sell)

    assert not rb._loss_sold_names(ctx, selling(1.7e-9))[name]  # noise: not a harvest
    assert rb._loss_sold_names(ctx, selling(1e-4))[name]


def test_a_sleeves_reopened_re_solve_uses_the_first_solves_flips_when_the_guards_own_fail() -> None:
    # Market-neutral audit (60 names, seed 2): the guard re-decides flips inside each solve; on
    # the reopened sides its own choice was infeasible though the first solution (with its
    # flips) is feasible there, and 5.9e-3 of NAV was left.  The refinement now hands the
    # first solve's flips to the guard as a fallback.
    from shared.examples import example_request

    request = example_request(names=60, seed=2, strategy="market-neutral")
    objectives: list[tuple[float, bool]] = []

    def recording(data: ProblemData) -> Solution:
        sol = solve(data)
        objectives.append((sol.objective, data.flip_hint is not None))
        return sol

    out = rebalance(request, solve=recording)
    first = objectives[0][0]
    reopened = [o for o, hinted in objectives if hinted]
    assert reopened and min(reopened) < first - 1e-3, objectives
    assert out.limit_breaches == []
