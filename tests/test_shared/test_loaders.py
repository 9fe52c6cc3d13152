from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
import pytest

from shared.errors import InputError
from shared.loaders import load_market_dir, write_market_dir
from shared.market import MarketHistory
from shared.risk_model import risk_model_arrays
from shared.synthetic import synthetic_market

DAYS = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"]


@pytest.fixture(scope="module")
def small() -> MarketHistory:
    return synthetic_market(
        n_names=30, start=dt.date(2024, 1, 1), end=dt.date(2024, 6, 28), seed=2, events_per_year=8
    )


def write_csv(path: Path, text: str) -> None:
    path.write_text(text.strip() + "\n")


def tiny_dir(tmp_path: Path, prices: str | None = None, weights: str | None = None) -> Path:
    rows = ["date,symbol,price"]
    for i, d in enumerate(DAYS):
        rows += [f"{d},AAA,{100 + i}", f"{d},BBB,{50 - i}"]
    write_csv(tmp_path / "prices.csv", prices or "\n".join(rows))
    write_csv(
        tmp_path / "benchmark_weights.csv",
        weights or "date,symbol,weight\n2024-07-01,AAA,0.6\n2024-07-01,BBB,0.4",
    )
    return tmp_path


def rejects(path: Path, match: str, field: str | None = None) -> InputError:
    with pytest.raises(InputError, match=re.escape(match)) as info:
        load_market_dir(path)
    if field is not None:
        assert info.value.field == field
    return info.value


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_a_written_market_reads_back_identically(small, tmp_path, fmt, layout):
    assert small.n_names > 30  # the fixture has index changes
    write_market_dir(small, tmp_path, fmt=fmt, layout=layout)
    got = load_market_dir(tmp_path)
    order = np.argsort(small.symbols)  # loaders sort symbols
    assert got.symbols == tuple(np.array(small.symbols)[order])
    assert got.dates == small.dates
    assert got.sectors == tuple(np.array(small.sectors)[order])
    np.testing.assert_allclose(got.prices, small.prices[:, order], rtol=1e-11)
    np.testing.assert_allclose(got.benchmark_weights, small.benchmark_weights[:, order], atol=1e-12)
    np.testing.assert_allclose(got.benchmark_level, small.benchmark_level, rtol=1e-10)
    d = small.dates[-1]
    B0, F0, d0 = risk_model_arrays(small.risk_model(d))
    B1, F1, d1 = risk_model_arrays(got.risk_model(d))
    np.testing.assert_allclose(B1, B0[order], atol=1e-10)
    np.testing.assert_allclose(F1, F0, rtol=1e-10)
    np.testing.assert_allclose(d1, d0[order], rtol=1e-10)
    snap = got.snapshot(small.dates[10])
    assert len(snap.symbols) == len(snap.risk_model.loadings) < got.n_names


def test_parquet_date_and_timestamp_columns_are_read(tmp_path):
    dates = pd.to_datetime(DAYS)
    pd.DataFrame({"date": dates.date, "AAA": [1.0, 2, 3, 4, 5]}).to_parquet(
        tmp_path / "prices.parquet"
    )
    pd.DataFrame({"date": dates[:1], "AAA": [1.0]}).to_parquet(
        tmp_path / "benchmark_weights.parquet"
    )
    hist = load_market_dir(tmp_path)
    assert hist.dates[0] == dt.date(2024, 7, 1)
    np.testing.assert_array_equal(hist.benchmark_weights, 1.0)


def test_a_price_that_is_not_a_number_names_the_file_row_and_column(tmp_path):
    text = "date,symbol,price\n2024-07-01,AAA,100\n2024-07-01,BBB,abc\n"
    err = rejects(tiny_dir(tmp_path, prices=text), "prices.csv row 2: price 'abc' is not a number")
    assert err.field == "prices.csv:price"


def test_a_wide_price_file_names_the_symbol_column_of_a_bad_cell(tmp_path):
    text = "date,AAA,BBB\n" + "\n".join(f"{d},1,2" for d in DAYS[:3]) + f"\n{DAYS[3]},1,-2\n"
    text += f"{DAYS[4]},1,2\n"
    rejects(
        tiny_dir(tmp_path, prices=text),
        "prices.csv row 4: price of BBB -2 must be > 0",
        "prices.csv:BBB",
    )


