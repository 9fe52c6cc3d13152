"""The results store: one outcome per account by overwrite, status index, TTL, sibling ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

import fakeredis
import pytest

from shared import results_keys as keys
from shared.messages import Failed, LedgerState, MarketSnapshot, Rejected, RiskModel, encode_json
from worker.handlers import NotReady, Start
from worker.market_data import MarketCache
from worker.results_writer import WRITTEN_LEDGERS, ResultsStore

DAY = dt.date(2025, 6, 2)


def _snap(price: float) -> MarketSnapshot:
    """A one-name snapshot of ``DAY`` at ``price``."""
    return MarketSnapshot(
        as_of=DAY,
        symbols=["AAA"],
        prices=[price],
        benchmark_weights=[1.0],
        risk_model=RiskModel(
            factor_names=["m"], loadings=[[1.0]], factor_cov=[[0.1]], specific_var=[0.1]
        ),
    )


@pytest.fixture
def store() -> ResultsStore:
    s = ResultsStore("redis://unused", ttl_s=3600)
    s._client = fakeredis.FakeRedis()
    s._pid = __import__("os").getpid()
    return s


def test_writing_the_same_outcome_twice_leaves_one_identical_field(store: ResultsStore) -> None:
    outcome = Rejected(account_id="A1", as_of=DAY, field="cash_usd", reason="negative")
    store.put(outcome)
    store.put(outcome)
    client = store.client
    assert client.hlen(keys.results_key(DAY)) == 1
    assert client.hget(keys.results_key(DAY), "A1") == encode_json(outcome)
    assert client.hget(keys.status_key(DAY), "A1") == b"rejected"
    assert 0 < client.ttl(keys.results_key(DAY)) <= 3600


def test_the_first_stored_outcome_stands_with_the_sibling_ledger_it_staged(
    store: ResultsStore,
) -> None:
    # Fleet fault audit: a delivery frozen past its visibility timeout resumed after its
    # redelivered copy had stored an outcome (and the next sibling had solved on that copy's
    # ledger), and overwrote it with another ticket: a night no worker computed as a whole.
    first = Failed(account_id="A1", as_of=DAY, reason="first")
    ledger = LedgerState(as_of=DAY, household_id="H")
    store.put(first, next_ledger=("H", 1, ledger))
    other = LedgerState(as_of=DAY, household_id="H", identical=[["AAA", "BBB"]])
    store.put(Rejected(account_id="A1", as_of=DAY, reason="second"), next_ledger=("H", 1, other))
    client = store.client
    assert client.hget(keys.results_key(DAY), "A1") == encode_json(first)
    assert client.hget(keys.status_key(DAY), "A1") == b"failed"
    assert client.hlen(keys.results_key(DAY)) == 1
    assert store.household_ledger(DAY, "H", 1) == ledger


def test_the_next_siblings_ledger_is_written_with_the_outcome(store: ResultsStore) -> None:
    state = LedgerState(as_of=DAY, household_id="H")
    store.put(Failed(account_id="A1", as_of=DAY, reason="x"), next_ledger=("H", 1, state))
    assert store.household_ledger(DAY, "H", 1) == state
    assert store.household_ledger(DAY, "H", 2) is None


def test_solve_attempts_are_counted_per_account_and_a_retried_failure_taken_back(
    store: ResultsStore,
) -> None:
    counts = [store.begin(DAY, "A1", ledger=None).attempts for _ in range(3)]
    assert counts == [1, 2, 3]
    assert store.begin(DAY, "A2", ledger=None).attempts == 1
    store.end_attempt(DAY, "A1")
    assert store.begin(DAY, "A1", ledger=None).attempts == 3
    assert 0 < store.client.ttl(keys.attempts_key(DAY)) <= 3600


def test_a_delivery_that_finds_its_outcome_or_no_ledger_yet_is_not_counted(
    store: ResultsStore,
) -> None:
    start = store.begin(DAY, "A2", ledger=("H", 1))
    assert start == Start(outcome=None, ledger=None, attempts=0)  # the sibling is not done yet
    state = LedgerState(as_of=DAY, household_id="H")
    store.put(Failed(account_id="A1", as_of=DAY, reason="x"), next_ledger=("H", 1, state))
    start = store.begin(DAY, "A2", ledger=("H", 1))
    assert start.outcome is None and start.ledger == state and start.attempts == 1
    outcome = Rejected(account_id="A2", as_of=DAY, reason="late")
    store.put(outcome)
    again = store.begin(DAY, "A2", ledger=("H", 1))
    assert again == Start(outcome=encode_json(outcome), ledger=None, attempts=0)
    assert store.client.hget(keys.attempts_key(DAY), "A2") == b"1"
    assert store.outcome(DAY, "A2") == encode_json(outcome)


def test_a_ledger_this_process_wrote_is_reused_only_while_the_store_holds_those_bytes(
    store: ResultsStore,
) -> None:
    state = LedgerState(as_of=DAY, household_id="H")
    store.put(Failed(account_id="A1", as_of=DAY, reason="x"), next_ledger=("H", 1, state))
    assert store.household_ledger(DAY, "H", 1) is state
    other = LedgerState(as_of=DAY, household_id="H", identical=[["GOOG", "GOOGL"]])
    store.client.hset(keys.ledger_key(DAY, "H"), "1", keys.encode_ledger(other))
    assert store.household_ledger(DAY, "H", 1) == other


def test_a_sibling_still_reuses_its_ledger_after_other_households_were_written(
    store: ResultsStore,
) -> None:
    mine = LedgerState(as_of=DAY, household_id="H")
    store.put(Failed(account_id="A1", as_of=DAY, reason="x"), next_ledger=("H", 1, mine))
    for i in range(WRITTEN_LEDGERS - 1):  # other households' accounts ran on this process since
        other = LedgerState(as_of=DAY, household_id=f"O{i}")
        store.put(
            Failed(account_id=f"B{i}", as_of=DAY, reason="x"), next_ledger=(f"O{i}", 1, other)
        )
    assert store.household_ledger(DAY, "H", 1) is mine
    assert store.household_ledger(DAY, "H", 1) == mine  # used once: read from the store again
    assert store.household_ledger(DAY, "H", 1) is not mine


def test_only_the_last_few_written_ledgers_are_kept_decoded(store: ResultsStore) -> None:
    for i in range(WRITTEN_LEDGERS + 1):
        state = LedgerState(as_of=DAY, household_id=f"H{i}")
        store.put(
            Failed(account_id=f"A{i}", as_of=DAY, reason="x"), next_ledger=(f"H{i}", 1, state)
        )
    assert len(store._written) == WRITTEN_LEDGERS
    assert (keys.ledger_key(DAY, "H0"), "1") not in store._written
    assert store.household_ledger(DAY, "H0", 1) == LedgerState(as_of=DAY, household_id="H0")


def test_the_market_is_read_once_per_process_and_a_missing_one_names_the_key(
    store: ResultsStore,
) -> None:
    snap = _snap(1.0)
    store.client.set(keys.market_key(DAY), encode_json(snap))
    cache = MarketCache(store)
    assert cache.get(keys.market_key(DAY)) == snap == cache.get(keys.market_key(DAY))
    assert cache.loads == 1
    # Missing is transient (not published yet, or lost with a store that came back empty):
    # retried, never a `rejected` outcome (fleet fault audit).
    with pytest.raises(NotReady, match="taxview enqueue"):
        cache.get(keys.market_key(dt.date(2025, 6, 3)))


def test_a_cached_snapshot_is_not_used_for_a_task_planned_with_another_one(
    store: ResultsStore,
) -> None:
    # Fleet fault audit: a night started over (its keys deleted) with a corrected market was
    # solved on the old snapshot by workers that stayed up, the cache being keyed by date only.
    key = keys.market_key(DAY)
    old, new = _snap(10.0), _snap(9.0)
    old_digest = keys.snapshot_digest(encode_json(old))
    new_digest = keys.snapshot_digest(encode_json(new))
    store.client.set(key, encode_json(old))
    cache = MarketCache(store)
    assert cache.get(key, old_digest) == old
    store.client.set(key, encode_json(new))  # the night started over with a corrected market
    # The cache alone still serves the old digest from memory: the store's round trip before a
    # solve (begin, next test) is what stops a task of the earlier run.
    assert cache.get(key, old_digest) == old
    assert cache.get(key, new_digest) == new  # a task of the new run reads the new one
    assert cache.get(key, new_digest) == new and cache.loads == 2
    # A task of the earlier run never solves on the new snapshot: transient, retried, and it
    # runs out of retries without an outcome while its account's new task solves it.
    with pytest.raises(NotReady, match="earlier run"):
        cache.get(key, old_digest)


def test_a_task_planned_with_another_snapshot_than_the_stored_one_is_never_solved(
    store: ResultsStore,
) -> None:
    # The task of an earlier run of a night started over with a corrected market: its digest
    # no longer matches the stored snapshot's, read in the same round trip as the outcome.
    from producer.enqueue import publish_market
    from shared.messages import AccountSpec, AccountTask
    from worker.handlers import handle_account

    old, new = _snap(10.0), _snap(9.0)
    old_digest = keys.snapshot_digest(encode_json(old))
    new_digest = keys.snapshot_digest(encode_json(new))
    publish_market(store.client, old, ttl_s=600)
    start = store.begin(DAY, "A1", ledger=None, market_digest=old_digest)
    assert (start.attempts, start.market_digest) == (1, old_digest)
    store.client.delete(keys.market_key(DAY), keys.market_digest_key(DAY), keys.attempts_key(DAY))
    publish_market(store.client, new, ttl_s=600)
    start = store.begin(DAY, "A1", ledger=None, market_digest=old_digest)
    assert (start.attempts, start.market_digest) == (0, new_digest)  # not counted
    stale = AccountTask(
        as_of=DAY,
        market_key=keys.market_key(DAY),
        account=AccountSpec(account_id="A1"),
        household_id="A1",
        market_digest=old_digest,
    )
    markets = MarketCache(store)
    markets.get(keys.market_key(DAY))  # a worker that cached a snapshot: the new one here
    with pytest.raises(NotReady, match="not the one this task was planned with"):
        handle_account(stale, store=store, markets=markets, retries=0, max_retries=2)
    assert store.outcome(DAY, "A1") is None
    assert store.begin(DAY, "A1", ledger=None, market_digest=new_digest).attempts == 1


def test_an_outcome_solved_while_the_night_was_started_over_is_not_stored(
    store: ResultsStore,
) -> None:
    # Review: a task of the earlier run, mid-solve while the operator deleted the night's keys,
    # wrote its outcome (and its sibling's ledger) into the new run, and a queued sibling,
    # finding no digest stored yet, solved on its worker's cached old snapshot.
    digest = "a" * 32
    done = Failed(account_id="A1", as_of=DAY, reason="x")
    assert not store.begin(DAY, "A1", ledger=None, market_digest=digest).attempts  # none stored
    with pytest.raises(NotReady, match="started over"):
        store.put(done, market_digest=digest)
    assert store.outcome(DAY, "A1") is None
    store.client.set(keys.market_digest_key(DAY), "b" * 32)  # the new run's snapshot
    with pytest.raises(NotReady):
        store.put(done, market_digest=digest)
    assert store.outcome(DAY, "A1") is None
    store.client.set(keys.market_digest_key(DAY), digest)
    store.put(done, market_digest=digest)
    assert store.outcome(DAY, "A1") == encode_json(done)
    store.put(Failed(account_id="A2", as_of=DAY, reason="y"))  # a task naming no digest
    assert store.outcome(DAY, "A2") is not None


def test_an_unreadable_staged_ledger_rejects_each_sibling_in_turn_and_is_released_at_the_end(
    store: ResultsStore,
) -> None:
    from shared.messages import AccountSpec, AccountTask
    from worker.handlers import handle_account

    key = keys.ledger_key(DAY, "H")
    store.client.hset(key, "1", b"not a ledger")

    def task(k: int) -> AccountTask:
        return AccountTask(
            as_of=DAY,
            market_key="unused",
            account=AccountSpec(account_id=f"A{k}", household_id="H"),
            household_id="H",
            household_index=k,
            household_size=3,
        )

    markets = MarketCache(store)
    for k in (1, 2):
        out = handle_account(task(k), store=store, markets=markets, retries=0, max_retries=2)
        assert isinstance(out, Rejected)
        assert out.field == "ledger" and "staged ledger" in out.reason
        assert store.client.hget(keys.status_key(DAY), f"A{k}") == b"rejected"
    # Handed on from sibling 1 to sibling 2, then released after the household's last account.
    assert not store.client.exists(key)


@pytest.fixture(scope="module")
def household() -> tuple[MarketSnapshot, list[Any], bytes]:
    """A real household of three accounts (synthetic book), its market and staged field 0."""
    from producer.book import book_from_stream
    from shared.examples import synthetic_book_stream

    market, pairs = synthetic_book_stream(accounts=12, names=40, seed=3, as_of=DAY)
    book = book_from_stream(market.as_of, pairs)
    name, specs = next((h, s) for h, s in book.households().items() if len(s) == 3)
    return market, specs, book.ledgers.raw(name)


def _untimed(raw: bytes | None) -> bytes:
    """An outcome's JSON with the solve timings zeroed (they differ from run to run)."""
    import msgspec

    from shared.messages import Outcome, Solved

    assert raw is not None
    out = msgspec.json.decode(raw, type=Outcome)
    if isinstance(out, Solved):
        timings = dict(solver_ms=0.0, total_ms=0.0, setup_ms=0.0, optimizer_ms=0.0)
        out = msgspec.structs.replace(out, solver=msgspec.structs.replace(out.solver, **timings))
    return encode_json(out)


