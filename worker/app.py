"""The Celery application of the worker fleet: ``celery -A worker.app worker``.

:func:`create_app` builds the app from :class:`shared.config.Settings`; the module-level ``app``
that the ``celery`` command loads is built from the process environment, which opens no connection
(Celery connects lazily, when the worker starts consuming or a task is sent).

Delivery is at-least-once, so correctness comes from idempotence (see ``docs/fleet.md``): late
acks; a task whose pool process dies is sent again like a retry (Celery 5.7's
``task_retry_on_worker_lost``) and bounded by ``max_retries``, with our own delivery counter in the
results store as the final bound; prefetch 1; a Redis ``visibility_timeout`` above the hard time
limit and a restore sweep every few seconds; JSON only (a message of any other content type is
refused, never run).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from celery import Celery

from shared.config import Settings
from shared.errors import InputError

#: Environment that pins BLAS/OpenMP pools to one thread per process (prefork × threaded BLAS
#: oversubscribes the cores).  Set before any pool process imports numpy.
ONE_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

#: Broker and results store used when neither is configured (a Redis on this host).
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def celery_config(settings: Settings) -> dict[str, Any]:
    """The explicit Celery configuration of the fleet (also used by the producer's client)."""
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_default_queue": settings.queue,
        "task_acks_late": True,
        # A failed task is acked (it recorded its outcome); a delivery whose pool process the
        # hard time limit killed is requeued and counted like a lost process (deploy audit:
        # acked, it was never retried and its household stopped).
        "task_acks_on_failure": True,
        "task_acks_on_timeout": False,
        "task_reject_on_worker_lost": True,
        "task_retry_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.soft_time_limit_s,
        "task_time_limit": settings.hard_time_limit_s,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": False,
        "result_backend": None,
        "worker_max_memory_per_child": settings.max_memory_per_child_kb or None,
        "worker_max_tasks_per_child": settings.max_tasks_per_child or None,
        "worker_concurrency": settings.concurrency or None,
        # Off by default (three broker publishes per task); Flower switches them on at run time
        # (its --enable_events, default on), so a monitored fleet still shows every task.
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_heartbeat": 30,
        # Retries and chain steps are published from inside a task: ride out a broker restart
        # (~45 s) instead of breaking a household chain (the producer's sweep is the last resort).
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 30,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
        "enable_utc": True,
    }
    if settings.broker_is_redis or not settings.broker_url:
        conf["broker_transport_options"] = {
            # Above the hard time limit, or a task that is still running is delivered twice.
            "visibility_timeout": settings.visibility_timeout_s,
            # Sweep the unacked set every few seconds (the default scans every ~100 s), so a dead
            # worker's task is back on the queue once its visibility timeout has passed.
            "unacked_restore_interval": settings.restore_interval_s,
            "unacked_restore_throttle": 1,
            "socket_timeout": 30,
            "socket_connect_timeout": 5,
            "health_check_interval": 15,
            "retry_on_timeout": True,
        }
    return conf


def create_app(settings: Settings) -> Celery:
    """Build the worker app from settings and register its tasks.

    Args:
        settings: the fleet settings.

    Returns:
        The app; nothing has connected yet.
    """
    for name, value in ONE_THREAD_ENV.items():
        os.environ.setdefault(name, value)
    broker = settings.broker_url or LOCAL_REDIS
    if not settings.redis_url:
        settings = settings.with_urls(broker_url=broker, redis_url=broker)
    app = Celery("taxview", broker=broker, set_as_current=False)
    app.conf.update(celery_config(settings))
    from worker import kombu_patches, lifecycle, tasks

    kombu_patches.patch_redis_transport()  # a Redis restart must not stop the worker

    tasks.register(app, settings)
    lifecycle.connect(settings)
    return app


#: Flower's own ways of being told to authenticate, besides ``FLOWER_BASIC_AUTH``.
FLOWER_AUTH_FLAGS = ("--basic-auth", "--basic_auth", "--auth")


def flower_without_auth(argv: list[str], env: Mapping[str, str]) -> bool:
    """True when ``argv`` starts Flower (``celery -A worker.app flower``) with no authentication:
    no ``FLOWER_BASIC_AUTH`` in ``env`` and no auth flag.  An open Flower shows every task's
    arguments and can revoke tasks and shut workers down, so the fleet refuses to start one."""
    args = argv[1:]
    if "flower" not in args or "--help" in args or "-h" in args:  # help starts nothing
        return False
    if env.get("FLOWER_BASIC_AUTH", "").strip():
        return False
    return not any(
        _auth_value(args, k) for k, a in enumerate(args) if a.startswith(FLOWER_AUTH_FLAGS)
    )


def _auth_value(args: list[str], k: int) -> bool:
    """Whether the auth flag ``args[k]`` (``--auth=…`` or ``--auth …``) has a non-empty value:
    ``--auth=`` alone started an open Flower (settings audit)."""
    _, sep, value = args[k].partition("=")
    if not sep:
        value = args[k + 1] if k + 1 < len(args) else ""
    return bool(value.strip())


def _app_from_environment() -> Celery:
    """The app ``celery -A worker.app`` loads.  Bad settings end the process with one line naming
    the variable (exit 2), not Celery's "Unable to load celery application" and a traceback; so
    does Flower started without authentication."""
    if flower_without_auth(sys.argv, os.environ):
        sys.stderr.write(
            "taxview flower: error: field FLOWER_BASIC_AUTH: not set; Flower would show every "
            "task and let anyone revoke tasks or shut workers down (set "
            "FLOWER_BASIC_AUTH=user:password, or pass --basic-auth / --auth)\n"
        )
        raise SystemExit(2)
    try:
        return create_app(Settings.from_env(os.environ))
    except InputError as exc:
        sys.stderr.write(f"taxview worker: error: {exc}\n")
        raise SystemExit(2) from None


app = _app_from_environment()