def test_a_price_no_rebalance_can_trade_is_rejected_naming_the_file_row_and_column(tmp_path):
    # The rebalance's bounds (shared.market.PRICE_QUANTUM .. MAX_PRICE_USD): a snapshot with
    # such a price would reject every account of the night.
    rows = ["date,symbol,price"] + [f"{d},AAA,{100 + i}" for i, d in enumerate(DAYS)]
    rows[3] = f"{DAYS[2]},AAA,0.00001"
    err = rejects(
        tiny_dir(tmp_path, prices="\n".join(rows), weights="date,symbol,weight\n2024-07-01,AAA,1"),
        "prices.csv row 3: price 1e-05 must be between 0.0001 and 10,000,000,000",
    )
    assert err.field == "prices.csv:price"
    text = "date,AAA,BBB\n" + "\n".join(f"{d},1,{'1e12' if d == DAYS[4] else 2}" for d in DAYS)
    rejects(
        tiny_dir(tmp_path, prices=text),
        "prices.csv row 5: price of BBB 1e+12 must be between 0.0001 and",
        "prices.csv:BBB",
    )
    ok = "date,AAA,BBB\n" + "\n".join(f"{d},0.0001,1e10" for d in DAYS)
    assert load_market_dir(tiny_dir(tmp_path, prices=ok)).prices[0].tolist() == [1e-4, 1e10]


def test_a_typed_parquet_cell_of_the_wrong_kind_is_shown_as_a_plain_value(tmp_path):
    # Not numpy reprs ("np.True_", "np.int64(20240603)").
    days = pd.to_datetime(DAYS).date
    pd.DataFrame({"date": days, "symbol": "AAA", "price": [True] * 5}).to_parquet(
        tmp_path / "prices.parquet"
    )
    tiny_dir(tmp_path, prices="date,symbol,price")  # the weights file
    (tmp_path / "prices.csv").unlink()
    err = rejects(tmp_path, "prices.parquet row 1: price True is not a number")
    assert "np." not in str(err)
    dates = [int(d.strftime("%Y%m%d")) for d in days]
    pd.DataFrame({"date": dates, "symbol": "AAA", "price": 1.0}).to_parquet(
        tmp_path / "prices.parquet"
    )
    err = rejects(tmp_path, "prices.parquet row 1: date 20240701 is not a YYYY-MM-DD date")
    assert err.field == "prices.parquet:date"


def test_dates_must_be_every_nyse_session_of_the_range_and_nothing_else(tmp_path):
    base = "date,AAA\n" + "\n".join(f"{d},1" for d in DAYS)
    rejects(
        tiny_dir(tmp_path, prices=base + "\n2024-07-04,1"),
        "2024-07-04 is not an NYSE trading day",
        "prices.csv:date",
    )
    missing = "date,AAA\n" + "\n".join(f"{d},1" for d in DAYS if d != "2024-07-03")
    rejects(tiny_dir(tmp_path, prices=missing), "trading day 2024-07-03 is missing")
    bad_date = "date,AAA\n2024-07-01,1\n07/02/2024,1"
    rejects(
        tiny_dir(tmp_path, prices=bad_date), "row 2: date '07/02/2024' is not a YYYY-MM-DD date"
    )


def test_duplicate_rows_and_gaps_in_a_listing_are_rejected(tmp_path):
    dup = "date,symbol,price\n2024-07-01,AAA,1\n2024-07-01,AAA,2"
    rejects(tiny_dir(tmp_path, prices=dup), "row 2: AAA on 2024-07-01 appears twice")
    gap = "date,AAA,BBB\n" + "\n".join(f"{d},1,{'' if d == '2024-07-03' else 2}" for d in DAYS)
    rejects(tiny_dir(tmp_path, prices=gap), "BBB has no price on 2024-07-03", "prices.csv:BBB")


def test_a_first_data_row_with_an_extra_cell_is_named_as_a_ragged_row(tmp_path):
    # pandas took the header's first column as an index: "date 'AAA' is not a date" (audit).
    rows = [f"{d},AAA,{100 + i}" for i, d in enumerate(DAYS)]
    rows[0] += ",7"
    text = "date,symbol,price\n" + "\n".join(rows)
    rejects(tiny_dir(tmp_path, prices=text), "prices.csv row 1: 4 cells, the header has 3")


