"""Factor risk models ``Σ = B F Bᵀ + diag(d)``: validation, array conversion, and estimation.

The wire value is :class:`shared.messages.RiskModel` (annualised; ``loadings`` n×k, ``factor_cov``
k×k, ``specific_var`` n).  This module turns it into arrays and back, checks it at the boundary
(:func:`validate_risk_model`), and estimates one from a history of daily returns
(:func:`estimate_risk_model`) so real price histories work without a vendor model:

* **Time-series regression** of each name's daily returns on given daily factor returns (e.g. a
  market ETF and a few style ETFs), exponentially weighted (``halflife`` days), with an intercept
  that is dropped.  Without factor returns a **statistical model** is used: the first
  ``n_factors`` principal components of the volatility-scaled returns are the factor returns.
* **Factor covariance**: the exponentially weighted sample covariance of the factor returns,
  shrunk towards its own diagonal (correlations towards zero, variances kept) with the
  Ledoit-Wolf optimal intensity (Ledoit & Wolf 2004, "Honey, I shrunk the sample covariance
  matrix"; target as in Schäfer & Strimmer 2005, target "D"), or a fixed ``shrinkage``.
* **Specific variance**: the weighted variance of the regression residuals, corrected for the
  regression's degrees of freedom (``(T − k − 1)/T`` with equal weights), floored at 5%/y and
  capped at 1,000%/y (:data:`SPECIFIC_VAR_CAP`).
* Every name needs ``max(min_obs, k + 2)`` returns for its own regression (k factors, an
  intercept and one residual degree of freedom), a complete history included; names with fewer
  get the median loadings and median specific variance of their sector (of all fitted names if
  no sector is given or their sector has none); so do names whose price moved (a return that
  is not 0) on fewer days than that (a stale or halted quote).  When no name has that many,
  the estimate is refused, saying how many returns there are and how many are needed.
* Everything is annualised ×252 (trading days per year).

Standardising style columns (``standardise=("value", …)``) maps each column to equal-weighted
mean 0 / std 1 over the names and rescales the factor covariance by the column's std, so
``B F Bᵀ`` changes only by a term common to every name (``1·mᵀf``).  That term cancels for any
portfolio whose weights sum to zero — active weights ``w − w_b`` of a fully invested account, or
a dollar-neutral sleeve — so tracking error is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.errors import InputError
from shared.messages import RiskModel
from shared.types import FloatArray, IntArray

#: Trading days per year used to annualise daily moments.
TRADING_DAYS_PER_YEAR = 252
#: Default floor on annualised specific variance: a 5%/y specific volatility.
SPECIFIC_VAR_FLOOR = 0.05**2
#: Cap on an estimated annualised specific variance: a 1,000%/y specific volatility, far above
#: any listed stock's and far below what a rebalance refuses (``MAX_RISK_VALUE`` = 1e4).
SPECIFIC_VAR_CAP = 10.0**2
#: Relative tolerance of every PSD check of a factor covariance: the market loader's, the
#: risk-model check's, each rebalance's and the optimizer's factor square root all use
#: :func:`psd_violation`, so a covariance the loader accepts is never rejected by a rebalance
#: (docs/formats.md "Risk model").  Eigenvalues down to ``-PSD_TOL·max|λ|`` pass (rounding in a
#: vendor's file); the factor square root clips them to 0.
PSD_TOL = 1e-8


def psd_violation(F: FloatArray) -> float | None:
    """The smallest eigenvalue of the symmetric part of ``F`` when it is below
    ``-PSD_TOL·max|λ|`` (``F`` is not positive semidefinite), else ``None``.

    ``F`` must be square and finite; an empty matrix passes.
    """
    if F.size == 0:
        return None
    eig = np.linalg.eigvalsh((F + F.T) / 2)
    if eig[0] < -PSD_TOL * float(np.abs(eig).max()):
        return float(eig[0])
    return None


def risk_model_arrays(rm: RiskModel) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The model as arrays ``(B n×k, F k×k, d n)``, annualised.

    Raises:
        InputError: ragged rows (see :func:`validate_risk_model` for the full check).
    """
    k = len(rm.factor_names)
    try:
        B = np.asarray(rm.loadings, dtype=np.float64).reshape(len(rm.loadings), k)
        F = np.asarray(rm.factor_cov, dtype=np.float64).reshape(k, k)
    except ValueError as exc:
        raise InputError(
            f"loadings/factor_cov do not match the {k} factor names: {exc}",
            field="risk_model.loadings",
        ) from exc
    d = np.asarray(rm.specific_var, dtype=np.float64)
    return B, F, d


