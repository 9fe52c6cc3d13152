"""Market history: daily prices, benchmark weights and level, and a risk model per date.

A :class:`MarketHistory` is what the backtest replays and what the nightly takes one
:class:`~shared.messages.MarketSnapshot` from.  It comes from
:func:`shared.synthetic.synthetic_market` or :func:`shared.loaders.load_market_dir`.

Conventions (also in ``docs/formats.md``):

* ``dates`` are NYSE sessions in order; row ``t`` of every array is the close of ``dates[t]``.
* ``prices`` is T×n, USD per share, **NaN while a name is not listed** (before its first price,
  after its last).  Prices are total-return (dividend-adjusted) prices: dividends are not paid
  out as cash, they are in the price.
* ``benchmark_weights`` is T×n, rows sum to 1, 0 for names outside the index that day (a name
  dropped from the index keeps its prices, with weight 0).
* ``benchmark_level`` is the benchmark's total-return level (100.0 on the first date):
  ``level[t] = level[t−1]·(1 + Σ_i w[t−1,i]·r[t,i])``.
* A snapshot at date ``d`` covers the names **listed on d** (finite price), in ``symbols`` order.

The risk model of a date comes from a :class:`RiskSource`: the generator's own model for
synthetic markets, a loaded vendor model, or an estimate from trailing returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

import numpy as np
import numpy.typing as npt

from shared.errors import InputError
from shared.messages import MarketSnapshot, RiskModel
from shared.risk_model import (
    estimate_risk_model,
    subset_risk_model,
    validate_risk_model,
)
from shared.types import FloatArray, IntArray

#: Tolerance on a benchmark-weight row summing to 1.
WEIGHT_SUM_TOL = 1e-6

#: The prices a rebalance can trade, checked by the market loader and by every rebalance alike
#: (docs/formats.md, docs/rebalance.md §1): tickets carry the price to 4 decimals, so a price
#: below a ten-thousandth of a dollar would trade at 0.0000 (sales with no proceeds), and the
#: ledger books at most $1e10 a share (``shared.ledger.MAX_PRICE``).
PRICE_QUANTUM = Decimal("0.0001")
MAX_PRICE_USD = 1e10
#: Largest |alpha| accepted (annualised return units: 10 = 1,000%/y).  Beyond it a signal is in
#: the wrong units, and 1e20 made the solve fail with "objective unbounded below" instead of a
#: rejected request (market-neutral audit).
MAX_ABS_ALPHA = 10.0
#: Most a price may move (relative) when a ticket carries it to 4 decimals.  Weights, cash and
#: TE use the snapshot's price and the ticket fills at the 4-decimal one; a sub-cent price such
#: as 0.00015 fills at 0.0002, 33% off, and the reported cash and weights were thousands of
#: dollars off the ticket (fuzz audit).  Every price of half a cent and above passes (old
#: split-adjusted prices sit at a few cents: review); below, a price needs (nearly) 4 decimals.
MAX_PRICE_ROUNDING = 1e-2


def coarse_prices(prices: FloatArray) -> npt.NDArray[np.bool_]:
    """Which prices 4 decimals move by more than :data:`MAX_PRICE_ROUNDING` of themselves
    (NaN: no)."""
    quantum = float(PRICE_QUANTUM)
    off = np.abs(np.round(prices / quantum) * quantum - prices)
    out: npt.NDArray[np.bool_] = off > MAX_PRICE_ROUNDING * prices
    return out


def coarse_price_reason(price: float) -> str:
    """Why a price :func:`coarse_prices` flags is refused (follows the price's label)."""
    filled = Decimal(repr(price)).quantize(PRICE_QUANTUM, ROUND_HALF_UP)
    return (
        f"{price:g} would trade at {filled} (trades carry 4 decimals), "
        f"{abs(float(filled) - price) / price:.2%} off: below half a cent a price needs at "
        f"most 4 decimals (a rounding of at most {MAX_PRICE_ROUNDING:.0%})"
    )


class RiskSource(Protocol):
    """Where a history's per-date risk model (and alpha) comes from."""

    @property
    def kind(self) -> str:
        """``"synthetic"`` (the generator's true model), ``"loaded"`` or ``"estimated"``."""
        ...

    def risk_model(self, history: MarketHistory, t: int, names: IntArray) -> RiskModel:
        """The annualised model at row ``t`` over columns ``names`` (in that order)."""
        ...

    def alpha(self, history: MarketHistory, t: int, names: IntArray) -> FloatArray | None:
        """Annualised cross-sectional alpha at row ``t`` over ``names``, or ``None``."""
        ...


@dataclass(frozen=True, eq=False, kw_only=True)
class MarketHistory:
    """Daily market data over a range of NYSE sessions (see the module docstring for units).

    Raises:
        InputError: misaligned shapes, weights not summing to 1, weight on an unlisted name.
    """

    symbols: tuple[str, ...]
    sectors: tuple[str, ...]
    dates: tuple[dt.date, ...]
    #: T×n USD per share, NaN when not listed.
    prices: FloatArray
    #: T×n, rows sum to 1.
    benchmark_weights: FloatArray
    #: T total-return level, 100.0 on the first date.
    benchmark_level: FloatArray
    factor_names: tuple[str, ...]
    risk_source: RiskSource | None = None
    benchmark: str = "synthetic"
    #: T×n annualised alpha a directory's ``alpha`` table gives (NaN: no view); ``None``: the
    #: risk source's, if any.
    alpha_table: FloatArray | None = None
    _index: dict[dt.date, int] = field(init=False, repr=False)
    _risk_cache: dict[int, RiskModel] = field(init=False, repr=False)
    _returns: list[FloatArray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        T, n = len(self.dates), len(self.symbols)
        if len(set(self.symbols)) != n:
            raise InputError("symbols are not unique", field="symbols")
        if len(self.sectors) != n:
            raise InputError(f"{len(self.sectors)} sectors for {n} symbols", field="sectors")
        for name, arr in (("prices", self.prices), ("benchmark_weights", self.benchmark_weights)):
            if arr.shape != (T, n):
                raise InputError(f"{name} has shape {arr.shape}, expected {(T, n)}", field=name)
        if self.alpha_table is not None and self.alpha_table.shape != (T, n):
            raise InputError(
                f"alpha_table has shape {self.alpha_table.shape}, expected {(T, n)}",
                field="alpha_table",
            )
        if self.benchmark_level.shape != (T,):
            raise InputError(
                f"benchmark_level has shape {self.benchmark_level.shape}, expected {(T,)}",
                field="benchmark_level",
            )
        if any(b <= a for a, b in zip(self.dates, self.dates[1:], strict=False)):
            raise InputError("dates must be strictly increasing", field="dates")
        sums = self.benchmark_weights.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > WEIGHT_SUM_TOL)
        if bad.size:
            t = int(bad[0])
            raise InputError(
                f"benchmark weights on {self.dates[t]} sum to {sums[t]:.6f}, not 1",
                field="benchmark_weights",
            )
        unlisted = (self.benchmark_weights != 0) & ~np.isfinite(self.prices)
        if unlisted.any():
            t, i = (int(x) for x in np.argwhere(unlisted)[0])
            raise InputError(
                f"{self.symbols[i]} has benchmark weight on {self.dates[t]} but no price",
                field="benchmark_weights",
            )
        object.__setattr__(self, "_index", {d: t for t, d in enumerate(self.dates)})
        object.__setattr__(self, "_risk_cache", {})
        object.__setattr__(self, "_returns", [])

    def with_risk_source(self, source: RiskSource | None) -> MarketHistory:
        """The same data with another risk source (``None``: estimate from trailing returns)."""
        return replace(self, risk_source=source)

    # ---------------------------------------------------------------- lookups

    @property
    def n_names(self) -> int:
        """Number of symbols ever in the history (listed or not)."""
        return len(self.symbols)

    def index_of(self, d: dt.date) -> int:
        """Row of date ``d``.

        Raises:
            InputError: ``d`` is not one of the history's dates (``field="date"``).
        """
        try:
            return self._index[d]
        except KeyError:
            first, last = self.dates[0], self.dates[-1]
            raise InputError(
                f"{d} is not a date of this market history ({first}..{last}, NYSE sessions)",
                field="date",
            ) from None

    def listed(self, t: int) -> IntArray:
        """Columns with a price at row ``t`` (the snapshot universe), ascending."""
        out: IntArray = np.flatnonzero(np.isfinite(self.prices[t])).astype(np.int64)
        return out

    def returns(self) -> FloatArray:
        """T×n daily simple returns; row 0 and a name's days without two prices are NaN.

        Computed once and cached: treat the result as read-only.
        """
        if not self._returns:
            out = np.full_like(self.prices, np.nan)
            out[1:] = self.prices[1:] / self.prices[:-1] - 1.0
            out.flags.writeable = False
            self._returns.append(out)
        return self._returns[0]

    # ---------------------------------------------------------------- risk and alpha

    def risk_model(self, d: dt.date) -> RiskModel:
        """The annualised risk model at ``d`` over the names listed on ``d`` (cached per date).

        Raises:
            InputError: unknown date, or no risk source and too little history to estimate.
        """
        t = self.index_of(d)
        cached = self._risk_cache.get(t)
        if cached is None:
            source = self.risk_source or EstimatedRiskSource()
            cached = source.risk_model(self, t, self.listed(t))
            if len(self._risk_cache) > 64:
                self._risk_cache.clear()
            self._risk_cache[t] = cached
        return cached

    def true_risk_model(self, d: dt.date) -> RiskModel:
        """The generator's own model at ``d`` (synthetic markets only).

        Raises:
            InputError: the history is not synthetic, or ``d`` unknown.
        """
        if self.risk_source is None or self.risk_source.kind != "synthetic":
            raise InputError(
                "true_risk_model needs a synthetic market; use risk_model(d)", field="risk_model"
            )
        return self.risk_model(d)

    def alpha(self, d: dt.date) -> list[float]:
        """Annualised alpha per listed name at ``d`` (empty when the source has none).

        Raises:
            InputError: unknown date.
        """
        t = self.index_of(d)
        if self.alpha_table is not None:
            row = self.alpha_table[t, self.listed(t)]
            if np.isnan(row).all():
                # No view on any name that day (a per-date table not written for it): no alpha,
                # so a sleeve is refused for want of one rather than solved on a zero signal
                # (review audit, 2026-12-07: a stale table traded silently).
                return []
            # A name the table gives no view on scores 0: a sleeve neither buys nor shorts it
            # for alpha.
            return [float(x) for x in np.nan_to_num(row, nan=0.0)]
        if self.risk_source is None:
            return []
        a = self.risk_source.alpha(self, t, self.listed(t))
        return [] if a is None else [float(x) for x in a]

    def snapshot(self, d: dt.date, *, risk_model: RiskModel | None = None) -> MarketSnapshot:
        """Everything one account's solve needs on ``d``, over the names listed on ``d``.

        Args:
            d: an NYSE session of the history.
            risk_model: a model aligned with the listed names (validated); default
                :meth:`risk_model`.

        Raises:
            InputError: unknown date, or a given model that does not fit the universe.
        """
        t = self.index_of(d)
        cols = self.listed(t)
        if risk_model is None:
            risk_model = self.risk_model(d)
        validate_risk_model(risk_model, len(cols))
        weights = self.benchmark_weights[t, cols]
        return MarketSnapshot(
            as_of=d,
            benchmark=self.benchmark,
            symbols=[self.symbols[i] for i in cols],
            prices=[float(p) for p in self.prices[t, cols]],
            benchmark_weights=[float(x) for x in weights / weights.sum()],
            sectors=[self.sectors[i] for i in cols],
            risk_model=risk_model,
            alpha=self.alpha(d),
        )


@dataclass(frozen=True, kw_only=True)
class StaticRiskSource:
    """One loaded model (over all of the history's symbols) used on every date."""

    model: RiskModel
    kind: str = "loaded"

    def risk_model(self, history: MarketHistory, t: int, names: IntArray) -> RiskModel:
        """The loaded model restricted to ``names``."""
        return subset_risk_model(self.model, [int(i) for i in names])

    def alpha(self, history: MarketHistory, t: int, names: IntArray) -> FloatArray | None:
        """No alpha comes with a loaded model."""
        return None


#: Returns a name needs for its own regression in an estimated model (docs/formats.md).
ESTIMATE_MIN_OBS = 60


def estimate_min_obs(window: int) -> int:
    """``min_obs`` of an estimate from a window of ``window`` daily returns:
    :data:`ESTIMATE_MIN_OBS`, or half the window while the history is shorter than twice that
    (the first months of a directory), never below 2.  The estimator raises it to ``k + 2``.
    """
    return min(ESTIMATE_MIN_OBS, max(2, window // 2))


@dataclass(frozen=True, kw_only=True)
class EstimatedRiskSource:
    """Re-estimate the model on each date from the trailing ``lookback`` daily returns.

    With ``factor_returns`` (T×k, aligned with the history's dates) the loadings are time-series
    betas to those factors; without, a statistical model with ``n_factors`` components.
    """

    lookback: int = 252
    halflife: float | None = 126.0
    n_factors: int = 10
    factor_returns: FloatArray | None = None
    factor_names: Sequence[str] | None = None
    standardise: Sequence[str] = ()
    kind: str = "estimated"

    def risk_model(self, history: MarketHistory, t: int, names: IntArray) -> RiskModel:
        """Estimate from rows ``t−lookback+1 .. t`` over ``names``.

        A name needs :func:`estimate_min_obs` returns of the window for its own regression
        (and ``k + 2`` at least, :func:`shared.risk_model.estimate_risk_model`); names with
        fewer take their sector's median loadings and specific variance.

        Raises:
            InputError: fewer than 2 days of history before ``t``, or no name with enough
                returns (the message gives the date, the window, and have vs need).
        """
        lo = max(1, t - self.lookback + 1)
        T = t - lo + 1
        if T < 2:
            raise InputError(
                f"{history.dates[t]}: need at least 2 days of returns before the date to "
                "estimate a risk model; supply factor_loadings/factor_covariance/specific_variance",
                field="risk_model",
            )
        R = history.returns()[lo : t + 1][:, names]
        X = None if self.factor_returns is None else self.factor_returns[lo : t + 1]
        try:
            return estimate_risk_model(
                R,
                X,
                self.factor_names,
                halflife=self.halflife,
                n_factors=self.n_factors,
                min_obs=estimate_min_obs(T),
                standardise=self.standardise,
                sectors=[history.sectors[i] for i in names],
            )
        except InputError as exc:
            hint = (
                "; supply factor_loadings/factor_covariance/specific_variance or prices of "
                "earlier sessions"
                if exc.field == "returns"
                else ""
            )
            raise InputError(
                f"{history.dates[t]}: estimating the risk model from the {T} daily returns "
                f"{history.dates[lo]}..{history.dates[t]}: {exc.reason}{hint}",
                field="risk_model" if exc.field == "returns" else exc.field,
            ) from exc

    def alpha(self, history: MarketHistory, t: int, names: IntArray) -> FloatArray | None:
        """No alpha for estimated models."""
        return None
