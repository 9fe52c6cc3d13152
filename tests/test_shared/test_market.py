from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy.stats import kurtosis

from shared.calendar import trading_days
from shared.errors import InputError
from shared.market import MarketHistory
from shared.messages import MarketSnapshot, from_wire, to_wire
from shared.risk_model import risk_model_arrays, validate_risk_model
from shared.synthetic import (
    STYLE_FACTORS,
    earliest_synthetic_start,
    synthetic_market,
    synthetic_snapshot,
)

START, END = dt.date(2019, 1, 1), dt.date(2023, 12, 31)


@pytest.fixture(scope="module")
def hist() -> MarketHistory:
    return synthetic_market(n_names=500, start=START, end=END, seed=7)


def test_the_same_seed_gives_the_same_market_and_another_seed_another():
    a = synthetic_market(n_names=60, start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 30), seed=3)
    b = synthetic_market(n_names=60, start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 30), seed=3)
    c = synthetic_market(n_names=60, start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 30), seed=4)
    np.testing.assert_array_equal(a.prices, b.prices)
    np.testing.assert_array_equal(a.benchmark_weights, b.benchmark_weights)
    assert a.symbols == b.symbols and a.sectors == b.sectors
    assert a.alpha(a.dates[10]) == b.alpha(b.dates[10])
    assert not np.allclose(np.nan_to_num(a.prices), np.nan_to_num(c.prices[:, : a.n_names]))


def test_extending_the_end_date_leaves_earlier_days_unchanged():
    short = synthetic_market(n_names=80, start=dt.date(2022, 1, 1), end=dt.date(2022, 12, 31))
    long = synthetic_market(n_names=80, start=dt.date(2022, 1, 1), end=dt.date(2023, 12, 31))
    T, n = short.prices.shape
    np.testing.assert_array_equal(short.prices, long.prices[:T, :n])
    np.testing.assert_array_equal(short.benchmark_level, long.benchmark_level[:T])
    assert short.symbols == long.symbols[:n]


def test_dates_are_nyse_sessions_from_exchange_calendars(hist):
    assert list(hist.dates) == trading_days(START, END)
    assert dt.date(2023, 7, 4) not in hist.dates
    assert dt.date(2023, 11, 24) in hist.dates  # day after Thanksgiving: open


def test_the_market_and_single_names_have_realistic_annual_volatility(hist):
    log_ret = np.diff(np.log(hist.benchmark_level))
    bench_vol = log_ret.std() * np.sqrt(252)
    assert 0.12 <= bench_vol <= 0.20
    vol = np.nanstd(hist.returns(), axis=0) * np.sqrt(252)
    share_in_range = np.mean((vol >= 0.20) & (vol <= 0.50))
    assert share_in_range >= 0.8
    # The generator's own model predicts the benchmark's risk it realises.
    d = hist.dates[-1]
    B, F, dvar = risk_model_arrays(hist.true_risk_model(d))
    w = np.array(hist.snapshot(d).benchmark_weights)
    predicted = np.sqrt(w @ B @ F @ B.T @ w + w**2 @ dvar)
    assert 0.12 <= predicted <= 0.22


def test_daily_returns_have_fat_tails(hist):
    log_ret = np.diff(np.log(hist.benchmark_level))
    assert kurtosis(log_ret, fisher=False) > 4.0
    R = hist.returns()[1:, :500]
    name_kurt = kurtosis(R, axis=0, fisher=False, nan_policy="omit")
    assert np.nanmedian(name_kurt) > 4.0


def test_benchmark_weights_sum_to_one_and_drift_with_prices(hist):
    W = hist.benchmark_weights
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)
    R = np.nan_to_num(hist.returns(), nan=0.0)
    members_same = np.all((W[1:] > 0) == (W[:-1] > 0), axis=1)
    t = int(np.flatnonzero(members_same)[5]) + 1
    drifted = W[t - 1] * (1 + R[t])
    np.testing.assert_allclose(W[t], drifted / drifted.sum(), rtol=1e-9, atol=1e-15)
    assert not np.allclose(W[t], W[t - 1])
    # The benchmark level compounds the cap-weighted returns.
    port = (W[t - 1] * R[t]).sum()
    assert hist.benchmark_level[t] == pytest.approx(hist.benchmark_level[t - 1] * (1 + port))
    assert hist.benchmark_level[0] == 100.0


