"""One account's nightly rebalance, from task message to stored outcome — with no Celery import.

Failures are sorted once, here (STYLE.md (b)4):

- bad input (:class:`~shared.errors.InputError`, a malformed message) → a ``rejected`` outcome
  naming the field, never retried;
- :class:`~shared.errors.SolverFailed` (or a soft time limit) → re-raised for the task edge to
  retry with backoff while attempts remain, then a ``failed`` outcome;
- any other exception inside the solve → a ``failed`` outcome with the reason (one bad account
  never stops the night);
- a task whose solve keeps losing its process (killed, out of memory, over the hard time limit:
  e.g. a poison account) → ``failed`` without solving again once more solves were started than
  the retry budget allows (only deliveries that reach the solve count; a retried solver failure
  is taken back);
- a task delivered again after its outcome was stored → nothing is recomputed or rewritten.

Results-store errors are left to propagate: the task edge retries them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import msgspec

from shared.errors import InputError, SolverFailed, TaxviewError
from shared.household import Booked
from shared.messages import (
    AccountTask,
    Failed,
    LedgerState,
    MarketSnapshot,
    Outcome,
    RebalanceRequest,
    Rejected,
    Solved,
    from_wire,
)

log = logging.getLogger(__name__)

Solve = Callable[[RebalanceRequest], Solved]
#: Books an outcome into the household ledger: the next ledger, or a ``Booked`` that also says
#: which lots were carried over unchanged (the store then writes a patch without searching).
Advance = Callable[[LedgerState, Solved, AccountTask], LedgerState | Booked]


class NotReady(Exception):
    """A household sibling's ledger is not in the store yet: transient, retried."""


class Start(NamedTuple):
    """What a delivery finds in the store before it solves (:meth:`Store.begin`)."""

    #: The outcome JSON an earlier delivery stored: nothing to do.
    outcome: bytes | None
    #: The household ledger the account starts from (``None``: not stored yet, or not asked).
    ledger: LedgerState | None
    #: Solve attempts started for the account and not taken back, this one included; 0 when
    #: this delivery was not counted (an outcome is stored, the ledger is not there yet, or
    #: the stored snapshot is not the task's).
    attempts: int
    #: The digest of the night's stored snapshot (``None``: none stored, or not read).
    market_digest: str | None = None


class Store(Protocol):
    """What the handler needs of the results store (``worker.results_writer.ResultsStore``)."""

    def begin(
        self,
        as_of: dt.date,
        account_id: str,
        *,
        ledger: tuple[str, int] | None,
        market_digest: str = "",
    ) -> Start:
        """Read the stored outcome, the staged ledger ``(household, index)`` (when asked) and the
        stored snapshot's digest; with no outcome, the ledger there (or not asked) and the
        snapshot the task's (``market_digest``, when both are known), count one more solve
        attempt."""

    def end_attempt(self, as_of: dt.date, account_id: str) -> None:
        """Take back the count of a solve attempt that ended in a retried failure."""

    def release(self, as_of: dt.date, household: str) -> None:
        """Delete the household's staged ledgers."""

    def put_unreadable(self, outcome: Outcome, *, household: str, index: int, last: bool) -> None:
        """Store ``outcome`` for an account whose staged ledger ``(household, index)`` cannot be
        read, handing the same stored value on to sibling ``index + 1`` (or releasing the
        household's ledgers after its ``last`` account)."""

    def put(
        self,
        outcome: Outcome,
        *,
        next_ledger: tuple[str, int, LedgerState] | None = None,
        release: str | None = None,
        booked_from: tuple[LedgerState, list[int]] | None = None,
        market_digest: str = "",
    ) -> None:
        """Store an outcome (and the next sibling's ledger, or release the household's);
        ``booked_from`` = ``(ledger, carried)``: the next ledger was booked from ``ledger``
        (the one :meth:`begin` returned), keeping its lots ``carried`` (``Booked.carried``);
        with ``market_digest``, only while the stored snapshot is that one (else
        :class:`NotReady`, nothing written)."""


class Markets(Protocol):
    """Snapshot lookup by key (``worker.market_data.MarketCache``)."""

    def get(self, key: str, digest: str = "") -> MarketSnapshot:
        """The snapshot under ``key`` whose stored bytes have ``digest`` when given (raises
        :class:`NotReady` when absent or another)."""


def default_solve(request: RebalanceRequest) -> Solved:
    """The use case the backtest also runs: ``shared.rebalance.rebalance``."""
    from shared.rebalance import rebalance

    return rebalance(request)


