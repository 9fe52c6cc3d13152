"""Enqueue: one task per account with a deterministic id, households as ordered chains, the
manifest before the tasks, and a re-run that resumes where outcomes stop."""

from __future__ import annotations

import base64
import datetime as dt
import json
from types import SimpleNamespace
from typing import Any

import fakeredis
import pytest

from producer import broker, enqueue
from producer.book import book_from_pairs
from producer.broker import FIRST_PRIORITY, SIBLING_PRIORITY, client_app, send_household
from producer.embedded import RedisServer
from producer.results_reader import connect, manifest, outcomes_with_status, preflight
from shared import results_keys as keys
from shared.config import Settings
from shared.errors import InputError
from shared.examples import synthetic_book
from shared.messages import Failed, Rejected, encode_json

DAY = dt.date(2025, 6, 2)


@pytest.fixture(scope="module")
def night():
    market, pairs = synthetic_book(accounts=12, names=12, seed=9, as_of=DAY)
    return book_from_pairs(market.as_of, pairs), market


def _enqueued(book: Any, market: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fake store holding the night enqueued from ``book`` (no task is sent)."""
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(enqueue, "send_household", lambda app, tasks: None)
    enqueue.enqueue_night(client, object(), book, market, ttl_s=600)  # type: ignore[arg-type]
    return client


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


def test_a_night_enqueued_from_one_book_refuses_another_book_or_market(night, monkeypatch) -> None:
    # Operator audit: a second enqueue of a cut-down book replaced the manifest, and aggregate
    # then published a "complete" night without the first book's other solved accounts.
    import msgspec

    book, market = night
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(enqueue, "send_household", lambda app, tasks: None)
    assert enqueue.enqueue_night(client, object(), book, market, ttl_s=600)[0] == 12  # type: ignore[arg-type]
    # The same book again (a crashed producer re-run) is fine.
    assert enqueue.enqueue_night(client, object(), book, market, ttl_s=600)[0] == 12  # type: ignore[arg-type]
    fewer = book_from_pairs(
        market.as_of,
        [(spec, book.ledgers[spec.household_id]) for spec in book.accounts[:7]],
    )
    with pytest.raises(InputError) as err:
        enqueue.enqueue_night(client, object(), fewer, market, ttl_s=600)  # type: ignore[arg-type]
    assert err.value.field == "--book"
    assert "lists 12 accounts, this book 7" in str(err.value) and "only in the night" in str(
        err.value
    )
    assert len(manifest(client, market.as_of)) == 12  # untouched
    moved = msgspec.structs.replace(market, prices=[p * 1.01 for p in market.prices])
    with pytest.raises(InputError) as err:
        enqueue.enqueue_night(client, object(), book, moved, ttl_s=600)  # type: ignore[arg-type]
    assert err.value.field == "market" and "another market snapshot" in str(err.value)


def test_a_night_enqueued_with_another_chain_order_is_refused_saying_so(night, monkeypatch) -> None:
    # Review: a night enqueued by a taxview that ordered households otherwise was refused as
    # "other lots or cash"; its entries differ only in their place in the chain.
    book, market = night
    client = _enqueued(book, market, monkeypatch)
    monkeypatch.setattr("producer.book.run_rank", lambda spec: [-ord(c) for c in spec.account_id])
    with pytest.raises(InputError) as err:
        enqueue.enqueue_night(client, object(), book, market, ttl_s=600)  # type: ignore[arg-type]
    assert "another place of their household's chain" in str(err.value)
    assert "other lots or cash" not in str(err.value)


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


def test_on_a_redis_broker_a_households_later_accounts_go_ahead_of_new_households(night) -> None:
    book, market = night
    chain = next(c for c in enqueue.plan_night(book, market.as_of) if len(c) > 1)
    with RedisServer() as server:
        settings = Settings.from_env({}).with_urls(
            broker_url=f"{server.url}/0", redis_url=f"{server.url}/1"
        )
        app = client_app(settings)
        send_household(app, chain)
        client = connect(f"{server.url}/0")
        queue = settings.queue
        # kombu keeps one list per priority step and reads the lowest number first
        assert client.llen(queue) == 0
        (raw,) = client.lrange(f"{queue}\x06\x16{FIRST_PRIORITY}", 0, -1)
        message = json.loads(raw)
        assert message["properties"]["priority"] == FIRST_PRIORITY
        first = chain[0].account.account_id
        assert first in message["headers"]["argsrepr"], "the payload is not repr'd at send"
        steps = json.loads(base64.b64decode(message["body"]))[2]["chain"]
        assert [s["options"]["priority"] for s in steps] == [SIBLING_PRIORITY] * (len(chain) - 1)
        assert SIBLING_PRIORITY < FIRST_PRIORITY
        app.close()
        client.close()


def test_on_another_broker_no_priority_is_set(night, monkeypatch) -> None:
    book, market = night
    chain = next(c for c in enqueue.plan_night(book, market.as_of) if len(c) > 1)
    sent: list[Any] = []
    monkeypatch.setattr(
        broker, "chain", lambda *sigs: SimpleNamespace(apply_async=lambda: sent.extend(sigs))
    )
    app = client_app(
        Settings.from_env({}).with_urls(
            broker_url="amqp://guest@localhost//", redis_url="redis://x/1"
        )
    )
    send_household(app, chain)
    assert len(sent) == len(chain)
    assert all("priority" not in sig.options for sig in sent)
    assert all(
        sig.options["argsrepr"].startswith(f"({t.account.account_id!r}")
        for sig, t in zip(sent, chain, strict=True)
    )


def test_a_night_refuses_the_same_accounts_with_another_lot_or_cash_at_enqueue_and_aggregate(
    night, monkeypatch, tmp_path
) -> None:
    # Docs audit: the same night re-enqueued from a copy with one lot's quantity +1, or one
    # account's cash changed, was accepted ({"sent": 0}), and `aggregate --book` of that copy
    # wrote a next_book with the wrong cash and lot.
    import msgspec

    from producer.aggregate import check_book

    book, market = night
    client = _enqueued(book, market, monkeypatch)
    expected = manifest(client, market.as_of)
    check_book(market.as_of, expected, book)  # the book it was enqueued from passes

    spec = book.accounts[0]
    richer = msgspec.structs.replace(spec, cash_usd=spec.cash_usd + 1)
    cash_book = msgspec.structs.replace(
        book, accounts=[richer if a is spec else a for a in book.accounts]
    )
    state = book.ledgers[spec.household_id]
    lot = next(x for x in state.lots if x.account == spec.account_id)
    more = msgspec.structs.replace(lot, quantity=lot.quantity + 1)
    lot_book = msgspec.structs.replace(
        book,
        ledgers={
            **book.ledgers,
            spec.household_id: msgspec.structs.replace(
                state, lots=[more if x is lot else x for x in state.lots]
            ),
        },
    )
    for other in (cash_book, lot_book):
        with pytest.raises(InputError) as err:
            enqueue.enqueue_night(client, object(), other, market, ttl_s=600)  # type: ignore[arg-type]
        assert err.value.field == "--book" and "other lots or cash" in str(err.value)
        with pytest.raises(InputError) as err:
            check_book(market.as_of, expected, other)
        assert err.value.field == "--book" and spec.account_id in str(err.value)
    assert manifest(client, market.as_of) == expected  # untouched


def test_a_manifest_written_before_book_digests_still_accepts_its_own_book(
    night, monkeypatch
) -> None:
    # A night enqueued by an older producer has no digests: the same accounts re-enqueued by a
    # newer one are its own book, not another.
    from producer.results_reader import ManifestEntry, manifest_json

    book, market = night
    client = _enqueued(book, market, monkeypatch)
    key = keys.manifest_key(market.as_of)
    for account, entry in manifest(client, market.as_of).items():
        old = ManifestEntry(
            **{f: getattr(entry, f) for f in entry.__struct_fields__ if f != "book"}
        )
        client.hset(key, account, manifest_json(old))
    assert enqueue.enqueue_night(client, object(), book, market, ttl_s=600)[0] == 12  # type: ignore[arg-type]


def test_a_sweep_refuses_another_book_or_market_before_it_sends_anything(
    night, monkeypatch
) -> None:
    # Settings audit: `taxview sweep --book` of an edited book re-sent its accounts, and the
    # night was published complete on two books.
    import msgspec

    book, market = night
    client = _enqueued(book, market, monkeypatch)
    chains = enqueue.plan_night(book, market.as_of)
    enqueue.check_same_book(client, book, market, chains)  # the same book: fine
    spec = book.accounts[0]
    richer = msgspec.structs.replace(spec, cash_usd=spec.cash_usd + 1)
    edited = msgspec.structs.replace(book, accounts=[richer, *book.accounts[1:]])
    with pytest.raises(InputError) as err:
        enqueue.check_same_book(client, edited, market, enqueue.plan_night(edited, market.as_of))
    assert err.value.field == "--book" and "other lots or cash" in str(err.value)
    moved = msgspec.structs.replace(market, prices=[p * 1.01 for p in market.prices])
    with pytest.raises(InputError) as err:
        enqueue.check_same_book(client, book, moved, chains)
    assert err.value.field == "market"


def test_a_resent_account_whose_starting_ledger_was_released_gets_it_rebuilt(
    night, monkeypatch
) -> None:
    # Fleet fault audit: the runbook for an unreadable outcome ("delete that field and run
    # `taxview sweep`") re-sent nothing (sweep read the status index), and a re-sent later
    # sibling waited for a ledger its household's last account had released: the night could
    # never complete.
    from shared.household import book_outcome_carried
    from shared.messages import RebalanceRequest, Solved
    from shared.rebalance import rebalance

    book, market = night
    client = _enqueued(book, market, monkeypatch)
    chain = next(c for c in enqueue.plan_night(book, market.as_of) if len(c) > 1)
    household = chain[0].household_id
    ledger = book.ledgers[household]
    staged = ledger
    for task in chain:  # the night as the workers ran it
        outcome = rebalance(
            RebalanceRequest(as_of=market.as_of, account=task.account, ledger=staged, market=market)
        )
        client.hset(keys.results_key(DAY), task.account.account_id, encode_json(outcome))
        client.hset(keys.status_key(DAY), task.account.account_id, outcome.status)
        if isinstance(outcome, Solved) and outcome.trades:
            staged = book_outcome_carried(
                staged, outcome, account_type=task.account.account_type
            ).state
        if task is chain[0]:
            after_first = staged
    client.delete(keys.ledger_key(DAY, household))  # the last account released the ledgers
    second = chain[1].account.account_id
    client.hdel(keys.results_key(DAY), second)  # "delete that field" (its status stays)
    todo = [
        c
        for c in enqueue.pending_chains(client, DAY, enqueue.plan_night(book, market.as_of))
        if c[0].household_id == household
    ]
    assert [[t.account.account_id for t in c] for c in todo] == [
        [t.account.account_id for t in chain[1:]]
    ]
    sent: list[Any] = []
    monkeypatch.setattr(enqueue, "send_household", lambda app, tasks: sent.append(tasks))
    enqueue.send_chains(object(), client, todo, book.ledgers, ttl_s=600)  # type: ignore[arg-type]
    assert sent == todo
    raw = client.hget(keys.ledger_key(DAY, household), "1")
    assert raw == keys.encode_ledger(after_first)

    # An earlier sibling's outcome that cannot be read is one error naming it (review: a
    # traceback), never another account's trades booked into this household.
    client.delete(keys.ledger_key(DAY, household))  # released again
    client.hset(keys.results_key(DAY), chain[0].account.account_id, b"garbage{")
    with pytest.raises(
        InputError, match=f"stored outcome of account {chain[0].account.account_id}"
    ):
        enqueue.send_chains(object(), client, todo, book.ledgers, ttl_s=600)  # type: ignore[arg-type]
