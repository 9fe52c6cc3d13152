"""The Celery app: explicit name, JSON only, at-least-once settings, no connection at import."""

from __future__ import annotations

import subprocess
import sys

from shared.config import Settings
from shared.messages import TASK_REBALANCE
from worker.app import create_app


def _app(**env: str):
    return create_app(Settings.from_env({"TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0", **env}))


def test_the_task_is_registered_under_its_explicit_versioned_name() -> None:
    app = _app()
    assert TASK_REBALANCE in app.tasks
    task = app.tasks[TASK_REBALANCE]
    assert task.acks_late and task.reject_on_worker_lost and task.retry_on_worker_lost


def test_only_json_is_accepted_so_a_pickle_message_is_refused() -> None:
    conf = _app().conf
    assert conf.accept_content == ["json"]
    assert conf.task_serializer == conf.result_serializer == "json"


def test_delivery_settings_are_at_least_once_and_bounded() -> None:
    app = _app(TAXVIEW_MAX_RETRIES="4", TAXVIEW_HARD_TIME_LIMIT="100", TAXVIEW_SOFT_TIME_LIMIT="80")
    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.task_retry_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result and conf.result_backend is None
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (80, 100)
    options = conf.broker_transport_options
    assert options["visibility_timeout"] > conf.task_time_limit
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 10
    # Solve attempts = max_retries + 1; one more delivery only records `failed`.
    assert app.tasks[TASK_REBALANCE].max_retries == 5


def test_a_rabbitmq_broker_gets_no_redis_transport_options() -> None:
    app = create_app(
        Settings.from_env(
            {
                "TAXVIEW_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
                "TAXVIEW_REDIS_URL": "redis://127.0.0.1:1/1",
            }
        )
    )
    assert not app.conf.broker_transport_options


def test_importing_the_worker_app_opens_no_connection() -> None:
    # A broker URL on a closed port: any connection attempt at import would fail or hang.
    code = (
        "import socket\n"
        "orig = socket.socket.connect\n"
        "def guard(self, *a):\n"
        "    raise SystemExit('connected at import: %r' % (a,))\n"
        "socket.socket.connect = guard\n"
        "import worker.app, worker.tasks\n"
        "print(worker.app.app.main)\n"
    )
    env = {"TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "taxview" in result.stdout