def _night(
    household: tuple[MarketSnapshot, list[Any], bytes], stores: list[ResultsStore]
) -> list[bytes]:
    """Run the household's chain through the handler, account ``k`` on ``stores[k]``; returns
    the stored outcomes."""
    from shared.messages import AccountTask
    from worker.handlers import handle_account

    market, specs, staged = household
    client = stores[0].client
    client.set(keys.market_key(market.as_of), encode_json(market))
    key = keys.ledger_key(market.as_of, specs[0].household_id)
    client.hset(key, "0", staged)
    for k, spec in enumerate(specs):
        task = AccountTask(
            as_of=market.as_of,
            market_key=keys.market_key(market.as_of),
            account=spec,
            household_id=spec.household_id,
            household_index=k,
            household_size=len(specs),
        )
        store = stores[k]
        handle_account(task, store=store, markets=MarketCache(store), retries=0, max_retries=2)
        if k + 1 < len(specs):
            assert keys.is_patch(client.hget(key, str(k + 1)))  # staged as a patch on field 0
    return [_untimed(client.hget(keys.results_key(market.as_of), s.account_id)) for s in specs]


def _stores(n: int) -> list[ResultsStore]:
    server = fakeredis.FakeServer()
    out = []
    for _ in range(n):
        s = ResultsStore("redis://unused", ttl_s=3600)
        s._client = fakeredis.FakeRedis(server=server)
        s._pid = __import__("os").getpid()
        out.append(s)
    return out


