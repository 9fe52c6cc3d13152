"""Constraints of the rebalance (DESIGN.md §2), each compiled two ways.

Every constraint is a small frozen dataclass with

* ``cvxpy(ctx) -> list[cp.Constraint]`` — the readable reference formulation, and
* ``conic(ctx) -> None`` — adds its rows to the direct Clarabel problem.

``family`` names the constraint in diagnostics ("the tilt is likely binding").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import cvxpy
import numpy as np

from shared.optimizer.conic import Affine
from shared.optimizer.data import ProblemData
from shared.optimizer.model import ConicContext, CvxContext

#: CVXPY's public API is untyped for mypy (no explicit re-exports); used as Any.
cp: Any = cvxpy


class Constraint(Protocol):
    """A constraint: the same feasible set in both compile targets."""

    family: ClassVar[str]

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        """The constraint as CVXPY constraints."""

    def conic(self, ctx: ConicContext) -> None:
        """Add the constraint's rows to ``ctx.builder``."""


@dataclass(frozen=True, slots=True)
class TradeBounds:
    """Lot and name permission masks: ``0 ≤ u ≤ lot_w`` on sellable lots, ``β ≥ 0`` where buys
    are allowed, ``0 ≤ v ≤ short_w`` on coverable short lots, ``s ≥ 0`` where shorts are allowed,
    and every forbidden trade is zero (wash-sale windows of IRC §1091, exclusions, the pre-pass);
    plus the optional forced sales ``u ≥ lot_sell_min`` and covers ``v ≥ short_cover_min``.

    In the direct problem a forbidden trade has no variable at all (see :class:`Layout`).
    """

    family: ClassVar[str] = "trade permissions"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        d = ctx.data
        out: list[Any] = [
            ctx.sell >= 0,
            ctx.sell <= np.where(d.lot_sellable, d.lot_w, 0.0),
            ctx.buy >= 0,
            ctx.short >= 0,
        ]
        if np.any(~d.buy_allowed):
            out.append(ctx.buy[np.flatnonzero(~d.buy_allowed)] == 0)
        if np.any(~d.short_allowed):
            out.append(ctx.short[np.flatnonzero(~d.short_allowed)] == 0)
        if len(d.short_name):
            out += [ctx.cover >= 0, ctx.cover <= np.where(d.short_coverable, d.short_w, 0.0)]
        if d.lot_sell_min is not None and np.any(d.lot_sell_min > 0):
            out.append(ctx.sell >= d.lot_sell_min)
        if d.short_cover_min is not None and np.any(d.short_cover_min > 0) and len(d.short_name):
            out.append(ctx.cover >= d.short_cover_min)
        return out

    def conic(self, ctx: ConicContext) -> None:
        d, lay, b = ctx.data, ctx.layout, ctx.builder
        for part in (ctx.sell, ctx.buy, ctx.cover, ctx.short):
            if part.m:
                b.ge(part, 0.0)
        if ctx.sell.m:
            b.le(ctx.sell, d.lot_w[lay.sell_idx])
        if ctx.cover.m:
            b.le(ctx.cover, d.short_w[lay.cover_idx])
        # Forced sales/covers: rows only where the floor is positive.
        for part, lo, idx in (
            (ctx.sell, d.lot_sell_min, lay.sell_idx),
            (ctx.cover, d.short_cover_min, lay.cover_idx),
        ):
            if lo is not None and part.m:
                rows = np.flatnonzero(lo[idx] > 0)
                if len(rows):
                    b.ge(part.take(rows), lo[idx][rows])


@dataclass(frozen=True, slots=True)
class Budget:
    """``Σw + w_c = net_w`` with ``cash_min ≤ w_c ≤ cash_max``: net 1 for the long strategies,
    0 for the market-neutral sleeve."""

    net_w: float
    cash_min_w: float
    cash_max_w: float
    family: ClassVar[str] = "budget/cash"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        cash = self.net_w - cp.sum(ctx.w)
        return [cash >= self.cash_min_w, cash <= self.cash_max_w]

    def conic(self, ctx: ConicContext) -> None:
        total = ctx.w.total()
        if self.cash_min_w == self.cash_max_w:
            ctx.builder.eq(total, self.net_w - self.cash_min_w)
            return
        ctx.builder.le(total, self.net_w - self.cash_min_w)
        ctx.builder.ge(total, self.net_w - self.cash_max_w)