def test_index_adds_and_drops_happen_and_keep_prices_consistent(hist):
    W, P = hist.benchmark_weights, hist.prices
    n_adds = hist.n_names - 500
    assert 8 <= n_adds <= 40  # about 4 a year for 500 names over 5 years
    assert ((W > 0).sum(axis=1) == 500).all()
    for i in range(500, hist.n_names):
        listed = np.flatnonzero(np.isfinite(P[:, i]))
        first = int(listed[0])
        assert first > 0
        assert np.isnan(P[:first, i]).all() and np.isfinite(P[first:, i]).all()
        assert W[first, i] > 0 and (W[:first, i] == 0).all()
    dropped = [i for i in range(500) if W[0, i] > 0 and W[-1, i] == 0]
    assert len(dropped) >= 8
    i = dropped[0]
    assert np.isfinite(P[:, i]).all()  # a name leaving the index still trades


def test_a_snapshot_covers_the_listed_names_with_an_aligned_valid_risk_model(hist):
    d = dt.date(2021, 6, 1)
    snap = hist.snapshot(d)
    t = hist.index_of(d)
    n = int(np.isfinite(hist.prices[t]).sum())
    assert len(snap.symbols) == len(snap.prices) == len(snap.benchmark_weights) == n
    assert len(snap.sectors) == len(snap.alpha) == n
    assert sum(snap.benchmark_weights) == pytest.approx(1.0)
    validate_risk_model(snap.risk_model, n)
    assert snap.risk_model.factor_names[0] == "market"
    assert snap.risk_model.factor_names[-5:] == list(STYLE_FACTORS)
    assert len(snap.risk_model.factor_names) == 1 + 11 + 5
    B = np.array(snap.risk_model.loadings)
    members = np.array(snap.benchmark_weights) > 0
    style = B[members][:, -5:]
    np.testing.assert_allclose(style.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(style.std(axis=0), 1.0, atol=0.03)
    np.testing.assert_array_equal(B[:, 1:12].sum(axis=1), 1.0)  # one sector each
    again = from_wire(to_wire(snap), MarketSnapshot)
    assert again == snap


def test_momentum_loadings_move_with_trailing_returns(hist):
    j = list(hist.factor_names).index("momentum")
    a = np.array(hist.true_risk_model(dt.date(2020, 1, 2)).loadings)[:500, j]
    b = np.array(hist.true_risk_model(dt.date(2020, 7, 1)).loadings)[:500, j]
    assert np.corrcoef(a, b)[0, 1] < 0.8
    # …and they are the 12-1 month return, standardised.
    t = hist.index_of(dt.date(2020, 7, 1))
    P = hist.prices
    raw = np.log(P[t - 21, :500] / P[t - 252, :500])
    assert np.corrcoef(raw, b)[0, 1] > 0.95


def test_alpha_predicts_next_month_returns_with_a_small_information_coefficient(hist):
    P, W = hist.prices, hist.benchmark_weights
    ics = []
    for t in range(0, len(hist.dates) - 21, 10):
        cols = hist.listed(t)
        a = np.array(hist.alpha(hist.dates[t]))
        fwd = P[t + 21, cols] / P[t, cols] - 1
        ok = np.isfinite(fwd)
        ics.append(np.corrcoef(a[ok], fwd[ok])[0, 1])
    ic = float(np.mean(ics))
    assert 0.015 <= ic <= 0.07, ic
    a = np.array(hist.alpha(hist.dates[100]))
    assert 0.01 < a.std() < 0.10  # annualised return units
    assert W.shape[0] == P.shape[0]


def test_a_backtest_history_and_a_large_nightly_snapshot_are_generated_whole():
    # Speed is measured in bench/, not asserted here (a shared machine makes timed tests flaky).
    hist = synthetic_market(
        n_names=500, start=dt.date(2020, 1, 1), end=dt.date(2024, 12, 31), seed=1
    )
    assert len(hist.symbols) >= 500 and len(hist.dates) >= 1250  # index adds; 5 years
    snap = synthetic_snapshot(dt.date(2024, 6, 3), n_names=3000)
    assert len(snap.symbols) >= 3000


def test_a_date_outside_the_history_or_not_a_session_is_rejected(hist):
    with pytest.raises(InputError) as info:
        hist.index_of(dt.date(2023, 7, 4))
    assert info.value.field == "date"
    with pytest.raises(InputError):
        hist.snapshot(dt.date(2030, 1, 2))
    with pytest.raises(InputError, match="n_names"):
        synthetic_market(n_names=1, end=dt.date(2024, 1, 5))


def test_a_synthetic_start_without_its_warm_up_year_names_start_and_the_earliest_day():
    # "need 252 NYSE sessions before 1990-01-02; the calendar has 0" under field "date", and an
    # end-only call blamed a start the caller never gave (risk-model audit).
    earliest = earliest_synthetic_start()
    assert earliest == dt.date(1990, 12, 31)
    with pytest.raises(InputError, match="1990-12-31 at the earliest, not 1990-01-02") as info:
        synthetic_market(n_names=10, start=dt.date(1990, 1, 2), end=dt.date(1991, 3, 1))
    assert info.value.field == "start"
    with pytest.raises(InputError, match=r"the default start, a year before end 1990-06-01"):
        synthetic_market(n_names=10, end=dt.date(1990, 6, 1))
    assert synthetic_market(n_names=10, start=earliest, end=earliest).dates == (earliest,)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"seed": 1.5}, "seed"),
        ({"n_names": 50.0}, "n_names"),
        ({"n_sectors": True}, "n_sectors"),
        ({"events_per_year": -5}, "events_per_year"),
        ({"events_per_year": float("nan")}, "events_per_year"),
    ],
)
def test_a_fractional_size_or_seed_or_negative_event_rate_is_an_input_error(kwargs, field):
    # seed=1.5 and n_names=50.0 were numpy TypeErrors; events_per_year=-5 ran as 0.
    args = {"n_names": 10, "start": dt.date(2023, 1, 3), "end": dt.date(2023, 2, 1), **kwargs}
    with pytest.raises(InputError) as info:
        synthetic_market(**args)
    assert info.value.field == field