def test_siblings_staged_as_patches_give_the_plain_loops_outcomes_on_one_process_or_many(
    household: tuple[MarketSnapshot, list[Any], bytes],
) -> None:
    from shared.household import book_outcome
    from shared.messages import RebalanceRequest, Solved
    from shared.rebalance import rebalance

    market, specs, staged = household
    ledger = keys.decode_ledger(staged, household=specs[0].household_id)
    loop = []
    for spec in specs:  # the plain loop: solve, book into the household ledger, next account
        out = rebalance(RebalanceRequest(as_of=DAY, account=spec, ledger=ledger, market=market))
        assert isinstance(out, Solved) and out.trades
        loop.append(_untimed(encode_json(out)))
        ledger = book_outcome(ledger, out, account_type=spec.account_type)
    one = _stores(1)
    assert _night(household, one * 3) == loop  # every sibling reuses the ledger it wrote
    # Each account on its own process: each sibling reads field 0 and its patch.
    assert _night(household, _stores(3)) == loop


def test_a_patch_whose_field_0_was_replaced_is_a_rejected_outcome_not_a_wrong_ledger(
    household: tuple[MarketSnapshot, list[Any], bytes],
) -> None:
    from shared.messages import AccountTask
    from worker.handlers import handle_account

    market, specs, staged = household
    first, fresh = _stores(2)
    key = keys.ledger_key(DAY, specs[0].household_id)
    first.client.set(keys.market_key(DAY), encode_json(market))
    first.client.hset(key, "0", staged)

    def task(k: int) -> AccountTask:
        return AccountTask(
            as_of=DAY,
            market_key=keys.market_key(DAY),
            account=specs[k],
            household_id=specs[k].household_id,
            household_index=k,
            household_size=3,
        )

    handle_account(task(0), store=first, markets=MarketCache(first), retries=0, max_retries=2)
    assert keys.is_patch(first.client.hget(key, "1"))
    # Field 0 no longer holds the bytes the patch was made on; sibling 1 runs on a process that
    # has nothing cached, so it must read field 0.
    first.client.hset(key, "0", keys.encode_ledger(LedgerState(as_of=DAY, household_id="X")))
    out = handle_account(task(1), store=fresh, markets=MarketCache(fresh), retries=0, max_retries=2)
    assert isinstance(out, Rejected) and out.field == "ledger"
    assert "another base" in out.reason


