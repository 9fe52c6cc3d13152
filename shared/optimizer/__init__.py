"""The optimizer core: :class:`~shared.optimizer.data.ProblemData` → :class:`~shared.optimizer.
data.Solution` on Clarabel (DESIGN.md §2).

Modules (import from the module that defines a name; nothing is re-exported here):

* ``data`` — the seam with the use case (``shared.rebalance``): plain arrays in weights.
* ``model`` — validation, the variable layout (permission masks → which variables exist) and
  the compile contexts.
* ``conic`` — a tiny Clarabel problem builder (variable blocks, COO affine maps, cone rows).
* ``terms`` / ``constraints`` — the objective terms and constraints, each a small dataclass
  with a ``cvxpy`` (reference) and a ``conic`` (direct) compile method.
* ``problem`` — ``solve`` (direct Clarabel + fallback chain), ``solve_cvxpy`` (reference),
  ``assemble``, ``build_cvxpy``.
* ``check`` — the model-independent post-solve check (``check_solution``) and objective.
* ``synthetic`` — random realistic problems for tests and ``bench/solve_core.py``.

Choices made here (measured with ``bench/solve_core.py``, n=500 with ≈2,000 lots and k=18):

* **Direct assembly, not CVXPY.**  The CVXPY reference formulation is kept for tests and as a
  fallback; the production path builds ``(P, q, A, b, cones)`` itself.
* **Post-trade weights as variables** (``w − (w₀ − A u + β + A_s v − s) = 0``, one sparse row
  per name) rather than substituted: substitution made ``P`` dense per name and the exposure
  rows ``k × (lots + names)``; Clarabel took 55 ms instead of 23 ms at n=500.
* **Factor form only**: exposures ``y = Bᵀ(w − w_b)`` are ``k`` variables; ``P`` is
  ``blockdiag(2λF, 2λ·diag d)``; the TE cap is one SOC ``‖[Gᵀy; √d∘(w − w_b)]‖ ≤ te_max``
  with ``F = G Gᵀ``.  The only dense block is ``Bᵀ`` (k × n).
* **Forbidden trades have no variable** (wash-sale blocks, unsellable lots, no-short names).
* **Variable scaling**: sells and covers are fractions of their lot (iterations 23 → 18 at
  n=3000).  With a factor-tilt floor, buys, new shorts and the weights ``w`` are in units of
  ``1/n`` (``model.weight_unit``): at n=3000 tilted books took 55–68 iterations in weight
  units and 30–38 in ``1/n`` units (untilted ones are better in weight units: 17–21 vs 33–41).
* **Clarabel settings**: iterative refinement off on the first attempt (−40% time per
  iteration, identical optima) except where its absence was measured to cost a second solve
  (``problem.needs_refinement``): factor-neutral problems with a risk cap, and books of
  ≥ 1,000 names already outside their TE budget (the cap binds; at n=3000 both such accounts
  of 8 stopped ``AlmostSolved``: the last KKT solves lose accuracy, primal residual 3e-8 →
  1e-5 in one step).  Looser gap tolerances (1e-8) and more equilibration did not help.  One
  thread (prefork workers; also pin BLAS to one thread).  Gap tolerances 1e-9: objectives are
  small numbers, and Clarabel's default 1e-8 left a binding weight 1.3e-6 off its bound.
* **The re-solve chain**: ``clarabel`` → ``clarabel-refine`` (same settings, refinement on;
  ~1.2–1.45× the first attempt, run after ``AlmostSolved``/``InsufficientProgress``/
  ``NumericalError`` or a failed check, unless the first attempt already refined) →
  ``clarabel-safe`` (heavier regularisation and refinement, 3–5×) → CVXPY fallbacks.  Only
  ``Solved`` plus the independent check is ever accepted.
* **Long/short shape floors** (``long_min_w``, ``short_min_w``): a 130/30 book holds its
  shape within a band (``shared.rebalance.LONG_SHORT_BAND``); linear, so still convex.

* **Constructive-sale guard** (IRC §1259): no trade may leave a name held both long and short
  (a short against the box, or a buy against an open short); names flip sides only by
  selling (covering) every lot first.  Not convex in one solve: the first solve forbids the
  crossing trades, and a second ("flip") solve runs only when the first sold out a name that
  should change sides (see ``problem._guarded``): the long/short examples take one solve,
  market-neutral sleeves usually two (alpha changes sign); direct indexing one.  A flipped
  name whose new direction the flip solve leaves unused is released (its forced sale
  dropped) in a further solve (at most ``problem.MAX_FLIP_RELEASES``), so no position is
  closed only because it was allowed to flip.  With shape floors, names held neither way get
  one direction first (``problem.unheld_sides``), so the floors cannot be met by buying and
  shorting one name.

Measured with ``bench/solve_core.py`` (20 problems each, one BLAS thread, k=18).  The solve is
single-threaded, so process CPU time equals wall time on an idle core (15.4 vs 15.5 ms at
n=500 when the shared machine was quiet); under load from other users wall time inflated up
to 2×, so CPU time p50/p95 of the whole ``solve()`` is reported, with Clarabel's iterations:

=================  ==========  =================  ==========  ========================
strategy           n (lots)    solve() p50 / p95  iterations  solves
=================  ==========  =================  ==========  ========================
direct index       500 (2k)    15.4 / 16.7 ms     14          1
direct index       3000 (12k)  140 / 145 ms       17          1
long/short 130/30  500         39 / 47 ms         28          2 (guard)
long/short 130/30  3000        364 / 394 ms       39          2 (guard)
market-neutral     500         56 / 61 ms         36          2 (guard, refinement on)
market-neutral     3000        527 / 566 ms       53          2 (guard, refinement on)
=================  ==========  =================  ==========  ========================

Direct indexing: total / Clarabel's own ``solve_time`` = 1.29 at n=500, 1.14 at n=3000 (the
rest: validation, assembly, Clarabel's Python marshalling ~1.6 ms, extraction, the check).
Peak RSS of the benchmark process with n=3000 problems: 182 MB.  The CVXPY reference path
took ~420 ms at n=500.
"""