@dataclass(frozen=True, slots=True)
class NameBounds:
    """``min_w ≤ w ≤ max_w`` per name (``c_max``; 0 for an excluded name, so a held excluded
    name is sold — tax-aware, because the sell is still lot by lot)."""

    family: ClassVar[str] = "name bounds"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        d = ctx.data
        out: list[Any] = []
        hi = np.flatnonzero(np.isfinite(d.max_w))
        lo = np.flatnonzero(np.isfinite(d.min_w))
        if len(hi):
            out.append(ctx.w[hi] <= d.max_w[hi])
        if len(lo):
            out.append(ctx.w[lo] >= d.min_w[lo])
        return out

    def conic(self, ctx: ConicContext) -> None:
        d = ctx.data
        ctx.builder.le(ctx.w, d.max_w)
        # Long-only without shorts: w = ℓ₀ − A u + β ≥ 0 already holds through u ≤ lot_w and
        # β ≥ 0 (w₀ is checked against the lots), so floors ≤ 0 would be redundant rows.
        if ctx.layout.has_short_side or np.any(d.min_w > 0):
            ctx.builder.ge(ctx.w, d.min_w)


@dataclass(frozen=True, slots=True)
class TEBudget:
    """``TE ≤ te_max`` as one second-order cone ``‖[Gᵀy ; √d∘(w − w_b)]‖ ≤ te_max``."""

    te_max: float
    family: ClassVar[str] = "tracking-error budget"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        d = ctx.data
        active = ctx.w - d.w_bench
        stacked = cp.hstack(
            [(active @ d.loadings) @ ctx.layout.G, cp.multiply(np.sqrt(d.specific_var), active)]
        )
        return [cp.norm(stacked, 2) <= self.te_max]

    def conic(self, ctx: ConicContext) -> None:
        if ctx.y is None:
            raise ValueError("TEBudget needs the exposure block y")
        d = ctx.data
        xs = Affine.vstack(
            [ctx.y.left_mul(ctx.layout.G.T), ctx.w.shift(-d.w_bench).scale(np.sqrt(d.specific_var))]
        )
        ctx.builder.soc(Affine.constant(np.array([self.te_max])), xs)


@dataclass(frozen=True, slots=True)
class FactorTilt:
    """``B_fᵀ(w − w_b) ≥ t_f`` on the *active* exposure, standardised loadings (sigmas)."""

    factor: int
    min_active: float
    family: ClassVar[str] = "factor tilt"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        d = ctx.data
        return [(ctx.w - d.w_bench) @ d.loadings[:, self.factor] >= self.min_active]

    def conic(self, ctx: ConicContext) -> None:
        if ctx.y is None:
            raise ValueError("FactorTilt needs the exposure block y")
        ctx.builder.ge(ctx.y.take(np.array([self.factor], dtype=np.int64)), self.min_active)


@dataclass(frozen=True, slots=True)
class FactorNeutral:
    """``Bᵀw = 0``: every factor exposure of the market-neutral sleeve pinned to zero; with
    ``band > 0`` (the relaxation chain's ``neutral_band`` step) ``|Bᵀw| ≤ band`` instead."""

    band: float = 0.0
    family: ClassVar[str] = "factor neutrality"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        expo = ctx.w @ ctx.data.loadings
        if self.band > 0:
            return [expo <= self.band, expo >= -self.band]
        return [expo == 0]

    def conic(self, ctx: ConicContext) -> None:
        # k dense rows on the weights.
        expo = ctx.w.left_mul(np.ascontiguousarray(ctx.data.loadings.T))
        if self.band > 0:
            ctx.builder.le(expo, self.band)
            ctx.builder.ge(expo, -self.band)
        else:
            ctx.builder.eq(expo)


