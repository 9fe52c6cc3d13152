"""The firm's book on disk: accounts, open lots, wash-window memory and trade history.

A book directory holds one file per table, CSV or Parquet (``.csv`` / ``.parquet``, the same
columns; every value is written as text so money stays exact).  See ``docs/formats.md``
(Book format).

- ``book.json`` — ``{"as_of": "YYYY-MM-DD"}``: the close the book describes.
- ``accounts`` — one row per account rebalanced each night (:class:`AccountSpec` columns; lists are
  ``;``-separated, tilts ``factor:min``, identical groups ``A=B;C=D``).
- ``lots`` — open lots (``taxview realized``'s ``LOTS.csv`` columns + ``short``,
  ``account_type``, ``household_id``).
- ``pending_losses`` / ``recent_purchases`` — the 30-day wash-sale window memory (IRC §1091(a)).
- ``last_purchases`` — the latest purchase / short sale date of each security bought / sold short in
  the last 30 days, held or not (the rebalance sells none of it at a loss before 30 days).
- ``households`` — ``household_id, identical``: substantially identical groups per household.
- ``history`` — the household transactions (``taxview realized`` input columns + ``household_id``).
"""

from __future__ import annotations

import csv
import datetime as dt
import glob
import json
import math
import os
import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, cast, get_args

import msgspec

from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import (
    AccountSpec,
    FactorTilt,
    LastPurchase,
    LedgerState,
    LongShortSpec,
    Lot,
    MarketSnapshot,
    PendingLoss,
    RecentPurchase,
    RiskModel,
    TaxRates,
    Transaction,
    decode_json,
    duplicate_key,
    encode_json,
)
from shared.types import AccountType, Side, Strategy

Format = Literal["csv", "parquet"]

ACCOUNT_COLUMNS: tuple[str, ...] = (
    "account_id",
    "household_id",
    "account_type",
    "strategy",
    "cash_usd",
    "te_budget",
    "max_weight",
    "exclusions",
    "tilts",
    "lambda_te",
    "lambda_tax",
    "trading_cost_bps",
    "min_cash_w",
    "max_cash_w",
    "turnover_limit_w",
    "gain_budget_usd",
    "fractional_shares",
    "short_term_rate",
    "long_term_rate",
    "niit_rate",
    "long_w",
    "short_w",
    "long_short_gross_limit_w",
    "gross_limit_w",
    "identical",
)
LOT_COLUMNS: tuple[str, ...] = (
    "household_id",
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "trade_date",
    "acquired",
    "cost_basis",
    "wash_adjustment",
    "short",
    "account_type",
    "replacement_used",
)
PENDING_COLUMNS: tuple[str, ...] = ("household_id", *PendingLoss.__struct_fields__)
RECENT_COLUMNS: tuple[str, ...] = ("household_id", *RecentPurchase.__struct_fields__)
LAST_PURCHASE_COLUMNS: tuple[str, ...] = ("household_id", *LastPurchase.__struct_fields__)
#: ``in_memory``: the window-memory files already hold the row's effect (taxview's writer marks
#: every row it writes; a row added by hand after — a client's own trade — has it empty).
HISTORY_COLUMNS: tuple[str, ...] = ("household_id", *Transaction.__struct_fields__, "in_memory")
HOUSEHOLD_COLUMNS: tuple[str, ...] = ("household_id", "identical")


class Quarantine(msgspec.Struct, kw_only=True):
    """A household some of whose book rows cannot be read (a malformed cell, a lot id on two
    purchases, a history row after the close…).  Its accounts are not solved tonight — each
    ends ``rejected`` naming the first bad row — and its rows go to the next book exactly as
    read, so nothing is lost and one bad household never stops the night (badinput audit: a
    ``NaN`` basis, a ``2026-13-01`` trade date or a strategy typo in one account stopped every
    account of the firm)."""

    household_id: str
    #: The first problem found (its message names the file, the row and the column).
    reason: str
    account: str | None = None
    field: str | None = None
    #: The household's accounts in run order: a row that was read as read; one that was not,
    #: its id and household (its type and strategy when they could be read).
    accounts: list[AccountSpec] = []
    #: Table name → the household's rows as read (every column, as text), written back as is.
    rows: dict[str, list[dict[str, str]]] = {}
    #: Its window memory was (and must again be) derived from its history: the book it was read
    #: from had no window-memory files (or listed it in ``book.json``'s ``derive_memory``).
    #: ``next_book/`` writes those files for the other households, so ``book.json`` lists it
    #: (review: re-read without it, a fixed household lost a loss sale of 13 days earlier and
    #: bought the name back in its taxable account and its IRA).
    derive_memory: bool = False


class Book(msgspec.Struct, kw_only=True):
    """A whole book: the accounts and one ledger per household, at the close of ``as_of``."""

    as_of: dt.date
    accounts: list[AccountSpec]
    #: household id → the household's ledger (every account's lots, IRAs included); a
    #: :class:`CompressedLedgers` for a big generated book.
    ledgers: Mapping[str, LedgerState]
    history: list[Transaction] = []
    #: household id → the identical groups its ``households`` row declared, when read from
    #: files: the ledgers' groups also hold the account rows' (merged on reading), and only
    #: these are written back to ``households`` (``None``: every ledger group is declared).
    declared: dict[str, list[list[str]]] | None = None
    #: household id → the household set aside because some of its rows cannot be read (read
    #: from files only; :class:`Quarantine`).  Its accounts are in no other field.
    quarantined: dict[str, Quarantine] = {}
    #: account → household of history rows whose account has no accounts row and no lot (a
    #: closed account): written back with them (review: written blank, the next read filed them
    #: under the account itself and the household's pending loss derived from them was lost).
    history_homes: dict[str, str] = {}

    def households(self) -> dict[str, list[AccountSpec]]:
        """Accounts grouped by household, in the order they run (household id; then
        :func:`run_rank`; then account id): the chain the workers solve and the order the
        night is booked in."""
        out: dict[str, list[AccountSpec]] = {}
        order = sorted(self.accounts, key=lambda s: (household_of(s), run_rank(s), s.account_id))
        for spec in order:
            out.setdefault(household_of(spec), []).append(spec)
        return out


def _distinct(group: Sequence[str]) -> list[str]:
    """``group``'s symbols without blanks and repeats in any letter case (tickers are
    case-insensitive), each as first spelled."""
    first: dict[str, str] = {}
    for sym in group:
        if sym:
            first.setdefault(sym.upper(), sym)
    return list(first.values())


def run_rank(spec: AccountSpec) -> int:
    """Where an account runs in its household's chain: taxable accounts with exclusions first
    (an excluded name held at a loss must be sold whatever its siblings do), then the other
    taxable accounts, then IRAs and Roths.

    A sibling's same-day loss sale bars the later accounts' buys of the name (IRC §1091), so a
    forced loss sale that runs first is never washed by a voluntary buy, and an IRA that runs
    after the taxable accounts never buys a name they sold at a loss — whose loss an IRA
    purchase disallows for good (Rev. Rul. 2008-5).  Households audit: in account-id order an
    IRA bought 278 CAT before its sibling had to sell its excluded CAT at a 20% loss:
    $3,437.36 of the loss lost for good, none of it with the IRA last.
    """
    if spec.account_type != "taxable":
        return 2
    return 0 if spec.exclusions else 1


def book_warnings(book: Book) -> list[str]:
    """What in a book that reads cleanly is still likely a mistake: a household where a
    listed account holds no lot while an account missing from ``accounts`` holds some (a typo
    in an account id: the listed one ran as a cash-only account and the real lots, ~$440k,
    were never rebalanced, with no word — fuzz audit).  An unlisted account's lots are legal
    (a household account the firm does not manage: they only restrict wash sales)."""
    out: list[str] = [
        (
            f"household {household}: {len(q.accounts)} account(s) not solved tonight (rejected) "
            "and their rows"
            if q.accounts
            else f"household {household} (no account in accounts): its rows"
        )
        + f" carried unchanged to next_book: {q.reason}"
        for household, q in sorted(book.quarantined.items())
    ]
    for household, specs in book.households().items():
        ledger = book.ledgers.get(household)
        if ledger is None:
            continue
        holders: dict[str, int] = {}
        for lot in ledger.lots:
            holders[lot.account] = holders.get(lot.account, 0) + 1
        listed = {spec.account_id for spec in specs}
        empty = sorted(a for a in listed if a not in holders)
        unlisted = sorted(a for a in holders if a not in listed)
        if empty and unlisted:
            out.append(
                f"household {household}: {', '.join(empty)} (in accounts) holds no lot while "
                + ", ".join(f"{a} ({holders[a]} lots)" for a in unlisted)
                + " is not in accounts: a typo in an account id? An account missing from "
                "accounts is never rebalanced (its lots only restrict wash sales)"
            )
    return out