def deadline_solve(seconds: float) -> Solve:
    """:func:`default_solve` with every solver attempt bounded by what is left of ``seconds``
    (:func:`shared.optimizer.problem.solve_deadline`): a Celery soft time limit reaches Python
    code only, so a solve stuck in Clarabel's native code ran on until the hard limit killed
    the process, once per delivery (fleet fault audit)."""

    def run(request: RebalanceRequest) -> Solved:
        from shared.optimizer.problem import solve_deadline

        with solve_deadline(seconds):
            return default_solve(request)

    return run


def default_advance(ledger: LedgerState, outcome: Solved, task: AccountTask) -> Booked:
    """The household ledger with this account's trades applied, for its next sibling
    (:func:`shared.household.book_outcome_carried`: full IRC §1091 rules, only the lots today's
    trades can touch rebuilt), so a sibling's same-day loss sale or purchase restricts the next
    account's solve."""
    from shared.household import book_outcome_carried

    return book_outcome_carried(ledger, outcome, account_type=task.account.account_type)


def decode_task(payload: Any) -> AccountTask | Rejected | None:
    """Validate a task payload.

    Returns:
        The task; a ``Rejected`` outcome when the payload is malformed but names its account and
        date; ``None`` when it cannot even be attributed to an account (logged, dropped).
    """
    account_id = _dig(payload, "account", "account_id")
    try:
        return from_wire(payload, AccountTask, account=account_id)
    except InputError as exc:
        as_of = _dig(payload, "as_of")
        if not account_id or not as_of:
            log.error("dropping a task that names no account/date: %s", exc)
            return None
        try:
            day = dt.date.fromisoformat(as_of)
        except ValueError:
            log.error("dropping a task with a malformed date %r: %s", as_of, exc)
            return None
        return Rejected(
            account_id=account_id,
            household_id=str(_dig(payload, "household_id") or ""),
            as_of=day,
            field=exc.field or "message",
            reason=exc.reason,
        )


def chain_place(payload: Any) -> tuple[str, int, int] | None:
    """``(household, index, size)`` of a malformed task whose household chain can still be
    read, so its siblings go on (deploy audit: a malformed first account left its household's
    later accounts waiting for a ledger that was never passed on); ``None`` otherwise."""
    if not isinstance(payload, dict):
        return None
    household = payload.get("household_id")
    index = payload.get("household_index", 0)
    size = payload.get("household_size", 1)
    if not isinstance(household, str) or not household:
        return None
    if type(index) is not int or type(size) is not int or not 0 <= index < size:
        return None
    return household, index, size


def _dig(payload: Any, *path: str) -> str | None:
    node = payload
    for step in path:
        if not isinstance(node, dict):
            return None
        node = node.get(step)
    return node if isinstance(node, str) else None


