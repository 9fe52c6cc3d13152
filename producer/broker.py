"""A minimal Celery *client* for the producer: broker URL only, no result backend, no task
imports.  Tasks are sent by their explicit name (:data:`shared.messages.TASK_REBALANCE`), so the
producer never imports worker code and a refactor cannot orphan queued messages."""

from __future__ import annotations

from typing import Any

from celery import Celery, chain

from shared import results_keys as keys
from shared.config import Settings
from shared.messages import TASK_REBALANCE, AccountTask, to_wire


def client_app(settings: Settings) -> Celery:
    """A Celery app that can only publish (JSON only, the fleet's queue)."""
    app = Celery("taxview-producer", broker=settings.broker_url, set_as_current=False)
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_ignore_result": True,
        "result_backend": None,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 10,
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 20,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 3.0,
        },
    }
    if settings.broker_is_redis:
        conf["broker_transport_options"] = {
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
        }
    app.conf.update(conf)
    return app


def send_household(app: Celery, tasks: list[AccountTask]) -> None:
    """Publish one household's accounts: one task, or a chain that runs them in order.

    Each task id is ``date:account`` (deterministic); signatures are immutable so a sibling's
    return value is never passed as an argument.
    """
    sigs = [
        app.signature(
            TASK_REBALANCE,
            args=(to_wire(task),),
            immutable=True,
            task_id=keys.task_id(task.as_of, task.account.account_id),
        )
        for task in tasks
    ]
    if len(sigs) == 1:
        sigs[0].apply_async()
    else:
        chain(*sigs).apply_async()
