"""The nightly loop's progress line: every line it draws is one snapshot of the store."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis

from producer import nightly
from producer.book import Book, book_from_pairs
from producer.embedded import EmbeddedError, EmbeddedFleet
from producer.results_reader import Progress
from shared import results_keys as keys
from shared.config import Settings
from shared.examples import synthetic_book
from shared.messages import MarketSnapshot

LINE = re.compile(r"(\d+)/(\d+) done \(ok (\d+), rejected (\d+), failed (\d+), retried (\d+)\)")


class Terminal(io.StringIO):
    """What the progress bar writes to a terminal (it redraws one line in place there)."""

    def isatty(self) -> bool:
        return True


def _night_without_workers(
    monkeypatch: pytest.MonkeyPatch, *, accounts: int
) -> tuple[MarketSnapshot, Book, fakeredis.FakeRedis]:
    """A small synthetic night on an in-memory store, its tasks counted as sent and never run
    (the tests play the workers' part through ``on_poll``)."""
    market, pairs = synthetic_book(accounts=accounts, names=15, seed=3, as_of=dt.date(2025, 6, 2))
    monkeypatch.setattr(
        nightly, "send_chains", lambda app, client, chains, ledgers, ttl_s: sum(map(len, chains))
    )
    return market, book_from_pairs(market.as_of, pairs), fakeredis.FakeRedis()


def test_every_progress_line_counts_the_same_outcomes_it_says_are_done(monkeypatch) -> None:
    market, book, client = _night_without_workers(monkeypatch, accounts=12)
    accounts = sorted(a.account_id for a in book.accounts)
    statuses = ["ok", "rejected", "relaxed", "failed"]

    def one_more_outcome(_: Progress) -> None:
        # a worker finishes one account between two polls
        done = client.hlen(keys.status_key(market.as_of))
        if done < len(accounts):
            client.hset(keys.status_key(market.as_of), accounts[done], statuses[done % 4])

    out = Terminal()
    stats = nightly.run_night(
        client=client,
        app=Any,
        book=book,
        market=market,
        ttl_s=60,
        poll_s=0.0,
        progress_out=out,
        on_poll=one_more_outcome,
        check_store=False,
    )
    lines = [LINE.search(part) for part in out.getvalue().split("\r") if part.strip()]
    counts = [tuple(int(g) for g in m.groups()) for m in lines if m]
    assert len(counts) >= 3, out.getvalue()  # lines drawn while the night ran, and the last
    for done, expected, ok, rejected, failed, _ in counts:
        assert expected == len(accounts)
        assert done == ok + rejected + failed, counts
    assert counts[-1][0] == len(accounts) and counts[-1][3] == 3 and counts[-1][4] == 3
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)
    assert stats.progress.done == len(accounts)
    assert out.getvalue().count(f"{len(accounts)}/{len(accounts)} done") == 1


def test_a_night_that_times_out_ends_on_a_consistent_line(monkeypatch) -> None:
    market, book, client = _night_without_workers(monkeypatch, accounts=5)
    accounts = sorted(a.account_id for a in book.accounts)

    def slow(_: Progress) -> None:
        done = client.hlen(keys.status_key(market.as_of))
        if done < 3:
            client.hset(keys.status_key(market.as_of), accounts[done], "rejected")

    out = Terminal()
    stats = nightly.run_night(
        client=client,
        app=Any,
        book=book,
        market=market,
        ttl_s=60,
        poll_s=0.0,
        progress_out=out,
        on_poll=slow,
        timeout_s=0.3,
        check_store=False,
    )
    last = [LINE.search(p) for p in out.getvalue().split("\r") if p.strip()][-1]
    assert last is not None
    done, _, ok, rejected, failed, _ = (int(g) for g in last.groups())
    assert (done, ok, rejected, failed) == (3, 0, 3, 0)
    assert stats.progress.rejected == 3


