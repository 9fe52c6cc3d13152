"""The fleet's one task: decode → :func:`worker.handlers.handle_account` → stored outcome.

Registered under the explicit name :data:`shared.messages.TASK_REBALANCE` (the producer sends by
that name).  Retry policy: transient results-store / broker errors are retried automatically with
exponential backoff and jitter, capped; a solver failure or soft time limit is retried the same
way while solve attempts remain, then recorded as ``failed``.  A household sibling whose ledger
is not stored yet waits on its own budget (:data:`MAX_WAITS` retries carried in the message as
``waits``), so waiting never uses up the account's solve attempts.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config import Settings
from shared.errors import SolverFailed
from shared.messages import TASK_REBALANCE, AccountTask
from worker.handlers import NotReady, chain_place, deadline_solve, decode_task, handle_account
from worker.market_data import MarketCache
from worker.results_writer import ResultsStore

#: Errors worth another delivery: the store or broker was briefly unreachable.
TRANSIENT: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
)

#: Retries of a household sibling that arrives before its predecessor's ledger is stored (rare:
#: siblings travel as a Celery chain; e.g. a re-sent chain whose predecessor is still running).
#: After them the task fails without an outcome; the completeness check names the account and
#: ``taxview sweep`` sends it again.
MAX_WAITS = 10

#: The share of the soft time limit that a rebalance's solver attempts may use together (the
#: rest: validation, rounding, the wash check and the store writes).
SOLVE_SHARE_OF_SOFT_LIMIT = 0.8


def register(app: Celery, settings: Settings) -> None:
    """Register the rebalance task on ``app``."""
    store = ResultsStore(settings.redis_url, ttl_s=settings.results_ttl_s)
    markets = MarketCache(store)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_REBALANCE,
        bind=True,
        shared=False,  # this app only: each create_app(settings) gets its own task
        # One more delivery than solve attempts (the last one only records `failed`), plus the
        # waits for a sibling's ledger, which the message counts apart (``waits``).
        max_retries=settings.max_retries + 1 + MAX_WAITS,
        # Delay of the retry sent when a pool process dies (Celery's default is 180 s).
        default_retry_delay=settings.retry_backoff_s,
        autoretry_for=TRANSIENT,
        retry_backoff=max(settings.retry_backoff_s, 1),
        retry_backoff_max=settings.retry_backoff_max_s,
        retry_jitter=True,
        acks_late=True,
        reject_on_worker_lost=True,
        retry_on_worker_lost=True,
    )
    def rebalance_account(self: Task, payload: dict[str, Any], waits: int = 0) -> str:
        task = decode_task(payload)
        if not isinstance(task, AccountTask):  # malformed: a `rejected` outcome, or dropped
            if task is not None:
                place = chain_place(payload)
                if place is None:
                    store.put(task)
                else:  # it traded nothing: the next sibling starts from the same ledger
                    household, index, size = place
                    store.put_unreadable(
                        task, household=household, index=index, last=index + 1 >= size
                    )
            return "dropped" if task is None else task.status
        # Deliveries that were solve attempts (or lost processes), not waits for a sibling.
        solves = max(self.request.retries - waits, 0)
        try:
            return handle_account(
                task,
                store=store,
                markets=markets,
                retries=solves,
                max_retries=settings.max_retries,
                # Solver attempts end before the soft limit (which cannot interrupt them).
                solve=deadline_solve(SOLVE_SHARE_OF_SOFT_LIMIT * settings.soft_time_limit_s),
                retryable=(SoftTimeLimitExceeded,),
            ).status
        except NotReady as exc:
            if waits >= MAX_WAITS:
                raise
            raise self.retry(
                exc=exc, countdown=_backoff(settings, waits), kwargs={"waits": waits + 1}
            ) from exc
        except (SolverFailed, SoftTimeLimitExceeded) as exc:
            raise self.retry(exc=exc, countdown=_backoff(settings, solves)) from exc


def _backoff(settings: Settings, retries: int) -> int:
    """Exponential backoff with full jitter, capped (seconds)."""
    return int(
        get_exponential_backoff_interval(
            max(settings.retry_backoff_s, 1),
            retries,
            settings.retry_backoff_max_s,
            full_jitter=True,
        )
    )