def accounts_booked_on(book: Book, night: dt.date) -> list[str]:
    """The book's accounts whose history, lots or window memory already hold trades of
    ``night``'s rebalance (their transaction and new lot ids are ``night:account:n``,
    ``shared.rebalance.outcome_transactions``): the book is that night's ``next_book``, and
    running or booking the night on it would trade twice."""
    ours = {spec.account_id for spec in book.accounts}
    prefix = f"{night.isoformat()}:"

    def named(account: str, ident: str) -> bool:
        return account in ours and ident.startswith(f"{prefix}{account}:")

    found = {t.account for t in book.history if t.date == night and named(t.account, t.id)}
    if book.history:  # taxview's next book holds every trade of its night there
        return sorted(found)
    # The history is optional (nights audit, 2026-12-08: without history.csv the night ran
    # twice on its own next book): the lots its buys opened and the window memory of its
    # sales carry the same ids.  Read only then: a big book's ledgers are decoded one by one.
    for state in book.ledgers.values():
        found.update(
            x.account for x in state.lots if x.trade_date == night and named(x.account, x.lot_id)
        )
        found.update(
            p.account
            for p in state.pending_losses
            if p.date_sold == night and named(p.account, p.txn)
        )
        found.update(
            r.account for r in state.recent_purchases if r.date == night and named(r.account, r.txn)
        )
    return sorted(found)


def refuse_booked_night(book: Book, night: dt.date) -> None:
    """Refuse a book that already holds ``night``'s trades (:func:`accounts_booked_on`).

    Raises:
        InputError: naming the night and a few of the accounts, ``field`` ``--book``.
    """
    booked = accounts_booked_on(book, night)
    if booked:
        shown = ", ".join(booked[:5]) + (f" and {len(booked) - 5} more" if len(booked) > 5 else "")
        raise InputError(
            f"the book already holds the trades of the night {night} ({shown}): it is that "
            "night's next_book; run it on the next trading day, or give the book the night "
            "started from",
            field="--book",
        )


def household_of(spec: AccountSpec) -> str:
    """The household key of an account (an account without one is its own household)."""
    return spec.household_id or spec.account_id


def book_from_pairs(as_of: dt.date, pairs: Sequence[tuple[AccountSpec, LedgerState]]) -> Book:
    """Build a book from ``(account, ledger)`` pairs (``shared.examples.synthetic_book``).

    Ledgers of accounts of one household are merged (:func:`merge_states`: lots keyed by account
    and lot id, window memory by transaction and lot, every part of a split lot kept), so
    household-wide or per-account states both work.

    Raises:
        InputError: two accounts share an id.
    """
    seen: set[str] = set()
    accounts: list[AccountSpec] = []
    by_household: dict[str, list[LedgerState]] = {}
    for spec, state in pairs:
        if spec.account_id in seen:
            raise InputError("duplicate account id", account=spec.account_id, field="account_id")
        seen.add(spec.account_id)
        accounts.append(spec)
        by_household.setdefault(household_of(spec), []).append(state)
    ledgers = {h: merge_states(h, states, as_of) for h, states in by_household.items()}
    return Book(as_of=as_of, accounts=accounts, ledgers=ledgers)


class CompressedLedgers(Mapping[str, LedgerState]):
    """Household ledgers held as the results store stages them (Zstandard-compressed JSON,
    :func:`shared.results_keys.encode_ledger`, ~14× smaller than the JSON and far smaller than
    the decoded lots), decoded on access; :meth:`raw` hands the stored bytes to the enqueuer
    without a decode/encode round trip."""

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}

    def add(self, state: LedgerState) -> None:
        """Store ``state`` under its household (compressing it now)."""
        self._raw[state.household_id] = keys.encode_ledger(state)

    def raw(self, household: str) -> bytes:
        """The staged form of a household's ledger (``KeyError`` when unknown)."""
        return self._raw[household]

    def __getitem__(self, household: str) -> LedgerState:
        return keys.decode_ledger(self._raw[household], household=household)

    def __contains__(self, household: object) -> bool:  # Mapping's would decode the ledger
        return household in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def book_from_stream(as_of: dt.date, pairs: Iterable[tuple[AccountSpec, LedgerState]]) -> Book:
    """Like :func:`book_from_pairs`, for ``(account, ledger)`` pairs that come household by
    household (``shared.examples.synthetic_book_stream``): each household's ledger is merged and
    compressed as soon as the next household starts, so only one household's lots are ever
    decoded in memory (a 10,000-account book: ~9 GB of lots otherwise).

    Raises:
        InputError: two accounts share an id, or a household comes back after another one.
    """
    seen: set[str] = set()
    accounts: list[AccountSpec] = []
    ledgers = CompressedLedgers()
    current: str | None = None
    states: list[LedgerState] = []

    def flush() -> None:
        if current is not None:
            ledgers.add(merge_states(current, states, as_of))

    for spec, state in pairs:
        if spec.account_id in seen:
            raise InputError("duplicate account id", account=spec.account_id, field="account_id")
        seen.add(spec.account_id)
        household = household_of(spec)
        if household != current:
            if household in ledgers:
                raise InputError(
                    f"household {household} comes back after another household: a stream must "
                    "give each household's accounts together",
                    account=spec.account_id,
                    field="household_id",
                )
            flush()
            current, states = household, []
        accounts.append(spec)
        if not any(s is state for s in states):
            states.append(state)
    flush()
    return Book(as_of=as_of, accounts=accounts, ledgers=ledgers)


_T = TypeVar("_T")


def _first_state_wins(per_state: Iterable[Sequence[_T]], key: Callable[[_T], Any]) -> list[_T]:
    """Every item of each key from the first state that holds the key, in that state's order.

    A household-wide state given once per account (or an account's lots in its own state and
    in the household's) counts once; the items that share a key inside one state all stay: the
    parts of one purchase split by a wash sale keep its lot id (Treas. Reg. §1.1091-1(d), the
    ledger writes them so), and a loss sale of such a lot leaves one pending loss per part.
    """
    out: list[_T] = []
    claimed: set[Any] = set()
    for items in per_state:
        new = {key(x) for x in items} - claimed
        out.extend(x for x in items if key(x) in new)
        claimed |= new
    return out


