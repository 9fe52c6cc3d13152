"""The bundled real sample (skfolio's S&P 500 data) as a market history, and a short real run."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

pytest.importorskip("skfolio")

from producer.backtest import BacktestConfig, OptimizerPolicy, simulate, summarize, window
from producer.datasets import LOOKBACK, load_sp500_sample, load_universe
from shared.errors import InputError


@pytest.fixture(scope="module")
def sample():
    return load_sp500_sample(dt.date(2016, 1, 4), dt.date(2016, 12, 30))


def test_the_sample_has_twenty_names_and_a_lookback_before_the_start(sample) -> None:
    h = sample.history
    assert len(h.symbols) == 20
    assert h.dates[LOOKBACK] == dt.date(2016, 1, 4)
    assert h.dates[-1] == dt.date(2016, 12, 30)
    assert np.isfinite(h.prices).all()


def test_the_benchmark_is_equal_weight_on_the_start_day_then_held(sample) -> None:
    h = sample.history
    assert np.allclose(h.benchmark_weights[LOOKBACK], 1 / 20)
    # held: weights drift with prices, and the level is the basket's total return
    r = h.prices[1:] / h.prices[:-1] - 1.0
    implied = (h.benchmark_weights[:-1] * r).sum(axis=1)
    assert np.allclose(h.benchmark_level[1:] / h.benchmark_level[:-1] - 1.0, implied)


def test_the_risk_model_uses_the_factor_etfs_from_2015(sample) -> None:
    snap = sample.history.snapshot(dt.date(2016, 6, 1))
    names = snap.risk_model.factor_names
    assert names[0] == "market"
    assert {"momentum", "quality", "size", "low_vol", "value"} <= set(names)
    loads = np.asarray(snap.risk_model.loadings)
    assert abs(loads[:, names.index("value")].mean()) < 1e-8  # standardised


def test_before_2015_the_risk_model_is_statistical() -> None:
    h = load_sp500_sample(dt.date(2005, 1, 3), dt.date(2005, 3, 31)).history
    names = h.snapshot(dt.date(2005, 2, 1)).risk_model.factor_names
    assert "market" not in names
    assert len(names) == 3


def test_a_window_outside_the_sample_is_rejected() -> None:
    with pytest.raises(InputError, match="outside the sample"):
        load_sp500_sample(dt.date(2030, 1, 1), dt.date(2030, 6, 1))
    with pytest.raises(InputError, match="field start"):
        load_sp500_sample(dt.date(1990, 1, 3), dt.date(1990, 6, 1))


def test_an_unknown_universe_is_rejected_naming_the_field(tmp_path) -> None:
    with pytest.raises(InputError, match="field universe"):
        load_universe("sp600", start=dt.date(2020, 1, 2), end=dt.date(2020, 2, 3))
    with pytest.raises(InputError, match="field universe"):
        load_universe("synthetic:x", start=dt.date(2020, 1, 2), end=dt.date(2020, 2, 3))


def test_a_short_real_data_run_harvests_without_wash_sales_and_tracks(sample) -> None:
    cfg = BacktestConfig(
        start=dt.date(2016, 1, 4), end=dt.date(2016, 6, 30), universe="sp500-sample",
        rebalance="weekly", audit=True,
    )  # fmt: skip
    run = simulate(sample.history, OptimizerPolicy(cfg), cfg)
    s = summarize(run, run.config or cfg)
    assert s["wash_sales_created"] == 0
    assert s["realized_te"] < 0.06
    t0, t1 = window(sample.history, cfg.start, cfg.end)
    assert len(run.dates) == t1 - t0 + 1
    assert np.isfinite(run.after_tax_nav).all()


@pytest.mark.slow
def test_a_market_directory_is_a_universe(tmp_path) -> None:
    from shared.loaders import write_market_dir
    from shared.synthetic import synthetic_market

    start, end = dt.date(2023, 1, 3), dt.date(2023, 2, 28)
    m = synthetic_market(n_names=12, start=start, end=end, seed=2, events_per_year=0)
    write_market_dir(m, tmp_path / "mkt", fmt="csv")
    loaded, reference = load_universe(str(tmp_path / "mkt"), start=start, end=end)
    assert reference is None
    assert sorted(loaded.symbols) == sorted(m.symbols)
    cfg = BacktestConfig(start=start, end=end, universe=str(tmp_path / "mkt"), audit=True)
    run = simulate(loaded, OptimizerPolicy(cfg), cfg)
    assert run.wash_sales_created == 0
    assert np.allclose(run.benchmark_nav / run.benchmark_nav[0], loaded.benchmark_level / 100.0)
