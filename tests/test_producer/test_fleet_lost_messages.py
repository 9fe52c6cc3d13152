"""A message the Redis broker lost (popped, never recorded as unacknowledged: kombu #305, celery
#7950) is told apart from one that is queued, running or waiting for a retry: the producer reads
the broker's lists and its unacknowledged hash (a real ``redis-server``) and sends a household
again only when none of its tasks is in either on two reads in a row."""

from __future__ import annotations

import datetime as dt

import pytest
import redis

from producer import enqueue
from producer.book import book_from_pairs
from producer.broker import broker_task_ids, client_app, send_household
from producer.embedded import RedisServer
from producer.nightly import _LostHouseholds
from shared import results_keys as keys
from shared.config import Settings
from shared.examples import synthetic_book

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def chains():
    market, pairs = synthetic_book(accounts=10, names=12, seed=4, as_of=DAY)
    planned = enqueue.plan_night(book_from_pairs(market.as_of, pairs), market.as_of)
    assert any(len(c) > 1 for c in planned) and any(len(c) == 1 for c in planned)
    return planned


def _ids(chain) -> list[str]:
    return [keys.task_id(DAY, t.account.account_id) for t in chain]


def test_the_broker_holds_queued_and_unacknowledged_tasks_and_not_a_popped_one(chains) -> None:
    with RedisServer() as server:
        settings = Settings.from_env({}).with_urls(
            broker_url=f"{server.url}/0", redis_url=f"{server.url}/1"
        )
        app = client_app(settings)
        for chain in chains:
            send_household(app, chain)
        heads = {_ids(c)[0] for c in chains}
        broker = redis.Redis.from_url(settings.broker_url)
        # Each household's first task is queued; later accounts travel inside its message.
        assert broker_task_ids(broker, settings.queue) == heads
        with app.connection_for_read() as conn:
            # A delivery that is not acknowledged (a running task, under acks_late): kombu moves
            # it from the list to its unacked hash, where it is still held.
            delivered = conn.default_channel.basic_get(settings.queue, no_ack=False)
            assert delivered is not None
            running = delivered.headers["id"]
            assert broker_task_ids(broker, settings.queue) == heads
            # A message popped and never recorded (the worker died in between): not held.
            popped = next(k for k in broker.scan_iter(match=f"{settings.queue}*") if broker.llen(k))
            raw = broker.rpop(popped)
            assert raw is not None
            held = broker_task_ids(broker, settings.queue)
            assert running in held and len(held) == len(heads) - 1
            # Something that is not a Celery message is skipped, not an error.
            broker.lpush(settings.queue, b"not json")
            assert broker_task_ids(broker, settings.queue) == held
        app.close()
        broker.close()


def test_a_household_is_sent_again_only_when_missing_on_two_reads_in_a_row(chains) -> None:
    lost = _LostHouseholds(DAY, chains)
    family = next(c for c in chains if len(c) > 1)
    single = next(c for c in chains if len(c) == 1)
    every = {i for c in chains for i in _ids(c)}
    rest = every - set(_ids(family)) - set(_ids(single))
    # The family's second account is pending (its first is done) and nothing of it is held;
    # the single account's task is held: never suspected.
    todo = [family[1:], single]
    assert lost.confirm(todo, rest | set(_ids(single))) == []
    assert lost.confirm(todo, rest | set(_ids(single))) == [family[1:]]
    # After it was sent again it starts over: one more read is not enough.
    assert lost.confirm(todo, rest | set(_ids(single))) == []
    # A household is held while any of its tasks is: the first account's message (say, restored
    # after its worker died) carries the rest of the chain.
    assert lost.confirm(todo, rest | {_ids(family)[0]} | set(_ids(single))) == []
    assert lost.confirm(todo, rest | {_ids(family)[0]} | set(_ids(single))) == []
    # Missing, then seen again (a chain step between its predecessor's outcome and its own
    # publication), then missing: never two reads in a row, never sent.
    assert lost.confirm([single], rest) == []
    assert lost.confirm([single], rest | set(_ids(single))) == []
    assert lost.confirm([single], rest) == []
    assert lost.confirm([single], rest) == [single]


def test_with_no_worker_running_the_stall_re_send_does_not_queue_a_household_twice() -> None:
    # Operator audit: with no worker, every stall queued each pending household once more.
    import functools

    from producer.nightly import run_night
    from producer.results_reader import connect

    market, pairs = synthetic_book(accounts=10, names=12, seed=4, as_of=DAY)
    book = book_from_pairs(market.as_of, pairs)
    heads = len(enqueue.plan_night(book, market.as_of))
    with RedisServer() as server:
        settings = Settings.from_env({}).with_urls(
            broker_url=f"{server.url}/0", redis_url=f"{server.url}/1"
        )
        app = client_app(settings)
        broker = redis.Redis.from_url(settings.broker_url)
        store = connect(settings.redis_url)
        stats = run_night(
            client=store,
            app=app,
            book=book,
            market=market,
            ttl_s=600,
            stall_s=0.3,
            poll_s=0.05,
            progress_out=None,
            timeout_s=2.0,
            held=functools.partial(broker_task_ids, broker, settings.queue),
        )
        assert stats.progress.done == 0 and stats.swept == 0
        queued = sum(int(broker.llen(k)) for k in broker.scan_iter(match=f"{settings.queue}*"))
        assert queued == heads
        app.close()
        broker.close()
        store.close()
