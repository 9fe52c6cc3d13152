"""The floor of one Celery task per account: what the fleet costs before it moves any data.

``taxview bench fleet`` measures ``overhead_vs_inline``: the fleet's wall time against the same
accounts solved in a plain loop and divided by the workers.  On a machine whose cores run the
producer, Redis and the worker together, that ratio cannot drop below the CPU a task costs the
broker, Celery and the producer divided by the loop's CPU per account.  This benchmark measures
that floor with the fleet's own Celery configuration (``worker.app.celery_config``: late acks,
prefetch 1, time limits, JSON, the Redis transport options) and a task that does nothing but
write one field to a results hash (the fleet writes its outcome in one such round trip):

* a private ``redis-server`` on a free port (broker and store), no persistence;
* one worker with ``--concurrency`` pool processes (prefork, as deployed; ``--pool solo`` runs
  ``--concurrency`` single-process workers instead, for comparison: no parent/child hand-off,
  but no hard time limit, memory recycling or lost-process redelivery either);
* the producer publishes ``--tasks`` tasks by name with a ``date:account`` task id, as
  ``taxview enqueue`` does, then waits until every field is written.

It prints one JSON line and appends it to ``bench/celery_floor.jsonl``: CPU milliseconds per task
of the worker (main and pool processes), Redis and the producer, read from ``/proc`` (Linux); and,
for comparison, the plain loop's CPU per account that ``taxview bench fleet`` divides by (the same
synthetic accounts solved and booked in one process, ``--names`` names, ``--inline-sample``
accounts) and ``floor_vs_inline`` = the no-op task's CPU ÷ the loop's: the lowest
``overhead_vs_inline`` one Celery task per account can reach when the fleet shares its cores.

Usage::

    .venv/bin/python bench/bench_celery_floor.py --tasks 5000
    .venv/bin/python bench/bench_celery_floor.py --tasks 5000 --pool solo
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery

from producer.bench_out import emit

#: Task name of the no-op task (never the fleet's own name).
NOOP = "taxview.bench.noop.v1"
#: The hash the no-op task writes one field of per task.
DONE_KEY = "bench:celery-floor:done"


def make_app(url: str) -> Celery:
    """A Celery app with the fleet's configuration and the no-op task."""
    from shared.config import Settings
    from worker.app import celery_config

    settings = Settings(broker_url=url, redis_url=url)
    app = Celery("taxview-bench", broker=url, set_as_current=False)
    app.conf.update(celery_config(settings))
    state: dict[str, Any] = {}

    @app.task(name=NOOP, shared=False)  # type: ignore[untyped-decorator]
    def noop(account: str) -> None:
        import redis

        client = state.get("client")
        if client is None:
            client = state["client"] = redis.Redis.from_url(url)
        client.hset(DONE_KEY, account, b"1")

    return app


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = (task / "children").read_text().split()
        out.extend(int(k) for k in kids)
    return out