def test_one_ticker_in_two_spellings_in_the_prices_is_refused_naming_both(tmp_path):
    rows = ["date,symbol,price"] + [f"{d},{s},10" for d in DAYS for s in ("AAA", "aaa", "BBB")]
    rejects(
        tiny_dir(tmp_path, prices="\n".join(rows)),
        "AAA and aaa are one ticker in two spellings",
        "prices.csv:symbol",
    )


def test_one_ticker_in_two_spellings_in_a_wide_file_names_its_column(tmp_path):
    text = "date,AAA,aaa,BBB\n" + "\n".join(f"{d},1,1,2" for d in DAYS)
    rejects(tiny_dir(tmp_path, prices=text), "AAA and aaa are one ticker", "prices.csv:aaa")


def test_float32_parquet_prices_are_refused_not_widened(tmp_path):
    # 49.1044 as float32 read back as 49.104400634765625 (audit).
    frame = pd.DataFrame(
        {
            "date": [d for d in DAYS for _ in (0, 1)],
            "symbol": ["AAA", "BBB"] * len(DAYS),
            "price": np.array([49.1044, 12.5] * len(DAYS), dtype=np.float32),
        }
    )
    path = tiny_dir(tmp_path)
    (path / "prices.csv").unlink()
    frame.to_parquet(path / "prices.parquet")
    rejects(path, "price is stored as float32", "prices.parquet:price")
    frame["price"] = frame["price"].astype(np.float64).round(4)
    frame.to_parquet(path / "prices.parquet")
    assert load_market_dir(path).prices[0, 0] == 49.1044
    # A narrow weight is read as its shortest text: 0.6 and 0.4, not 0.6000000238418579.
    weights = pd.DataFrame(
        {"date": [DAYS[0]] * 2, "symbol": ["AAA", "BBB"], "weight": np.float32([0.6, 0.4])}
    )
    (path / "benchmark_weights.csv").unlink()
    weights.to_parquet(path / "benchmark_weights.parquet")
    assert load_market_dir(path).benchmark_weights[0].tolist() == [0.6, 0.4]


def test_names_before_listing_are_nan_and_get_no_weight(tmp_path):
    prices = "date,AAA,BBB\n" + "\n".join(
        f"{d},{10 + i},{'' if i < 2 else 20 + i}" for i, d in enumerate(DAYS)
    )
    weights = "date,symbol,weight\n2024-07-01,AAA,1\n2024-07-05,AAA,0.5\n2024-07-05,BBB,0.5"
    hist = load_market_dir(tiny_dir(tmp_path, prices=prices, weights=weights))
    assert np.isnan(hist.prices[:2, 1]).all()
    np.testing.assert_array_equal(hist.benchmark_weights[:3, 1], 0.0)
    np.testing.assert_allclose(hist.benchmark_weights[3], [0.5, 0.5])
    assert hist.listed(0).tolist() == [0]
    snap = hist.snapshot(dt.date(2024, 7, 8))
    assert snap.symbols == ["AAA", "BBB"]
    assert len(snap.risk_model.specific_var) == 2
    # With no model and no history before the first date, the snapshot says what to supply.
    with pytest.raises(InputError, match="supply factor_loadings") as info:
        hist.snapshot(dt.date(2024, 7, 1))
    assert info.value.field == "risk_model"


def test_weights_between_given_dates_drift_with_prices(tmp_path):
    hist = load_market_dir(tiny_dir(tmp_path))
    W, P = hist.benchmark_weights, hist.prices
    np.testing.assert_allclose(W[0], [0.6, 0.4])
    for t in range(1, len(DAYS)):
        drifted = W[t - 1] * P[t] / P[t - 1]
        np.testing.assert_allclose(W[t], drifted / drifted.sum())
    # Given only on the last date, earlier weights drift backwards the same way.
    weights = "date,symbol,weight\n2024-07-08,AAA,0.5\n2024-07-08,BBB,0.5"
    hist = load_market_dir(tiny_dir(tmp_path, weights=weights))
    W, P = hist.benchmark_weights, hist.prices
    for t in range(len(DAYS) - 1):
        back = W[t + 1] * P[t] / P[t + 1]
        np.testing.assert_allclose(W[t], back / back.sum())
    level = hist.benchmark_level
    assert level[1] == pytest.approx(100 * (1 + W[0] @ (P[1] / P[0] - 1)))


