"""A synthetic equity market, deterministic from a seed, that looks like a real one.

:func:`synthetic_market` simulates daily prices of ``n_names`` stocks over NYSE sessions with a
factor model ``r_t = B_{t−1} f_t + ε_t``:

* **Factors** (:data:`STYLE_FACTORS` and friends): ``market`` (loading = beta, cap-weighted mean
  1 at the start), one dummy per sector (``sector:<name>``, GICS names), and five styles
  ``size`` (log market cap), ``value``, ``momentum`` (12-1 month trailing return, recomputed
  every day from the simulated prices), ``quality`` and ``low_vol`` (minus log total vol).
  Style loadings are winsorised at ±3 and standardised every day to **equal-weighted mean 0,
  std 1 over that day's benchmark constituents**; names outside the index are scored with the
  same mean and std.
* **Factor returns**: multivariate Student-t (df 4, one mixing draw per day, so bad days hit
  every factor at once), scaled to annual vols of 16% (market), 4–14% (sectors, relative to the
  market) and 3–6% (styles), with mild correlations and small drifts (market +7%/y).
* **Specific returns**: Student-t (df 5) with annual specific vols log-normal around 24%,
  higher for small caps, so single-name total vols are mostly 20–50%/y.
* **Caps** log-normal (median $20bn, a few names near $1tn); shares outstanding are fixed, so
  the cap-weighted benchmark's weights drift with prices every day.
* **Index changes**: about ``n_names/125`` a year (4 for 500 names).  Each is a pair on one day:
  a name from the smallest decile of the index leaves (weight 0 from that day, prices go on),
  and a new listing joins (NaN prices before its listing day, first price on it).
* **Alpha**: a noisy signal with information coefficient :data:`ALPHA_IC` against each name's
  next :data:`ALPHA_HORIZON`-day specific return, in annualised return units
  (``α_i = IC·σ_i·√(252/H)·score_i``, Grinold's "alpha = IC × volatility × score").

Determinism: everything is a function of ``(seed, n_names, n_sectors, start, end)``, and each
random component has its own stream, so extending ``end`` leaves all earlier rows unchanged.
A year of warm-up sessions before ``start`` is simulated (and not returned) so that momentum is
defined on the first day.  Prices depend on ``start``: two windows with different starts are
different markets.  Dividends are not modelled separately (prices are total-return prices).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.calendar import trading_days_array, trading_days_before
from shared.errors import InputError
from shared.market import MarketHistory
from shared.messages import MarketSnapshot, RiskModel
from shared.risk_model import TRADING_DAYS_PER_YEAR, make_risk_model
from shared.types import FloatArray, IntArray

BoolArray = npt.NDArray[np.bool_]

#: GICS sectors with their approximate share of S&P 500 constituents (by count).
GICS_SECTORS: tuple[tuple[str, float, float], ...] = (
    # (name, share of names, annual vol of the sector factor relative to the market)
    ("Information Technology", 0.14, 0.08),
    ("Health Care", 0.12, 0.06),
    ("Financials", 0.14, 0.07),
    ("Consumer Discretionary", 0.10, 0.06),
    ("Communication Services", 0.05, 0.07),
    ("Industrials", 0.15, 0.04),
    ("Consumer Staples", 0.07, 0.06),
    ("Energy", 0.05, 0.14),
    ("Utilities", 0.06, 0.09),
    ("Real Estate", 0.06, 0.09),
    ("Materials", 0.06, 0.06),
)
#: The market factor's name.
MARKET = "market"
#: Style factors, standardised cross-sectionally.
STYLE_FACTORS: tuple[str, ...] = ("size", "value", "momentum", "quality", "low_vol")
#: Annual vol and drift of the market and the style factors.
_MARKET_VOL, _MARKET_DRIFT = 0.16, 0.07
_STYLE_VOL = np.array([0.03, 0.045, 0.06, 0.03, 0.05])
_STYLE_DRIFT = np.array([-0.005, 0.01, 0.02, 0.015, 0.005])
#: Degrees of freedom of the factor (multivariate) and specific Student-t draws.
FACTOR_DF, SPECIFIC_DF = 4.0, 5.0
#: Sessions of warm-up simulated before ``start`` (momentum needs 12 months of history).
WARMUP_DAYS = 252
#: Momentum window: return from 252 to 21 sessions ago ("12-1").
_MOM_LONG, _MOM_SKIP = 252, 21
#: Alpha signal: information coefficient against the next ``ALPHA_HORIZON`` days' specific return.
ALPHA_IC, ALPHA_HORIZON = 0.04, 21
#: Benchmark level on the first date.
LEVEL_BASE = 100.0
#: Winsorisation bound of style scores (standard deviations).
_WINSOR = 3.0

_STREAM_STATIC, _STREAM_FNORM, _STREAM_FCHI, _STREAM_SPEC, _STREAM_EVENTS = 0, 1, 2, 3, 4
_STREAM_ADD, _STREAM_ALPHA = 5, 6


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _sector_table(n_sectors: int) -> tuple[list[str], FloatArray, FloatArray]:
    if n_sectors < 1:
        raise InputError(f"n_sectors must be >= 1, got {n_sectors}", field="n_sectors")
    names, share, vol = [], [], []
    for j in range(n_sectors):
        if j < len(GICS_SECTORS):
            s, p, v = GICS_SECTORS[j]
        else:
            s, p, v = f"Sector {j + 1}", 0.06, 0.07
        names.append(s)
        share.append(p)
        vol.append(v)
    p_arr = np.array(share)
    return names, p_arr / p_arr.sum(), np.array(vol)


def _tickers(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` distinct 3-letter tickers (4 letters beyond 17,576), in a seeded order."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if count <= 26**3:
        codes = rng.permutation(26**3)[:count]
        return [letters[c // 676] + letters[(c // 26) % 26] + letters[c % 26] for c in codes]
    codes = rng.permutation(26**4)[:count]
    return [
        letters[c // 17576] + letters[(c // 676) % 26] + letters[(c // 26) % 26] + letters[c % 26]
        for c in codes
    ]


@dataclass
class _Names:
    """Static characteristics of every name (initial constituents, then listings in order)."""

    sector: IntArray
    beta: FloatArray
    spec_vol: FloatArray
    log_shares: FloatArray
    value: FloatArray
    quality: FloatArray
    log_price0: FloatArray


def _draw_names(rng: np.random.Generator, m: int, sector_p: FloatArray) -> _Names:
    """Draw ``m`` names' static characteristics (fixed draw order: keep it stable)."""
    sector = rng.choice(len(sector_p), size=m, p=sector_p).astype(np.int64)
    log_cap = math.log(20e9) + 1.1 * rng.standard_normal(m)
    size_z = (log_cap - math.log(20e9)) / 1.1
    beta = np.clip(1.0 + 0.25 * rng.standard_normal(m), 0.4, 2.0)
    spec_vol = np.clip(0.24 * np.exp(-0.12 * size_z + 0.3 * rng.standard_normal(m)), 0.10, 0.70)
    value = rng.standard_normal(m)
    quality = -0.4 * (np.log(spec_vol) - math.log(0.24)) / 0.3 + 0.9 * rng.standard_normal(m)
    log_price0 = rng.uniform(math.log(15.0), math.log(400.0), size=m)
    return _Names(
        sector=sector,
        beta=beta,
        spec_vol=spec_vol,
        log_shares=log_cap - log_price0,
        value=value,
        quality=quality,
        log_price0=log_price0,
    )


