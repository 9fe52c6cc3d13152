"""The benchmark scripts under bench/ run and report what their README rows are read from."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_the_celery_floor_benchmark_runs_every_no_op_task_and_counts_its_cpu(pool: str) -> None:
    floor = _load("bench_celery_floor")
    result = floor.run(tasks=60, concurrency=2, pool=pool)
    assert result["tasks"] == 60 and result["pool"] == pool
    assert result["tasks_per_s"] > 0
    # Every process did some work, and the total is the parts' sum.
    assert result["worker_and_redis_cpu_ms"] > 0
    assert result["producer_cpu_ms"] > 0
    assert result["cpu_ms_per_task"] == pytest.approx(
        result["worker_and_redis_cpu_ms"] + result["producer_cpu_ms"], abs=2e-3
    )


def test_the_parallel_floor_benchmark_times_lone_and_side_by_side_loops(tmp_path: Path) -> None:
    import json

    floor = _load("bench_parallel_floor")
    out = tmp_path / "floor.jsonl"
    assert floor.main(["--names", "30", "--sample", "4", "--workers", "2", "--out", str(out)]) == 0
    (line,) = out.read_text().splitlines()
    result = json.loads(line)
    assert result["workers"] == 2 and len(result["together_ms_per_account"]) == 2
    assert all(x > 0 for x in [*result["alone_ms_per_account"], *result["together_ms_per_account"]])
    together = sum(result["together_ms_per_account"]) / 2
    alone = sum(result["alone_ms_per_account"]) / 2
    assert result["parallel_floor"] == pytest.approx(together / alone - 1, abs=2e-3)