def make_risk_model(
    factor_names: Sequence[str],
    loadings: FloatArray,
    factor_cov: FloatArray,
    specific_var: FloatArray,
) -> RiskModel:
    """Build the wire value from arrays (annualised).  No validation: call
    :func:`validate_risk_model` where the arrays come from outside."""
    return RiskModel(
        factor_names=list(factor_names),
        loadings=np.asarray(loadings, dtype=np.float64).tolist(),
        factor_cov=np.asarray(factor_cov, dtype=np.float64).tolist(),
        specific_var=np.asarray(specific_var, dtype=np.float64).tolist(),
    )


def subset_risk_model(rm: RiskModel, rows: Sequence[int]) -> RiskModel:
    """The model restricted to names ``rows`` (in that order); factors unchanged."""
    return RiskModel(
        factor_names=list(rm.factor_names),
        loadings=[rm.loadings[i] for i in rows],
        factor_cov=rm.factor_cov,
        specific_var=[rm.specific_var[i] for i in rows],
    )


def validate_risk_model(rm: RiskModel, n: int, *, account: str | None = None) -> None:
    """Check a risk model for a universe of ``n`` names.

    Checks: ``n`` loading rows of ``k = len(factor_names)`` entries, unique factor names, a k×k
    finite symmetric positive-semidefinite ``factor_cov`` (within a relative tolerance), ``n``
    finite non-negative specific variances.

    Args:
        rm: the model.
        n: the number of names it must cover (aligned with the snapshot's symbols).
        account: named in the error, if the model came with an account's request.

    Raises:
        InputError: with ``field`` ``risk_model.factor_names``, ``risk_model.loadings``,
            ``risk_model.factor_cov`` or ``risk_model.specific_var``.
    """
    k = len(rm.factor_names)
    if len(set(rm.factor_names)) != k:
        raise InputError(
            "factor names are not unique", account=account, field="risk_model.factor_names"
        )
    if len(rm.loadings) != n:
        raise InputError(
            f"{len(rm.loadings)} loading rows for {n} names",
            account=account,
            field="risk_model.loadings",
        )
    for i, row in enumerate(rm.loadings):
        if len(row) != k:
            raise InputError(
                f"row {i} has {len(row)} loadings for {k} factors",
                account=account,
                field=f"risk_model.loadings[{i}]",
            )
    if len(rm.factor_cov) != k or any(len(r) != k for r in rm.factor_cov):
        raise InputError(
            f"factor_cov must be {k}×{k}", account=account, field="risk_model.factor_cov"
        )
    if len(rm.specific_var) != n:
        raise InputError(
            f"{len(rm.specific_var)} specific variances for {n} names",
            account=account,
            field="risk_model.specific_var",
        )
    B, F, d = risk_model_arrays(rm)
    if B.size and not np.all(np.isfinite(B)):
        i = int(np.argwhere(~np.isfinite(B))[0][0])
        raise InputError(
            f"loadings of row {i} are not finite",
            account=account,
            field=f"risk_model.loadings[{i}]",
        )
    if not np.all(np.isfinite(F)):
        raise InputError("factor_cov is not finite", account=account, field="risk_model.factor_cov")
    if k:
        scale = float(np.max(np.abs(F))) if F.size else 0.0
        if not np.allclose(F, F.T, rtol=1e-8, atol=1e-12 * max(scale, 1.0)):
            raise InputError(
                "factor_cov is not symmetric", account=account, field="risk_model.factor_cov"
            )
        low = psd_violation(F)
        if low is not None:
            raise InputError(
                f"factor_cov is not positive semidefinite (smallest eigenvalue {low:.3g})",
                account=account,
                field="risk_model.factor_cov",
            )
    if not np.all(np.isfinite(d)):
        i = int(np.argwhere(~np.isfinite(d))[0][0])
        raise InputError(
            f"specific variance of row {i} is not finite",
            account=account,
            field=f"risk_model.specific_var[{i}]",
        )
    if np.any(d < 0):
        i = int(np.argwhere(d < 0)[0][0])
        raise InputError(
            f"specific variance of row {i} is negative ({d[i]:.3g})",
            account=account,
            field=f"risk_model.specific_var[{i}]",
        )


