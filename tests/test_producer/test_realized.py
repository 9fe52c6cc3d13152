"""The ``taxview realized`` contract (DESIGN.md §5): exact headers, W codes, permanently
disallowed IRA replacements, one-line row/field errors with nothing written, ``--identical``,
``--lot-method``, ``--example`` and exit codes."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from producer.cli import main
from producer.realized import parse_identical
from shared.errors import InputError

HEADER = "id,date,account,account_type,symbol,side,quantity,price,lot_id"
SALES_HEADER = (
    "txn,date_sold,account,symbol,lot_id,quantity,date_acquired,term,proceeds,cost_basis,"
    "adjustment_code,disallowed_loss,permanently_disallowed,gain"
)
LOTS_HEADER = "account,symbol,lot_id,quantity,trade_date,acquired,cost_basis,wash_adjustment"

HOUSEHOLD = """\
1,2024-01-02,A,taxable,XYZ,buy,100,10.00,L1
2,2024-03-01,A,taxable,XYZ,sell,100,8.00,L1
3,2024-03-10,B,taxable,XYZ,buy,60,8.50,L2
4,2024-03-12,IRA,ira,XYZ,buy,30,8.40,I1
5,2024-04-02,A,taxable,ABC,short,10,50,S1
6,2024-04-20,A,taxable,ABC,cover,10,45,S1
"""


def _run(tmp_path: Path, body: str, *extra: str) -> tuple[int, Path, Path]:
    tx = tmp_path / "tx.csv"
    tx.write_text(HEADER + "\n" + body)
    sales, lots = tmp_path / "sales.csv", tmp_path / "lots.csv"
    rc = main(
        [
            "realized",
            "--transactions",
            str(tx),
            "--sales-out",
            str(sales),
            "--lots-out",
            str(lots),
            *extra,
        ]
    )
    return rc, sales, lots


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_outputs_have_exactly_the_contract_headers(tmp_path: Path) -> None:
    rc, sales, lots = _run(tmp_path, HOUSEHOLD)
    assert rc == 0
    assert sales.read_text().splitlines()[0] == SALES_HEADER
    assert lots.read_text().splitlines()[0] == LOTS_HEADER


def test_a_washed_sale_has_code_w_and_the_ira_part_is_permanently_disallowed(
    tmp_path: Path,
) -> None:
    rc, sales, lots = _run(tmp_path, HOUSEHOLD)
    assert rc == 0
    first, cover = _rows(sales)
    assert first == {
        "txn": "2",
        "date_sold": "2024-03-01",
        "account": "A",
        "symbol": "XYZ",
        "lot_id": "L1",
        "quantity": "100",
        "date_acquired": "2024-01-02",
        "term": "short",
        "proceeds": "800.00",
        "cost_basis": "1000.00",
        "adjustment_code": "W",
        "disallowed_loss": "180.00",
        "permanently_disallowed": "60.00",
        "gain": "-20.00",
    }
    assert (cover["proceeds"], cover["cost_basis"], cover["gain"], cover["term"]) == (
        "500.00",
        "450.00",
        "50.00",
        "short",
    )
    # Only the taxable replacement is an open taxable lot, with the loss in its basis and the
    # holding period tacked (59 days held → acquired 59 days before 2024-03-10).
    assert _rows(lots) == [
        {
            "account": "B",
            "symbol": "XYZ",
            "lot_id": "L2",
            "quantity": "60",
            "trade_date": "2024-03-10",
            "acquired": "2024-01-11",
            "cost_basis": "630.00",
            "wash_adjustment": "120.00",
        }
    ]


def test_the_summary_prints_the_totals_by_tax_year(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = HOUSEHOLD + "7,2025-02-03,B,taxable,XYZ,sell,60,12.00,L2\n"
    rc, _, _ = _run(tmp_path, body)
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert out[0].split() == [
        "tax",
        "year",
        "short-term",
        "gain",
        "long-term",
        "gain",
        "disallowed",
        "(deferred)",
        "permanently",
        "disallowed",
    ]
    assert out[1].split() == ["2024", "30.00", "0.00", "120.00", "60.00"]
    # L2's tacked start 2024-01-11 makes the 2025-02-03 sale long-term: 720 − 630.
    assert out[2].split() == ["2025", "0.00", "90.00", "0.00", "0.00"]
    assert out[3].split() == ["total", "30.00", "90.00", "120.00", "60.00"]


def test_hifo_and_fifo_relieve_different_lots(tmp_path: Path) -> None:
    body = (
        "1,2024-01-02,A,taxable,XYZ,buy,10,10,L1\n"
        "2,2024-01-03,A,taxable,XYZ,buy,10,14,L2\n"
        "3,2024-06-03,A,taxable,XYZ,sell,10,15,\n"
    )
    for method, lot in (("fifo", "L1"), ("hifo", "L2")):
        rc, sales, _ = _run(tmp_path, body, "--lot-method", method)
        assert rc == 0
        assert _rows(sales)[0]["lot_id"] == lot


def test_identical_groups_make_a_purchase_of_the_twin_wash_the_loss(tmp_path: Path) -> None:
    body = (
        "1,2024-01-02,A,taxable,GOOG,buy,10,10,G1\n"
        "2,2024-03-01,A,taxable,GOOG,sell,10,8,G1\n"
        "3,2024-03-05,B,taxable,GOOGL,buy,10,8,G2\n"
    )
    rc, sales, _ = _run(tmp_path, body)
    assert rc == 0 and _rows(sales)[0]["adjustment_code"] == ""
    rc, sales, _ = _run(tmp_path, body, "--identical", "GOOG=GOOGL;SPY=VOO=IVV")
    assert rc == 0 and _rows(sales)[0]["adjustment_code"] == "W"


def test_identical_groups_parse_and_a_lonely_symbol_is_refused() -> None:
    assert parse_identical("GOOG=GOOGL;SPY=VOO=IVV") == [["GOOG", "GOOGL"], ["SPY", "VOO", "IVV"]]
    assert parse_identical(" GOOG = GOOGL ; ") == [["GOOG", "GOOGL"]]
    assert parse_identical("") == []
    with pytest.raises(InputError):
        parse_identical("GOOG")
    with pytest.raises(InputError):
        parse_identical("GOOG=")
    with pytest.raises(InputError, match="comma or a space"):
        parse_identical("A=B\nC")  # would make "B\nC" one symbol


GOOD = "1,2024-01-02,A,taxable,XYZ,buy,10,10,L1\n"


@pytest.mark.parametrize(
    ("bad_row", "field"),
    [
        ("7,2024-02-01,A,taxable,XYZ,hold,1,10,", "side"),
        ("7,2024-02-01,A,taxable,XYZ,sell,-1,10,", "quantity"),
        ("7,2024-02-01,A,taxable,XYZ,sell,11,10,", "quantity"),
        ("7,2024-02-01,A,taxable,XYZ,sell,11,10,L1", "quantity"),
        ("7,2024-02-01,A,taxable,XYZ,sell,1,10,NOPE", "lot_id"),
        ("7,2023-12-31,A,taxable,XYZ,buy,1,10,", "date"),
        ("7,2024-02-01,A,taxable,XYZ,buy,1,ten,", "price"),
        ("7,2024-02-01,A,taxable,XYZ,buy,1,,", "price"),
        ("7,2024-02-01,A,taxable,XYZ,buy,x1,10,", "quantity"),
        ("7,02/01/2024,A,taxable,XYZ,buy,1,10,", "date"),
        ("7,2024-02-01,A,brokerage,XYZ,buy,1,10,", "account_type"),
        ("7,2024-02-01,A,taxable,XYZ,buy,1,10,L1", "lot_id"),
        ("1,2024-02-01,A,taxable,XYZ,buy,1,10,", "id"),
        # ledger audit: an ISO week date is 10 characters long too
        ("7,2024-W05-4,A,taxable,XYZ,buy,1,10,", "date"),
        # ledger audit: 1 - 1e-29 rounds back to 1 in Decimal's 28 digits
        ("7,2024-02-01,A,taxable,XYZ,sell,1e-29,10,", "quantity"),
        ("7,2024-02-01,A,taxable,XYZ,buy,1e-999999999,10,", "quantity"),
        ('7,2024-02-01,"A\nB",taxable,XYZ,buy,1,10,', "account"),
    ],
)
def test_a_bad_row_stops_with_one_line_naming_the_row_and_field_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad_row: str, field: str
) -> None:
    body = GOOD + bad_row + "\n" + "9,2024-03-01,A,taxable,XYZ,sell,1,10,\n"
    rc, sales, lots = _run(tmp_path, body)
    err = capsys.readouterr().err
    row = bad_row.split(",", maxsplit=1)[0]
    assert rc == 2
    assert err.startswith(f"taxview: error: row {row}, field {field}: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not sales.exists() and not lots.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["tx.csv"]


def test_a_stray_quote_stops_at_its_line_instead_of_swallowing_the_rows_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ledger audit: lot_id `"L1` with no closing quote read the loss sale and its replacement
    into one three-line lot id, and the $1,000 wash sale went missing with exit 0."""
    body = (
        '1,2024-01-02,A,taxable,XYZ,buy,100,50,"L1\n'
        "2,2024-02-01,A,taxable,XYZ,sell,100,40,L1\n"
        "3,2024-02-05,B,taxable,XYZ,buy,100,41,L2\n"
    )
    rc, sales, lots = _run(tmp_path, body)
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("taxview: error: row at line 2, field csv: not valid CSV")
    assert err.count("\n") == 1 and not sales.exists() and not lots.exists()


