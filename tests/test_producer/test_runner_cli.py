"""``taxview-runner``: the DESIGN.md §5 output contract and one-line errors."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from producer.reports import NAV_COLUMNS
from producer.runner_cli import build_parser, main
from shared.errors import InputError


def test_help_documents_every_option(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--start", "--universe", "--baselines", "--sweep", "--tax-netting", "--tilt"):
        assert flag in out


def test_a_malformed_date_exits_2_with_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--start", "2020-13-01", "--end", "2020-12-31"])
    assert exc.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_an_unknown_universe_exits_2_naming_the_field(capsys, tmp_path) -> None:
    rc = main(
        [
            "--start",
            "2020-01-02",
            "--end",
            "2020-02-28",
            "--universe",
            "nasdaq-everything",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    assert "field universe" in err
    assert "Traceback" not in err


def test_an_end_before_the_start_exits_2(capsys, tmp_path) -> None:
    rc = main(
        [
            "--start",
            "2020-03-02",
            "--end",
            "2020-02-28",
            "--universe",
            "synthetic:5",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert rc == 2
    assert "taxview-runner: error:" in capsys.readouterr().err


def test_a_bad_tilt_is_refused_by_the_parser() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--start", "2020-01-02", "--end", "2020-02-01", "--tilt", "q"])


@pytest.mark.slow
def test_a_run_writes_the_contract_files(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    rc = main(
        [
            "--start", "2021-03-01", "--end", "2021-04-30", "--universe", "synthetic:25",
            "--seed", "3", "--baselines", "--sweep", "lambda_tax=0.5,2", "--out", str(out),
            "--quiet",
        ]
    )  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tax alpha" in printed
    assert "threshold harvester" in printed
    with open(out / "nav.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0][: len(NAV_COLUMNS)]) == NAV_COLUMNS
    assert rows[1][0] == "2021-03-01"
    assert abs(float(rows[1][3]) - 1_000_000) < 0.01  # benchmark NAV starts at the capital
    for row in rows[1:]:
        assert len(row[1].split(".")[1]) == 2  # money to the cent
    summary = json.loads((out / "summary.json").read_text())
    for key in (
        "annual_tax_alpha",
        "realized_te",
        "pre_tax_active_return",
        "harvested_losses",
        "turnover",
        "wash_sales_created",
        "rebalances",
        "seconds",
    ):
        assert key in summary
    assert summary["wash_sales_created"] == 0
    assert summary["settings"]["seed"] == 3
    assert summary["settings"]["baselines"] is True
    assert summary["settings"]["sweep"] == "lambda_tax=0.5,2"
    assert summary["settings"]["harvest_threshold"] > 0
    assert summary["rebalances"] == len(rows) - 1
    assert set(summary["baselines"]) == {"hold-index", "threshold-harvest"}
    assert [p["lambda_tax"] for p in summary["frontier"]] == [0.5, 2.0]
    assert summary["comparison"]["verdict"]
    for name in ("nav.png", "tradeoff.png", "report.html"):
        assert (out / name).stat().st_size > 1000
    assert (out / "nav.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.html").read_text()
    assert "Risk panel" in report
    assert "Sample trade tickets" in report


def test_a_lambda_tax_sweep_with_the_baselines_completes_when_a_matched_point_is_added(
    tmp_path, capsys
) -> None:
    # Not comparable at equal TE on this window: the runner adds a point at the harvester's TE
    # that varies lambda_te, next to the lambda_tax sweep (it used to crash the chart).
    out = tmp_path / "run"
    rc = main(
        [
            "--start", "2024-01-02", "--end", "2024-01-12", "--universe", "synthetic:60",
            "--baselines", "--sweep", "lambda_tax=0.5,1", "--out", str(out), "--quiet",
        ]
    )  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    frontier = json.loads((out / "summary.json").read_text())["frontier"]
    assert [p["lambda_tax"] for p in frontier if "matched_to" not in p] == [0.5, 1.0]
    for name in ("tradeoff.png", "report.html"):
        assert (out / name).stat().st_size > 1000


def test_the_tradeoff_chart_draws_a_matched_point_of_another_setting_apart() -> None:
    from producer.reports import tradeoff_figure

    point = {"realized_te": 0.01, "annual_tax_alpha": 0.02}
    frontier = [
        {**point, "lambda_tax": 0.5},
        {"realized_te": 0.012, "annual_tax_alpha": 0.025, "lambda_tax": 1.0},
        {"realized_te": 0.02, "annual_tax_alpha": 0.03, "te_budget": 0.02, "matched_to": "h"},
    ]
    fig = tradeoff_figure([{"label": "optimizer", **point}], "t", frontier=frontier)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "te_budget=0.02 (at h's TE)" in texts and "0.5" in texts and "1" in texts


def test_the_long_short_shape_must_net_to_one_hundred_percent() -> None:
    base = ["--start", "2020-01-02", "--end", "2020-02-03"]
    args = build_parser().parse_args([*base, "--long-short", "150/50"])
    assert args.long_short == (1.5, 0.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--long-short", "130/20"])


@pytest.fixture
def no_backtest(monkeypatch):
    """Make any backtest run fail the test: a bad setting must be refused before the runs."""
    import producer.backtest

    def ran(*args, **kwargs):
        raise AssertionError("a backtest ran before the bad setting was refused")

    monkeypatch.setattr(producer.backtest, "simulate", ran)


def _refused(capsys, argv: list[str]) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("taxview-runner: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--sweep", "te_budget=0,0.02"], "field sweep"),
        (["--baselines", "--harvest-threshold", "1.5"], "field harvest_threshold"),
        (["--niit", "0.7"], "field --st-rate/--niit"),
        (["--end", "2019-12-31"], "field end"),
        (["--long-short", "130/30"], "field --long-short"),  # the strategy is direct-index
        (["--harvest-threshold", "0.2"], "field --harvest-threshold"),  # no --baselines
        (["--exclude", "NOT-IN-IT"], "field --exclude"),
        (["--tilt", "nofactor:0.3"], "field --tilt[0]"),  # docs audit: refused mid-run before
        # runner audit: refused by the first rebalance, after --out was created
        (["--tilt", "quality:101"], "field --tilt"),
        (["--strategy", "market-neutral", "--tilt", "quality:0.3"], "field --tilt"),
        (["--sweep", "lambda_tax=0.5", "--sweep", "lambda_te=1"], "field --sweep"),
        (["--sweep", "te_budget=0.01,,0.02"], "field sweep"),
        (["--sweep", "lambda_tax=1e6"], "field sweep"),
    ],
)
def test_a_setting_only_a_later_run_would_use_is_refused_before_any_run(
    extra, field, no_backtest, capsys, tmp_path
) -> None:
    base = ["--start", "2020-01-02", "--end", "2020-02-28", "--universe", "synthetic:5"]
    err = _refused(capsys, [*base, "--out", str(tmp_path / "o"), "--quiet", *extra])
    assert field in err
    assert not (tmp_path / "o").exists()  # a refused run leaves no empty directory


def test_an_out_path_that_cannot_be_a_directory_is_refused_before_any_run(
    no_backtest, capsys, tmp_path
) -> None:
    taken = tmp_path / "file"
    taken.write_text("")
    argv = ["--start", "2020-01-02", "--end", "2020-02-28", "--universe", "synthetic:5"]
    assert "--out" in _refused(capsys, [*argv, "--out", str(taken), "--quiet"])


def test_an_out_folder_the_run_cannot_write_into_is_refused_before_any_run(
    no_backtest, capsys, tmp_path
) -> None:
    # Runner audit: a directory where nav.csv goes ended the run with a traceback after the
    # whole backtest (IsADirectoryError on the rename), leaving nav.csv.tmp behind.
    out = tmp_path / "o"
    (out / "nav.csv").mkdir(parents=True)
    argv = ["--start", "2020-01-02", "--end", "2020-02-28", "--universe", "synthetic:5"]
    err = _refused(capsys, [*argv, "--out", str(out), "--quiet"])
    assert "nav.csv" in err and "directory" in err
    assert sorted(p.name for p in out.iterdir()) == ["nav.csv"]


def test_a_write_that_fails_during_the_run_is_a_one_line_error(
    monkeypatch, capsys, tmp_path
) -> None:
    from producer import reports

    def full(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(reports, "write_nav_csv", full)
    argv = ["--start", "2020-01-02", "--end", "2020-01-10", "--universe", "synthetic:5"]
    err = _refused(capsys, [*argv, "--out", str(tmp_path / "o"), "--quiet"])
    assert "No space left on device" in err and "nav.csv" in err


def test_a_run_the_solve_refuses_leaves_no_empty_out_folder(capsys, tmp_path) -> None:
    # Runner audit: a $1e12 book on a 10-name universe is refused by the solve (a ticket over
    # the shares one transaction may carry) after --out was created: it stayed, empty.
    argv = ["--start", "2024-01-02", "--end", "2024-01-31", "--universe", "synthetic:10"]
    out = tmp_path / "big"
    err = _refused(capsys, [*argv, "--capital", "1000000000000", "--out", str(out), "--quiet"])
    assert "shares" in err
    assert not out.exists()


def test_a_run_interrupted_with_ctrl_c_leaves_no_empty_out_folder(monkeypatch, tmp_path) -> None:
    # Runner audit: `timeout -s INT` left the new --out tree behind, empty.
    import producer.backtest

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(producer.backtest, "simulate", interrupted)
    out = tmp_path / "intr" / "deep"
    argv = ["--start", "2024-01-02", "--end", "2024-01-31", "--universe", "synthetic:10"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 130
    assert not (tmp_path / "intr").exists()


def test_an_end_before_the_start_names_the_end_for_every_universe(
    no_backtest, capsys, tmp_path
) -> None:
    for universe in ("synthetic:5", "sp500-sample"):
        argv = ["--start", "2020-03-02", "--end", "2020-02-28", "--universe", universe]
        err = _refused(capsys, [*argv, "--out", str(tmp_path / "o")])
        assert "field end" in err and "is before --start 2020-03-02" in err


@pytest.mark.parametrize("capital", ["1e30", "1e400", "100.001"])
def test_a_capital_too_large_or_not_in_cents_is_refused_by_the_parser(capital, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--start", "2020-01-02", "--end", "2020-02-28", "--capital", capital])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--capital" in err and err.count("\n") == 1


def test_a_window_past_the_bundled_sample_is_refused_naming_the_end(
    no_backtest, capsys, tmp_path
) -> None:
    pytest.importorskip("skfolio")
    argv = ["--start", "2022-12-01", "--end", "2022-12-30", "--universe", "sp500-sample"]
    err = _refused(capsys, [*argv, "--out", str(tmp_path / "o")])
    assert "field end" in err and "the sample ends 2022-12-28" in err


@pytest.fixture(scope="module")
def market_dir(tmp_path_factory):
    import datetime as dt

    from shared.loaders import write_market_dir
    from shared.synthetic import synthetic_market

    m = synthetic_market(n_names=8, start=dt.date(2023, 1, 3), end=dt.date(2023, 3, 31), seed=2)
    return write_market_dir(m, tmp_path_factory.mktemp("market"))


def test_a_market_directory_without_alpha_refuses_the_market_neutral_sleeve(
    market_dir, no_backtest, capsys, tmp_path
) -> None:
    base = ["--universe", str(market_dir), "--out", str(tmp_path / "o"), "--quiet"]
    err = _refused(
        capsys,
        ["--start", "2023-02-01", "--end", "2023-03-31", "--strategy", "market-neutral", *base],
    )
    assert "field --strategy" in err and "alpha" in err
    err = _refused(capsys, ["--start", "2023-02-01", "--end", "2023-04-28", *base])
    assert "field end" in err and "2023-04-28 is not in the data" in err


def test_a_market_directory_with_an_alpha_table_runs_the_market_neutral_sleeve(
    market_dir, tmp_path, capsys
) -> None:
    # Nightly audit (2026-12-07): no market directory could carry an alpha.
    import shutil

    with_alpha = tmp_path / "with_alpha"
    shutil.copytree(market_dir, with_alpha)
    prices = (market_dir / "prices.csv").read_text().splitlines()[1:]
    symbols = sorted({row.split(",")[1] for row in prices})
    rows = [f"{sym},{0.04 if k % 2 else -0.04}" for k, sym in enumerate(symbols)]
    (with_alpha / "alpha.csv").write_text("symbol,alpha\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    argv = ["--start", "2023-03-01", "--end", "2023-03-10", "--universe", str(with_alpha)]
    assert main([*argv, "--strategy", "market-neutral", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rebalances"] > 0 and summary["wash_sales_created"] == 0


def test_a_per_date_alpha_table_without_a_night_of_the_window_is_refused_not_read_as_zero(
    market_dir, no_backtest, tmp_path, capsys
) -> None:
    # Review audit (2026-12-07): a table not written for a night gave an all-zero signal and
    # the sleeve traded on it silently; a table with no value at all loaded too.
    import shutil

    from shared.loaders import load_market_dir, write_market_dir

    stale = tmp_path / "stale"
    shutil.copytree(market_dir, stale)
    prices = (market_dir / "prices.csv").read_text().splitlines()[1:]
    symbols = sorted({row.split(",")[1] for row in prices})
    days = ["2023-03-01", "2023-03-02", "2023-03-06"]  # not 2023-03-03
    rows = [f"{d},{sym},0.03" for d in days for sym in symbols[:3]]
    (stale / "alpha.csv").write_text("date,symbol,alpha\n" + "\n".join(rows) + "\n")
    market = load_market_dir(stale)
    assert market.alpha(dt.date(2023, 3, 3)) == []
    copy = write_market_dir(market, tmp_path / "copy")  # written back with its table
    assert load_market_dir(copy).alpha(dt.date(2023, 3, 2)) == market.alpha(dt.date(2023, 3, 2))
    assert sorted(market.alpha(dt.date(2023, 3, 2)))[-3:] == [0.03, 0.03, 0.03]
    base = ["--strategy", "market-neutral", "--universe", str(stale), "--quiet"]
    err = _refused(
        capsys,
        ["--start", "2023-03-01", "--end", "2023-03-06", *base, "--out", str(tmp_path / "o")],
    )
    assert "field --strategy" in err and "no value on 2023-03-03" in err
    (stale / "alpha.csv").write_text("symbol,alpha\n")
    with pytest.raises(InputError, match="gives no value"):
        load_market_dir(stale)


def test_a_run_on_a_market_directory_has_one_row_per_session_from_the_capital(
    market_dir, tmp_path, capsys
) -> None:
    import datetime as dt

    from shared.calendar import trading_days

    out = tmp_path / "run"
    argv = ["--start", "2023-02-01", "--end", "2023-03-31", "--universe", str(market_dir)]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    with open(out / "nav.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["date"] for r in rows] == [
        d.isoformat() for d in trading_days(dt.date(2023, 2, 1), dt.date(2023, 3, 31))
    ]
    assert rows[0]["after_tax_nav"] == rows[0]["benchmark_nav"] == "1000000.00"
    assert json.loads((out / "summary.json").read_text())["wash_sales_created"] == 0


def test_with_cost_bps_the_runners_realized_gains_are_net_of_every_commission(
    tmp_path, capsys
) -> None:
    from decimal import Decimal

    from producer.backtest import OptimizerPolicy, simulate
    from producer.datasets import load_universe
    from producer.runner_cli import _config
    from shared.ledger import cents

    argv = [
        "--start", "2022-01-03", "--end", "2022-02-28", "--universe", "synthetic:30",
        "--seed", "7", "--cost-bps", "5", "--quiet",
    ]  # fmt: skip
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 0
    with open(out / "nav.csv", newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    summary = json.loads((out / "summary.json").read_text())
    # The run is reproducible bit for bit from its settings: replay it for its trade log.
    config = _config(build_parser().parse_args(argv))
    market, _ = load_universe(config.universe, start=config.start, end=config.end, seed=7)
    book = simulate(market, OptimizerPolicy(config), config).book
    rate = Decimal("0.0005")
    proceeds = sale_fees = cost = buy_fees = Decimal(0)
    for txn in book.log:
        amount = cents(txn.quantity * txn.price)
        fee = cents(amount * rate)
        if txn.side == "sell":
            proceeds, sale_fees = proceeds + amount, sale_fees + fee
        else:
            cost, buy_fees = cost + amount, buy_fees + fee
    assert sale_fees > 0
    # Relieved basis = everything bought with its commissions − the basis still open (no wash
    # sale, so no adjustment moves basis: summary.json says so).
    assert summary["wash_sales_created"] == 0
    open_basis = sum((lot.cost_basis_usd for lot in book.ledger.open_lots()), Decimal(0))
    relieved = cost + buy_fees - open_basis
    realized = Decimal(last["cum_realized_st"]) + Decimal(last["cum_realized_lt"])
    assert realized == proceeds - sale_fees - relieved
    final = summary["optimizer"]["final"]
    assert Decimal(final["trading_costs"]) == sale_fees + buy_fees
    assert Decimal(final["realized_st"]) + Decimal(final["realized_lt"]) == realized
    # nav.csv stays consistent: after-tax NAV = pre-tax NAV − (taxes paid − tax saved).
    net = Decimal(last["taxes_paid"]) - Decimal(last["tax_saved"])
    assert Decimal(last["net_tax"]) == net
    assert Decimal(last["after_tax_nav"]) == Decimal(last["pre_tax_nav"]) - net


def test_the_money_axis_prints_distinct_ticks_on_a_nav_that_moved_by_thousands() -> None:
    import matplotlib.pyplot as plt

    from producer.reports import _money_axis

    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [1_000_000.0, 1_004_000.0, 1_011_000.0])
    _money_axis(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    plt.close(fig)


def test_a_two_name_universe_runs_with_its_default_cap_held_at_one(tmp_path) -> None:
    # Docs audit: the default cap max(10%, 1.25 × the largest benchmark weight) was 1.16 on a
    # two-name universe and the first rebalance rejected it.
    out = tmp_path / "o"
    argv = ["--start", "2020-01-02", "--end", "2020-01-10", "--universe", "synthetic:2"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert (settings["max_weight"], settings["max_weight_used"]) == (None, [1.0, 1.0])


def test_a_universe_is_synthetic_only_when_named_so_and_a_directory_is_never_taken_for_one(
    no_backtest, capsys, tmp_path, monkeypatch
) -> None:
    # Runner audit: a directory named synthetic_mkt ran synthetic:500, "synthetics:30" ran
    # synthetic:30, and synthetic:100000000 was a traceback.
    from producer.datasets import load_universe
    from shared.loaders import write_market_dir
    from shared.synthetic import synthetic_market

    start, end = dt.date(2020, 1, 2), dt.date(2020, 2, 28)
    small = synthetic_market(n_names=7, start=dt.date(2019, 1, 2), end=end, seed=4)
    write_market_dir(small, tmp_path / "synthetic_mkt")
    monkeypatch.chdir(tmp_path)
    history, _ = load_universe("synthetic_mkt", start=start, end=end)
    assert set(history.symbols) == set(small.symbols)
    base = ["--start", "2020-01-02", "--end", "2020-02-28", "--quiet", "--out", "o"]
    for spec in ("synthetics:30", "synthetic:", "synthetic:100000000", ""):
        assert "field universe" in _refused(capsys, [*base, "--universe", spec])
    err = _refused(capsys, [*base, "--universe", "synthetic_mkt", "--seed", "7"])
    assert "field --seed" in err
    every = [x for sym in small.symbols for x in ("--exclude", sym)]
    err = _refused(capsys, [*base, "--universe", "synthetic_mkt", *every])
    assert "field --exclude" in err and "every name" in err
    assert not (tmp_path / "o").exists()


def test_a_date_not_written_yyyy_mm_dd_is_a_usage_error(capsys) -> None:
    # Runner audit: Python 3.11's fromisoformat also reads 20210301; the help says YYYY-MM-DD.
    with pytest.raises(SystemExit) as stop:
        main(["--start", "20200102", "--end", "2020-02-28"])
    assert stop.value.code == 2
    assert "'20200102' is not a date (YYYY-MM-DD)" in capsys.readouterr().err


def test_a_refused_run_removes_every_directory_it_created_for_out(capsys, tmp_path) -> None:
    argv = ["--start", "2024-01-02", "--end", "2024-01-31", "--universe", "synthetic:10"]
    out = tmp_path / "p1" / "p2" / "p3"
    _refused(capsys, [*argv, "--capital", "1000000000000", "--out", str(out), "--quiet"])
    assert not (tmp_path / "p1").exists()


def test_a_full_disk_names_the_out_folder_and_leaves_no_tmp_file(
    monkeypatch, capsys, tmp_path
) -> None:
    # Diff review: a failing write() carries no file name; the error said "cannot write: …".
    from producer import reports

    def full(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.Path, "write_text", lambda self, *a, **k: full(self, a))
    argv = ["--start", "2020-01-02", "--end", "2020-01-10", "--universe", "synthetic:5"]
    err = _refused(capsys, [*argv, "--out", str(tmp_path / "o"), "--quiet"])
    assert "No space left on device" in err and f"into --out {tmp_path / 'o'}" in err
    assert not list((tmp_path / "o").glob("*.tmp"))


def test_a_cap_no_day_could_invest_the_book_under_is_refused_before_the_run(
    capsys, tmp_path
) -> None:
    argv = ["--start", "2024-01-02", "--end", "2024-01-31", "--universe", "synthetic:20"]
    err = _refused(capsys, [*argv, "--max-weight", "0.01", "--out", str(tmp_path / "o")])
    assert "--max-weight" in err and "× 20 names" in err
    assert not (tmp_path / "o").exists()


def test_the_run_is_named_after_the_solver_of_its_trades_not_its_held_days() -> None:
    from producer.runner_cli import main_solver

    assert main_solver({"none": 9, "clarabel": 1}) == "clarabel"
    assert main_solver({"clarabel": 3, "scs": 5, "none": 9}) == "scs"
    assert main_solver({"none": 4}) == "none"
    assert main_solver({}) == "none"


@pytest.mark.slow
def test_a_reused_out_directory_keeps_no_file_of_an_earlier_run(tmp_path) -> None:
    out = tmp_path / "run"
    base = ["--start", "2021-03-01", "--end", "2021-03-31", "--universe", "synthetic:15"]
    base += ["--out", str(out), "--quiet"]
    assert main([*base, "--baselines"]) == 0
    assert (out / "tradeoff.png").exists()
    assert main(base) == 0
    assert not (out / "tradeoff.png").exists()
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["baselines"] is False and settings["sweep"] is None
    assert "harvest_threshold" not in settings
