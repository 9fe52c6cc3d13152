"""``taxview-runner`` audit fixes: baselines under exclusions, the tax split, sector tilts, early
refusals, the summary line, annual-netting washes across a year end, cent-exact lot basis."""

from __future__ import annotations

import json

import pytest

from producer.runner_cli import build_parser, main

_SHORT = ["--start", "2020-01-02", "--end", "2020-01-31", "--universe", "synthetic:5", "--quiet"]


def test_a_sector_tilt_is_parsed_at_its_last_colon() -> None:
    args = build_parser().parse_args(
        ["--start", "2020-01-02", "--end", "2020-02-01", "--tilt", "sector:Energy:0.1"]
    )
    assert args.tilt == [("sector:Energy", 0.1)]


@pytest.mark.parametrize(
    ("flag", "value"), [("--te-budget", "0"), ("--max-weight", "0"), ("--max-weight", "5")]
)
def test_a_bad_account_setting_is_refused_before_the_market_loads_and_leaves_no_directory(
    flag, value, tmp_path, capsys, monkeypatch
) -> None:
    import producer.datasets

    def no_market(*args, **kwargs):
        raise AssertionError("the market loaded before the settings were checked")

    monkeypatch.setattr(producer.datasets, "load_universe", no_market)
    out = tmp_path / "out"
    rc = main([*_SHORT, flag, value, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    assert f"field {flag}" in err
    assert not out.exists()


@pytest.mark.parametrize("strategy", ["long-short", "market-neutral"])
def test_baselines_are_refused_for_a_strategy_they_cannot_stand_for(
    strategy, tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    rc = main([*_SHORT, "--strategy", strategy, "--baselines", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    assert "field --baselines" in err
    assert not out.exists()


def test_a_capital_in_exponent_form_is_written_as_plain_cents(tmp_path) -> None:
    out = tmp_path / "out"
    assert main([*_SHORT, "--capital", "1e3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["capital_usd"] == "1000.00"


def test_the_summary_line_counts_the_held_and_relaxed_days(tmp_path, capsys) -> None:
    # A 0.1% cap on five names cannot hold a fully invested book: every day is held.
    out = tmp_path / "out"
    assert main([*_SHORT, "--max-weight", "0.001", "--out", str(out)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    summary = json.loads((out / "summary.json").read_text())
    rebalances = summary["rebalances"]
    assert f"{rebalances} rebalances ({rebalances} held, 0 relaxed)" in line


def test_the_market_neutral_chart_labels_its_flat_line_as_cash() -> None:
    import datetime as dt
    from types import SimpleNamespace

    import numpy as np

    from producer.reports import nav_figure

    run = SimpleNamespace(
        dates=[dt.date(2020, 1, 2), dt.date(2020, 1, 3)],
        benchmark_nav=np.array([1e6, 1e6]),
        after_tax_nav=np.array([1e6, 1.01e6]),
        config=SimpleNamespace(strategy="market-neutral"),
    )
    labels = [t.get_text() for t in nav_figure(run, "t").axes[0].get_legend().get_texts()]
    assert labels == ["Cash benchmark", "After-tax NAV"]
