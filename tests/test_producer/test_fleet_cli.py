"""The fleet commands as users run them: help, one-line errors, and `taxview nightly` on the
embedded default (its own redis-server, or fakeredis when none is installed)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from producer.cli import main
from shared.errors import InputError


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


@pytest.mark.integration
def test_bench_fleet_prints_one_json_line_with_exactly_the_contract_keys() -> None:
    # Embedded (no broker in the environment), one worker, a small book; --details adds the
    # wall time, the plain loop's time and the statuses after the contract's keys.
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")}
    argv = [sys.executable, "-m", "producer", "bench", "fleet", "--accounts", "12"]
    argv += ["--names", "20", "--workers", "1", "--inline-sample", "3"]
    keys = ["accounts", "names", "workers", "accounts_per_s", "overhead_vs_inline"]
    keys.append("redis_peak_mb")
    for extra, detailed in (([], False), (["--details"], True)):
        run = subprocess.run(
            [*argv, *extra], env=env, capture_output=True, text=True, timeout=300, check=False
        )
        assert run.returncode == 0, run.stderr[-3000:]
        lines = run.stdout.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith('{"accounts":12,"names":20,')  # compact, as in the issue
        doc = json.loads(lines[0])
        assert list(doc)[:6] == keys
        assert (len(doc) > 6) is detailed
        assert (doc["accounts"], doc["names"], doc["workers"]) == (12, 20, 1)
        assert doc["accounts_per_s"] > 0 and doc["redis_peak_mb"] > 0
        if detailed:
            assert doc["done"] == 12 and doc["failed"] == 0


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


@pytest.mark.integration
def test_the_embedded_fakeredis_sends_a_reply_larger_than_a_socket_buffer_whole() -> None:
    # Embedded audit: fakeredis wrote replies with sendall on a non-blocking socket and dropped
    # every one past the send buffer with its connection: a 400-account night solved, then its
    # results (one 8 MB HGETALL) could not be read and the night was lost.
    import redis

    from producer.embedded import RedisServer

    with RedisServer(fake=True) as server:
        client = redis.Redis.from_url(server.url, retry_on_error=[])  # no retry to hide it
        payload = {f"acct{i:04d}": b"x" * 60_000 for i in range(400)}  # 24 MB
        client.hset("h", mapping=payload)
        assert client.hgetall("h") == {k.encode(): v for k, v in payload.items()}
        client.close()


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


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["nightly", "--workers", "100"], "--workers"),
        (["nightly", "--workers", "1", "--concurrency", "500"], "--concurrency"),
        (["bench", "fleet", "--workers", "400", "--accounts", "10"], "--workers"),
    ],
)
def test_an_embedded_fleet_too_big_for_the_machine_is_refused_before_any_process_starts(
    tmp_path, capsys, monkeypatch, argv: list[str], field: str
) -> None:
    # Contract audit (2026-12-07): `--workers 100` started 300 processes on two cores; the
    # kernel's OOM killer ended them and left orphaned workers behind.
    from producer import embedded

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    monkeypatch.setattr(embedded.os, "cpu_count", lambda: 2)
    started: list[object] = []
    monkeypatch.setattr(embedded.subprocess, "Popen", lambda *a, **k: started.append(a))
    extra = ["--out", str(tmp_path / "o")] if argv[0] == "nightly" else []
    assert main([*argv, *extra]) == 2
    err = _one_line_error(capsys)
    assert f"field {field}" in err and "at most 16" in err
    assert started == [] and not (tmp_path / "o").exists()
    # Memory: 16 processes of 250 MB do not fit in 1 GB.
    monkeypatch.setattr(embedded, "_available_mb", lambda: 1000)
    with pytest.raises(InputError, match="1,000 MB is available"):
        embedded.check_fleet_size(2, 7)
    embedded.check_fleet_size(1, 2)  # 750 MB: fits


def test_asking_for_redis_server_where_none_is_installed_names_the_flag_that_exists(
    tmp_path, capsys, monkeypatch
) -> None:
    # Contract audit (2026-12-07): the message said "use --server fakeredis", a flag no command
    # has.
    from producer import embedded

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    monkeypatch.setattr(embedded.shutil, "which", lambda name: None)
    argv = ["nightly", "--synthetic-accounts", "2", "--names", "15", "--quiet"]
    rc = main([*argv, "--embedded-server", "redis-server", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the line naming the embedded fleet
    assert rc == 2 and "--embedded-server fakeredis" in last and "--server " not in last


def test_allow_partial_without_a_timeout_is_refused_before_anything_runs(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    argv = ["nightly", "--synthetic-accounts", "2", "--allow-partial", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "--allow-partial" in _one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def _small_book(directory: Path, *, night: dt.date, close: dt.date) -> None:
    """A 2-account, 15-name synthetic book closed on ``close``, with the market of ``night``
    as its ``market.json``."""
    from producer.book import book_from_pairs, write_book, write_market
    from shared.examples import synthetic_book

    market, pairs = synthetic_book(accounts=2, names=15, seed=1, as_of=night)
    write_book(directory, book_from_pairs(close, pairs))
    write_market(directory / "market.json", market)


def test_a_book_night_on_a_weekend_is_refused_naming_the_session_before(
    tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    _small_book(tmp_path / "book", night=dt.date(2025, 6, 2), close=dt.date(2025, 6, 5))
    argv = ["enqueue", "--book", str(tmp_path / "book"), "--date", "2025-06-07"]
    argv += ["--broker-url", "redis://127.0.0.1:9/0", "--redis-url", "redis://127.0.0.1:9/1"]
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "2025-06-07 is not an NYSE session" in err and "2025-06-06" in err


def test_a_night_before_the_books_close_is_refused(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    # The book closed after the market's day.
    _small_book(tmp_path / "book", night=dt.date(2025, 6, 2), close=dt.date(2025, 6, 3))
    rc = main(["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert rc == 2 and "2025-06-02" in err and "2025-06-03" in err


def test_a_market_file_with_a_bad_price_stops_the_night_before_anything_is_sent(
    tmp_path, capsys, monkeypatch
) -> None:
    import msgspec

    from producer.book import book_from_pairs, write_book, write_market
    from shared.examples import synthetic_book

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    market, pairs = synthetic_book(accounts=2, names=15, seed=1, as_of=dt.date(2025, 6, 2))
    write_book(tmp_path / "book", book_from_pairs(market.as_of, pairs))
    prices = [-5.0, *market.prices[1:]]
    write_market(tmp_path / "book" / "market.json", msgspec.structs.replace(market, prices=prices))
    rc = main(["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert rc == 2 and "market.prices[0]" in err and "is -5.0;" in err
    assert not (tmp_path / "o").exists()


def test_a_market_file_dated_on_a_holiday_or_with_unknown_keys_is_refused(
    tmp_path, capsys, monkeypatch
) -> None:
    # Book audit: a market.json of 2026-12-25 ran a night dated on Christmas; a misspelt
    # "alphas" was ignored and a price written as text traded.
    import json

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    _small_book(tmp_path / "book", night=dt.date(2025, 6, 2), close=dt.date(2025, 5, 30))
    path = tmp_path / "book" / "market.json"
    good = json.loads(path.read_text())
    for edit, text in (
        ({"as_of": "2025-06-07"}, "as_of 2025-06-07 is not an NYSE session"),
        ({"alphas": [0.0]}, "unknown field `alphas`"),
        ({"prices": [str(good["prices"][0]), *good["prices"][1:]]}, "market.prices[0]"),
    ):
        path.write_text(json.dumps({**good, **edit}))
        rc = main(["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o")])
        err = _one_line_error(capsys)
        assert rc == 2 and text in err, err
        assert not (tmp_path / "o").exists()


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
def test_a_sweep_of_a_night_without_its_manifest_is_refused(
    redis_url: str, tmp_path, capsys, monkeypatch
) -> None:
    # Fleet fault audit: the producer stopped after the snapshot, before the manifest; a
    # sweep of another book (one account's cash changed) was taken as the night's, enqueue
    # then sent nothing and aggregate published the mix as complete.
    from producer.book import read_book
    from producer.enqueue import publish_market
    from producer.results_reader import connect
    from shared import results_keys as keys

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    night = dt.date(2025, 6, 2)
    _small_book(tmp_path / "book", night=night, close=dt.date(2025, 5, 30))
    client = connect(f"{redis_url}/3")
    client.delete(*client.keys(keys.night_keys_pattern(night)) or ["none"])
    from producer.book import read_market

    publish_market(client, read_market(tmp_path / "book" / "market.json", night), ttl_s=600)
    assert read_book(tmp_path / "book").accounts  # the book itself reads
    urls = ["--broker-url", f"{redis_url}/2", "--redis-url", f"{redis_url}/3"]
    rc = main(["sweep", "--book", str(tmp_path / "book"), *urls])
    err = _one_line_error(capsys)
    assert rc == 2 and "no manifest" in err and "taxview enqueue" in err
    assert not client.hlen(keys.results_key(night))


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
    assert not (tmp_path / "o").exists()  # a refused run leaves no folder (contract audit)


@pytest.mark.integration
def test_sweep_makes_the_quick_store_check_first_as_enqueue_does(capsys, monkeypatch) -> None:
    # Fleet fault audit (2026-12-07): against a store that was not there, sweep took 41 s to
    # say so (the store's own retries), enqueue 4 s (the quick check docs/fleet.md promises).
    from producer import fleet_commands
    from producer.embedded import free_port

    url = f"redis://127.0.0.1:{free_port()}"
    monkeypatch.setenv("TAXVIEW_BROKER_URL", f"{url}/0")
    monkeypatch.setenv("TAXVIEW_REDIS_URL", f"{url}/1")
    monkeypatch.setattr("producer.results_reader.STORE_RETRIES", 1)
    checked: list[str] = []
    quick = fleet_commands.reader.check_server

    def spy(store: str, **kwargs: object) -> None:
        checked.append(store)
        quick(store, retries=1)

    monkeypatch.setattr(fleet_commands.reader, "check_server", spy)
    rc = main(["sweep", "--synthetic-accounts", "2", "--names", "10"])
    err = _one_line_error(capsys)
    assert rc == 2 and "TAXVIEW_REDIS_URL" in err and "unreachable" in err
    assert checked == [f"{url}/1"]


# A small book and market written by hand from docs/formats.md alone.
HAND_FILES = {
    "book.json": '{"as_of": "2024-07-01"}\n',
    "accounts.csv": """\
