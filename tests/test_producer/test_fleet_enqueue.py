"""Enqueue: one task per account with a deterministic id, households as ordered chains, the
manifest before the tasks, and a re-run that resumes where outcomes stop."""

from __future__ import annotations

import datetime as dt

import fakeredis
import pytest

from producer import enqueue
from producer.book import book_from_pairs
from producer.embedded import RedisServer
from producer.results_reader import connect, manifest, outcomes_with_status, preflight
from shared import results_keys as keys
from shared.errors import InputError
from shared.examples import synthetic_book
from shared.messages import Failed, Rejected, encode_json

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def night():
    market, pairs = synthetic_book(accounts=12, names=12, seed=9, as_of=DAY)
    return book_from_pairs(market.as_of, pairs), market


def test_every_account_is_planned_once_and_households_run_in_order(night) -> None:
    book, market = night
    chains = enqueue.plan_night(book, market.as_of)
    ids = [t.account.account_id for c in chains for t in c]
    assert sorted(ids) == sorted(a.account_id for a in book.accounts)
    assert len(ids) == len(set(ids))
    for chain in chains:
        assert [t.household_index for t in chain] == list(range(len(chain)))
        assert {t.household_size for t in chain} == {len(chain)}
        assert all(t.ledger is None for t in chain), "ledgers travel by reference"
    assert any(len(c) > 1 for c in chains), "the synthetic book has multi-account households"
    assert keys.task_id(market.as_of, "A-1") == f"{market.as_of.isoformat()}:A-1"


def test_the_manifest_and_market_are_written_and_tasks_sent_by_household(
    night, monkeypatch
) -> None:
    book, market = night
    client = fakeredis.FakeRedis()
    sent: list[list[str]] = []
    monkeypatch.setattr(
        enqueue,
        "send_household",
        lambda app, tasks: sent.append([t.account.account_id for t in tasks]),
    )
    expected, n = enqueue.enqueue_night(client, object(), book, market, ttl_s=600)  # type: ignore[arg-type]
    assert expected == n == 12
    assert set(manifest(client, market.as_of)) == {a.account_id for a in book.accounts}
    assert client.exists(keys.market_key(market.as_of))
    for chain in enqueue.plan_night(book, market.as_of):  # each household's ledger is staged
        assert client.hexists(keys.ledger_key(market.as_of, chain[0].household_id), "0")

    # Accounts with an outcome are skipped on a re-run; a household resumes at its first gap.
    first_chain = next(c for c in sent if len(c) > 1)
    client.hset(keys.status_key(market.as_of), first_chain[0], b"rejected")  # as the worker would
    client.hset(
        keys.results_key(market.as_of),
        first_chain[0],
        encode_json(Rejected(account_id=first_chain[0], as_of=market.as_of, reason="x")),
    )
    sent.clear()
    expected, n = enqueue.enqueue_night(client, object(), book, market, ttl_s=600)  # type: ignore[arg-type]
    assert n == 11 and first_chain[1:] in sent


def test_preflight_refuses_an_evicting_redis_and_names_the_policy() -> None:
    with RedisServer() as server:
        client = connect(server.url)
        _check_preflight(client)
        client.close()


def _check_preflight(client) -> None:
    client.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(InputError) as err:
        preflight(client)
    assert err.value.field == "maxmemory-policy" and "allkeys-lru" in str(err.value)
    client.config_set("maxmemory-policy", "noeviction")
    preflight(client)


def test_only_the_outcomes_with_the_asked_statuses_are_read_back() -> None:
    client = fakeredis.FakeRedis()
    day = dt.date(2025, 6, 2)
    stored = [
        Rejected(account_id="A2", as_of=day, field="cash_usd", reason="negative"),
        Failed(account_id="A1", as_of=day, reason="solver failed"),
        Rejected(account_id="A3", as_of=day, reason="other"),
    ]
    for outcome in stored:
        client.hset(keys.results_key(day), outcome.account_id, encode_json(outcome))
        client.hset(keys.status_key(day), outcome.account_id, outcome.status)
    client.hset(keys.status_key(day), "A3", "ok")  # the index decides what is read
    got = outcomes_with_status(client, day, {"failed", "rejected"})
    assert list(got) == ["A1", "A2"]
    assert got["A2"] == stored[0]
    assert outcomes_with_status(client, day, {"held"}) == {}