def _ew_weights(T: int, halflife: float | None) -> FloatArray:
    """Exponential weights over T rows (last row heaviest), summing to 1."""
    if halflife is None:
        w = np.ones(T)
    else:
        if halflife <= 0:
            raise InputError(f"halflife must be > 0 days, got {halflife}", field="halflife")
        w = 0.5 ** (np.arange(T - 1, -1, -1, dtype=np.float64) / halflife)
    out: FloatArray = w / w.sum()
    return out


def shrunk_covariance(
    x: FloatArray, weights: FloatArray, shrinkage: float | None = None
) -> tuple[FloatArray, float]:
    """Weighted covariance of the rows of ``x`` (T×k), shrunk towards its diagonal.

    With ``shrinkage=None`` the intensity is the Ledoit-Wolf optimum for the diagonal target:
    ``δ = Σ_{i≠j} Var̂(s_ij) / Σ_{i≠j} s_ij²`` clipped to [0, 1], where ``Var̂(s_ij) =
    Σ_t w_t² (x_ti x_tj − s_ij)²`` for normalised weights ``w``.

    Returns:
        The shrunk covariance (per period of ``x``) and the intensity used.

    Raises:
        InputError: ``shrinkage`` outside [0, 1].
    """
    w = weights / weights.sum()
    mean = w @ x
    xc = x - mean
    S = (xc * w[:, None]).T @ xc
    k = S.shape[0]
    off = ~np.eye(k, dtype=bool)
    if shrinkage is None:
        if k < 2:
            delta = 0.0
        else:
            # Σ_t w_t² (x_ti x_tj − s_ij)², computed without a T×k×k tensor.
            w2 = w**2
            sq = xc**2
            e4 = (sq * w2[:, None]).T @ sq  # Σ w² x_i² x_j²
            e2 = (xc * w2[:, None]).T @ xc  # Σ w² x_i x_j
            var_s = e4 - 2 * S * e2 + S**2 * w2.sum()
            num = float(var_s[off].sum())
            den = float((S[off] ** 2).sum())
            delta = 1.0 if den <= 0 else min(1.0, max(0.0, num / den))
    else:
        if not 0.0 <= shrinkage <= 1.0:
            raise InputError(f"shrinkage must be in [0, 1], got {shrinkage}", field="shrinkage")
        delta = float(shrinkage)
    out = S.copy()
    out[off] *= 1.0 - delta
    return out, delta


def _group_median(values: FloatArray, ok: FloatArray, groups: Sequence[str] | None) -> FloatArray:
    """Fill rows where ``ok`` is False with the median of the ok rows of their group (or of all
    ok rows when the group has none)."""
    out = values.copy()
    bad = ~ok.astype(bool)
    if not bad.any():
        return out
    if not ok.any():
        raise InputError(
            "no name has enough return history to estimate a risk model", field="returns"
        )
    overall = np.median(values[ok.astype(bool)], axis=0)
    if groups is None:
        out[bad] = overall
        return out
    g = np.asarray(groups, dtype=object)
    for name in set(g[bad].tolist()):
        members = (g == name) & ok.astype(bool)
        fill = np.median(values[members], axis=0) if members.any() else overall
        out[bad & (g == name)] = fill
    return out


