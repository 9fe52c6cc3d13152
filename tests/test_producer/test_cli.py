"""Usage errors of every command are one line naming the bad argument, exit 2, no usage dump."""

from __future__ import annotations

import pytest

from producer import cli, runner_cli


@pytest.mark.parametrize(
    ("main", "argv", "named"),
    [
        (cli.main, ["nosuch"], "COMMAND"),
        (cli.main, ["realized", "--example", "--lot-method", "lifo"], "--lot-method"),
        (cli.main, ["bench", "solve", "--names", "-5"], "--names"),
        # Contracts audit: 1e8 names was a numpy memory-error traceback (or a run that never
        # ended); 1 name named the internal field n_names.
        (cli.main, ["bench", "solve", "--names", "1"], "--names"),
        (cli.main, ["example-request", "--names", "100000000"], "--names"),
        (cli.main, ["nightly", "--synthetic-accounts", "1", "--names", "10001"], "--names"),
        (cli.main, ["bench", "fleet", "--names", "100000000"], "--names"),
        # Contract audit (2026-12-07): full-width digits were read as a number here, refused in
        # the environment's settings.
        (cli.main, ["bench", "solve", "--names", "\uff11\uff12"], "--names"),
        (runner_cli.main, ["--start", "2022-13-01", "--end", "2022-02-01"], "--start"),
        (runner_cli.main, ["--start", "2022-01-03"], "--end"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_argument(
    main: object, argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)  # type: ignore[operator]
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert named in err[0] and "--help" in err[0]


def test_the_runner_refuses_an_exclusion_outside_the_universe(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--start", "2022-01-03", "--end", "2022-01-31", "--universe", "synthetic:20"]
    rc = runner_cli.main([*argv, "--exclude", "ZZZZ", "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    assert "field --exclude: ZZZZ" in capsys.readouterr().err


def test_nightly_refuses_a_results_store_without_a_broker_instead_of_dropping_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Contracts audit: it printed "no broker configured: embedded fleet" and ran on a private
    # store, the one asked for never touched.
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    argv = ["nightly", "--synthetic-accounts", "2", "--names", "20"]
    assert cli.main([*argv, "--redis-url", "redis://127.0.0.1:6499/1"]) == 2
    assert "field --redis-url" in capsys.readouterr().err
    monkeypatch.setenv("TAXVIEW_REDIS_URL", "redis://127.0.0.1:6499/1")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field TAXVIEW_REDIS_URL" in err[0]


@pytest.mark.parametrize("flag", ["--names", "--seed"])
def test_nightly_refuses_synthetic_book_flags_beside_a_book(
    flag: str, tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = cli.main(["nightly", "--book", str(tmp_path), flag, "50"])
    assert rc == 2
    assert f"field {flag}" in capsys.readouterr().err


def test_nightly_refuses_a_market_file_without_a_book(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["nightly", "--synthetic-accounts", "2", "--market", "/nonexistent.json"])
    assert rc == 2
    assert "field --market" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "prog"),
    [
        (["realized", "--example"], "taxview realized"),
        (["nightly"], "taxview nightly"),
        (["enqueue"], "taxview enqueue"),
        (["aggregate", "--date", "2025-01-02", "--out", "o"], "taxview aggregate"),
        (["sweep"], "taxview sweep"),
        (["preflight"], "taxview preflight"),
        (["rebalance", "x.json"], "taxview rebalance"),
        (["example-request"], "taxview example-request"),
        (["schema"], "taxview schema"),
        (["bench", "fleet"], "taxview bench fleet"),
        (["bench", "solve"], "taxview bench solve"),
    ],
)
def test_an_unrecognised_flag_of_a_subcommand_is_its_own_one_line_error(
    argv: list[str], prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{prog}: error: unrecognized arguments: --bogus (see {prog} --help)"]


def test_every_subcommand_is_covered_by_the_unrecognised_flag_test() -> None:
    import argparse

    def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> set[tuple[str, ...]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return {path}
        return {
            leaf
            for action in subs
            for name, child in action.choices.items()
            for leaf in leaves(child, (*path, name))
        }

    covered = {
        ("realized",), ("nightly",), ("enqueue",), ("aggregate",), ("sweep",), ("preflight",),
        ("rebalance",), ("example-request",), ("schema",), ("bench", "fleet"), ("bench", "solve"),
    }  # fmt: skip
    assert leaves(cli.build_parser(), ()) == covered


def test_the_runner_names_itself_for_an_unrecognised_flag(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        runner_cli.main(["--start", "2022-01-03", "--end", "2022-01-31", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "taxview-runner: error: unrecognized arguments: --bogus (see taxview-runner --help)"
    ]


@pytest.mark.parametrize("day", ["1990-01-02", "1994-02-28"])
def test_a_synthetic_night_too_early_for_its_history_names_the_date_flag_and_the_first_night(
    day: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    argv = ["nightly", "--synthetic-accounts", "5", "--date", day, "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"taxview: error: field --date: --date {day} is too early")
    assert "first possible night is 1994-03-01" in err[0]
    assert "field start" not in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()


def test_the_first_possible_synthetic_night_builds_a_book() -> None:
    import datetime as dt

    from shared.errors import InputError
    from shared.examples import earliest_synthetic_night, synthetic_book_stream

    first = earliest_synthetic_night()
    assert first == dt.date(1994, 3, 1)
    market, pairs = synthetic_book_stream(accounts=1, names=5, seed=1, as_of=first)
    assert market.as_of == first and list(pairs)
    with pytest.raises(InputError):  # the session before it is too early for the generator
        synthetic_book_stream(accounts=1, names=5, seed=1, as_of=dt.date(1994, 2, 28))