def test_the_wait_stops_when_the_fleet_check_fails_even_while_the_store_is_down(
    monkeypatch,
) -> None:
    market, book, client = _night_without_workers(monkeypatch, accounts=3)
    monkeypatch.setattr(nightly.time, "sleep", lambda s: None)
    polls = []

    def down(*args: object) -> int:
        raise redis.exceptions.ConnectionError("connection refused")

    def check() -> None:  # the embedded fleet's check: its server died
        polls.append(1)
        if len(polls) == 3:
            monkeypatch.setattr(nightly.reader, "done_count", down)
            monkeypatch.setattr(nightly.reader, "progress", down)
        if len(polls) > 6:
            raise EmbeddedError("the embedded redis-server exited")

    with pytest.raises(EmbeddedError):
        nightly.run_night(
            client=client,
            app=Any,
            book=book,
            market=market,
            ttl_s=60,
            poll_s=0.0,
            progress_out=None,
            check=check,
            check_store=False,
        )


@pytest.mark.parametrize("error", [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError])
def test_a_timed_night_stops_waiting_on_a_store_that_went_down_or_stopped_answering(
    monkeypatch, error: type[Exception]
) -> None:
    # Fleet fault audit (2026-12-07, eighth session): `nightly --timeout 30` kept waiting for
    # ever once the store died (the error skipped the time-out check), and a store that
    # stopped answering raised a TimeoutError the loop did not catch.
    market, book, client = _night_without_workers(monkeypatch, accounts=3)
    clock = [0.0]
    monkeypatch.setattr(nightly.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(nightly.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    polls = []

    def down(*args: object) -> int:
        polls.append(1)
        if len(polls) > 100:
            raise AssertionError("still waiting after 100 failed reads")
        raise error("the store is gone")

    def died(_: Progress) -> None:
        monkeypatch.setattr(nightly.reader, "done_count", down)
        monkeypatch.setattr(nightly.reader, "progress", down)

    with pytest.raises(redis.exceptions.ConnectionError, match="--timeout 10s ran out"):
        nightly.run_night(
            client=client,
            app=Any,
            book=book,
            market=market,
            ttl_s=60,
            poll_s=0.5,
            progress_out=None,
            on_poll=died,
            timeout_s=10.0,
            check_store=False,
        )
    assert 5 <= len(polls) <= 15


def test_a_store_command_gives_up_on_a_server_that_never_answers_within_its_budget() -> None:
    # Fleet fault audit: a SIGSTOPped redis-server (it accepts connections, never answers)
    # held each of 21 attempts for the whole 30 s socket timeout — `aggregate` sat silent for
    # 665 s. Now the retries end once the budget is spent.
    import socket
    import threading
    import time

    from producer.results_reader import connect

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])  # and never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0", socket_timeout=0.3, budget_s=1.5)
    t0 = time.monotonic()
    try:
        with pytest.raises((redis.exceptions.TimeoutError, redis.exceptions.ConnectionError)):
            client.ping()
        assert time.monotonic() - t0 < 1.5 + 0.3 + 1.0
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


@pytest.mark.integration
@pytest.mark.parametrize("what", ["worker", "server"])
def test_the_embedded_fleet_check_names_a_dead_server_or_a_worker_with_no_restart_left(
    tmp_path, what: str
) -> None:
    with EmbeddedFleet(Settings.from_env({}), workers=1, concurrency=1, log_dir=tmp_path) as fleet:
        fleet.check()
        fleet.max_restarts = 0
        if what == "worker":
            fleet.workers[0].kill()
        else:
            fleet.redis.kill()
        with pytest.raises(EmbeddedError) as err:
            fleet.check()
    assert ("worker" if what == "worker" else "redis-server") in str(err.value)
    assert "run the night again" in str(err.value)


