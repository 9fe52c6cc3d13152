"""Fault injection for the reliability tests, loaded into a real worker with ``--include``.

It wraps ``shared.rebalance.rebalance`` (which ``worker.handlers.default_solve`` imports at each
call) in the worker's main process, before the pool forks:

- ``TAXVIEW_FAULT_POISON``: comma-separated accounts whose solve SIGKILLs its own pool process,
  every time (a poison account);
- ``TAXVIEW_FAULT_HANG``: comma-separated accounts whose solve ignores the soft time limit and
  sleeps until the hard time limit kills its pool process (a solve stuck in a C call), every
  time;
- ``TAXVIEW_FAULT_SLOW``: comma-separated accounts whose solve first sleeps
  ``TAXVIEW_FAULT_SLOW_S`` seconds (a window to SIGKILL a pool process mid-solve), writing the
  pool process id to ``TAXVIEW_FAULT_PID_DIR/{account}.pid``.

Test-only: nothing in ``worker`` or ``producer`` knows about it.
"""

from __future__ import annotations

import os
import signal
import time

import shared.rebalance as _rebalance

_real = _rebalance.rebalance
_POISON = {a for a in os.environ.get("TAXVIEW_FAULT_POISON", "").split(",") if a}
_SLOW = {a for a in os.environ.get("TAXVIEW_FAULT_SLOW", "").split(",") if a}
_HANG = {a for a in os.environ.get("TAXVIEW_FAULT_HANG", "").split(",") if a}
_SLOW_S = float(os.environ.get("TAXVIEW_FAULT_SLOW_S", "2"))
_PID_DIR = os.environ.get("TAXVIEW_FAULT_PID_DIR", "")


def _faulty(request, **kwargs):  # type: ignore[no-untyped-def]
    account = request.account.account_id
    if account in _POISON:
        os.kill(os.getpid(), signal.SIGKILL)
    if account in _HANG:
        from celery.exceptions import SoftTimeLimitExceeded

        while True:  # until the hard time limit kills this process
            try:
                time.sleep(0.5)
            except SoftTimeLimitExceeded:
                continue
    if account in _SLOW:
        if _PID_DIR:  # tell the test which pool process is mid-solve on this account
            with open(os.path.join(_PID_DIR, f"{account}.pid"), "w") as fh:
                fh.write(str(os.getpid()))
        time.sleep(_SLOW_S)
    return _real(request, **kwargs)


_rebalance.rebalance = _faulty