def estimate_risk_model(
    returns: FloatArray,
    factor_returns: FloatArray | None = None,
    factor_names: Sequence[str] | None = None,
    *,
    halflife: float | None = 126.0,
    shrinkage: float | None = None,
    n_factors: int = 10,
    min_obs: int = 60,
    specific_floor: float = SPECIFIC_VAR_FLOOR,
    standardise: Sequence[str] = (),
    sectors: Sequence[str] | None = None,
) -> RiskModel:
    """Estimate an annualised factor risk model from daily returns.

    Args:
        returns: T×n daily simple returns, NaN where a name has no return (not listed yet).
        factor_returns: T×k daily factor returns aligned with ``returns`` (no NaN), or ``None``
            for a statistical (principal-component) model with ``n_factors`` factors.
        factor_names: the k names (``pc1``… by default for the statistical model).
        halflife: exponential-weighting half-life in days (``None``: equal weights).
        shrinkage: factor-covariance shrinkage intensity in [0, 1]; ``None`` = Ledoit-Wolf.
        n_factors: factors of the statistical model (capped at ``T − 2`` and ``n − 1``, so a
            complete history can be regressed on them, see ``min_obs``).
        min_obs: fewest returns a name needs for its own regression; every name, complete
            history or not, needs ``max(min_obs, k + 2)`` of them (k factors and an intercept,
            and at least one residual degree of freedom: fewer fits exactly, with no
            specific risk left), and as many that are not 0.  Names with fewer (a stale or
            halted quote among them), get the median loadings and specific variance of their
            sector (of all fitted names when their sector has none).
        specific_floor: floor on annualised specific variance (the cap is
            :data:`SPECIFIC_VAR_CAP`).
        standardise: factor names whose loadings are standardised cross-sectionally
            (equal-weighted mean 0, std 1), with ``factor_cov`` rescaled to match.
        sectors: n sector labels for the short-history fallback.

    Returns:
        The model over the n names, in the order of the columns of ``returns``.

    Raises:
        InputError: bad shapes, non-finite factor returns, unknown names in ``standardise``,
            too little history (no name has ``max(min_obs, k + 2)`` returns: the message says
            how many the longest history has and how many are needed).
    """
    R = np.asarray(returns, dtype=np.float64)
    if R.ndim != 2:
        raise InputError(f"returns must be T×n, got shape {R.shape}", field="returns")
    T, n = R.shape
    if T < 2 or n < 1:
        raise InputError(
            f"need at least 2 days and 1 name of returns, got {R.shape}", field="returns"
        )
    if np.isinf(R).any():
        raise InputError("returns contain infinite values", field="returns")
    if sectors is not None and len(sectors) != n:
        raise InputError(f"{len(sectors)} sectors for {n} names", field="sectors")
    w = _ew_weights(T, halflife)
    obs = np.isfinite(R)
    counts: IntArray = obs.sum(axis=0).astype(np.int64)

    if factor_returns is None:
        X, names = _statistical_factors(R, obs, counts, w, n_factors=n_factors, min_obs=min_obs)
        if factor_names is not None:
            if len(factor_names) != X.shape[1]:
                raise InputError(
                    f"{len(factor_names)} factor names for {X.shape[1]} statistical factors",
                    field="factor_names",
                )
            names = list(factor_names)
    else:
        X = np.asarray(factor_returns, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] != T:
            raise InputError(
                f"factor_returns must be {T}×k to match returns, got shape {X.shape}",
                field="factor_returns",
            )
        if not np.all(np.isfinite(X)):
            row = int(np.argwhere(~np.isfinite(X))[0][0])
            raise InputError(f"factor_returns row {row} is not finite", field="factor_returns")
        names = (
            list(factor_names)
            if factor_names is not None
            else [f"f{j + 1}" for j in range(X.shape[1])]
        )
        if len(names) != X.shape[1]:
            raise InputError(
                f"{len(names)} factor names for {X.shape[1]} factor-return columns",
                field="factor_names",
            )
    k = X.shape[1]
    if len(set(names)) != k:
        raise InputError("factor names are not unique", field="factor_names")

    B = np.full((n, k), np.nan)
    resid_var = np.full(n, np.nan)
    design = np.column_stack([np.ones(T), X])
    sw = np.sqrt(w)

    # A name's own regression needs k + 1 coefficients and a residual: with fewer returns
    # the fit is exact (or underdetermined), specific variances sit at the floor and the
    # loadings are noise.  Complete histories are held to the same minimum as partial ones.
    need = max(min_obs, k + 2)
    # A price that never moved in the window (a stale or halted quote) has no risk to fit: its
    # regression gives zero loadings and the specific floor, a name the optimizer would take
    # for nearly riskless (data audit: 5%/y against a 30%/y median).  A price that moved on a
    # few days only is the same quote with a tick or two (risk-model audit: one 1% move in a
    # year gave 5%/y, 20 moves 8.6%/y, against 31.8%/y for the price that never moved): an
    # unchanged price is no observation of risk, so a name needs ``need`` returns that are
    # not 0.  Either is treated as a name without history: its sector's median loadings and
    # specific variance.
    moving = np.count_nonzero(obs & (R != 0), axis=0)
    stale = (counts > 0) & (moving < need)
    enough = (counts >= need) & ~stale
    if not enough.any():
        frozen = (
            f"; {int(stale.sum())} names' prices moved on fewer than {need} days"
            if stale.any()
            else ""
        )
        raise InputError(
            f"too little history for a risk model: the longest name has {int(counts.max())} "
            f"daily returns, a regression on {k} factors needs {need} "
            f"(max(min_obs={min_obs}, k+2={k + 2})){frozen}",
            field="returns",
        )
    full = enough & (counts == T)
    if full.any():
        # One weighted least-squares solve for every name with a complete history.
        coef, *_ = np.linalg.lstsq(design * sw[:, None], R[:, full] * sw[:, None], rcond=None)
        resid = R[:, full] - design @ coef
        B[full] = coef[1:].T
        resid_var[full] = _weighted_var(resid, w) / _residual_share(design, w)
    partial = np.flatnonzero(enough & ~full)
    # Names that share a missing-data pattern (e.g. listed on the same day) share one solve.
    patterns: dict[bytes, list[int]] = {}
    for i in partial:
        patterns.setdefault(obs[:, i].tobytes(), []).append(int(i))
    for cols in patterns.values():
        rows = obs[:, cols[0]]
        wr = w[rows] / w[rows].sum()
        D = design[rows]
        Y = R[np.ix_(rows, np.asarray(cols, dtype=np.int64))]
        coef, *_ = np.linalg.lstsq(D * np.sqrt(wr)[:, None], Y * np.sqrt(wr)[:, None], rcond=None)
        B[cols] = coef[1:].T
        resid_var[cols] = _weighted_var(Y - D @ coef, wr) / _residual_share(D, wr)

    ok = np.isfinite(resid_var)
    B = _group_median(B, ok, sectors)
    resid_var = _group_median(resid_var[:, None], ok, sectors)[:, 0]
    # Capped too: one extreme day (a ×150 move of a penny stock, a bad print) gave a specific
    # variance of 1.35e4, above what a rebalance accepts (MAX_RISK_VALUE), and the whole night's
    # market was refused (risk-model audit).  At the cap the name is still far the riskiest.
    specific = np.clip(resid_var * TRADING_DAYS_PER_YEAR, specific_floor, SPECIFIC_VAR_CAP)

    F, _ = shrunk_covariance(X, w, shrinkage)
    F = F * TRADING_DAYS_PER_YEAR

    unknown = [f for f in standardise if f not in names]
    if unknown:
        raise InputError(f"cannot standardise unknown factors {unknown}", field="standardise")
    for f in standardise:
        j = names.index(f)
        m = float(B[:, j].mean())
        s = float(B[:, j].std())
        if s <= 0:
            continue
        B[:, j] = (B[:, j] - m) / s
        F[j, :] *= s
        F[:, j] *= s
    F = (F + F.T) / 2
    return make_risk_model(names, B, F, specific)