@pytest.mark.integration
def test_the_embedded_fleet_starts_a_dead_worker_again_until_its_restarts_run_out(
    tmp_path,
) -> None:
    notes: list[str] = []
    with EmbeddedFleet(
        Settings.from_env({}), workers=1, concurrency=1, log_dir=tmp_path, notify=notes.append
    ) as fleet:
        fleet.max_restarts = 2
        for restart in (1, 2):
            first = fleet.workers[0].pid
            fleet.workers[0].kill()
            fleet.check()
            assert fleet.workers[0].pid != first
            assert fleet.workers[0].proc is not None and fleet.workers[0].proc.poll() is None
            assert fleet.restarts == [restart]
        fleet.workers[0].kill()
        with pytest.raises(EmbeddedError, match="every embedded worker exited"):
            fleet.check()
    assert [n.split("(")[2][:6] for n in notes] == ["1 of 2", "2 of 2"]
    assert all("worker w0 exited (code -9) mid-night" in n for n in notes)


def _progress(done: int) -> Progress:
    return Progress(
        expected=10, done=done, ok=done, relaxed=0, held=0, rejected=0, failed=0, retried=0
    )


def test_in_a_log_the_progress_is_a_line_every_few_seconds_never_a_carriage_return() -> None:
    out = io.StringIO()  # a file or a pipe: not a terminal
    bar = nightly.ProgressBar(out, every_s=10.0)
    for elapsed, done in [(0.0, 0), (5.0, 2), (12.0, 4), (13.0, 5)]:
        bar.draw(_progress(done), elapsed)
    bar.note("results store unreachable, retrying…")
    bar.draw(_progress(10), 14.0, final=True)
    bar.end()
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert [m.group(1) for m in map(LINE.search, lines) if m] == ["0", "4", "10"]
    assert "results store unreachable, retrying…" in lines


