"""The results store: one outcome per account by overwrite, status index, TTL, sibling ledger."""

from __future__ import annotations

import datetime as dt

import fakeredis
import pytest

from shared import results_keys as keys
from shared.messages import Failed, LedgerState, MarketSnapshot, Rejected, RiskModel, encode_json
from worker.handlers import Start
from worker.market_data import MarketCache
from worker.results_writer import WRITTEN_LEDGERS, ResultsStore

DAY = dt.date(2025, 6, 2)


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


def test_a_later_outcome_overwrites_the_earlier_one(store: ResultsStore) -> None:
    store.put(Failed(account_id="A1", as_of=DAY, reason="first"))
    store.put(Rejected(account_id="A1", as_of=DAY, reason="second"))
    assert store.client.hget(keys.status_key(DAY), "A1") == b"rejected"
    assert store.client.hlen(keys.results_key(DAY)) == 1


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
    snap = MarketSnapshot(
        as_of=DAY,
        symbols=["AAA"],
        prices=[1.0],
        benchmark_weights=[1.0],
        risk_model=RiskModel(
            factor_names=["m"], loadings=[[1.0]], factor_cov=[[0.1]], specific_var=[0.1]
        ),
    )
    store.client.set(keys.market_key(DAY), encode_json(snap))
    cache = MarketCache(store)
    assert cache.get(keys.market_key(DAY)) == snap == cache.get(keys.market_key(DAY))
    assert cache.loads == 1
    with pytest.raises(Exception, match="taxview enqueue"):
        cache.get(keys.market_key(dt.date(2025, 6, 3)))


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
