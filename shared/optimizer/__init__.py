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
* **Clarabel settings**: iterative refinement off on the first attempt (−40% time, identical
  optima; the safe re-solve turns it on), one thread (prefork workers), gap tolerances 1e-10
  because objectives are small numbers (a 1e-8 absolute gap left weights 1e-6 off a bound).
"""
