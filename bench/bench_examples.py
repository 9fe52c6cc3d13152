"""Time whole rebalances of ``taxview example-request`` requests, whose 2% TE cap binds.

``bench solve`` times steady-state 500- and 3,000-name books that stay inside their TE budget
(one solver attempt each).  The example requests (50–150 names, recent trades, a household IRA)
are the other kind: the cap binds, the side refinement and the flip pass re-solve the account
many times, so what each re-solve costs shows here.  For every request: CPU seconds of
:func:`shared.rebalance.rebalance` (the best of ``--repeat``), solver attempts, and the final
objective (fraction of NAV) of the solution the ticket was rounded from.

Usage::

    .venv/bin/python bench/bench_examples.py                  # 50/100/150 names, seeds 1-6, DI+L/S
    .venv/bin/python bench/bench_examples.py --names 100 --seeds 1 2 3 --strategies direct-index
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as in the worker image; set before numpy is imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import shared.rebalance as rb  # noqa: E402
from shared.examples import example_request  # noqa: E402


def _one(names: int, seed: int, strategy: str, repeat: int) -> dict[str, Any]:
    request = example_request(names=names, seed=seed, strategy=strategy)  # type: ignore[arg-type]
    chain = rb._solve_chain
    seen: list[float] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = chain(*args, **kwargs)
        if out[0] is not None:
            seen.append(out[0].objective)
        return out

    rb._solve_chain = spy  # type: ignore[assignment]
    try:
        cpu: list[float] = []
        for _ in range(repeat):
            seen.clear()
            t0 = time.process_time()
            outcome = rb.rebalance(request)
            cpu.append(time.process_time() - t0)
    finally:
        rb._solve_chain = chain  # type: ignore[assignment]
    return {
        "names": names,
        "seed": seed,
        "strategy": strategy,
        "cpu_ms": round(min(cpu) * 1e3, 1),
        "attempts": len(outcome.solver.attempts),
        "status": outcome.status,
        "objective": seen[-1] if seen else None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run every request, print one JSON line of the summary and append it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--names", type=int, nargs="+", default=[50, 100, 150])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument(
        "--strategies", nargs="+", default=["direct-index", "long-short"], help="strategies"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per request (best kept)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("bench_examples.jsonl")
    )
    args = parser.parse_args(argv)
    rb.rebalance(example_request(names=30, seed=0))  # warm-up: imports, first-call caches
    rows = [
        _one(n, s, strat, args.repeat)
        for strat in args.strategies
        for n in args.names
        for s in args.seeds
    ]
    cpu = np.array([r["cpu_ms"] for r in rows])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    line = {
        "requests": len(rows),
        "cpu_ms_sum": round(float(cpu.sum()), 1),
        "cpu_ms_p50": round(float(np.median(cpu)), 1),
        "cpu_ms_p95": round(float(np.percentile(cpu, 95)), 1),
        "attempts_p50": float(np.median([r["attempts"] for r in rows])),
        "objective_sum": round(sum(r["objective"] or 0.0 for r in rows), 6),
        "code": commit,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in line.items() if k != "rows"}))
    with args.out.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