def _concat(a: _Names, b: _Names) -> _Names:
    return _Names(
        **{f: np.concatenate([getattr(a, f), getattr(b, f)]) for f in _Names.__dataclass_fields__}
    )


def _factor_cov(sector_vol: FloatArray) -> FloatArray:
    """Annualised factor covariance: market, sectors, styles (in that order)."""
    ns = len(sector_vol)
    k = 1 + ns + len(STYLE_FACTORS)
    C = np.eye(k)
    sec = slice(1, 1 + ns)
    C[sec, sec] = 0.8 * np.eye(ns) + 0.2
    st = 1 + ns
    size, value, mom, qual, lowvol = range(st, st + 5)
    for i, j, c in (
        (value, mom, -0.3),
        (qual, lowvol, 0.3),
        (size, value, 0.1),
        (0, lowvol, -0.3),
        (0, size, 0.1),
        (mom, qual, 0.1),
    ):
        C[i, j] = C[j, i] = c
    vol = np.concatenate([[_MARKET_VOL], sector_vol, _STYLE_VOL])
    F: FloatArray = C * np.outer(vol, vol)
    return F


class _Simulation:
    """The generator's state: everything needed for the per-date true model and alpha."""

    kind = "synthetic"

    def __init__(
        self,
        *,
        seed: int,
        names: _Names,
        sector_names: list[str],
        factor_cov: FloatArray,
        log_price: FloatArray,
        member: BoolArray,
        first: IntArray,
        spec: FloatArray,
        offset: int,
    ) -> None:
        self.seed = seed
        self.names = names
        self.sector_names = sector_names
        self.factor_cov = factor_cov
        self.log_price = log_price
        self.member = member
        self.first = first
        self.spec = spec
        self.offset = offset
        self.factor_names = [MARKET, *(f"sector:{s}" for s in sector_names), *STYLE_FACTORS]
        ns = len(sector_names)
        N = len(names.beta)
        total_var = (
            names.beta**2 * _MARKET_VOL**2
            + factor_cov[1 + names.sector, 1 + names.sector]
            + names.spec_vol**2
        )
        self.low_vol_raw = -0.5 * np.log(total_var)
        self.static = np.zeros((N, 1 + ns))
        self.static[:, 0] = names.beta
        self.static[np.arange(N), 1 + names.sector] = 1.0

    def loadings(self, t: int) -> FloatArray:
        """N×k loadings at internal row ``t`` (rows of unlisted names are 0)."""
        lp = self.log_price
        listed = np.isfinite(lp[t])
        N = lp.shape[1]
        raw = np.empty((N, len(STYLE_FACTORS)))
        raw[:, 0] = self.names.log_shares + lp[t]
        raw[:, 1] = self.names.value
        a = max(t - _MOM_SKIP, 0)
        b = np.maximum(np.maximum(t - _MOM_LONG, 0), self.first)
        mom = lp[a] - lp[b, np.arange(N)]
        mom[(a - self.first) < _MOM_SKIP] = np.nan
        raw[:, 2] = mom
        raw[:, 3] = self.names.quality
        raw[:, 4] = self.low_vol_raw
        members = self.member[t] & listed
        z = _standardise(raw, members)
        z[~listed] = 0.0
        B = np.concatenate([self.static, z], axis=1)
        B[~listed] = 0.0
        return B

    def risk_model(self, history: MarketHistory, t: int, names: IntArray) -> RiskModel:
        """The true model at window row ``t`` over columns ``names``."""
        B = self.loadings(t + self.offset)[names]
        d = self.names.spec_vol[names] ** 2
        return make_risk_model(self.factor_names, B, self.factor_cov, d)

    def alpha(self, history: MarketHistory, t: int, names: IntArray) -> FloatArray | None:
        """``α_i = IC·σ_i·√(252/H)·score_i``, ``score = IC·z_future + √(1−IC²)·noise``."""
        r = t + self.offset
        fut = self.spec[r + 1 : r + 1 + ALPHA_HORIZON][:, names]
        fut = np.nan_to_num(fut, nan=0.0).sum(axis=0)
        sig_h = self.names.spec_vol[names] * math.sqrt(ALPHA_HORIZON / TRADING_DAYS_PER_YEAR)
        z = fut / sig_h
        noise = _stream(self.seed, _STREAM_ALPHA, history.dates[t].toordinal()).standard_normal(
            len(self.names.beta)
        )[names]
        score = ALPHA_IC * z + math.sqrt(1 - ALPHA_IC**2) * noise
        out: FloatArray = (
            ALPHA_IC
            * self.names.spec_vol[names]
            * math.sqrt(TRADING_DAYS_PER_YEAR / ALPHA_HORIZON)
            * score
        )
        return out