def test_weight_sums_near_one_are_rescaled_and_others_rejected(tmp_path):
    near = "date,symbol,weight\n2024-07-01,AAA,0.6\n2024-07-01,BBB,0.396"
    hist = load_market_dir(tiny_dir(tmp_path, weights=near))
    assert hist.benchmark_weights[0].sum() == pytest.approx(1.0)
    assert hist.benchmark_weights[0, 0] == pytest.approx(0.6 / 0.996)
    off = "date,symbol,weight\n2024-07-01,AAA,0.6\n2024-07-01,BBB,0.3"
    rejects(
        tiny_dir(tmp_path, weights=off),
        "weights on 2024-07-01 sum to 0.9",
        "benchmark_weights.csv:weight",
    )
    pct = "date,symbol,weight\n2024-07-01,AAA,60\n2024-07-01,BBB,40"
    rejects(tiny_dir(tmp_path, weights=pct), "percentages")
    neg = "date,symbol,weight\n2024-07-01,AAA,1.1\n2024-07-01,BBB,-0.1"
    rejects(tiny_dir(tmp_path, weights=neg), "row 2: weight -0.1 must be >= 0")
    unknown = "date,symbol,weight\n2024-07-01,ZZZ,1"
    rejects(tiny_dir(tmp_path, weights=unknown), "symbol ZZZ has no prices")
    late = "date,symbol,weight\n2024-07-09,AAA,1"
    rejects(tiny_dir(tmp_path, weights=late), "2024-07-09 is not a date of the prices file")


def write_model(
    path: Path, cov: str, spec: str = "symbol,specific_var\nAAA,0.04\nBBB,0.09"
) -> None:
    write_csv(path / "factor_loadings.csv", "symbol,market,value\nAAA,1.1,0.5\nBBB,0.9,-0.5")
    write_csv(path / "factor_covariance.csv", cov)
    write_csv(path / "specific_variance.csv", spec)


GOOD_COV = "factor,market,value\nmarket,0.0256,0.001\nvalue,0.001,0.0016"


def test_a_vendor_model_is_loaded_and_used_on_every_date(tmp_path):
    path = tiny_dir(tmp_path)
    write_model(path, GOOD_COV)
    hist = load_market_dir(path)
    rm = hist.snapshot(dt.date(2024, 7, 3)).risk_model
    assert rm.factor_names == ["market", "value"]
    assert rm.loadings == [[1.1, 0.5], [0.9, -0.5]]
    assert rm.specific_var == [0.04, 0.09]


def test_a_vendor_model_in_percent_squared_or_daily_units_is_refused_with_a_hint(tmp_path):
    # Data audit: specific variances ×100 were accepted and the night harvested $169 where the
    # same model in fractions harvested $4,528.
    path = tiny_dir(tmp_path)
    write_model(path, GOOD_COV, spec="symbol,specific_var\nAAA,4\nBBB,9")
    rejects(path, "median specific volatility is 255%/y", "specific_variance.csv:specific_var")
    daily = "factor,market,value\nmarket,0.0001,0\nvalue,0,0.00001"
    write_model(path, daily, spec="symbol,specific_var\nAAA,0.0002\nBBB,0.0003")
    rejects(path, "daily units? annualise them ×252", "factor_covariance.csv:factor")
    write_model(path, "factor,market,value\nmarket,256,10\nvalue,10,16")
    rejects(path, "percent squared? give fractions", "factor_covariance.csv:factor")
    write_model(path, GOOD_COV)
    load_market_dir(path)  # 20–30%/y names pass


def test_a_daily_unit_specific_or_factor_file_beside_annual_ones_is_refused(tmp_path):
    # The total volatility alone let a daily specific file through (the factors dominate it):
    # the night reported TE 0.57% for a book at 6.8% (market audit).
    path = tiny_dir(tmp_path)
    write_model(path, GOOD_COV, spec="symbol,specific_var\nAAA,0.000159\nBBB,0.000357")
    rejects(path, "median specific volatility is 1.61%/y", "specific_variance.csv:specific_var")
    write_model(path, "factor,market,value\nmarket,0.0001016,0.000004\nvalue,0.000004,0.0000063")
    rejects(path, "the most volatile factor moves 1.01%/y", "factor_covariance.csv:factor")


