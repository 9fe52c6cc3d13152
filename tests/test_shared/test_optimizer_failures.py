"""Failure handling: infeasible and unbounded problems, solver failures, fallbacks, bad input."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from shared.errors import Infeasible, InputError, SolverFailed, Unbounded
from shared.optimizer import problem
from shared.optimizer.check import check_solution
from shared.optimizer.problem import SolveSettings, solve, solve_cvxpy
from shared.optimizer.synthetic import random_problem


def test_a_tilt_out_of_reach_under_the_te_cap_is_infeasible_and_names_both_families():
    # Feasible with either the 3% TE cap or the 0.8σ quality tilt, not with both.
    data = replace(random_problem(40, k=6, seed=0, te_max=0.03), tilts=((1, 0.8),))
    assert solve(replace(data, tilts=())).te <= 0.03 + 1e-9
    assert solve(replace(data, te_max=None)).active_exposure[1] >= 0.8 - 1e-6
    with pytest.raises(Infeasible) as exc:
        solve(data)
    msg = str(exc.value)
    assert "SYN-direct-index-40-0" in msg
    assert "factor tilt" in msg and "tracking-error budget" in msg
    assert exc.value.account == "SYN-direct-index-40-0"


def test_the_reference_path_agrees_that_the_problem_is_infeasible():
    data = replace(random_problem(40, k=6, seed=0, te_max=0.03), tilts=((1, 0.8),))
    with pytest.raises(Infeasible):
        solve_cvxpy(data)


def test_an_unsellable_lot_above_its_cap_is_infeasible_and_blames_the_name_bounds():
    data = random_problem(40, k=6, seed=2)
    j = 0
    i = int(data.lot_name[j])
    sellable = data.lot_sellable.copy()
    sellable[data.lot_name == i] = False
    max_w = data.max_w.copy()
    max_w[i] = 0.5 * data.lot_w[j]
    with pytest.raises(Infeasible, match="name bounds"):
        solve(replace(data, lot_sellable=sellable, max_w=max_w))


def test_a_sleeve_without_risk_or_bounds_is_unbounded():
    data = random_problem(20, k=3, strategy="market-neutral", seed=0, te_max=None)
    data = replace(
        data,
        lambda_te=0.0,
        gross_max_w=None,
        max_w=np.full(data.n, np.inf),
        min_w=np.full(data.n, -np.inf),
    )
    with pytest.raises(Unbounded):
        solve(data)


def test_a_solver_stopped_after_one_iteration_is_re_solved_with_safe_settings():
    data = random_problem(60, k=6, seed=1)
    sol = solve(data, settings=SolveSettings(max_iter=1))
    assert sol.solver == "clarabel-safe"
    assert sol.attempts == ("clarabel: MaxIterations", "clarabel-safe: Solved")
    assert check_solution(data, sol) == []
    assert sol.objective == pytest.approx(solve(data).objective, rel=1e-6)


def _failing_clarabel(monkeypatch, fail: set[str]):
    real = problem._run_clarabel

    def fake(data, layout, terms, constraints, settings, *, safe, name, **kw):
        if name in fail:
            return problem._Attempt(name, "NumericalError", None)
        return real(data, layout, terms, constraints, settings, safe=safe, name=name, **kw)

    monkeypatch.setattr(problem, "_run_clarabel", fake)


def test_when_every_clarabel_attempt_fails_the_cvxpy_fallback_produces_the_trades(monkeypatch):
    data = random_problem(30, k=4, seed=2)
    expected = solve(data)
    _failing_clarabel(
        monkeypatch, {"clarabel-uncapped", "clarabel", "clarabel-refine", "clarabel-safe"}
    )
    sol = solve(data)
    assert sol.solver == "cvxpy-clarabel"
    assert sol.attempts == (
        "clarabel-uncapped: NumericalError",
        "clarabel: NumericalError",
        "clarabel-refine: NumericalError",
        "clarabel-safe: NumericalError",
        "cvxpy-clarabel: Solved",
    )
    assert np.max(np.abs(sol.w - expected.w)) <= 1e-5


def test_scs_is_the_last_resort_and_its_answer_must_still_pass_the_check(monkeypatch):
    data = random_problem(15, k=3, seed=3, te_max=None)
    _failing_clarabel(monkeypatch, {"clarabel", "clarabel-refine", "clarabel-safe"})
    sol = solve(data, settings=SolveSettings(fallback_solvers=("SCS",)))
    assert sol.solver == "cvxpy-scs"
    assert sol.attempts[-1] == "cvxpy-scs: Solved"
    assert check_solution(data, sol) == []


def test_every_attempt_failing_raises_solver_failed_listing_them(monkeypatch):
    data = random_problem(15, k=3, seed=4, te_max=None)
    _failing_clarabel(monkeypatch, {"clarabel", "clarabel-refine", "clarabel-safe"})
    with pytest.raises(SolverFailed) as exc:
        solve(data, settings=SolveSettings(fallback_solvers=()))
    assert "clarabel: NumericalError" in str(exc.value)
    assert "clarabel-refine: NumericalError" in str(exc.value)
    assert "clarabel-safe: NumericalError" in str(exc.value)


def test_without_fallback_a_failed_solve_is_not_retried(monkeypatch):
    data = random_problem(15, k=3, seed=4, te_max=None)
    with pytest.raises(SolverFailed, match="clarabel: MaxIterations"):
        solve(data, settings=SolveSettings(max_iter=1, fallback=False))


@pytest.mark.parametrize("uncapped_first", [True, False])
def test_an_answer_that_fails_the_independent_check_is_never_returned(monkeypatch, uncapped_first):
    data = random_problem(30, k=4, seed=5)
    if uncapped_first:  # a budget the book is inside of: the uncapped attempt runs first
        data = replace(data, te_max=1.5 * problem.tracking_error(data, data.w0))
    real = problem._run_clarabel

    def corrupt(data, layout, terms, constraints, settings, *, safe, name, **kw):
        att = real(data, layout, terms, constraints, settings, safe=safe, name=name, **kw)
        if name in {"clarabel-uncapped", "clarabel"} and att.solution is not None:
            bad = replace(att.solution, buy=att.solution.buy + 0.05, w=att.solution.w + 0.05)
            return replace(att, solution=bad)
        return att

    monkeypatch.setattr(problem, "_run_clarabel", corrupt)
    sol = solve(data)
    # The next attempt produces the trades: the refinement re-solve, or the safe one when the
    # first attempt already refined (a book outside its TE budget).
    assert sol.solver in {"clarabel-refine", "clarabel-safe"}
    failed = ("clarabel-uncapped", "clarabel") if uncapped_first else ("clarabel",)
    assert [a.split(": ")[0] for a in sol.attempts[:-1]] == list(failed)
    assert all(": CheckFailed" in a for a in sol.attempts[:-1])
    assert sol.attempts[-1] == f"{sol.solver}: Solved"
    assert check_solution(data, sol) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"w0": np.zeros(3)}, "w0"),
        ({"lot_w": np.array([0.33, 0.33])}, "lot_w"),
        ({"specific_var": np.array([0.04, np.nan, 0.04])}, "specific_var"),
        ({"min_w": np.array([0.0, 0.7, 0.0])}, "min_w[1]"),
        ({"tilts": ((5, 0.1),)}, "tilts"),
        ({"factor_cov": np.array([[-0.04]])}, "factor_cov"),
        ({"kappa": -1.0}, "kappa"),
    ],
)
def test_bad_problem_data_raises_an_input_error_naming_the_account_and_field(change, field):
    from shared.optimizer.synthetic import random_problem as _rp

    base = _rp(3, k=1, seed=0, te_max=None)
    base = replace(
        base,
        w0=np.array([0.33, 0.33, 0.33]),
        lot_name=np.array([0, 1, 2]),
        lot_w=np.array([0.33, 0.33, 0.33]),
        lot_tax=np.zeros(3),
        lot_gain=np.zeros(3),
        lot_sellable=np.ones(3, dtype=bool),
        min_w=np.zeros(3),
        max_w=np.full(3, 0.6),
        account="ACC-1",
    )
    solve(base)  # the base problem itself is fine
    with pytest.raises(InputError) as exc:
        solve(replace(base, **change))
    assert exc.value.field is not None and exc.value.field.startswith(field)
    assert exc.value.account == "ACC-1"


def test_an_almost_solved_answer_is_not_accepted_but_re_solved_with_refinement():
    # A market-neutral sleeve whose risk cap binds: without iterative refinement Clarabel stops
    # "AlmostSolved" (primal residual ~1e-6); the safe attempt refines and solves it.  Which
    # unsolved status it stops with depends on the CPU's floating-point paths: AlmostSolved on
    # one machine of this kind, InsufficientProgress on another (2026-12-06); neither is
    # accepted (the exact AlmostSolved path is pinned with a fake solver below).
    data = random_problem(67, k=0, strategy="market-neutral", seed=98418, te_max=0.05)
    plain = SolveSettings(iterative_refinement=False, constructive_sale_guard=False)
    sol = solve(data, settings=plain)
    first, *rest = sol.attempts
    assert first in {"clarabel: AlmostSolved", "clarabel: InsufficientProgress"}
    assert rest == ["clarabel-safe: Solved"]
    assert sol.solver == "clarabel-safe"
    auto = solve(data, settings=SolveSettings(constructive_sale_guard=False))
    assert auto.attempts == ("clarabel: Solved",)
    assert np.max(np.abs(sol.w - auto.w)) <= 1e-6


def test_an_almost_solved_first_attempt_is_re_solved_with_refinement_before_the_safe_settings(
    monkeypatch,
):
    data = random_problem(40, k=4, seed=7, te_max=None)
    expected = solve(data)
    real = problem._run_clarabel

    def first_almost(data, layout, terms, constraints, settings, *, safe, name, **kw):
        att = real(data, layout, terms, constraints, settings, safe=safe, name=name, **kw)
        if name == "clarabel":
            return problem._Attempt(name, "AlmostSolved", None)
        return att

    monkeypatch.setattr(problem, "_run_clarabel", first_almost)
    sol = solve(data)
    assert sol.attempts == ("clarabel: AlmostSolved", "clarabel-refine: Solved")
    assert check_solution(data, sol) == []
    assert np.max(np.abs(sol.w - expected.w)) <= 1e-6


def test_a_large_book_outside_its_te_budget_is_solved_with_refinement_on_the_first_attempt(
    monkeypatch,
):
    from shared.optimizer.check import tracking_error
    from shared.optimizer.constraints import model_constraints

    data = random_problem(40, k=4, seed=7)
    inside = replace(data, te_max=tracking_error(data, data.w0) * 1.5)
    outside = replace(data, te_max=tracking_error(data, data.w0) * 0.5)
    # Below the size threshold refinement is off (measured: it only cost time at n=500).
    assert not problem.needs_refinement(outside, model_constraints(outside))
    monkeypatch.setattr(problem, "REFINE_MIN_NAMES", 40)
    assert not problem.needs_refinement(inside, model_constraints(inside))
    assert problem.needs_refinement(outside, model_constraints(outside))
    sol = solve(outside)
    assert sol.te <= outside.te_max + 1e-7
    assert sol.attempts == ("clarabel: Solved",)


def test_a_book_inside_its_te_budget_is_solved_without_the_te_cone_at_the_capped_optimum():
    data = random_problem(40, k=4, seed=7)
    terms, constraints = problem.objective_terms(data), problem.model_constraints(data)
    assert problem.te_cap_predicted_slack(data, terms, constraints)
    sol = solve(data)
    capped = solve(data, settings=SolveSettings(uncapped_first=False))
    assert sol.solver == "clarabel-uncapped" and sol.attempts == ("clarabel-uncapped: Solved",)
    assert capped.solver == "clarabel" and capped.attempts == ("clarabel: Solved",)
    assert data.te_max is not None and sol.te <= data.te_max
    assert check_solution(data, sol) == []
    assert sol.objective == pytest.approx(capped.objective, rel=1e-7, abs=1e-10)
    assert np.max(np.abs(sol.w - capped.w)) <= 1e-6


def test_an_uncapped_answer_over_the_te_budget_is_re_solved_with_the_te_cone():
    # Inside its budget tonight (TE 1.98%), but a weak TE penalty lets the harvest carry the
    # uncapped optimum to 2.8%: the prediction misses, the cone is added, the cap holds.
    data = replace(random_problem(40, k=4, seed=5), lambda_te=0.001, te_max=0.025)
    assert problem.tracking_error(data, data.w0) < 0.025
    sol = solve(data)
    assert sol.attempts[0].startswith("clarabel-uncapped: OverBudget (TE 2.8")
    assert sol.solver in {"clarabel", "clarabel-safe"}  # the cone attempt refined already
    assert sol.attempts[-1] == f"{sol.solver}: Solved"
    assert sol.te <= 0.025 + 1e-8
    assert check_solution(data, sol) == []


def test_the_te_cap_is_predicted_to_bind_for_alpha_sleeves_and_taxable_books_outside_it():
    def slack(data):
        terms = problem.objective_terms(data)
        return problem.te_cap_predicted_slack(data, terms, problem.model_constraints(data))

    data = random_problem(40, k=4, seed=7)
    te0 = problem.tracking_error(data, data.w0)
    assert slack(replace(data, te_max=1.2 * te0))
    assert not slack(replace(data, te_max=0.8 * te0))  # taxable, outside: the cap binds
    untaxed = replace(data, lot_tax=np.zeros_like(data.lot_tax), te_max=0.8 * te0)
    assert slack(untaxed)  # an IRA outside its budget: only trading cost holds it there
    assert not slack(replace(data, te_max=None))
    assert not slack(replace(data, te_max=1.2 * te0, lambda_te=0.0))
    assert not slack(random_problem(40, k=4, strategy="market-neutral", seed=7))


def test_the_check_names_the_name_furthest_over_its_cap_not_the_first():
    # Market-neutral audit: a held sleeve's breach named a name at 0.112 over a 0.05 cap while
    # another sat at 0.1946.
    data = random_problem(12, k=3, seed=1, te_max=None)
    sol = solve(data)
    first, far = np.argsort(sol.w)[-2:]  # two held names; the later-listed check is the test
    first, far = min(first, far), max(first, far)
    cap = np.array(data.max_w, dtype=np.float64)
    cap[first] = sol.w[first] - 0.02  # the first offender, far over
    cap[far] = sol.w[far] - 0.001  # a later one, just over
    lines = check_solution(replace(data, max_w=cap), sol)
    assert any(line.startswith(f"w > max_w: {data.symbols[first]} ") for line in lines), lines
    cap[first], cap[far] = sol.w[first] - 0.001, sol.w[far] - 0.02
    lines = check_solution(replace(data, max_w=cap), sol)
    assert any(line.startswith(f"w > max_w: {data.symbols[far]} ") for line in lines), lines


def test_what_a_fallback_solver_prints_reaches_neither_stdout_nor_stderr(monkeypatch, capfd):
    # Market-neutral audit: SCS printed "ERROR: could not determine problem status." (through
    # the Python binding's stdout and C's printf) before `taxview rebalance`'s outcome JSON;
    # moved to stderr, it came before the command's one-line reason (fuzz audit).
    import os

    import cvxpy as cp

    def noisy_solve(self, *args, **kwargs):
        print("ERROR: from the binding")
        os.write(1, b"ERROR: from C\n")
        raise cp.error.SolverError("Solver 'SCS' failed.")

    monkeypatch.setattr(cp.Problem, "solve", noisy_solve)
    attempt = problem._cvxpy_attempt(random_problem(10, k=3, seed=2, te_max=None), "SCS")
    assert attempt.status == "SolverError"
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_spent_deadline_ends_every_solver_attempt_at_once_with_a_solver_failure():
    # Fleet fault audit: a Celery soft time limit cannot interrupt Clarabel's native code, so a
    # stuck solve ran on until the hard limit killed the process, once per delivery.
    import time

    data = random_problem(60, k=4, seed=3, te_max=0.03)
    with problem.solve_deadline(60.0):
        assert check_solution(data, solve(data)) == []  # room enough: the usual answer
    started = time.monotonic()
    with problem.solve_deadline(0.0), pytest.raises(SolverFailed, match="time ran out"):
        solve(data)
    assert time.monotonic() - started < 5.0
    assert problem._DEADLINE.get() is None  # the block leaves no deadline behind
    # An attempt started with time left is itself bounded by it (Clarabel's time_limit).
    settings = problem._clarabel_settings(SolveSettings(), safe=False)
    assert settings.time_limit == float("inf")
    with problem.solve_deadline(0.5):
        assert 0.0 < problem._clarabel_settings(SolveSettings(), safe=False).time_limit <= 0.5


def _attempt_calls(monkeypatch) -> list[tuple[str, bool | None]]:
    """Record (attempt name, refine) of every Clarabel attempt ``solve`` starts."""
    calls: list[tuple[str, bool | None]] = []
    real = problem._run_clarabel

    def spy(data, layout, terms, constraints, settings, *, safe, name, refine=None):
        calls.append((name, refine))
        return real(data, layout, terms, constraints, settings, safe=safe, name=name, refine=refine)

    monkeypatch.setattr(problem, "_run_clarabel", spy)
    return calls


def test_a_cap_a_related_solve_saw_bind_skips_the_uncapped_attempt_and_refines(monkeypatch):
    # Predicted slack on its own (inside its budget tonight), but the account's previous solve
    # sat on the cap: the hint sends the first attempt straight to the refined cone.
    data = replace(random_problem(40, k=4, seed=5), lambda_te=0.001, te_max=0.025)
    terms, constraints = problem.objective_terms(data), problem.model_constraints(data)
    assert problem.te_cap_predicted_slack(data, terms, constraints)
    calls = _attempt_calls(monkeypatch)
    sol = solve(replace(data, te_cap_binds=True))
    assert calls[0] == ("clarabel", True)
    assert not any(name == problem.UNCAPPED for name, _ in calls)
    assert check_solution(data, sol) == []
    plain = solve(data, settings=SolveSettings(uncapped_first=False))
    assert sol.objective == pytest.approx(plain.objective, rel=1e-7, abs=1e-10)


def test_an_uncapped_answer_over_budget_sends_the_cone_attempt_refined(monkeypatch):
    # The uncapped optimum breaks the cap, so the cap binds at the capped optimum (convexity):
    # the cone attempt refines at once instead of stopping short without it first.
    data = replace(random_problem(40, k=4, seed=5), lambda_te=0.001, te_max=0.025)
    calls = _attempt_calls(monkeypatch)
    sol = solve(data)
    assert calls[:2] == [(problem.UNCAPPED, None), ("clarabel", True)]
    assert sol.attempts[0].startswith("clarabel-uncapped: OverBudget")
    assert sol.te <= 0.025 + 1e-8


def test_without_a_hint_or_a_miss_the_cone_attempt_keeps_the_measured_default(monkeypatch):
    data = random_problem(40, k=4, seed=7)
    outside = replace(data, te_max=problem.tracking_error(data, data.w0) * 0.5)
    calls = _attempt_calls(monkeypatch)
    solve(outside)
    assert calls[0] == ("clarabel", False)  # below REFINE_MIN_NAMES, no related solve