def _standardise(raw: FloatArray, members: BoolArray) -> FloatArray:
    """Winsorised z-scores of each column over ``members`` (equal weights); NaN → 0."""
    z = raw.copy()
    for _ in range(2):  # standardise, winsorise, standardise again
        ref = z[members]
        ok = np.isfinite(ref)
        cnt = ok.sum(axis=0)
        mean = np.where(cnt > 0, np.where(ok, ref, 0.0).sum(axis=0) / np.maximum(cnt, 1), 0.0)
        dev = np.where(ok, ref - mean, 0.0)
        std = np.sqrt((dev**2).sum(axis=0) / np.maximum(cnt, 1))
        z = (z - mean) / np.where(std > 0, std, 1.0)
        z = np.clip(z, -_WINSOR, _WINSOR)
    out: FloatArray = np.nan_to_num(z, nan=0.0)
    return out


def earliest_synthetic_start() -> dt.date:
    """The first session a synthetic market can start on: :data:`WARMUP_DAYS` sessions after the
    NYSE calendar's first (``shared.calendar.CALENDAR_START``), for its warm-up year."""
    from shared.calendar import CALENDAR_END, CALENDAR_START

    return dt.date.fromisoformat(str(trading_days_array(CALENDAR_START, CALENDAR_END)[WARMUP_DAYS]))


