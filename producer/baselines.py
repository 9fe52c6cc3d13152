"""Baselines run next to the optimizer in the same backtest (``taxview-runner --baselines``).

* :class:`HoldIndexPolicy` — buy the benchmark on day one and hold it, never harvesting.  The
  only trades afterwards follow the index's own reconstitution: a name that leaves the index is
  sold (its lots, oldest first, deferred while a loss sale would be washed) and a name that joins
  is bought at its benchmark weight with the cash on hand.
* :class:`ThresholdHarvestPolicy` — the same, plus the classic rule of thumb: on every rebalance day
  sell every lot whose price is more than ``threshold`` (default 10%) below its basis per share,
  and put the proceeds of each name sold into the *most correlated* name (by the risk model's
  covariance ``B F Bᵀ + diag(d)``) that may be bought; after the 30-day window the replacement
  is swapped back into the original name (``swap_back``, default on).  It respects the ledger's
  wash-sale restrictions (IRC §1091, IRS Pub 550): a lot whose loss would be washed by a purchase
  of the last 30 days is not sold, a name sold at a loss in the last 30 days is not bought, and a
  name is never bought on a day it is sold at a loss.

Both honour the account's exclusions (``--exclude``) as the optimizer's account does: an excluded
name is never bought, and its benchmark weight goes where the optimizer's tracking would put it.
The optimizer keeps the full benchmark and caps an excluded name at 0, so its account tracks the
benchmark with the rest; the baselines hold :func:`index_weights`, the long-only weights without
the excluded names that track the full benchmark with the least risk-model TE (no tax term, tilt or
TE budget: a passive account with the same exclusions).  Without exclusions they are the benchmark
weights.  The baselines are long-only index accounts: the runner refuses them for the long-short
and market-neutral strategies.

The selection logic is on plain arrays (:func:`harvest_mask`, :func:`correlations`,
:func:`most_correlated`) so it is tested without a market or a ledger.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from producer.backtest import ACCOUNT_ID, DayContext, close_price
from shared.errors import InputError
from shared.ledger import cents
from shared.messages import Lot, RiskModel, Transaction
from shared.types import FloatArray

BoolArray = npt.NDArray[np.bool_]


def harvest_mask(
    price: FloatArray, basis_per_share: FloatArray, threshold: float, blocked: BoolArray
) -> BoolArray:
    """Lots to harvest: price more than ``threshold`` below basis per share, and not blocked.

    Args:
        price: (L,) today's price of each lot's name.
        basis_per_share: (L,) each lot's basis per share (after wash-sale adjustments).
        threshold: the loss fraction that triggers a sale, in (0, 1).
        blocked: (L,) True when a loss sale of the lot would be washed (IRC §1091).

    Returns:
        (L,) True for the lots to sell.

    Raises:
        InputError: threshold outside (0, 1).
    """
    if not 0.0 < threshold < 1.0:
        raise InputError(f"threshold {threshold} must be in (0, 1)", field="harvest_threshold")
    return np.asarray((price > 0) & (price < (1.0 - threshold) * basis_per_share) & ~blocked)


def correlations(
    i: int, loadings: FloatArray, factor_cov: FloatArray, spec: FloatArray
) -> FloatArray:
    """Correlation of name ``i`` with every name under ``Σ = B F Bᵀ + diag(d)``.

    Costs O(n·k²), never O(n²): only row ``i`` of Σ and its diagonal are formed.
    """
    BF = loadings @ factor_cov
    var = np.einsum("ij,ij->i", BF, loadings) + spec
    row = BF @ loadings[i]
    row[i] += spec[i]
    denom = np.sqrt(np.maximum(var * var[i], 1e-300))
    return np.asarray(row / denom, dtype=np.float64)


def _inverse_times(
    loadings: FloatArray, factor_cov: FloatArray, specific_var: FloatArray, v: FloatArray
) -> FloatArray:
    """``Σ⁻¹ v`` for ``Σ = B F Bᵀ + diag(d)`` by the Woodbury identity, O(n·k²), never forming
    Σ: ``Σ⁻¹ = D⁻¹ − D⁻¹ B F (I + Bᵀ D⁻¹ B F)⁻¹ Bᵀ D⁻¹`` (no inverse of ``F`` needed)."""
    dinv = 1.0 / np.maximum(specific_var, 1e-12)
    bd = loadings * dinv[:, None]  # D⁻¹ B
    k = factor_cov.shape[0]
    inner = np.eye(k) + (loadings.T @ bd) @ factor_cov
    dv = v * dinv[:, None] if v.ndim == 2 else v * dinv
    return np.asarray(dv - bd @ (factor_cov @ np.linalg.solve(inner, loadings.T @ dv)))


def index_weights(
    w_bench: FloatArray,
    excluded: BoolArray,
    loadings: FloatArray,
    factor_cov: FloatArray,
    specific_var: FloatArray,
    *,
    cap: float | None = None,
) -> FloatArray:
    """The long-only weights, without the excluded names, that track ``w_bench`` best.

    Minimises ``(w − w_b)ᵀ Σ (w − w_b)`` with ``Σ = B F Bᵀ + diag(d)`` subject to ``Σw = 1``,
    ``w = 0`` on the excluded names, ``0 ≤ w`` and ``w ≤ max(cap, w_b)`` (redistribution never
    lifts a name above the cap; a benchmark weight above it is kept as the benchmark has it).  It
    is what the optimizer's account tracks — the full benchmark with the excluded names capped at
    0 — without its tax term, tilts and TE budget.  The minimum with only the equalities has a
    closed form (``Σ_SS⁻¹`` by Woodbury), and it is the answer when it is inside the bounds (the
    usual case: a few small names excluded); otherwise the quadratic program is solved with
    CLARABEL in factor form (review: pinning every bound violator at once and renormalising
    left names up to 0.028 above the cap and up to 6% more TE variance than the optimum).
    Without exclusions: ``w_b``.

    Args:
        w_bench: (n,) benchmark weights (sum 1).
        excluded: (n,) True for the names the account never holds.
        loadings: (n, k) factor loadings ``B``.
        factor_cov: (k, k) factor covariance ``F``.
        specific_var: (n,) specific variances ``d``.
        cap: single-name cap, if any.

    Returns:
        (n,) weights summing to 1 (all zero if every name is excluded).
    """
    w_b = np.asarray(w_bench, dtype=np.float64)
    n = len(w_b)
    excluded = np.asarray(excluded, dtype=bool)
    if not excluded.any():
        return w_b.copy()
    free = np.flatnonzero(~excluded)
    if not len(free):
        return np.zeros(n)
    hi = np.full(n, np.inf) if cap is None else np.maximum(cap, w_b)
    hi[excluded] = 0.0
    pinned = np.flatnonzero(excluded)
    b_free = loadings[free]
    # Σ_SE a_E: the free names' covariance with the excluded names' active weights (−w_b; the
    # specific part is diagonal, so only the factors link them).
    g = b_free @ (factor_cov @ (loadings[pinned].T @ (-w_b[pinned])))
    rhs = np.column_stack([g, np.ones(len(free))])
    x, y = _inverse_times(b_free, factor_cov, specific_var[free], rhs).T
    mu = (1.0 - w_b[free].sum() + x.sum()) / y.sum()
    w_free = w_b[free] - x + mu * y
    if (w_free >= -1e-12).all() and (w_free <= hi[free] + 1e-12).all():
        value = np.zeros(n)
        value[free] = np.clip(w_free, 0.0, hi[free])
        return value
    return _bounded_index_weights(w_b, hi, loadings, factor_cov, specific_var)


def _bounded_index_weights(
    w_b: FloatArray,
    hi: FloatArray,
    loadings: FloatArray,
    factor_cov: FloatArray,
    specific_var: FloatArray,
) -> FloatArray:
    """:func:`index_weights` when bounds bind: the QP in factor form (never an n×n matrix)."""
    import cvxpy

    cp: Any = cvxpy  # untyped library
    n = len(w_b)
    vals, vecs = np.linalg.eigh((factor_cov + factor_cov.T) / 2.0)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # F = root rootᵀ
    w = cp.Variable(n)
    active = w - w_b
    risk = cp.sum_squares((loadings @ root).T @ active) + cp.sum(
        cp.multiply(np.maximum(specific_var, 0.0), cp.square(active))
    )
    bounded = np.isfinite(hi)
    cons = [cp.sum(w) == 1, w >= 0]
    if bounded.any():
        cons.append(w[np.flatnonzero(bounded)] <= hi[bounded])
    problem = cp.Problem(cp.Minimize(risk), cons)
    # Tight gaps: tracking variances are ~1e-8 to 1e-4, the default absolute gap is not.
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-14, tol_gap_rel=1e-10)
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or w.value is None:
        raise InputError(
            f"no long-only weights without the excluded names fit the caps ({problem.status})",
            field="--exclude",
        )
    value: FloatArray = np.clip(np.asarray(w.value, dtype=np.float64), 0.0, hi)
    out: FloatArray = value / value.sum()
    return out


def excluded_mask(symbols: tuple[str, ...] | list[str], exclusions: tuple[str, ...]) -> BoolArray:
    """(n,) True for the names of ``symbols`` the account excludes (exact symbols; the runner
    refuses an exclusion that is not in the universe)."""
    out = set(exclusions)
    return np.array([s in out for s in symbols], dtype=bool)


def most_correlated(corr: FloatArray, allowed: BoolArray) -> int | None:
    """Index of the highest correlation among ``allowed`` names, or ``None`` if none is."""
    if not allowed.any():
        return None
    masked = np.where(allowed, corr, -np.inf)
    return int(np.argmax(masked))


def _whole(x: float) -> Decimal:
    return Decimal(max(math.floor(x + 1e-9), 0))


def _price(x: float) -> Decimal:
    # The close as the account trades at it: the optimizer's fill price (1/100 of a cent), so
    # every policy fills and is marked at the same price.
    return close_price(x)


class HoldIndexPolicy:
    """Buy the benchmark on day one, then only follow index adds and drops (no harvesting)."""

    name = "hold-index"

    def __init__(self) -> None:
        self._members: BoolArray | None = None
        self._n = 0

    def _txn(
        self,
        day: dt.date,
        symbol: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        *,
        lot: str = "",
    ) -> Transaction:
        self._n += 1
        tid = f"{self.name}:{day}:{self._n}"
        return Transaction(
            id=tid,
            date=day,
            account=ACCOUNT_ID,
            account_type="taxable",
            symbol=symbol,
            side="buy" if side == "buy" else "sell",
            quantity=quantity,
            price=price,
            lot_id=lot or tid,
        )

    def _buy_weights(
        self, ctx: DayContext, weights: FloatArray, budget_usd: float
    ) -> list[Transaction]:
        """Whole-share buys of ``weights × budget`` (never spending more than ``budget``)."""
        out = []
        symbols = ctx.book.symbols
        # What the fills will cost, exactly: whole shares at the traded close, each fill's
        # cash to the cent (Book.apply), never above the budget.
        budget = cents(Decimal(repr(float(budget_usd))))
        spent = Decimal(0)
        for i in np.flatnonzero(weights > 0):
            p = float(ctx.prices[i])
            if not p > 0:
                continue
            price = _price(p)
            q = _whole(weights[i] * budget_usd / float(price))
            cost = cents(q * price)
            if q > 0 and spent + cost <= budget:
                spent += cost
                out.append(self._txn(ctx.day, symbols[i], "buy", q, price))
        return out

    def _targets(self, ctx: DayContext) -> FloatArray:
        """The day's weights to buy at: the benchmark's, or with exclusions
        :func:`index_weights` under the day's risk model (book column order)."""
        w = np.asarray(ctx.market.benchmark_weights[ctx.t], dtype=np.float64)
        excluded = excluded_mask(ctx.book.symbols, ctx.config.exclusions)
        if not (excluded & (w > 0)).any():
            return w
        snap = ctx.snapshot()
        cols = np.fromiter((ctx.book.index[s] for s in snap.symbols), dtype=np.int64)
        rm: RiskModel = snap.risk_model
        out = np.zeros(len(w))
        out[cols] = index_weights(
            np.asarray(snap.benchmark_weights, dtype=np.float64),
            excluded[cols],
            np.asarray(rm.loadings, dtype=np.float64).reshape(len(cols), -1),
            np.asarray(rm.factor_cov, dtype=np.float64),
            np.asarray(rm.specific_var, dtype=np.float64),
            cap=ctx.config.max_weight,
        )
        return out

    def decide(self, ctx: DayContext) -> list[Transaction]:
        """Day one: buy the benchmark; later: follow reconstitutions (and harvest, if any)."""
        w = np.asarray(ctx.market.benchmark_weights[ctx.t], dtype=np.float64)
        members = w > 0
        if ctx.first or self._members is None:
            self._members = members
            return self._buy_weights(ctx, self._targets(ctx), float(ctx.book.cash))
        txns: list[Transaction] = []
        if ctx.rebalance and (members != self._members).any():
            txns, pending = self._reconstitute(ctx, self._targets(ctx), members)
            # A change that could not be completed today (wash-sale window) stays pending.
            self._members = np.where(pending, self._members, members)
        return txns + self.harvest(ctx)

    def _reconstitute(
        self, ctx: DayContext, w: FloatArray, members: BoolArray
    ) -> tuple[list[Transaction], BoolArray]:
        assert self._members is not None
        book = ctx.book
        dropped = self._members & ~members
        added = members & ~self._members
        pending = np.zeros(len(members), dtype=bool)
        out: list[Transaction] = []
        restrictions = book.ledger.restrictions(ctx.day)
        cash = float(book.cash)
        if dropped.any():
            for lot in book.ledger.open_lots(book.account_id):
                i = book.index[lot.symbol]
                if not dropped[i] or lot.short:
                    continue
                p = float(ctx.prices[i])
                # A loss net of the sale's commission (IRS Pub. 550), as the ledger reports it.
                at_loss = book.net_proceeds(lot.quantity, _price(p)) < lot.cost_basis_usd
                if at_loss and (book.account_id, lot.lot_id) in restrictions.no_loss_sale_lots:
                    pending[i] = True  # sold on a later day, once the loss would not be washed
                    continue
                out.append(
                    self._txn(ctx.day, lot.symbol, "sell", lot.quantity, _price(p), lot=lot.lot_id)
                )
                cash += float(lot.quantity) * p
        # An excluded name that joins the index is never bought (its target weight is 0).
        added &= ~excluded_mask(book.symbols, ctx.config.exclusions)
        if added.any():
            blocked = np.array([restrictions.is_blocked_buy(s) for s in book.symbols])
            pending |= added & blocked
            want = np.where(added & ~blocked, w, 0.0)
            budget = min(cash, float(want.sum()) * book.value(ctx.prices))
            if budget > 0 and want.sum() > 0:
                out += self._buy_weights(ctx, want / want.sum(), budget)
        return out, pending

    def harvest(self, ctx: DayContext) -> list[Transaction]:
        """No harvesting in the hold-the-index baseline."""
        return []


