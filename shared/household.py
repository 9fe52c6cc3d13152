"""Booking one account's night into its household ledger, touching only what it can touch.

A household's accounts trade in order (``docs/fleet.md``, Households): each account's trades are
booked into the household ledger through :class:`shared.ledger.Ledger` (full wash-sale rules,
IRC §1091, IRS Pub. 550) before its next sibling solves.  A household holds thousands of lots, but
one ticket can only relieve its own account's lots of the names it sells, match a loss with
replacement shares bought in the last 30 days (any account), or be washed by the window memory.
So only those lots go through the ledger; every other lot is carried over unchanged and in place,
and the result equals booking into the whole household (``tests/test_shared/test_household.py``
checks it lot for lot).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from shared.errors import InputError
from shared.messages import LedgerState, Lot, PendingLoss, Solved, Transaction
from shared.types import AccountType, LotMethod

if TYPE_CHECKING:
    from shared.ledger import Ledger


class Booked(NamedTuple):
    """A household ledger after booking, and which of its lots were carried over unchanged."""

    state: LedgerState
    #: Per lot of ``state``: the index of the lot of the ledger booked into that it *is* (carried
    #: over unchanged: the very object), or -1 (rebuilt or opened today); ``None`` when the whole
    #: household went through the ledger (every lot rebuilt).
    carried: list[int] | None


def book_outcome(ledger: LedgerState, outcome: Solved, *, account_type: AccountType) -> LedgerState:
    """The household ledger at the close of ``outcome.as_of`` with the outcome's trades booked.

    Args:
        ledger: the household ledger the account solved from.
        outcome: the account's solved outcome.
        account_type: the account's type.

    Returns:
        The ledger the household's next account starts from.

    Raises:
        LedgerError: a trade cannot be booked (names the transaction and the field).
        InputError: a lot of the ledger is malformed (names the account and the field).
    """
    return book_outcome_carried(ledger, outcome, account_type=account_type).state


def book_outcome_carried(
    ledger: LedgerState, outcome: Solved, *, account_type: AccountType
) -> Booked:
    """:func:`book_outcome`, also saying which lots were carried over unchanged (the worker
    stages the next sibling's ledger as a patch on the household's staged ledger with it).

    Raises:
        LedgerError: a trade cannot be booked (names the transaction and the field).
        InputError: a lot of the ledger is malformed (names the account and the field).
    """
    from shared.ledger import Ledger
    from shared.rebalance import outcome_transactions

    txns = outcome_transactions(outcome, account_type=account_type)
    keep = touchable_lots(ledger, txns, outcome.as_of)
    if keep is None:  # no safe merge: book into the whole household
        whole = Ledger.from_state(ledger)
        for txn in txns:
            whole.apply(txn)
        return Booked(whole.state(outcome.as_of), None)
    reduced = Ledger.from_state(
        msgspec.structs.replace(ledger, lots=[ledger.lots[i] for i in keep])
    )
    for txn in txns:
        reduced.apply(txn)
    return merge_lots(ledger, keep, reduced.state(outcome.as_of))


#: Lots bought at most this many days before the night stay in the reduced ledger: the 30-day
#: wash window of IRC §1091(a) (``shared.ledger.WASH_WINDOW_DAYS``) with a margin, so every
#: possible replacement lot of a loss sold today, and every lot a snapshot still lists among the
#: recent purchases, is in it.
ADVANCE_WINDOW_DAYS = 45


def touchable_lots(
    ledger: LedgerState, txns: list[Transaction], as_of: dt.date
) -> list[int] | None:
    """Indices (in order) of the household's lots that booking ``txns`` on ``as_of`` can read or
    change, or ``None`` when two of them share ``(account, symbol, lot_id)``.

    ``None`` too when a buy names the id of a lot already open in the account: the whole
    ledger then refuses it (or, after the lot sold out today, the merge could not tell the two
    apart).

    Kept: every lot of any account bought on or after ``as_of − ADVANCE_WINDOW_DAYS`` (a loss
    sale today is matched with replacement shares bought in the 30 days before it, in any
    account of the household, IRC §1091(a), Treas. Reg. §1.1091-1(c)); the trading account's
    lots of every symbol it sells or covers (the lots relieved, whatever the lot method) and of
    every lot id it names (so a buy reusing an open lot id is refused as on the whole ledger);
    and the account's first lot (its account type is checked against the trades'); and the
    lots of a pending loss's group bought from 30 days before its sale, which reading the
    ledger can still match with it (:func:`shared.ledger.reconcile_reach`). Older lots of other
    accounts, and of untraded names, can neither wash nor be washed nor be relieved today: they
    pass through unchanged.  The window memory (pending losses, recent purchases, identical
    groups) always goes whole.
    """
    from shared.ledger import reconcile_reach

    cut = as_of - dt.timedelta(days=ADVANCE_WINDOW_DAYS)
    reach = reconcile_reach(ledger)
    first, reached = reach if reach is not None else (cut, frozenset[str]())
    account = txns[0].account if txns else ""
    closed = {t.symbol for t in txns if t.side in ("sell", "cover")}
    named = {t.lot_id or t.id for t in txns}
    opened = {t.lot_id or t.id for t in txns if t.side in ("buy", "short")}
    keep: list[int] = []
    seen: set[tuple[str, str, str]] = set()
    first_own = True
    for i, lot in enumerate(ledger.lots):
        own = lot.account == account
        if (
            lot.trade_date >= cut
            or (own and (first_own or lot.symbol in closed or lot.lot_id in named))
            or (lot.trade_date >= first and lot.symbol.upper() in reached)
        ):
            key = (lot.account, lot.symbol, lot.lot_id)
            if key in seen or (own and lot.lot_id in opened):
                return None
            seen.add(key)
            keep.append(i)
        if own:
            first_own = False
    return keep


def merge_lots(whole: LedgerState, keep: list[int], booked: LedgerState) -> Booked:
    """The whole household's ledger after booking, from the booked reduced ledger, and where
    each of its lots comes from.

    The ledger snapshot lists lots in creation order (a split lot's parts in place, a lot sold
    out gone, new lots last), so each kept lot (``keep`` ascending) is replaced in place by the
    booked lots with its ``(account, symbol, lot_id)``, the stretches of other lots between them
    are copied over as they were (slices) and the lots opened today follow.  The window memory
    comes from the booked ledger (it held all of it).
    """
    by_key: dict[tuple[str, str, str], list[Lot]] = {}
    for lot in booked.lots:
        by_key.setdefault((lot.account, lot.symbol, lot.lot_id), []).append(lot)
    old = whole.lots
    lots: list[Lot] = []
    carried: list[int] = []
    start = 0
    for i in keep:
        lots.extend(old[start:i])
        carried.extend(range(start, i))
        lot = old[i]
        rebuilt = by_key.pop((lot.account, lot.symbol, lot.lot_id), ())
        lots.extend(rebuilt)
        carried.extend(itertools.repeat(-1, len(rebuilt)))
        start = i + 1
    lots.extend(old[start:])
    carried.extend(range(start, len(old)))
    for new in by_key.values():  # lots opened today (keys unseen before), in creation order
        lots.extend(new)
        carried.extend(itertools.repeat(-1, len(new)))
    return Booked(msgspec.structs.replace(booked, lots=lots), carried)


def history_purchases(
    history: Sequence[Transaction], as_of: dt.date
) -> dict[tuple[str, bool], dt.date]:
    """The latest purchase (short sale) date of each security in the last 30 days of a
    household's history, keyed by ``(SYMBOL, short)`` (tickers are case-insensitive): the
    rebalance sells no lot of its group at a loss until 30 days after it (IRC §1091(a))."""
    from shared.ledger import WASH_WINDOW_DAYS

    cut = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
    latest: dict[tuple[str, bool], dt.date] = {}
    for t in history:
        if t.side in ("buy", "short") and cut <= t.date <= as_of:
            key = (t.symbol.upper(), t.side == "short")
            if key not in latest or latest[key] < t.date:
                latest[key] = t.date
    return latest


def history_losses(
    history: Sequence[Transaction],
    lots: Sequence[Lot],
    identical: Sequence[Sequence[str]],
    as_of: dt.date,
    *,
    lot_method: LotMethod = "fifo",
    commission_bps: float = 0.0,
) -> list[PendingLoss]:
    """The loss sales (covers) of the last 30 days that a household's trade history shows, as
    the ledger's pending losses (IRC §1091(a); IRS Pub. 550): what a buy tonight would wash.

    The history's rows of the securities (and their substantially identical groups) sold in the
    window are replayed through a fresh :class:`~shared.ledger.Ledger` (lot methods, basis
    carried by earlier wash sales, reused lot ids, each fill's commission at ``commission_bps``)
    and its pending losses are returned.  A firm's export rarely reaches back to the purchase of
    every lot (firm-book audit: a history cut two months back dropped a $24,885 loss sale of ten
    days ago, and the night bought the name back): a taxable sale of the window that the replay
    cannot book, or that names no lot where the replay's open shares of the security differ from
    the book's (its FIFO took the oldest lot the history knows, not the one sold), is judged from
    the household's open ``lots`` instead: the rest of the lot it names (its basis decides), or,
    when it names none or its lot is gone, any lot of the security and side in its account at the
    highest basis per share (the lowest proceeds per share for a cover) that makes it a loss, so
    a possible loss is never missed; a sale whose cost neither shows is a loss of unknown size: a
    pending loss of $0 (acquired on the day of the sale), which keeps buys of its group out for
    30 days and disallows nothing.  So is a loss judged from the lots when the history has a
    purchase of its group within 30 days of the sale (it may already sit in that lot's basis),
    unless the book holds that purchase's every share as bought (:func:`_raw_in_book`).
    Transaction ids are unique per account only; symbols are matched regardless of case.

    Args:
        history: the household's transactions (any order; rows after ``as_of`` are ignored).
        lots: the household's open lots.
        identical: its substantially identical groups.
        as_of: the night.
        lot_method: relief of a replayed sale that names no lot.
        commission_bps: each replayed fill's commission (bps of its amount, to the cent).

    Returns:
        The pending losses, the replay's first.
    """
    from shared.ledger import WASH_WINDOW_DAYS, Ledger, cents

    cut = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
    rows = [t for t in history if t.date <= as_of]
    window = [t for t in rows if t.date >= cut]
    member_of = {s.upper(): {m.upper() for m in g} for g in identical for s in g}
    sold: set[str] = set()
    for t in window:
        if t.side in ("sell", "cover"):
            sold |= member_of.get(t.symbol.upper(), {t.symbol.upper()})
    if not sold:
        return []
    # Tickers are case-insensitive (docs/ledger.md): the replay sees them as the ledger's reader
    # writes them.
    replay = sorted(
        (
            t if t.symbol.isupper() else msgspec.structs.replace(t, symbol=t.symbol.upper())
            for t in rows
            if t.symbol.upper() in sold
        ),
        key=lambda t: t.date,
    )
    rate = Decimal(repr(commission_bps)) / 10_000
    book = Ledger(lot_method=lot_method, identical=identical)
    unbooked: list[Transaction] = []
    for t in replay:
        fee = cents(cents(t.quantity * t.price) * rate) if rate else Decimal(0)
        try:
            book.apply(t, commission=fee)
        except InputError:
            if t.side in ("sell", "cover") and t.date >= cut and t.account_type == "taxable":
                unbooked.append(t)
    replayed = book.state(as_of)
    out = [msgspec.structs.replace(p, symbol=p.symbol.upper()) for p in replayed.pending_losses]
    out = _unbooked_matches(book, out, lots, cut)
    # Where the history does not reach back to every lot, the replay's relief of a sale that
    # names no lot is a guess (FIFO took the oldest lot it knew, not the one sold): its open
    # shares of the security then differ from the book's, and the sale is judged from the lots.
    by_key: dict[tuple[str, str, bool], list[Lot]] = {}
    held: dict[tuple[str, str, bool], Decimal] = {}
    for x in lots:
        key = (x.account, x.symbol.upper(), x.short)
        by_key.setdefault(key, []).append(x)
        held[key] = held.get(key, Decimal(0)) + x.quantity
    for x in replayed.lots:
        key = (x.account, x.symbol.upper(), x.short)
        held[key] = held.get(key, Decimal(0)) - x.quantity
    by_id: dict[tuple[str, str], list[Lot]] = {}
    for x in lots:
        by_id.setdefault((x.account, x.lot_id), []).append(x)
    pending_txns = {(p.account, p.txn) for p in out} | {(t.account, t.id) for t in unbooked}
    for t in window:
        key = (t.account, t.symbol.upper(), t.side == "cover")
        if (
            t.side in ("sell", "cover")
            and t.account_type == "taxable"
            and not t.lot_id
            and held.get(key, Decimal(0)) != 0
            and (t.account, t.id) not in pending_txns
        ):
            unbooked.append(t)
    for t in unbooked:
        short = t.side == "cover"
        same = by_key.get((t.account, t.symbol.upper(), short), [])
        named = [x for x in same if t.lot_id and x.lot_id == t.lot_id]
        per_share = [(x.cost_basis_usd / x.quantity, x) for x in named or same if x.quantity > 0]
        loss, acquired = Decimal("0.00"), t.date
        if per_share:
            basis, lot = (min if short else max)(per_share, key=lambda bx: bx[0])
            loss = cents((t.price - basis if short else basis - t.price) * t.quantity)
            acquired = lot.acquired
            if loss <= 0 and named:
                continue  # the rest of the lot it names: a gain
            if loss <= 0:
                # The lot it relieved is gone and the others are gains: its cost is unknown.
                loss, acquired = Decimal("0.00"), t.date
        group = member_of.get(t.symbol.upper(), {t.symbol.upper()})
        if loss > 0 and any(
            r.side in ("buy", "short")
            and r.symbol.upper() in group
            and abs((r.date - t.date).days) <= WASH_WINDOW_DAYS
            # Only a loss sized from the rest of the lot it names keeps its size beside a
            # buy-back held as bought: one guessed from another lot (highest basis) may be a
            # gain (focused audit, 2026-12-08: a $5,000 gain washed into a 2-week-old lot).
            and not (named and _raw_in_book(r, by_id))
            for r in replay
        ):
            # A purchase within 30 days of it may already have taken the loss into its basis
            # (the lots would show it): the sale still restricts, with nothing to disallow
            # twice (review: a $300 loss already in the replacement's basis was counted again).
            # One whose lot the book holds as bought — no wash adjustment, not used, not tacked
            # (a client's purchase entered by hand) — carries none, and reading the book
            # washes the loss into it (review audit, 2026-12-08: a client's $1,210.19 loss sale
            # beside the client's buy-back was kept at $0 and nothing went into its basis).
            loss, acquired = Decimal("0.00"), t.date
        out.append(
            PendingLoss(
                txn=t.id,
                account=t.account,
                symbol=t.symbol.upper(),
                lot_id=t.lot_id,
                date_sold=t.date,
                quantity=t.quantity,
                loss_usd=loss,
                sold_quantity=t.quantity,
                acquired=min(acquired, t.date),
                short=short,
            )
        )
    return out


def _raw_in_book(purchase: Transaction, by_id: Mapping[tuple[str, str], list[Lot]]) -> bool:
    """Whether the book holds every share ``purchase`` opened, as bought: its lot (the id it
    names, else its own) is there whole, with no wash adjustment, not used as a replacement and
    not tacked — so it carries no loss yet."""
    parts = by_id.get((purchase.account, purchase.lot_id or purchase.id), [])
    # A buy naming no lot is looked up by its transaction id: a lot of another security that
    # happens to carry that id is not its lot (focused audit, 2026-12-08).
    parts = [x for x in parts if x.symbol.upper() == purchase.symbol.upper()]
    return (
        bool(parts)
        and sum((x.quantity for x in parts), Decimal(0)) == purchase.quantity
        and all(
            not x.wash_adjustment_usd and not x.replacement_used and x.acquired == x.trade_date
            for x in parts
        )
    )


def _unbooked_matches(
    book: Ledger, pending: list[PendingLoss], lots: Sequence[Lot], cut: dt.date
) -> list[PendingLoss]:
    """The replay's pending losses with the loss shares it matched to purchases that the book's
    ``lots`` hold *raw* put back (IRC §1091(a), (d)).

    The replay washes a window loss into a purchase of the 30 days before or after it that the
    history shows; when the book lists that purchase as a lot whose basis does not carry it —
    no part marked ``replacement_used``, no wash adjustment, ``acquired`` not tacked: a client's
    own purchase around a harvest, entered by hand (nightly audit, 2026-12-07) — the shares are
    returned as pending, and the ledger that reads the book
    (:meth:`shared.ledger.Ledger.from_state`) matches them with the book's own lot, once: its
    basis adjusted, its holding period tacked, marked used.  Left matched in the replay alone,
    the loss was in nobody's basis and the lot later absorbed another loss.

    A lot that shows the wash in any way (a ``LOTS.csv`` of ``taxview realized`` carries the
    adjustment but has no ``replacement_used`` column) is read as booked, and at most the shares
    the book still holds of a raw lot come back (the replay's replacement shares the client sold
    since took their part of the loss with them into that sale), oldest match first; each loss
    slice gets its own shares back (one sale relieving two parts of a split lot has two slices).
    A match with an IRA/Roth purchase comes back too: reading disallows it for good again (no
    basis moves) and marks the lot used.  Review audit, 2026-12-07.
    """
    held: dict[tuple[str, str], Decimal] = {}
    booked: set[tuple[str, str]] = set()
    for x in lots:
        key = (x.account, x.lot_id)
        if x.used_as_replacement or x.acquired != x.trade_date:
            booked.add(key)
        held[key] = held.get(key, Decimal(0)) + x.quantity
    room = {key: qty for key, qty in held.items() if key not in booked}  # raw lots' shares
    back: dict[int, Decimal] = {}  # loss slice → shares put back
    for m in book.wash_matches:
        key = (m.replacement_account, m.replacement_lot_id)
        if m.loss_slice is None or m.date_sold < cut or room.get(key, Decimal(0)) <= 0:
            continue
        qty = min(m.quantity, room[key])
        room[key] -= qty
        back[m.loss_slice] = back.get(m.loss_slice, Decimal(0)) + qty
    if not back:
        return pending
    sales = book.sales
    out = list(pending)
    claimed: set[int] = set()
    for idx, extra in sorted(back.items()):
        s = sales[idx]
        k = next(
            (
                k
                for k, p in enumerate(out)
                if k not in claimed
                and (p.account, p.txn, p.lot_id, p.sold_quantity, p.acquired)
                == (s.account, s.txn, s.lot_id, s.quantity, s.date_acquired)
            ),
            None,
        )
        if k is not None:  # the slice's unmatched shares are pending already
            claimed.add(k)
            p = out[k]
            out[k] = msgspec.structs.replace(p, quantity=min(p.sold_quantity, p.quantity + extra))
            continue
        out.append(
            PendingLoss(
                txn=s.txn,
                account=s.account,
                symbol=s.symbol.upper(),
                lot_id=s.lot_id,
                date_sold=s.date_sold,
                quantity=min(s.quantity, extra),
                loss_usd=s.cost_basis - s.proceeds,
                sold_quantity=s.quantity,
                acquired=s.date_acquired,
                short=s.short,
            )
        )
    return out
