"""Time the optimizer core (``shared.optimizer.problem.solve``) on random realistic problems.

For each size, ``--problems`` different problems (different seeds) are built with
:func:`shared.optimizer.synthetic.random_problem` (≈4 lots per name, k factors) and solved
once each after one warm-up solve.  Reported per size: total ``solve()`` wall time p50/p95
(validation + assembly + Clarabel + extraction + the independent check) and the same in process
CPU time (robust to other processes on a shared machine: the solve is single-threaded),
Clarabel's own time p50/p95 (its ``solve_time``: setup + iterations), the overhead ratio
total/Clarabel, and the process's peak RSS.

Usage::

    .venv/bin/python bench/solve_core.py                      # n=500 and n=3000, direct-index
    .venv/bin/python bench/solve_core.py --sizes 500 --strategy long-short --problems 20
    .venv/bin/python bench/solve_core.py --compare-cvxpy       # also time the CVXPY reference
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread, as in the worker image (prefork workers × threaded BLAS oversubscribe
# the cores; on this 2-core machine OpenBLAS threads cost 2× CPU for a slower solve).  Set
# before numpy is imported; an explicit environment setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402

import numpy as np  # noqa: E402

from shared.optimizer.problem import SolveSettings, solve, solve_cvxpy  # noqa: E402
from shared.optimizer.synthetic import random_problem  # noqa: E402


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def bench_size(
    n: int,
    *,
    problems: int,
    strategy: str,
    k: int,
    settings: SolveSettings,
    compare_cvxpy: bool,
) -> dict[str, float | int | str]:
    """Solve ``problems`` random problems of ``n`` names; return timing percentiles."""
    datas = [
        random_problem(n, k=k, strategy=strategy, seed=1000 + s)  # type: ignore[arg-type]
        for s in range(problems)
    ]
    solve(datas[0], settings=settings)  # warm-up (imports, allocator)
    total: list[float] = []
    cpu: list[float] = []
    clar: list[float] = []
    setup: list[float] = []
    iters: list[int] = []
    solvers: set[str] = set()
    for d in datas:
        t0, c0 = time.perf_counter(), time.process_time()
        sol = solve(d, settings=settings)
        total.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
        clar.append(sol.solver_ms)
        setup.append(sol.setup_ms)
        iters.append(sol.iterations)
        solvers.add(sol.solver)
    out: dict[str, float | int | str] = {
        "n": n,
        "strategy": strategy,
        "lots": int(np.mean([len(d.lot_name) for d in datas])),
        "k": k,
        "problems": problems,
        "total_p50_ms": round(_pct(total, 50), 2),
        "total_p95_ms": round(_pct(total, 95), 2),
        "cpu_p50_ms": round(_pct(cpu, 50), 2),
        "cpu_p95_ms": round(_pct(cpu, 95), 2),
        "clarabel_p50_ms": round(_pct(clar, 50), 2),
        "clarabel_p95_ms": round(_pct(clar, 95), 2),
        "setup_p50_ms": round(_pct(setup, 50), 2),
        "overhead_ratio_p50": round(float(np.median(np.array(total) / np.array(clar))), 3),
        "iterations_p50": int(np.median(iters)),
        "solvers": ",".join(sorted(solvers)),
    }
    if compare_cvxpy:
        cv: list[float] = []
        for d in datas[: min(5, problems)]:
            t0 = time.perf_counter()
            solve_cvxpy(d)
            cv.append((time.perf_counter() - t0) * 1e3)
        out["cvxpy_p50_ms"] = round(_pct(cv, 50), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON line per size."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 3000])
    p.add_argument("--problems", type=int, default=20)
    p.add_argument(
        "--strategy",
        default="direct-index",
        choices=["direct-index", "long-short", "market-neutral", "all"],
    )
    p.add_argument("-k", "--factors", type=int, default=18)
    p.add_argument("--method", default="qdldl", help="Clarabel direct_solve_method")
    p.add_argument("--eliminate-w", action="store_true", help="substitute w instead of vars")
    p.add_argument("--compare-cvxpy", action="store_true")
    args = p.parse_args(argv)
    settings = replace(
        SolveSettings(), direct_solve_method=args.method, w_variables=not args.eliminate_w
    )
    strategies = (
        ["direct-index", "long-short", "market-neutral"]
        if args.strategy == "all"
        else [args.strategy]
    )
    for n, strategy in [(n, s) for s in strategies for n in args.sizes]:
        res = bench_size(
            n,
            problems=args.problems,
            strategy=strategy,
            k=args.factors,
            settings=settings,
            compare_cvxpy=args.compare_cvxpy,
        )
        res["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