def test_fifo_relieves_two_purchases_of_one_day_in_file_order_even_after_a_wash_tacks_one(
    tmp_path: Path,
) -> None:
    """Ledger audit: L2's washed part got the tacked start 2023-12-15 and was relieved before
    L1, bought earlier the same day (Treas. Reg. §1.1012-1(c)(1): the earliest lot purchased)."""
    body = (
        "1,2024-01-02,A,taxable,X,buy,10,20,L1\n"
        "2,2024-01-02,A,taxable,X,buy,10,10,L2\n"
        "3,2024-01-20,A,taxable,X,sell,5,15,L1\n"
        "4,2024-03-01,A,taxable,X,sell,5,15,\n"
    )
    rc, sales, lots = _run(tmp_path, body)
    assert rc == 0
    last = _rows(sales)[-1]
    assert (last["txn"], last["lot_id"], last["gain"]) == ("4", "L1", "-25.00")
    assert {(r["lot_id"], r["acquired"]) for r in _rows(lots)} == {
        ("L2", "2023-12-15"),
        ("L2", "2024-01-02"),
    }


def test_a_quantity_with_eighteen_decimal_places_is_still_exact(tmp_path: Path) -> None:
    body = (
        "1,2024-01-02,A,taxable,XYZ,buy,1,10,L1\n"
        "2,2024-01-03,A,taxable,XYZ,sell,0.000000000000000001,10,L1\n"
    )
    rc, _, lots = _run(tmp_path, body)
    assert rc == 0
    assert [r["quantity"] for r in _rows(lots)] == ["0.999999999999999999"]


