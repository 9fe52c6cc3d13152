"""The Celery app: explicit name, JSON only, at-least-once settings, no connection at import."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from shared.config import Settings
from shared.messages import TASK_REBALANCE
from worker.app import create_app
from worker.tasks import MAX_WAITS


def _app(**env: str):
    return create_app(Settings.from_env({"TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0", **env}))


def _payload(day: Any, account: str, household: str, *, index: int) -> dict[str, Any]:
    """The wire form of account ``index`` of a two-account household (store-only task)."""
    from shared.messages import AccountSpec, AccountTask, to_wire

    task = AccountTask(
        as_of=day,
        market_key="unused",
        account=AccountSpec(account_id=account, household_id=household),
        household_id=household,
        household_index=index,
        household_size=2,
    )
    out: dict[str, Any] = to_wire(task)
    return out


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
    # Solve attempts = max_retries + 1; one more delivery only records `failed`; waits for a
    # sibling's ledger are counted apart, on top.
    assert app.tasks[TASK_REBALANCE].max_retries == 5 + MAX_WAITS


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


def test_waiting_for_a_siblings_ledger_never_uses_up_the_accounts_solve_attempts(
    monkeypatch,
) -> None:
    import datetime as dt

    import redis

    from shared import results_keys as keys
    from worker import tasks

    url = "redis://127.0.0.1:6379/13"
    client = redis.Redis.from_url(url)
    day = dt.date(2031, 1, 2)
    seen: list[int] = []
    real = tasks.handle_account

    def recording(task, **kw):  # type: ignore[no-untyped-def]
        seen.append(kw["retries"])
        return real(task, **kw)

    monkeypatch.setattr(tasks, "handle_account", recording)
    app = create_app(Settings.from_env({"TAXVIEW_BROKER_URL": url, "TAXVIEW_REDIS_URL": url}))
    app.conf.task_always_eager = True  # this test only: runs the retries in-process
    payload = _payload(day, "W1", "HW", index=1)
    try:
        result = app.tasks[TASK_REBALANCE].apply(args=[payload])  # each retry runs nested
        assert isinstance(result.result, Exception)  # waited, then gave up (no ledger ever came)
        # Every wait was delivered with no solve attempt behind it, and none was counted.
        assert seen == [0] * (MAX_WAITS + 1)
        assert client.hget(keys.attempts_key(day), "W1") is None
    finally:
        for key in client.scan_iter(match=f"*{day}*"):
            client.delete(key)


@pytest.mark.parametrize(
    ("variable", "value", "other"),
    [
        ("TAXVIEW_SOFT_TIME_LIMIT", "120", {"TAXVIEW_HARD_TIME_LIMIT": "100"}),
        ("TAXVIEW_VISIBILITY_TIMEOUT", "30", {}),  # not above the default hard limit (40)
        ("TAXVIEW_MAX_RETRIES", "three", {}),
    ],
)
def test_a_worker_with_bad_settings_exits_with_one_line_naming_the_variable(
    variable: str, value: str, other: dict[str, str]
) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TAXVIEW_")},
        "TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0",
        variable: value,
        **other,
    }
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    err = result.stderr.strip()
    assert result.returncode != 0
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert variable in err


def test_flower_without_basic_auth_is_refused_with_one_line() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TAXVIEW_", "FLOWER_"))},
        "TAXVIEW_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "flower", "--port=1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    err = result.stderr.strip()
    assert result.returncode == 2
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "FLOWER_BASIC_AUTH" in err


@pytest.mark.parametrize(
    ("argv", "env", "refused"),
    [
        (["celery", "-A", "worker.app", "flower"], {}, True),
        (["celery", "-A", "worker.app", "flower"], {"FLOWER_BASIC_AUTH": " "}, True),
        (["celery", "-A", "worker.app", "flower"], {"FLOWER_BASIC_AUTH": "ops:pw"}, False),
        (["celery", "-A", "worker.app", "flower", "--basic-auth=ops:pw"], {}, False),
        (["celery", "-A", "worker.app", "flower", "--auth=.*@firm.com"], {}, False),
        (["celery", "-A", "worker.app", "worker", "-n", "flower@host"], {}, False),
        # Settings audit: an empty --auth= started an open Flower; --help started nothing.
        (["celery", "-A", "worker.app", "flower", "--auth="], {}, True),
        (["celery", "-A", "worker.app", "flower", "--basic-auth", ""], {}, True),
        (["celery", "-A", "worker.app", "flower", "--basic-auth", "ops:pw"], {}, False),
        (["celery", "-A", "worker.app", "flower", "--help"], {}, False),
    ],
)
def test_only_a_flower_with_no_authentication_at_all_is_refused(
    argv: list[str], env: dict[str, str], refused: bool
) -> None:
    from worker.app import flower_without_auth

    assert flower_without_auth(argv, env) is refused


def test_a_malformed_first_account_passes_its_households_ledger_on_to_the_next() -> None:
    # Deploy audit: a household's first account sent with max_weight "abc" was stored
    # `rejected`, but its sibling waited for a ledger that was never passed on and failed.
    import datetime as dt

    import redis

    from shared import results_keys as keys
    from shared.messages import LedgerState

    url = "redis://127.0.0.1:6379/13"
    client = redis.Redis.from_url(url)
    day = dt.date(2031, 1, 3)
    app = create_app(Settings.from_env({"TAXVIEW_BROKER_URL": url, "TAXVIEW_REDIS_URL": url}))
    staged = keys.encode_ledger(LedgerState(as_of=day, household_id="HM"))
    client.hset(keys.ledger_key(day, "HM"), "0", staged)
    payload = _payload(day, "M1", "HM", index=0)
    payload["account"]["max_weight"] = "abc"
    try:
        assert app.tasks[TASK_REBALANCE].run(payload) == "rejected"
        stored = client.hget(keys.results_key(day), "M1")
        assert stored is not None and b"account.max_weight" in stored
        # The sibling (index 1) starts from the same ledger: the rejected account traded nothing.
        assert client.hget(keys.ledger_key(day, "HM"), "1") == staged
    finally:
        for key in client.scan_iter(match=f"*{day}*"):
            client.delete(key)
