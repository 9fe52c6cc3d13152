"""A minimal Celery *client* for the producer: broker URL only, no result backend, no task
imports.  Tasks are sent by their explicit name (:data:`shared.messages.TASK_REBALANCE`), so the
producer never imports worker code and a refactor cannot orphan queued messages."""

from __future__ import annotations

from typing import Any

import msgspec
import redis
from celery import Celery, chain
from kombu.transport.redis import PRIORITY_STEPS
from kombu.transport.redis import Channel as RedisChannel

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


#: Redis broker priorities (kombu: one list per step, the lowest number read first).  A
#: household's later accounts go ahead of households not started yet, so a sibling usually runs
#: right after its predecessor, on the pool process that just freed up and still holds the ledger
#: it wrote decoded (``worker.results_writer``), and fewer households are in flight.
SIBLING_PRIORITY = 0
FIRST_PRIORITY = 9


def send_household(app: Celery, tasks: list[AccountTask]) -> None:
    """Publish one household's accounts: one task, or a chain that runs them in order.

    Each task id is ``date:account`` (deterministic); signatures are immutable so a sibling's
    return value is never passed as an argument.  ``argsrepr`` names the account, so Celery does
    not ``saferepr`` the payload at each publish (the producer's, and each chain step's in the
    worker).  On a Redis broker a chain's first task is sent with :data:`FIRST_PRIORITY` and its
    later steps with :data:`SIBLING_PRIORITY` (AMQP priorities need a priority queue, and mean
    the opposite order: left unset there).
    """
    redis_broker = str(app.conf.broker_url or "").startswith(("redis://", "rediss://", "unix://"))
    sigs = []
    for k, task in enumerate(tasks):
        options: dict[str, Any] = {
            "argsrepr": f"({task.account.account_id!r}, household {task.household_id!r} "
            f"{task.household_index + 1}/{task.household_size})",
            "kwargsrepr": "{}",
        }
        if redis_broker:
            options["priority"] = FIRST_PRIORITY if k == 0 else SIBLING_PRIORITY
        sigs.append(
            app.signature(
                TASK_REBALANCE,
                args=(to_wire(task),),
                immutable=True,
                task_id=keys.task_id(task.as_of, task.account.account_id),
                **options,
            )
        )
    if len(sigs) == 1:
        sigs[0].apply_async()
    else:
        chain(*sigs).apply_async()


class _Headers(msgspec.Struct):
    id: str = ""


class _Envelope(msgspec.Struct):
    """The part of a kombu message that names the task (Celery protocol 2: ``headers.id``)."""

    headers: _Headers = msgspec.field(default_factory=_Headers)


_envelope = msgspec.json.Decoder(_Envelope)
_unacked = msgspec.json.Decoder(tuple[_Envelope, str, str])


def broker_task_ids(broker: redis.Redis[bytes], queue: str) -> set[str]:
    """The ids of the tasks a Redis broker holds: waiting in ``queue``'s lists (kombu keeps one
    per priority step) or delivered to a worker and not acknowledged yet (kombu's ``unacked``
    hash, which its visibility timeout restores from).  Read in one transaction, so a message
    moving from a list to the hash is seen in one of them.

    A task that is in neither is lost for good: kombu's Redis transport pops a message
    (``BRPOP``) and records it as unacknowledged in a second step, and a worker killed in
    between takes it with it (kombu #305, celery #7950).  Entries that are not Celery messages
    are skipped.
    """
    lists = [queue] + [f"{queue}{RedisChannel.sep}{p}" for p in PRIORITY_STEPS if p]
    pipe = broker.pipeline(transaction=True)
    for key in lists:
        pipe.lrange(key, 0, -1)
    pipe.hvals(RedisChannel.unacked_key)
    *queued, delivered = pipe.execute()
    ids: set[str] = set()
    for raw in (m for waiting in queued for m in waiting):
        try:
            ids.add(_envelope.decode(raw).headers.id)
        except msgspec.DecodeError:  # ValidationError included
            continue
    for raw in delivered:
        try:
            ids.add(_unacked.decode(raw)[0].headers.id)
        except msgspec.DecodeError:  # ValidationError included
            continue
    ids.discard("")
    return ids
