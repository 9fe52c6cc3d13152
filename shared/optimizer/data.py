"""The numerical problem of one account's rebalance, in weights (fractions of NAV).

This is the seam between the use case (``shared.rebalance``: request → problem data, solution →
trades) and the optimizer (``shared.optimizer``: problem data → solution).  Everything here is
plain arrays so the direct Clarabel assembly and the CVXPY reference formulation read the same
input.  See DESIGN.md §2 for the model:

    min  λ_te·TE² + λ_tax·Σ_j τ_j u_j + κ·(Σu + Σβ + …) − αᵀw
    s.t. w = w₀ − A u + β  (+ covers / new shorts for long/short and market-neutral)
         Σw + w_c = net,  cash_min ≤ w_c ≤ cash_max,  w ≤ max_w,  TE ≤ te_max, tilts, …

Units: weights are fractions of NAV; ``lot_tax`` is USD of tax per USD of lot value sold
(``rate_j·(p − c_j)/p``, negative for a loss whose benefit is real, 0 for a loss that would be
washed); TE is annualised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shared.types import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]


def _empty_f() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


def _empty_i() -> IntArray:
    return np.zeros(0, dtype=np.int64)


#: Objective weight of ``Σ_f (B_fᵀw)²`` in a sleeve whose neutrality is relaxed to a band
#: (``ProblemData.neutral_band``): an exposure ``e`` bought for a gain ``g`` per unit (tax, at
#: most 0.41 per unit of weight sold; alpha, less) costs ``50·e²``, so the optimum keeps
#: ``e ≤ g/100 ≈ 0.004`` — the band is spent where neutrality cannot be met, not filled for
#: tax or alpha (diff review: without it 11 factors went from ~0 to ±0.05 and a sleeve moved
#: away from neutral on 5 of 19 banded days).
NEUTRAL_PENALTY = 50.0


@dataclass(frozen=True, kw_only=True)
class ProblemData:
    """Inputs of one solve.  n names, k factors, L long lots, S short lots."""

    symbols: tuple[str, ...]
    #: (n,) current weights; short positions are negative.
    w0: FloatArray
    #: (n,) benchmark weights (zeros for the market-neutral sleeve).
    w_bench: FloatArray
    #: (n, k) factor loadings, (k, k) factor covariance, (n,) specific variance; annualised.
    loadings: FloatArray
    factor_cov: FloatArray
    specific_var: FloatArray
    factor_names: tuple[str, ...]

    # --- long lots: u_j ∈ [0, lot_w_j] sold ---------------------------------------------
    #: (L,) name index of each long lot.
    lot_name: IntArray
    #: (L,) lot value as a weight: the upper bound of u_j.
    lot_w: FloatArray
    #: (L,) tax per unit weight sold (negative = harvest benefit).
    lot_tax: FloatArray
    #: (L,) realized gain per unit weight sold, (p − c)/p, for the realized-gain budget.
    lot_gain: FloatArray
    #: (L,) False: the lot may not be sold at all in this solve.
    lot_sellable: BoolArray

    # --- short lots (long/short, market-neutral): v_j ∈ [0, short_w_j] covered -------------
    short_name: IntArray = field(default_factory=_empty_i)
    short_w: FloatArray = field(default_factory=_empty_f)
    short_tax: FloatArray = field(default_factory=_empty_f)
    short_gain: FloatArray = field(default_factory=_empty_f)
    short_coverable: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))

    # --- per-name permissions and bounds ---------------------------------------------------
    #: (n,) False: no buys of the name (wash window, exclusion, harvest side of the pre-pass).
    buy_allowed: BoolArray
    #: (n,) False: no new shorts of the name.
    short_allowed: BoolArray
    #: (n,) cap on the post-trade weight (``c_max``; 0 for an excluded name).
    max_w: FloatArray
    #: (n,) floor on the post-trade weight (0 long-only; negative allows shorts).
    min_w: FloatArray

    # --- objective --------------------------------------------------------------------------
    lambda_te: float
    lambda_tax: float
    #: Trading cost per unit weight traded (bps / 1e4).
    kappa: float
    #: (n,) expected active return (annualised) maximised by the market-neutral sleeve.
    alpha: FloatArray | None = None

    # --- constraints ------------------------------------------------------------------------
    #: Annualised TE cap, or None.
    te_max: float | None = None
    #: (factor index, minimum active exposure) pairs: B_fᵀ(w − w_b) ≥ t_f.
    tilts: tuple[tuple[int, float], ...] = ()
    #: Market-neutral: every factor exposure Bᵀw pinned to zero.
    factor_neutral: bool = False
    #: With ``factor_neutral``: each exposure within ``±neutral_band`` instead of pinned at 0
    #: (the relaxation chain's ``neutral_band`` step, before ``hold``), the exposures' sum of
    #: squares charged at :data:`NEUTRAL_PENALTY` in the objective.
    neutral_band: float = 0.0
    #: Σw + w_c = net_w (1 for the long strategies, 0 for the market-neutral sleeve).
    net_w: float = 1.0
    cash_min_w: float = 0.0
    cash_max_w: float = 0.02
    #: Σ max(w, 0) ≤ long_max_w; Σ max(−w, 0) ≤ short_max_w; Σ|w| ≤ gross_max_w.
    long_max_w: float | None = None
    short_max_w: float | None = None
    gross_max_w: float | None = None
    #: The book's shape floors (long/short, e.g. 130/30 within a band): long side Σℓ ≥
    #: long_min_w, short side Σσ ≥ short_min_w.  With the maxima they pin the book's shape.
    long_min_w: float | None = None
    short_min_w: float | None = None
    #: Σ(sells + buys + covers + shorts) ≤ turnover_max_w: two-way turnover (an account's
    #: ``turnover_limit_w`` is one-way, half of it: the rebalance passes twice the limit).
    turnover_max_w: float | None = None
    #: Σ_j gain_j u_j (+ short covers) ≤ gain_budget_w.
    gain_budget_w: float | None = None

    #: Optional forced sales/covers (L,) / (S,): u_j ≥ lot_sell_min_j, v_j ≥ short_cover_min_j.
    #: Set by the constructive-sale guard of ``shared.optimizer.problem.solve`` when a name
    #: flips sides; a caller may set them too (e.g. a lot that must go today).
    lot_sell_min: FloatArray | None = None
    short_cover_min: FloatArray | None = None
    #: Flips a known feasible solution used, ``(to_short, to_long)`` per name: the guard tries
    #: them when its own choice of flips fails (the side refinement passes the first solve's).
    flip_hint: tuple[BoolArray, BoolArray] | None = None
    #: The objective of that feasible solution: when the guard's own flips end above it, the
    #: guard also solves with ``flip_hint``'s flips and keeps the better.
    flip_hint_objective: float | None = None
    #: The short-only names among those held neither long nor short, when a book with a shape
    #: floor gives each one direction (``shared.optimizer.problem.unheld_sides``): set, it
    #: replaces the benchmark-median rule (the rest of them long-only); the rebalance's
    #: direction search sets it to try other directions.
    unheld_short: BoolArray | None = None
    #: When the guard's first solve and its own flips are infeasible, search other flip sets
    #: (``shared.optimizer.problem._other_flips``): set by the rebalance for a relaxation
    #: level's own solves, whose infeasibility moves the chain on.
    search_flips: bool = False
    #: What a related solve showed about the TE cap (the same account's problem with other
    #: sides): ``True`` — it bound there, so the first attempt keeps the TE cone and refines
    #: (``shared.optimizer.problem.solve``); ``None`` — predicted from this problem alone.
    #: A hint for speed only: every attempt is checked the same way whatever it says.
    te_cap_binds: bool | None = None

    #: Account id, used only to name the account in error messages.
    account: str = ""

    @property
    def n(self) -> int:
        """Number of names."""
        return len(self.symbols)


@dataclass(frozen=True, kw_only=True)
class Solution:
    """What the optimizer decided, in weights, plus solver diagnostics."""

    #: (n,) post-trade weights.
    w: FloatArray
    #: (L,) weight sold from each long lot.
    sell: FloatArray
    #: (n,) weight bought of each name.
    buy: FloatArray
    #: (S,) weight covered of each short lot.
    cover: FloatArray
    #: (n,) weight of new shorts opened per name.
    short: FloatArray
    cash_w: float
    #: Annualised ex-ante TE of ``w`` against the benchmark.
    te: float
    objective: float
    solver: str
    status: str
    iterations: int
    #: The producing solver's own time (Clarabel's ``solve_time``: its setup and iterations).
    solver_ms: float
    #: Everything else ``solve()`` spent: validation, assembly, extraction, the check.
    setup_ms: float
    #: Every solve attempt in order, e.g. ``("clarabel: MaxIterations", "clarabel-safe: Solved")``;
    #: the last one produced the trades (its name is ``solver``).
    attempts: tuple[str, ...] = ()
    #: (k,) active factor exposures ``Bᵀ(w − w_b)`` of the solution.
    active_exposure: FloatArray = field(default_factory=_empty_f)
    #: The constructive-sale guard reached it only through flips it searched for, its own
    #: choice infeasible (``shared.optimizer.problem._other_flips``): a guessed start.
    searched_flips: bool = False
