"""Universes for the backtest: the synthetic market, the bundled real sample, a user directory.

``--universe`` takes:

* ``synthetic:N`` — :func:`shared.synthetic.synthetic_market` with N names, deterministic from
  ``--seed``; the risk model is the generator's own (true) model.
* ``sp500-sample`` — real daily prices of 20 S&P 500 stocks 1990–2022, the S&P 500 index and
  five factor ETFs (MTUM, QUAL, SIZE, USMV, VLUE, 2014–2022), as bundled inside the ``skfolio``
  package (the optional ``data`` extra: ``pip install 'taxview[data]'``).  Nothing is downloaded.
* any other value — a directory in the formats of ``docs/formats.md``
  (:func:`shared.loaders.load_market_dir`).

The sample's benchmark (there are no market caps in the sample):

* the **tracked benchmark** is the 20 names *equally weighted on the first day of the run and then
  held* — weights drift with prices exactly as cap weights do, and the benchmark never trades
  (no reconstitution, no rebalancing), so every trade the account makes is its own choice;
* its level is the total return of that basket (skfolio's prices are dividend-adjusted);
* the S&P 500 index itself (a price index, no dividends) is kept as ``reference_level`` for the
  report only — it is not what the account tracks, so it is not the benchmark NAV.

The sample's risk model is estimated from trailing returns (252 sessions, half-life 126) and
re-estimated on the first session of each month: from 2015 (once a year of ETF history exists)
a time-series regression on the market (S&P 500 index) and the five ETFs' returns *in excess of
the market* (``momentum``, ``quality``, ``size``, ``low_vol``, ``value``, loadings standardised
across the 20 names); before that a statistical model with three principal components.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shared.errors import InputError
from shared.market import EstimatedRiskSource, MarketHistory
from shared.messages import RiskModel
from shared.types import FloatArray, IntArray

#: GICS sectors of the 20 sample names (public classification, for the risk model's fallback).
SAMPLE_SECTORS: dict[str, str] = {
    "AAPL": "Information Technology",
    "AMD": "Information Technology",
    "MSFT": "Information Technology",
    "BAC": "Financials",
    "JPM": "Financials",
    "BBY": "Consumer Discretionary",
    "HD": "Consumer Discretionary",
    "CVX": "Energy",
    "XOM": "Energy",
    "RRC": "Energy",
    "GE": "Industrials",
    "JNJ": "Health Care",
    "LLY": "Health Care",
    "MRK": "Health Care",
    "PFE": "Health Care",
    "UNH": "Health Care",
    "KO": "Consumer Staples",
    "PEP": "Consumer Staples",
    "PG": "Consumer Staples",
    "WMT": "Consumer Staples",
}

#: ETF → style-factor name (ETF return minus the market's).
SAMPLE_FACTORS: dict[str, str] = {
    "MTUM": "momentum",
    "QUAL": "quality",
    "SIZE": "size",
    "USMV": "low_vol",
    "VLUE": "value",
}

#: Sessions of history loaded before ``start`` for the trailing risk-model estimate.
LOOKBACK = 252


@dataclass(kw_only=True)
class MonthlyRiskSource:
    """Risk model re-estimated on the first session of each month, from trailing returns.

    Uses the factor-return regression when the whole lookback has factor returns, else a
    statistical model.  Implements :class:`shared.market.RiskSource`.
    """

    factor_returns: FloatArray
    factor_names: tuple[str, ...]
    lookback: int = LOOKBACK
    halflife: float = 126.0
    n_statistical: int = 3
    kind: str = "estimated"
    _cache: dict[tuple[int, tuple[int, ...]], RiskModel] = field(default_factory=dict)

    def _anchor(self, history: MarketHistory, t: int) -> int:
        d = history.dates[t]
        while t > 0 and (history.dates[t - 1].year, history.dates[t - 1].month) == (
            d.year,
            d.month,
        ):
            t -= 1
        return t

    def risk_model(self, history: MarketHistory, t: int, names: IntArray) -> RiskModel:
        """The model of the month containing row ``t`` (estimated at the month's first session)."""
        a = self._anchor(history, t)
        key = (a, tuple(int(i) for i in names))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        lo = max(1, a - self.lookback + 1)
        X = self.factor_returns[lo : a + 1]
        if np.isfinite(X).all():
            source = EstimatedRiskSource(
                lookback=self.lookback,
                halflife=self.halflife,
                factor_returns=self.factor_returns,
                factor_names=self.factor_names,
                standardise=tuple(f for f in self.factor_names if f != "market"),
            )
        else:
            source = EstimatedRiskSource(
                lookback=self.lookback, halflife=self.halflife, n_factors=self.n_statistical
            )
        model = source.risk_model(history, a, names)
        self._cache[key] = model
        return model

    def alpha(self, history: MarketHistory, t: int, names: IntArray) -> FloatArray | None:
        """No alpha signal comes with the sample."""
        return None


@dataclass(frozen=True, kw_only=True)
class SampleMarket:
    """The sp500-sample history plus its reference index (S&P 500 price level)."""

    history: MarketHistory
    #: (T,) S&P 500 price index, aligned with ``history.dates``.
    reference_level: FloatArray


def _skfolio() -> tuple[object, object, object]:
    try:
        from skfolio.datasets import (
            load_factors_dataset,
            load_sp500_dataset,
            load_sp500_index,
        )
    except ImportError as exc:
        raise InputError(
            "the sp500-sample universe needs the optional data extra: pip install 'taxview[data]'",
            field="universe",
        ) from exc
    return load_sp500_dataset, load_sp500_index, load_factors_dataset


def load_sp500_sample(start: dt.date, end: dt.date) -> SampleMarket:
    """The bundled real sample as a :class:`shared.market.MarketHistory` for ``[start, end]``.

    Loads :data:`LOOKBACK` sessions before ``start`` for the risk model; the benchmark is the
    20 names equally weighted on the first session on or after ``start``, then held.

    Raises:
        InputError: skfolio missing, or the window outside 1991–2022.
    """
    load_prices, load_index, load_factors = _skfolio()
    import pandas as pd

    prices_df = load_prices()  # type: ignore[operator]
    index_df = load_index()  # type: ignore[operator]
    factors_df = load_factors()  # type: ignore[operator]
    first, last = prices_df.index[0].date(), prices_df.index[-1].date()
    all_dates = [ts.date() for ts in prices_df.index]
    t_start = bisect.bisect_left(all_dates, start)
    if start > last or end < first or end < start:
        raise InputError(
            f"window {start}..{end} is outside the sample ({first}..{last})", field="start"
        )
    from shared.calendar import trading_days

    if end > last and trading_days(last + dt.timedelta(days=1), end):
        raise InputError(
            f"--end {end}: the sample ends {last} (it covers {first}..{last})", field="end"
        )
    if t_start < 60:
        raise InputError(
            f"the sample starts {first}; start on or after {all_dates[60]} so the risk model has "
            "60 sessions of history",
            field="start",
        )
    lo = max(0, t_start - LOOKBACK)
    hi = bisect.bisect_right(all_dates, end)
    frame = prices_df.iloc[lo:hi]
    symbols = tuple(str(c) for c in frame.columns)
    P = frame.to_numpy(dtype=np.float64)
    if not np.isfinite(P).all() or (P <= 0).any():
        raise InputError("the bundled sample has a missing or non-positive price", field="prices")
    dates = tuple(ts.date() for ts in frame.index)
    k0 = t_start - lo
    shares = (1.0 / len(symbols)) / P[k0]
    value = P @ shares
    weights = (P * shares) / value[:, None]
    level = 100.0 * value / value[0]
    market_ret = index_df["SP500"].iloc[lo:hi].pct_change().to_numpy(dtype=np.float64)
    etf = factors_df.reindex(pd.DatetimeIndex(frame.index)).pct_change()
    cols = [market_ret]
    names = ["market"]
    for etf_name, factor in SAMPLE_FACTORS.items():
        cols.append(etf[etf_name].to_numpy(dtype=np.float64) - market_ret)
        names.append(factor)
    X = np.column_stack(cols)
    history = MarketHistory(
        symbols=symbols,
        sectors=tuple(SAMPLE_SECTORS.get(s, "Other") for s in symbols),
        dates=dates,
        prices=P,
        benchmark_weights=weights,
        benchmark_level=level,
        factor_names=tuple(names),
        risk_source=MonthlyRiskSource(factor_returns=X, factor_names=tuple(names)),
        benchmark="sp500-sample-20",
    )
    reference = index_df["SP500"].iloc[lo:hi].to_numpy(dtype=np.float64)
    return SampleMarket(history=history, reference_level=reference)


#: ``synthetic`` or ``synthetic:N``.
_SYNTHETIC = re.compile(r"synthetic(?::(\d+))?", re.ASCII)


def is_synthetic(spec: str) -> bool:
    """Whether ``--universe`` names the synthetic market (``synthetic`` or ``synthetic:N``)."""
    return _SYNTHETIC.fullmatch(spec) is not None


#: Most names of a synthetic universe (a backtest's market lives in memory: 10,000 names over
#: 5 years is ~1 GB of prices, loadings and weights).
MAX_SYNTHETIC_NAMES = 10_000


def load_universe(
    spec: str, *, start: dt.date, end: dt.date, seed: int = 0
) -> tuple[MarketHistory, FloatArray | None]:
    """Resolve ``--universe`` to a market history (and a reference index level, if any).

    Args:
        spec: ``synthetic:N``, ``sp500-sample`` or a directory.
        start: first day of the run.
        end: last day of the run.
        seed: the synthetic market's seed.

    Raises:
        InputError: unknown universe, bad N, missing directory, or bad data (field named).
    """
    synthetic = _SYNTHETIC.fullmatch(spec)
    if synthetic is not None or spec.startswith("synthetic:"):
        # Only ``synthetic`` or ``synthetic:N``: a directory named ``synthetic_mkt`` ran the
        # synthetic market instead (runner audit), and "synthetics:30" did too.
        if synthetic is None:
            raise InputError(f"{spec!r}: N must be a whole number (synthetic:N)", field="universe")
        n = int(synthetic.group(1) or 500)
        if not 2 <= n <= MAX_SYNTHETIC_NAMES:
            raise InputError(
                f"{spec!r}: between 2 and {MAX_SYNTHETIC_NAMES:,} names", field="universe"
            )
        from shared.synthetic import synthetic_market

        return synthetic_market(n_names=n, start=start, end=end, seed=seed), None
    if spec == "sp500-sample":
        sample = load_sp500_sample(start, end)
        return sample.history, sample.reference_level
    if not spec.strip():
        raise InputError("--universe is empty", field="universe")
    path = Path(spec)
    if not path.is_dir():
        raise InputError(
            f"{spec!r} is not synthetic:N, sp500-sample, or an existing directory",
            field="universe",
        )
    from shared.loaders import load_market_dir

    return load_market_dir(path), None
