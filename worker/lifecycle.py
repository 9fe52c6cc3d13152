"""Celery signal hooks.

- ``worker_init`` (main process, before the pool forks): import the solver stack and solve one
  tiny account, so every pool process is forked warm (the first solve of a cold process costs
  seconds of imports and first-call set-up, longer than a short visibility timeout).
- ``worker_process_init`` (each pool process): pin BLAS/OpenMP pools to one thread, and move
  every object the process was forked with (the imported, warmed solver stack: ~110,000 tracked
  objects) to the garbage collector's permanent generation (``gc.freeze``), so the full
  collections that decoding thousands of lots triggers no longer walk them (in one process over
  300 accounts: ~0.4 → ~0.1 ms of GC per account).
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery.signals import worker_init, worker_process_init

from shared.config import Settings

log = logging.getLogger(__name__)

_CONNECTED: list[bool] = []


def connect(settings: Settings) -> None:
    """Connect the hooks once per process (idempotent)."""
    if _CONNECTED:
        return
    _CONNECTED.append(True)
    worker_init.connect(_init_worker, weak=False)
    worker_process_init.connect(_init_process, weak=False)


def _init_worker(**_: Any) -> None:
    warm_solver()


def _init_process(**_: Any) -> None:
    gc.freeze()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # the environment variables set by worker.app still apply
        pass


def warm_solver() -> None:
    """Import the solver stack and solve one tiny account, so the first real task does not pay
    for imports and first-call set-up."""
    from shared import results_keys
    from shared.examples import warmup_request
    from shared.rebalance import rebalance

    try:
        request = warmup_request()
        rebalance(request)
        # The staged-ledger codec too (pyarrow's Zstandard): imported once here, before the
        # fork, instead of ~50 ms and ~24 MB of private memory in every pool process.
        results_keys.decode_ledger(results_keys.encode_ledger(request.ledger), household="")
    except Exception:  # a warm-up must never stop the pool process
        log.exception("solver warm-up failed (the first task pays the set-up)")