def _residual_share(design: FloatArray, w: FloatArray) -> float:
    """``E[Σ_t w_t e_t²] / σ²`` for weighted least squares on ``design`` with weights ``w``
    (summing to 1): ``1 − tr((DᵀWD)⁻¹ DᵀW²D)``, the degrees-of-freedom correction of a
    residual variance (``(T − k − 1)/T`` with equal weights).

    Without it the specific variances of a short history were biased low by exactly that
    factor (risk-model audit: 0.165 of the truth at 6 returns on 4 factors, 0.545 at 11, 0.91 at
    60).  Its residuals satisfy ``DᵀWe = 0``, so ``E[eᵀWe] = σ² tr(W(I − H))``.
    """
    dw = design * w[:, None]
    gram = design.T @ dw
    share = 1.0 - float(np.trace(np.linalg.pinv(gram) @ (dw.T @ dw)))
    # At least one residual degree of freedom (``need`` ≥ k + 2); a degenerate design keeps
    # the plain estimate rather than dividing by ~0.
    return share if share > 1e-6 else 1.0


def _weighted_var(resid: FloatArray, w: FloatArray) -> FloatArray:
    """Weighted variance (about the weighted mean) of each column; ``w`` sums to 1."""
    mean = w @ resid
    out: FloatArray = w @ (resid - mean) ** 2
    return out