def run(tasks: int, concurrency: int, pool: str = "prefork") -> dict[str, Any]:
    """Start Redis and the workers, publish ``tasks`` no-op tasks, return CPU per task.

    ``pool="prefork"``: one worker with ``concurrency`` pool processes, as the fleet deploys
    (its hard time limit, memory-per-child recycling and lost-process redelivery need prefork);
    ``pool="solo"``: ``concurrency`` single-process workers, for comparison (no parent/child
    hand-off, but none of those guarantees either)."""
    import redis

    from producer.embedded import free_port, wait_for_redis

    server_bin = shutil.which("redis-server")
    if server_bin is None:
        raise SystemExit("bench_celery_floor: needs redis-server on PATH")
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen(
        [
            server_bin,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        wait_for_redis(url)
        env = dict(os.environ, TAXVIEW_BENCH_URL=url)
        layout = [(pool, concurrency)] if pool == "prefork" else [(pool, 1)] * concurrency
        for k, (kind, procs) in enumerate(layout):
            command = [sys.executable, __file__, "--serve", "--pool", kind]
            command += ["--concurrency", str(procs), "--name", f"floor{k}"]
            workers.append(
                subprocess.Popen(
                    command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        app = make_app(url)
        client = redis.Redis.from_url(url)
        client.delete(DONE_KEY)
        # Wait until the pool answers (start-up is not throughput).
        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=0.5) or []) < len(workers):
            if time.monotonic() > deadline:
                raise SystemExit("bench_celery_floor: the worker did not start")
        time.sleep(1.0)
        fleet = [server.pid, *(w.pid for w in workers)]
        fleet += [child for w in workers for child in _children(w.pid)]
        c0, p0, t0 = _cpu_s(fleet), time.process_time(), time.perf_counter()
        day = dt.date(2025, 6, 2).isoformat()
        for k in range(tasks):
            account = f"A{k:06d}"
            app.send_task(NOOP, args=[account], task_id=f"{day}:{account}", argsrepr=account)
        publish_s = time.perf_counter() - t0
        deadline = time.monotonic() + 60 + tasks / 50
        while int(client.hlen(DONE_KEY)) < tasks:
            if time.monotonic() > deadline:
                raise SystemExit("bench_celery_floor: tasks still missing at the deadline")
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        fleet_cpu = _cpu_s(fleet) - c0
        producer_cpu = time.process_time() - p0
        client.close()
        app.close()
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        server.terminate()
        server.wait(30)
    return {
        "tasks": tasks,
        "pool": pool,
        "concurrency": concurrency,
        "tasks_per_s": round(tasks / wall, 1),
        "cpu_ms_per_task": round((fleet_cpu + producer_cpu) / tasks * 1e3, 3),
        "worker_and_redis_cpu_ms": round(fleet_cpu / tasks * 1e3, 3),
        "producer_cpu_ms": round(producer_cpu / tasks * 1e3, 3),
        "publish_ms": round(publish_s / tasks * 1e3, 3),
        "wall_s": round(wall, 2),
        "load_before": round(os.getloadavg()[0], 2),
    }


def inline_cpu_ms(names: int, sample: int, seed: int = 0) -> float:
    """Milliseconds per account of the plain loop ``taxview bench fleet`` divides by (wall time
    of one process, which is its CPU time on an idle core)."""
    from producer.book import book_from_stream
    from producer.fleet_bench import inline_seconds_per_account
    from shared.examples import synthetic_book_stream

    market, pairs = synthetic_book_stream(
        accounts=sample, names=names, seed=seed, as_of=dt.date(2025, 6, 2)
    )
    book = book_from_stream(market.as_of, pairs)
    return inline_seconds_per_account(book, market, sample) * 1e3


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--serve``, be its worker)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=5000, help="tasks to publish (default 5000)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes (default 2)")
    parser.add_argument(
        "--pool",
        choices=("prefork", "solo"),
        default="prefork",
        help="prefork: one worker with --concurrency processes, as deployed (default); solo: "
        "--concurrency single-process workers, for comparison",
    )
    parser.add_argument("--name", default="floor0", help=argparse.SUPPRESS)
    parser.add_argument("--names", type=int, default=500, help="loop's universe (default 500)")
    parser.add_argument(
        "--inline-sample", type=int, default=200, help="loop's accounts (default 200; 0: skip)"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("celery_floor.jsonl"))
    args = parser.parse_args(argv)
    if args.serve:
        app = make_app(os.environ["TAXVIEW_BENCH_URL"])
        app.worker_main(
            [
                "worker",
                f"--pool={args.pool}",
                f"--concurrency={args.concurrency}",
                f"--hostname={args.name}@%h",
                "--loglevel=WARNING",
                "--without-gossip",
                "--without-mingle",
            ]
        )
        return 0
    result = run(args.tasks, args.concurrency, args.pool)
    if args.inline_sample > 0:
        loop_ms = inline_cpu_ms(args.names, args.inline_sample)
        result["names"] = args.names
        result["inline_ms_per_account"] = round(loop_ms, 2)
        result["floor_vs_inline"] = round(result["cpu_ms_per_task"] / loop_ms, 4)
    result["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
