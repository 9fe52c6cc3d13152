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


def test_nightly_refuses_a_market_file_without_a_book(capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["nightly", "--synthetic-accounts", "2", "--market", "/nonexistent.json"])
    assert rc == 2
    assert "field --market" in capsys.readouterr().err