def merge_states(household: str, states: Iterable[LedgerState], as_of: dt.date) -> LedgerState:
    """Union of ledger states of one household, without duplicates.

    A lot (pending loss, recent purchase) is keyed by account and lot id (and transaction);
    the first state holding a key supplies all its parts (:func:`_first_state_wins`), so a
    repeated state counts once and no part of a split lot is dropped.
    """
    states = list(states)
    last: dict[tuple[str, bool], dt.date] = {}
    identical: list[list[str]] = []
    for state in states:
        for lp in state.last_purchases:
            key = (lp.symbol, lp.short)
            last[key] = max(last.get(key, lp.date), lp.date)
        for group in state.identical:
            if group not in identical:
                identical.append(list(group))
    lots: list[Lot] = _first_state_wins(
        (s.lots for s in states), lambda lot: (lot.account, lot.lot_id)
    )
    pending: list[PendingLoss] = _first_state_wins(
        (s.pending_losses for s in states), lambda p: (p.txn, p.account, p.lot_id)
    )
    recent: list[RecentPurchase] = _first_state_wins(
        (s.recent_purchases for s in states), lambda r: (r.txn, r.account, r.lot_id)
    )
    return LedgerState(
        as_of=as_of,
        household_id=household,
        lots=lots,
        pending_losses=pending,
        recent_purchases=recent,
        identical=identical,
        last_purchases=[
            LastPurchase(symbol=symbol, date=date, short=short)
            for (symbol, short), date in sorted(last.items())
        ],
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_book(directory: Path) -> Book:
    """Read a book directory (CSV or Parquet tables).

    Raises:
        InputError: a missing table or column, an unknown column, a bad value, a duplicate
            account or lot, a lot filed under another household than its account's; the message
            names the file, the row (1-based, the header not counted) and the column, and
            ``account`` / ``field`` are set.
    """
    if not directory.is_dir():
        raise InputError(f"no book directory at {directory}", field="--book")
    meta_path = directory / "book.json"
    if not meta_path.exists():
        raise InputError(
            f"{meta_path} is missing (it holds the book's as_of date; taxview writes it last, "
            "so a book without it is also what an interrupted write leaves)",
            field="book",
        )
    if not meta_path.is_file():
        raise InputError(f"{meta_path} is not a file (a directory?)", field="book")
    try:
        meta = json.loads(meta_path.read_text())
        as_of = dt.date.fromisoformat(meta["as_of"])
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise InputError(f"{meta_path}: expected {{'as_of': 'YYYY-MM-DD'}}", field="as_of") from exc
    derive = meta.get("derive_memory") or []
    if not isinstance(derive, list) or not all(isinstance(h, str) for h in derive):
        raise InputError(
            f'{meta_path}: "derive_memory" must be a list of household ids', field="derive_memory"
        )
    try:
        declared = _declared_rows(meta.get("tables"))
    except ValueError as exc:
        raise InputError(
            f'{meta_path}: "tables" must map table names to row counts (whole numbers ≥ 0)',
            field="tables",
        ) from exc
    counts: dict[str, int] = {}

    def _table(
        directory: Path,
        name: str,
        columns: Sequence[str],
        *,
        required: Sequence[str],
        optional_file: bool = False,
    ) -> _Table:
        read = _read_table(directory, name, columns, required=required, optional_file=optional_file)
        counts[name] = len(read.rows)
        return read

    table = _table(directory, "accounts", ACCOUNT_COLUMNS, required=("account_id",))
    # A household whose rows cannot all be read is set aside whole (Quarantine): its accounts
    # end `rejected` naming the first bad row, its rows go to the next book as read, and every
    # other household runs.  A row that names no household (an empty account_id, a lot of an
    # unknown account without a household_id) still stops the book.
    bad: dict[str, InputError] = {}
    #: account id → its household, from the account rows as read (an unreadable row's too)
    home: dict[str, str] = {}
    for _, row in table.rows:
        home.setdefault(row["account_id"], row.get("household_id", "") or row["account_id"])
    accounts: list[AccountSpec] = []
    unread: dict[str, dict[str, str]] = {}  # account id → its row that could not be read
    row_of_account: dict[str, int] = {}
    for row_no, row in table.rows:
        aid = row["account_id"]
        problem = table.bad.get(row_no)
        try:
            if problem is not None:
                raise problem
            spec = _account(row, row_no, table.file)
        except InputError as exc:
            if not aid or not aid.isprintable():
                raise
            spec = None
            bad.setdefault(row.get("household_id", "") or aid, exc)
        _once(
            row_of_account,
            aid,
            row_no,
            file=table.file,
            what=f"duplicate account_id {aid!r}",
            account=aid,
        )
        if spec is None:
            unread[aid] = row
        else:
            accounts.append(spec)
    if not accounts and not unread:  # a night of nothing (book audit: it failed later)
        raise InputError(f"{table.file} has no account rows", field="account_id")
    by_id = {a.account_id: a for a in accounts}
    states: dict[str, dict[str, list[Any]]] = {}
    #: account → (its type, the file and row that said so), for accounts not in ``accounts``
    seen_types: dict[str, tuple[str, str]] = {}

    def owner(row: dict[str, str]) -> str | None:
        """The household a lot, window-memory or history row belongs to (``None``: none)."""
        account = row.get("account", "")
        spec = by_id.get(account)
        if spec is not None:
            return household_of(spec)
        return home.get(account) or row.get("household_id", "") or None

    def history_home(row: dict[str, str]) -> str:
        """The household a history row belongs to (an unknown account without one: its own)."""
        return row.get("household_id", "") or owner(row) or row.get("account", "")

    def set_aside(household: str | None, exc: InputError) -> None:
        if household is None:
            raise exc
        bad.setdefault(household, exc)

    def place(
        row: dict[str, str], file: str, row_no: int
    ) -> tuple[dict[str, list[Any]], str | None]:
        """The row's household bucket and, for a table with an account type, the row's (its
        own, else its account's from ``accounts``).  The row itself is left as read: a
        household set aside is written back exactly so (review: a filled-in guess of
        ``taxable`` for an IRA's lot set the household aside again once its typo was fixed)."""
        account = row.get("account", "")
        if not account.isprintable():  # as in accounts (review: only accounts was checked)
            raise InputError(
                f"{file} row {row_no}: account {account!r} holds a control character",
                account=account,
                field="account",
            )
        spec = by_id.get(account)
        household = row.get("household_id", "")
        listed = household_of(spec) if spec is not None else home.get(account)
        if listed is not None:
            if household and household != listed:
                raise InputError(
                    f"{file} row {row_no}: household_id {household!r}, but account {account} is "
                    f"in household {listed} (accounts)",
                    account=account,
                    field="household_id",
                )
            household = listed
        elif not household:
            raise InputError(
                f"{file} row {row_no}: no household_id and account {account!r} is not in accounts",
                account=account or None,
                field="household_id",
            )
        kind: str | None = None
        if "account_type" in _struct_of(file).__struct_fields__:
            given = row.get("account_type", "")
            known, where = (
                (spec.account_type, "accounts") if spec else seen_types.get(account, ("", ""))
            )
            if given and known and given != known:
                raise InputError(
                    f"{file} row {row_no}: account_type {given!r}, but {where} says account "
                    f"{account} is {known}",
                    account=account,
                    field="account_type",
                )
            kind = given or known or "taxable"
            if spec is None:
                seen_types.setdefault(account, (kind, f"{file} row {row_no}"))
        return states.setdefault(household, {"lots": [], "pending": [], "recent": []}), kind

    lots = _table(directory, "lots", LOT_COLUMNS, required=_LOT_REQUIRED)
    # One id per purchase and account.  The parts of one purchase that a wash sale split keep
    # its id (same security, side and trade date; Treas. Reg. §1.1091-1(d)): the ledger writes
    # them so, and the next night must read them back.
    # A split marks the matched part replacement_used and leaves one unused remainder, so two
    # unused parts of one id are a repeated row, which would double the position.
    first_of_lot: dict[tuple[str, str], tuple[int, tuple[str, bool, dt.date]]] = {}
    unused_row: dict[tuple[str, str], int] = {}
    for row_no, row in lots.rows:
        try:
            problem = lots.bad.get(row_no)
            if problem is not None:
                raise problem
            lot = _lot(row, row_no, lots.file)
            if lot.trade_date > as_of:  # badinput audit: read with only a warning
                raise InputError(
                    f"{lots.file} row {row_no}: trade_date {lot.trade_date} is after the "
                    f"book's close {as_of}",
                    account=lot.account,
                    field="trade_date",
                )
            key = (lot.account, lot.lot_id)
            purchase = (lot.symbol, lot.short, lot.trade_date)
            first_row, first_purchase = first_of_lot.setdefault(key, (row_no, purchase))
            if first_purchase != purchase:
                raise InputError(
                    f"{lots.file} rows {first_row} and {row_no}: account {lot.account} has lot "
                    f"{lot.lot_id!r} on two purchases (a lot id names one purchase per account; "
                    "only the parts of one purchase split by a wash sale share it)",
                    account=lot.account,
                    field="lot_id",
                )
            if not lot.used_as_replacement:
                if key in unused_row:
                    raise InputError(
                        f"{lots.file} rows {unused_row[key]} and {row_no}: account "
                        f"{lot.account} has lot {lot.lot_id!r} twice with neither marked "
                        "replacement_used (a repeated row? the parts of a purchase a wash sale "
                        "splits are marked)",
                        account=lot.account,
                        field="lot_id",
                    )
                unused_row[key] = row_no
            bucket, kind = place(row, lots.file, row_no)
            bucket["lots"].append(msgspec.structs.replace(lot, account_type=kind))
        except InputError as exc:
            set_aside(owner(row), exc)
    extras: dict[str, _Table] = {}
    for name, part, typ, columns in (
        ("pending_losses", "pending", PendingLoss, PENDING_COLUMNS),
        ("recent_purchases", "recent", RecentPurchase, RECENT_COLUMNS),
    ):
        extra = extras[name] = _table(
            directory, name, columns, required=_required(typ), optional_file=True
        )
        for row_no, row in extra.rows:
            try:
                problem = extra.bad.get(row_no)
                if problem is not None:
                    raise problem
                bucket, kind = place(row, extra.file, row_no)
                typed = row if kind is None else {**row, "account_type": kind}
                item = _convert(typed, typ, extra.file, row_no)
                if isinstance(item, PendingLoss):
                    _check_pending(item, extra.file, row_no)
                bucket[part].append(item)
            except InputError as exc:
                set_aside(owner(row), exc)
    last_purchases: dict[str, list[LastPurchase]] = {}
    last = _table(
        directory,
        "last_purchases",
        LAST_PURCHASE_COLUMNS,
        required=("household_id", *_required(LastPurchase)),
        optional_file=True,
    )
    for row_no, row in last.rows:
        try:
            problem = last.bad.get(row_no)
            if problem is not None:
                raise problem
            item = _convert(row, LastPurchase, last.file, row_no)
        except InputError as exc:
            set_aside(row["household_id"] or None, exc)
            continue
        last_purchases.setdefault(row["household_id"], []).append(item)
    households = _table(
        directory, "households", HOUSEHOLD_COLUMNS, required=("household_id",), optional_file=True
    )
    identical: dict[str, list[list[str]]] = {}
    row_of_household: dict[str, int] = {}
    known = {*(household_of(a) for a in accounts), *states, *bad, *(home[a] for a in unread)}
    for row_no, row in households.rows:
        household = row["household_id"]
        # One row per household: a second one replaced the first's identical groups, which
        # the wash-sale rules read (book audit: "VJC=GBP" was dropped without a word).
        what = (
            f"household {household!r} twice (give its identical groups on one row, ';'-separated)"
        )
        _once(
            row_of_household,
            household,
            row_no,
            file=households.file,
            what=what,
            account=None,
            field="household_id",
        )
        if household not in known:
            raise InputError(
                f"{households.file} row {row_no}: household {household!r} has no account and "
                "no lot",
                field="household_id",
            )
        groups = []
        for group in _groups(row.get("identical", "")):
            names = _distinct(group)
            if len(names) < 2:
                # Review: `AJU` read, then rejected every account of the household each night
                # (and was written back every night).
                set_aside(
                    household,
                    InputError(
                        f"{households.file} row {row_no}: group {'='.join(group)!r} needs at "
                        "least two distinct symbols",
                        field="identical",
                    ),
                )
                continue
            groups.append(names)
        identical[household] = groups
    # Substantial identity is the securities', not one account's (IRC §1091 reads the
    # household's purchases and sales of "substantially identical" stock): an account's
    # groups are its household's, so every sibling's solve, wash check and the night's booking
    # see them (households audit: groups given on a taxable account's row alone let a sibling
    # IRA buy ONN the night YNR was harvested: $33,524.74 of $99,326.52 lost for good).
    # A group of one name (after dropping repeats, in any case) stays the account's own, to
    # be rejected with it naming `account.identical` (or, two spellings of one name, dropped
    # by its solve), rather than its siblings'.
    own_groups = {h: [list(g) for g in gs] for h, gs in identical.items()}
    for spec in accounts:
        groups = identical.setdefault(household_of(spec), [])
        for group in spec.identical:
            names = _distinct(group)
            if len(names) >= 2 and names not in groups:
                groups.append(names)
    ledgers = {}
    for household in sorted(set(last_purchases) - known):
        row_no = next(n for n, row in last.rows if row["household_id"] == household)
        raise InputError(
            f"{last.file} row {row_no}: household {household!r} has no account and no lot",
            field="household_id",
        )
    for household in known:
        parts = states.get(household, {"lots": [], "pending": [], "recent": []})
        ledgers[household] = LedgerState(
            as_of=as_of,
            household_id=household,
            lots=parts["lots"],
            pending_losses=parts["pending"],
            recent_purchases=parts["recent"],
            identical=identical.get(household, []),
            last_purchases=last_purchases.get(household, []),
        )
    history = _table(
        directory, "history", HISTORY_COLUMNS, required=_required(Transaction), optional_file=True
    )
    transactions: list[Transaction] = []
    history_household: list[str] = []
    row_of_id: dict[str, int] = {}
    #: (account, id) of the rows whose effect the window-memory files already hold
    reflected: set[tuple[str, str]] = set()
    for row_no, row in history.rows:
        household = history_home(row)
        flag = ""
        try:
            problem = history.bad.get(row_no)
            if problem is not None:
                raise problem
            txn = _transaction(row, history.file, row_no)
            flag = row.get("in_memory", "").strip().lower()
            if flag not in ("", "true", "false"):
                raise InputError(
                    f"{history.file} row {row_no}: in_memory {flag!r} must be true, false or empty",
                    account=txn.account,
                    field="in_memory",
                )
            # The history is the record of what traded: a row after the book's close, or one
            # id twice (a repeated row), is not a trade that happened (book audit: both were
            # carried into next_book).
            if txn.date > as_of:
                raise InputError(
                    f"{history.file} row {row_no}: date {txn.date} is after the book's close "
                    f"{as_of}",
                    account=txn.account,
                    field="date",
                )
            # Per account: ids numbered per household export may repeat across accounts.
            what = f"transaction id {txn.id!r} twice in account {txn.account} (a repeated row?)"
            _once(
                row_of_id,
                f"{txn.account}\x00{txn.id}",
                row_no,
                file=history.file,
                what=what,
                account=txn.account,
                field="id",
            )
        except InputError as exc:
            set_aside(household or None, exc)
            continue
        transactions.append(txn)
        history_household.append(household)
        if flag == "true":
            reflected.add((txn.account, txn.id))
    memory_files = any(
        (directory / f"{name}.{ext}").exists()
        for name in ("pending_losses", "recent_purchases", "last_purchases")
        for ext in ("csv", "parquet")
    )
    by_household: dict[str, list[Transaction]] = {}
    for household, txn in zip(history_household, transactions, strict=True):
        by_household.setdefault(household, []).append(txn)
    for household, txns in by_household.items():
        if household in ledgers and household not in bad:
            ledgers[household] = history_memory(
                ledgers[household],
                txns,
                derive_pending=not memory_files or household in derive,
                reflected=reflected,
            )
    for name, rows in sorted(declared.items()):
        if counts.get(name, 0) != rows:
            raise InputError(
                f"{directory}: {name} holds {counts.get(name, 0)} rows but book.json says the "
                f"writer wrote {rows}: the book is incomplete or was edited after it was written "
                '(drop the "tables" entry of book.json to read an edited book)',
                field=name,
            )
    quarantined: dict[str, Quarantine] = {}
    if bad:
        tables: dict[str, tuple[_Table, Callable[[dict[str, str]], str | None]]] = {
            "accounts": (table, lambda r: r.get("household_id", "") or r["account_id"]),
            "lots": (lots, owner),
            "pending_losses": (extras["pending_losses"], owner),
            "recent_purchases": (extras["recent_purchases"], owner),
            "last_purchases": (last, lambda r: r["household_id"]),
            "households": (households, lambda r: r["household_id"]),
            "history": (history, history_home),
        }
        kept: dict[str, dict[str, list[dict[str, str]]]] = {h: {} for h in bad}
        for name, (read, where) in tables.items():
            for _, row in read.rows:
                belongs = where(row)
                if belongs is not None and belongs in kept:
                    kept[belongs].setdefault(name, []).append(dict(row))
        for household, first in bad.items():
            specs = [a for a in accounts if household_of(a) == household]
            specs += [_placeholder(row) for aid, row in unread.items() if home[aid] == household]
            specs.sort(key=lambda s: (run_rank(s), s.account_id))
            quarantined[household] = Quarantine(
                household_id=household,
                reason=first.reason,
                account=first.account,
                field=first.field,
                accounts=specs,
                rows=kept[household],
                derive_memory=not memory_files or household in derive,
            )
            ledgers.pop(household, None)
            own_groups.pop(household, None)
        accounts = [a for a in accounts if household_of(a) not in bad]
        kept_txns = [
            (t, h) for t, h in zip(transactions, history_household, strict=True) if h not in bad
        ]
        transactions = [t for t, _ in kept_txns]
        history_household = [h for _, h in kept_txns]
    lot_holders = {lot.account for state in ledgers.values() for lot in state.lots}
    history_homes = {
        t.account: h
        for t, h in zip(transactions, history_household, strict=True)
        if t.account not in by_id and t.account not in lot_holders and h != t.account
    }
    return Book(
        as_of=as_of,
        accounts=accounts,
        ledgers=ledgers,
        history=transactions,
        declared=own_groups,
        quarantined=quarantined,
        history_homes=history_homes,
    )


def _placeholder(row: dict[str, str]) -> AccountSpec:
    """An account whose row cannot be read, as the night's manifest lists it: its id and
    household, and its type and strategy when they are words the book allows."""
    kind = row.get("account_type", "")
    strategy = row.get("strategy", "")
    return AccountSpec(
        account_id=row["account_id"],
        household_id=row.get("household_id", ""),
        account_type=cast(AccountType, kind if kind in _CHOICES["account_type"] else "taxable"),
        strategy=cast(Strategy, strategy if strategy in _CHOICES["strategy"] else "direct-index"),
    )


def _declared_rows(tables: Any) -> dict[str, int]:
    """book.json's ``tables``: table name → rows the writer wrote (``{}`` when absent)."""
    if tables is None:
        return {}
    if not isinstance(tables, dict) or not all(
        isinstance(k, str) and type(v) is int and v >= 0 for k, v in tables.items()
    ):
        raise ValueError("tables")
    return dict(tables)


def history_memory(
    state: LedgerState,
    txns: Sequence[Transaction],
    *,
    derive_pending: bool,
    reflected: Collection[tuple[str, str]] = (),
) -> LedgerState:
    """The household's wash-sale window memory with what its trade history shows.

    DESIGN.md §3 has a book of accounts, lots and trade history: a firm's own export has no
    ``pending_losses`` or ``last_purchases``, and without them a loss sale of ten days ago left
    no trace (its lot is gone) and the night could buy the name back — a wash sale.  So:

    * every purchase (short sale) of the last 30 days in the history is added to
      ``last_purchases`` (the latest date per security and side): the rebalance then sells no lot
      of its group at a loss (docs/rebalance.md §3; restrictive only, the ledger's tax
      accounting does not read it);
    * with ``derive_pending`` (the book has none of the three window-memory files), the loss
      sales (covers) of the window become the book's pending losses
      (:func:`shared.household.history_losses`: the history's rows of the groups sold in the
      window replayed through a fresh ledger, FIFO for a sale naming no lot; a sale of a lot
      whose purchase the history does not reach judged from the book's lots, and one whose cost
      neither shows taken as a loss of unknown size): the night buys none of those names, and
      a purchase would wash them.  A book that has the memory files keeps its own pending
      losses (``next_book/`` writes them) — and with them, a loss sale of the window that
      they cannot hold is still read: a taxable sale (cover) whose row is not marked
      ``in_memory`` (``reflected``: taxview's writer marks every row it writes), is not one of
      taxview's own trades (id ``date:account:n``) and is no pending loss of the files is judged
      as above (nights audit, 2026-12-08: a client's loss sale entered into a next book as its
      lot and history rows was ignored, and the next night bought the name back — a wash sale
      reported nowhere).
    """
    from shared.household import history_losses, history_purchases
    from shared.ledger import WASH_WINDOW_DAYS

    as_of = state.as_of
    cut = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
    if not any(cut <= t.date <= as_of for t in txns):
        return state
    latest: dict[tuple[str, bool], dt.date] = {
        (p.symbol, p.short): p.date for p in state.last_purchases
    }
    for key, day in history_purchases(txns, as_of).items():
        if key not in latest or latest[key] < day:
            latest[key] = day
    last = [
        LastPurchase(symbol=sym, date=day, short=short)
        for (sym, short), day in sorted(latest.items())
    ]
    pending = state.pending_losses
    if derive_pending:
        pending = [*pending, *history_losses(txns, state.lots, state.identical, as_of)]
    else:
        held = {(p.account, p.txn) for p in pending}
        unread = {
            (t.account, t.id)
            for t in txns
            if cut <= t.date
            and t.side in ("sell", "cover")
            and t.account_type == "taxable"
            and (t.account, t.id) not in reflected
            and (t.account, t.id) not in held
            and not _own_trade(t)
        }
        if unread:
            found = history_losses(txns, state.lots, state.identical, as_of)
            pending = [*pending, *(p for p in found if (p.account, p.txn) in unread)]
    return msgspec.structs.replace(state, last_purchases=last, pending_losses=pending)


def _own_trade(txn: Transaction) -> bool:
    """Whether a history row is one of taxview's own night trades (id ``date:account:n``,
    ``shared.rebalance.outcome_transactions``): the ledger that wrote the book booked it."""
    head, _, n = txn.id.rpartition(":")
    return n.isdigit() and head == f"{txn.date.isoformat()}:{txn.account}"


def _transaction(row: dict[str, str], file: str, row_no: int) -> Transaction:
    """A history row, held to the ledger's own rules (docs/ledger.md): quantity > 0, at most
    1e10 shares and 18 decimals, price ≥ 0 and at most $1e10 (a data-path audit found a price
    of −5 copied into the next book, the fuzz audit 2e10 shares and 19 decimals)."""
    from shared.ledger import MAX_PRICE, MAX_QUANTITY, MAX_QUANTITY_PLACES, decimal_places

    txn: Transaction = _convert(row, Transaction, file, row_no)
    q, p = txn.quantity, txn.price
    places = decimal_places(q) if q.is_finite() else 0
    for column, value, ok, rule in (
        ("quantity", q, q.is_finite() and 0 < q <= MAX_QUANTITY, f"> 0 and ≤ {MAX_QUANTITY:,}"),
        # more places than the ledger carries (fuzz audit: 19 were copied into the next book)
        ("quantity", q, places <= MAX_QUANTITY_PLACES, f"of ≤ {MAX_QUANTITY_PLACES} decimals"),
        ("price", p, p.is_finite() and 0 <= p <= MAX_PRICE, f">= 0 and ≤ {MAX_PRICE:,}"),
    ):
        if not ok:
            raise InputError(
                f"{file} row {row_no}: {column} {value} must be {rule}",
                account=txn.account,
                field=column,
            )
    return txn


class _FileRiskModel(RiskModel, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A market file's risk model: no key the snapshot does not have."""


class _FileMarket(MarketSnapshot, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A market file: no key the snapshot does not have (a misspelt ``alphas`` was ignored)."""

    risk_model: _FileRiskModel


def decode_market_file(raw: bytes) -> MarketSnapshot:
    """A ``market.json`` as written by ``taxview nightly`` (docs/formats.md): unknown keys and
    numbers written as text are refused (book audit: ``"alphas"`` was ignored and a price of
    ``"74.8"`` traded), where a rebalance request is read leniently.

    Raises:
        InputError: naming the key or the value.
    """
    twice = duplicate_key(raw)
    if twice is not None:  # badinput audit: the last of two was kept without a word
        raise InputError(
            f"key {twice!r} appears twice in one object (give it once)", field="market"
        )
    try:
        file = decode_json(raw, _FileMarket, strict=True)
    except InputError as exc:
        path = "" if exc.field in (None, "message", "document") else f".{exc.field}"
        raise InputError(exc.reason, field=f"market{path}") from exc
    return msgspec.convert(msgspec.to_builtins(file), MarketSnapshot)


def read_market(path: Path, as_of: dt.date) -> MarketSnapshot:
    """The day's market: a ``MarketSnapshot`` JSON file, or a market directory
    (``shared.loaders.load_market_dir``, see ``docs/formats.md``).

    Either way the snapshot passes the checks each rebalance makes before it is returned.

    Raises:
        InputError: the file is missing or malformed, dated another day, or fails a
            rebalance's market checks; a directory's error names the directory.
    """
    from shared.rebalance import market_arrays

    if path.is_dir():
        from shared.loaders import load_market_dir

        history = load_market_dir(path)  # its own errors name the file, row and column
        try:
            snapshot = history.snapshot(as_of)
            # The same checks as for market.json below, before anything is sent: the loader's
            # checks agree with them (prices, PSD tolerance), so this is the backstop that a
            # bad directory stops the run instead of rejecting every account.
            market_arrays(snapshot)
        except InputError as exc:
            raise InputError(
                f"{path} (the market of {as_of}): {exc.reason}", field=exc.field or "market"
            ) from exc
        return snapshot
    if not path.exists():
        raise InputError(f"no market file at {path}", field="--market")
    try:
        snapshot = decode_market_file(path.read_bytes())
    except InputError as exc:
        raise InputError(f"{path}: {exc.reason}", field=exc.field or "market") from exc
    if snapshot.as_of != as_of:
        raise InputError(
            f"{path} is the market of {snapshot.as_of}, not of {as_of}", field="market.as_of"
        )
    # The checks each rebalance makes (prices, weights, risk model), once, before anything is
    # sent: a bad market file stops the run, as a bad book cell does (docs/formats.md), naming
    # the file.
    try:
        market_arrays(snapshot)
    except InputError as exc:
        raise InputError(f"{path}: {exc.reason}", field=exc.field or "market") from exc
    return snapshot


#: Book columns that hold a struct field of another name.
_RENAMED = {"cost_basis_usd": "cost_basis", "wash_adjustment_usd": "wash_adjustment"}

#: A number cell as docs/formats.md has it: plain ASCII decimals, an optional exponent (and
#: the words NaN/Infinity, refused by the finiteness checks with their own message).  Python's
#: float() and Decimal() also read "1_000" and non-ASCII digits ("١٢٣"): book audit.
_PLAIN_NUMBER = re.compile(
    r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)",
    re.ASCII | re.IGNORECASE,
)


_NUMERIC_FIELDS: dict[str, frozenset[str]] = {}


def _numeric_fields(typ: type[Any]) -> frozenset[str]:
    """The fields of a struct that hold numbers (Decimal, float or int, optional or not)."""
    known = _NUMERIC_FIELDS.get(typ.__name__)
    if known is None:
        numeric = (Decimal, float, int)
        known = frozenset(
            f.name
            for f in msgspec.structs.fields(typ)
            if any(k in numeric for k in (get_args(f.type) or (f.type,)))
        )
        _NUMERIC_FIELDS[typ.__name__] = known
    return known


def _plain_number(raw: str, file: str, row_no: int, column: str, account: str | None) -> None:
    """Refuse a number cell that is not a plain decimal (an empty cell is no number)."""
    if raw and not _PLAIN_NUMBER.fullmatch(raw):
        raise InputError(
            f"{file} row {row_no}: {column} {raw!r} is not a number (plain decimals: 1234.5, 1e-3)",
            account=account or None,
            field=column,
        )


#: The allowed values of the enumerated columns (named in the error for any other value).
_CHOICES: dict[str, tuple[str, ...]] = {
    "account_type": get_args(AccountType),
    "strategy": get_args(Strategy),
    "side": get_args(Side),
}


def _required(typ: type[Any]) -> tuple[str, ...]:
    """The columns a struct cannot do without (its fields without a default)."""
    return tuple(_RENAMED.get(f.name, f.name) for f in msgspec.structs.fields(typ) if f.required)


_LOT_REQUIRED = _required(Lot)


def _struct_of(file: str) -> type[Any]:
    """The struct a book file's rows become (for the columns it has)."""
    table = file.rsplit(".", 1)[0]
    return {"lots": Lot, "pending_losses": PendingLoss, "recent_purchases": RecentPurchase}.get(
        table, Transaction
    )


class _Table(NamedTuple):
    """A book table as read: its file name and its rows (1-based data row number, cells as
    text, every known column present)."""

    file: str
    rows: list[tuple[int, dict[str, str]]]
    #: Row number → why that row cannot be read (a required cell is empty): the caller sets
    #: the row's household aside, or stops when the row names none.
    bad: dict[int, InputError] = {}  # noqa: RUF012 (a NamedTuple field, never mutated)


#: Book columns that hold money or share counts: exact to the cent / share fraction.
_EXACT_COLUMNS = frozenset(
    {"quantity", "sold_quantity", "cost_basis", "wash_adjustment", "price", "loss_usd"}
)


#: Parquet columns where a NaN is no missing value but an error: the cash an account holds
#: (badinput audit: a NaN ``cash_usd`` read as $0 and the account ran on a fraction of its
#: value, without a word; "no cash" is a 0).
_NAN_IS_AN_ERROR = frozenset({"cash_usd"})


def _exact_column(name: str) -> bool:
    """A book column of money or share counts (exact to the cent / share fraction)."""
    return name in _EXACT_COLUMNS or name.endswith("_usd")


def _narrow_floats_as_text(table: Any, file: str) -> Any:
    """``table`` with its float32 / float16 columns as the text of each value's shortest repr
    *in its own precision* (a float32 of 0.1 read as a Python float is 0.10000000149011612).

    A money or quantity column in such a type is refused: float32 holds ~7 significant digits,
    so a basis of $440,000.13 is stored as 440000.125 and no reading gets the cents back (fuzz
    audit: a float32 ``cost_basis`` moved the night's money by cents and the next book carried
    the digits).

    Raises:
        InputError: a float32 / float16 money or quantity column, naming the file and column.
    """
    import numpy as np
    import pyarrow as pa

    for idx, column in enumerate(table.schema):
        narrow = pa.types.is_float32(column.type) or pa.types.is_float16(column.type)
        name = str(column.name).strip()
        if narrow and _exact_column(name):
            raise InputError(
                f"{file}: column {name!r} is "
                f"{'float32' if pa.types.is_float32(column.type) else 'float16'}, which holds "
                "~7 significant digits or fewer "
                "(a basis of 440000.13 is stored as 440000.125): write money and share counts "
                "as float64, decimal or text",
                field=name,
            )
        if pa.types.is_float32(column.type):
            kind: Any = np.float32
        elif pa.types.is_float16(column.type):
            kind = np.float16
        else:
            continue
        values = table.column(idx).to_numpy(zero_copy_only=False)
        text = [None if math.isnan(v) else str(kind(v)) for v in values]
        table = table.set_column(idx, column.name, pa.array(text, type=pa.string()))
    return table


def _cell(value: Any, *, keep_nan: bool = False) -> str:
    """A Parquet cell as the text a CSV would hold (typed columns welcome).  A NaN is an empty
    cell (pandas' missing value: an empty wash adjustment is 0, an empty TE budget the
    default), except where ``keep_nan`` (:data:`_NAN_IS_AN_ERROR`): there it stays ``NaN`` and
    is refused as a CSV's ``NaN`` is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN" if keep_nan else ""
        return repr(value)
    if isinstance(value, dt.datetime):  # a timestamp column: its date (time of day dropped)
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode()
    return str(value).strip()


def _once(
    seen: dict[str, int],
    key: str,
    row_no: int,
    *,
    file: str,
    what: str,
    account: str | None,
    field: str = "account_id",
) -> None:
    """Remember the row of ``key``; a second row of it is refused naming both rows."""
    if key in seen:
        raise InputError(
            f"{file} rows {seen[key]} and {row_no}: {what}", account=account, field=field
        )
    seen[key] = row_no


def _check_header(file: str, header: list[str]) -> None:
    """A header names each column once."""
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError(f"{file}: column {column!r} appears twice", field=column)
        seen.add(column)


def _csv_rows(reader: Any, *, file: str, name: str) -> Iterator[tuple[int, list[str]]]:
    """``(line the row starts on, cells)`` for each row of a strict ``csv.reader``; a CSV error
    (a quote opened and never closed) is an ``InputError`` naming the file and the row, and so
    is text that is not UTF-8 (book audit: a Latin-1 "é" was a traceback)."""
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{file}: not UTF-8 text (a byte {exc.object[exc.start]:#04x}); save it as UTF-8",
                field=name,
            ) from exc
        except csv.Error as exc:
            where = "header" if start == 1 else f"row {start - 1}"
            raise InputError(
                f"{file} {where}: not valid CSV ({exc}): a quote opened and never closed?",
                field="row",
            ) from exc
        yield start, cells


def _read_table(
    directory: Path,
    name: str,
    columns: Sequence[str],
    *,
    required: Sequence[str],
    optional_file: bool = False,
) -> _Table:
    """Read ``name.parquet`` (preferred) or ``name.csv``, checking its columns and cells.

    Raises:
        InputError: the file is missing (unless ``optional_file``), a column is unknown,
            repeated or missing, a row has another number of cells than the header, or a
            required cell is empty.
    """
    csv_path, pq_path = directory / f"{name}.csv", directory / f"{name}.parquet"
    for path in (csv_path, pq_path):
        if path.exists() and not path.is_file():  # badinput audit: IsADirectoryError traceback
            raise InputError(f"{path} is not a file (a directory?)", field=name)
    raw: list[tuple[int, list[str]]] = []
    if pq_path.exists():
        import pyarrow as pa
        import pyarrow.parquet as pq

        file = pq_path.name
        try:
            data = pq.read_table(pq_path)
        except (pa.ArrowException, OSError) as exc:
            reason = " ".join(str(exc).split())[:200]  # pyarrow's can dump a whole schema
            raise InputError(f"{file}: not a readable Parquet file ({reason})", field=name) from exc
        header = [str(c).strip() for c in data.column_names]
        _check_header(file, header)
        for column_field in data.schema:
            if pa.types.is_nested(column_field.type):  # list, struct, map: no CSV cell holds one
                raise InputError(
                    f"{file}: column {column_field.name!r} holds {column_field.type} values; "
                    "a book cell is a plain value (text, number, boolean, date)",
                    field=column_field.name,
                )
        data = _narrow_floats_as_text(data, file)
        keep = [str(c).strip() in _NAN_IS_AN_ERROR for c in data.column_names]
        for i, row in enumerate(data.to_pylist()):
            try:
                cells = [_cell(v, keep_nan=k) for v, k in zip(row.values(), keep, strict=True)]
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{file} row {i + 1}: a binary cell is not UTF-8 text ({exc.reason})",
                    field="row",
                ) from exc
            broken = next(
                (c for c, v in zip(header, cells, strict=True) if "\n" in v or "\r" in v), None
            )
            if broken is not None:
                # Refused as in a CSV (review: read from Parquet, such a cell was written to
                # next_book/*.csv, which could then not be read: the next night stopped).
                raise InputError(
                    f"{file} row {i + 1}: cell {broken!r} holds a line break; a book cell is "
                    "one line of text",
                    field=broken,
                )
            raw.append((i + 1, cells))
    elif csv_path.exists():
        file = csv_path.name
        header = []
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:  # a BOM (Excel) is dropped
            # strict: a stray quote is an error, not a cell that swallows the rows after it
            reader = csv.reader(fh, strict=True)
            for row_start, cells in _csv_rows(reader, file=file, name=name):
                if row_start == 1:
                    header = [c.strip() for c in cells]
                    if not header:
                        break
                    continue
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # a blank line
                # A data row is numbered from 1 after the header, by line: row N is line N + 1.
                row_no = reader.line_num - 1
                if any("\n" in c or "\r" in c for c in cells):
                    raise InputError(
                        f"{file} row {row_start - 1}: a cell spans several lines (a quote "
                        "opened and never closed?)",
                        field="row",
                    )
                if len(cells) != len(header):
                    raise InputError(
                        f"{file} row {row_no}: {len(cells)} cells, but the header has "
                        f"{len(header)} columns",
                        field="row",
                    )
                raw.append((row_no, [c.strip() for c in cells]))
        if not header:
            raise InputError(f"{file} is empty: it needs a header row", field=name)
    elif optional_file:
        return _Table(file=f"{name}.csv", rows=[])
    else:
        raise InputError(f"{directory} has neither {name}.csv nor {name}.parquet", field=name)
    _check_header(file, header)
    seen = set(header)
    unknown = [c for c in header if c not in columns]
    for column in required:
        if column not in seen:
            hint = f" (unknown: {', '.join(map(repr, unknown))})" if unknown else ""
            raise InputError(f"{file}: missing column {column!r}{hint}", field=column)
    if unknown:
        raise InputError(
            f"{file}: unknown column {unknown[0]!r} (the columns are {', '.join(columns)}; "
            "docs/formats.md, Book format)",
            field=unknown[0],
        )
    rows: list[tuple[int, dict[str, str]]] = []
    bad: dict[int, InputError] = {}
    for row_no, cells in raw:
        row = dict.fromkeys(columns, "")
        row.update(zip(header, cells, strict=True))
        for column in required:
            if row[column] == "":
                bad[row_no] = InputError(
                    f"{file} row {row_no}: {column} is empty",
                    account=row.get("account_id") or row.get("account") or None,
                    field=column,
                )
                break
        rows.append((row_no, row))
    return _Table(file=file, rows=rows, bad=bad)


def _cell_error(
    file: str, row_no: int, row: dict[str, str], exc: msgspec.ValidationError
) -> InputError:
    """A msgspec conversion error as a one-line error naming the file, row and column."""
    msg = str(exc)
    path = msg.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in msg else ""
    field = path.split(".", 1)[0].split("[", 1)[0]
    column = _RENAMED.get(field, field) or "row"
    value = row.get(column, "")
    if "date" in msg.lower():
        what = "is not a date (YYYY-MM-DD)"
    elif "enum" in msg.lower():
        what = f"is not one of {', '.join(_CHOICES.get(column, ()))}"
    elif any(t in msg for t in ("decimal", "`float`", "`int`")):
        what = "is not a number"
    elif "`bool`" in msg:
        what = "is not true or false"
    else:
        what = f"is invalid ({msg.split(' - at ', 1)[0]})"
    return InputError(
        f"{file} row {row_no}: {column} {value!r} {what}",
        account=row.get("account_id") or row.get("account") or None,
        field=column,
    )


def _convert(row: dict[str, str], typ: type[Any], file: str, row_no: int) -> Any:
    data = {
        name: row[_RENAMED.get(name, name)]
        for name in typ.__struct_fields__
        if row.get(_RENAMED.get(name, name), "") != ""
    }
    for name in _numeric_fields(typ).intersection(data):
        column = _RENAMED.get(name, name)
        _plain_number(data[name], file, row_no, column, row.get("account"))
    try:
        obj = msgspec.convert(data, typ, strict=False)
    except msgspec.ValidationError as exc:
        raise _cell_error(file, row_no, row, exc) from exc
    for name in typ.__struct_fields__:  # NaN and Infinity are no amounts
        value = getattr(obj, name)
        if isinstance(value, Decimal) and not value.is_finite():
            column = _RENAMED.get(name, name)
            raise InputError(
                f"{file} row {row_no}: {column} {row[column]!r} is not a finite number",
                account=row.get("account") or None,
                field=column,
            )
    return obj


def _check_pending(loss: PendingLoss, file: str, row_no: int) -> None:
    """The shares of a pending loss the ledger can hold: ``0 < quantity ≤ sold_quantity`` (book
    audit: a quantity of 0 rejected its account, then stopped the night when its next book was
    written)."""
    if loss.sold_quantity <= 0 or not 0 < loss.quantity <= loss.sold_quantity:
        column = "sold_quantity" if loss.sold_quantity <= 0 else "quantity"
        raise InputError(
            f"{file} row {row_no}: quantity {loss.quantity} of sold_quantity "
            f"{loss.sold_quantity}: the shares still to wash must be > 0 and at most those sold",
            account=loss.account,
            field=column,
        )


def _lot(row: dict[str, str], row_no: int, file: str) -> Lot:
    """A lot row.  A negative basis is a well-formed number its account's rebalance refuses
    (``ledger.lots[i].cost_basis_usd``, a ``rejected`` outcome; firm-book audit: it stopped
    every household's night).  A quantity ≤ 0 still stops the night here: the household's
    ledger cannot hold such a lot, so the siblings' trades could not be booked into the next
    book (review: the night died in the aggregator, without firm_pnl.json or next_book/)."""
    lot: Lot = _convert(row, Lot, file, row_no)
    # Short lots are flagged by `short`, never by a negative quantity (IRC §1233).
    if lot.quantity <= 0:
        raise InputError(
            f"{file} row {row_no}: quantity {row['quantity']!r} must be > 0 (a short lot is "
            "flagged by `short`, not by a negative quantity)",
            account=lot.account,
            field="quantity",
        )
    return lot


def _split(text: str, sep: str = ";") -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]


def _groups(text: str) -> list[list[str]]:
    return [_split(group, "=") for group in _split(text)]


def _account(row: dict[str, str], row_no: int, file: str) -> AccountSpec:
    account = row["account_id"]
    if not account.isprintable():  # fuzz audit: a NUL inside an id reached every output file
        raise InputError(
            f"{file} row {row_no}: account_id {account!r} holds a control character",
            account=account,
            field="account_id",
        )

    def num(col: str) -> float | None:
        raw = row.get(col, "").strip()
        if raw == "":
            return None
        _plain_number(raw, file, row_no, col, account)
        try:
            return float(raw)
        except ValueError as exc:
            raise InputError(
                f"{file} row {row_no}: {col} {raw!r} is not a number", account=account, field=col
            ) from exc

    tilts = []
    for part in _split(row.get("tilts", "")):
        factor, sep, value = part.partition(":")
        try:
            if not sep or not _PLAIN_NUMBER.fullmatch(value.strip()):
                raise ValueError(part)
            tilts.append(FactorTilt(factor=factor.strip(), min_exposure=float(value)))
        except ValueError as exc:
            raise InputError(
                f"{file} row {row_no}: tilts {part!r} is not factor:min_exposure",
                account=account,
                field="tilts",
            ) from exc
    data: dict[str, Any] = {
        k: v
        for k, v in row.items()
        if k in AccountSpec.__struct_fields__
        and v != ""
        and k not in {"exclusions", "tilts", "identical"}
    }
    for name in _numeric_fields(AccountSpec).intersection(data):
        _plain_number(data[name], file, row_no, name, account)
    data["exclusions"] = _split(row.get("exclusions", ""))
    data["tilts"] = tilts
    data["identical"] = _groups(row.get("identical", ""))
    defaults = TaxRates()
    rates = {
        "short_term": num("short_term_rate"),
        "long_term": num("long_term_rate"),
        "niit": num("niit_rate"),
    }
    data["rates"] = TaxRates(
        short_term=rates["short_term"] if rates["short_term"] is not None else defaults.short_term,
        long_term=rates["long_term"] if rates["long_term"] is not None else defaults.long_term,
        niit=rates["niit"] if rates["niit"] is not None else defaults.niit,
    )
    long_w, short_w = num("long_w"), num("short_w")
    if long_w is not None or short_w is not None:
        base = LongShortSpec()
        data["long_short"] = LongShortSpec(
            long_w=long_w if long_w is not None else base.long_w,
            short_w=short_w if short_w is not None else base.short_w,
            gross_limit_w=num("long_short_gross_limit_w"),
        )
    try:
        spec: AccountSpec = msgspec.convert(data, AccountSpec, strict=False)
    except msgspec.ValidationError as exc:
        raise _cell_error(file, row_no, row, exc) from exc
    for name in ("cash_usd", "gain_budget_usd"):
        value = getattr(spec, name)
        if value is not None and not value.is_finite():
            raise InputError(
                f"{file} row {row_no}: {name} {row[name]!r} is not a finite number",
                account=account,
                field=name,
            )
    return spec


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_book(directory: Path, book: Book, *, fmt: Format = "csv") -> None:
    """Write a book directory that :func:`read_book` reads back to an equal book.

    ``book.json`` is removed first and written last, with the rows of every table: each table
    is replaced whole (written aside, then renamed), so a writer killed half-way leaves no
    ``book.json`` and :func:`read_book` refuses the directory, and one that rewrote some tables
    of an existing book fails the row counts (fleet fault audit: a SIGKILLed aggregator left a
    ``next_book/`` with a third of its lots and no window memory, which read as a valid book,
    and the next night bought back 147 names sold at a loss).
    """
    directory.mkdir(parents=True, exist_ok=True)
    meta = directory / "book.json"
    meta.unlink(missing_ok=True)
    rows: dict[str, int] = {}

    def _write(
        directory: Path, name: str, columns: Sequence[str], table: list[dict[str, str]], fmt: Format
    ) -> None:
        _write_table(directory, name, columns, table, fmt)
        rows[name] = len(table)

    # A household set aside on reading (Quarantine) goes back exactly as it was read.
    raw: dict[str, list[dict[str, str]]] = {}
    for _, q in sorted(book.quarantined.items()):
        for name, table_rows in q.rows.items():
            raw.setdefault(name, []).extend(table_rows)
    accounts = [_account_row(a) for a in book.accounts] + raw.get("accounts", [])
    _write(directory, "accounts", ACCOUNT_COLUMNS, accounts, fmt)
    lots, pending, recent, last, households = [], [], [], [], []
    # An account row's groups are merged into its household's on reading (read_book): they
    # stay on the account row, so withdrawing one there withdraws it (diff review: copied into
    # households.csv they outlived the account row's edit); the household's own are kept
    # whatever the rows say (another review: one also on a row was dropped from both).
    for household, state in sorted(book.ledgers.items()):
        for lot in state.lots:
            lots.append(_lot_row(household, lot))
        pending += [_struct_row(household, p) for p in state.pending_losses]
        recent += [_struct_row(household, r) for r in state.recent_purchases]
        last += [_struct_row(household, p) for p in state.last_purchases]
        own = state.identical if book.declared is None else book.declared.get(household, [])
        if own:
            households.append({"household_id": household, "identical": _fmt_groups(own)})
    _write(directory, "lots", LOT_COLUMNS, lots + raw.get("lots", []), fmt)
    _write(
        directory, "pending_losses", PENDING_COLUMNS, pending + raw.get("pending_losses", []), fmt
    )
    _write(
        directory,
        "recent_purchases",
        RECENT_COLUMNS,
        recent + raw.get("recent_purchases", []),
        fmt,
    )
    _write(
        directory,
        "last_purchases",
        LAST_PURCHASE_COLUMNS,
        last + raw.get("last_purchases", []),
        fmt,
    )
    _write(directory, "households", HOUSEHOLD_COLUMNS, households + raw.get("households", []), fmt)
    household_of_account = dict(book.history_homes)
    household_of_account.update((spec.account_id, household_of(spec)) for spec in book.accounts)
    for household, state in book.ledgers.items():  # accounts not rebalanced, e.g. an IRA
        for lot in state.lots:
            household_of_account.setdefault(lot.account, household)
    _write(
        directory,
        "history",
        HISTORY_COLUMNS,
        # Every row's effect is in the window-memory files written beside it (history_memory).
        [
            {**_struct_row(household_of_account.get(t.account, ""), t), "in_memory": "true"}
            for t in book.history
        ]
        + raw.get("history", []),
        fmt,
    )
    doc: dict[str, Any] = {"as_of": book.as_of.isoformat(), "tables": rows}
    derive = sorted(h for h, q in book.quarantined.items() if q.derive_memory)
    if derive:  # households set aside whose memory is their history's (Quarantine)
        doc["derive_memory"] = derive
    write_aside(meta, lambda tmp: tmp.write_text(json.dumps(doc) + "\n"))


def write_market(path: Path, market: MarketSnapshot) -> None:
    """Write a market snapshot as JSON (what :func:`read_market` reads)."""
    path.write_bytes(encode_json(market))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return str(value)


def _struct_row(household: str, obj: msgspec.Struct) -> dict[str, str]:
    row = {"household_id": household}
    for name in obj.__struct_fields__:
        row[name] = _text(getattr(obj, name))
    return row


def _lot_row(household: str, lot: Lot) -> dict[str, str]:
    return {
        "household_id": household,
        "account": lot.account,
        "symbol": lot.symbol,
        "lot_id": lot.lot_id,
        "quantity": _text(lot.quantity),
        "trade_date": _text(lot.trade_date),
        "acquired": _text(lot.acquired),
        "cost_basis": _text(lot.cost_basis_usd),
        "wash_adjustment": _text(lot.wash_adjustment_usd),
        "short": _text(lot.short),
        "account_type": lot.account_type,
        "replacement_used": _text(lot.replacement_used),
    }


def _fmt_groups(groups: list[list[str]]) -> str:
    return ";".join("=".join(g) for g in groups)


def _account_row(spec: AccountSpec) -> dict[str, str]:
    row = {
        name: _text(getattr(spec, name))
        for name in ACCOUNT_COLUMNS
        if name in AccountSpec.__struct_fields__
        and name not in {"exclusions", "tilts", "identical"}
    }
    row["exclusions"] = ";".join(spec.exclusions)
    row["tilts"] = ";".join(f"{t.factor}:{t.min_exposure!r}" for t in spec.tilts)
    row["identical"] = _fmt_groups(spec.identical)
    row["short_term_rate"] = repr(spec.rates.short_term)
    row["long_term_rate"] = repr(spec.rates.long_term)
    row["niit_rate"] = repr(spec.rates.niit)
    ls = spec.long_short
    row["long_w"] = repr(ls.long_w) if ls else ""
    row["short_w"] = repr(ls.short_w) if ls else ""
    row["long_short_gross_limit_w"] = _text(ls.gross_limit_w) if ls else ""
    return row


def write_aside(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` whole: ``write`` fills a temporary file of this process beside it, which
    then replaces ``path`` in one rename (removed on any error, Ctrl-C included).

    The temporary name is the writer's own: two runs writing one ``--out`` at once (a cron job
    fired twice, two ``aggregate`` runs) each rename their own file — with a fixed ``.tmp`` name
    the second rename found the first had taken it and died with a traceback (fleet fault audit,
    2026-12-07).  A killed writer's file is removed by the next writer of ``path`` once it is
    stale (:func:`_sweep_stale_tmp`)."""
    _sweep_stale_tmp(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


#: A temporary file of :func:`write_aside` older than this is a killed writer's, whatever its
#: process id says (a writer on another host of a shared volume has a pid unknown here).
STALE_TMP_S = 3600.0


def _sweep_stale_tmp(path: Path) -> None:
    """Remove temporary files a killed writer of ``path`` left (SIGKILL runs no cleanup; review
    audit, 2026-12-07: one per kill piled up): those of a process that no longer runs here,
    older than a minute, and any older than :data:`STALE_TMP_S`."""
    now = time.time()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            age = now - tmp.stat().st_mtime
            pid_text = tmp.name[len(path.name) + 2 :].split("-", 1)[0]
            dead = pid_text.isdigit() and not _alive(int(pid_text))
            if age > STALE_TMP_S or (dead and age > 60):
                tmp.unlink(missing_ok=True)
        except OSError:
            continue  # another writer swept it first, or it cannot be removed: harmless


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _write_table(
    directory: Path, name: str, columns: Sequence[str], rows: list[dict[str, str]], fmt: Format
) -> None:
    # A table of the other format left from an earlier write would shadow this one (Parquet is
    # read first) or be read instead of it.
    (directory / f"{name}.{'csv' if fmt == 'parquet' else 'parquet'}").unlink(missing_ok=True)
    path = directory / f"{name}.{fmt}"

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.table(
                {c: pa.array([r.get(c, "") for r in rows], pa.string()) for c in columns}
            )
            pq.write_table(table, tmp)
        else:
            with tmp.open("w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)

    write_aside(path, write)  # written aside, renamed whole