def test_an_unreadable_ledger_never_overwrites_an_outcome_a_duplicate_delivery_stored(
    store: ResultsStore,
) -> None:
    # A duplicate delivery finished the account (and staged the next sibling's ledger); a late
    # delivery that found the household's ledgers already released must not turn it rejected.
    key = keys.ledger_key(DAY, "H")
    done = Failed(account_id="A1", as_of=DAY, reason="stands")
    store.put(done)
    store.client.hset(key, "1", b"not a ledger")
    store.client.hset(key, "2", b"the good ledger the duplicate staged")
    late = Rejected(account_id="A1", as_of=DAY, field="ledger", reason="staged ledger unreadable")
    store.put_unreadable(late, household="H", index=1, last=False)
    assert store.client.hget(keys.results_key(DAY), "A1") == encode_json(done)
    assert store.client.hget(keys.status_key(DAY), "A1") == b"failed"
    assert store.client.hget(key, "2") == b"the good ledger the duplicate staged"
    # Without an earlier outcome the rejection is stored and handed on.
    store.put_unreadable(
        Rejected(account_id="A2", as_of=DAY, field="ledger", reason="unreadable"),
        household="H",
        index=1,
        last=False,
    )
    assert store.client.hget(keys.status_key(DAY), "A2") == b"rejected"
    assert store.client.hget(key, "2") == b"not a ledger"