def test_a_model_without_a_factor_is_refused_not_a_traceback(tmp_path):
    path = tiny_dir(tmp_path)
    write_model(path, "factor")
    write_csv(path / "factor_loadings.csv", "symbol\nAAA\nBBB")
    rejects(path, "names no factor", "factor_covariance.csv:factor")


def test_a_bad_vendor_model_is_rejected_naming_the_file(tmp_path):
    path = tiny_dir(tmp_path)
    write_model(path, "factor,market,value\nmarket,0.01,0.05\nvalue,0.05,0.01")
    rejects(
        path, "factor_covariance.csv: not positive semidefinite", "factor_covariance.csv:factor"
    )
    write_model(path, "factor,market,value\nmarket,0.01,0.0\nvalue,0.001,0.01")
    rejects(path, "not symmetric")
    write_model(path, "factor,value,market\nvalue,0.01,0\nmarket,0,0.01")
    load_market_dir(path)  # any factor order, as long as rows and columns agree
    write_model(path, GOOD_COV, spec="symbol,specific_var\nAAA,0.04\nBBB,-0.01")
    rejects(path, "specific_variance.csv row 2: specific_var -0.01 is negative")
    write_model(path, GOOD_COV, spec="symbol,specific_var\nAAA,0.04")
    rejects(path, "no specific_var for BBB")
    (path / "specific_variance.csv").unlink()
    rejects(
        path, "needs factor_loadings, factor_covariance and specific_variance", "specific_variance"
    )


def _cov_with_smallest_eigenvalue(low: float) -> str:
    F = np.array([[0.0256, 0.001], [0.001, 0.0016]])
    lam, V = np.linalg.eigh(F)
    F = F - (lam[0] - low) * np.outer(V[:, 0], V[:, 0])
    rows = [f"{f},{float(F[i, 0])!r},{float(F[i, 1])!r}" for i, f in enumerate(("market", "value"))]
    return "factor,market,value\n" + "\n".join(rows)


def test_a_covariance_the_loader_accepts_passes_every_rebalance_check(tmp_path):
    # One PSD tolerance (shared.risk_model.PSD_TOL, relative to max|λ| = 0.0257): -2e-10 is
    # rounding and passes the loader, each rebalance and the optimizer; -3e-10 fails them all.
    from shared.optimizer.model import factor_sqrt
    from shared.rebalance import market_arrays

    path = tiny_dir(tmp_path)
    write_model(path, _cov_with_smallest_eigenvalue(-2e-10))
    snap = load_market_dir(path).snapshot(dt.date(2024, 7, 8))
    F = np.array(snap.risk_model.factor_cov)
    assert np.linalg.eigvalsh(F)[0] == pytest.approx(-2e-10, rel=1e-3)
    np.testing.assert_array_equal(F, F.T)
    arrays = market_arrays(snap)
    G = factor_sqrt(arrays.factor_cov)
    np.testing.assert_allclose(G @ G.T, F, atol=1e-9)

    write_model(path, _cov_with_smallest_eigenvalue(-3e-10))
    rejects(path, "factor_covariance.csv: not positive semidefinite (eigenvalue -3e-10)")
    bad = msgspec.structs.replace(
        snap,
        risk_model=msgspec.structs.replace(
            snap.risk_model,
            factor_cov=[[float(x) for x in row] for row in _cov_array(-3e-10)],
        ),
    )
    with pytest.raises(InputError, match="positive semidefinite"):
        market_arrays(bad)
    with pytest.raises(InputError, match="positive semidefinite"):
        factor_sqrt(_cov_array(-3e-10))


def _cov_array(low: float) -> np.ndarray:
    lines = _cov_with_smallest_eigenvalue(low).splitlines()[1:]
    return np.array([[float(x) for x in line.split(",")[1:]] for line in lines])


def test_factor_returns_drive_the_estimated_model_when_no_model_is_given(tmp_path, small):
    write_market_dir(small, tmp_path, fmt="parquet", layout="wide", risk_model=False)
    rng = np.random.default_rng(0)
    fr = pd.DataFrame(rng.normal(0, 0.01, (len(small.dates), 2)), columns=["mkt", "val"])
    fr.insert(0, "date", [d.isoformat() for d in small.dates])
    fr.to_csv(tmp_path / "factor_returns.csv", index=False)
    hist = load_market_dir(tmp_path)
    rm = hist.risk_model(small.dates[-1])
    assert rm.factor_names == ["mkt", "val"]
    fr.iloc[:-1].to_csv(tmp_path / "factor_returns.csv", index=False)
    rejects(tmp_path, f"no factor returns on {small.dates[-1]}")


