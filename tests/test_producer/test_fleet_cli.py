"""The fleet commands as users run them: help, one-line errors, and `taxview nightly` on the
embedded default (its own redis-server, or fakeredis when none is installed)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer.cli import main


def test_every_fleet_command_has_help(capsys) -> None:
    for command in (
        ["nightly"],
        ["enqueue"],
        ["aggregate"],
        ["sweep"],
        ["preflight"],
        ["bench", "fleet"],
    ):
        with pytest.raises(SystemExit) as done:
            main([*command, "--help"])
        assert done.value.code == 0
    assert "--synthetic-accounts" in capsys.readouterr().out


def test_a_missing_book_is_one_line_exit_2(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    rc = main(["nightly", "--book", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "no book directory" in err


def test_fleet_commands_without_a_broker_say_what_to_set(capsys, monkeypatch) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    rc = main(["aggregate", "--date", "2025-06-02", "--out", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and "TAXVIEW_BROKER_URL" in err and "Traceback" not in err


def _nightly(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "producer",
            "nightly",
            "--synthetic-accounts",
            "6",
            "--names",
            "15",
            "--date",
            "2025-06-02",
            "--concurrency",
            "2",
            "--out",
            str(tmp_path / "night"),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("server", ["redis-server", "fakeredis"])
def test_nightly_runs_on_the_embedded_default(tmp_path: Path, server: str) -> None:
    result = _nightly(tmp_path, "--embedded-server", server)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "night"
    firm = json.loads((out / "firm_pnl.json").read_text())
    assert firm["complete"] and firm["received"] == 6
    for name in ("trades.csv", "not_ok.csv", "outcomes.jsonl", "pnl_by_household.csv"):
        assert (out / name).exists(), name
    assert (out / "next_book" / "lots.csv").exists() and (out / "book" / "market.json").exists()
    assert "outputs:" in result.stdout and f"embedded {server}" in result.stderr


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("day", "previous"), [("2025-07-04", "2025-07-03"), ("2025-06-07", "2025-06-06")]
)
def test_a_night_on_a_holiday_or_weekend_is_refused_naming_the_previous_session(
    tmp_path, capsys, monkeypatch, day: str, previous: str
) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    argv = ["nightly", "--synthetic-accounts", "2", "--names", "15", "--date", day]
    rc = main([*argv, "--out", str(tmp_path / "o"), "--quiet"])
    err = _one_line_error(capsys)
    assert rc == 2 and day in err and previous in err and "--date" in err
    assert not (tmp_path / "o").exists()


def test_a_night_before_the_books_close_is_refused(tmp_path, capsys, monkeypatch) -> None:
    from producer.book import book_from_pairs, write_book, write_market
    from shared.examples import synthetic_book

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    market, pairs = synthetic_book(accounts=2, names=15, seed=1, as_of=dt.date(2025, 6, 2))
    book = book_from_pairs(dt.date(2025, 6, 3), pairs)  # the book closed after the market's day
    write_book(tmp_path / "book", book)
    write_market(tmp_path / "book" / "market.json", market)
    rc = main(["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert rc == 2 and "2025-06-02" in err and "2025-06-03" in err


@pytest.fixture(scope="module")
def redis_url():
    from producer.embedded import RedisServer

    with RedisServer() as server:
        yield server.url


@pytest.mark.integration
def test_preflight_refuses_an_evicting_policy_and_an_unreachable_broker_in_one_line(
    redis_url: str, capsys, monkeypatch
) -> None:
    from producer.embedded import free_port
    from producer.results_reader import connect

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    urls = ["--broker-url", f"{redis_url}/0", "--redis-url", f"{redis_url}/1"]
    assert main(["preflight", *urls]) == 0
    assert "preflight ok" in capsys.readouterr().out
    client = connect(redis_url)
    client.config_set("maxmemory-policy", "volatile-lru")
    try:
        assert main(["preflight", *urls]) == 2
        err = _one_line_error(capsys)
        assert "volatile-lru" in err and "noeviction" in err
    finally:
        client.config_set("maxmemory-policy", "noeviction")
    nobody = free_port()
    for broker, name in (
        (f"amqp://guest:guest@127.0.0.1:{nobody}//", "RabbitMQ"),
        (f"redis://127.0.0.1:{nobody}/0", "Redis"),
    ):
        started = time.monotonic()
        rc = main(["preflight", "--broker-url", broker, "--redis-url", f"{redis_url}/1"])
        err = _one_line_error(capsys)
        assert rc == 2 and "TAXVIEW_BROKER_URL" in err and "unreachable" in err, (name, err)
        assert time.monotonic() - started < 15, name


@pytest.mark.integration
def test_fleet_commands_against_an_unreachable_store_fail_in_one_line(
    tmp_path, capsys, monkeypatch
) -> None:
    from producer.embedded import free_port

    url = f"redis://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TAXVIEW_BROKER_URL", f"{url}/0")
    monkeypatch.setenv("TAXVIEW_REDIS_URL", f"{url}/1")
    monkeypatch.setattr("producer.results_reader.STORE_RETRIES", 1)
    rc = main(["aggregate", "--date", "2025-06-02", "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert rc == 2 and "TAXVIEW_REDIS_URL" in err and "unreachable" in err
