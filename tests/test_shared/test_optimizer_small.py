"""Hand-checkable problems: the optimizer harvests, holds and picks lots as a person would."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.optimizer.problem import solve, solve_cvxpy

_spec = importlib.util.spec_from_file_location(
    "_optimizer_checks", Path(__file__).with_name("_optimizer_checks.py")
)
assert _spec is not None and _spec.loader is not None
_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_checks)
assert_every_constraint_holds = _checks.assert_every_constraint_holds
three_names = _checks.three_names


def test_a_deep_loss_is_harvested_and_the_proceeds_go_to_the_other_names():
    data = three_names()
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    # Benefit 0.204 per unit sold dwarfs the TE cost (≈ 0.06 x²): the whole lot goes.
    assert sol.sell[0] == pytest.approx(0.33, abs=1e-6)
    assert sol.sell[1] == pytest.approx(0.0, abs=1e-6)
    assert sol.sell[2] == pytest.approx(0.0, abs=1e-6)
    # A cannot be bought back (wash sale); B and C are symmetric so they share the proceeds.
    assert sol.buy[0] == 0.0
    assert sol.buy[1] == pytest.approx(sol.buy[2], abs=1e-6)
    assert sol.buy[1] + sol.buy[2] > 0.3


def test_the_loss_is_held_when_trading_cost_outweighs_the_tax_benefit():
    # Even a sale into cash costs κ = 0.25 per unit against a benefit of 0.204: hold.
    data = three_names(kappa=0.25)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert np.allclose(sol.sell, 0.0, atol=1e-6)
    assert np.allclose(sol.buy, 0.0, atol=1e-6)


def test_no_harvest_when_the_loss_would_be_washed():
    # A washed loss has τ = 0 (IRC §1091): selling only adds TE and trading cost.
    data = three_names(lot_tax=np.array([0.0, 0.0714, 0.0714]))
    sol = solve(data)
    assert sol.sell[0] == pytest.approx(0.0, abs=1e-6)


def test_a_cap_is_met_by_selling_the_loss_lot_before_the_gain_lot():
    # A is held in two lots of 0.25 (one at a loss, one at a gain) and capped at 0.30.
    data = three_names(
        w0=np.array([0.5, 0.24, 0.24]),
        lot_name=np.array([0, 0, 1, 2]),
        lot_w=np.array([0.25, 0.25, 0.24, 0.24]),
        lot_tax=np.array([-0.05, 0.10, 0.0, 0.0]),
        lot_gain=np.array([-0.2, 0.42, 0.0, 0.0]),
        lot_sellable=np.ones(4, dtype=bool),
        buy_allowed=np.array([False, True, True]),
        max_w=np.array([0.30, 0.6, 0.6]),
    )
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.w[0] <= 0.30 + 1e-6
    assert sol.sell[0] >= 0.20 - 1e-6
    assert sol.sell[1] == pytest.approx(0.0, abs=1e-6)


def test_an_excluded_name_is_sold_even_at_a_gain():
    data = three_names(max_w=np.array([0.6, 0.0, 0.6]), buy_allowed=np.array([True, False, True]))
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.w[1] == pytest.approx(0.0, abs=1e-6)
    assert sol.sell[1] == pytest.approx(0.33, abs=1e-6)


def test_an_unsellable_lot_is_never_sold_even_when_it_is_a_deep_loss():
    data = three_names(lot_sellable=np.array([False, True, True]))
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.sell[0] == 0.0


def test_harvesting_a_loss_makes_room_under_a_gain_budget_to_sell_an_excluded_winner():
    # C must go (excluded, +0.6 gain per unit: 0.198 realized) but only 0.06 of net gain may
    # be realized: at least (0.198 − 0.06)/0.5 = 0.276 of A's loss lot must be harvested.
    data = three_names(
        max_w=np.array([0.6, 0.99, 0.0]),
        buy_allowed=np.array([False, True, False]),
        lot_gain=np.array([-0.5, 0.3, 0.6]),
        gain_budget_w=0.06,
    )
    sol = solve(data)
    ref = solve_cvxpy(data)
    assert_every_constraint_holds(data, sol)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)
    realized = float(data.lot_gain @ sol.sell)
    assert realized <= 0.06 + 1e-6
    assert sol.sell[2] == pytest.approx(0.33, abs=1e-6)
    assert sol.sell[0] >= 0.276 - 1e-6


def test_a_loss_sold_into_cash_when_only_the_sale_pays_for_itself():
    # κ = 0.2 < 0.204 one way, but 2κ > 0.204 round trip: sell into cash up to its cap (0.02)
    # and buy nothing.
    data = three_names(kappa=0.2)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    assert sol.cash_w == pytest.approx(0.02, abs=1e-6)
    assert sol.sell[0] == pytest.approx(0.01, abs=1e-6)
    assert np.allclose(sol.buy, 0.0, atol=1e-6)


def test_a_turnover_cap_limits_how_much_of_the_loss_is_harvested():
    data = replace(three_names(), turnover_max_w=0.2)
    sol = solve(data)
    assert_every_constraint_holds(data, sol)
    traded = sol.sell.sum() + sol.buy.sum()
    assert traded == pytest.approx(0.2, abs=1e-6)
    assert 0.0 < sol.sell[0] < 0.33


def test_a_new_all_cash_account_keeps_only_the_cash_whose_te_cost_equals_the_trading_cost():
    data = three_names(
        w0=np.zeros(3),
        lot_name=np.zeros(0, dtype=np.int64),
        lot_w=np.zeros(0),
        lot_tax=np.zeros(0),
        lot_gain=np.zeros(0),
        lot_sellable=np.zeros(0, dtype=bool),
        buy_allowed=np.ones(3, dtype=bool),
    )
    sol = solve(data)
    ref = solve_cvxpy(data)
    assert_every_constraint_holds(data, sol)
    # Holding cash c (spread evenly short of each name) costs TE² = 0.04c² + 3·0.04(c/3)²;
    # its marginal 2(0.04 + 0.04/3)c equals the trading cost κ saved at the optimum.
    # The optimum is interior and the objective flat around it (curvature ~0.1), so a 1e-9
    # optimality gap pins the weights to ~1e-6 only; the objective itself to 1e-9.
    c = data.kappa / (2 * (0.04 + 0.04 / 3))
    assert sol.cash_w == pytest.approx(c, abs=3e-6)
    assert np.allclose(sol.buy, (1 - c) / 3, atol=3e-6)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6, abs=1e-9)


def test_a_risk_model_without_factors_tracks_on_specific_risk_alone():
    data = three_names(
        loadings=np.zeros((3, 0)), factor_cov=np.zeros((0, 0)), factor_names=(), te_max=0.2
    )
    sol = solve(data)
    ref = solve_cvxpy(data)
    assert_every_constraint_holds(data, sol)
    assert sol.objective == pytest.approx(ref.objective, rel=1e-6)


def test_a_tilted_problem_solved_in_name_units_matches_the_cvxpy_reference():
    from dataclasses import replace as _replace

    from shared.optimizer.model import Layout, weight_unit
    from shared.optimizer.problem import solve, solve_cvxpy
    from shared.optimizer.synthetic import random_problem as _random_problem

    data = _replace(_random_problem(80, k=6, seed=11), tilts=((1, 0.1),))
    assert weight_unit(data) == 30 / 80
    assert Layout.from_data(data).w_unit == 30 / 80
    assert weight_unit(_replace(_random_problem(20, k=3, seed=1), tilts=((1, 0.1),))) == 1.0
    assert weight_unit(_replace(data, tilts=())) == 1.0
    direct, ref = solve(data), solve_cvxpy(data)
    assert direct.active_exposure[1] >= 0.1 - 1e-7
    assert abs(direct.objective - ref.objective) <= 1e-7


def test_a_book_outside_its_te_budget_is_solved_in_name_units_and_matches_the_cvxpy_reference():
    from dataclasses import replace as _replace

    from shared.optimizer.check import tracking_error
    from shared.optimizer.model import weight_unit
    from shared.optimizer.problem import solve, solve_cvxpy
    from shared.optimizer.synthetic import random_problem as _random_problem

    data = _random_problem(80, k=6, seed=12)
    te0 = tracking_error(data, np.asarray(data.w0, dtype=np.float64))
    outside = _replace(data, te_max=0.8 * te0)
    inside = _replace(data, te_max=1.5 * te0)
    assert weight_unit(outside) == 30 / 80
    assert weight_unit(inside) == 1.0
    direct, ref = solve(outside), solve_cvxpy(outside)
    assert tracking_error(outside, direct.w) <= 0.8 * te0 + 1e-7
    assert abs(direct.objective - ref.objective) <= 1e-7