@dataclass(frozen=True, slots=True)
class LongShortLimits:
    """``Σℓ ≤ long_max``, ``Σσ ≤ short_max``, ``Σ(ℓ + σ) ≤ gross_max`` over the long side
    ``ℓ = ℓ₀ − A u + β`` and the short side ``σ = σ₀ − A_s v + s`` (e.g. 130/30: 1.3 and 0.3).
    Since ``w = ℓ − σ``, ``Σ max(w, 0) ≤ Σℓ`` and ``Σ|w| ≤ Σ(ℓ + σ)``, so the limits hold on
    ``w`` itself.

    The optional floors ``Σℓ ≥ long_min`` and ``Σσ ≥ short_min`` pin the book's shape (a
    130/30 book holds 129–130% long and 29–30% short): without them nothing in the objective
    rewards holding shorts, and the book drifts to long-only.  Linear, so still convex."""

    long_max_w: float | None
    short_max_w: float | None
    gross_max_w: float | None
    long_min_w: float | None = None
    short_min_w: float | None = None
    family: ClassVar[str] = "long/short/gross limits"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        out: list[Any] = []
        if self.long_max_w is not None:
            out.append(cp.sum(ctx.long_side) <= self.long_max_w)
        if self.short_max_w is not None:
            out.append(cp.sum(ctx.short_side) <= self.short_max_w)
        if self.gross_max_w is not None:
            out.append(cp.sum(ctx.long_side) + cp.sum(ctx.short_side) <= self.gross_max_w)
        if self.long_min_w is not None:
            out.append(cp.sum(ctx.long_side) >= self.long_min_w)
        if self.short_min_w is not None:
            out.append(cp.sum(ctx.short_side) >= self.short_min_w)
        return out

    def conic(self, ctx: ConicContext) -> None:
        b = ctx.builder
        if self.long_max_w is not None:
            b.le(ctx.long_side.total(), self.long_max_w)
        if self.short_max_w is not None:
            b.le(ctx.short_side.total(), self.short_max_w)
        if self.gross_max_w is not None:
            b.le((ctx.long_side + ctx.short_side).total(), self.gross_max_w)
        if self.long_min_w is not None:
            b.ge(ctx.long_side.total(), self.long_min_w)
        if self.short_min_w is not None:
            b.ge(ctx.short_side.total(), self.short_min_w)


@dataclass(frozen=True, slots=True)
class Turnover:
    """``Σu + Σβ + Σv + Σs ≤ turnover_max`` (two-way turnover in weight: every leg counted)."""

    turnover_max_w: float
    family: ClassVar[str] = "turnover"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        expr = cp.sum(ctx.sell) + cp.sum(ctx.buy) + cp.sum(ctx.short)
        if len(ctx.data.short_name):
            expr = expr + cp.sum(ctx.cover)
        return [expr <= self.turnover_max_w]

    def conic(self, ctx: ConicContext) -> None:
        parts = [p.total() for p in (ctx.sell, ctx.buy, ctx.cover, ctx.short) if p.m]
        if not parts:
            if self.turnover_max_w < 0:
                ctx.builder.le(Affine.constant(np.zeros(1)), self.turnover_max_w)
            return
        total = parts[0]
        for p in parts[1:]:
            total = total + p
        ctx.builder.le(total, self.turnover_max_w)


@dataclass(frozen=True, slots=True)
class GainBudget:
    """Net realized gain ``Σ_j g_j u_j + Σ_j gˢ_j v_j ≤ budget`` (``g = (p − c)/p`` per unit
    weight; losses count negative, so harvested losses make room for gains — netting of
    IRC §1222 / §1211)."""

    gain_budget_w: float
    family: ClassVar[str] = "realized-gain budget"

    def cvxpy(self, ctx: CvxContext) -> list[Any]:
        d = ctx.data
        expr = ctx.sell @ d.lot_gain
        if len(d.short_name):
            expr = expr + ctx.cover @ d.short_gain
        return [expr <= self.gain_budget_w]

    def conic(self, ctx: ConicContext) -> None:
        d, lay = ctx.data, ctx.layout
        total = Affine.constant(np.zeros(1))
        if ctx.sell.m:
            total = total + ctx.sell.scale(d.lot_gain[lay.sell_idx]).total()
        if ctx.cover.m:
            total = total + ctx.cover.scale(d.short_gain[lay.cover_idx]).total()
        ctx.builder.le(total, self.gain_budget_w)


def model_constraints(data: ProblemData) -> list[Constraint]:
    """The constraints ``data`` asks for (a strategy is just a choice of these)."""
    out: list[Constraint] = [
        TradeBounds(),
        Budget(data.net_w, data.cash_min_w, data.cash_max_w),
        NameBounds(),
    ]
    if data.te_max is not None:
        out.append(TEBudget(data.te_max))
    out += [FactorTilt(f, t) for f, t in data.tilts]
    if data.factor_neutral:
        out.append(FactorNeutral(data.neutral_band))
    limits = (data.long_max_w, data.short_max_w, data.gross_max_w)
    floors = (data.long_min_w, data.short_min_w)
    if any(x is not None for x in (*limits, *floors)):
        out.append(LongShortLimits(*limits, *floors))
    if data.turnover_max_w is not None:
        out.append(Turnover(data.turnover_max_w))
    if data.gain_budget_w is not None:
        out.append(GainBudget(data.gain_budget_w))
    return out