def test_a_history_whose_weights_do_not_sum_to_one_is_rejected():
    dates = (dt.date(2024, 1, 2), dt.date(2024, 1, 3))
    prices = np.array([[10.0, 20.0], [11.0, 19.0]])
    with pytest.raises(InputError) as info:
        MarketHistory(
            symbols=("A", "B"),
            sectors=("X", "Y"),
            dates=dates,
            prices=prices,
            benchmark_weights=np.array([[0.5, 0.5], [0.5, 0.4]]),
            benchmark_level=np.array([100.0, 101.0]),
            factor_names=(),
        )
    assert info.value.field == "benchmark_weights"
    assert "2024-01-03" in str(info.value)


def test_a_snapshot_rejects_a_risk_model_that_does_not_fit_the_universe(hist):
    d = hist.dates[3]
    other = hist.true_risk_model(hist.dates[-1])
    if len(other.loadings) == len(hist.listed(hist.index_of(d))):
        other = type(other)(
            factor_names=other.factor_names,
            loadings=other.loadings[:-1],
            factor_cov=other.factor_cov,
            specific_var=other.specific_var[:-1],
        )
    with pytest.raises(InputError) as info:
        hist.snapshot(d, risk_model=other)
    assert info.value.field == "risk_model.loadings"


@pytest.mark.parametrize("n_sectors", [3, 13])
def test_the_number_of_sectors_shapes_the_factor_set(n_sectors):
    hist = synthetic_market(
        n_names=40, start=dt.date(2024, 1, 1), end=dt.date(2024, 2, 1), n_sectors=n_sectors
    )
    sector_factors = [f for f in hist.factor_names if f.startswith("sector:")]
    assert len(sector_factors) == n_sectors
    assert {f"sector:{s}" for s in hist.sectors} <= set(sector_factors)
    rm = hist.true_risk_model(hist.dates[-1])
    validate_risk_model(rm, len(hist.listed(len(hist.dates) - 1)))


def test_the_true_risk_model_forecasts_the_tracking_error_that_is_realised(hist):
    R = np.nan_to_num(hist.returns(), nan=0.0)
    rng = np.random.default_rng(1)
    predicted, realised = [], []
    for t0 in range(0, len(hist.dates) - 64, 63):
        cols = hist.listed(t0)
        active = -hist.benchmark_weights[t0, cols]
        active[rng.choice(len(cols), 50, replace=False)] += 1 / 50
        B, F, d = risk_model_arrays(hist.true_risk_model(hist.dates[t0]))
        y = B.T @ active  # factor form: never n×n
        predicted.append(y @ F @ y + active**2 @ d)
        realised.append((R[t0 + 1 : t0 + 64][:, cols] @ active).var() * 252)
    bias = np.sqrt(np.mean(realised) / np.mean(predicted))
    assert 0.85 < bias < 1.15