def test_an_error_leaves_earlier_outputs_untouched(tmp_path: Path) -> None:
    rc, sales, lots = _run(tmp_path, HOUSEHOLD)
    assert rc == 0
    before = sales.read_text(), lots.read_text()
    rc, _, _ = _run(tmp_path, HOUSEHOLD + "7,2024-05-01,A,taxable,XYZ,sell,1,10,\n")
    assert rc == 2
    assert (sales.read_text(), lots.read_text()) == before


def test_a_missing_column_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tx = tmp_path / "tx.csv"
    tx.write_text("id,date,account,symbol,side,quantity,price\n1,2024-01-02,A,X,buy,1,1\n")
    rc = main(
        ["realized", "--transactions", str(tx), "--sales-out", "s.csv", "--lots-out", "l.csv"]
    )
    assert rc == 2 and "account_type" in capsys.readouterr().err


def test_a_column_given_twice_is_refused_not_read_from_its_last_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tx = tmp_path / "tx.csv"
    tx.write_text(
        "id,date,account,account_type,symbol,side,quantity,price,lot_id,price\n"
        "1,2024-01-02,A,taxable,X,buy,1,1,,2\n"
    )
    out = [str(tmp_path / "s.csv"), "--lots-out", str(tmp_path / "l.csv")]
    assert main(["realized", "--transactions", str(tx), "--sales-out", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "field header" in err and "price" in err
    assert not (tmp_path / "s.csv").exists()


def test_an_output_under_a_file_names_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Contract audit, 2026-12-08: the error said only "File exists".
    tx = tmp_path / "tx.csv"
    tx.write_text(
        "id,date,account,account_type,symbol,side,quantity,price,lot_id\n"
        "1,2024-01-02,A,taxable,X,buy,1,10,L1\n"
    )
    (tmp_path / "af").write_text("")
    out = [str(tmp_path / "af" / "s.csv"), "--lots-out", str(tmp_path / "l.csv")]
    assert main(["realized", "--transactions", str(tx), "--sales-out", *out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'af'} is a file" in err


def test_a_missing_input_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "realized",
            "--transactions",
            str(tmp_path / "nope.csv"),
            "--sales-out",
            str(tmp_path / "s.csv"),
            "--lots-out",
            str(tmp_path / "l.csv"),
        ]
    )
    assert rc == 2 and capsys.readouterr().err.startswith("taxview: error: ")


def test_side_and_account_type_are_case_insensitive_and_roth_is_accepted(tmp_path: Path) -> None:
    body = (
        "1,2024-01-02,A,Taxable,XYZ,BUY,10,10,L1\n"
        "2,2024-03-01,A,taxable,XYZ,Sell,10,8,L1\n"
        "3,2024-03-05,R,roth,XYZ,buy,10,8,R1\n"
    )
    rc, sales, _ = _run(tmp_path, body)
    assert rc == 0 and _rows(sales)[0]["permanently_disallowed"] == "20.00"


def test_the_bundled_example_runs_into_out_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["realized", "--example"]) == 0
    sales = _rows(tmp_path / "out" / "sales.csv")
    lots = _rows(tmp_path / "out" / "lots.csv")
    codes = {r["txn"]: r for r in sales}
    assert codes["t09"]["adjustment_code"] == "W" and codes["t09"]["permanently_disallowed"] != (
        "0.00"
    )
    assert codes["t05"]["term"] == "short" and codes["t06"]["term"] == "long"  # leap year
    assert codes["t14"]["adjustment_code"] == "W"  # a cover loss washed by a new short
    assert codes["t19"]["adjustment_code"] == "W"  # GOOGL washed by GOOG
    assert lots and "tax year" in capsys.readouterr().out


def test_the_console_script_prints_help_and_refuses_bad_flags() -> None:
    exe = Path(sys.executable).with_name("taxview")
    ok = subprocess.run(
        [str(exe), "realized", "--help"], capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0 and "--identical" in ok.stdout and "--lot-method" in ok.stdout
    bad = subprocess.run(
        [str(exe), "realized", "--example", "--lot-method", "lifo"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
