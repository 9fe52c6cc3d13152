"""Aggregate a night: completeness check, firm-wide P/L, reports and the next day's book.

The fold is :func:`shared.pnl.combine` (associative and commutative), so no Celery chord is
needed: outcomes are read from the results store whenever the night is complete.  A night with
accounts missing is refused — naming them — unless ``allow_partial`` is set.

Outputs (``out/``): ``firm_pnl.json``, ``pnl_by_account.csv``, ``pnl_by_household.csv``,
``pnl_by_strategy.csv``, ``outcomes.jsonl``, ``trades.csv`` (lot level), ``realized.csv`` (lot
slices), ``not_ok.csv`` and, when the book is given, ``wash_amendments.csv`` and ``next_book/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import msgspec

from producer.book import Book, Format, refuse_booked_night, write_aside, write_book
from producer.results_reader import ManifestEntry
from shared import pnl
from shared.errors import InputError
from shared.ledger import WashMatch, cents
from shared.messages import AccountSpec, Outcome, Rejected, Solved, Transaction, encode_json

#: Accounts named in full in an "incomplete night" error before it says "and N more".
NAMED_MISSING = 20


class IncompleteNight(InputError):
    """Accounts of the manifest have no outcome; the night is not published."""

    def __init__(self, as_of: dt.date, missing: list[str]) -> None:
        self.missing = missing
        shown = ", ".join(missing[:NAMED_MISSING])
        more = f" and {len(missing) - NAMED_MISSING} more" if len(missing) > NAMED_MISSING else ""
        super().__init__(
            f"night {as_of}: {len(missing)} account(s) have no outcome: {shown}{more}; "
            "if the workers are still solving, wait for them; once they are idle, run "
            "`taxview sweep` to re-enqueue these, or pass --allow-partial",
            field="outcomes",
        )


class NightSummary(msgspec.Struct, kw_only=True):
    """What the aggregator publishes as ``firm_pnl.json``."""

    as_of: dt.date
    complete: bool
    expected: int
    received: int
    missing: list[str]
    totals: dict[str, str | int]
    by_strategy: dict[str, dict[str, str | int]]
    out_dir: str
    #: Loss sales of earlier nights that reading the book found washed by a purchase it holds
    #: (``wash_amendments.csv``): their Form 8949 lines need code W.
    book_washes: int = 0


def check_complete(
    as_of: dt.date,
    expected: Mapping[str, ManifestEntry],
    outcomes: Mapping[str, Outcome],
    *,
    allow_partial: bool,
) -> list[str]:
    """The missing accounts (sorted).

    Raises:
        IncompleteNight: some are missing and ``allow_partial`` is false.
        InputError: no manifest for the night (the producer never ran).
    """
    if not expected:
        from shared.calendar import CALENDAR_END, CALENDAR_START, is_trading_day

        if CALENDAR_START <= as_of <= CALENDAR_END and not is_trading_day(as_of):
            # Contracts audit: the hint sent the operator to an enqueue that refuses the date.
            raise InputError(
                f"no manifest for {as_of}: it is not an NYSE session, so no night runs on it",
                field="--date",
            )
        raise InputError(
            f"no manifest for {as_of}: run `taxview enqueue --date {as_of}` first",
            field="manifest",
        )
    missing = sorted(set(expected) - set(outcomes))
    if missing and not allow_partial:
        raise IncompleteNight(as_of, missing)
    return missing


def check_book(as_of: dt.date, expected: Mapping[str, ManifestEntry], book: Book) -> None:
    """The book given for the next day's book must be the one the night was enqueued from.

    Raises:
        InputError: it closed after the night, it already holds the night's trades (it is
            the night's ``next_book``), or its accounts are not the manifest's (another night's
            or another firm's book would book the trades into the wrong lots), or an account's
            settings or household ledger differ from what was enqueued (the manifest's digest).
    """
    if book.as_of > as_of:
        raise InputError(
            f"the book closed on {book.as_of}, after the night {as_of}: give the book the night "
            "was enqueued from",
            field="--book",
        )
    refuse_booked_night(book, as_of)
    ours = {a.account_id for a in book.accounts}
    ours.update(a.account_id for q in book.quarantined.values() for a in q.accounts)
    only_manifest = sorted(set(expected) - ours)
    only_book = sorted(ours - set(expected))
    changed: list[str] = []
    if not (only_manifest or only_book) and any(e.book for e in expected.values()):
        from producer.enqueue import book_digests

        digests = book_digests(book)
        changed = sorted(
            a
            for a, e in expected.items()
            if e.book[:2] == digests.get(a, "")[:2] and e.book != digests.get(a)
        )
    if only_manifest or only_book or changed:

        def few(ids: list[str]) -> str:
            more = f" and {len(ids) - NAMED_MISSING} more" if len(ids) > NAMED_MISSING else ""
            return ", ".join(ids[:NAMED_MISSING]) + more

        parts = []
        if only_manifest:
            parts.append(
                f"{len(only_manifest)} enqueued account(s) not in the book: {few(only_manifest)}"
            )
        if only_book:
            parts.append(
                f"{len(only_book)} account(s) of the book never enqueued: {few(only_book)}"
            )
        if changed:
            parts.append(
                f"{len(changed)} account(s) with other settings, lots or cash than enqueued "
                f"(their household's ledger or the account changed): {few(changed)}"
            )
        raise InputError(
            f"night {as_of}: the book is not the one the night was enqueued from ("
            + "; ".join(parts)
            + ")",
            field="--book",
        )


#: The files :func:`aggregate` writes into its output directory; with a book, ``next_book/``
#: too (:data:`NEXT_BOOK`).
OUTPUT_FILES = (
    "firm_pnl.json",
    "pnl_by_account.csv",
    "pnl_by_household.csv",
    "pnl_by_strategy.csv",
    "outcomes.jsonl",
    "trades.csv",
    "realized.csv",
    "not_ok.csv",
    "wash_amendments.csv",
)
NEXT_BOOK = "next_book"


def check_book_apart(out: Path, book_dir: Path | None) -> None:
    """Refuse a ``--book`` that this run's ``next_book/`` would overwrite (review audit,
    2026-12-08: ``--book OUT/next_book --out OUT`` rewrote its own input in place, and a writer
    killed half-way left the night's input book unreadable).

    Raises:
        InputError: naming both paths, ``field`` ``--out``.
    """
    if book_dir is None:
        return
    given, target = book_dir.resolve(), (out / NEXT_BOOK).resolve()
    if given == target or target in given.parents or given in target.parents:
        raise InputError(
            f"--book {book_dir} is where this run writes its {NEXT_BOOK}/ ({out / NEXT_BOOK}): "
            "the night would overwrite the book it starts from; give another --out",
            field="--out",
        )


def check_out_dir(
    out: Path, *, extra_files: Sequence[str] = (), extra_dirs: Sequence[str] = ()
) -> None:
    """Refuse, before any work, an output directory a night could not be written into: a file
    at ``out``, a directory where one of its files goes, a file where one of its directories
    goes or a directory where one of their tables goes (contract audit, 2026-12-08: a directory
    named ``trades.csv`` ended a whole solved night in a traceback).

    Raises:
        InputError: naming the path, ``field`` ``--out``.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"cannot create --out {out}: it is a file", field="--out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"cannot create --out {out}: {parent} is a file", field="--out")
            break
    if not out.is_dir():
        return
    for name in (*OUTPUT_FILES, *extra_files):
        if (out / name).is_dir():
            raise InputError(f"cannot write {out / name}: it is a directory", field="--out")
    for name in (NEXT_BOOK, *extra_dirs):
        folder = out / name
        if folder.exists() and not folder.is_dir():
            raise InputError(f"cannot write {folder}/: it is a file", field="--out")
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and child.suffix in (".csv", ".parquet", ".json"):
                    raise InputError(f"cannot write {child}: it is a directory", field="--out")


def aggregate(
    as_of: dt.date,
    expected: Mapping[str, ManifestEntry],
    outcomes: Mapping[str, Outcome],
    out: Path,
    *,
    book: Book | None = None,
    allow_partial: bool = False,
    book_format: Format = "csv",
) -> NightSummary:
    """Check, fold and write a night's reports.

    Args:
        as_of: the night.
        expected: the manifest (account → household/strategy).
        outcomes: the stored outcomes by account.
        out: output directory (created).
        book: the book the night started from; when given, ``out/next_book`` is written.
        allow_partial: publish even though accounts are missing (they are listed in
            ``not_ok.csv`` as ``missing``).
        book_format: the tables of ``out/next_book`` (``csv`` or ``parquet``).

    Returns:
        The summary written to ``firm_pnl.json``.

    Raises:
        IncompleteNight: accounts are missing and ``allow_partial`` is false.
        InputError: ``book`` is not the book the night was enqueued from (:func:`check_book`).
    """
    missing = check_complete(as_of, expected, outcomes, allow_partial=allow_partial)
    if book is not None:
        check_book(as_of, expected, book)
    present = [outcomes[a] for a in sorted(outcomes) if a in expected]
    check_out_dir(out)
    try:
        return _publish(
            as_of,
            expected,
            out,
            present=present,
            missing=missing,
            outcomes=outcomes,
            book=book,
            book_format=book_format,
        )
    except OSError as exc:  # a full disk, a folder made read-only meanwhile: one line
        where = exc.filename if exc.filename else f"into {out}"
        raise InputError(f"cannot write {where}: {exc.strerror or exc}", field="--out") from exc


def _publish(
    as_of: dt.date,
    expected: Mapping[str, ManifestEntry],
    out: Path,
    *,
    present: list[Outcome],
    missing: list[str],
    outcomes: Mapping[str, Outcome],
    book: Book | None,
    book_format: Format,
) -> NightSummary:
    out.mkdir(parents=True, exist_ok=True)
    # firm_pnl.json is written last (atomically) and removed first: a run killed half-way
    # never leaves one saying "complete" next to reports and a next_book of another run or of
    # none (fleet fault audit: a killed re-run left `complete: true` beside a third of the lots).
    summary_path = out / "firm_pnl.json"
    summary_path.unlink(missing_ok=True)
    if book is None:
        # A reused folder keeps no output of an earlier run that this one does not write
        # (contract audit, 2026-12-08: an earlier night's next_book/ and wash_amendments.csv
        # stayed beside this run's trades, and the next night would start from that book).
        shutil.rmtree(out / NEXT_BOOK, ignore_errors=True)
        (out / "wash_amendments.csv").unlink(missing_ok=True)

    def household(o: Outcome) -> str:
        return expected[o.account_id].household

    def strategy(o: Outcome) -> str:
        return expected[o.account_id].strategy

    by_account = pnl.group_by(present, lambda o: o.account_id)
    by_household = pnl.group_by(present, household)
    by_strategy = pnl.group_by(present, strategy)
    totals = pnl.fold(by_account.values())
    _write_pnl(out / "pnl_by_account.csv", "account_id", by_account)
    _write_pnl(out / "pnl_by_household.csv", "household_id", by_household)
    _write_pnl(out / "pnl_by_strategy.csv", "strategy", by_strategy)
    with (out / "outcomes.jsonl").open("wb") as fh:
        for o in present:
            fh.write(encode_json(o) + b"\n")
    _write_trades(out, as_of, present, expected)
    _write_not_ok(out / "not_ok.csv", present, missing, expected)
    washes: list[tuple[str, WashMatch]] = []
    if book is not None:
        order = {a: e.index for a, e in expected.items()}
        write_book(
            out / "next_book",
            next_book(book, as_of, outcomes, order=order, washes=washes),
            fmt=book_format,
        )
        _write_book_washes(out / "wash_amendments.csv", washes)
    summary = NightSummary(
        as_of=as_of,
        complete=not missing,
        expected=len(expected),
        received=len(present),
        missing=missing,
        totals=totals.row(),
        by_strategy={k: v.row() for k, v in by_strategy.items()},
        out_dir=str(out),
        book_washes=len(washes),
    )
    # The documented key order (docs/fleet.md: as_of, complete, expected, …), not sorted.
    text = json.dumps(msgspec.to_builtins(summary), indent=2) + "\n"
    write_aside(summary_path, lambda tmp: tmp.write_text(text))
    return summary


#: Columns of ``wash_amendments.csv``.
BOOK_WASH_COLUMNS = (
    "household_id",
    "loss_account",
    "loss_txn",
    "loss_lot_id",
    "symbol",
    "date_sold",
    "replacement_account",
    "replacement_lot_id",
    "replacement_date",
    "quantity",
    "disallowed_usd",
    "permanent",
)


def _write_book_washes(path: Path, washes: list[tuple[str, WashMatch]]) -> None:
    """One row per wash sale that reading the book made (IRC §1091(a), (d)): the loss of an
    earlier night's sale ``loss_txn`` is disallowed by ``disallowed_usd`` (added to the
    replacement's basis, or lost for good with an IRA/Roth replacement, ``permanent``); that
    sale's Form 8949 line, reported without it, needs code W.  Header only when there is none."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOOK_WASH_COLUMNS)
        for household, m in washes:
            writer.writerow(
                [
                    household,
                    m.loss_account,
                    m.loss_txn,
                    m.loss_lot_id,
                    m.symbol,
                    m.date_sold.isoformat(),
                    m.replacement_account,
                    m.replacement_lot_id,
                    m.replacement_date.isoformat(),
                    str(m.quantity),
                    str(m.disallowed_usd),
                    "true" if m.permanent else "false",
                ]
            )


def _write_pnl(path: Path, key: str, groups: Mapping[str, pnl.PnL]) -> None:
    rows = [{key: k, **v.row()} for k, v in groups.items()]
    columns = [key, *pnl.ZERO.row().keys()]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _write_trades(
    out: Path, as_of: dt.date, present: list[Outcome], expected: Mapping[str, ManifestEntry]
) -> None:
    trade_cols = [
        "as_of",
        "account_id",
        "household_id",
        "strategy",
        "symbol",
        "side",
        "quantity",
        "price",
        "notional_usd",
        "lot_id",
        "reason",
        "driver",
        "factor_score",
    ]
    real_cols = [
        "as_of",
        "account_id",
        "household_id",
        "symbol",
        "lot_id",
        "quantity",
        "date_acquired",
        "term",
        "proceeds_usd",
        "cost_basis_usd",
        "disallowed_loss_usd",
        "permanently_disallowed_usd",
        "gain_usd",
    ]
    with (
        (out / "trades.csv").open("w", newline="") as tf,
        (out / "realized.csv").open("w", newline="") as rf,
    ):
        tw, rw = csv.writer(tf), csv.writer(rf)
        tw.writerow(trade_cols)
        rw.writerow(real_cols)
        for o in present:
            if not isinstance(o, Solved):
                continue
            entry = expected[o.account_id]
            for t in o.trades:
                tw.writerow(
                    [
                        as_of,
                        o.account_id,
                        entry.household,
                        entry.strategy,
                        t.symbol,
                        t.side,
                        t.quantity,
                        t.price,
                        t.notional_usd,
                        t.lot_id,
                        t.reason,
                        t.driver or "",
                        "" if t.factor_score is None else repr(t.factor_score),
                    ]
                )
            for s in o.realized:
                rw.writerow(
                    [
                        as_of,
                        o.account_id,
                        entry.household,
                        s.symbol,
                        s.lot_id,
                        s.quantity,
                        s.date_acquired,
                        s.term,
                        s.proceeds_usd,
                        s.cost_basis_usd,
                        s.disallowed_loss_usd,
                        s.permanently_disallowed_usd,
                        s.gain_usd,
                    ]
                )


def _held_reason(o: Solved) -> str:
    """Why a held account traded nothing: the relaxation steps tried, and the limits its
    unchanged book misses (the outcome's ``held: …`` breaches), the first three."""
    steps = [r for r in o.relaxations if r != "hold"]
    text = "held: no trade list is feasible" + (
        " even after relaxing " + ", ".join(steps) if steps else ""
    )
    breaches = [b.removeprefix("held: ") for b in o.limit_breaches]
    if breaches:
        more = f" (+{len(breaches) - 3} more)" if len(breaches) > 3 else ""
        text += "; the unchanged book misses " + "; ".join(breaches[:3]) + more
    return text


def _write_not_ok(
    path: Path, present: list[Outcome], missing: list[str], expected: Mapping[str, ManifestEntry]
) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["account_id", "household_id", "status", "field", "reason"])
        for o in present:
            if o.status == "ok":
                continue
            if isinstance(o, Solved):
                reason = (
                    "relaxed: " + ", ".join(o.relaxations)
                    if o.status == "relaxed"
                    else _held_reason(o)
                )
                writer.writerow([o.account_id, o.household_id, o.status, "", reason])
            else:
                field = o.field if isinstance(o, Rejected) else ""
                writer.writerow([o.account_id, o.household_id, o.status, field, o.reason])
        for account in missing:
            writer.writerow(
                [account, expected[account].household, "missing", "", "no outcome stored"]
            )


def _traded(outcome: Outcome | None) -> bool:
    return isinstance(outcome, Solved) and bool(outcome.trades)


def _in_order(specs: list[AccountSpec], order: Mapping[str, int]) -> list[AccountSpec]:
    """``specs`` sorted by their place in ``order`` (those it lacks last, as they were)."""
    last = len(specs)
    return sorted(specs, key=lambda spec: order.get(spec.account_id, last))


def next_book(
    book: Book,
    as_of: dt.date,
    outcomes: Mapping[str, Outcome],
    *,
    order: Mapping[str, int] | None = None,
    washes: list[tuple[str, WashMatch]] | None = None,
) -> Book:
    """The book at the close of ``as_of``: every solved account's trades booked through the
    household ledger (full wash-sale rules, IRC §1091) in the order the accounts ran, cash moved
    by the traded notional, the transactions appended to the history.

    ``order``: each account's place in its household's chain as enqueued (the manifest's
    ``index``); the book's own run order (:meth:`Book.households`) otherwise.  The manifest's
    wins, so a night enqueued by a taxview that ordered the chains otherwise is booked as its
    workers solved it (diff review: booked in the new order, a replacement lot's basis and
    holding period came out otherwise than the solves' realized slices).

    ``washes`` (when given) receives, per household, the wash sales that reading the book
    itself made: a pending loss of an earlier night matched with a purchase the book holds
    unadjusted (a client's trade entered by hand; :meth:`shared.ledger.Ledger.from_state`).
    That earlier sale was reported without them (review audit, 2026-12-07)."""
    from shared.ledger import Ledger
    from shared.rebalance import outcome_transactions

    ledgers = {}
    new_history: list[Transaction] = []
    cash: dict[str, Decimal] = {}
    for household, ran in book.households().items():
        specs = ran if order is None else _in_order(ran, order)
        try:
            ledger = Ledger.from_state(book.ledgers[household])
        except InputError:
            if any(_traded(outcomes.get(spec.account_id)) for spec in specs):
                raise
            # A ledger its own accounts were rejected on (bad window memory, say) is carried
            # over as it was: the night wrote their reasons, and one household's bad rows never
            # stop the others' next book (book audit: the command died after the night, with
            # no firm_pnl.json and no next_book/).
            continue
        if washes is not None:
            washes.extend((household, m) for m in ledger.wash_matches)
        for spec in specs:
            outcome = outcomes.get(spec.account_id)
            if not isinstance(outcome, Solved) or not outcome.trades:
                continue
            for txn in outcome_transactions(outcome, account_type=spec.account_type):
                ledger.apply(txn)
                new_history.append(txn)
            flow = Decimal(0)
            for t in outcome.trades:
                flow += t.notional_usd if t.side in ("sell", "short") else -t.notional_usd
            cash[spec.account_id] = cents(spec.cash_usd + flow)
        ledgers[household] = ledger.state(as_of)
    for household, state in book.ledgers.items():
        ledgers.setdefault(household, state)
    accounts = [
        msgspec.structs.replace(a, cash_usd=cash[a.account_id]) if a.account_id in cash else a
        for a in book.accounts
    ]
    return Book(
        as_of=as_of,
        accounts=accounts,
        ledgers=ledgers,
        history=[*book.history, *new_history],
        declared=book.declared,
        quarantined=book.quarantined,  # rejected tonight, carried as read
        history_homes=book.history_homes,
    )