def test_on_a_terminal_the_progress_is_one_line_redrawn_in_place() -> None:
    out = Terminal()
    bar = nightly.ProgressBar(out, every_s=10.0)
    for elapsed, done in [(0.0, 0), (5.0, 2), (12.0, 4)]:
        bar.draw(_progress(done), elapsed)
    bar.end()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaped counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_an_embedded_night_killed_with_sigkill_leaves_no_redis_server_behind() -> None:
    # Fleet fault audit: SIGKILL (or the OOM killer) on an embedded `taxview nightly` left its
    # private redis-server and Celery worker running for good, reparented to PID 1.
    code = (
        "import time\n"
        "from producer.embedded import RedisServer\n"
        "server = RedisServer(fake=False).start()\n"
        "print(server.proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the redis-server outlived the process that started it"


def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``, and theirs."""
    parents = {pid}
    found: list[int] = []
    grew = True
    while grew:
        grew = False
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) not in found:
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) in parents and fields[0] != "Z":
                    found.append(int(entry.name))
                    parents.add(int(entry.name))
                    grew = True
    return found


def _night_under_way(out: str) -> tuple[subprocess.Popen[str], list[int]]:
    """An embedded `taxview nightly` (300 accounts) once its progress started, and the
    processes it started (in sessions of their own: producer.embedded)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")}
    argv = ["nightly", "--synthetic-accounts", "300", "--names", "60", "--date", "2026-12-04"]
    night = subprocess.Popen(
        [sys.executable, "-m", "producer", *argv, f"--out={out}/night"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert night.stderr is not None
    for line in night.stderr:  # the fleet is up once the progress starts
        if "done (" in line:
            break
    children = _children(night.pid)
    assert children
    return night, children


def _all_gone(children: list[int]) -> list[int]:
    """Wait up to 20 s for ``children`` to exit; those still alive (killed, then returned)."""
    import os
    import signal

    deadline = time.monotonic() + 20
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if _alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_sigterm_tears_an_embedded_night_down_like_ctrl_c_and_leaves_no_process() -> None:
    # Embedded audit: SIGTERM (systemd, `timeout`) killed the night at once, no message, its
    # worker orphaned for 30-47 s and its temporary directory left behind.
    import signal
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        night, children = _night_under_way(out)
        try:
            night.send_signal(signal.SIGTERM)
            _, err = night.communicate(timeout=60)
        finally:
            if night.poll() is None:
                night.kill()
        assert night.returncode == 128 + signal.SIGTERM, err[-2000:]
        assert "taxview: terminated" in err
        assert not _all_gone(children), "a process of the night outlived it"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG)")
def test_a_sigkilled_embedded_night_leaves_no_worker_or_server_behind() -> None:
    # Review: with SIGQUIT as its death signal the worker hung in its cold shutdown (its
    # heartbeat retried the dead private Redis) and stayed orphaned for good.
    import signal
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        night, children = _night_under_way(out)
        time.sleep(2.0)  # mid-night
        children = sorted({*children, *_children(night.pid)})
        night.send_signal(signal.SIGKILL)
        night.wait(timeout=10)
        assert not _all_gone(children), "a process of the night outlived it"


def test_an_embedded_worker_is_killed_when_its_night_dies(monkeypatch) -> None:
    # Embedded audit: with SIGTERM (a warm shutdown) a worker whose night was SIGKILLed waited
    # for its tasks, which retried the private Redis that died with the night, for 30-47 s;
    # review: with SIGQUIT (a cold shutdown) it hung on its heartbeat's retries for good.
    import signal

    from producer import embedded

    asked: list[object] = []
    monkeypatch.setattr(embedded, "die_with_parent", lambda *a: asked.append(a) or None)
    monkeypatch.setattr(embedded.subprocess, "Popen", lambda *a, **k: object())
    worker = embedded.WorkerProcess.__new__(embedded.WorkerProcess)
    monkeypatch.setattr(embedded.WorkerProcess, "command", lambda self: ["true"])
    monkeypatch.setattr(embedded.WorkerProcess, "env", lambda self: {})
    worker.log_path = None
    worker.start()
    assert asked == [(signal.SIGKILL,)]


def test_the_embedded_fleet_asks_every_worker_to_stop_before_waiting_on_any(monkeypatch) -> None:
    # Review: stopped one after the other, each worker not yet signalled kept taking tasks
    # while the one before it shut down (a 3-worker night: 23 s to stop instead of 7 s).
    from producer import embedded

    events: list[tuple[str, int]] = []

    class Worker:
        def __init__(self, i: int) -> None:
            self.i = i

        def signal_stop(self) -> None:
            events.append(("signal", self.i))

        def stop(self, timeout_s: float = 20.0) -> None:
            assert 0 < timeout_s <= 10.0
            events.append(("wait", self.i))

    fleet = embedded.EmbeddedFleet.__new__(embedded.EmbeddedFleet)
    fleet.workers = [Worker(0), Worker(1), Worker(2)]  # type: ignore[list-item]
    fleet.redis = type("R", (), {"stop": lambda self: events.append(("server", -1))})()
    fleet.close()
    assert events == [
        ("signal", 0), ("signal", 1), ("signal", 2),
        ("wait", 0), ("wait", 1), ("wait", 2),
        ("server", -1),
    ]  # fmt: skip


def test_a_night_where_nothing_finishes_says_to_check_the_workers_store_and_broker(
    monkeypatch,
) -> None:
    # Contracts audit: workers reading another results store than the producer's left the
    # night waiting with no word; each stall now says what it re-sent and, while nothing has
    # finished at all, what to check.
    market, book, client = _night_without_workers(monkeypatch, accounts=3)
    out = Terminal()
    stats = nightly.run_night(
        client=client,
        app=Any,
        book=book,
        market=market,
        ttl_s=60,
        poll_s=0.01,
        stall_s=0.05,
        timeout_s=0.5,
        progress_out=out,
        check_store=False,
    )
    assert stats.progress.done == 0
    notes = [line for line in out.getvalue().split("\n") if "no account finished" in line]
    assert notes, out.getvalue()
    assert "sent" in notes[0] and "household(s) again" in notes[0]
    assert "TAXVIEW_REDIS_URL" in notes[0] and "workers are running" in notes[0]
