"""The decision variables of DESIGN.md §2, laid out once for both compile targets.

Variables, all in weight units (fractions of NAV, which keeps the problem well scaled):

* ``u_j ∈ [0, lot_w_j]`` sold from long lot ``j`` (only for sellable lots),
* ``β_i ≥ 0`` bought of name ``i`` (only where buys are allowed),
* ``v_j ∈ [0, short_w_j]`` covered of short lot ``j`` (only for coverable short lots),
* ``s_i ≥ 0`` new shorts of name ``i`` (only where shorting is allowed),

and the post-trade weights ``w = w₀ − A u + β + A_s v − s`` (``A`` sums lots into names).  The
long side of a name is ``ℓ = ℓ₀ − A u + β ≥ 0`` and its short side ``σ = σ₀ − A_s v + s ≥ 0``,
so ``w = ℓ − σ`` and the long/short/gross limits are linear in ``(ℓ, σ)``: the split
``w = w⁺ − w⁻`` is carried by the lot variables, which keeps the model convex.

:class:`Layout` holds the permission masks as index arrays (a forbidden trade simply has no
variable in the direct Clarabel problem) plus the factor square root ``G`` with ``F = G Gᵀ``.
:class:`ConicContext` and :class:`CvxContext` are what terms and constraints compile against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.errors import InputError
from shared.optimizer.check import tracking_error
from shared.optimizer.conic import Affine, ConicBuilder
from shared.optimizer.data import ProblemData
from shared.risk_model import psd_violation
from shared.types import FloatArray, IntArray

#: |w₀ − (A·lot_w − A_s·short_w)| above this means the lots do not describe the holdings.
W0_TOLERANCE = 1e-6


def factor_sqrt(F: FloatArray, *, account: str | None = None) -> FloatArray:
    """A square root ``G`` with ``F = G Gᵀ`` (eigen-decomposition, so a PSD-singular ``F`` works).

    Raises:
        InputError: ``F`` is not symmetric positive semidefinite.
    """
    k = F.shape[0]
    if k == 0:
        return np.zeros((0, 0))
    key = (F.shape, F.tobytes())
    cached = _SQRT_CACHE.get(key)
    if cached is not None:  # one market's covariance serves every account of the night
        return cached
    G = _factor_sqrt(F, account=account)
    if len(_SQRT_CACHE) >= 8:
        _SQRT_CACHE.clear()
    _SQRT_CACHE[key] = G
    G.setflags(write=False)
    return G


#: factor_sqrt by the covariance's bytes (a handful of markets per process).
_SQRT_CACHE: dict[tuple[tuple[int, ...], bytes], FloatArray] = {}


def _factor_sqrt(F: FloatArray, *, account: str | None) -> FloatArray:
    Fs = 0.5 * (F + F.T)
    vals, vecs = np.linalg.eigh(Fs)
    low = psd_violation(Fs)  # the loader's and the rebalance's tolerance (PSD_TOL)
    if low is not None:
        raise InputError(
            f"factor covariance is not positive semidefinite (min eigenvalue {low:.3g})",
            account=account,
            field="factor_cov",
        )
    return np.asarray(vecs * np.sqrt(np.clip(vals, 0.0, None)), dtype=np.float64)


def _check_vec(data: ProblemData, name: str, arr: Any, size: int) -> None:
    a = np.asarray(arr)
    if a.shape != (size,):
        raise InputError(
            f"expected shape ({size},), got {a.shape}", account=data.account or None, field=name
        )
    if a.dtype.kind in "fc" and bool(np.isnan(a).any()):
        raise InputError("contains NaN", account=data.account or None, field=name)


def validate(data: ProblemData) -> None:
    """Check shapes, finiteness and the consistency of the holdings with the lots.

    Raises:
        InputError: naming the account and the offending field.
    """
    acct = data.account or None
    n, k, L, S = data.n, len(data.factor_names), len(data.lot_name), len(data.short_name)
    for name, size in (
        ("w0", n),
        ("w_bench", n),
        ("specific_var", n),
        ("buy_allowed", n),
        ("short_allowed", n),
        ("max_w", n),
        ("min_w", n),
        ("lot_w", L),
        ("lot_tax", L),
        ("lot_gain", L),
        ("lot_sellable", L),
        ("short_w", S),
        ("short_tax", S),
        ("short_gain", S),
        ("short_coverable", S),
    ):
        _check_vec(data, name, getattr(data, name), size)
    for name in ("lot_name", "short_name"):
        if not np.issubdtype(np.asarray(getattr(data, name)).dtype, np.integer):
            raise InputError("must be integer name indices", account=acct, field=name)
    if data.lot_name.shape != (L,) or (L and (data.lot_name.min() < 0 or data.lot_name.max() >= n)):
        raise InputError("lot name index out of range", account=acct, field="lot_name")
    if S and (data.short_name.min() < 0 or data.short_name.max() >= n):
        raise InputError("short lot name index out of range", account=acct, field="short_name")
    if data.loadings.shape != (n, k):
        raise InputError(f"expected shape ({n}, {k})", account=acct, field="loadings")
    if data.factor_cov.shape != (k, k):
        raise InputError(f"expected shape ({k}, {k})", account=acct, field="factor_cov")
    for name in ("w0", "w_bench", "specific_var", "lot_w", "lot_tax", "lot_gain", "loadings"):
        if not np.all(np.isfinite(getattr(data, name))):
            raise InputError("must be finite", account=acct, field=name)
    if np.any(data.specific_var < 0):
        raise InputError("specific variance must be ≥ 0", account=acct, field="specific_var")
    if np.any(data.lot_w < 0) or np.any(data.short_w < 0):
        raise InputError("lot weights must be ≥ 0", account=acct, field="lot_w")
    if np.any(data.min_w > data.max_w):
        i = int(np.flatnonzero(data.min_w > data.max_w)[0])
        raise InputError(f"min_w > max_w for {data.symbols[i]}", account=acct, field=f"min_w[{i}]")
    if data.alpha is not None:
        _check_vec(data, "alpha", data.alpha, n)
    for f, t in data.tilts:
        if not 0 <= f < k or not np.isfinite(t):
            raise InputError(f"bad tilt ({f}, {t})", account=acct, field="tilts")
    if data.cash_min_w > data.cash_max_w:
        raise InputError("cash_min_w > cash_max_w", account=acct, field="cash_min_w")
    for name in ("lambda_te", "lambda_tax", "kappa"):
        v = getattr(data, name)
        if not np.isfinite(v) or v < 0:
            raise InputError("must be finite and ≥ 0", account=acct, field=name)
    for name, upper, allowed in (
        ("lot_sell_min", data.lot_w, data.lot_sellable),
        ("short_cover_min", data.short_w, data.short_coverable),
    ):
        lo = getattr(data, name)
        if lo is None:
            continue
        _check_vec(data, name, lo, len(upper))
        bad = (lo < 0) | (lo > upper + 1e-12) | ((lo > 0) & ~allowed)
        if np.any(bad):
            j = int(np.flatnonzero(bad)[0])
            raise InputError(
                "a forced sale must be within its lot, and the lot tradable",
                account=acct,
                field=f"{name}[{j}]",
            )
    held = np.bincount(data.lot_name, weights=data.lot_w, minlength=n) - np.bincount(
        data.short_name, weights=data.short_w, minlength=n
    )
    gap = np.abs(held - data.w0)
    if gap.max(initial=0.0) > W0_TOLERANCE:
        i = int(np.argmax(gap))
        raise InputError(
            f"w0 of {data.symbols[i]} ({data.w0[i]:.8f}) differs from its lots ({held[i]:.8f}); "
            "every holding must be described by its lots",
            account=acct,
            field=f"w0[{i}]",
        )


#: Where a floor binds (a factor tilt, or a TE cap the current book is outside of), the weight
#: variables' unit is this many average names' weights (``BINDING_UNIT_NAMES / n``, at most 1); see
#: :func:`weight_unit`.
BINDING_UNIT_NAMES = 30


def weight_unit(data: ProblemData) -> float:
    """The unit of the buy, new-short and post-trade weight variables of the direct problem.

    ``min(1, 30/n)`` (:data:`BINDING_UNIT_NAMES` average names' weights) when the problem has a
    factor-tilt floor or its current weights are outside the TE budget (so the cap binds at the
    optimum), else 1.  Where such a limit binds, Clarabel's path is sensitive to this unit.
    Clarabel iterations summed over steady-state bench accounts (2026-11-25):

    | accounts | unit 1 | 1/n | 30/n | 50/n |
    | --- | --- | --- | --- | --- |
    | n=100, 12 tilted | 154 | 163 | 144 | 148 |
    | n=500, 14 tilted | 216 | 364 | 223 | 201 |
    | n=1000, 22 tilted | 657 | 614 | 365 | 379 |
    | n=3000, 8 tilted | 333 | 237 | 134 | 135 |

    (At n=500 the 30/n and 50/n columns are the nearest measured units, 0.05 and 0.1.)  Untilted
    books outside their budget, unit 1 → 30/n: n=1000, 1 of 18 accounts, 51 → 22 iterations;
    n=3000, 3 of 14, 39/65/69 → 24/19/22 (the n=3000 p95: 218–416 ms solves).  Every other
    untilted book is better in unit 1 (n=500, 16 accounts: 208 against 228 for 30/n), so the
    rule is per problem.  Long/short books and market-neutral sleeves outside their budget get
    the same units: random problems (``shared.optimizer.synthetic``, 8 seeds each, half tilted)
    took as many or fewer iterations (long/short 185 → 177 at n=200, 288 → 268 at n=1000;
    market-neutral 324 → 308 and 331 → 331).
    """
    if not data.n:
        return 1.0
    binding = bool(data.tilts) or (
        data.te_max is not None
        and tracking_error(data, np.asarray(data.w0, dtype=np.float64)) > data.te_max
    )
    return min(1.0, BINDING_UNIT_NAMES / data.n) if binding else 1.0


@dataclass(frozen=True, slots=True)
class Layout:
    """Which trades have a variable, and the static pieces every compile target needs."""

    #: Long lots with a sell variable, names with a buy variable, coverable short lots, names
    #: with a new-short variable.
    sell_idx: IntArray
    buy_idx: IntArray
    cover_idx: IntArray
    short_idx: IntArray
    #: (n,) long side ℓ₀ and short side σ₀ (positive) of the current holdings.
    long0: FloatArray
    short0: FloatArray
    #: (k, k) with F = G Gᵀ.
    G: FloatArray
    #: Variable scaling of the direct problem, per block ("sell", "buy", "cover", "short"):
    #: the solver's variable is trade / scale.  Sells and covers are fractions of their lot
    #: (lot weights are ~1e-4 at n=3000; scaling cut Clarabel's iterations 23 → 18).  With a
    #: factor-tilt floor or a binding TE cap, buys, new shorts and the post-trade weights are in
    #: units of ``30/n`` (30 average names' weights, at most 1), see :func:`weight_unit`.
    scales: dict[str, FloatArray]
    #: Unit of the post-trade weight variables ``w`` of the direct problem (``w = unit·x``).
    w_unit: float = 1.0

    @staticmethod
    def from_data(data: ProblemData) -> Layout:
        """Derive the layout (permission masks → index arrays) from the problem data."""
        n = data.n
        sell_idx = np.flatnonzero(data.lot_sellable & (data.lot_w > 0)).astype(np.int64)
        buy_idx = np.flatnonzero(data.buy_allowed).astype(np.int64)
        cover_idx = np.flatnonzero(data.short_coverable & (data.short_w > 0)).astype(np.int64)
        short_idx = np.flatnonzero(data.short_allowed).astype(np.int64)
        unit = weight_unit(data)
        scales = {
            "sell": np.asarray(data.lot_w[sell_idx], dtype=np.float64),
            "buy": np.full(len(buy_idx), unit),
            "cover": np.asarray(data.short_w[cover_idx], dtype=np.float64),
            "short": np.full(len(short_idx), unit),
        }
        return Layout(
            sell_idx=sell_idx,
            buy_idx=buy_idx,
            cover_idx=cover_idx,
            short_idx=short_idx,
            scales=scales,
            w_unit=unit,
            long0=np.bincount(data.lot_name, weights=data.lot_w, minlength=n).astype(np.float64),
            short0=np.bincount(data.short_name, weights=data.short_w, minlength=n).astype(
                np.float64
            ),
            G=factor_sqrt(
                np.asarray(data.factor_cov, dtype=np.float64), account=data.account or None
            ),
        )

    @property
    def has_short_side(self) -> bool:
        """Whether any short position exists or can be opened."""
        return bool(len(self.cover_idx) or len(self.short_idx) or np.any(self.short0 > 0))


@dataclass(slots=True)
class ConicContext:
    """Affine expressions of the direct Clarabel problem that pieces compile against."""

    data: ProblemData
    layout: Layout
    builder: ConicBuilder
    #: Trade variables (one row per *existing* variable; see ``Layout`` for their indices).
    sell: Affine
    buy: Affine
    cover: Affine
    short: Affine
    #: (n,) post-trade weights, long side and short side.
    w: Affine
    long_side: Affine
    short_side: Affine
    #: (k,) active factor exposures ``Bᵀ(w − w_b)``, a variable block, or None if unused.
    y: Affine | None


@dataclass(slots=True)
class CvxContext:
    """CVXPY variables and expressions of the reference formulation (full-size variables;
    forbidden trades are pinned to zero by :class:`~shared.optimizer.constraints.TradeBounds`)."""

    data: ProblemData
    layout: Layout
    sell: Any
    buy: Any
    cover: Any
    short: Any
    w: Any
    long_side: Any
    short_side: Any
