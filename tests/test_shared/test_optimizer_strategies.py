"""The direct Clarabel path against the CVXPY reference, and each strategy's defining property.

Problems come from :func:`shared.optimizer.synthetic.random_problem` (seeded); every solution is
checked with the naive, model-independent checker in ``_optimizer_checks.py`` (the TE with the
full n×n covariance).
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shared.errors import Infeasible
from shared.optimizer.check import check_solution, constructive_sales
from shared.optimizer.problem import SolveSettings, solve, solve_cvxpy
from shared.optimizer.synthetic import random_problem

_spec = importlib.util.spec_from_file_location(
    "_optimizer_checks", Path(__file__).with_name("_optimizer_checks.py")
)
assert _spec is not None and _spec.loader is not None
_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_checks)
assert_every_constraint_holds = _checks.assert_every_constraint_holds
full_te = _checks.full_te

STRATEGIES = ("direct-index", "long-short", "market-neutral")


def _agree(data, *, obj_rel=1e-6, w_abs=1e-5):
    """The direct path agrees with the CVXPY reference, both as it runs (first without the TE
    cone when the cap is predicted slack) and with the cone on every attempt."""
    sol = solve(data)
    capped = solve(data, settings=SolveSettings(uncapped_first=False))
    ref = solve_cvxpy(data)
    assert sol.solver in {"clarabel", "clarabel-uncapped"}
    assert capped.solver == "clarabel"
    assert ref.solver == "cvxpy-clarabel"
    scale = max(abs(ref.objective), 1e-4)
    for got in (sol, capped):
        assert abs(got.objective - ref.objective) <= obj_rel * scale, (got.objective, ref.objective)
        assert np.max(np.abs(got.w - ref.w)) <= w_abs
    return sol, ref


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_direct_path_matches_the_cvxpy_reference_on_small_accounts(strategy, seed):
    data = random_problem(20, k=5, strategy=strategy, seed=seed)
    sol, ref = _agree(data)
    assert_every_constraint_holds(data, sol)
    assert_every_constraint_holds(data, ref)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_direct_path_matches_the_cvxpy_reference_on_mid_size_accounts(strategy):
    data = random_problem(200, k=12, strategy=strategy, seed=7)
    sol, _ = _agree(data)
    assert_every_constraint_holds(data, sol)


@pytest.mark.parametrize("seed", [3, 4])
def test_the_paths_agree_with_tilts_turnover_and_a_gain_budget_all_active(seed):
    base = random_problem(40, k=6, seed=seed, te_max=0.03)
    data = replace(base, tilts=((1, 0.15), (3, 0.10)), turnover_max_w=0.30, gain_budget_w=-0.002)
    sol, _ = _agree(data)
    assert_every_constraint_holds(data, sol)
    active = data.loadings.T @ (sol.w - data.w_bench)
    assert active[1] >= 0.15 - 1e-6 and active[3] >= 0.10 - 1e-6
    # The budgets are meant to bind here: a net loss of 0.2% of NAV must be realized.
    assert float(data.lot_gain @ sol.sell) <= -0.002 + 1e-6


def test_the_paths_agree_when_the_direct_problem_substitutes_the_weights():
    data = random_problem(60, k=6, strategy="long-short", seed=5)
    sol = solve(data, settings=SolveSettings(w_variables=False))
    ref = solve_cvxpy(data)
    assert np.max(np.abs(sol.w - ref.w)) <= 1e-5


@pytest.mark.parametrize("seed", [0, 1])
def test_direct_indexing_is_long_only_and_fully_invested_within_the_cash_band(seed):
    data = random_problem(100, k=8, seed=seed)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert np.all(sol.w >= -1e-8)
    assert np.all(sol.short == 0) and len(sol.cover) == 0
    assert data.cash_min_w - 1e-8 <= 1.0 - sol.w.sum() <= data.cash_max_w + 1e-8
    assert sol.te <= 0.02 + 1e-8
    assert sol.te == pytest.approx(full_te(data, sol.w), abs=1e-9)


def test_excluded_names_are_sold_out_in_direct_indexing():
    data = random_problem(100, k=8, seed=11)
    excluded = np.flatnonzero(data.max_w == 0)
    assert len(excluded) and np.any(data.w0[excluded] > 0)
    sol = solve(data)
    assert np.all(np.abs(sol.w[excluded]) <= 1e-7)


def test_a_130_30_book_keeps_its_long_short_and_gross_limits_and_net_exposure():
    data = random_problem(120, k=8, strategy="long-short", seed=2)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    longs = np.clip(sol.w, 0, None).sum()
    shorts = np.clip(-sol.w, 0, None).sum()
    assert longs <= 1.3 + 1e-6
    assert shorts <= 0.3 + 1e-6
    assert longs + shorts <= 1.6 + 1e-6
    assert longs - shorts == pytest.approx(1.0 - sol.cash_w, abs=1e-7)
    assert np.any(sol.w < -1e-4), "the book should keep some shorts"


def test_a_130_30_book_with_shape_floors_holds_130_long_30_short_and_net_100_within_the_band():
    data = replace(
        random_problem(120, k=8, strategy="long-short", seed=2),
        long_min_w=1.29,
        short_min_w=0.29,
        cash_min_w=0.0,
        cash_max_w=0.01,
    )
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    longs = np.clip(sol.w, 0, None).sum()
    shorts = np.clip(-sol.w, 0, None).sum()
    assert 1.29 - 1e-6 <= longs <= 1.3 + 1e-6
    assert 0.29 - 1e-6 <= shorts <= 0.3 + 1e-6
    assert 0.99 - 1e-6 <= sol.w.sum() <= 1.0 + 1e-6
    # The shape is held by real shorts, never by buying and shorting one name (a box).
    assert constructive_sales(data, sol) == []
    assert not np.any((sol.buy > 1e-7) & (sol.short > 1e-7))
    ref = solve_cvxpy(data)
    assert abs(sol.objective - ref.objective) <= 1e-6


def test_without_a_side_for_unheld_names_a_shape_floor_would_be_met_by_boxes():
    from shared.optimizer.problem import unheld_sides

    base = random_problem(120, k=8, strategy="long-short", seed=2)
    # Ten names held neither long nor short (their lots removed).
    keep = base.lot_name >= 10
    keep_s = base.short_name >= 10
    data = replace(
        base,
        lot_name=base.lot_name[keep],
        lot_w=base.lot_w[keep],
        lot_tax=base.lot_tax[keep],
        lot_gain=base.lot_gain[keep],
        lot_sellable=base.lot_sellable[keep],
        short_name=base.short_name[keep_s],
        short_w=base.short_w[keep_s],
        short_tax=base.short_tax[keep_s],
        short_gain=base.short_gain[keep_s],
        short_coverable=base.short_coverable[keep_s],
        w0=np.where(np.arange(base.n) < 10, 0.0, base.w0),
        cash_max_w=0.2,
        long_min_w=1.29,
        short_min_w=0.29,
    )
    long0 = np.bincount(data.lot_name, weights=data.lot_w, minlength=data.n)
    short0 = np.bincount(data.short_name, weights=data.short_w, minlength=data.n)
    side_short, side_long = unheld_sides(data, long0, short0)
    unheld = (long0 == 0) & (short0 == 0) & data.buy_allowed & data.short_allowed
    assert unheld.any()
    assert np.array_equal(side_short | side_long, unheld) and not np.any(side_short & side_long)
    free = solve(data, settings=SolveSettings(constructive_sale_guard=False))
    assert constructive_sales(data, free), "the unguarded floors should want some boxes"
    assert constructive_sales(data, solve(data)) == []


def test_shorts_reach_a_tilt_that_a_long_only_book_cannot():
    # A momentum tilt far beyond what reweighting longs under the caps can deliver.
    base = random_problem(60, k=6, strategy="long-short", seed=8, te_max=None)
    tilt = ((3, 1.4),)
    long_only = replace(
        base,
        tilts=tilt,
        min_w=np.zeros(base.n),
        short_allowed=np.zeros(base.n, dtype=bool),
        short_name=np.zeros(0, dtype=np.int64),
        short_w=np.zeros(0),
        short_tax=np.zeros(0),
        short_gain=np.zeros(0),
        short_coverable=np.zeros(0, dtype=bool),
        w0=np.bincount(base.lot_name, weights=base.lot_w, minlength=base.n),
        net_w=float(base.lot_w.sum()) + 0.01,
        long_max_w=None,
        short_max_w=None,
        gross_max_w=None,
    )
    with pytest.raises(Infeasible):
        solve(long_only, settings=SolveSettings(diagnose_infeasible=False))
    data = replace(base, tilts=tilt, min_w=np.where(base.min_w < 0, -0.05, 0.0))
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert (data.loadings[:, 3] @ (sol.w - data.w_bench)) >= 1.4 - 1e-6
    assert sol.short.sum() > 1e-3


def test_covering_a_short_lot_at_a_loss_is_a_harvest():
    # One short lot whose price rose 40% since the short sale: covering realizes a short-term
    # loss (IRC §1233(b)), worth 0.408·0.4 per unit covered, so it is covered even though the
    # short was on target; the name may be shorted again (not substantially identical here).
    base = random_problem(30, k=4, strategy="long-short", seed=3)
    j = 0
    tax = base.short_tax.copy()
    gain = base.short_gain.copy()
    tax[:] = 0.0
    gain[:] = 0.0
    tax[j], gain[j] = -0.408 * 0.4, -0.4
    data = replace(base, short_tax=tax, short_gain=gain)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.cover[j] == pytest.approx(data.short_w[j], abs=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_market_neutral_sleeve_is_dollar_and_factor_neutral_within_its_gross_limit(seed):
    data = random_problem(80, k=8, strategy="market-neutral", seed=seed)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert abs(sol.w.sum()) <= 1e-7
    assert np.max(np.abs(data.loadings.T @ sol.w)) <= 1e-6
    assert np.abs(sol.w).sum() <= 2.0 + 1e-6
    assert float(data.alpha @ sol.w) > 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_a_neutral_band_is_a_bound_not_a_target_and_both_paths_agree(seed):
    # The relaxation chain's `neutral_band` steps: |Bᵀw| ≤ band instead of Bᵀw = 0, with the
    # exposures' squares charged (NEUTRAL_PENALTY), so a sleeve that can be near neutral stays
    # there (diff review: without the charge the optimizer filled the band for tax and alpha).
    data = replace(random_problem(30, k=6, strategy="market-neutral", seed=seed), neutral_band=0.05)
    sol, _ = _agree(data)
    assert_every_constraint_holds(data, sol)
    expo = data.loadings.T @ sol.w
    assert np.max(np.abs(expo)) <= 0.005
    free = solve(replace(data, factor_neutral=False))
    assert np.max(np.abs(data.loadings.T @ free.w)) > 0.05  # what the sleeve would take


def test_the_market_neutral_sleeve_follows_its_alpha():
    # Doubling the alpha signal (same risk and costs) can only raise the expected alpha.
    data = random_problem(80, k=8, strategy="market-neutral", seed=4)
    low = solve(data)
    high = solve(replace(data, alpha=2.0 * data.alpha))
    assert float(data.alpha @ high.w) >= float(data.alpha @ low.w) - 1e-9


def test_a_tilt_floor_is_met_exactly_when_it_binds():
    base = random_problem(80, k=8, seed=6, te_max=0.05)
    free = solve(base)
    target = float(free.active_exposure[2]) + 0.1
    data = replace(base, tilts=((2, target),))
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.active_exposure[2] == pytest.approx(target, abs=1e-6)


def test_the_built_in_check_agrees_with_the_naive_checker_on_a_violation():
    data = random_problem(30, k=4, seed=1)
    sol = solve(data)
    assert check_solution(data, sol) == []
    broken = replace(sol, buy=sol.buy + 0.01, w=sol.w + 0.01, cash_w=sol.cash_w - 0.3)
    problems = check_solution(data, broken)
    assert any("cash" in p for p in problems)
    with pytest.raises(AssertionError):
        assert_every_constraint_holds(data, broken)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 100_000),
    strategy=st.sampled_from(STRATEGIES),
    n=st.integers(8, 40),
    te_max=st.sampled_from([None, 0.02, 0.05]),
    tilt=st.sampled_from([None, 0.1, 0.5]),
)
@example(seed=65536, strategy="market-neutral", n=22, te_max=None, tilt=None)
def test_both_paths_agree_on_feasibility_and_on_the_optimum(seed, strategy, n, te_max, tilt):
    data = random_problem(n, k=4, strategy=strategy, seed=seed, te_max=te_max)
    if tilt is not None:
        data = replace(data, tilts=((1, tilt),))
    try:
        sol = solve(data, settings=SolveSettings(diagnose_infeasible=False))
    except Infeasible:
        with pytest.raises(Infeasible):
            solve_cvxpy(data)
        return
    ref = solve_cvxpy(data)
    # Relative 1e-6, with an absolute floor of 1e-9 (the solvers' gap tolerance) for optima
    # near zero.
    tol = max(1e-6 * abs(ref.objective), 1e-9)
    assert_every_constraint_holds(data, sol)
    if any(a.startswith("guard") and "flip" in a for a in sol.attempts):
        # The constructive-sale guard (IRC §1259) flipped names, fixing directions the
        # reference does not have (seed 65536, a 22-name sleeve: −0.001347 against
        # −0.001551): a restriction can only cost.
        assert sol.objective >= ref.objective - tol
        return
    assert abs(sol.objective - ref.objective) <= tol
    assert np.max(np.abs(sol.w - ref.w)) <= 1e-5


def test_the_direct_problem_grows_with_names_times_factors_never_names_squared():
    from shared.optimizer.constraints import model_constraints
    from shared.optimizer.model import Layout
    from shared.optimizer.problem import assemble
    from shared.optimizer.terms import objective_terms

    sizes = {}
    for n in (400, 1600):
        data = random_problem(n, k=10, seed=0)
        prob = assemble(
            data, Layout.from_data(data), objective_terms(data), model_constraints(data)
        )
        lots = len(data.lot_name)
        sizes[n] = prob.A.nnz + prob.P.nnz
        assert sizes[n] <= 4 * (n * 10 + lots + n) + 200
        assert prob.P.nnz <= n + 10 * 10 + 10  # diag(d) on w and F on y, nothing n×n
    assert sizes[1600] / sizes[400] < 4.5  # linear, not quadratic, growth


@pytest.mark.parametrize("strategy", ["long-short", "market-neutral"])
@pytest.mark.parametrize("seed", [0, 1])
def test_no_trade_leaves_a_name_held_both_long_and_short(strategy, seed):
    # A short against the box (or a buy against an open short) is a constructive sale, IRC
    # §1259: the unguarded model does it to dodge the tax on appreciated lots; the guard never.
    data = random_problem(150, k=8, strategy=strategy, seed=seed)
    free = solve(data, settings=SolveSettings(constructive_sale_guard=False))
    assert constructive_sales(data, free), "the unguarded model should want some boxes here"
    sol = solve(data)
    assert constructive_sales(data, sol) == []
    assert_every_constraint_holds(data, sol)
    assert any(a.startswith("guard (IRC §1259)") for a in sol.attempts)


def test_a_name_held_long_flips_to_short_only_by_selling_every_lot_first():
    # A momentum tilt only a short of A (loading −2, held long at a gain) can reach: the
    # unguarded model shorts A while keeping its appreciated lot; the guard sells the lot.
    base = _checks.three_names()
    data = replace(
        base,
        loadings=np.array([[1.0, -2.0], [1.0, 1.0], [1.0, 1.0]]),
        factor_cov=np.diag([0.04, 0.01]),
        factor_names=("market", "momentum"),
        lot_tax=np.array([0.238 * 0.4, 0.0, 0.0]),
        lot_gain=np.array([0.4, 0.0, 0.0]),
        buy_allowed=np.ones(3, dtype=bool),
        short_allowed=np.array([True, False, False]),
        min_w=np.array([-0.2, 0.0, 0.0]),
        tilts=((1, 1.2),),
        long_max_w=1.3,
        short_max_w=0.3,
        gross_max_w=1.6,
    )
    free = solve(data, settings=SolveSettings(constructive_sale_guard=False))
    assert constructive_sales(data, free)
    sol = solve(data)
    ref = solve_cvxpy(data)
    assert constructive_sales(data, sol) == []
    assert_every_constraint_holds(data, sol)
    assert sol.sell[0] == pytest.approx(0.33, abs=1e-6)
    assert sol.short[0] > 0.06
    assert sol.buy[0] <= 1e-8
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)
    assert sol.objective >= free.objective - 1e-9  # the legal book costs the tax it owes


def test_a_sleeve_off_neutral_is_reported_by_its_worst_factor_and_the_count():
    data = random_problem(40, k=6, strategy="market-neutral", seed=3)
    sol = solve(data)
    assert check_solution(data, sol) == []
    # Move the weights along one name: every factor it loads on leaves zero.
    bump = np.zeros(data.n)
    bump[0] = 0.02
    broken = replace(sol, buy=sol.buy + bump, w=sol.w + bump, cash_w=sol.cash_w - 0.02)
    expo = broken.w @ data.loadings
    off = np.flatnonzero(np.abs(expo) > 1e-6)
    assert len(off) > 1
    worst = data.factor_names[int(off[np.argmax(np.abs(expo[off]))])]
    line = next(p for p in check_solution(data, broken) if p.startswith("not factor neutral"))
    assert line.startswith(f"not factor neutral: {worst} exposure")
    assert f"({len(off)} factors beyond" in line


def test_a_sleeve_off_its_net_zero_is_reported_as_net_exposure_not_cash() -> None:
    from shared.optimizer.problem import solve
    from shared.optimizer.synthetic import random_problem

    data = random_problem(12, k=0, strategy="market-neutral", seed=3, te_max=0.05)
    assert data.net_w == 0.0 and data.cash_min_w == data.cash_max_w == 0.0
    sol = solve(data)
    bump = np.zeros(data.n)
    bump[int(np.argmax(data.buy_allowed))] = 0.01
    off = replace(sol, buy=sol.buy + bump, w=sol.w + bump, cash_w=sol.cash_w - 0.01)
    found = check_solution(data, off)
    assert "net Σw 0.010000 != 0 (dollar neutrality)" in found, found
    assert not any(f.startswith("cash ") for f in found)
