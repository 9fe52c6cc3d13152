"""Objective terms of the rebalance (DESIGN.md §2), each compiled two ways.

``min  λ_te·TE² + λ_tax·(Σ_j τ_j u_j + Σ_j τˢ_j v_j) + κ·(Σu + Σβ + Σv + Σs) − αᵀw``

Every term is a small frozen dataclass with

* ``cvxpy(ctx) -> cp.Expression`` — the readable reference formulation, and
* ``conic(ctx) -> None`` — adds its ``P``/``q`` pieces to the direct Clarabel problem.

The model follows Moehle, Kochenderfer, Boyd & Ang, "Tax-Aware Portfolio Construction via
Convex Optimization" (JOTA 2021): lot-level sells with a linear tax cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import cvxpy
import numpy as np

from shared.optimizer.data import NEUTRAL_PENALTY, ProblemData
from shared.optimizer.model import ConicContext, CvxContext

#: CVXPY's public API is untyped for mypy (no explicit re-exports); used as Any.
cp: Any = cvxpy


class Term(Protocol):
    """An objective term: the same quantity in both compile targets."""

    def cvxpy(self, ctx: CvxContext) -> Any:
        """The term as a CVXPY expression."""

    def conic(self, ctx: ConicContext) -> None:
        """Add the term to ``ctx.builder``'s objective."""


@dataclass(frozen=True, slots=True)
class TrackingError:
    """``λ_te·TE²`` with ``TE² = (w−w_b)ᵀ(B F Bᵀ + diag d)(w−w_b)``, in factor form only.

    Direct form: ``λ·(yᵀF y + Σ_i d_i (w_i − w_b,i)²)`` over the exposure block
    ``y = Bᵀ(w − w_b)``: ``P`` gets ``2λF`` on ``y`` and ``2λ·diag(d)`` on ``w`` — never an
    ``n×n`` dense matrix.
    """

    weight: float

    def cvxpy(self, ctx: CvxContext) -> Any:
        d = ctx.data
        active = ctx.w - d.w_bench
        factor_part = (active @ d.loadings) @ ctx.layout.G
        return self.weight * (
            cp.sum_squares(factor_part)
            + cp.sum_squares(cp.multiply(np.sqrt(d.specific_var), active))
        )

    def conic(self, ctx: ConicContext) -> None:
        if ctx.y is None:
            raise ValueError("TrackingError needs the exposure block y")
        d = ctx.data
        ctx.builder.add_quadratic_form(ctx.y, self.weight * np.asarray(d.factor_cov))
        ctx.builder.add_quadratic(ctx.w.shift(-d.w_bench), self.weight * d.specific_var)


@dataclass(frozen=True, slots=True)
class TaxCost:
    """``λ_tax·(Σ_j τ_j u_j + Σ_j τˢ_j v_j)``: tax per unit weight sold or covered.

    ``τ_j = rate_j·(p − c_j)/p`` with the short-term rate for lots held one year or less and the
    long-term rate otherwise (IRC §1222; holding period per IRC §1223).  Covering a short lot
    realizes ``(proceeds − cost)`` and is short-term whatever the holding period (IRC §1233(b)).
    A loss is a negative cost, the harvest benefit; a loss that would be washed (IRC §1091) has
    ``τ = 0``.  The ``τ`` values are computed by the use case and arrive in ``ProblemData``.
    """

    weight: float

    def cvxpy(self, ctx: CvxContext) -> Any:
        d = ctx.data
        expr = ctx.sell @ d.lot_tax
        if len(d.short_name):
            expr = expr + ctx.cover @ d.short_tax
        return self.weight * expr

    def conic(self, ctx: ConicContext) -> None:
        d, lay = ctx.data, ctx.layout
        ctx.builder.add_linear(ctx.sell, self.weight * d.lot_tax[lay.sell_idx])
        if ctx.cover.m:
            ctx.builder.add_linear(ctx.cover, self.weight * d.short_tax[lay.cover_idx])


@dataclass(frozen=True, slots=True)
class TradingCost:
    """``κ·(Σu + Σβ + Σv + Σs)``: a linear cost per unit weight traded, every side."""

    kappa: float

    def cvxpy(self, ctx: CvxContext) -> Any:
        expr = cp.sum(ctx.sell) + cp.sum(ctx.buy)
        if len(ctx.data.short_name):
            expr = expr + cp.sum(ctx.cover)
        return self.kappa * (expr + cp.sum(ctx.short))

    def conic(self, ctx: ConicContext) -> None:
        for part in (ctx.sell, ctx.buy, ctx.cover, ctx.short):
            if part.m:
                ctx.builder.add_linear(part, self.kappa)


@dataclass(frozen=True, slots=True)
class Alpha:
    """``−αᵀw``: maximise a cross-sectional expected active return (market-neutral sleeve)."""

    alpha: np.ndarray[Any, np.dtype[np.float64]]

    def cvxpy(self, ctx: CvxContext) -> Any:
        return -(ctx.w @ self.alpha)

    def conic(self, ctx: ConicContext) -> None:
        ctx.builder.add_linear(ctx.w, -self.alpha)


@dataclass(frozen=True, slots=True)
class ExposurePenalty:
    """``weight·Σ_f (B_fᵀw)²``: a market-neutral sleeve relaxed to a band keeps its exposures
    as near 0 as its other limits allow (:data:`~shared.optimizer.data.NEUTRAL_PENALTY`).

    Direct form: a ``k×k`` quadratic form on the exposure block ``y = Bᵀ(w − w_b)`` shifted
    by ``Bᵀw_b`` (no ``n×n`` matrix; a sleeve's ``w_b`` is 0).  Quadratic rather than
    ``Σ|·|``: the absolute values' extra variables left Clarabel's first attempt
    ``AlmostSolved`` on 3 of 4 random sleeves."""

    weight: float

    def cvxpy(self, ctx: CvxContext) -> Any:
        return self.weight * cp.sum_squares(ctx.w @ ctx.data.loadings)

    def conic(self, ctx: ConicContext) -> None:
        if ctx.y is None:
            raise ValueError("ExposurePenalty needs the exposure block y")
        d = ctx.data
        k = d.loadings.shape[1]
        raw = ctx.y.shift(np.asarray(d.w_bench, dtype=np.float64) @ d.loadings)
        ctx.builder.add_quadratic_form(raw, self.weight * np.eye(k))


def objective_terms(data: ProblemData) -> list[Term]:
    """The terms ``data`` asks for, in the order of DESIGN.md §2."""
    terms: list[Term] = []
    if data.lambda_te > 0:
        terms.append(TrackingError(data.lambda_te))
    if data.lambda_tax != 0:
        terms.append(TaxCost(data.lambda_tax))
    if data.kappa > 0:
        terms.append(TradingCost(data.kappa))
    if data.alpha is not None and np.any(data.alpha != 0):
        terms.append(Alpha(np.asarray(data.alpha, dtype=np.float64)))
    if data.factor_neutral and data.neutral_band > 0:
        terms.append(ExposurePenalty(NEUTRAL_PENALTY))
    return terms