account_id,household_id,account_type,strategy,cash_usd,te_budget,max_weight,exclusions
ACC-1,HH-1,taxable,direct-index,1000,0.03,0.5,
ACC-2,HH-1,ira,direct-index,500,,0.5,
ACC-3,,taxable,direct-index,0,-0.03,0.5,
ACC-4,,taxable,direct-index,0,0.03,0.5,DDD
""",
    "lots.csv": """\
household_id,account,symbol,lot_id,quantity,trade_date,acquired,cost_basis,wash_adjustment,short,account_type
HH-1,ACC-1,AAA,L1,100,2023-01-03,2023-01-03,12000,0,false,taxable
HH-1,ACC-1,BBB,L2,200,2024-06-10,2024-06-10,11000,0,false,taxable
HH-1,ACC-2,AAA,L4,30,2021-03-01,2021-03-01,2000,0,false,
,ACC-3,AAA,L6,50,2024-01-02,2024-01-02,6000,,,
,ACC-4,AAA,L6,50,2024-01-02,2024-01-02,6000,,,
,ACC-4,BBB,L7,100,2024-01-02,2024-01-02,6000,,,
,ACC-4,DDD,L8,100,2024-01-02,2024-01-02,3000,,,
""",
    "market/prices.csv": "date,symbol,price\n"
    + "".join(
        f"{day},{sym},{price}\n"
        for day, prices in (
            ("2024-07-01", (100, 50, 90, 30, 20)),
            ("2024-07-02", (101, 49, 91, 29, 20.5)),
            ("2024-07-03", (99, 48, 92, 28.5, 20.7)),
        )
        for sym, price in zip(("AAA", "BBB", "CCC", "DDD", "EEE"), prices, strict=True)
    ),
    "market/benchmark_weights.csv": "date,symbol,weight\n2024-07-01,AAA,0.3\n"
    "2024-07-01,BBB,0.25\n2024-07-01,CCC,0.2\n2024-07-01,DDD,0.15\n2024-07-01,EEE,0.1\n",
    "market/factor_covariance.csv": "factor,market,value\n"
    "market,0.0256,0.001\nvalue,0.001,0.0016\n",
    "market/factor_loadings.csv": "symbol,market,value\nAAA,1.1,0.5\nBBB,0.9,-0.5\n"
    "CCC,1.0,0.2\nDDD,1.2,-0.3\nEEE,0.8,0.1\n",
    "market/specific_variance.csv": "symbol,specific_var\nAAA,0.04\nBBB,0.09\nCCC,0.05\n"
    "DDD,0.06\nEEE,0.07\n",
}


def _hand_book(directory: Path, *, parquet: bool = False) -> Path:
    for name, text in HAND_FILES.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if parquet:  # the same tables as Parquet, every column text, as docs/formats.md describes
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        for table in ("accounts", "lots"):
            names = (directory / f"{table}.csv").read_text().splitlines()[0].split(",")
            options = pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()))
            data = pacsv.read_csv(directory / f"{table}.csv", convert_options=options)
            pq.write_table(data, directory / f"{table}.parquet")
            (directory / f"{table}.csv").unlink()
    return directory


# What no household can be blamed for stops the night (one bad household's cell does not:
# test_a_bad_cell_rejects_its_household_and_the_night_runs_every_other).
BAD_HAND_BOOKS = [
    ("duplicate account", "accounts.csv", "ACC-4,,", "ACC-1,,", "accounts.csv rows 1 and 4"),
    ("missing column", "lots.csv", ",quantity,", ",qty,", "missing column 'quantity'"),
    ("short row", "lots.csv", "2021-03-01,2000,0,false,", "2021-03-01,2000,", "lots.csv row 3"),
]


@pytest.mark.parametrize("case", BAD_HAND_BOOKS, ids=[c[0] for c in BAD_HAND_BOOKS])
def test_a_bad_book_stops_nightly_before_anything_runs_with_one_line(
    tmp_path, capsys, monkeypatch, case: tuple[str, str, str, str, str]
) -> None:
    _, table, old, new, text = case
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    book = _hand_book(tmp_path / "book")
    (book / table).write_text((book / table).read_text().replace(old, new, 1))
    rc = main(["nightly", "--book", str(book), "--market", str(book / "market")])
    err = _one_line_error(capsys)
    assert rc == 2 and text in err, (case, err)


@pytest.mark.integration
@pytest.mark.slow
def test_a_bad_cell_rejects_its_household_and_the_night_runs_every_other(tmp_path: Path) -> None:
    # Badinput audit: one malformed cell (a NaN basis, a 2026-13-01 date, a strategy typo)
    # stopped the whole firm's night, while a well-formed bad value rejected one account.
    book = _hand_book(tmp_path / "book")
    lots = book / "lots.csv"
    lots.write_text(lots.read_text().replace("AAA,L1,100,", "AAA,L1,1OO,", 1))
    first = _nightly_book(tmp_path / "d1", "--book", str(book), "--market", str(book / "market"))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "household HH-1: 2 account(s) not solved tonight" in first.stderr
    out = tmp_path / "d1"
    firm = json.loads((out / "firm_pnl.json").read_text())
    assert firm["complete"] and firm["received"] == 4 and firm["totals"]["rejected"] == 3
    not_ok = {r["account_id"]: r for r in csv.DictReader((out / "not_ok.csv").open())}
    for account in ("ACC-1", "ACC-2"):  # the household, both accounts, the row named
        row = not_ok[account]
        assert row["status"] == "rejected" and row["field"] == "quantity", row
        assert "household HH-1" in row["reason"] and "lots.csv row 1" in row["reason"], row
        assert "'1OO'" in row["reason"] and "carried unchanged" in row["reason"], row
    assert not_ok["ACC-3"]["field"] == "account.te_budget"  # its own rebalance's rejection
    assert not_ok.get("ACC-4", {}).get("status") in (None, "relaxed")  # it ran
    trades = list(csv.DictReader((out / "trades.csv").open()))
    assert {t["account_id"] for t in trades} == {"ACC-4"}
    # The household's rows go to the next book exactly as read, and the next night reads it.
    assert "HH-1,ACC-1,AAA,L1,1OO,2023-01-03" in (out / "next_book" / "lots.csv").read_text()
    second = _nightly_book(
        tmp_path / "d2", "--book", str(out / "next_book"), "--market", str(book / "market")
    )
    assert second.returncode == 0, second.stderr[-3000:]
    again = {r["account_id"]: r for r in csv.DictReader((tmp_path / "d2" / "not_ok.csv").open())}
    assert again["ACC-1"]["status"] == "rejected" and "'1OO'" in again["ACC-1"]["reason"]


BAD_HAND_MARKETS = [
    ("price below a ten-thousandth", "2024-07-02,AAA,101\n", "2024-07-02,AAA,0.00001\n"),
    ("price above the ledger's limit", "2024-07-02,AAA,101\n", "2024-07-02,AAA,1e12\n"),
]


@pytest.mark.parametrize("case", BAD_HAND_MARKETS, ids=[c[0] for c in BAD_HAND_MARKETS])
def test_a_market_directory_with_a_price_no_rebalance_can_trade_stops_nightly_with_one_line(
    tmp_path, capsys, monkeypatch, case: tuple[str, str, str]
) -> None:
    # As market.json does: the night must not send the market and reject every account.
    _, old, new = case
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    book = _hand_book(tmp_path / "book")
    prices = book / "market" / "prices.csv"
    prices.write_text(prices.read_text().replace(old, new, 1))
    out = str(tmp_path / "out")
    rc = main(["nightly", "--book", str(book), "--market", str(book / "market"), "--out", out])
    err = _one_line_error(capsys)
    assert rc == 2, err
    assert "prices.csv row 6: price" in err and "must be between 0.0001 and" in err, err


def test_a_market_directory_snapshot_passes_the_rebalance_market_checks_before_anything_runs(
    tmp_path, capsys, monkeypatch
) -> None:
    # The backstop: whatever a rebalance would refuse in the directory's snapshot stops the
    # night with one line naming the directory, before anything is sent.
    import shared.rebalance

    checked: list[dt.date] = []

    def refuse(snapshot, **_: object):
        from shared.errors import InputError

        checked.append(snapshot.as_of)
        raise InputError("price of AAA is 1e-05", field="market.prices[0]")

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.setattr(shared.rebalance, "market_arrays", refuse)
    book = _hand_book(tmp_path / "book")
    out = str(tmp_path / "out")
    rc = main(["nightly", "--book", str(book), "--market", str(book / "market"), "--out", out])
    err = _one_line_error(capsys)
    assert rc == 2 and checked == [dt.date(2024, 7, 2)], err
    assert "market.prices[0]" in err and str(book / "market") in err and "1e-05" in err, err


def test_a_market_directory_too_short_to_estimate_its_risk_model_stops_nightly_with_one_line(
    tmp_path, capsys, monkeypatch
) -> None:
    # Audit (book_short): 2 returns on 3 factor returns fitted every name exactly and the night
    # traded on it.  A regression on 3 factors and an intercept needs 5 returns (k + 2).
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    book = _hand_book(tmp_path / "book")
    (book / "book.json").write_text('{"as_of": "2024-07-02"}\n')
    market = book / "market"
    for name in ("factor_covariance", "factor_loadings", "specific_variance"):
        (market / f"{name}.csv").unlink()
    (market / "factor_returns.csv").write_text(
        "date,market,value,size\n2024-07-01,0,0,0\n2024-07-02,0.01,-0.002,0.001\n"
        "2024-07-03,-0.004,0.001,0.002\n"
    )
    out = str(tmp_path / "out")
    rc = main(["nightly", "--book", str(book), "--market", str(market), "--out", out])
    err = _one_line_error(capsys)
    assert rc == 2, err
    assert str(market) in err and "field risk_model" in err, err
    assert "longest name has 2 daily returns, a regression on 3 factors needs 5" in err, err


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_a_hand_written_book_runs_rejects_its_bad_account_and_its_next_book_runs_the_next_day(
    tmp_path: Path, parquet: bool
) -> None:
    book = _hand_book(tmp_path / "book", parquet=parquet)
    fmt = "parquet" if parquet else "csv"
    first = _nightly_book(
        tmp_path / "d1", "--book", str(book), "--market", str(book / "market"), f"--format={fmt}"
    )
    assert first.returncode == 0, first.stderr[-3000:]
    out = tmp_path / "d1"
    assert sorted(p.name for p in (out / "next_book").glob("lots.*")) == [f"lots.{fmt}"]
    firm = json.loads((out / "firm_pnl.json").read_text())
    assert firm["as_of"] == "2024-07-02" and firm["complete"] and firm["received"] == 4
    not_ok = {r["account_id"]: r for r in csv.DictReader((out / "not_ok.csv").open())}
    assert not_ok["ACC-3"]["status"] == "rejected"
    assert not_ok["ACC-3"]["field"] == "account.te_budget" and "-0.03" in not_ok["ACC-3"]["reason"]
    assert firm["totals"]["rejected"] == 1 and firm["totals"]["failed"] == 0
    trades = list(csv.DictReader((out / "trades.csv").open()))
    assert {t["account_id"] for t in trades} >= {"ACC-1", "ACC-4"}
    assert not any(t["account_id"] == "ACC-3" for t in trades)

    # The next book already holds the night's trades: running that night on it again is refused.
    again = _nightly_book(
        tmp_path / "again",
        "--book",
        str(out / "next_book"),
        "--market",
        str(book / "market"),
        "--date=2024-07-02",
    )
    assert again.returncode == 2 and "already holds" in again.stderr, again.stderr[-3000:]
    assert len(again.stderr.strip().splitlines()) == 1

    # The next book is the input of the next trading day (2024-07-03), as written.
    second = _nightly_book(
        tmp_path / "d2", "--book", str(out / "next_book"), "--market", str(book / "market")
    )
    assert second.returncode == 0, second.stderr[-3000:]
    firm2 = json.loads((tmp_path / "d2" / "firm_pnl.json").read_text())
    assert firm2["as_of"] == "2024-07-03" and firm2["complete"] and firm2["received"] == 4


def _nightly_book(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")}
    return subprocess.run(
        [sys.executable, "-m", "producer", "nightly", *args, "--concurrency=1", f"--out={out}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
@pytest.mark.slow
def test_nightly_with_a_timeout_refuses_the_partial_night_or_publishes_it_when_told(
    tmp_path: Path,
) -> None:
    # A deadline shorter than the workers' start-up: no account can finish in time.
    refused = _nightly(tmp_path, "--timeout", "0.01", "--quiet")
    assert refused.returncode == 2, refused.stderr[-3000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert "6 account(s) have no outcome" in last and "--allow-partial" in last
    # The embedded store is gone with its fleet: no `taxview sweep` advice (contracts audit).
    assert "run the night again" in last and "taxview sweep" not in last
    assert not (tmp_path / "night" / "firm_pnl.json").exists()
    published = _nightly(tmp_path, "--timeout", "0.01", "--quiet", "--allow-partial")
    assert published.returncode == 1, published.stderr[-3000:]
    firm = json.loads((tmp_path / "night" / "firm_pnl.json").read_text())
    assert not firm["complete"] and firm["expected"] == 6
    rows = list(csv.DictReader((tmp_path / "night" / "not_ok.csv").open()))
    assert len(rows) == 6 - firm["received"] and {r["status"] for r in rows} <= {"missing"}


def test_a_book_closed_sessions_before_the_night_is_run_with_a_warning_naming_them(
    tmp_path, capsys, monkeypatch
) -> None:
    # Nights audit: night 11-29 ran on the 11-27 input book silently; had the 11-27 night run,
    # its trades would be traded again.  A firm that skipped a session has no newer book, so
    # this warns rather than refuses.
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    _small_book(tmp_path / "book", night=dt.date(2025, 6, 4), close=dt.date(2025, 6, 2))
    rc = main(
        ["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o"), "--quiet"]
    )
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert rc == 0 and len(warnings) == 1, err
    assert "closed 2025-06-02" in warnings[0] and "from 2025-06-03" in warnings[0]
    # The next session's night (the book's own next night) warns about nothing.
    _small_book(tmp_path / "next", night=dt.date(2025, 6, 3), close=dt.date(2025, 6, 2))
    rc = main(
        ["nightly", "--book", str(tmp_path / "next"), "--out", str(tmp_path / "p"), "--quiet"]
    )
    assert rc == 0 and "warning" not in capsys.readouterr().err


def test_an_out_that_is_a_file_is_one_line_for_nightly_and_aggregate(
    tmp_path, capsys, monkeypatch
) -> None:
    # Docs audit: both printed a FileExistsError traceback.
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    taken = tmp_path / "afile"
    taken.write_text("")
    rc = main(["nightly", "--synthetic-accounts", "2", "--names", "15", "--out", str(taken)])
    err = _one_line_error(capsys)
    assert rc == 2 and "--out" in err and "it is a file" in err
    argv = ["aggregate", "--date", "2025-06-02", "--out", str(taken)]
    argv += ["--broker-url", "redis://127.0.0.1:9/0", "--redis-url", "redis://127.0.0.1:9/1"]
    assert main(argv) == 2
    assert "it is a file" in _one_line_error(capsys)


@pytest.mark.parametrize(
    ("in_the_way", "named"),
    [
        ("trades.csv/", "trades.csv: it is a directory"),
        ("firm_pnl.json/", "firm_pnl.json: it is a directory"),
        ("worker0.log/", "worker0.log: it is a directory"),
        ("next_book/lots.csv/", "lots.csv: it is a directory"),
        ("book", "book/: it is a file"),
    ],
)
def test_an_out_with_something_in_the_way_is_refused_before_the_night_runs(
    tmp_path, capsys, monkeypatch, in_the_way: str, named: str
) -> None:
    # Contract audit, 2026-12-08: a directory where an output file goes (or a file where
    # book/ goes) ended the whole solved night in a traceback, exit 1.
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    out = tmp_path / "o"
    path = out / in_the_way.rstrip("/")
    if in_the_way.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True)
        path.write_text("")
    argv = ["nightly", "--synthetic-accounts", "2", "--names", "15", "--out", str(out)]
    rc = main([*argv, "--quiet"])
    err = _one_line_error(capsys)
    assert rc == 2 and named in err and "--out" in err
    assert "embedded" not in capsys.readouterr().err  # refused before any fleet started


def test_a_book_that_the_nights_next_book_would_overwrite_is_refused(
    tmp_path, capsys, monkeypatch
) -> None:
    # Review audit, 2026-12-08: `--book OUT/next_book --out OUT` rewrote its own input in
    # place (a writer killed half-way left it unreadable).
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    day = dt.date(2025, 6, 2)
    _small_book(tmp_path / "o" / "next_book", night=day, close=day)
    argv = ["nightly", "--book", str(tmp_path / "o" / "next_book"), "--out", str(tmp_path / "o")]
    rc = main([*argv, "--quiet"])
    err = _one_line_error(capsys)
    assert rc == 2 and "would overwrite the book it starts from" in err


def test_a_bad_market_json_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch) -> None:
    # Docs audit: a truncated market.json said only "field document: not valid JSON".
    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    day = dt.date(2025, 6, 2)
    _small_book(tmp_path / "book", night=day, close=day)
    (tmp_path / "book" / "market.json").write_text('{"as_of": "2025-06-02", "symb')
    rc = main(["nightly", "--book", str(tmp_path / "book"), "--out", str(tmp_path / "o")])
    err = _one_line_error(capsys)
    assert rc == 2 and "market.json" in err and "not valid JSON" in err


def test_an_unreachable_broker_is_named_without_its_password() -> None:
    from producer.fleet_commands import _redacted

    assert _redacted("amqp://guest:12/hunter2@127.0.0.1:5999//") == "amqp://***@127.0.0.1:5999//"
    assert _redacted("redis://h:1/0") == "redis://h:1/0"
    assert "hunter2" not in _redacted("u:hunter2@h")


def test_the_broker_check_gives_a_redis_broker_the_attempts_it_was_asked_for(monkeypatch) -> None:
    # check_broker's `retries` reached only the AMQP branch; a Redis broker always got the
    # preflight default.
    from producer import fleet_commands
    from producer import results_reader as reader
    from shared.config import Settings
    from shared.errors import InputError

    asked: list[int | None] = []

    def connect(url: str, *, retries: int | None = None, socket_timeout: float = 30.0):
        asked.append(retries)
        raise InputError("unreachable", field="TAXVIEW_BROKER_URL")

    monkeypatch.setattr(reader, "connect", connect)
    settings = Settings.from_env({"TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0"})
    for retries in (1, 7):
        with pytest.raises(InputError):
            fleet_commands.check_broker(settings, retries=retries)
    assert asked == [1, 7]


def test_a_night_into_an_earlier_runs_out_folder_removes_its_summary_first(
    tmp_path, capsys, monkeypatch
) -> None:
    # Embedded audit: an interrupted re-run into the same --out left its new book beside the
    # old run's firm_pnl.json saying "complete".
    from producer import fleet_commands
    from shared.errors import TaxviewError

    class Refused:
        def __init__(self, *_: object, **__: object) -> None:
            raise TaxviewError("no fleet today")

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    monkeypatch.setattr(fleet_commands, "EmbeddedFleet", Refused)
    out = tmp_path / "night"
    out.mkdir()
    (out / "firm_pnl.json").write_text('{"complete": true}\n')
    argv = ["nightly", "--synthetic-accounts", "3", "--names", "20", "--date", "2026-12-04"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "no fleet today" in capsys.readouterr().err
    assert not (out / "firm_pnl.json").exists()


def test_an_embedded_store_failure_names_the_embedded_store_not_a_setting(
    tmp_path, capsys, monkeypatch
) -> None:
    # Embedded audit: it said "field TAXVIEW_REDIS_URL", which the user never set.
    import redis

    from producer import fleet_commands

    class Lost:
        def __init__(self, *_: object, **__: object) -> None:
            raise redis.exceptions.ConnectionError("Connection closed by server.")

    monkeypatch.delenv("TAXVIEW_BROKER_URL", raising=False)
    monkeypatch.delenv("TAXVIEW_REDIS_URL", raising=False)
    monkeypatch.setattr(fleet_commands, "EmbeddedFleet", Lost)
    argv = ["nightly", "--synthetic-accounts", "3", "--names", "20", "--date", "2026-12-04"]
    assert main([*argv, "--out", str(tmp_path / "night")]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("taxview: error: field embedded store:"), err
    assert "TAXVIEW_REDIS_URL" not in err and "run the night again" in err, err


def test_a_night_refused_for_an_unreachable_store_touches_nothing_in_its_out_folder(
    tmp_path, capsys, monkeypatch
) -> None:
    # Review: the refusal came after an earlier night's firm_pnl.json had been removed.
    from producer.embedded import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setenv("TAXVIEW_BROKER_URL", url)
    monkeypatch.setenv("TAXVIEW_REDIS_URL", url)
    out = tmp_path / "night"
    out.mkdir()
    (out / "firm_pnl.json").write_text('{"complete": true}\n')
    argv = ["nightly", "--synthetic-accounts", "3", "--names", "20", "--date", "2026-12-04"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "unreachable" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["firm_pnl.json"]


def test_waiting_for_the_bench_workers_retries_a_broker_error_and_names_it_if_it_persists() -> None:
    # Contract audit (2026-12-07): under load the embedded fakeredis server closed a ping's
    # connection while loading a Lua script and `bench fleet` died with a traceback.
    import redis.exceptions

    from producer.fleet_bench import wait_for_workers
    from shared.errors import TaxviewError

    class Control:
        def __init__(self, failures: int) -> None:
            self.failures = failures

        def ping(self, timeout: float) -> list[dict[str, str]]:
            if self.failures:
                self.failures -= 1
                raise redis.exceptions.ConnectionError("Connection closed by server.")
            return [{"w0@host": "pong"}]

    class App:
        def __init__(self, failures: int) -> None:
            self.control = Control(failures)

    wait_for_workers(App(failures=2), 1, timeout_s=10)
    with pytest.raises(TaxviewError, match="Connection closed by server"):
        wait_for_workers(App(failures=10**6), 1, timeout_s=1.2)