def _statistical_factors(
    R: FloatArray,
    obs: npt.NDArray[np.bool_],
    counts: IntArray,
    w: FloatArray,
    *,
    n_factors: int,
    min_obs: int,
) -> tuple[FloatArray, list[str]]:
    """Principal-component factor returns (T×k) of the volatility-scaled, demeaned returns of the
    names with at least ``min_obs`` returns (missing days count as zero after demeaning)."""
    T = R.shape[0]
    use = counts >= min(min_obs, T)
    if not use.any():
        raise InputError(
            f"no name has {min(min_obs, T)} returns to build a statistical model", field="returns"
        )
    Z = R[:, use]
    mask = obs[:, use]
    mean = np.nansum(Z * w[:, None], axis=0) / np.maximum((w[:, None] * mask).sum(axis=0), 1e-300)
    Zc = np.where(mask, Z - mean, 0.0)
    vol = np.sqrt((Zc**2 * w[:, None]).sum(axis=0) / np.maximum((w[:, None] * mask).sum(0), 1e-300))
    Zs = Zc / np.where(vol > 0, vol, 1.0)
    # At most T − 2 components: the names' regressions on them need k + 2 returns.
    k = max(1, min(n_factors, T - 2, Zs.shape[1] - 1 if Zs.shape[1] > 1 else 1))
    U, S, _ = np.linalg.svd(Zs * np.sqrt(w)[:, None], full_matrices=False)
    # Undo the row weights so the factor returns are plain daily series; scale to the average
    # name's daily volatility so factor variances have return units.
    X = U[:, :k] * S[:k] / np.sqrt(w)[:, None] / np.sqrt(Zs.shape[1])
    X = X * float(np.median(vol))
    return X, [f"pc{j + 1}" for j in range(k)]
