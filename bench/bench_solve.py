"""Time whole rebalances (``taxview bench solve``) and append the results to a JSON-lines file.

Each run builds ``--accounts`` different synthetic accounts on one ``--names``-name universe
(:func:`shared.examples.synthetic_book`) and times :func:`shared.rebalance.rebalance` on each:
validation, ledger restrictions, pre-pass, solve, share rounding, trade list, wash check and
outcome.  See ``producer.solve_commands.bench_solve`` for the keys.

Usage::

    .venv/bin/python bench/bench_solve.py                       # n=500 × 50 and n=3000 × 10
    .venv/bin/python bench/bench_solve.py --runs 1000x20 --fresh
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as in the worker image; set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from producer.bench_out import emit  # noqa: E402
from producer.solve_commands import bench_solve  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the sizes, print one JSON line each and append them to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", nargs="+", default=["500x50", "3000x10"], help="NAMESxACCOUNTS, e.g. 500x50"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="freshly transferred-in books")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_solve.jsonl"))
    args = parser.parse_args(argv)
    for run in args.runs:
        names, accounts = (int(x) for x in run.lower().split("x"))
        result = bench_solve(names=names, accounts=accounts, seed=args.seed, fresh=args.fresh)
        result["at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
