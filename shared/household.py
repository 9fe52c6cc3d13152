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
from typing import NamedTuple

import msgspec

from shared.messages import LedgerState, Lot, Solved, Transaction
from shared.types import AccountType


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
    and the account's first lot (its account type is checked against the trades'). Older lots
    of other accounts, and of untraded names, can neither wash nor be washed nor be relieved
    today: they pass through unchanged.  The window memory (pending losses, recent purchases,
    identical groups) always goes whole.
    """
    cut = as_of - dt.timedelta(days=ADVANCE_WINDOW_DAYS)
    account = txns[0].account if txns else ""
    closed = {t.symbol for t in txns if t.side in ("sell", "cover")}
    named = {t.lot_id or t.id for t in txns}
    opened = {t.lot_id or t.id for t in txns if t.side in ("buy", "short")}
    keep: list[int] = []
    seen: set[tuple[str, str, str]] = set()
    first_own = True
    for i, lot in enumerate(ledger.lots):
        own = lot.account == account
        if lot.trade_date >= cut or (
            own and (first_own or lot.symbol in closed or lot.lot_id in named)
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
