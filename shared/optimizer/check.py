"""Independent checks of a solution: recompute everything from the trades and the raw data.

Nothing here uses the model code (no layout, no affine maps, no CVXPY): the weights are summed
from the trades lot by lot, the TE is recomputed from the risk model, and every constraint of
DESIGN.md §2 is tested directly.  :func:`shared.optimizer.problem.solve` runs
:func:`check_solution` on every answer before trusting it, and the tests use it too.
"""

from __future__ import annotations

import numpy as np

from shared.optimizer.data import NEUTRAL_PENALTY, ProblemData, Solution
from shared.types import FloatArray

#: Default absolute tolerance on weights (fractions of NAV): 1e-6 is $1 on a $1M account.
CHECK_TOL = 1e-6


def weights_from_trades(
    data: ProblemData, sell: FloatArray, buy: FloatArray, cover: FloatArray, short: FloatArray
) -> FloatArray:
    """``w = w₀ − A u + β + A_s v − s``, summed lot by lot."""
    n = data.n
    w = np.asarray(data.w0, dtype=np.float64) - np.bincount(
        data.lot_name, weights=sell, minlength=n
    )
    w += buy
    if len(data.short_name):
        w += np.bincount(data.short_name, weights=cover, minlength=n)
    w -= short
    return np.asarray(w, dtype=np.float64)


