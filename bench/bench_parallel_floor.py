"""The floor of running the plain loop on every core at once: what ``overhead_vs_inline`` cannot
go below on this machine, whatever the fleet does.

``taxview bench fleet`` divides the fleet's wall time by the plain loop's time per account (one
process, the machine otherwise idle) times the accounts per worker.  Two workers on two cores
are two solving processes at once: if two plain loops side by side are already slower per
account than one alone (shared caches, memory bandwidth, the hypervisor's placement of the
virtual CPUs), that slowdown shows up in ``overhead_vs_inline`` too, with no broker, store or
Celery involved.  This benchmark measures it:

1. the plain loop of ``taxview bench fleet`` (``producer.fleet_bench.inline_seconds_per_account``:
   the same synthetic accounts solved and booked into their household ledgers) in one process;
2. the same loop in ``--workers`` processes started together (forked after the book is built,
   each solving the same accounts in its own memory);
3. ``parallel_floor = (mean per-account time of the concurrent loops) ÷ (the lone loop's) − 1``,
   and again the lone loop (the machine's speed drifts; both lone runs are printed).

It prints one JSON line and appends it to ``bench/parallel_floor.jsonl``.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_parallel_floor.py --sample 300
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process, as in the worker image; set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from producer.bench_out import emit  # noqa: E402
from producer.book import Book, book_from_stream  # noqa: E402
from producer.fleet_bench import inline_seconds_per_account  # noqa: E402
from shared.examples import synthetic_book_stream  # noqa: E402
from shared.messages import MarketSnapshot  # noqa: E402

_SHARED: dict[str, Any] = {}


def _loop(_: int) -> float:
    book: Book = _SHARED["book"]
    market: MarketSnapshot = _SHARED["market"]
    return inline_seconds_per_account(book, market, _SHARED["sample"])


def _side_by_side(workers: int) -> list[float]:
    """The loop in ``workers`` forked processes at once; each writes its seconds per account
    back as text through a pipe (no pickling)."""
    children: list[tuple[int, int]] = []
    for k in range(workers):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, report, leave without the parent's clean-up
            os.close(read_end)
            code = 0
            try:
                os.write(write_end, repr(_loop(k)).encode())
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((pid, read_end))
    out = []
    for pid, read_end in children:
        with os.fdopen(read_end, "rb") as fh:
            text = fh.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise RuntimeError(f"loop process {pid} failed (status {status})")
        out.append(float(text))
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, default=500)
    parser.add_argument("--sample", type=int, default=300, help="accounts per loop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("parallel_floor.jsonl")
    )
    args = parser.parse_args(argv)
    market, pairs = synthetic_book_stream(
        accounts=args.sample, names=args.names, seed=args.seed, as_of=dt.date(2025, 6, 2)
    )
    _SHARED.update(book=book_from_stream(market.as_of, pairs), market=market, sample=args.sample)
    alone_before = _loop(0)
    together = _side_by_side(args.workers)
    alone_after = _loop(0)
    alone = (alone_before + alone_after) / 2
    result = {
        "names": args.names,
        "workers": args.workers,
        "sample": args.sample,
        "alone_ms_per_account": [round(alone_before * 1e3, 2), round(alone_after * 1e3, 2)],
        "together_ms_per_account": [round(x * 1e3, 2) for x in together],
        "parallel_floor": round(sum(together) / len(together) / alone - 1, 4),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