def test_an_estimate_from_too_few_returns_is_refused_naming_the_date_and_have_vs_need(tmp_path):
    # 3 factor returns + an intercept need 5 returns (k + 2); the directory's last date has 4.
    path = tiny_dir(tmp_path)
    rng = np.random.default_rng(1)
    fr = pd.DataFrame(rng.normal(0, 0.01, (len(DAYS), 3)), columns=["market", "value", "size"])
    fr.insert(0, "date", DAYS)
    fr.to_csv(path / "factor_returns.csv", index=False)
    hist = load_market_dir(path)
    with pytest.raises(InputError) as info:
        hist.snapshot(dt.date(2024, 7, 8))
    assert info.value.field == "risk_model"
    message = str(info.value)
    assert "2024-07-08: estimating the risk model from the 4 daily returns" in message
    assert "longest name has 4 daily returns, a regression on 3 factors needs 5" in message
    # Two factors need 4: the same window estimates.
    fr.drop(columns="size").to_csv(path / "factor_returns.csv", index=False)
    rm = load_market_dir(path).snapshot(dt.date(2024, 7, 8)).risk_model
    assert rm.factor_names == ["market", "value"]


def test_a_directory_with_both_csv_and_parquet_of_one_file_is_ambiguous(tmp_path):
    path = tiny_dir(tmp_path)
    pd.read_csv(path / "prices.csv").to_parquet(path / "prices.parquet")
    rejects(path, "both prices.csv and prices.parquet exist")
    with pytest.raises(
        InputError, match=re.escape("benchmark_weights.csv or benchmark_weights.parquet")
    ):
        (path / "benchmark_weights.csv").unlink()
        (path / "prices.parquet").unlink()
        load_market_dir(path)


def test_a_column_repeated_in_a_csv_header_is_refused_not_renamed(tmp_path: Path) -> None:
    from shared.loaders import read_table

    path = tmp_path / "lots.csv"
    path.write_text("account,symbol,quantity,symbol\nA,X,1,Y\n")
    with pytest.raises(InputError) as err:
        read_table(path)  # pandas alone would read "symbol" and "symbol.1"
    assert err.value.field == "lots.csv:symbol" and "appears twice" in str(err.value)
    path.write_text("account, symbol\nA,X\n")
    assert list(read_table(path).columns) == ["account", "symbol"]


def _factor_returns_dir(tmp_path: Path, small: MarketHistory, scale: float = 1.0) -> Path:
    write_market_dir(small, tmp_path, fmt="csv", layout="wide", risk_model=False)
    rng = np.random.default_rng(3)
    X = rng.normal(0, 0.01, (len(small.dates), 2)) * [1.0, 0.5]
    fr = pd.DataFrame(X * scale, columns=["market", "value"])
    fr.insert(0, "date", [d.isoformat() for d in small.dates])
    fr.to_csv(tmp_path / "factor_returns.csv", index=False)
    return tmp_path


def test_betas_to_a_directory_s_style_factor_returns_are_standardised_but_market_s_are_not(
    tmp_path, small
):
    # A tilt is a floor in standardised units (docs/formats.md "Style loadings"): the CLI paths
    # load a directory with the default, and a half-scale `value` series gave betas of std 2.1.
    path = _factor_returns_dir(tmp_path, small)
    rm = load_market_dir(path).risk_model(small.dates[-1])
    B, F, d = risk_model_arrays(rm)
    assert abs(B[:, 1].mean()) < 1e-12 and abs(B[:, 1].std() - 1) < 1e-12
    assert abs(B[:, 0].std() - 1) > 0.05  # market stays a beta
    raw = load_market_dir(path, standardise=()).risk_model(small.dates[-1])
    B0, F0, _ = risk_model_arrays(raw)
    # Standardising leaves the risk of a zero-sum (active) portfolio unchanged.
    active = np.random.default_rng(4).normal(size=len(d))
    active -= active.mean()
    assert np.isclose(active @ B @ F @ B.T @ active, active @ B0 @ F0 @ B0.T @ active)


