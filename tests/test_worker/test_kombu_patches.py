"""The guard on kombu's Redis transport: closing a detached broker connection that still holds an
unacknowledged message must raise a connection error Celery ignores, not stop the worker."""

from __future__ import annotations

import time

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors
from kombu.transport import redis as kombu_redis

from producer.embedded import RedisServer
from worker import kombu_patches


@pytest.fixture
def unpatched(monkeypatch):
    """kombu's own ``_connparams`` for the length of one test (the worker app patches it)."""
    current = kombu_redis.Channel._connparams
    original = getattr(current, "__wrapped__", current)
    monkeypatch.setattr(kombu_redis.Channel, "_connparams", original)


def _deliver_one(url: str) -> tuple[Connection, str]:
    """A connection whose default channel holds one delivered, unacknowledged message, then
    detached from its transport as Celery's ``Connection.collect()`` leaves it."""
    conn = Connection(url, transport_options={"visibility_timeout": 1})
    queue = Queue("kp", Exchange("kp"), routing_key="kp")
    producer = conn.Producer(serializer="json")
    producer.publish({"n": 1}, exchange=queue.exchange, routing_key="kp", declare=[queue])
    channel = conn.default_channel
    message = channel.basic_get("kp", no_ack=False)
    assert message is not None
    conn._do_close_transport()  # what collect() does after a cut-short channel close
    return conn, message.delivery_tag


def test_without_the_guard_closing_a_detached_connection_raises_attribute_error(
    unpatched,
) -> None:
    with RedisServer() as server:
        conn, _ = _deliver_one(f"{server.url}/0")
        with pytest.raises(AttributeError, match="hostname"):
            ignore_errors(conn, conn.close)


def test_with_the_guard_the_close_ends_quietly_and_the_message_comes_back(unpatched) -> None:
    assert kombu_patches.patch_redis_transport()
    assert kombu_patches.patch_redis_transport()  # idempotent
    with RedisServer() as server:
        url = f"{server.url}/0"
        conn, tag = _deliver_one(url)
        ignore_errors(conn, conn.close)  # no exception: Celery's consumer goes on to reconnect
        client = redis.Redis.from_url(url)
        assert client.hexists("unacked", tag), "the message is kept for the restore sweep"
        time.sleep(1.2)  # past the visibility timeout
        with Connection(url, transport_options={"visibility_timeout": 1}) as fresh:
            fresh.default_channel.qos.restore_visible()
            message = fresh.default_channel.basic_get("kp", no_ack=True)
            assert message is not None and message.decode() == {"n": 1}
        client.close()


def test_the_worker_app_installs_the_guard() -> None:
    import worker.app  # noqa: F401  (building the app installs it)

    assert getattr(kombu_redis.Channel._connparams, kombu_patches._PATCHED, False)
