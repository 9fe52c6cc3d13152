"""Clarabel gets its data as C arrays (fast copy): the same numbers, the same solve."""

from __future__ import annotations

import array

import clarabel
import numpy as np
import pytest
import scipy.sparse as sp

from shared.optimizer.conic import ClarabelCsc
from shared.optimizer.constraints import model_constraints
from shared.optimizer.model import Layout
from shared.optimizer.problem import SolveSettings, _clarabel_settings, assemble
from shared.optimizer.synthetic import random_problem
from shared.optimizer.terms import objective_terms


def _problem(seed: int):  # type: ignore[no-untyped-def]
    data = random_problem(n=40, seed=seed)
    return assemble(data, Layout.from_data(data), objective_terms(data), model_constraints(data))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_array_form_holds_exactly_the_numbers_of_the_scipy_matrices(seed: int) -> None:
    prob = _problem(seed)
    P, q, A, b = prob.clarabel_data()
    for view, M in ((P, prob.P), (A, prob.A)):
        assert isinstance(view.data, array.array)
        assert view.shape == M.shape
        assert np.array_equal(np.frombuffer(view.data, dtype=np.float64), M.data)
        assert np.array_equal(np.frombuffer(view.indices, dtype=np.int64), M.indices)
        assert np.array_equal(np.frombuffer(view.indptr, dtype=np.int64), M.indptr)
    assert np.array_equal(np.frombuffer(q, dtype=np.float64), prob.q)
    assert np.array_equal(np.frombuffer(b, dtype=np.float64), prob.b)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_clarabel_solves_the_array_form_bit_for_bit_like_the_scipy_form(seed: int) -> None:
    prob = _problem(seed)
    settings = _clarabel_settings(SolveSettings(), safe=False)
    fast = clarabel.DefaultSolver(*prob.clarabel_data(), prob.cones, settings).solve()
    ref = clarabel.DefaultSolver(prob.P, prob.q, prob.A, prob.b, prob.cones, settings).solve()
    assert str(fast.status) == str(ref.status)  # seed 1's random TE cap is infeasible
    assert fast.iterations == ref.iterations
    assert np.array_equal(np.asarray(fast.x), np.asarray(ref.x))


def test_a_matrix_with_unsorted_or_duplicate_entries_is_refused() -> None:
    M = sp.csc_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([0, 0]))), shape=(2, 2))
    M.has_canonical_format = False
    with pytest.raises(ValueError, match="canonical"):
        ClarabelCsc(M)