def handle_account(
    task: AccountTask,
    *,
    store: Store,
    markets: Markets,
    retries: int,
    max_retries: int,
    solve: Solve = default_solve,
    advance: Advance = default_advance,
    retryable: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Solve one account and store its outcome exactly once.

    Args:
        task: the decoded task.
        store: the results store.
        markets: the per-process market cache.
        retries: retries of this task so far (Celery's ``request.retries``).
        max_retries: retry budget: at most ``max_retries + 1`` solves, then ``failed``.
        solve: the use case (injected in tests).
        advance: applies an outcome's trades to the household ledger (injected in tests).
        retryable: extra exception types treated like :class:`SolverFailed` (the task edge's
            soft time limit).

    Returns:
        The stored outcome (the earlier one, unchanged, when this is a redelivery).

    Raises:
        SolverFailed: the solve failed and retries remain (the caller retries with backoff);
            also any ``retryable`` exception under the same condition.
        NotReady: a later household account arrived before its sibling's ledger.
    """
    account_id = task.account.account_id
    staged = None if task.ledger is not None else (task.household_id, task.household_index)
    try:
        start = store.begin(task.as_of, account_id, ledger=staged, market_digest=task.market_digest)
    except InputError as exc:
        if staged is None:  # begin decodes nothing else: not a ledger problem
            raise
        # The staged household ledger cannot be read (a corrupt or foreign value): nothing can
        # be solved on it.  This account is rejected with the reason, and the stored value is
        # handed on, so each later sibling is rejected the same way instead of waiting for a
        # ledger that never comes (one bad household never stops the night).
        rejected = _rejected(task, exc, field="ledger")
        store.put_unreadable(
            rejected,
            household=task.household_id,
            index=task.household_index,
            last=task.household_index + 1 >= task.household_size,
        )
        return rejected
    if start.outcome is not None:
        log.info("account %s already has an outcome: redelivery ignored", account_id)
        if task.household_index + 1 >= task.household_size:
            # The household's last account, delivered again (``taxview enqueue --resend`` stages
            # field 0 for every household): nothing will read its staged ledgers, release them
            # as the first delivery did, or they would stay for the night's TTL.
            store.release(task.as_of, task.household_id)
        done: Outcome = msgspec.json.decode(start.outcome, type=Outcome)
        return done
    stored = start.market_digest
    if task.market_digest and stored != task.market_digest:
        # A task of an earlier run of the night (its keys deleted and the night started over
        # with another market, Runbook): never solved on a snapshot it was not planned with
        # (fleet fault audit).  Transient: it runs out of waits without an outcome, while its
        # account's task of the current run solves the account.
        raise NotReady(
            f"account {account_id}: the night's stored market snapshot "
            f"({'none' if stored is None else stored[:12]}) is not the one this task was "
            f"planned with ({task.market_digest[:12]})"
        )
    ledger = task.ledger if task.ledger is not None else start.ledger
    if ledger is None:
        raise NotReady(
            f"household {task.household_id}: ledger for account {task.household_index} "
            "is not stored yet"
        )
    if task.book_error is not None:
        # The household's book rows could not be read (producer.book.Quarantine): nothing to
        # solve; rejected with the reason, the staged ledger handed on unchanged.
        error = task.book_error
        rejected = _rejected(task, InputError(error.reason, field=error.field or None))
        _store(store, task, rejected, ledger)
        return rejected
    attempts = start.attempts
    if attempts > max_retries + 1:
        lost = attempts - 1
        outcome: Outcome = _failed(
            task,
            f"gave up after {lost} solve attempts that never finished: the worker process was "
            "lost each time while solving this account (killed, out of memory or over the hard "
            "time limit)",
            lost,
        )
        _store(store, task, outcome, ledger)
        return outcome

    try:
        market = markets.get(task.market_key, task.market_digest)
    except NotReady:
        store.end_attempt(task.as_of, account_id)  # nothing was solved: not an attempt
        raise
    try:
        request = RebalanceRequest(
            as_of=task.as_of, account=task.account, ledger=ledger, market=market
        )
        outcome = solve(request)
    except InputError as exc:
        outcome = _rejected(task, exc)
    except Exception as exc:
        if not isinstance(exc, (SolverFailed, *retryable)):
            log.exception("account %s: unexpected error", account_id)
            outcome = _failed(task, f"internal error: {type(exc).__name__}: {exc}", retries + 1)
            _store(store, task, outcome, ledger, advance)
            return outcome
        if retries < max_retries:
            store.end_attempt(task.as_of, account_id)  # it ended: not a lost process
            raise
        outcome = _failed(task, f"solver failed on every attempt: {exc}", retries + 1)
    _store(store, task, outcome, ledger, advance)
    return outcome


def _store(
    store: Store,
    task: AccountTask,
    outcome: Outcome,
    ledger: LedgerState,
    advance: Advance = default_advance,
) -> None:
    next_ledger: tuple[str, int, LedgerState] | None = None
    if task.household_index + 1 < task.household_size:
        state = ledger
        booked_from = None
        if isinstance(outcome, Solved) and outcome.trades:
            try:
                booked = advance(ledger, outcome, task)
            except TaxviewError as exc:
                outcome = _failed(task, f"trades could not be booked: {exc}", 1)
            else:
                state = booked.state if isinstance(booked, Booked) else booked
                if isinstance(booked, Booked) and booked.carried is not None:
                    booked_from = (ledger, booked.carried)
        next_ledger = (task.household_id, task.household_index + 1, state)
        store.put(
            outcome,
            next_ledger=next_ledger,
            booked_from=booked_from,
            market_digest=task.market_digest,
        )
    else:  # the household's last account: its staged ledgers are no longer needed
        store.put(outcome, release=task.household_id, market_digest=task.market_digest)


def _rejected(task: AccountTask, exc: InputError, *, field: str = "") -> Rejected:
    """The ``rejected`` outcome of bad input, naming the field (``field`` when the error names
    none)."""
    return Rejected(
        account_id=task.account.account_id,
        household_id=task.household_id,
        as_of=task.as_of,
        field=exc.field or field,
        reason=exc.reason,
    )


def _failed(task: AccountTask, reason: str, attempts: int) -> Failed:
    return Failed(
        account_id=task.account.account_id,
        household_id=task.household_id,
        as_of=task.as_of,
        reason=reason,
        attempts=attempts,
    )