def synthetic_market(
    *,
    n_names: int = 500,
    start: dt.date | None = None,
    end: dt.date,
    seed: int = 0,
    n_sectors: int = 11,
    events_per_year: float | None = None,
) -> MarketHistory:
    """Simulate a market over the NYSE sessions ``start..end`` (see the module docstring).

    Args:
        n_names: index constituents (constant: every drop comes with an add).
        start: first calendar day; default one year before ``end``.
        end: last calendar day.
        seed: the seed; same arguments, same market.
        n_sectors: sectors (the first 11 are the GICS sectors).
        events_per_year: index changes a year; default ``n_names / 125``.

    Returns:
        The history, with the generator's true risk model and alpha as its risk source.

    Raises:
        InputError: ``n_names < 2``, a negative or fractional seed, a negative
            ``events_per_year``, no session in the range, a first session before
            :func:`earliest_synthetic_start` (the warm-up year must lie in the calendar).
    """
    # Whole numbers only (risk-model audit: seed=1.5 or n_names=50.0 were numpy TypeErrors).
    for fname, value in (("n_names", n_names), ("seed", seed), ("n_sectors", n_sectors)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{fname} must be a whole number, got {value!r}", field=fname)
    if n_names < 2:
        raise InputError(f"n_names must be >= 2, got {n_names}", field="n_names")
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}", field="seed")
    if events_per_year is not None and not (
        math.isfinite(events_per_year) and events_per_year >= 0
    ):
        raise InputError(
            f"events_per_year must be a number >= 0, got {events_per_year!r}",
            field="events_per_year",
        )
    defaulted = start is None
    if start is None:
        start = end - dt.timedelta(days=365)
    earliest = earliest_synthetic_start()

    def too_early(first: dt.date) -> InputError:
        # The year of warm-up sessions before the window must lie in the calendar too
        # (risk-model audit: "need 252 NYSE sessions before 1990-01-02", field "date").
        return InputError(
            f"a synthetic market simulates {WARMUP_DAYS} warm-up sessions before its first "
            f"day, so it can start on {earliest} at the earliest, not {first}"
            + (f" (the default start, a year before end {end})" if defaulted else ""),
            field="start",
        )

    if defaulted and start < earliest:
        raise too_early(start)
    days = trading_days_array(start, end)
    T = len(days)
    if T == 0:
        raise InputError(f"no NYSE session between {start} and {end}", field="start")
    first_day = dt.date.fromisoformat(str(days[0]))
    if first_day < earliest:
        raise too_early(first_day)
    warm = trading_days_before(first_day, WARMUP_DAYS)
    W = len(warm)
    TT = W + T
    H = ALPHA_HORIZON
    sector_names, sector_p, sector_vol = _sector_table(n_sectors)
    F = _factor_cov(sector_vol)
    k = F.shape[0]

    # Index-change days (window rows only) and the names listed on them.
    rate = (n_names / 125.0 if events_per_year is None else events_per_year) / 252.0
    event_rows = np.flatnonzero(_stream(seed, _STREAM_EVENTS).random(T) < rate)
    event_rows = event_rows[event_rows > 0]
    n_add = len(event_rows)
    rng_static = _stream(seed, _STREAM_STATIC)
    tickers = _tickers(rng_static, n_names + max(n_add, 0))
    names = _draw_names(rng_static, n_names, sector_p)
    add_rngs = [_stream(seed, _STREAM_ADD, j) for j in range(n_add)]
    for rng in add_rngs:
        names = _concat(names, _draw_names(rng, 1, sector_p))
    # Scale betas so the initial cap-weighted beta is 1.
    cap0 = np.exp(names.log_shares[:n_names] + names.log_price0[:n_names])
    names.beta = names.beta / float(np.average(names.beta[:n_names], weights=cap0))
    N = n_names + n_add

    # Factor returns: multivariate t with a common daily mixing variable.
    L = np.linalg.cholesky(F / TRADING_DAYS_PER_YEAR)
    z = _stream(seed, _STREAM_FNORM).standard_normal((TT, k))
    chi = _stream(seed, _STREAM_FCHI).chisquare(FACTOR_DF, TT)
    mix = np.sqrt((FACTOR_DF - 2.0) / chi)
    drift = np.concatenate([[_MARKET_DRIFT], np.zeros(len(sector_names)), _STYLE_DRIFT])
    f = drift / TRADING_DAYS_PER_YEAR + (z @ L.T) * mix[:, None]

    # Specific returns, H extra rows for the alpha's look-ahead.
    t_scale = 1.0 / math.sqrt(SPECIFIC_DF / (SPECIFIC_DF - 2.0))
    spec = np.full((TT + H, N), np.nan)
    spec[:, :n_names] = _stream(seed, _STREAM_SPEC).standard_t(SPECIFIC_DF, (TT + H, n_names))
    first = np.zeros(N, dtype=np.int64)
    for j, row in enumerate(event_rows):
        r0 = W + int(row)
        first[n_names + j] = r0
        spec[r0:, n_names + j] = _stream(seed, _STREAM_ADD, j, 1).standard_t(
            SPECIFIC_DF, TT + H - r0
        )
    spec *= t_scale * names.spec_vol / math.sqrt(TRADING_DAYS_PER_YEAR)

    log_price = np.full((TT, N), np.nan)
    log_price[0, :n_names] = names.log_price0[:n_names]
    member = np.zeros((TT, N), dtype=bool)
    member[0, :n_names] = True
    sim = _Simulation(
        seed=seed,
        names=names,
        sector_names=sector_names,
        factor_cov=F,
        log_price=log_price,
        member=member,
        first=first,
        spec=spec,
        offset=W,
    )
    events = {W + int(row): j for j, row in enumerate(event_rows)}
    B = sim.loadings(0)
    for t in range(1, TT):
        r = B @ f[t] + spec[t]
        log_price[t] = log_price[t - 1] + np.log1p(np.maximum(r, -0.95))
        member[t] = member[t - 1]
        if t in events:
            j = events[t]
            _index_change(sim, t, n_names + j, add_rngs[j])
        B = sim.loadings(t)

    win = slice(W, TT)
    prices = np.exp(log_price[win])
    caps = np.where(member[win], np.exp(names.log_shares + log_price[win]), 0.0)
    weights = caps / caps.sum(axis=1, keepdims=True)
    simple = np.nan_to_num(prices[1:] / prices[:-1] - 1.0, nan=0.0)
    port = (weights[:-1] * simple).sum(axis=1)
    level = LEVEL_BASE * np.concatenate([[1.0], np.cumprod(1.0 + port)])
    return MarketHistory(
        symbols=tuple(tickers[:N]),
        sectors=tuple(sector_names[s] for s in names.sector),
        dates=tuple(dt.date.fromisoformat(str(x)) for x in days),
        prices=prices,
        benchmark_weights=weights,
        benchmark_level=level,
        factor_names=tuple(sim.factor_names),
        risk_source=sim,
        benchmark="synthetic",
    )


def _index_change(sim: _Simulation, t: int, new: int, rng: np.random.Generator) -> None:
    """At internal row ``t``: drop a name from the smallest decile of the index, list ``new``."""
    members = np.flatnonzero(sim.member[t])
    caps = sim.names.log_shares[members] + sim.log_price[t, members]
    smallest = members[np.argsort(caps)[: max(1, len(members) // 10)]]
    drop = int(smallest[rng.integers(len(smallest))])
    sim.member[t, drop] = False
    sim.log_price[t, new] = sim.names.log_price0[new]
    sim.member[t, new] = True


def synthetic_snapshot(
    d: dt.date, *, n_names: int = 500, seed: int = 0, n_sectors: int = 11
) -> MarketSnapshot:
    """One snapshot at session ``d`` from a one-year synthetic history ending on ``d``.

    Raises:
        InputError: ``d`` is not an NYSE session, or bad generator arguments.
    """
    hist = synthetic_market(n_names=n_names, end=d, seed=seed, n_sectors=n_sectors)
    return hist.snapshot(d)
