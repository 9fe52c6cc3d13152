"""``taxview-runner``: the DESIGN.md §5 output contract and one-line errors."""

from __future__ import annotations

import csv
import json

import pytest

from producer.reports import NAV_COLUMNS
from producer.runner_cli import build_parser, main


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


def test_the_long_short_shape_must_net_to_one_hundred_percent() -> None:
    base = ["--start", "2020-01-02", "--end", "2020-02-03"]
    args = build_parser().parse_args([*base, "--long-short", "150/50"])
    assert args.long_short == (1.5, 0.5)
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base, "--long-short", "130/20"])
