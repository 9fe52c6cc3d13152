"""The task edge's failure sorting and idempotence, with an in-memory store (no Celery, no Redis).

The household test runs the real use case and ledger: a loss harvest in one account and a buy of
the same name in a sibling account on the same day would be a wash sale (IRC §1091, household
wide); run as a chain, they never both happen.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec
import pytest

from shared.errors import InputError, SolverFailed
from shared.messages import (
    AccountSpec,
    AccountTask,
    Failed,
    LedgerState,
    Lot,
    MarketSnapshot,
    Outcome,
    RebalanceRequest,
    Rejected,
    RiskModel,
    Solved,
    SolverInfo,
    encode_json,
    to_wire,
)
from worker.handlers import NotReady, Start, decode_task, handle_account

DAY = dt.date(2025, 6, 2)


class MemoryStore:
    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.outcomes: dict[str, bytes] = {}
        self.ledgers: dict[tuple[str, int], LedgerState] = {}
        self.puts = 0

    def begin(
        self,
        as_of: dt.date,
        account_id: str,
        *,
        ledger: tuple[str, int] | None,
        market_digest: str = "",
    ) -> Start:
        if account_id in self.outcomes:
            return Start(outcome=self.outcomes[account_id], ledger=None, attempts=0)
        state = self.ledgers.get(ledger) if ledger is not None else None
        if ledger is not None and state is None:
            return Start(outcome=None, ledger=None, attempts=0)
        self.attempts[account_id] = self.attempts.get(account_id, 0) + 1
        return Start(outcome=None, ledger=state, attempts=self.attempts[account_id])

    def end_attempt(self, as_of: dt.date, account_id: str) -> None:
        self.attempts[account_id] -= 1

    def release(self, as_of: dt.date, household: str) -> None:
        self.ledgers = {k: v for k, v in self.ledgers.items() if k[0] != household}

    def put(
        self,
        outcome: Outcome,
        *,
        next_ledger=None,
        release=None,
        booked_from=None,
        market_digest: str = "",
    ) -> None:
        self.puts += 1
        if release is not None:
            self.ledgers = {k: v for k, v in self.ledgers.items() if k[0] != release}
        self.outcomes[outcome.account_id] = encode_json(outcome)
        if next_ledger is not None:
            household, k, state = next_ledger
            self.ledgers[(household, k)] = state

    def stored(self, account: str) -> Outcome:
        return msgspec.json.decode(self.outcomes[account], type=Outcome)


TINY = MarketSnapshot(
    as_of=DAY,
    symbols=["AAA"],
    prices=[10.0],
    benchmark_weights=[1.0],
    risk_model=RiskModel(
        factor_names=["mkt"], loadings=[[1.0]], factor_cov=[[0.04]], specific_var=[0.01]
    ),
)


class Markets:
    def __init__(self, market: MarketSnapshot | None = TINY) -> None:
        self.market = market

    def get(self, key: str, digest: str = "") -> MarketSnapshot:
        if self.market is None:
            raise NotReady("no market snapshot under 'k' yet")
        return self.market


def _task(account: str = "A1", *, index: int = 0, size: int = 1) -> AccountTask:
    return AccountTask(
        as_of=DAY,
        market_key="k",
        account=AccountSpec(account_id=account, household_id="H"),
        household_id="H",
        household_index=index,
        household_size=size,
        ledger=LedgerState(as_of=DAY, household_id="H") if index == 0 else None,
    )


def _solved(request: RebalanceRequest) -> Solved:
    return Solved(
        account_id=request.account.account_id,
        household_id=request.account.household_id,
        as_of=request.as_of,
        nav_usd=Decimal("100.00"),
        weights={},
        cash_w=1.0,
        trades=[],
        realized=[],
        realized_st_usd=Decimal(0),
        realized_lt_usd=Decimal(0),
        harvested_loss_usd=Decimal(0),
        estimated_tax_usd=Decimal(0),
        te_ex_ante=0.0,
        te_budget=0.02,
        factor_exposures=[],
        solver=SolverInfo(solver="x", status="optimal", iterations=0, solver_ms=0, total_ms=0),
    )


def _run(store: MemoryStore, task: AccountTask, solve, *, retries: int = 0, max_retries: int = 2):
    return handle_account(
        task,
        store=store,
        markets=Markets(),
        retries=retries,
        max_retries=max_retries,
        solve=solve,
        advance=lambda ledger, outcome, t: ledger,
    )


def test_a_solved_account_is_stored_once_with_its_status() -> None:
    store = MemoryStore()
    out = _run(store, _task(), _solved)
    assert out.status == "ok" and store.stored("A1") == out and store.puts == 1


def test_bad_input_becomes_a_rejected_outcome_naming_the_field_and_is_not_retried() -> None:
    def bad(request: RebalanceRequest) -> Solved:
        raise InputError("quantity must be positive", account="A1", field="lots[3].quantity")

    store = MemoryStore()
    out = _run(store, _task(), bad)
    assert isinstance(out, Rejected)
    assert (out.field, out.reason) == ("lots[3].quantity", "quantity must be positive")


def test_a_solver_failure_is_raised_for_retry_then_recorded_as_failed_on_the_last_attempt() -> None:
    def broken(request: RebalanceRequest) -> Solved:
        raise SolverFailed("numerical trouble", account="A1")

    store = MemoryStore()
    with pytest.raises(SolverFailed):
        _run(store, _task(), broken, retries=0)
    assert "A1" not in store.outcomes
    assert store.attempts["A1"] == 0, "a solve that ended in a retried failure is not a lost one"
    out = _run(store, _task(), broken, retries=2)
    assert isinstance(out, Failed) and "numerical trouble" in out.reason and out.attempts == 3


def test_a_task_delivered_beyond_its_budget_is_failed_without_solving_again() -> None:
    calls = []

    def never(request: RebalanceRequest) -> Solved:
        calls.append(1)
        raise AssertionError("must not solve")

    store = MemoryStore()
    store.attempts["A1"] = 3  # three solves already started and their process died (max_retries=2)
    out = _run(store, _task(), never)
    assert isinstance(out, Failed) and calls == [] and out.attempts == 3
    assert "gave up after 3 solve attempts that never finished" in out.reason
    assert "lost each time" in out.reason


def test_deliveries_that_wait_for_a_siblings_ledger_do_not_count_as_solve_attempts() -> None:
    store = MemoryStore()
    task = _task("A2", index=1, size=2)
    for _ in range(5):  # more waits than the retry budget (max_retries=2)
        with pytest.raises(NotReady):
            _run(store, task, _solved)
    assert store.attempts.get("A2", 0) == 0
    _run(store, _task("A1", index=0, size=2), _solved)
    out = _run(store, task, _solved)
    assert out.status == "ok", "the account is solved, not given up as a lost process"
    assert store.attempts["A2"] == 1


def test_the_poison_count_names_only_the_solves_that_were_lost() -> None:
    """A solver failure (retried), then lost processes: the message counts the lost ones."""

    def broken(request: RebalanceRequest) -> Solved:
        raise SolverFailed("numerical trouble", account="A1")

    store = MemoryStore()
    with pytest.raises(SolverFailed):
        _run(store, _task(), broken, retries=0)
    store.attempts["A1"] += 3  # then three deliveries whose process died mid-solve
    out = _run(store, _task(), broken, retries=2)
    assert isinstance(out, Failed) and "after 3 solve attempts that never finished" in out.reason


def test_a_redelivered_task_after_its_outcome_changes_nothing() -> None:
    store = MemoryStore()
    first = _run(store, _task(), _solved)
    before = dict(store.outcomes)

    def other(request: RebalanceRequest) -> Solved:
        raise AssertionError("a finished account is not solved again")

    again = _run(store, _task(), other)
    assert again == first and store.outcomes == before and store.puts == 1
    assert store.attempts["A1"] == 1, "a redelivery that finds its outcome is not a solve attempt"


def test_a_resent_households_last_account_releases_the_ledgers_staged_again() -> None:
    # `taxview enqueue --resend` on a finished night stages field 0 again for every household;
    # every delivery finds its outcome, and the last one must release what was staged.
    store = MemoryStore()
    _run(store, _task("A1", index=0, size=2), _solved)
    _run(store, _task("A2", index=1, size=2), _solved)
    assert not any(k[0] == "H" for k in store.ledgers)  # the first night released them
    store.ledgers[("H", 0)] = LedgerState(as_of=DAY, household_id="H")  # staged again

    def other(request: RebalanceRequest) -> Solved:
        raise AssertionError("a finished account is not solved again")

    _run(store, _task("A1", index=0, size=2), other)
    assert ("H", 0) in store.ledgers  # the next sibling could still need it
    _run(store, _task("A2", index=1, size=2), other)
    assert not any(k[0] == "H" for k in store.ledgers)
    assert store.puts == 2


def test_an_unexpected_error_fails_the_account_instead_of_the_night() -> None:
    def crash(request: RebalanceRequest) -> Solved:
        raise ZeroDivisionError("boom")

    out = _run(MemoryStore(), _task(), crash)
    assert isinstance(out, Failed) and "ZeroDivisionError" in out.reason


def test_a_later_household_account_waits_for_its_siblings_ledger() -> None:
    store = MemoryStore()
    with pytest.raises(NotReady):
        _run(store, _task("A2", index=1, size=2), _solved)
    _run(store, _task("A1", index=0, size=2), _solved)
    assert ("H", 1) in store.ledgers
    assert _run(store, _task("A2", index=1, size=2), _solved).status == "ok"


def test_a_missing_market_snapshot_is_waited_for_not_rejected_and_costs_no_attempt() -> None:
    # Fleet fault audit: a store wiped mid-night lost the snapshot, and every re-sent account
    # was stored `rejected` for good; re-running the night then published 80 rejections.
    store = MemoryStore()
    kwargs = {"retries": 0, "max_retries": 2, "solve": _solved, "advance": lambda s, o, t: s}
    with pytest.raises(NotReady):
        handle_account(_task(), store=store, markets=Markets(None), **kwargs)
    assert store.outcomes == {} and store.attempts["A1"] == 0
    assert handle_account(_task(), store=store, markets=Markets(), **kwargs).status == "ok"


def test_a_malformed_payload_is_rejected_naming_the_field_and_an_anonymous_one_dropped() -> None:
    payload = to_wire(_task())
    payload["account"]["te_budget"] = "lots"
    out = decode_task(payload)
    assert isinstance(out, Rejected) and out.account_id == "A1" and "te_budget" in out.field
    assert decode_task({"nothing": 1}) is None
    assert isinstance(decode_task(to_wire(_task())), AccountTask)


# --- household serialisation with the real use case and ledger ------------------------------


def _household_case() -> tuple[MarketSnapshot, AccountSpec, AccountSpec, LedgerState]:
    from shared.examples import example_request

    market = example_request(names=20, seed=3).market
    as_of = market.as_of
    top = max(range(len(market.symbols)), key=lambda i: market.benchmark_weights[i])
    x = market.symbols[top]
    lots = []
    for acct in ("HA", "HB"):
        for i, (sym, px) in enumerate(zip(market.symbols, market.prices, strict=True)):
            if acct == "HB" and sym == x:
                continue  # HB does not hold X: it would buy it to track the benchmark
            value = 1_000_000 * market.benchmark_weights[i]
            qty = Decimal(int(value / px))
            if qty <= 0:
                continue
            basis = Decimal(repr(round(px * (2.0 if sym == x else 1.0), 2))) * qty
            lots.append(
                Lot(
                    account=acct,
                    symbol=sym,
                    lot_id=f"{acct}-{sym}",
                    quantity=qty,
                    trade_date=as_of - dt.timedelta(days=500),
                    acquired=as_of - dt.timedelta(days=500),
                    cost_basis_usd=basis,
                )
            )
    ledger = LedgerState(as_of=as_of, household_id="HH", lots=lots)
    a = AccountSpec(account_id="HA", household_id="HH", te_budget=0.05)
    b = AccountSpec(
        account_id="HB",
        household_id="HH",
        cash_usd=Decimal(repr(round(1_000_000 * market.benchmark_weights[top] + 20_000, 2))),
        te_budget=0.05,
    )
    return market, a, b, ledger


def _loss_sold(outcome: Outcome, symbol: str) -> bool:
    return isinstance(outcome, Solved) and any(
        r.symbol == symbol and r.gain_usd < 0 for r in outcome.realized
    )


def _bought(outcome: Outcome, symbol: str) -> bool:
    return isinstance(outcome, Solved) and any(
        t.symbol == symbol and t.side == "buy" for t in outcome.trades
    )


@pytest.mark.slow
def test_a_households_accounts_never_harvest_and_buy_the_same_name_on_one_day() -> None:
    market, a, b, ledger = _household_case()
    x = market.symbols[max(range(len(market.symbols)), key=lambda i: market.benchmark_weights[i])]

    def task(spec: AccountSpec, k: int) -> AccountTask:
        return AccountTask(
            as_of=market.as_of,
            market_key="k",
            account=spec,
            household_id="HH",
            household_index=k,
            household_size=2,
            ledger=ledger if k == 0 else None,
        )

    # Independently (both from the same morning ledger) the two solves collide: A harvests X at
    # a loss while B buys X — the wash sale the chain exists to prevent.
    store = MemoryStore()
    kwargs = {"markets": Markets(market), "retries": 0, "max_retries": 1}
    alone_a = handle_account(task(a, 0), store=store, **kwargs)
    alone_b = handle_account(
        msgspec.structs.replace(task(b, 0), ledger=ledger), store=MemoryStore(), **kwargs
    )
    assert _loss_sold(alone_a, x) and _bought(alone_b, x), "the scenario must provoke the clash"

    # Chained: B starts from the ledger with A's loss sale booked, so it does not buy X.
    chained_b = handle_account(task(b, 1), store=store, **kwargs)
    assert store.stored("HA") == alone_a
    assert not (_loss_sold(alone_a, x) and _bought(chained_b, x))


def test_an_unreadable_staged_ledger_is_a_rejected_outcome_handed_on_to_the_next_sibling() -> None:
    class Unreadable(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.handed_on: list[tuple[str, int, bool]] = []

        def begin(
            self,
            as_of: dt.date,
            account_id: str,
            *,
            ledger: tuple[str, int] | None,
            market_digest: str = "",
        ) -> Start:
            raise InputError(
                "staged ledger is not compressed ledger data", account="H", field="ledger"
            )

        def put_unreadable(
            self, outcome: Outcome, *, household: str, index: int, last: bool
        ) -> None:
            self.outcomes[outcome.account_id] = encode_json(outcome)
            self.handed_on.append((household, index, last))

    store = Unreadable()
    out = handle_account(
        _task("A2", index=1, size=3), store=store, markets=None, retries=0, max_retries=2
    )  # type: ignore[arg-type]
    assert isinstance(out, Rejected) and out.field == "ledger"
    assert store.stored("A2") == out
    assert store.handed_on == [("H", 1, False)]


def test_the_workers_solve_ends_with_a_solver_failure_once_its_time_is_spent() -> None:
    # Fleet fault audit: the soft time limit cannot interrupt native solver code.
    from shared.errors import SolverFailed
    from shared.examples import example_request
    from worker.handlers import deadline_solve

    request = example_request(names=20, seed=1)
    assert deadline_solve(60.0)(request).status in {"ok", "relaxed", "held"}
    with pytest.raises(SolverFailed, match="time ran out"):
        deadline_solve(0.0)(request)
