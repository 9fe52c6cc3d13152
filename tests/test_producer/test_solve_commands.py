"""``taxview rebalance``, ``example-request``, ``schema`` and ``bench solve``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from producer.cli import main


@pytest.fixture(scope="module")
def request_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("req") / "request.json"
    assert main(["example-request", "--names", "25", "--seed", "4", "--out", str(path)]) == 0
    return path


def test_example_request_writes_a_request_that_rebalance_solves(
    request_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["rebalance", str(request_file)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "solved"
    assert out["status"] in {"ok", "relaxed", "held"}
    assert out["account_id"] == json.loads(request_file.read_text())["account"]["account_id"]
    assert {"trades", "realized", "factor_exposures", "solver", "te_ex_ante"} <= set(out)


def test_a_malformed_request_prints_a_rejected_outcome_and_exits_1(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(request_file.read_text())
    doc["market"]["prices"][2] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["kind"] == "rejected"
    assert out["field"] == "market.prices[2]"
    assert out["account_id"] == doc["account"]["account_id"]
    # ... and the reason on one line of stderr, naming the account and the field.
    account = doc["account"]["account_id"]
    assert captured.err == (
        f"taxview rebalance: rejected: account {account}, field market.prices[2]: {out['reason']}\n"
    )


def test_a_request_of_the_wrong_shape_is_rejected_naming_the_field(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(request_file.read_text())
    doc["account"]["te_budget"] = "wide"
    bad = tmp_path / "shape.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "rejected"
    assert out["field"] == "account.te_budget"


def test_an_unreadable_request_is_one_line_on_stderr_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rebalance", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json" in err
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    assert main(["rebalance", str(junk)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_schema_prints_the_request_and_outcome_json_schemas(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["request"] == {"$ref": "#/$defs/RebalanceRequest"}
    kinds = {ref["$ref"].rsplit("/", 1)[-1] for ref in doc["outcome"]["anyOf"]}
    assert kinds == {"Solved", "Rejected", "Failed"}
    assert "Trade" in doc["$defs"]
    assert {"Transaction", "LedgerState", "Solved", "Rejected", "Failed"} <= set(doc["messages"])
    for ref in doc["messages"].values():
        assert ref["$ref"].rsplit("/", 1)[-1] in doc["$defs"]


def test_bench_solve_prints_one_json_line_with_exactly_the_contract_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = ["names", "lots", "p50_ms", "p95_ms", "solver_p50_ms", "peak_rss_mb"]
    assert main(["bench", "solve", "--names", "30", "--accounts", "2", "--details"]) == 0
    detailed = json.loads(capsys.readouterr().out)
    assert list(detailed)[:6] == keys and "cpu_p50_ms" in detailed
    assert main(["bench", "solve", "--names", "30", "--accounts", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('{"names":30,"lots":')  # compact, as the issue writes it
    doc = json.loads(lines[0])
    assert list(doc) == keys
    assert doc["names"] == 30
    assert doc["lots"] > 0
    assert 0 < doc["solver_p50_ms"] <= doc["p50_ms"] <= doc["p95_ms"]


def test_a_negative_warmup_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "solve", "--warmup", "-1"])
    assert exc.value.code == 2
    assert "--warmup" in capsys.readouterr().err


def test_an_alpha_in_the_wrong_units_is_rejected_naming_its_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Market-neutral audit: alpha 1e20 failed the solve ("objective unbounded below") and 1e308
    # ended in a NumericalError, instead of a rejected request naming the entry.
    path = tmp_path / "mn.json"
    assert (
        main(
            ["example-request", "--names", "25", "--strategy", "market-neutral", "--out", str(path)]
        )
        == 0
    )
    doc = json.loads(path.read_text())
    doc["market"]["alpha"][3] = 1e20
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "rejected" and out["field"] == "market.alpha[3]"


def test_a_failed_solve_names_its_account_once_on_stderr(
    request_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import shared.rebalance
    from shared.errors import SolverFailed

    spec = json.loads(request_file.read_text())["account"]
    account = spec["account_id"]

    def fail(request: object) -> object:
        raise SolverFailed("no attempt produced a trustworthy answer", account=account)

    monkeypatch.setattr(shared.rebalance, "rebalance", fail)
    capsys.readouterr()
    assert main(["rebalance", str(request_file)]) == 1
    out, err = capsys.readouterr()
    failed = json.loads(out)
    assert failed["kind"] == "failed" and failed["household_id"] == spec["household_id"] != ""
    assert err == (
        f"taxview rebalance: failed: account {account}: no attempt produced a trustworthy answer\n"
    )


def test_what_a_solvers_c_code_prints_is_discarded_not_put_in_the_outcome_json_or_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import os
    import sys

    from shared.optimizer.problem import _quiet_stdout

    print("before", flush=True)
    with _quiet_stdout(), _quiet_stdout():  # reentrant
        os.write(1, b"ERROR: could not determine problem status.\n")
        print("from the binding")
    print("{}", flush=True)
    sys.stderr.write("reason\n")
    out, err = capfd.readouterr()
    assert out == "before\n{}\n" and err == "reason\n"


@pytest.mark.parametrize(
    "raw",
    [b'{"account": {"account_id": "A\xff"}}', b"[" * 100_000],
    ids=["invalid utf-8", "nesting deeper than the stack"],
)
def test_bytes_that_are_not_json_exit_2_with_one_line(
    tmp_path: Path, raw: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    capsys.readouterr()
    assert main(["rebalance", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "not valid JSON" in err


@pytest.mark.parametrize(
    "case",
    [
        ("account", "exclusion", "account.exclusion", "exclusions"),
        ("account", "max_weigth", "account.max_weigth", "max_weight"),
        ("account", "exclusions ", "account.exclusions ", "exclusions"),
        ("market", "alphas", "market.alphas", "alpha"),
    ],
)
def test_a_misspelt_key_is_rejected_naming_it_not_silently_ignored(
    request_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str, str, str],
) -> None:
    # Fuzz audit: "exclusion": ["BDF"] was ignored and BDF kept at 12.7% of the account.
    where, key, field, hint = case
    doc = json.loads(request_file.read_text())
    doc[where][key] = doc[where].get(hint, 0.02)
    bad = tmp_path / "misspelt.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "rejected"
    assert out["field"] == field
    assert f"did you mean {hint!r}" in out["reason"]


def test_an_unknown_key_deep_in_a_lot_is_named_by_its_path(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(request_file.read_text())
    doc["ledger"]["lots"][3]["cost_basis"] = "1.00"
    bad = tmp_path / "lot.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 1
    assert json.loads(capsys.readouterr().out)["field"] == "ledger.lots[3].cost_basis"


def test_a_number_written_as_text_is_refused_as_the_schema_says(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(request_file.read_text())
    doc["account"]["te_budget"] = "0.1"
    bad = tmp_path / "text.json"
    bad.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 1
    assert json.loads(capsys.readouterr().out)["field"] == "account.te_budget"


def test_a_request_saved_with_a_byte_order_mark_reads(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + request_file.read_bytes())
    capsys.readouterr()
    assert main(["rebalance", str(bom)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "solved"


def test_an_example_as_of_too_early_names_the_as_of_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["example-request", "--as-of", "1800-01-01", "--names", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taxview: error: field --as-of: ") and err.count("\n") == 1
    assert "too early" in err


def test_an_example_as_of_past_the_calendar_is_too_late_not_too_early(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Contracts audit: 2040-01-03 was reported "too early".
    assert main(["example-request", "--as-of", "2040-01-03", "--names", "20"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taxview: error: field --as-of: --as-of 2040-01-03 is too late")


def test_an_example_of_too_few_names_says_the_examples_own_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Contract audit, 2026-12-08: "--names 1" said "not between 2 and 10,000", then 2-9 were
    # refused with "≥ 10".
    with pytest.raises(SystemExit) as exc:
        main(["example-request", "--names", "5"])
    assert exc.value.code == 2
    assert "5 is not between 10 and 10,000 names" in capsys.readouterr().err


def test_an_example_written_to_dash_goes_to_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Contract audit, 2026-12-08: `--out -` wrote a file named "-" (`rebalance -` reads stdin).
    monkeypatch.chdir(tmp_path)
    assert main(["example-request", "--names", "10", "--out", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["as_of"] == "2026-06-30"
    assert not (tmp_path / "-").exists()


def test_a_key_written_twice_in_one_object_is_refused_not_the_last_kept(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Badinput audit: "exclusions": ["BEU"], "exclusions": [] held BEU without a word.
    text = request_file.read_text()
    assert text.count('"exclusions":') == 1
    bad = tmp_path / "twice.json"
    bad.write_text(text.replace('"exclusions":', '"exclusions":["BEU"],"exclusions":', 1))
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert "key 'exclusions' appears twice in one object" in err


def test_a_nan_written_by_pythons_json_dump_is_named_by_line_and_column_with_a_hint(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(request_file.read_text())
    doc["market"]["prices"][0] = float("nan")
    bad = tmp_path / "nan.json"
    bad.write_text(json.dumps(doc, indent=1))
    line = next(n for n, row in enumerate(bad.read_text().splitlines(), 1) if "NaN" in row)
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"at line {line}, column" in err and "'NaN" in err, err
    assert "NaN and Infinity are not JSON numbers" in err


def test_a_number_no_float_holds_is_named_by_line_and_column(
    request_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Badinput audit: 1e400 gave "Number out of range - at `$[...][...][0]`".
    text = request_file.read_text()
    start = text.index('"prices":')
    first = text.index("[", start) + 1
    end = min(text.index(",", first), text.index("]", first))
    bad = tmp_path / "big.json"
    bad.write_text(text[:first] + "1e400" + text[end:])
    line = bad.read_text()[:first].count("\n") + 1
    capsys.readouterr()
    assert main(["rebalance", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"Number out of range at line {line}, column" in err and "'1e400" in err, err