class ThresholdHarvestPolicy(HoldIndexPolicy):
    """Hold the index and harvest every lot down more than ``threshold`` into its closest peer.

    With ``swap_back`` (the default, the usual practice of harvest-and-replace programmes), a
    replacement lot is sold again once the original name is buyable again — more than 30 days
    after its loss sale (IRC §1091(a)) — and the proceeds buy back the original name, so the
    account keeps tracking its index instead of drifting into a chain of peers.

    Args:
        threshold: loss fraction of the basis that triggers a sale (0.10 = down more than 10%).
        swap_back: return to the original name after the wash-sale window.
    """

    def __init__(self, threshold: float = 0.10, *, swap_back: bool = True) -> None:
        super().__init__()
        if not 0.0 < threshold < 1.0:
            raise InputError(f"threshold {threshold} must be in (0, 1)", field="harvest_threshold")
        self.threshold = threshold
        self.swap_back = swap_back
        self.name = "threshold-harvest"
        #: Replacement lot id → (the original name it stands in for, the day it was bought).
        self.origin: dict[str, tuple[str, dt.date]] = {}
        #: Ids of the swap-back sales (not harvests), for audit.
        self.swap_back_sales: set[str] = set()

    def harvest(self, ctx: DayContext) -> list[Transaction]:
        """Harvest lots down more than the threshold into their closest peers; swap back."""
        if not ctx.rebalance or ctx.first:
            return []
        book = ctx.book
        lots: list[Lot] = [lot for lot in book.ledger.open_lots(book.account_id) if not lot.short]
        if not lots:
            return []
        n_lots = len(lots)
        idx = np.fromiter((book.index[lot.symbol] for lot in lots), dtype=np.int64, count=n_lots)
        qty = np.fromiter((float(lot.quantity) for lot in lots), dtype=np.float64, count=n_lots)
        basis = np.fromiter(
            (float(lot.cost_basis_usd) for lot in lots), dtype=np.float64, count=n_lots
        )
        price = ctx.prices[idx]
        candidates = harvest_mask(price, basis / qty, self.threshold, np.zeros(n_lots, bool))
        due = np.array(
            [
                self.swap_back
                and lot.lot_id in self.origin
                and (ctx.day - self.origin[lot.lot_id][1]).days > 30
                for lot in lots
            ],
            dtype=bool,
        )
        if not candidates.any() and not due.any():
            return []
        restrictions = book.ledger.restrictions(ctx.day)
        # A loss net of the sale's commission (IRS Pub. 550), as the ledger reports it.
        at_loss = np.array(
            [
                book.net_proceeds(lot.quantity, _price(p)) < lot.cost_basis_usd
                for lot, p in zip(lots, price.tolist(), strict=True)
            ],
            dtype=bool,
        )
        blocked = (
            np.array(
                [(book.account_id, lot.lot_id) in restrictions.no_loss_sale_lots for lot in lots]
            )
            & at_loss
        )
        sell = candidates & ~blocked
        out: list[Transaction] = []
        proceeds: dict[int, float] = defaultdict(float)
        anchor: dict[int, str] = {}
        loss_names: set[str] = set()
        for j in np.flatnonzero(sell):
            lot = lots[j]
            i = int(idx[j])
            out.append(
                self._txn(
                    ctx.day, lot.symbol, "sell", lot.quantity, _price(price[j]), lot=lot.lot_id
                )
            )
            proceeds[i] += float(lot.quantity) * float(price[j])
            anchor[i] = self.origin.pop(lot.lot_id, (lot.symbol, ctx.day))[0]
            loss_names.add(lot.symbol)
        # Swap back: sell the replacement, buy the original (never a name sold at a loss today,
        # never a name inside its wash-sale window).
        swap: dict[str, float] = defaultdict(float)
        for j in np.flatnonzero(due & ~sell & ~blocked):
            lot = lots[j]
            original = self.origin[lot.lot_id][0]
            if original in loss_names or restrictions.is_blocked_buy(original):
                continue
            k = book.index.get(original)
            if k is None or not ctx.prices[k] > 0:
                continue
            txn = self._txn(
                ctx.day, lot.symbol, "sell", lot.quantity, _price(price[j]), lot=lot.lot_id
            )
            out.append(txn)
            self.swap_back_sales.add(txn.id)
            del self.origin[lot.lot_id]
            swap[original] += float(lot.quantity) * float(price[j])
            if at_loss[j]:
                loss_names.add(lot.symbol)
        for original, usd in swap.items():
            if original in loss_names:
                continue
            p = float(ctx.prices[book.index[original]])
            q = _whole(usd / p)
            if q > 0:
                out.append(self._txn(ctx.day, original, "buy", q, _price(p)))
        if not proceeds:
            return out
        # Replacement: the most correlated name that is listed, in the benchmark, not excluded,
        # not sold today and not inside a wash-sale window.
        snap = ctx.snapshot()
        cols = np.fromiter((book.index[s] for s in snap.symbols), dtype=np.int64)
        pos = {int(c): k for k, c in enumerate(cols)}
        rm: RiskModel = snap.risk_model
        B = np.asarray(rm.loadings, dtype=np.float64).reshape(len(cols), -1)
        F = np.asarray(rm.factor_cov, dtype=np.float64)
        d = np.asarray(rm.specific_var, dtype=np.float64)
        w = np.asarray(snap.benchmark_weights, dtype=np.float64)
        sold = {t.symbol for t in out if t.side == "sell"} | loss_names
        allowed = (
            (w > 0)
            & ~excluded_mask(snap.symbols, ctx.config.exclusions)
            & np.array([s not in sold and not restrictions.is_blocked_buy(s) for s in snap.symbols])
            & (np.asarray(snap.prices) > 0)
        )
        for i, usd in sorted(proceeds.items(), key=lambda kv: -kv[1]):
            if i not in pos:
                continue
            corr = correlations(pos[i], B, F, d)
            best = most_correlated(corr, allowed)
            if best is None:
                continue
            p = float(snap.prices[best])
            q = _whole(usd / p)
            if q > 0:
                txn = self._txn(ctx.day, snap.symbols[best], "buy", q, _price(p))
                out.append(txn)
                self.origin[txn.lot_id] = (anchor[i], ctx.day)
        return out