def test_factor_returns_in_percent_are_refused_with_a_hint(tmp_path, small):
    path = _factor_returns_dir(tmp_path, small, scale=100.0)
    err = rejects(path, "factor_returns.csv: the median factor's annualised volatility is")
    assert "returns in percent? give fractions (0.01 = 1%)" in str(err)
    assert err.field == "factor_returns.csv:market"
    load_market_dir(_factor_returns_dir(tmp_path, small))  # the same in fractions loads


def test_a_csv_row_with_more_cells_than_the_header_names_its_row_on_one_line(tmp_path):
    rows = [
        "date,symbol,price",
        "2024-07-01,AAA,100",
        "",
        "2024-07-01,BBB,50",
        "2024-07-02,AAA,1,9",
    ]
    write_csv(tmp_path / "prices.csv", "\n".join(rows))
    err = rejects(tiny_dir(tmp_path, prices="\n".join(rows)), "prices.csv row 4: 4 cells, the")
    assert str(err).endswith("prices.csv row 4: 4 cells, the header has 3")
    assert err.field == "prices.csv"


def test_a_sub_cent_price_four_decimals_cannot_carry_is_refused_as_every_rebalance_would(tmp_path):
    rows = ["date,symbol,price"]
    for i, d in enumerate(DAYS):
        rows += [f"{d},AAA,{100 + i}", f"{d},BBB,{'0.00015' if i == 2 else '0.0002'}"]
    err = rejects(tiny_dir(tmp_path, prices="\n".join(rows)), "prices.csv row 6: price", None)
    assert "0.00015 would trade at 0.0002" in str(err) and err.field == "prices.csv:price"
    # An old split-adjusted price of a few cents with full digits is fine (review).
    rows = [r.replace(",0.0002", ",0.0352468").replace(",0.00015", ",0.0352468") for r in rows]
    load_market_dir(tiny_dir(tmp_path, prices="\n".join(rows)))


def test_a_misspelt_table_name_is_refused_naming_the_table_it_likely_meant(tmp_path):
    # Badinput audit: factor_return.csv silently switched the night to the statistical model.
    path = tiny_dir(tmp_path)
    write_csv(path / "factor_return.csv", "date,market\n2024-07-01,0.01")
    rejects(path, "unknown table factor_return.csv (did you mean factor_returns.csv?)")
    (path / "factor_return.csv").unlink()
    (path / "README.md").write_text("notes")  # other files are left alone
    load_market_dir(path)


def test_an_alpha_table_gives_the_snapshot_its_signal_one_for_all_dates_or_one_per_date(tmp_path):
    # Nightly audit (2026-12-07): no market directory could carry an alpha, so a market-neutral
    # sleeve run on one was rejected every night.
    path = tiny_dir(tmp_path)
    write_model(path, GOOD_COV)
    assert load_market_dir(path).snapshot(dt.date(2024, 7, 3)).alpha == []
    write_csv(path / "alpha.csv", "symbol,alpha\nAAA,0.02")
    hist = load_market_dir(path)
    # BBB has no view: 0, neither bought nor shorted for alpha.
    assert [hist.snapshot(dt.date.fromisoformat(d)).alpha for d in DAYS[:2]] == [[0.02, 0.0]] * 2
    write_csv(path / "alpha.csv", "date,symbol,alpha\n2024-07-02,AAA,0.01\n2024-07-02,BBB,-0.01")
    hist = load_market_dir(path)
    assert hist.snapshot(dt.date(2024, 7, 2)).alpha == [0.01, -0.01]
    # A night the table gives no view at all has no alpha (a sleeve is refused), not zeros.
    assert hist.snapshot(dt.date(2024, 7, 3)).alpha == []


@pytest.mark.parametrize(
    ("text", "match", "field"),
    [
        ("symbol,alpha\nAAA,12", "beyond ±10 (annualised", "alpha.csv:alpha"),
        ("symbol,alpha\nZZZ,0.01", "symbol ZZZ has no prices", "alpha.csv:symbol"),
        ("symbol,alpha\nAAA,0.01\nAAA,0.02", "AAA", None),
        ("date,symbol,alpha\n2024-07-04,AAA,0.01", "2024-07-04", None),
    ],
)
def test_a_bad_alpha_table_is_refused_naming_the_file_and_the_cell(tmp_path, text, match, field):
    path = tiny_dir(tmp_path)
    write_csv(path / "alpha.csv", text)
    err = rejects(path, match, field)
    assert "alpha.csv" in str(err)
