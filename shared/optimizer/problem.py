"""ProblemData → Solution: the direct Clarabel path, the CVXPY reference, and the fallbacks.

:func:`solve` assembles the conic problem of DESIGN.md §2 directly (``shared.optimizer.conic``:
sparse COO → CSC once, no CVXPY canonicalisation, no n×n matrix) and calls Clarabel.  The
attempt chain (docs/rebalance.md §6a):

0. ``clarabel-uncapped`` — only when the TE cap is predicted slack
   (:func:`te_cap_predicted_slack`) and not known to bind (``ProblemData.te_cap_binds``):
   without the TE cone, kept only if its TE is within the cap;
1. ``clarabel`` — the caller's settings (default: :class:`SolveSettings`), refined from the
   start where the cap is known to bind (the hint, or the uncapped attempt over budget);
2. ``clarabel-refine`` — the same with iterative refinement, when ``clarabel`` stopped short of
   ``Solved`` without it;
3. ``clarabel-safe`` — more regularisation, longer iterative refinement, more equilibration and
   iterations;
4. ``cvxpy-clarabel`` — the independent reference formulation (:func:`solve_cvxpy`), which
   CVXPY canonicalises differently;
5. ``cvxpy-scs`` — another solver altogether (tight tolerances).

Every answer, whichever attempt produced it, must pass :func:`~shared.optimizer.check.
check_solution` (recomputed from the trades, independent of the model code) or it counts as a
failure: the chain never silently returns a worse portfolio.  ``Solution.solver`` names the
attempt that produced the trades and ``Solution.attempts`` lists every attempt.  A certificate
of infeasibility raises :class:`~shared.errors.Infeasible` naming the constraint families whose
removal alone makes the problem feasible; dual infeasibility raises
:class:`~shared.errors.Unbounded`; when every attempt fails, :class:`~shared.errors.SolverFailed`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import clarabel
import cvxpy
import numpy as np
import scipy.sparse as sp

from shared.errors import Infeasible, SolverFailed, Unbounded
from shared.optimizer.check import (
    CHECK_TOL,
    check_solution,
    long_short_sides,
    objective_value,
    tracking_error,
    weights_from_trades,
)
from shared.optimizer.conic import Affine, ConicBuilder, ConicProblem
from shared.optimizer.constraints import Constraint, FactorNeutral, model_constraints
from shared.optimizer.data import BoolArray, ProblemData, Solution
from shared.optimizer.model import ConicContext, CvxContext, Layout, validate
from shared.optimizer.terms import Alpha, TaxCost, Term, TrackingError, objective_terms
from shared.types import FloatArray

#: CVXPY's public API is untyped for mypy (no explicit re-exports); used as Any.
cp: Any = cvxpy

#: Tiny solver noise below this is clipped to the bound (weights).
CLIP_TOL = 1e-9

_INFEASIBLE = {"PrimalInfeasible", "AlmostPrimalInfeasible"}
_UNBOUNDED = {"DualInfeasible", "AlmostDualInfeasible"}
#: First-attempt outcomes a re-solve with iterative refinement can fix: an end-game that lost
#: accuracy, a numerical breakdown, or an answer that failed the independent check.
_REFINE_HELPS = {"AlmostSolved", "InsufficientProgress", "NumericalError", "Solved"}


@dataclass(frozen=True, kw_only=True)
class SolveSettings:
    """Knobs of the direct Clarabel solve and its fallback chain."""

    #: Clarabel's relative and absolute gap tolerances and feasibility tolerance.  Objectives
    #: are small numbers (weights × costs, 1e-5..1e-1) and Clarabel's relative gap divides by
    #: max(1, |objective|), so both gaps act as absolute ones: at Clarabel's default 1e-8 a
    #: binding weight stopped 1.3e-6 short of its bound (duals are ~1e-3); at 1e-9, ~1e-7.
    #: 1e-10 was tried and dropped: it stalled some market-neutral solves at AlmostSolved for
    #: digits nobody trades (1e-9 of NAV is $0.001 on $1M).
    tol_gap: float = 1e-9
    tol_gap_abs: float = 1e-9
    tol_feas: float = 1e-8
    max_iter: int = 200
    #: Clarabel's sparse LDL backend: "qdldl" or "faer".
    direct_solve_method: str = "qdldl"
    time_limit_s: float = float("inf")
    #: Clarabel's iterative refinement of each KKT solve.  ``None`` (auto): off, except for a
    #: factor-neutral problem with a TE cap.  Off, the solve is 40% faster (bench/solve_core.py,
    #: n=500: 25 → 14.5 ms; n=3000: 235 → 141 ms) with identical optima, and "Solved" is judged
    #: on the residuals whatever the linear-solve accuracy.  But a market-neutral sleeve whose
    #: risk cap binds (w_b = 0, so the SOC is total risk) stopped AlmostSolved in 17 of 60
    #: random cases without it (primal residual ~1e-6), and 0 of 60 with it.  The safe
    #: re-solve always turns it on, with more steps.
    iterative_refinement: bool | None = None
    #: Stopping tolerances of that refinement (outside the safe attempt).  Clarabel's defaults
    #: (1e-13 relative, 1e-12 absolute) are never met, so every KKT solve ran its full 10
    #: refinement steps and a refined solve cost 2× an unrefined one; at 1e-6 / 1e-8 most
    #: solves stop after one step (1.2–1.45× at n=3000) and the same accounts reach Solved.
    refine_reltol: float = 1e-6
    refine_abstol: float = 1e-8
    #: Post-trade weights as variables (with one defining equality per name) instead of
    #: substituting ``w = w₀ − A u + β`` into every row.  Measured faster (bench/solve_core.py).
    w_variables: bool = True
    #: First try without the TE cone when the cap is predicted slack
    #: (:func:`te_cap_predicted_slack`); off, every attempt carries the cone.
    uncapped_first: bool = True
    #: Re-solve with safe settings and the CVXPY fallbacks when Clarabel does not say Solved.
    fallback: bool = True
    #: Solvers of the CVXPY fallback, in order (installed ones only).
    fallback_solvers: tuple[str, ...] = ("CLARABEL", "SCS")
    #: Tolerance of the independent post-solve check (weights).
    check_tol: float = CHECK_TOL
    #: On infeasibility, re-solve without each constraint family to name the binding one.
    diagnose_infeasible: bool = True
    #: Never hold a name both long and short through a new trade (IRC §1259; see _guarded).
    constructive_sale_guard: bool = True


#: Iteration cap of the second ("safe") attempt, which also regularises harder, refines longer
#: and equilibrates more.
SAFE_MAX_ITER = 1000


#: Wall-clock deadline (``time.monotonic()``) of every solver attempt in the current context,
#: set by :func:`solve_deadline`; ``None``: no deadline.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "taxview_solve_deadline", default=None
)


@contextlib.contextmanager
def solve_deadline(seconds: float | None) -> Iterator[None]:
    """Bound the wall time of every solver attempt started inside the block: each gets at most
    what is left of ``seconds`` (Clarabel's ``time_limit``, SCS's ``time_limit_secs``), so a
    solve stuck in native code ends with a solver failure instead of running on until the
    worker's hard time limit kills the process (fleet fault audit: a Celery soft time limit
    reaches Python code only, and such an account cost four hard limits)."""
    token = _DEADLINE.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def deadline_passed() -> bool:
    """Whether the current :func:`solve_deadline` is spent (``False`` without one).  A caller
    that treats a failed solve as optional (the rebalance's flip and close passes) must not
    when this is true: the ticket would depend on how fast the host was (fleet fault audit: a
    stalled worker stored an ``ok`` ticket of 20 trades where its copy had 66)."""
    deadline = _DEADLINE.get()
    return deadline is not None and time.monotonic() >= deadline


def _time_left(limit: float) -> float:
    """``limit`` capped by what is left of the current deadline (at least 1 ms)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return limit
    return min(limit, max(deadline - time.monotonic(), 1e-3))


def _clarabel_settings(s: SolveSettings, *, safe: bool, refine: bool = False) -> Any:
    cs = clarabel.DefaultSettings()
    cs.verbose = False
    cs.tol_gap_abs = s.tol_gap_abs
    cs.tol_gap_rel = s.tol_gap
    cs.tol_feas = s.tol_feas
    cs.max_iter = s.max_iter
    cs.direct_solve_method = s.direct_solve_method
    cs.time_limit = _time_left(s.time_limit_s)
    cs.max_threads = 1
    cs.iterative_refinement_enable = (
        refine if s.iterative_refinement is None else s.iterative_refinement
    )
    cs.iterative_refinement_reltol = s.refine_reltol
    cs.iterative_refinement_abstol = s.refine_abstol
    if safe:
        cs.max_iter = max(s.max_iter, SAFE_MAX_ITER)
        cs.direct_solve_method = "qdldl"
        cs.static_regularization_constant = 1e-7
        cs.dynamic_regularization_eps = 1e-12
        cs.dynamic_regularization_delta = 1e-6
        cs.iterative_refinement_enable = True
        cs.iterative_refinement_max_iter = 50
        cs.iterative_refinement_reltol = 1e-14
        cs.iterative_refinement_abstol = 1e-14
        cs.iterative_refinement_stop_ratio = 2.0
        cs.equilibrate_enable = True
        cs.equilibrate_max_iter = 50
        cs.max_step_fraction = 0.95
    return cs


# ------------------------------------------------------------------------------------------
# Direct assembly
# ------------------------------------------------------------------------------------------


def _needs_exposures(terms: Sequence[Term], constraints: Sequence[Constraint]) -> bool:
    return any(isinstance(t, TrackingError) for t in terms) or any(
        c.family in ("tracking-error budget", "factor tilt", "factor neutrality")
        for c in constraints
    )


def assemble(
    data: ProblemData,
    layout: Layout,
    terms: Sequence[Term],
    constraints: Sequence[Constraint],
    *,
    w_variables: bool = True,
) -> ConicProblem:
    """Build Clarabel's ``(P, q, A, b, cones)`` for the given terms and constraints."""
    n, k = data.n, len(data.factor_names)
    b = ConicBuilder()
    o_u = b.var("sell", len(layout.sell_idx))
    o_b = b.var("buy", len(layout.buy_idx))
    o_v = b.var("cover", len(layout.cover_idx))
    o_s = b.var("short", len(layout.short_idx))
    # Variables are scaled (sell/cover as fractions of their lot): x = trade / scale.
    sc = layout.scales
    sell = Affine.identity(o_u, len(layout.sell_idx)).scale(sc["sell"])
    buy = Affine.identity(o_b, len(layout.buy_idx)).scale(sc["buy"])
    cover = Affine.identity(o_v, len(layout.cover_idx)).scale(sc["cover"])
    short = Affine.identity(o_s, len(layout.short_idx)).scale(sc["short"])
    # Long side moves by −A u + β, short side by −A_s v + s (A sums lots into names).
    d_long = Affine.scatter(n, data.lot_name[layout.sell_idx], o_u, -sc["sell"]) + Affine.scatter(
        n, layout.buy_idx, o_b, sc["buy"]
    )
    d_short = Affine.scatter(
        n, data.short_name[layout.cover_idx], o_v, -sc["cover"]
    ) + Affine.scatter(n, layout.short_idx, o_s, sc["short"])
    long_side = d_long.shift(layout.long0)
    short_side = d_short.shift(layout.short0)
    w_expr = (d_long - d_short).shift(np.asarray(data.w0, dtype=np.float64))
    if w_variables:
        o_w = b.var("w", n)
        w = Affine.identity(o_w, n).scale(layout.w_unit)
        # (Scaling these rows by 1/w_unit too was measured worse: 38 → 46 iterations.)
        b.eq(w - w_expr)
    else:
        w = w_expr
    y: Affine | None = None
    if any(isinstance(c, FactorNeutral) and c.band == 0 for c in constraints):
        # Bᵀw = 0 (added by FactorNeutral) makes the active exposure a constant, −Bᵀw_b: no
        # exposure variables, and the TE's factor part is a constant.  (Pinning variables y
        # by equality left Clarabel short of primal accuracy without iterative refinement.)
        # Within a band (the ``neutral_band`` relaxation) the exposures vary: variables.
        y = Affine.constant(-(np.asarray(data.w_bench) @ data.loadings))
    elif _needs_exposures(terms, constraints):
        o_y = b.var("y", k)
        y = Affine.identity(o_y, k)
        # y = Bᵀ(w − w_b): k rows, the only dense block (k·n), never n×n.
        b.eq(y - w.shift(-data.w_bench).left_mul(np.ascontiguousarray(data.loadings.T)))
    ctx = ConicContext(
        data=data,
        layout=layout,
        builder=b,
        sell=sell,
        buy=buy,
        cover=cover,
        short=short,
        w=w,
        long_side=long_side,
        short_side=short_side,
        y=y,
    )
    for term in terms:
        term.conic(ctx)
    for con in constraints:
        con.conic(ctx)
    return b.build()


def _extract(
    data: ProblemData, layout: Layout, prob: ConicProblem, x: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Full-size trade vectors from Clarabel's ``x``, tiny noise clipped to the bounds."""
    sell = np.zeros(len(data.lot_name))
    buy = np.zeros(data.n)
    cover = np.zeros(len(data.short_name))
    short = np.zeros(data.n)
    sc = layout.scales
    sell[layout.sell_idx] = prob.part(x, "sell") * sc["sell"]
    buy[layout.buy_idx] = prob.part(x, "buy") * sc["buy"]
    cover[layout.cover_idx] = prob.part(x, "cover") * sc["cover"]
    short[layout.short_idx] = prob.part(x, "short") * sc["short"]
    return _clip(data, sell, buy, cover, short)


def _clip(
    data: ProblemData, sell: FloatArray, buy: FloatArray, cover: FloatArray, short: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    for arr in (sell, buy, cover, short):
        arr[(arr < 0) & (arr > -CLIP_TOL)] = 0.0
    over = (sell > data.lot_w) & (sell < data.lot_w + CLIP_TOL)
    sell[over] = data.lot_w[over]
    if len(cover):
        over_c = (cover > data.short_w) & (cover < data.short_w + CLIP_TOL)
        cover[over_c] = data.short_w[over_c]
    return sell, buy, cover, short


def _make_solution(
    data: ProblemData,
    sell: FloatArray,
    buy: FloatArray,
    cover: FloatArray,
    short: FloatArray,
    *,
    solver: str,
    status: str,
    iterations: int,
    solver_ms: float,
    setup_ms: float,
    attempts: tuple[str, ...],
) -> Solution:
    w = weights_from_trades(data, sell, buy, cover, short)
    return Solution(
        w=w,
        sell=sell,
        buy=buy,
        cover=cover,
        short=short,
        cash_w=float(data.net_w - w.sum()),
        te=tracking_error(data, w),
        objective=objective_value(data, sell, buy, cover, short),
        solver=solver,
        status=status,
        iterations=iterations,
        solver_ms=solver_ms,
        setup_ms=setup_ms,
        attempts=attempts,
        active_exposure=np.asarray((w - data.w_bench) @ data.loadings, dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    name: str
    status: str
    solution: Solution | None
    note: str = ""

    def line(self) -> str:
        return f"{self.name}: {self.status}" + (f" ({self.note})" if self.note else "")


#: Smallest universe whose binding TE cap gets iterative refinement on the first attempt
#: (see :func:`needs_refinement`): the accuracy loss grows with the size of the risk cone.
REFINE_MIN_NAMES = 1000


def needs_refinement(data: ProblemData, constraints: Sequence[Constraint]) -> bool:
    """Whether the first Clarabel attempt should run with iterative refinement (auto mode).

    Refinement costs 1.2–1.45× per iteration (with :class:`SolveSettings`' refinement
    tolerances), so it is on only where its absence was measured to cost more: a problem
    whose risk cap will bind at the optimum.  Without refinement the KKT solves lose accuracy
    in the last iterations (primal residual 3e-8 → 1e-5 in one step) and Clarabel stops at
    ``AlmostSolved``, which then costs a second solve:

    * a factor-neutral sleeve with a risk cap (17 of 60 random cases without, 0 with);
    * a large book (``n ≥`` :data:`REFINE_MIN_NAMES`) already outside its TE budget
      (``TE(w₀) > te_max``), so the cap binds: 2 of 8 steady-state accounts at n=3000, both
      AlmostSolved without refinement, Solved with it.  At n=500 no first attempt stopped
      AlmostSolved (30 of 30 accounts) and refinement only cost time (CPU p50 15 → 20 ms).
    """
    if not any(c.family == "tracking-error budget" for c in constraints) or data.te_max is None:
        return False
    if data.factor_neutral:
        return True
    if data.n < REFINE_MIN_NAMES:
        return False
    return tracking_error(data, np.asarray(data.w0, dtype=np.float64)) > data.te_max


#: Name of the first attempt when the TE cap is predicted slack (:func:`te_cap_predicted_slack`):
#: Clarabel without the TE cone.
UNCAPPED = "clarabel-uncapped"


def te_cap_predicted_slack(
    data: ProblemData, terms: Sequence[Term], constraints: Sequence[Constraint]
) -> bool:
    """Whether the TE cap is expected not to bind, so the first attempt leaves its cone out.

    The cap's second-order cone has ``n + k + 1`` rows and makes every Clarabel iteration
    ~30% dearer (one n=500 account: 15.5 → 10.2 ms for 13 → 12 iterations), yet on most
    nights the tracking-error *penalty* keeps a book well inside its budget (ex-ante TE against
    a 2% budget on the steady-state bench books: 0.3–0.7% taxable, 1.2–1.4% IRA).  A convex
    problem's optimum without a constraint that happens to satisfy it is the optimum with it,
    so the uncapped answer is kept when its TE is within the cap (checked exactly, then by the
    independent check) and re-solved with the cone otherwise.  Predicted slack when every one holds:

    * the problem has a TE budget, and a TE penalty (``λ_te > 0``) that pulls towards the
      benchmark;
    * the current weights are inside the budget, or no trade costs tax (an IRA/Roth: nothing
      but trading cost holds the book away from the benchmark).  A taxable book outside its
      budget is where the cap binds (see :func:`needs_refinement`);
    * no factor neutrality and no alpha: a sleeve that maximises alpha runs up to its risk cap.
    """
    if data.te_max is None or data.factor_neutral:
        return False
    if not any(c.family == "tracking-error budget" for c in constraints):
        return False
    if not any(isinstance(t, TrackingError) and t.weight > 0 for t in terms):
        return False
    if any(isinstance(t, Alpha) for t in terms):
        return False
    taxed = any(isinstance(t, TaxCost) and t.weight != 0 for t in terms) and (
        bool(np.any(data.lot_tax != 0)) or bool(np.any(data.short_tax != 0))
    )
    if not taxed:
        return True
    return tracking_error(data, np.asarray(data.w0, dtype=np.float64)) <= data.te_max


def _run_clarabel(
    data: ProblemData,
    layout: Layout,
    terms: Sequence[Term],
    constraints: Sequence[Constraint],
    settings: SolveSettings,
    *,
    safe: bool,
    name: str,
    refine: bool | None = None,
) -> _Attempt:
    t0 = time.perf_counter()
    prob = assemble(data, layout, terms, constraints, w_variables=settings.w_variables)
    if refine is None:
        refine = needs_refinement(data, constraints)
    cs = _clarabel_settings(settings, safe=safe, refine=refine)  # a bug here must surface
    try:
        try:
            solver = clarabel.DefaultSolver(*prob.clarabel_data(), prob.cones, cs)
        except (TypeError, AttributeError):
            # A wrapper that no longer reads the array form: the documented scipy/numpy form.
            solver = clarabel.DefaultSolver(prob.P, prob.q, prob.A, prob.b, prob.cones, cs)
        t1 = time.perf_counter()
        res = solver.solve()
    except Exception as exc:  # a solver error is one failed attempt, not the end of the chain
        return _Attempt(name, "SolverError", None, f"{type(exc).__name__}: {exc}"[:120])
    status = str(res.status)
    if status != "Solved":
        return _Attempt(name, status, None)
    sell, buy, cover, short = _extract(data, layout, prob, np.asarray(res.x))
    sol = _make_solution(
        data,
        sell,
        buy,
        cover,
        short,
        solver=name,
        status=status,
        iterations=int(res.iterations),
        solver_ms=float(res.solve_time) * 1e3,
        setup_ms=(t1 - t0) * 1e3,
        attempts=(),
    )
    return _Attempt(name, status, sol)


# ------------------------------------------------------------------------------------------
# CVXPY reference
# ------------------------------------------------------------------------------------------


def build_cvxpy(
    data: ProblemData,
    terms: Sequence[Term] | None = None,
    constraints: Sequence[Constraint] | None = None,
) -> tuple[cp.Problem, CvxContext]:
    """The reference formulation as a ``cp.Problem`` (full-size variables; masks as
    constraints), checked DCP with the offending piece named."""
    layout = Layout.from_data(data)
    terms = objective_terms(data) if terms is None else terms
    constraints = model_constraints(data) if constraints is None else constraints
    n, L, S = data.n, len(data.lot_name), len(data.short_name)
    sell = cp.Variable(L, name="sell")
    buy = cp.Variable(n, name="buy")
    cover = cp.Variable(S, name="cover") if S else None
    short = cp.Variable(n, name="short")
    A = sp.csr_array((np.ones(L), (data.lot_name, np.arange(L))), shape=(n, L))
    long_side = layout.long0 - A @ sell + buy
    short_side = layout.short0 + short
    if cover is not None:
        As = sp.csr_array((np.ones(S), (data.short_name, np.arange(S))), shape=(n, S))
        short_side = short_side - As @ cover
    w = data.w0 - A @ sell + buy - short
    if cover is not None:
        w = w + As @ cover
    ctx = CvxContext(
        data=data,
        layout=layout,
        sell=sell,
        buy=buy,
        cover=cover if cover is not None else np.zeros(0),
        short=short,
        w=w,
        long_side=long_side,
        short_side=short_side,
    )
    objective: Any = 0
    for term in terms:
        expr = term.cvxpy(ctx)
        if not expr.is_convex():
            raise ValueError(f"objective term {type(term).__name__} is not convex (DCP)")
        objective = objective + expr
    cons: list[Any] = []
    for con in constraints:
        parts = con.cvxpy(ctx)
        for c in parts:
            if not c.is_dcp():
                raise ValueError(f"constraint {type(con).__name__} is not DCP")
        cons += parts
    return cp.Problem(cp.Minimize(objective), cons), ctx


class _QuietStdout:
    """What a solver prints to stdout is discarded, so it never mixes with the outcome JSON of
    ``taxview rebalance`` (market-neutral audit: SCS printed "ERROR: could not determine problem
    status." before the JSON) nor with its one-line reason on stderr (fuzz audit: moved to
    stderr, it came before the reason).  The outcome records each solver attempt and its status.
    Both levels are silenced: file descriptor 1 (C code's ``printf``) and ``sys.stdout`` (SCS's
    binding prints through ``PySys_WriteStdout``).

    Reentrant and thread-safe: the first holder silences them, the last one puts them back (two
    overlapping redirects that each saved and restored fd 1 left it redirected for good).  A
    process without a usable stdout (``sys.stdout`` ``None``, fd 1 closed) is left as it is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved_fd: int | None = None
        self._saved_stdout: Any = None
        self._sink: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._move()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._restore()

    def _move(self) -> None:
        self._saved_fd, self._saved_stdout, self._sink = None, None, None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stdout.flush()
        try:
            saved = os.dup(1)
        except OSError:
            return
        try:
            sink = open(os.devnull, "w")  # noqa: SIM115 (closed in _restore)
        except OSError:
            os.close(saved)
            return
        try:
            os.dup2(sink.fileno(), 1)
        except OSError:
            os.close(saved)
            sink.close()
            return
        self._saved_fd, self._sink = saved, sink
        if sys.stdout is not None:
            self._saved_stdout, sys.stdout = sys.stdout, sink

    def _restore(self) -> None:
        if self._saved_fd is None:
            return
        if self._saved_stdout is not None:
            sys.stdout = self._saved_stdout
        os.dup2(self._saved_fd, 1)
        os.close(self._saved_fd)
        self._sink.close()
        self._saved_fd, self._saved_stdout, self._sink = None, None, None


_quiet_stdout = _QuietStdout()


def _cvxpy_attempt(data: ProblemData, solver: str) -> _Attempt:
    name = f"cvxpy-{solver.lower()}"
    if solver not in cp.installed_solvers():
        return _Attempt(name, "NotInstalled", None)
    t0 = time.perf_counter()
    prob, ctx = build_cvxpy(data)
    opts: dict[str, Any] = {}
    if solver == "CLARABEL":
        # The same accuracy as the direct path (objectives are small numbers; see
        # SolveSettings.tol_gap), so the two can be compared at 1e-6.
        opts = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10}
        if _DEADLINE.get() is not None:
            opts["time_limit"] = _time_left(float("inf"))
    elif solver == "SCS":
        # First-order method: tight tolerances so its answer can pass the 1e-6 check, and a
        # time limit so a last resort never stalls the worker.
        opts = {
            "eps_abs": 1e-8,
            "eps_rel": 1e-8,
            "max_iters": 50_000,
            "time_limit_secs": _time_left(60.0),
        }
    try:
        with _quiet_stdout():
            prob.solve(solver=solver, **opts)
    except cp.error.SolverError as exc:
        return _Attempt(name, "SolverError", None, str(exc).splitlines()[0][:80])
    except (ValueError, ArithmeticError, MemoryError) as exc:
        # A solver's own error is one failed attempt, as in the Clarabel path (fuzz audit:
        # SCS's "ScsWork allocation error!" on a loading of 1e300 was a traceback).
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:80]
        return _Attempt(name, "SolverError", None, reason)
    t1 = time.perf_counter()
    status = str(prob.status)
    if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return _Attempt(name, "PrimalInfeasible", None)
    if status in (cp.UNBOUNDED, cp.UNBOUNDED_INACCURATE):
        return _Attempt(name, "DualInfeasible", None)
    if status != cp.OPTIMAL:
        return _Attempt(name, status, None)

    def val(v: Any, size: int) -> FloatArray:
        if size == 0:
            return np.zeros(0)
        return np.asarray(v.value, dtype=np.float64).copy()

    sell, buy, cover, short = _clip(
        data,
        val(ctx.sell, len(data.lot_name)),
        val(ctx.buy, data.n),
        val(ctx.cover, len(data.short_name)),
        val(ctx.short, data.n),
    )
    stats = prob.solver_stats
    solve_s = stats.solve_time if stats and stats.solve_time is not None else t1 - t0
    sol = _make_solution(
        data,
        sell,
        buy,
        cover,
        short,
        solver=name,
        status=status,
        iterations=int(stats.num_iters or 0) if stats else 0,
        solver_ms=float(solve_s) * 1e3,
        setup_ms=max((t1 - t0) - float(solve_s), 0.0) * 1e3,
        attempts=(),
    )
    return _Attempt(name, "Solved", sol)


def _cvxpy_once(data: ProblemData, solver: str) -> Solution:
    att = _cvxpy_attempt(data, solver)
    acct = data.account or None
    if att.status == "PrimalInfeasible":
        raise Infeasible(f"{att.name}: the constraints cannot all hold", account=acct)
    if att.status == "DualInfeasible":
        raise Unbounded(f"{att.name}: objective unbounded below", account=acct)
    if att.solution is None:
        raise SolverFailed(f"{att.line()}", account=acct)
    bad = check_solution(data, att.solution)
    if bad:
        raise SolverFailed(f"{att.name}: answer fails the check: {bad[0]}", account=acct)
    return replace(att.solution, attempts=(att.line(),))


def solve_cvxpy(
    data: ProblemData, *, solver: str = "CLARABEL", constructive_sale_guard: bool = True
) -> Solution:
    """Solve the reference CVXPY formulation (tests, and the fallback of :func:`solve`).

    The constructive-sale guard is the same as :func:`solve`'s, so the two are comparable.

    Raises:
        InputError: malformed data (names the account and field).
        Infeasible: the constraints cannot all hold.
        Unbounded: the objective is unbounded below.
        SolverFailed: the solver stopped without an optimal answer, or its answer fails the
            independent check.
    """
    validate(data)
    if constructive_sale_guard:
        return _guarded(data, lambda d, _diagnose: _cvxpy_once(d, solver))
    return _cvxpy_once(data, solver)


# ------------------------------------------------------------------------------------------
# The chain
# ------------------------------------------------------------------------------------------


def _diagnose(
    data: ProblemData,
    layout: Layout,
    terms: Sequence[Term],
    constraints: Sequence[Constraint],
    settings: SolveSettings,
) -> list[str]:
    """Constraint families whose removal alone makes the problem feasible.

    Each probe is a pure feasibility problem (no objective, loose tolerances), one per family
    present, relaxable families first (tilt, TE, budgets) — a handful of cheap solves, run only
    once the problem is known to be infeasible.
    """
    families: list[str] = []
    for c in constraints:
        if c.family not in families and c.family != "trade permissions":
            families.append(c.family)
    binding: list[str] = []
    quick = replace(settings, max_iter=100, tol_gap=1e-6, tol_gap_abs=1e-6, tol_feas=1e-7)
    for fam in families:
        rest = [c for c in constraints if c.family != fam]
        att = _run_clarabel(data, layout, (), rest, quick, safe=False, name="diagnose")
        if att.status in ("Solved", "AlmostSolved"):
            binding.append(fam)
    return binding


def _solve_chain(data: ProblemData, settings: SolveSettings) -> Solution:
    """One problem through the attempt chain (validated data; no constructive-sale guard).

    Raises:
        Infeasible, Unbounded, SolverFailed: as :func:`solve`.
    """
    t0 = time.perf_counter()
    layout = Layout.from_data(data)
    terms = objective_terms(data)
    constraints = model_constraints(data)
    acct = data.account or None
    attempts: list[_Attempt] = []

    def finish(att: _Attempt) -> Solution | None:
        if att.solution is None:
            attempts.append(att)
            return None
        bad = check_solution(data, att.solution, tol=settings.check_tol)
        if bad:
            attempts.append(replace(att, status="CheckFailed", note=bad[0]))
            return None
        attempts.append(att)
        sol = att.solution
        # setup_ms: everything solve() spent outside the producing solver's own solve time
        # (validation, assembly, marshalling, extraction, the check, and failed attempts).
        total_ms = (time.perf_counter() - t0) * 1e3
        return replace(
            sol,
            attempts=tuple(a.line() for a in attempts),
            setup_ms=max(total_ms - sol.solver_ms, 0.0),
        )

    def out_of_time() -> None:
        # The caller's deadline (solve_deadline) is spent: no further attempt is started.
        deadline = _DEADLINE.get()
        if deadline is not None and time.monotonic() >= deadline:
            done = "; ".join(a.line() for a in attempts) or "no attempt started"
            raise SolverFailed(f"the solve's time ran out ({done})", account=acct)

    def infeasible() -> Infeasible:
        hint = ""
        if settings.diagnose_infeasible:
            binding = _diagnose(data, layout, terms, constraints, settings)
            if binding:
                hint = "; likely binding: " + ", ".join(binding) + " (relax one of them)"
        return Infeasible(f"the constraints cannot all hold{hint}", account=acct)

    out_of_time()
    # Refinement on the first attempt with the cone: where it was measured to pay
    # (needs_refinement), and where the cap is known to bind — a related solve's hint, or the
    # uncapped attempt below over budget.  Example requests of 50–150 names, whose cap binds,
    # stopped AlmostSolved / InsufficientProgress without it in 549 of 587 first attempts (and
    # were Solved with it in 519 of 549), so each solve there cost two or three attempts.
    capped = any(c.family == "tracking-error budget" for c in constraints)
    binds = capped and data.te_cap_binds is True
    if settings.uncapped_first and not binds and te_cap_predicted_slack(data, terms, constraints):
        # A convex problem's optimum without the TE cone that meets the cap is the optimum
        # with it (feasible there, and optimal on a larger set).
        free = [c for c in constraints if c.family != "tracking-error budget"]
        att = _run_clarabel(data, layout, terms, free, settings, safe=False, name=UNCAPPED)
        te_max = float(data.te_max) if data.te_max is not None else np.inf
        if att.solution is not None and not att.solution.te <= te_max:
            att = replace(
                att,
                status="OverBudget",
                solution=None,
                note=f"TE {att.solution.te:.4%} > cap {te_max:.4%}; re-solved with the TE cone",
            )
            binds = True
        sol = finish(att)
        if sol is not None:
            return sol
    out_of_time()
    refined = needs_refinement(data, constraints) or binds
    att = _run_clarabel(
        data, layout, terms, constraints, settings, safe=False, name="clarabel", refine=refined
    )
    sol = finish(att)
    if sol is not None:
        return sol
    if att.status == "PrimalInfeasible":
        raise infeasible()
    if att.status == "DualInfeasible":
        raise Unbounded("objective unbounded below: a bound is missing", account=acct)
    if (
        settings.fallback
        and att.status in _REFINE_HELPS
        and settings.iterative_refinement is None
        and not refined
    ):
        # The cheap re-solve: the same settings with iterative refinement (what the first
        # attempt lacked when its end-game lost accuracy), ~1.2–1.45× the first attempt's
        # time instead of the safe settings' 3–5×.  Skipped when the first attempt already refined
        # or ran out of iterations (refinement does not buy iterations).
        out_of_time()
        att = _run_clarabel(
            data,
            layout,
            terms,
            constraints,
            settings,
            safe=False,
            name="clarabel-refine",
            refine=True,
        )
        sol = finish(att)
        if sol is not None:
            return sol
        if att.status == "PrimalInfeasible":
            raise infeasible()
    if settings.fallback:
        out_of_time()
        att = _run_clarabel(
            data, layout, terms, constraints, settings, safe=True, name="clarabel-safe"
        )
        sol = finish(att)
        if sol is not None:
            return sol
        if att.status in _INFEASIBLE:
            raise infeasible()
        if att.status in _UNBOUNDED:
            raise Unbounded("objective unbounded below: a bound is missing", account=acct)
        for solver in settings.fallback_solvers:
            out_of_time()
            att = _cvxpy_attempt(data, solver)
            sol = finish(att)
            if sol is not None:
                return sol
            if att.status == "PrimalInfeasible" and solver == "CLARABEL":
                raise infeasible()
    raise SolverFailed(
        "no attempt produced a trustworthy answer: " + "; ".join(a.line() for a in attempts),
        account=acct,
    )


# ------------------------------------------------------------------------------------------
# Constructive-sale guard (IRC §1259) and the public entry points
# ------------------------------------------------------------------------------------------


def _per_name(data: ProblemData) -> tuple[FloatArray, FloatArray, BoolArray, BoolArray]:
    """Long and short weight held per name, and whether every long (short) lot is tradable."""
    n = data.n
    long0 = np.bincount(data.lot_name, weights=data.lot_w, minlength=n)
    short0 = np.bincount(data.short_name, weights=data.short_w, minlength=n)
    stuck_long = np.bincount(data.lot_name, weights=(~data.lot_sellable).astype(float), minlength=n)
    stuck_short = np.bincount(
        data.short_name, weights=(~data.short_coverable).astype(float), minlength=n
    )
    return (
        long0.astype(np.float64),
        short0.astype(np.float64),
        np.asarray(stuck_long == 0, dtype=np.bool_),
        np.asarray(stuck_short == 0, dtype=np.bool_),
    )


def _flip(data: ProblemData, to_short: BoolArray, to_long: BoolArray) -> ProblemData:
    """Let ``to_short`` names go short by selling every long lot first (no buys), and
    ``to_long`` names go long by covering every short lot first (no new shorts)."""
    sell_min = (
        np.zeros(len(data.lot_name)) if data.lot_sell_min is None else data.lot_sell_min.copy()
    )
    forced = to_short[data.lot_name]
    sell_min[forced] = data.lot_w[forced]
    cover_min = (
        np.zeros(len(data.short_name))
        if data.short_cover_min is None
        else data.short_cover_min.copy()
    )
    forced_c = to_long[data.short_name]
    cover_min[forced_c] = data.short_w[forced_c]
    return replace(
        data,
        short_allowed=(data.short_allowed | to_short) & ~to_long,
        buy_allowed=(data.buy_allowed | to_long) & ~to_short,
        lot_sell_min=sell_min,
        short_cover_min=cover_min,
    )


def unheld_sides(
    data: ProblemData, long0: FloatArray, short0: FloatArray
) -> tuple[BoolArray, BoolArray]:
    """One direction for each name held neither long nor short, when the book has a shape
    floor: (short-only names, long-only names).

    A shape floor (``short_min_w``, ``long_min_w``: a 130/30 book's 29% of shorts) rewards
    the short *side* ``Σσ``, and a name both bought and shorted in one ticket adds to ``Σσ``
    while its weight stays put: a box, a constructive sale (IRC §1259(c)(1)(A)) that fakes
    the shape.  So before the solve each tradable unheld name gets one direction: short-only
    when its alpha is negative (when the problem has an alpha term: only a market-neutral
    sleeve does, and it has no shape floor, so in practice never), else when its benchmark
    weight is at most the median of those names — against the benchmark a short of a small
    name costs the least tracking error (its active weight ``−w_b − s`` starts smallest).
    Names held long (short) are handled by the rest of the guard.  Without floors no side is
    fixed: a box then only costs trading cost and is never optimal.
    """
    n = data.n
    none = np.zeros(n, dtype=np.bool_)
    if data.short_min_w is None and data.long_min_w is None:
        return none, none
    unheld = (long0 <= 0) & (short0 <= 0) & data.buy_allowed & data.short_allowed
    if not unheld.any():
        return none, none
    # A sleeve's alpha signal; not the pull ``exclusions_over_time`` puts on excluded names
    # held long (shared.rebalance), which says nothing about unheld names.
    if data.unheld_short is not None:  # a caller's choice (the direction search's trials)
        short_pick = np.asarray(data.unheld_short, dtype=np.bool_)
    elif data.factor_neutral and data.alpha is not None and np.any(data.alpha != 0):
        short_pick = np.asarray(data.alpha < 0, dtype=np.bool_)
    else:
        wb = np.asarray(data.w_bench, dtype=np.float64)
        short_pick = np.asarray(wb <= np.median(wb[unheld]), dtype=np.bool_)
    side_short = unheld & short_pick
    return side_short, unheld & ~side_short


#: Rounds of the constructive-sale guard's release step (flipped names that opened nothing).
MAX_FLIP_RELEASES = 3


def _guarded(data: ProblemData, once: Callable[[ProblemData, bool], Solution]) -> Solution:
    """Solve without ever holding a name both long and short through a new trade.

    A new short while long lots are held (a short against the box), or a buy while short lots
    are open, is a constructive sale of the appreciated position (IRC §1259(c)(1)(A), (D)): the
    model would book a deferral the tax code does not give.  No convex constraint says "short
    only once every lot is sold", so the guard works in two solves:

    1. forbid new shorts in names held long and buys in names held short (convex, legal);
    2. names whose lots that solve sold (covered) entirely may then flip: their lots are forced
       sold (covered) and the other direction is opened.  The first solution is feasible for
       the second problem, so the second is never worse.

    If step 1 is infeasible (e.g. a tilt needs shorts of names held long), the unguarded
    solution picks the names to flip (those it leaves net short while shorting them, and vice
    versa); when those flips are infeasible too, or it picked none, a few other flip sets are
    solved and the best kept (:func:`_other_flips`).  A caller's hint (``data.flip_hint``) is
    tried either way.  ``Solution.attempts`` records each step.
    """
    tol = CHECK_TOL
    long0, short0, all_long_sellable, all_short_coverable = _per_name(data)
    block_short = _block(data, long0, short=True)
    block_buy = _block(data, short0, short=False)
    side_short, side_long = unheld_sides(data, long0, short0)
    if not (block_short.any() or block_buy.any() or side_short.any() or side_long.any()):
        return once(data, True)
    d1 = replace(
        data,
        short_allowed=data.short_allowed & ~block_short & ~side_long,
        buy_allowed=data.buy_allowed & ~block_buy & ~side_short,
    )
    notes = [
        f"guard (IRC §1259): no new shorts in {int(block_short.sum())} names held long, "
        f"no buys in {int(block_buy.sum())} names held short"
    ]
    if side_short.any() or side_long.any():
        notes.append(
            f"guard: unheld names sided: {int(side_short.sum())} short-only, "
            f"{int(side_long.sum())} long-only"
        )
    first: Solution | None
    free: Solution | None = None
    try:
        first = once(d1, False)  # no infeasibility diagnosis here: the unguarded solve follows
    except Infeasible:
        first = None
    if first is not None:
        long_after, short_after = long_short_sides(
            d1, first.sell, first.buy, first.cover, first.short
        )
        # Only names whose every lot may be sold (covered): a lot the sides keep (a loss
        # lot of a buy-side name) is still held, however small its weight (fuzz audit: at a
        # $4.5e9 NAV, 109 shares long were under the tolerance and the name was shorted).
        to_short = block_short & all_long_sellable & (long_after <= tol) & (first.buy <= tol)
        to_long = block_buy & all_short_coverable & (short_after <= tol) & (first.short <= tol)
    else:
        free = once(data, True)  # infeasible here too: the problem is infeasible, not the guard
        notes.append("guard: infeasible without flips; the unguarded solve picks the flips")
        to_short = block_short & all_long_sellable & (free.short > tol) & (free.w < -tol)
        to_long = block_buy & all_short_coverable & (free.buy > tol) & (free.w > tol)
    if not to_short.any() and not to_long.any() and first is not None:
        done = [first, *_hint_flips(data, d1, once, (to_short, to_long), best=first, notes=notes)]
        best = min(range(len(done)), key=lambda i: (done[i].objective, -i))
        return _merge([s for i, s in enumerate(done) if i != best] + [done[best]], notes)
    second: Solution | None = None
    searched = False
    failure: Infeasible | SolverFailed | None = None
    if to_short.any() or to_long.any():
        notes.append(
            f"guard: {int(to_short.sum())} names flip to short, {int(to_long.sum())} to long"
        )
        try:
            second = once(_flip(d1, to_short, to_long), first is None)
        except (Infeasible, SolverFailed) as exc:
            if first is not None and not _out_of_time(exc):
                # The first solution is feasible for the flip problem, so this is numerical
                # trouble: keep the first (legal) solution and say so.
                notes.append(
                    f"guard: the flip solve failed ({type(exc).__name__}); first solve kept"
                )
                return _merge([first], notes)
            failure = exc
    if second is None:
        assert free is not None  # first is None here: the unguarded solve ran
        found = None
        if data.flip_hint is not None:  # an optional trial: its hint alone, as it names
            found = _hint_alone(data, d1, once, notes)
        elif data.search_flips and data.n <= OTHER_FLIPS_MAX_NAMES:
            found = _other_flips(data, d1, once, free=free, chosen=(to_short, to_long), notes=notes)
            searched = found is not None
        if found is None:
            if failure is not None:
                raise failure
            raise Infeasible(
                "only holding a name both long and short (a constructive sale, IRC §1259) "
                "would satisfy the constraints",
                account=data.account or None,
            )
        (to_short, to_long), second = found
    done = [first, second] if first is not None else [second]
    # A flip forces every lot of the name sold (covered) even if the flip solve then opens
    # nothing in the new direction: a name sold out in the first solve only because it could
    # not flip there is then closed for nothing, realizing its gains (audit: a 50-name sleeve
    # paid 0.9% of NAV more tax).  Release those names (back to the first problem's rules: no
    # forced sale, no new direction) and solve again, until every remaining flip is used (at
    # most MAX_FLIP_RELEASES times); each solution is feasible for the next problem, so the
    # answer can only improve.
    done += _release_unused(d1, once, (to_short, to_long), second, notes)
    # The hint is tried whether or not the guard's first solve was feasible (refsolve audit: a
    # direction trial whose first solve was infeasible never solved the flip it named).
    ahead = min(done, key=lambda sol: sol.objective)
    done += _hint_flips(data, d1, once, (to_short, to_long), best=ahead, notes=notes)
    best = min(range(len(done)), key=lambda i: (done[i].objective, -i))
    if best != len(done) - 1:
        kept = "first" if best == 0 and first is not None else f"solve {best + 1}"
        notes.append(f"guard: the {kept} solution kept (the later ones did not improve)")
    order = [s for i, s in enumerate(done) if i != best] + [done[best]]
    return replace(_merge(order, notes), searched_flips=searched)


#: Flip sets the guard solves at most when its first solve is infeasible and the unguarded
#: solve's own flips are too (:func:`_other_flips`), on books of at most
#: :data:`OTHER_FLIPS_MAX_NAMES` names (each set is one more solve; a 2000-name long/short
#: book with a tight TE budget spent 38 s of CPU on sets that could not help and ran out of
#: its deadline: review of the fifth session of 2026-12-07).
MAX_OTHER_FLIPS = 16
OTHER_FLIPS_MAX_NAMES = 300


def _hint_alone(
    data: ProblemData,
    d1: ProblemData,
    once: Callable[[ProblemData, bool], Solution],
    notes: list[str],
) -> tuple[tuple[BoolArray, BoolArray], Solution] | None:
    """The caller's hint (``data.flip_hint``) as the guard's flips when its own failed: an
    optional trial (a side flip, a direction trial) names its flips, and trying other sets for
    each trial multiplied the solves (a 40-name sleeve: 79 → 686)."""
    assert data.flip_hint is not None
    long0, short0, all_long_sellable, all_short_coverable = _per_name(data)
    to_short = _block(data, long0, short=True) & all_long_sellable & data.flip_hint[0]
    to_long = _block(data, short0, short=False) & all_short_coverable & data.flip_hint[1]
    if not (to_short.any() or to_long.any()):
        return None
    notes.append(
        f"guard: those flips infeasible; the hint's {int(to_short.sum())} to short, "
        f"{int(to_long.sum())} to long"
    )
    try:
        return (to_short, to_long), once(_flip(d1, to_short, to_long), False)
    except Infeasible:
        return None
    except SolverFailed:
        if deadline_passed():
            raise
        return None


def _other_flips(
    data: ProblemData,
    d1: ProblemData,
    once: Callable[[ProblemData, bool], Solution],
    *,
    free: Solution,
    chosen: tuple[BoolArray, BoolArray],
    notes: list[str],
) -> tuple[tuple[BoolArray, BoolArray], Solution] | None:
    """Other flips when the guard's first solve is infeasible and the flips the unguarded solve
    picked are too (or it picked none); ``None`` when none of them is feasible.

    The unguarded solve may hold a name long and short at once (a box) where the book's shape
    floors ask for more short (long) weight than the names allowed to open it can carry, and
    its net directions then say little: the refsolve audit found 130/30 books relaxed to no TE
    budget (a 10-name book at 14.5% TE) although one held name going short met an 8% cap — the
    unguarded choice had also flipped both held shorts long.  Tried in order, one solve each,
    at most :data:`MAX_OTHER_FLIPS`: the unguarded choice's shorts alone and its longs alone,
    then single names, each alone and added to the unguarded choice (a 16-name book met 1.5×
    its budget instead of 2× with one more name short beside the choice): those the unguarded
    solve opened the other direction in, most first, then the others, the cheapest to close
    first.  The best feasible one is kept.  Only where the caller asks (``search_flips``: a
    relaxation level's own solves, whose infeasibility moves the chain on) and names no flips
    of its own (an optional trial's ``flip_hint``: :func:`_hint_alone`), on books of at most
    :data:`OTHER_FLIPS_MAX_NAMES` names.

    Raises:
        SolverFailed: a solve failed with the solve's deadline spent (the account's failure,
            not an infeasible flip).
    """
    long0, short0, all_long_sellable, all_short_coverable = _per_name(data)
    can_short = _block(data, long0, short=True) & all_long_sellable
    can_long = _block(data, short0, short=False) & all_short_coverable
    none = np.zeros(data.n, dtype=np.bool_)
    sets: list[tuple[BoolArray, BoolArray]] = []

    def add(to_short: BoolArray, to_long: BoolArray) -> None:
        to_short, to_long = to_short & can_short, to_long & can_long
        if not (to_short.any() or to_long.any()):
            return
        for a, b in (chosen, *sets):
            if np.array_equal(a, to_short) and np.array_equal(b, to_long):
                return
        sets.append((to_short, to_long))

    add(chosen[0], none)
    add(none, chosen[1])
    opened_short = np.where(can_short, free.short, 0.0)
    opened_long = np.where(can_long, free.buy, 0.0)
    order = sorted(
        [(-float(opened_short[i]), int(i), True) for i in np.flatnonzero(opened_short > CHECK_TOL)]
        + [(-float(opened_long[i]), int(i), False) for i in np.flatnonzero(opened_long > CHECK_TOL)]
    )
    # Then every other name that may flip, the cheapest to close first (the tax its whole
    # position would realize: the refsolve audit's 10-name book met its cap once a 0.8% long
    # position the unguarded solve left alone went short).
    close_long = np.bincount(data.lot_name, weights=data.lot_tax * data.lot_w, minlength=data.n)
    close_short = np.bincount(
        data.short_name, weights=data.short_tax * data.short_w, minlength=data.n
    )
    order += sorted(
        [(float(close_long[i]), int(i), True) for i in np.flatnonzero(can_short)]
        + [(float(close_short[i]), int(i), False) for i in np.flatnonzero(can_long)]
    )
    for _, i, short in order:
        one = none.copy()
        one[i] = True
        if short:
            add(one, none)
            add(chosen[0] | one, chosen[1])
        else:
            add(none, one)
            add(chosen[0], chosen[1] | one)
    best: tuple[tuple[BoolArray, BoolArray], Solution] | None = None
    tried = sets[:MAX_OTHER_FLIPS]
    for to_short, to_long in tried:
        try:
            sol = once(_flip(d1, to_short, to_long), False)
        except Infeasible:
            continue
        except SolverFailed:
            if deadline_passed():
                raise
            continue
        if best is None or sol.objective < best[1].objective:
            best = ((to_short, to_long), sol)
    if best is not None:
        (to_short, to_long), _ = best
        notes.append(
            f"guard: those flips infeasible; of {len(tried)} other flip sets the best kept: "
            f"{int(to_short.sum())} to short, {int(to_long.sum())} to long"
        )
    return best


def _hint_flips(
    data: ProblemData,
    d1: ProblemData,
    once: Callable[[ProblemData, bool], Solution],
    chosen: tuple[BoolArray, BoolArray],
    *,
    best: Solution,
    notes: list[str],
) -> list[Solution]:
    """The guarded problem solved with a caller's flips (``data.flip_hint``: the side
    refinement's previous solution, feasible for this problem with those flips) when the
    guard's ``best`` ends above that solution's objective and the flips differ from the ones
    the guard chose; ``[]`` otherwise or when that solve fails.

    The guard's own choice reads the first solve, and on a re-solve it can pick flips that
    end worse than the solution the refinement started from, which then stopped refining
    (market-neutral audit: 2.0e-3 of NAV left on a 100-name sleeve).  Only then: trying the
    hint whenever it differs steered a long/short book's later rounds to a worse end.
    """
    bound = data.flip_hint_objective
    if data.flip_hint is None or bound is None or best.objective <= bound:
        return []
    long0, short0, all_long_sellable, all_short_coverable = _per_name(data)
    hint_short = _block(data, long0, short=True) & all_long_sellable & data.flip_hint[0]
    hint_long = _block(data, short0, short=False) & all_short_coverable & data.flip_hint[1]
    if not (hint_short.any() or hint_long.any()) or (
        np.array_equal(hint_short, chosen[0]) and np.array_equal(hint_long, chosen[1])
    ):
        return []
    notes.append(
        f"guard: the hint's flips tried too: {int(hint_short.sum())} to short, "
        f"{int(hint_long.sum())} to long"
    )
    try:
        hinted = once(_flip(d1, hint_short, hint_long), False)
    except (Infeasible, SolverFailed) as exc:
        if _out_of_time(exc):
            raise
        notes.append(f"guard: the hint's flip solve failed ({type(exc).__name__})")
        return []
    # The hint's flips can be left unused as the guard's own can (a 100-name sleeve's flip
    # trials ended 5e-4–7e-4 of NAV above the optimum for the flips they used): released too.
    return [hinted, *_release_unused(d1, once, (hint_short, hint_long), hinted, notes)]


def _release_unused(
    d1: ProblemData,
    once: Callable[[ProblemData, bool], Solution],
    flips: tuple[BoolArray, BoolArray],
    cur: Solution,
    notes: list[str],
) -> list[Solution]:
    """The solves that release flipped names ``cur`` opened nothing in (back to the first
    problem's rules: no forced sale, no new direction), repeated until every remaining flip
    is used (at most :data:`MAX_FLIP_RELEASES` times); each solution is feasible for the next
    problem, so each can only improve on the one before."""
    to_short, to_long = flips
    tol = CHECK_TOL
    out: list[Solution] = []
    for _ in range(MAX_FLIP_RELEASES):
        unused = (to_short & (cur.short <= tol)) | (to_long & (cur.buy <= tol))
        if not unused.any():
            break
        notes.append(f"guard: {int(unused.sum())} flipped names opened nothing; released")
        to_short, to_long = to_short & ~unused, to_long & ~unused
        try:
            cur = once(_flip(d1, to_short, to_long), False)
        except (Infeasible, SolverFailed) as exc:
            if _out_of_time(exc):
                raise
            notes.append(f"guard: the release solve failed ({type(exc).__name__})")
            break
        out.append(cur)
    return out


def _out_of_time(exc: Exception) -> bool:
    """Whether a failed solve of the guard's optional steps (the hint, a release, a flip solve
    after a feasible first) is the account's failure: a solver failure with the solve's deadline
    spent, so the ticket never depends on how fast the host was (review of the fifth session of
    2026-12-07; :func:`deadline_passed`)."""
    return isinstance(exc, SolverFailed) and deadline_passed()


def _block(data: ProblemData, held: FloatArray, *, short: bool) -> BoolArray:
    """Names the guard's first solve closes: new shorts of names held long (``short``), or
    buys of names held short."""
    allowed = data.short_allowed if short else data.buy_allowed
    out: BoolArray = allowed & (held > 0)
    return out


def _merge(sols: list[Solution], notes: list[str]) -> Solution:
    """The last solution, with every step's attempts, the notes, and summed solver time."""
    attempts: list[str] = []
    for sol in sols[:-1]:
        attempts += list(sol.attempts)
    attempts += notes
    attempts += list(sols[-1].attempts)
    return replace(
        sols[-1],
        attempts=tuple(attempts),
        solver_ms=sum(s.solver_ms for s in sols),
        iterations=sum(s.iterations for s in sols),
    )


def solve(data: ProblemData, *, settings: SolveSettings | None = None) -> Solution:
    """Solve one account's rebalance on the direct Clarabel path, with fallbacks.

    Args:
        data: the problem in weights (see :class:`~shared.optimizer.data.ProblemData`).
        settings: solver knobs; ``None`` for the defaults.

    Returns:
        The solution; ``solver`` names the attempt that produced it, ``attempts`` all of them
        (and the constructive-sale guard's steps), ``solver_ms`` is Clarabel's own solve time
        (summed over the guard's solves) and ``setup_ms`` everything else.

    Raises:
        InputError: malformed data (names the account and field).
        Infeasible: the constraints cannot all hold (the message names the likely binding
            constraint families).
        Unbounded: the objective is unbounded below (a missing bound).
        SolverFailed: every attempt failed or produced an answer that fails the check.
    """
    settings = settings or SolveSettings()
    t0 = time.perf_counter()
    validate(data)
    if settings.constructive_sale_guard:
        sol = _guarded(
            data,
            lambda d, diagnose: _solve_chain(
                d, replace(settings, diagnose_infeasible=settings.diagnose_infeasible and diagnose)
            ),
        )
    else:
        sol = _solve_chain(data, settings)
    total_ms = (time.perf_counter() - t0) * 1e3
    return replace(sol, setup_ms=max(total_ms - sol.solver_ms, 0.0))
