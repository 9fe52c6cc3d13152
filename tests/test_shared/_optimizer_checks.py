"""Test-side helpers for the optimizer tests: tiny problems and an independent checker.

Everything here is deliberately naive (Python loops, the full n×n covariance) so it shares no
code with ``shared.optimizer``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from shared.optimizer.data import ProblemData, Solution

TOL = 1e-6


def three_names(**overrides: Any) -> ProblemData:
    """Three names at 0.33 each against an equal-weight benchmark; A is one lot at a 50% loss
    (τ = 0.408 · −0.5), B and C are one lot each at a 30% gain; A may not be bought back."""
    base = ProblemData(
        symbols=("A", "B", "C"),
        w0=np.array([0.33, 0.33, 0.33]),
        w_bench=np.full(3, 1 / 3),
        loadings=np.ones((3, 1)),
        factor_cov=np.array([[0.04]]),
        specific_var=np.full(3, 0.04),
        factor_names=("market",),
        lot_name=np.array([0, 1, 2]),
        lot_w=np.array([0.33, 0.33, 0.33]),
        lot_tax=np.array([0.408 * -0.5, 0.238 * 0.3, 0.238 * 0.3]),
        lot_gain=np.array([-0.5, 0.3, 0.3]),
        lot_sellable=np.ones(3, dtype=bool),
        buy_allowed=np.array([False, True, True]),
        short_allowed=np.zeros(3, dtype=bool),
        max_w=np.full(3, 0.6),
        min_w=np.zeros(3),
        lambda_te=1.0,
        lambda_tax=1.0,
        kappa=1e-4,
        te_max=None,
        cash_min_w=0.0,
        cash_max_w=0.02,
    )
    return replace(base, **overrides)


def naive_weights(data: ProblemData, sol: Solution) -> np.ndarray:
    """w = w₀ − (lots sold) + buys + (short lots covered) − new shorts, one lot at a time."""
    w = [float(x) for x in data.w0]
    for j in range(len(data.lot_name)):
        w[int(data.lot_name[j])] -= float(sol.sell[j])
    for j in range(len(data.short_name)):
        w[int(data.short_name[j])] += float(sol.cover[j])
    for i in range(data.n):
        w[i] += float(sol.buy[i]) - float(sol.short[i])
    return np.array(w)


def full_te(data: ProblemData, w: np.ndarray) -> float:
    """TE with the full n×n covariance Σ = B F Bᵀ + diag(d) (fine for small n)."""
    sigma = data.loadings @ data.factor_cov @ data.loadings.T + np.diag(data.specific_var)
    a = w - data.w_bench
    return float(np.sqrt(a @ sigma @ a))


def assert_every_constraint_holds(data: ProblemData, sol: Solution, tol: float = TOL) -> None:
    """Every constraint of DESIGN.md §2, checked from the trades with naive code."""
    w = naive_weights(data, sol)
    assert np.allclose(w, sol.w, atol=tol), "reported w is not what the trades give"
    # Trades within their lots and permissions.
    for j in range(len(data.lot_name)):
        assert -tol <= sol.sell[j] <= data.lot_w[j] + tol
        if not data.lot_sellable[j]:
            assert abs(sol.sell[j]) <= tol, f"sold unsellable lot {j}"
    for j in range(len(data.short_name)):
        assert -tol <= sol.cover[j] <= data.short_w[j] + tol
        if not data.short_coverable[j]:
            assert abs(sol.cover[j]) <= tol
    for i in range(data.n):
        assert sol.buy[i] >= -tol and sol.short[i] >= -tol
        if not data.buy_allowed[i]:
            assert sol.buy[i] <= tol, f"bought blocked name {data.symbols[i]}"
        if not data.short_allowed[i]:
            assert sol.short[i] <= tol, f"shorted blocked name {data.symbols[i]}"
        assert data.min_w[i] - tol <= w[i] <= data.max_w[i] + tol, data.symbols[i]
    cash = data.net_w - w.sum()
    assert abs(cash - sol.cash_w) <= tol
    assert data.cash_min_w - tol <= cash <= data.cash_max_w + tol
    te = full_te(data, w)
    assert abs(te - sol.te) <= 1e-6
    if data.te_max is not None:
        assert te <= data.te_max + tol
    active = data.loadings.T @ (w - data.w_bench)
    for f, t in data.tilts:
        assert active[f] >= t - tol, f"tilt {data.factor_names[f]}"
    if data.factor_neutral:
        assert np.all(np.abs(data.loadings.T @ w) <= data.neutral_band + 1e-5)
    if data.long_max_w is not None:
        assert np.clip(w, 0, None).sum() <= data.long_max_w + tol
    if data.short_max_w is not None:
        assert np.clip(-w, 0, None).sum() <= data.short_max_w + tol
    if data.gross_max_w is not None:
        assert np.abs(w).sum() <= data.gross_max_w + tol
    traded = sol.sell.sum() + sol.buy.sum() + sol.cover.sum() + sol.short.sum()
    if data.turnover_max_w is not None:
        assert traded <= data.turnover_max_w + tol
    if data.gain_budget_w is not None:
        gain = sum(data.lot_gain[j] * sol.sell[j] for j in range(len(data.lot_name)))
        gain += sum(data.short_gain[j] * sol.cover[j] for j in range(len(data.short_name)))
        assert gain <= data.gain_budget_w + tol