def long_short_sides(
    data: ProblemData, sell: FloatArray, buy: FloatArray, cover: FloatArray, short: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Long side ``ℓ₀ − A u + β`` and short side ``σ₀ − A_s v + s`` of every name."""
    n = data.n
    long_side = np.bincount(data.lot_name, weights=data.lot_w - sell, minlength=n) + buy
    short_side = (
        np.bincount(data.short_name, weights=data.short_w - cover, minlength=n) + short
        if len(data.short_name)
        else np.array(short, dtype=np.float64)
    )
    return long_side.astype(np.float64), short_side.astype(np.float64)


def tracking_error(data: ProblemData, w: FloatArray) -> float:
    """Annualised ex-ante TE ``√((w−w_b)ᵀ(B F Bᵀ + diag d)(w−w_b))``."""
    a = w - data.w_bench
    y = a @ data.loadings
    var = float(y @ data.factor_cov @ y + a @ (data.specific_var * a))
    return float(np.sqrt(max(var, 0.0)))


def objective_value(
    data: ProblemData, sell: FloatArray, buy: FloatArray, cover: FloatArray, short: FloatArray
) -> float:
    """The objective of DESIGN.md §2 at the given trades."""
    w = weights_from_trades(data, sell, buy, cover, short)
    te = tracking_error(data, w)
    tax = float(data.lot_tax @ sell) + (float(data.short_tax @ cover) if len(cover) else 0.0)
    traded = float(sell.sum() + buy.sum() + cover.sum() + short.sum())
    obj = data.lambda_te * te * te + data.lambda_tax * tax + data.kappa * traded
    if data.alpha is not None:
        obj -= float(data.alpha @ w)
    if data.factor_neutral and data.neutral_band > 0:
        expo = w @ data.loadings
        obj += NEUTRAL_PENALTY * float(expo @ expo)
    return obj


def check_solution(
    data: ProblemData,
    sol: Solution,
    *,
    tol: float = CHECK_TOL,
    eq_tol: float | None = None,
    risk_tol: float | None = None,
) -> list[str]:
    """Every constraint violated by ``sol`` beyond ``tol``, as readable strings (empty: valid).

    Args:
        data: the problem.
        sol: a solution (from either path).
        tol: absolute tolerance in weight units (TE is compared with ``tol`` too).
        eq_tol: tolerance of the equalities alone — a cash weight pinned by
            ``cash_min_w == cash_max_w`` (market-neutral's net 0), factor neutrality and the
            long/short shape floors (the book's 130/30 shape, a target) — when it differs
            from ``tol`` (whole shares cannot meet these exactly); default ``tol``.
        risk_tol: tolerance of the TE budget (annualised TE) and the tilt floors (σ of active
            exposure) when it differs from ``tol``; default ``tol``.

    Returns:
        One line per violated constraint family, naming the first offending name or lot.
    """
    out: list[str] = []
    sym = data.symbols

    def first(
        mask: np.ndarray, what: str, vals: FloatArray, kind: str, worst: FloatArray | None = None
    ) -> None:
        """Report the offenders of ``mask``: the first, or the one of largest ``worst``."""
        idx = np.flatnonzero(mask)
        if len(idx):
            i = int(idx[0]) if worst is None else int(idx[np.argmax(worst[idx])])
            if kind == "lot":
                label = f"lot {i} of {sym[int(data.lot_name[i])]}"
            elif kind == "short lot":
                label = f"short lot {i} of {sym[int(data.short_name[i])]}"
            else:
                label = sym[i]
            out.append(f"{what}: {label} ({vals[i]:.3g}), {len(idx)} in all")

    lot_names, short_names, names = "lot", "short lot", "name"
    shapes = {
        "sell": (sol.sell, len(data.lot_name)),
        "buy": (sol.buy, data.n),
        "cover": (sol.cover, len(data.short_name)),
        "short": (sol.short, data.n),
        "w": (sol.w, data.n),
    }
    for name, (arr, size) in shapes.items():
        if np.shape(arr) != (size,) or not np.all(np.isfinite(arr)):
            return [f"{name}: wrong shape or not finite"]

    # Trade bounds and permission masks.
    if data.lot_sell_min is not None:
        first(sol.sell < data.lot_sell_min - tol, "forced sale not made", sol.sell, lot_names)
    if data.short_cover_min is not None and len(data.short_name):
        first(
            sol.cover < data.short_cover_min - tol, "forced cover not made", sol.cover, short_names
        )
    first(sol.sell < -tol, "sell < 0", sol.sell, lot_names)
    first(sol.sell > data.lot_w + tol, "sell > lot", sol.sell, lot_names)
    first(~data.lot_sellable & (sol.sell > tol), "sold an unsellable lot", sol.sell, lot_names)
    first(sol.buy < -tol, "buy < 0", sol.buy, names)
    first(~data.buy_allowed & (sol.buy > tol), "bought a blocked name", sol.buy, names)
    first(sol.short < -tol, "new short < 0", sol.short, names)
    first(~data.short_allowed & (sol.short > tol), "shorted a blocked name", sol.short, names)
    if len(data.short_name):
        first(sol.cover < -tol, "cover < 0", sol.cover, short_names)
        first(sol.cover > data.short_w + tol, "cover > short lot", sol.cover, short_names)
        first(
            ~data.short_coverable & (sol.cover > tol),
            "covered a blocked short lot",
            sol.cover,
            short_names,
        )

    # Weights: consistent with the trades, within the name bounds.
    w = weights_from_trades(data, sol.sell, sol.buy, sol.cover, sol.short)
    # The worst offender is named (market-neutral audit: a held sleeve named a name 0.112 over
    # a 0.05 cap while another sat at 0.1946).
    first(np.abs(w - sol.w) > tol, "w inconsistent with trades", sol.w, names, np.abs(w - sol.w))
    first(w > data.max_w + tol, "w > max_w", w, names, w - data.max_w)
    first(w < data.min_w - tol, "w < min_w", w, names, data.min_w - w)

    # Budget and cash.
    cash = data.net_w - float(w.sum())
    if abs(cash - sol.cash_w) > tol:
        out.append(f"cash_w {sol.cash_w:.8f} inconsistent with weights ({cash:.8f})")
    eq = tol if eq_tol is None else eq_tol
    band = eq if data.cash_min_w == data.cash_max_w else tol
    if cash < data.cash_min_w - band or cash > data.cash_max_w + band:
        if data.net_w == 0.0 and data.cash_min_w == data.cash_max_w == 0.0:
            # A market-neutral sleeve: its capital sits in cash as collateral, and this row is
            # its net exposure Σw = 0 (say so; "cash" read as a cash weight of the sleeve).
            out.append(f"net Σw {-cash:.6f} != 0 (dollar neutrality)")
        else:
            out.append(f"cash {cash:.6f} outside [{data.cash_min_w}, {data.cash_max_w}]")

    # Risk: TE budget, tilts, neutrality.
    risk = tol if risk_tol is None else risk_tol
    te = tracking_error(data, w)
    if data.te_max is not None and te > data.te_max + risk:
        out.append(f"TE {te:.8f} > budget {data.te_max:.6f}")
    active = (w - data.w_bench) @ data.loadings
    for f, t in data.tilts:
        if active[f] < t - risk:
            out.append(f"tilt {data.factor_names[f]}: active {active[f]:.6f} < {t:.6f}")
    if data.factor_neutral:
        expo = w @ data.loadings
        bad = np.flatnonzero(np.abs(expo) > eq + data.neutral_band)
        if len(bad):
            f = int(bad[np.argmax(np.abs(expo[bad]))])  # the worst factor, and how many miss
            more = (
                f" ({len(bad)} factors beyond {eq + data.neutral_band:g})" if len(bad) > 1 else ""
            )
            out.append(f"not factor neutral: {data.factor_names[f]} exposure {expo[f]:.3g}{more}")

    # Long/short/gross limits on the long and short sides (which bound Σw⁺, Σw⁻, Σ|w|).
    long_side, short_side = long_short_sides(data, sol.sell, sol.buy, sol.cover, sol.short)
    gross_w = float(np.abs(w).sum())
    if data.long_max_w is not None and (
        long_side.sum() > data.long_max_w + tol or np.clip(w, 0, None).sum() > data.long_max_w + tol
    ):
        out.append(f"long side {long_side.sum():.6f} > {data.long_max_w}")
    if data.short_max_w is not None and (
        short_side.sum() > data.short_max_w + tol
        or np.clip(-w, 0, None).sum() > data.short_max_w + tol
    ):
        out.append(f"short side {short_side.sum():.6f} > {data.short_max_w}")
    if data.gross_max_w is not None and (
        long_side.sum() + short_side.sum() > data.gross_max_w + tol
        or gross_w > data.gross_max_w + tol
    ):
        out.append(f"gross {long_side.sum() + short_side.sum():.6f} > {data.gross_max_w}")
    if data.long_min_w is not None and long_side.sum() < data.long_min_w - eq:
        out.append(f"long side {long_side.sum():.6f} < {data.long_min_w}")
    if data.short_min_w is not None and short_side.sum() < data.short_min_w - eq:
        out.append(f"short side {short_side.sum():.6f} < {data.short_min_w}")

    # Turnover and realized-gain budgets.
    traded = float(sol.sell.sum() + sol.buy.sum() + sol.cover.sum() + sol.short.sum())
    if data.turnover_max_w is not None and traded > data.turnover_max_w + tol:
        out.append(f"turnover {traded:.6f} > {data.turnover_max_w}")
    if data.gain_budget_w is not None:
        gain = float(data.lot_gain @ sol.sell)
        if len(data.short_name):
            gain += float(data.short_gain @ sol.cover)
        if gain > data.gain_budget_w + tol:
            out.append(f"realized gain {gain:.6f} > budget {data.gain_budget_w}")
    return out


def constructive_sales(data: ProblemData, sol: Solution, *, tol: float = CHECK_TOL) -> list[str]:
    """Names the trades leave held both long and short through a trade of this solve.

    A short sale of a name while long lots of it are still held (a short "against the box"),
    or a purchase while short lots are still open, is a constructive sale of the appreciated
    position (IRC §1259(c)(1)(A) and (D)) and restarts holding periods (IRC §1233(b)): the tax
    the model saved by not selling would be due anyway.  Positions held both ways *before*
    the solve are not counted; only those the solve's own shorts or buys create.

    Returns:
        One line per offending name (empty: none).
    """
    long_side, short_side = long_short_sides(data, sol.sell, sol.buy, sol.cover, sol.short)
    out: list[str] = []
    for i in np.flatnonzero((sol.short > tol) & (long_side > tol)):
        out.append(f"{data.symbols[i]}: new short {sol.short[i]:.3g} against long lots held")
    for i in np.flatnonzero((sol.buy > tol) & (short_side > tol)):
        out.append(f"{data.symbols[i]}: buy {sol.buy[i]:.3g} against open short lots")
    return out
