"""Random but realistic :class:`ProblemData` for tests and ``bench/solve_core.py``.

A cap-weighted-looking benchmark, a drifted portfolio held in several lots per name with a
spread of gains and losses (short- and long-term rates, a few washed losses with no benefit),
a factor model with a market factor, five standardised styles and one-hot sectors, plus the
masks a real night produces (wash-sale buy blocks, a few unsellable lots, exclusions).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from shared.optimizer.data import ProblemData
from shared.types import FloatArray

#: Federal rates of DESIGN.md §2 with the 3.8% NIIT (IRC §1411): short-term (held ≤ 1 year,
#: IRC §1222(1)) and long-term (IRC §1222(3)).
ST_RATE = 0.37 + 0.038
LT_RATE = 0.20 + 0.038

StrategyName = Literal["direct-index", "long-short", "market-neutral"]

_STYLES = ("quality", "value", "momentum", "low_vol", "size")


def _risk_model(
    rng: np.random.Generator, n: int, k: int
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[str, ...]]:
    n_style = min(len(_STYLES), max(k - 1, 0))
    n_sector = max(k - 1 - n_style, 0)
    cols: list[FloatArray] = []
    names: list[str] = []
    vols: list[float] = []
    if k >= 1:
        cols.append(1.0 + 0.25 * rng.standard_normal(n))
        names.append("market")
        vols.append(0.16)
    for s in _STYLES[:n_style]:
        x = rng.standard_normal(n)
        cols.append((x - x.mean()) / x.std())
        names.append(s)
        vols.append(float(rng.uniform(0.02, 0.05)))
    if n_sector:
        sector = rng.integers(0, n_sector, size=n)
        for j in range(n_sector):
            cols.append((sector == j).astype(np.float64))
            names.append(f"sector_{j}")
            vols.append(float(rng.uniform(0.03, 0.07)))
    B = np.column_stack(cols) if cols else np.zeros((n, 0))
    corr = np.eye(k)
    if k > 1:
        X = rng.standard_normal((k, 3 * k))
        C = X @ X.T
        dC = np.sqrt(np.diag(C))
        corr = 0.7 * np.eye(k) + 0.3 * C / np.outer(dC, dC)
    v = np.array(vols)
    F = corr * np.outer(v, v)
    d = rng.uniform(0.18, 0.40, size=n) ** 2
    return B, F, d, tuple(names)


def _lots(
    rng: np.random.Generator, holding: FloatArray, lots_per_name: float
) -> tuple[np.ndarray, FloatArray, FloatArray, FloatArray]:
    """Split each positive holding into lots; returns name index, weight, tax and gain."""
    held = np.flatnonzero(holding > 0)
    counts = np.maximum(1, rng.poisson(max(lots_per_name - 1.0, 0.0), size=len(held)) + 1)
    name = np.repeat(held, counts).astype(np.int64)
    share = rng.dirichlet(np.ones(3), size=len(name))[:, 0] + 0.05
    totals = np.bincount(name, weights=share, minlength=len(holding))
    lot_w = holding[name] * share / totals[name]
    # Price / cost: a spread of gains and losses; (p − c)/p is the gain per unit sold.
    ratio = np.exp(rng.normal(0.15, 0.30, size=len(name)))
    gain = 1.0 - 1.0 / ratio
    long_term = rng.random(len(name)) < 0.6
    tax = np.where(long_term, LT_RATE, ST_RATE) * gain
    washed = (gain < 0) & (rng.random(len(name)) < 0.05)
    tax[washed] = 0.0  # a loss that would be washed has no benefit (IRC §1091)
    return name, lot_w, tax, gain


def random_problem(
    n: int,
    *,
    k: int = 18,
    lots_per_name: float = 4.0,
    strategy: StrategyName = "direct-index",
    seed: int = 0,
    te_max: float | Literal["auto"] | None = "auto",
    tilts: tuple[tuple[int, float], ...] = (),
    turnover_max_w: float | None = None,
    gain_budget_w: float | None = None,
) -> ProblemData:
    """A random problem of ``n`` names, ``k`` factors, about ``lots_per_name·n`` lots.

    ``te_max="auto"`` is 2% for direct indexing, 4% for long/short (the shorts themselves cost
    TE) and 5% for the market-neutral sleeve (no benchmark: a cap on total risk).
    """
    if te_max == "auto":
        te_max = {"direct-index": 0.02, "long-short": 0.04, "market-neutral": 0.05}[strategy]
    rng = np.random.default_rng(seed)
    symbols = tuple(f"S{i:04d}" for i in range(n))
    B, F, d, fnames = _risk_model(rng, n, k)
    cap = rng.lognormal(0.0, 1.2, size=n)
    w_bench = cap / cap.sum()
    short_name = np.zeros(0, dtype=np.int64)
    short_w = np.zeros(0)
    short_tax = np.zeros(0)
    short_gain = np.zeros(0)
    alpha: FloatArray | None = None
    long_max = short_max = gross_max = None
    factor_neutral = False
    net_w, cash_min, cash_max = 1.0, 0.0, 0.02
    max_w = np.full(n, max(0.05, 3.0 / n)) if n >= 40 else np.full(n, 0.25)
    max_w = np.maximum(max_w, 1.5 * w_bench)
    min_w = np.zeros(n)
    short_allowed = np.zeros(n, dtype=np.bool_)
    lambda_te = 50.0

    if strategy == "direct-index":
        drift = np.exp(rng.normal(0.0, 0.25, size=n))
        long_hold = w_bench * drift
        long_hold *= rng.uniform(0.97, 0.995) / long_hold.sum()
        short_hold = np.zeros(n)
    elif strategy == "long-short":
        long_max, short_max, gross_max = 1.3, 0.3, 1.6
        drift = np.exp(rng.normal(0.0, 0.25, size=n))
        long_hold = w_bench * drift
        long_hold *= 1.25 / long_hold.sum()
        shorted = rng.random(n) < 0.2
        short_hold = np.where(shorted, rng.uniform(0.5, 1.5, size=n), 0.0)
        short_hold *= 0.26 / max(short_hold.sum(), 1e-12)
        # A name is either long or short today.
        long_hold[shorted] = 0.0
        long_hold *= (1.0 + short_hold.sum() - 0.01) / long_hold.sum()
        short_allowed = rng.random(n) < 0.6
        min_w = np.where(short_allowed | shorted, -max(0.02, 2.0 / n), 0.0)
        max_w = np.maximum(max_w, 1.3 * long_hold)
    else:
        factor_neutral = True
        w_bench = np.zeros(n)
        net_w, cash_min, cash_max = 0.0, 0.0, 0.0
        gross_max = 2.0
        alpha = rng.normal(0.0, 0.03, size=n)
        side = rng.random(n)
        long_hold = np.where(side < 0.3, rng.uniform(0.5, 1.5, size=n), 0.0)
        short_hold = np.where(side > 0.7, rng.uniform(0.5, 1.5, size=n), 0.0)
        long_hold *= 0.8 / max(long_hold.sum(), 1e-12)
        short_hold *= 0.8 / max(short_hold.sum(), 1e-12)
        cap_w = max(0.03, 4.0 / n)
        max_w = np.maximum(np.full(n, cap_w), long_hold)
        min_w = np.minimum(np.full(n, -cap_w), -short_hold)
        short_allowed = np.ones(n, dtype=np.bool_)
        lambda_te = 5.0

    lot_name, lot_w, lot_tax, lot_gain = _lots(rng, long_hold, lots_per_name)
    if short_hold.any():
        short_name, short_w, _, short_gain = _lots(rng, short_hold, max(lots_per_name / 2, 1.0))
        # Covering realizes (proceeds − cost): short-term whatever the holding period
        # (IRC §1233(b)); per unit weight covered the gain is (proceeds − price)/price.
        short_gain = -short_gain
        short_tax = ST_RATE * short_gain
    max_w = np.maximum(max_w, long_hold)  # today's holding never breaks its own cap
    L = len(lot_name)
    lot_sellable = rng.random(L) > (0.02 if strategy != "market-neutral" else 0.0)
    buy_allowed = rng.random(n) > 0.05
    if strategy != "market-neutral" and n >= 40:
        excluded = rng.choice(n, size=max(1, n // 100), replace=False)
        max_w[excluded] = 0.0
        min_w[excluded] = 0.0
        buy_allowed[excluded] = False
        short_allowed[excluded] = False
        lot_sellable[np.isin(lot_name, excluded)] = True
    w0 = np.asarray(
        np.bincount(lot_name, weights=lot_w, minlength=n)
        - np.bincount(short_name, weights=short_w, minlength=n),
        dtype=np.float64,
    )
    return ProblemData(
        symbols=symbols,
        w0=w0,
        w_bench=w_bench,
        loadings=B,
        factor_cov=F,
        specific_var=d,
        factor_names=fnames,
        lot_name=lot_name,
        lot_w=lot_w,
        lot_tax=lot_tax,
        lot_gain=lot_gain,
        lot_sellable=lot_sellable,
        short_name=short_name,
        short_w=short_w,
        short_tax=short_tax,
        short_gain=short_gain,
        short_coverable=np.ones(len(short_name), dtype=np.bool_),
        buy_allowed=buy_allowed,
        short_allowed=short_allowed,
        max_w=max_w,
        min_w=min_w,
        lambda_te=lambda_te,
        lambda_tax=1.0,
        kappa=5e-4,
        alpha=alpha,
        te_max=te_max,
        tilts=tilts,
        factor_neutral=factor_neutral,
        net_w=net_w,
        cash_min_w=cash_min,
        cash_max_w=cash_max,
        long_max_w=long_max,
        short_max_w=short_max,
        gross_max_w=gross_max,
        turnover_max_w=turnover_max_w,
        gain_budget_w=gain_budget_w,
        account=f"SYN-{strategy}-{n}-{seed}",
    )
