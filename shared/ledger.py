"""The household tax-lot ledger: the source of truth for realized gains and wash sales.

A :class:`Ledger` applies a household's trades in order (every account, IRAs included) and
keeps every lot exact to the cent in :class:`~decimal.Decimal`.  The rules, with their sources
(the full write-up with every implementation decision is ``docs/ledger.md``):

* **Holding period** (IRC §1222, §1223; IRS Pub. 550 "Holding Period"; Rev. Rul. 66-7): the
  count starts the day after acquisition and includes the day of sale; a lot is long-term only
  when held *more than one year*.  See :func:`long_term_from`.
* **Lot relief** (Treas. Reg. §1.1012-1(c)): FIFO, HIFO or specific identification; a sell that
  names a lot always relieves that lot.  Quantities may be fractional.
* **Wash sales** (IRC §1091(a), (d); Treas. Reg. §1.1091-1; IRS Pub. 550 "Wash Sales"):
  household-wide, purchases 30 days before or after a loss sale, each replacement share
  absorbs at most one loss, matched in acquisition order, the disallowed loss is added to the
  replacement's basis and its holding period tacked; an IRA/Roth replacement disallows the loss
  for good (Rev. Rul. 2008-5).
* **Short sales** (IRC §1233(a), §1091(e)): a short lot's basis is its proceeds; a cover
  realizes a short-term gain or loss; a cover loss is washed by a new short (or purchase).
* **Commissions** (IRS Pub. 550 "Basis of Investment Property"; Form 8949 instructions): an
  optional ``commission`` of :meth:`Ledger.apply` goes into a bought lot's basis and comes off a
  sale's proceeds (split over the lots it relieves to the cent); ``taxview realized`` rows have
  none.

Money is rounded to the cent with ``ROUND_HALF_UP``; a partial relief takes the rounded share
of the lot's basis and leaves the remainder on the open lot, so totals reconcile exactly.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation

import msgspec

from shared.errors import InputError, LedgerError
from shared.messages import (
    LastPurchase,
    LedgerState,
    Lot,
    PendingLoss,
    RecentPurchase,
    Transaction,
)
from shared.types import AccountType, LotMethod, Term

#: IRC §1091(a): the wash-sale window reaches 30 days before and after the loss sale.
WASH_WINDOW_DAYS = 30

#: One cent: reported money is exact to the cent.
CENT = Decimal("0.01")

#: Account types whose sales are reported (everything else is tax-deferred/exempt).
TAXABLE: AccountType = "taxable"

_ACCOUNT_TYPES: frozenset[str] = frozenset({"taxable", "ira", "roth"})
_SIDES: frozenset[str] = frozenset({"buy", "sell", "short", "cover"})
_LOT_METHODS: frozenset[str] = frozenset({"fifo", "hifo", "specific"})
_ZERO = Decimal(0)
_ZERO_CENT = _ZERO.quantize(CENT)

#: Trade dates the ledger accepts.  Outside them the 30-day windows and the one-year holding
#: test would leave the calendar (``datetime.date`` ends at 9999-12-31), so an absurd date is a
#: row error on field ``date`` rather than a crash.
FIRST_DATE = dt.date(1900, 1, 1)
LAST_DATE = dt.date(2999, 12, 31)

#: Largest quantity (shares) and price (USD per share) of one row.  It keeps every amount well
#: inside ``Decimal``'s 28-digit context, so money always rounds to the cent without overflow.
MAX_QUANTITY = Decimal(10) ** 10
MAX_PRICE = Decimal(10) ** 10
#: Most decimal places of a quantity (fractional shares; a float's digits fit).  With at most 10
#: integer digits that is 28 significant digits, inside the 28-digit context, so a remainder of a
#: lot is never rounded back up to what was held: without the limit, selling 1e-29 then 1 share
#: out of 1 held passed, since 1 − 1e-29 rounds back to 1 (ledger audit).
MAX_QUANTITY_PLACES = 18


# --------------------------------------------------------------------------------------------
# Dates and money
# --------------------------------------------------------------------------------------------


def decimal_places(value: Decimal) -> int:
    """Decimal places of a finite ``value`` without its trailing zeros (``1.50`` → 1), read
    from its digits: no arithmetic, so ``1E-999999999`` cannot underflow to 0."""
    _, digits, exponent = value.as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    if not isinstance(exponent, int) or exponent >= 0 or not text:
        return 0
    trailing = len(digits) - len(text)
    return max(0, -exponent - trailing)


def _add_one_year(day: dt.date) -> dt.date:
    """The same calendar date a year later; Feb 29 rolls forward to Mar 1."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # Feb 29 in a leap year
        return dt.date(day.year + 1, 3, 1)


@functools.lru_cache(maxsize=8192)
def long_term_from(acquired: dt.date) -> dt.date:
    """First sale date on which a lot acquired on ``acquired`` is long-term.

    IRS Pub. 550 ("Holding Period"): start counting on the day *after* acquisition; the day of
    disposal is included; long-term means held *more than one year* (IRC §1222(3)).  So the lot
    must be held through the first anniversary of the day after acquisition: a lot bought on the
    last day of a month becomes long-term on the first day of the 13th month after it (Rev. Rul.
    66-7), e.g. bought 2023-02-28 → long-term from 2024-03-01; bought 2024-02-29 → 2025-03-01.

    Args:
        acquired: holding-period start (after any tacking, IRC §1223(3)).

    Returns:
        The first date of long-term holding.
    """
    return _add_one_year(acquired + dt.timedelta(days=1))


def is_long_term(acquired: dt.date, sold: dt.date) -> bool:
    """Whether shares acquired on ``acquired`` and sold on ``sold`` are long-term (IRC §1222)."""
    return sold >= long_term_from(acquired)


def cents(amount: Decimal) -> Decimal:
    """Round USD to the cent, half up (the Form 8949 convention used throughout)."""
    value = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    return value if value != 0 else _ZERO_CENT


def _amount(quantity: Decimal, price: Decimal) -> Decimal:
    """``quantity × price`` rounded half-up to the cent, rounded once.

    The product is taken exactly: the default 28-digit context would round a product of more
    significant digits first, and that second rounding can move it across a half cent.
    """
    digits = len(quantity.as_tuple().digits) + len(price.as_tuple().digits)
    return cents(Context(prec=max(digits, 28)).multiply(quantity, price))


def reconcile_reach(
    state: LedgerState, groups: Iterable[Iterable[str]] = ()
) -> tuple[dt.date, frozenset[str]] | None:
    """How far back reading ``state`` can reach for a pending loss's replacement shares.

    :meth:`Ledger.from_state` matches a pending loss of the window memory with unused shares of
    its group bought from 30 days before the sale (IRC §1091(a); IRS Pub. 550, "Wash Sales": "30
    days before or after the sale"), so a reduced snapshot (one account's rebalance, booking
    one ticket) reads the same as the whole household only if it keeps the lots of those groups
    bought since the earliest pending sale's day − 30, up to 60 days before ``as_of`` — older
    than the 30-day window such a snapshot otherwise keeps.

    Args:
        state: the household ledger snapshot.
        groups: substantially identical groups beside ``state.identical`` (an account's own).

    Returns:
        ``(first trade date, upper-cased symbols of the pending losses' groups)``, or ``None``
        when the snapshot has no pending loss.
    """
    if not state.pending_losses:
        return None
    member_of = _merge_groups([*state.identical, *groups])
    keys = {member_of.get(p.symbol.upper(), p.symbol.upper()) for p in state.pending_losses}
    symbols = {s for s, key in member_of.items() if key in keys} | {
        p.symbol.upper() for p in state.pending_losses
    }
    first = min(p.date_sold for p in state.pending_losses) - dt.timedelta(days=WASH_WINDOW_DAYS)
    return first, frozenset(symbols)


def _share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """``total × part / whole`` rounded half-up to the cent, rounded once (``whole`` > 0).

    Computed exactly in integers: in the default 28-digit context ``total × part`` is rounded
    first when the amount and a fractional share count have more digits than that together
    (a $12,485,536,484.85 basis, 89.52014531377705 of 179.0402906275541 shares), and that
    second rounding moved the exact half cent 6,242,768,242.425 down to .42.
    """
    if part == whole:
        # Whole cents even when a loaded lot's basis carries more digits (a broker's per-share
        # basis times the shares): a slice is a Form 8949 line (fuzz audit: a basis of
        # 1E-9 made a slice's gain -10841.619999999).
        return cents(total)
    tn, td = total.as_integer_ratio()
    pn, pd = part.as_integer_ratio()
    wn, wd = whole.as_integer_ratio()
    num = tn * pn * wd * 100
    den = td * pd * wn
    q, r = divmod(abs(num), den)
    if 2 * r >= den:  # ROUND_HALF_UP: a tie goes away from zero
        q += 1
    return cents(Decimal(-q if num < 0 else q).scaleb(-2))


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


class SaleSlice(msgspec.Struct, frozen=True, kw_only=True):
    """One lot slice sold (or short lot covered): one Form 8949 line.

    A frozen msgspec struct rather than a frozen dataclass: a ledger creates one per lot sold,
    and the struct is built ~8× faster (2.3 → 0.3 µs).

    For a long slice ``proceeds`` is the sale price × shares and ``cost_basis`` the lot's
    (wash-adjusted) basis.  For a covered short (IRC §1233) ``proceeds`` is the short lot's
    basis, i.e. what the short sale brought in (less any washed loss carried into it), and
    ``cost_basis`` is what covering cost; ``date_acquired`` is the day the short was opened and
    ``term`` is always ``short``.

    ``disallowed_loss`` is the whole wash-sale adjustment (Form 8949 code W, column (g)),
    *including* the part that is ``permanently_disallowed`` because the replacement was bought in
    an IRA/Roth.  ``gain = proceeds − cost_basis + disallowed_loss`` (USD).
    """

    txn: str
    date_sold: dt.date
    account: str
    account_type: AccountType
    symbol: str
    lot_id: str
    quantity: Decimal
    date_acquired: dt.date
    term: Term
    proceeds: Decimal
    cost_basis: Decimal
    adjustment_code: str
    disallowed_loss: Decimal
    permanently_disallowed: Decimal
    gain: Decimal
    short: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WashMatch:
    """One match of loss shares with replacement shares (audit trail of IRC §1091(d)).

    ``disallowed_usd`` was added to the replacement's basis (subtracted from a short
    replacement's), or lost for good when ``permanent`` (an IRA/Roth replacement).
    """

    loss_txn: str
    loss_account: str
    loss_lot_id: str
    date_sold: dt.date
    replacement_account: str
    replacement_lot_id: str
    replacement_date: dt.date
    quantity: Decimal
    disallowed_usd: Decimal
    permanent: bool
    #: The loss's slice in :attr:`Ledger.sales` (``None``: a snapshot's pending loss, whose
    #: slice was booked by an earlier ledger).  One sale relieving two parts of a lot has two
    #: slices under one ``loss_txn`` and ``loss_lot_id``.
    loss_slice: int | None = None
    #: The security sold at a loss (the replacement may be another of its identical group).
    symbol: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WashRestrictions:
    """What the household may not do on ``as_of`` without creating a wash sale (IRC §1091).

    Attributes:
        as_of: the day the restrictions hold for.
        no_buy: symbol → reason: a buy today would wash a loss sale of the last 30 days (every
            member of a substantially identical group is listed).
        no_short: symbol → reason: a short sale today would wash a loss on a cover of the last
            30 days (IRC §1091(e)).
        no_loss_sale_lots: (account, lot_id) → reason: selling (covering) this taxable lot at a
            loss today would be washed by a purchase (short) of the same or an identical security
            in the household within the last 30 days; the lot's own purchase does not count.
    """

    as_of: dt.date
    no_buy: dict[str, str] = field(default_factory=dict)
    no_short: dict[str, str] = field(default_factory=dict)
    no_loss_sale_lots: dict[tuple[str, str], str] = field(default_factory=dict)

    def is_blocked_buy(self, symbol: str) -> bool:
        """Whether buying ``symbol`` on ``as_of`` would wash a recent loss sale."""
        return symbol in self.no_buy

    def is_blocked_loss_sale(self, account: str, lot_id: str) -> bool:
        """Whether selling lot ``lot_id`` of ``account`` at a loss on ``as_of`` would be washed."""
        return (account, lot_id) in self.no_loss_sale_lots


# --------------------------------------------------------------------------------------------
# Internal mutable records
# --------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Lot:
    """An open (sub-)lot.  Splits of one purchase share ``lot_id``.

    ``basis`` is the whole sub-lot's basis in USD (for a short lot: its proceeds, less washed
    losses).  ``used`` marks shares that already absorbed a loss as replacement shares.
    """

    account: str
    account_type: AccountType
    symbol: str
    lot_id: str
    quantity: Decimal
    trade_date: dt.date
    acquired: dt.date
    basis: Decimal
    wash_adj: Decimal
    short: bool
    used: bool
    seq: int
    txn: str = ""
    #: Order among the splits of one purchase: a carved-off part takes the current position
    #: and the remainder moves one step later, so (seq, sub) order is creation order.
    sub: int = 0

    def clone(self) -> _Lot:
        return replace(self)


@dataclass(slots=True, eq=False)
class _Pending:
    """A taxable loss slice inside its 30-day window with shares not yet matched."""

    txn: str
    account: str
    symbol: str
    lot_id: str
    date_sold: dt.date
    unmatched: Decimal
    loss: Decimal
    sold_qty: Decimal
    acquired: dt.date
    short: bool
    seq: int
    slice_index: int | None

    def clone(self) -> _Pending:
        return replace(self)


# --------------------------------------------------------------------------------------------
# Identical-security groups
# --------------------------------------------------------------------------------------------


def _merge_groups(groups: Iterable[Iterable[str]]) -> dict[str, str]:
    """upper-cased symbol → canonical group key (the smallest member, upper-cased), merging
    overlapping groups.  Tickers are case-insensitive (docs/ledger.md): a group declared
    ``spr=UGP`` links a purchase of SPR to a loss sale of UGP (review: declared on a book's
    account row in lower case, it linked them in the solve, which spells symbols as the market
    does, but not in the ledger that booked the night — $57.46 of disallowed loss went
    neither to a deduction nor into the replacement's basis)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for group in groups:
        members = [s.strip().upper() for s in group if s.strip()]
        for s in members:
            find(s)
        for a, b in itertools.pairwise(members):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    return {s: find(s) for s in parent}


# --------------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------------


class Ledger:
    """A household's tax lots across all its accounts, with household-wide wash sales.

    Args:
        lot_method: default relief for sells that name no lot (``fifo``, ``hifo``; with
            ``specific`` every sell must name its lot).
        identical: groups of substantially identical securities (IRS Pub. 550), e.g.
            ``[["GOOG", "GOOGL"]]``.
        household_id: carried into :meth:`state`.

    Raises:
        InputError: on an unknown lot method.
    """

    def __init__(
        self,
        *,
        lot_method: LotMethod = "fifo",
        identical: Iterable[Iterable[str]] = (),
        household_id: str = "",
    ) -> None:
        if lot_method not in _LOT_METHODS:
            raise InputError(
                f"unknown lot method {lot_method!r}; use fifo, hifo or specific",
                account=household_id or None,
                field="lot_method",
            )
        self.lot_method: LotMethod = lot_method
        self.household_id = household_id
        self._identical: list[list[str]] = [
            [s.strip() for s in g if s.strip()] for g in (list(x) for x in identical)
        ]
        self._identical = [g for g in self._identical if g]
        self._group_of: dict[str, str] = _merge_groups(self._identical)
        #: group key → its members as declared (the restrictions name them so).
        self._members: dict[str, set[str]] = {}
        for members in self._identical:
            for sym in members:
                self._members.setdefault(self._group_of[sym.upper()], set()).add(sym)
        self._lots: dict[tuple[str, str], list[_Lot]] = {}
        self._keys_by_group: dict[str, set[tuple[str, str]]] = {}
        #: (account, lot_id) → number of open sub-lots, to refuse a duplicate lot id.
        self._ids: dict[tuple[str, str], int] = {}
        self._pending: dict[str, list[_Pending]] = {}
        self._account_types: dict[str, AccountType] = {}
        self._sales: list[SaleSlice] = []
        self._matches: list[WashMatch] = []
        #: (symbol, short) → the latest purchase / short sale date carried in from a snapshot
        #: or applied since, held or not (the rebalance's memory, :class:`LastPurchase`).
        self._last_buys: dict[tuple[str, bool], dt.date] = {}
        self._last_date: dt.date | None = None
        self._seq = 0

    # ---------------------------------------------------------------- construction / snapshot

    @classmethod
    def from_state(cls, state: LedgerState, *, lot_method: LotMethod = "fifo") -> Ledger:
        """Resume a ledger from a snapshot taken by :meth:`state`.

        Args:
            state: the household's ledger at the close of ``state.as_of``.
            lot_method: default relief method for sells that name no lot.

        Returns:
            A ledger that accepts transactions dated on or after ``state.as_of``.

        Raises:
            InputError: a lot of the snapshot is malformed (names the lot).
        """
        ledger = cls(
            lot_method=lot_method, identical=state.identical, household_id=state.household_id
        )
        ledger._last_date = state.as_of
        recent = {(p.account, p.symbol, p.lot_id): p.txn for p in state.recent_purchases}
        types = ledger._account_types
        seq = ledger._seq
        # An open lot's trade date is a purchase (short sale) of its security: noted in the
        # window memory like ``last_purchases``, so that selling the lot later does not erase the
        # purchase from the snapshots that follow (a book may list window lots and no
        # ``last_purchases``).  The rebalance refuses a loss sale within 30 days after any
        # household purchase, sold again or not (IRC §1091(a): "has acquired"; docs/rebalance.md).
        window_start = state.as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
        bought: list[Lot] = []
        # The parts of one purchase that wash sales split share its ``seq`` (their ``sub`` in
        # snapshot order), as in the ledger that wrote the snapshot: FIFO orders one day's
        # purchases by ``seq`` and the parts of one purchase by their tacked start
        # (:func:`_fifo_key`), so a resumed ledger relieves them in the same order (review: a
        # part's own ``seq`` relieved a later-tacked part first, short-term instead of long).
        purchase: dict[tuple[str, str, bool], tuple[int, int]] = {}
        for i, lot in enumerate(state.lots):
            if lot.quantity <= 0:
                raise InputError(
                    f"lot {lot.lot_id} has quantity {lot.quantity}; it must be > 0 "
                    "(short lots are flagged by `short`, not a negative quantity)",
                    account=lot.account,
                    field=f"lots[{i}].quantity",
                )
            known = types.setdefault(lot.account, lot.account_type)
            if known != lot.account_type or known not in _ACCOUNT_TYPES:
                raise InputError(
                    f"unknown account type {lot.account_type!r}"
                    if lot.account_type not in _ACCOUNT_TYPES
                    else f"account is {known} in one lot and {lot.account_type} in another",
                    account=lot.account,
                    field=f"lots[{i}].account_type",
                )
            key = (lot.account, lot.lot_id, lot.short)
            if key in purchase:
                lot_seq, sub = purchase[key]
                sub += 1
            else:
                seq += 1
                lot_seq, sub = seq, 0
            purchase[key] = (lot_seq, sub)
            if lot.trade_date >= window_start:
                bought.append(lot)
            # A sub-lot is available as replacement unless the snapshot says it already absorbed
            # a loss (each replacement share absorbs at most one loss).
            ledger._add_lot(
                _Lot(
                    account=lot.account,
                    account_type=lot.account_type,
                    symbol=lot.symbol,
                    lot_id=lot.lot_id,
                    quantity=lot.quantity,
                    trade_date=lot.trade_date,
                    acquired=lot.acquired,
                    basis=lot.cost_basis_usd,
                    wash_adj=lot.wash_adjustment_usd,
                    short=lot.short,
                    used=lot.used_as_replacement,
                    seq=lot_seq,
                    sub=sub,
                    txn=recent.get((lot.account, lot.symbol, lot.lot_id), lot.lot_id),
                )
            )
        ledger._seq = seq
        for lp in state.last_purchases:
            ledger._note_purchase(lp.symbol, lp.short, lp.date)
        for lot in bought:
            ledger._note_purchase(lot.symbol, lot.short, lot.trade_date)
        for p in state.recent_purchases:
            ledger._account_types.setdefault(p.account, p.account_type)
        for pl in state.pending_losses:
            if pl.quantity <= 0 or pl.sold_quantity <= 0 or pl.quantity > pl.sold_quantity:
                raise InputError(
                    f"pending loss {pl.txn}/{pl.lot_id} has quantity {pl.quantity} of "
                    f"{pl.sold_quantity}",
                    account=pl.account,
                    field="pending_losses.quantity",
                )
            ledger._account_types.setdefault(pl.account, TAXABLE)
            ledger._pending.setdefault(ledger.group(pl.symbol), []).append(
                _Pending(
                    txn=pl.txn,
                    account=pl.account,
                    symbol=pl.symbol,
                    lot_id=pl.lot_id,
                    date_sold=pl.date_sold,
                    unmatched=pl.quantity,
                    loss=pl.loss_usd,
                    sold_qty=pl.sold_quantity,
                    acquired=pl.acquired,
                    short=pl.short,
                    seq=ledger._next_seq(),
                    slice_index=None,
                )
            )
        ledger._reconcile()
        return ledger

    def _reconcile(self) -> None:
        """Match a snapshot's pending losses with the unused replacement shares it holds beside
        them (IRC §1091(a), (d); Treas. Reg. §1.1091-1(c)).

        A ledger never writes such a snapshot: a purchase within 30 days before or after a loss
        sale absorbs its unmatched shares when either is booked (:meth:`_replace_backward`,
        :meth:`_replace_forward`).  A book edited by hand can: a client's own purchase after a
        harvest, entered as a lot, left the loss pending and the lot unadjusted — the wash sale
        missed, and the lot free to absorb another loss later (nightly audit, 2026-12-07).
        So can one with a purchase entered late, dated in the 30 days *before* a harvest (the
        client's own order of that week, keyed in after the night sold the loss).  Each pending
        loss, oldest sale first, is matched as the ledger would have matched it had it known
        the purchase (:meth:`_replace_backward` at the sale, then :meth:`_replace_forward`):
        with the unused shares of its group in any account of the household bought (a cover
        loss: bought or shorted) from 30 days before the sale through 30 days after it, not
        shares of the sold lot's own purchase, in acquisition order.  A snapshot a ledger wrote
        holds no such pair (the ledger matched them when it booked the later of the two), so it
        is left as it is; :func:`reconcile_reach` says which lots a reduced snapshot must keep
        for this to read the same as the whole household.
        """
        window = dt.timedelta(days=WASH_WINDOW_DAYS)
        for group in list(self._pending):
            for pending in sorted(self._pending[group], key=lambda x: (x.date_sold, x.seq)):
                start, end = pending.date_sold - window, pending.date_sold + window
                candidates = [
                    lot
                    for key in self._keys_by_group.get(group, set())
                    for lot in self._lots.get(key, [])
                    if not lot.used
                    and start <= lot.trade_date <= end
                    and (pending.short or not lot.short)
                    and not (  # the unsold rest of the sold lot's own purchase
                        lot.account == pending.account
                        and lot.symbol.upper() == pending.symbol.upper()
                        and lot.lot_id == pending.lot_id
                        # a lot bought after the sale under the same id is a new purchase
                        # (review audit, 2026-12-07 eighth session: a reused id went unwashed)
                        and lot.trade_date <= pending.date_sold
                    )
                ]
                candidates.sort(key=lambda x: (x.trade_date, x.seq, x.sub))
                for lot in candidates:
                    if pending.unmatched <= 0:
                        break
                    self._match(pending, lot)
            left = [p for p in self._pending[group] if p.unmatched > 0]
            if left:
                self._pending[group] = left
            else:
                del self._pending[group]

    def state(self, as_of: dt.date) -> LedgerState:
        """Snapshot: every open lot (IRA/Roth flagged by ``account_type``), the loss sales still
        inside their 30-day window with unmatched shares, the purchases of the last 30 days
        whose shares can still serve as replacements (IRC §1091(a)), and the latest purchase
        (short sale) date of every security bought (sold short) in the last 30 days, held or
        not (:class:`~shared.messages.LastPurchase`, for the rebalance).

        Args:
            as_of: the close the snapshot describes.

        Returns:
            A wire :class:`~shared.messages.LedgerState`.
        """
        lots: list[Lot] = []
        recent: list[RecentPurchase] = []
        # In creation order, so a resumed ledger orders same-day lots exactly as this one.
        ordered = sorted(
            (lot for group in self._lots.values() for lot in group), key=lambda x: (x.seq, x.sub)
        )
        for lot in ordered:
            lots.append(self._lot_out(lot))
            if not lot.used and 0 <= (as_of - lot.trade_date).days <= WASH_WINDOW_DAYS:
                recent.append(
                    RecentPurchase(
                        txn=lot.txn,
                        account=lot.account,
                        account_type=lot.account_type,
                        symbol=lot.symbol,
                        lot_id=lot.lot_id,
                        date=lot.trade_date,
                        quantity=lot.quantity,
                        short=lot.short,
                    )
                )
        last = dict(self._last_buys)
        for lot in ordered:
            key = (lot.symbol, lot.short)
            if key not in last or last[key] < lot.trade_date:
                last[key] = lot.trade_date
        window_start = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
        purchases = [
            LastPurchase(symbol=symbol, date=date, short=short)
            for (symbol, short), date in sorted(last.items())
            if window_start <= date <= as_of
        ]
        pending = [
            PendingLoss(
                txn=p.txn,
                account=p.account,
                symbol=p.symbol,
                lot_id=p.lot_id,
                date_sold=p.date_sold,
                quantity=p.unmatched,
                loss_usd=p.loss,
                sold_quantity=p.sold_qty,
                acquired=p.acquired,
                short=p.short,
            )
            for p in sorted(
                (p for group in self._pending.values() for p in group), key=lambda x: x.seq
            )
            if p.unmatched > 0 and 0 <= (as_of - p.date_sold).days <= WASH_WINDOW_DAYS
        ]
        return LedgerState(
            as_of=as_of,
            household_id=self.household_id,
            lots=lots,
            pending_losses=pending,
            recent_purchases=recent,
            identical=[list(g) for g in self._identical],
            last_purchases=purchases,
        )

    def copy(self) -> Ledger:
        """An independent copy (for "what if" checks); slices are immutable and shared."""
        new = Ledger.__new__(Ledger)
        new.lot_method = self.lot_method
        new.household_id = self.household_id
        new._identical = [list(g) for g in self._identical]
        new._group_of = dict(self._group_of)
        new._members = {k: set(v) for k, v in self._members.items()}
        new._lots = {k: [lot.clone() for lot in v] for k, v in self._lots.items()}
        new._keys_by_group = {k: set(v) for k, v in self._keys_by_group.items()}
        new._ids = dict(self._ids)
        new._pending = {k: [p.clone() for p in v] for k, v in self._pending.items()}
        new._account_types = dict(self._account_types)
        new._sales = list(self._sales)
        new._matches = list(self._matches)
        new._last_buys = dict(self._last_buys)
        new._last_date = self._last_date
        new._seq = self._seq
        return new

    # ---------------------------------------------------------------- queries

    def group(self, symbol: str) -> str:
        """The substantially-identical group key of ``symbol``, in any case (itself,
        upper-cased, when undeclared): tickers are case-insensitive (docs/ledger.md), so
        ``bmo`` and ``BMO`` are one security whether or not a group names it (review: an
        unrelated group naming ``bmo`` used to decide whether they were)."""
        upper = symbol.upper()
        return self._group_of.get(upper, upper)

    def members(self, symbol: str) -> set[str]:
        """Every declared member of ``symbol``'s group (at least ``symbol`` itself)."""
        return set(self._members.get(self.group(symbol), set())) | {symbol}

    @property
    def sales(self) -> list[SaleSlice]:
        """Every realized slice of taxable accounts, in order, with wash adjustments as they
        stand now (a later purchase can wash an earlier sale)."""
        return list(self._sales)

    @property
    def wash_matches(self) -> list[WashMatch]:
        """Every loss-to-replacement match made so far, in order."""
        return list(self._matches)

    @property
    def last_date(self) -> dt.date | None:
        """Date of the last transaction applied (or the snapshot's ``as_of``)."""
        return self._last_date

    def account_type(self, account: str) -> AccountType | None:
        """The type of ``account`` once the ledger has seen it."""
        return self._account_types.get(account)

    def open_lots(self, account: str | None = None) -> list[Lot]:
        """Open lots (of one account, or all), in relief-index order per (account, symbol).

        Short lots have ``short=True`` and a positive quantity; their ``cost_basis_usd`` is the
        short sale's proceeds less any washed loss carried into them.
        """
        return [
            self._lot_out(lot)
            for key in sorted(self._lots)
            if account is None or key[0] == account
            for lot in self._lots[key]
        ]

    def restrictions(self, as_of: dt.date, *, account: str | None = None) -> WashRestrictions:
        """What may not be traded on ``as_of`` without a wash sale (IRC §1091; IRS Pub. 550).

        * ``no_buy``: a loss sale of the last 30 days (inclusive) still has shares no
          replacement absorbed, so a buy of any member of its group would wash it.
        * ``no_short``: the same for losses on covering a short (IRC §1091(e)).
        * ``no_loss_sale_lots``: taxable lots whose sale at a loss today would be washed by a
          purchase of the last 30 days still available as replacement, excluding the lot's own
          purchase (the sold shares and the unsold rest of their purchase never replace them).

        Args:
            as_of: the trading day.
            account: list ``no_loss_sale_lots`` of this account only (default: every account);
                ``no_buy`` and ``no_short`` are household-wide either way.

        Returns:
            The restrictions, with a human reason for each.
        """
        no_buy: dict[str, str] = {}
        no_short: dict[str, str] = {}
        for group, pend in self._pending.items():
            for p in pend:
                if p.unmatched <= 0 or not 0 <= (as_of - p.date_sold).days <= WASH_WINDOW_DAYS:
                    continue
                what = "cover" if p.short else "loss sale"
                reason = (
                    f"{what} of {_qty(p.unmatched)} sh {p.symbol} in acct {p.account} on "
                    f"{p.date_sold} (IRC §1091)"
                )
                # Every spelling a caller may look up: as declared and upper-cased.
                named = self._members.get(group, set()) | {p.symbol}
                for sym in sorted(named | {s.upper() for s in named}):
                    no_buy.setdefault(sym, reason)
                    if p.short:
                        no_short.setdefault(sym, reason)
        blocked: dict[tuple[str, str], str] = {}
        window_start = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
        for group in sorted(self._keys_by_group):
            lots = [lot for key in sorted(self._keys_by_group[group]) for lot in self._lots[key]]
            recent = [
                lot for lot in lots if not lot.used and window_start <= lot.trade_date <= as_of
            ]
            if not recent:
                continue
            recent.sort(key=lambda x: (x.trade_date, x.seq, x.sub))
            # The reason text is written once per replacement lot, and only when it blocks one.
            reasons: dict[int, str] = {}
            for lot in lots:
                key = (lot.account, lot.lot_id)
                if (
                    lot.account_type != TAXABLE
                    or key in blocked
                    or (account is not None and lot.account != account)
                ):
                    continue
                for k, r in enumerate(recent):
                    if (r.short and not lot.short) or _same_purchase(r, lot):
                        continue
                    if k not in reasons:
                        reasons[k] = (
                            f"{'short sale' if r.short else 'purchase'} of {_qty(r.quantity)} "
                            f"sh {r.symbol} in acct {r.account} on {r.trade_date} (IRC §1091)"
                        )
                    blocked[key] = reasons[k]
                    break
        return WashRestrictions(
            as_of=as_of, no_buy=no_buy, no_short=no_short, no_loss_sale_lots=blocked
        )

    # ---------------------------------------------------------------- applying trades

    def apply_all(self, txns: Iterable[Transaction]) -> None:
        """Apply transactions in order (see :meth:`apply`).

        Raises:
            LedgerError: the first bad transaction; the ones before it stay applied.
        """
        for txn in txns:
            self.apply(txn)

    def apply(self, txn: Transaction, *, commission: Decimal = _ZERO) -> list[SaleSlice]:
        """Apply one trade with the full rules; the ledger is unchanged if it raises.

        Args:
            txn: the trade.  ``lot_id`` names the lot a buy/short creates (default: ``id``) or
                the lot a sell/cover relieves (default: the lot method).
            commission: what the trade cost in commissions and fees, USD in whole cents (not a
                column of ``taxview realized``'s input: its rows carry none, so they add none).
                IRS Pub. 550 ("Basis of Investment Property", "How To Figure Gain or Loss") and
                the Form 8949 instructions: a purchase's commission is part of the lot's cost
                basis, a sale's reduces the amount realized.  So a buy adds it to the new lot's
                basis; a sell takes it off the proceeds, split over the lots it relieves pro
                rata by shares (cumulatively rounded, so the slices' commissions add up to it
                exactly); a short sale takes it off the short lot's proceeds (its basis) and a
                cover adds it to the cost of covering.

        Returns:
            The slices this trade realized (IRA/Roth slices included, flagged by
            ``account_type``, with no wash adjustment), as they stand after this trade.  A buy
            returns no slices; the earlier sales it washed are updated in :attr:`sales`.

        Raises:
            LedgerError: a bad row, naming ``txn.id`` and the field: unknown side or account
                type, quantity ≤ 0, negative or non-finite price, a date before the previous
                transaction, a sell of more than is held, an unknown lot; a commission that
                is negative, not finite or not whole cents (field ``commission``).
        """
        side, account_type = self._validate(txn)
        if commission:
            _check_commission(txn, commission)
        advanced = self._last_date is None or txn.date > self._last_date
        out: list[SaleSlice] = []
        if side in ("buy", "short"):
            self._open(txn, account_type, short=side == "short", commission=commission)
        else:
            out = self._close(txn, account_type, short=side == "cover", commission=commission)
        # Only after success, so a refused row leaves the window memory untouched.
        if advanced:
            self._prune(txn.date)
        self._last_date = txn.date
        self._account_types.setdefault(txn.account, account_type)
        return out

    def _prune(self, today: dt.date) -> None:
        """Forget loss sales whose 30-day window closed before ``today`` (IRC §1091(a))."""
        start = today - dt.timedelta(days=WASH_WINDOW_DAYS)
        for group in list(self._pending):
            live = [p for p in self._pending[group] if p.unmatched > 0 and p.date_sold >= start]
            if live:
                self._pending[group] = live
            else:
                del self._pending[group]

    # ---------------------------------------------------------------- internals: validation

    def _validate(self, txn: Transaction) -> tuple[str, AccountType]:
        row = txn.id
        if not txn.account:
            raise LedgerError("account is empty", row=row, field="account")
        if not txn.symbol:
            raise LedgerError("symbol is empty", row=row, field="symbol", account=txn.account)
        side = str(txn.side).lower()
        if side not in _SIDES:
            raise LedgerError(
                f"unknown side {txn.side!r}; use buy, sell, short or cover",
                row=row,
                field="side",
                account=txn.account,
            )
        acct_type = str(txn.account_type).lower()
        if acct_type not in _ACCOUNT_TYPES:
            raise LedgerError(
                f"unknown account type {txn.account_type!r}; use taxable, ira or roth",
                row=row,
                field="account_type",
                account=txn.account,
            )
        account_type: AccountType = (
            "taxable" if acct_type == "taxable" else "ira" if acct_type == "ira" else "roth"
        )
        known = self._account_types.get(txn.account)
        if known is not None and known != account_type:
            raise LedgerError(
                f"account {txn.account} is {known} in earlier rows, not {account_type}",
                row=row,
                field="account_type",
                account=txn.account,
            )
        try:
            q_ok = txn.quantity.is_finite() and txn.quantity > 0
        except InvalidOperation:  # pragma: no cover - signalling NaN
            q_ok = False
        if not q_ok:
            raise LedgerError(
                f"quantity must be a positive number of shares, got {txn.quantity}",
                row=row,
                field="quantity",
                account=txn.account,
            )
        if txn.quantity > MAX_QUANTITY:
            raise LedgerError(
                f"quantity {txn.quantity} is more than {MAX_QUANTITY:,} shares",
                row=row,
                field="quantity",
                account=txn.account,
            )
        exponent = txn.quantity.as_tuple().exponent  # a cheap test first: apply is hot
        if (
            isinstance(exponent, int)
            and exponent < -MAX_QUANTITY_PLACES
            and decimal_places(txn.quantity) > MAX_QUANTITY_PLACES
        ):
            raise LedgerError(
                f"quantity {txn.quantity} has more than {MAX_QUANTITY_PLACES} decimal places",
                row=row,
                field="quantity",
                account=txn.account,
            )
        try:
            p_ok = txn.price.is_finite() and txn.price >= 0
        except InvalidOperation:  # pragma: no cover - signalling NaN
            p_ok = False
        if not p_ok:
            raise LedgerError(
                f"price must be a number ≥ 0, got {txn.price}",
                row=row,
                field="price",
                account=txn.account,
            )
        if txn.price > MAX_PRICE:
            raise LedgerError(
                f"price {txn.price} is more than {MAX_PRICE:,} per share",
                row=row,
                field="price",
                account=txn.account,
            )
        if not FIRST_DATE <= txn.date <= LAST_DATE:
            raise LedgerError(
                f"date {txn.date} is outside {FIRST_DATE} to {LAST_DATE}",
                row=row,
                field="date",
                account=txn.account,
            )
        if self._last_date is not None and txn.date < self._last_date:
            raise LedgerError(
                f"date {txn.date} is before the previous transaction's {self._last_date}; "
                "transactions must be in date order",
                row=row,
                field="date",
                account=txn.account,
            )
        return side, account_type

    # ---------------------------------------------------------------- internals: lots

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _add_lot(self, lot: _Lot) -> None:
        key = (lot.account, lot.symbol)
        bucket = self._lots.get(key)
        if bucket is None:  # a new (account, symbol): index it under its group once
            self._lots[key] = [lot]
            self._keys_by_group.setdefault(self.group(lot.symbol), set()).add(key)
        else:
            bucket.append(lot)
        ident = (lot.account, lot.lot_id)
        self._ids[ident] = self._ids.get(ident, 0) + 1

    def _remove_lot(self, lot: _Lot) -> None:
        key = (lot.account, lot.symbol)
        lots = self._lots[key]
        lots.remove(lot)
        ident = (lot.account, lot.lot_id)
        self._ids[ident] -= 1
        if not self._ids[ident]:
            del self._ids[ident]
        if not lots:
            del self._lots[key]
            keys = self._keys_by_group[self.group(lot.symbol)]
            keys.discard(key)
            if not keys:
                del self._keys_by_group[self.group(lot.symbol)]

    def _split(self, lot: _Lot, quantity: Decimal) -> _Lot:
        """Carve ``quantity`` shares off ``lot`` into a new sub-lot placed just before it (same
        ``lot_id``, pro-rata basis rounded to the cent, the remainder staying on ``lot``)."""
        basis = _share(lot.basis, quantity, lot.quantity)
        adj = _share(lot.wash_adj, quantity, lot.quantity)
        part = replace(lot, quantity=quantity, basis=basis, wash_adj=adj)
        lot.sub += 1
        lot.quantity -= quantity
        lot.basis -= basis
        lot.wash_adj -= adj
        lots = self._lots[(lot.account, lot.symbol)]
        lots.insert(lots.index(lot), part)
        self._ids[(lot.account, lot.lot_id)] += 1
        return part

    @staticmethod
    def _lot_out(lot: _Lot) -> Lot:
        return Lot(
            account=lot.account,
            symbol=lot.symbol,
            lot_id=lot.lot_id,
            quantity=lot.quantity,
            trade_date=lot.trade_date,
            acquired=lot.acquired,
            cost_basis_usd=lot.basis,
            wash_adjustment_usd=lot.wash_adj,
            short=lot.short,
            account_type=lot.account_type,
            replacement_used=lot.used,
        )

    def _open(
        self,
        txn: Transaction,
        account_type: AccountType,
        *,
        short: bool,
        commission: Decimal = _ZERO,
    ) -> None:
        """A buy (or a short sale) creates a lot; then it may replace pending losses.

        IRS Pub. 550: the basis of stock bought is the purchase price plus the costs of
        purchase (commissions); a short lot's "basis" is what the short sale brought in, net of
        its commission (the amount realized is reduced by selling expenses).
        """
        lot_id = txn.lot_id or txn.id
        if (txn.account, lot_id) in self._ids:
            raise LedgerError(
                f"lot {lot_id} is already open in account {txn.account}",
                row=txn.id,
                field="lot_id",
                account=txn.account,
            )
        lot = _Lot(
            account=txn.account,
            account_type=account_type,
            symbol=txn.symbol,
            lot_id=lot_id,
            quantity=txn.quantity,
            trade_date=txn.date,
            acquired=txn.date,
            basis=_amount(txn.quantity, txn.price) + (-commission if short else commission),
            wash_adj=_ZERO_CENT,
            short=short,
            used=False,
            seq=self._next_seq(),
            txn=txn.id,
        )
        self._add_lot(lot)
        self._note_purchase(txn.symbol, short, txn.date)
        self._replace_forward(lot)

    def _note_purchase(self, symbol: str, short: bool, date: dt.date) -> None:
        key = (symbol, short)
        if key not in self._last_buys or self._last_buys[key] < date:
            self._last_buys[key] = date

    def _select(self, txn: Transaction, *, short: bool) -> list[tuple[_Lot, Decimal]]:
        """Which lots (and how many shares of each) a sell/cover relieves; no mutation."""
        lots = [lot for lot in self._lots.get((txn.account, txn.symbol), []) if lot.short == short]
        what = "short" if short else "held"
        if txn.lot_id:
            named = [lot for lot in lots if lot.lot_id == txn.lot_id]
            if len(named) == 1 and txn.quantity <= named[0].quantity:
                return [(named[0], txn.quantity)]  # the common case: one whole (sub-)lot
            if not named:
                elsewhere = (txn.account, txn.lot_id) in self._ids
                detail = " (it is another symbol or side)" if elsewhere else ""
                raise LedgerError(
                    f"no open {'short ' if short else ''}lot {txn.lot_id} of {txn.symbol} in "
                    f"account {txn.account}{detail}",
                    row=txn.id,
                    field="lot_id",
                    account=txn.account,
                )
            held = sum((lot.quantity for lot in named), _ZERO)
            if txn.quantity > held:
                raise LedgerError(
                    f"{'cover' if short else 'sell'} of {_qty(txn.quantity)} sh but lot "
                    f"{txn.lot_id} has {_qty(held)} sh {what}",
                    row=txn.id,
                    field="quantity",
                    account=txn.account,
                )
            ordered = sorted(named, key=_fifo_key)
        else:
            if self.lot_method == "specific":
                raise LedgerError(
                    "lot method is specific identification: the sell must name its lot",
                    row=txn.id,
                    field="lot_id",
                    account=txn.account,
                )
            held = sum((lot.quantity for lot in lots), _ZERO)
            if txn.quantity > held:
                raise LedgerError(
                    f"{'cover' if short else 'sell'} of {_qty(txn.quantity)} sh {txn.symbol} "
                    f"but account {txn.account} has {_qty(held)} sh {what}",
                    row=txn.id,
                    field="quantity",
                    account=txn.account,
                )
            if self.lot_method == "hifo":
                # Highest basis per share first (lowest proceeds per share for a short), the
                # tax-minimizing order; ties in FIFO order.
                sign = 1 if short else -1
                ordered = sorted(lots, key=lambda x: (sign * x.basis / x.quantity, *_fifo_key(x)))
            else:
                ordered = sorted(lots, key=_fifo_key)
        plan: list[tuple[_Lot, Decimal]] = []
        left = txn.quantity
        for lot in ordered:
            if left <= 0:
                break
            take = min(left, lot.quantity)
            plan.append((lot, take))
            left -= take
        return plan

    def _close(
        self,
        txn: Transaction,
        account_type: AccountType,
        *,
        short: bool,
        commission: Decimal = _ZERO,
    ) -> list[SaleSlice]:
        """A sell (or a cover) relieves lots and realizes one slice per lot.

        The commission is split over the lots like the amount (pro rata by shares, cumulatively
        rounded) and nets into each slice: IRS Pub. 550 and the Form 8949 instructions reduce a
        sale's proceeds by its selling expenses and add a cover's commission to its cost.
        """
        plan = self._select(txn, short=short)
        total = _amount(txn.quantity, txn.price)
        out: list[SaleSlice] = []
        indices: list[int] = []
        losses: list[tuple[tuple[dt.date, dt.date, int, int], _Pending]] = []
        done = _ZERO
        allotted = _ZERO_CENT
        fee_allotted = _ZERO_CENT
        for lot, take in plan:
            done += take
            # Proceeds of one sell split across lots pro rata by shares, cumulatively rounded
            # so the slices add up to the sell's proceeds to the cent; the commission likewise.
            amount = _share(total, done, txn.quantity) - allotted
            allotted += amount
            if commission:
                fee = _share(commission, done, txn.quantity) - fee_allotted
                fee_allotted += fee
                amount = amount + fee if short else amount - fee
            basis = _share(lot.basis, take, lot.quantity)
            adj = _share(lot.wash_adj, take, lot.quantity)
            lot.quantity -= take
            lot.basis -= basis
            lot.wash_adj -= adj
            if lot.quantity == 0:
                self._remove_lot(lot)
            if short:
                # IRC §1233(a): the short lot's basis is what the short sale brought in; the
                # cover's cost is the cost basis; the gain or loss is short-term.
                proceeds, cost = basis, amount
                term: Term = "short"
                acquired = lot.trade_date
            else:
                proceeds, cost = amount, basis
                acquired = lot.acquired
                term = "long" if is_long_term(acquired, txn.date) else "short"
            s = SaleSlice(
                txn=txn.id,
                date_sold=txn.date,
                account=txn.account,
                account_type=account_type,
                symbol=txn.symbol,
                lot_id=lot.lot_id,
                quantity=take,
                date_acquired=acquired,
                term=term,
                proceeds=proceeds,
                cost_basis=cost,
                adjustment_code="",
                disallowed_loss=_ZERO_CENT,
                permanently_disallowed=_ZERO_CENT,
                gain=proceeds - cost,
                short=short,
            )
            if account_type != TAXABLE:
                # A sale inside an IRA/Roth is not reported and never starts a wash sale.
                out.append(s)
                continue
            self._sales.append(s)
            indices.append(len(self._sales) - 1)
            loss = cost - proceeds
            if loss > 0:
                # IRC §1091(a): only a loss can be washed; gains and break-even never are.
                losses.append(
                    (
                        _acquisition_key(lot),
                        _Pending(
                            txn=txn.id,
                            account=txn.account,
                            symbol=txn.symbol,
                            lot_id=lot.lot_id,
                            date_sold=txn.date,
                            unmatched=take,
                            loss=loss,
                            sold_qty=take,
                            acquired=acquired,
                            short=short,
                            seq=0,
                            slice_index=len(self._sales) - 1,
                        ),
                    )
                )
        # Wash matching runs after every lot of this sale is relieved: shares sold by this same
        # sale are never replacement shares for one another (IRC §1091(a) asks for shares
        # acquired, and these are disposed of in the very sale).
        # Treas. Reg. §1.1091-1(b): losses are matched in the order the loss shares were disposed
        # of; shares disposed of at once (one sale over several lots) count as disposed of in
        # the order they were originally acquired, earliest first -- whatever order the lot
        # method relieved them in (HIFO relieves the highest basis first).  The pending losses
        # keep that order (``seq``) for later purchases too.
        losses.sort(key=lambda x: x[0])
        for _, pending in losses:
            pending.seq = self._next_seq()
            self._replace_backward(pending)
            if pending.unmatched > 0:
                self._pending.setdefault(self.group(txn.symbol), []).append(pending)
        out.extend(self._sales[i] for i in indices)
        return out

    # ---------------------------------------------------------------- internals: wash sales

    def _replace_backward(self, pending: _Pending) -> None:
        """Match a new loss slice with replacement shares bought in the 30 days before it (or
        earlier the same day), in acquisition order (Treas. Reg. §1.1091-1(c)).

        Replacement candidates: open, not yet used as replacement, of the same group, in any
        account of the household, bought (for a cover loss: shorted or bought) on or after
        ``date_sold − 30``, and not shares of the sold lot's own purchase.
        """
        start = pending.date_sold - dt.timedelta(days=WASH_WINDOW_DAYS)
        candidates = [
            lot
            for key in self._keys_by_group.get(self.group(pending.symbol), set())
            for lot in self._lots.get(key, [])
            if not lot.used
            and lot.trade_date >= start
            and (pending.short or not lot.short)
            and not (
                lot.account == pending.account
                and lot.symbol == pending.symbol
                and lot.lot_id == pending.lot_id
            )
        ]
        candidates.sort(key=lambda x: (x.trade_date, x.seq, x.sub))
        for lot in candidates:
            if pending.unmatched <= 0:
                break
            self._match(pending, lot)

    def _replace_forward(self, lot: _Lot) -> None:
        """A new purchase (short sale) replaces loss shares sold in the 30 days before it that
        no earlier replacement absorbed, in the order of the loss sales, earliest first
        (IRC §1091(a); Treas. Reg. §1.1091-1(b)-(d))."""
        group = self.group(lot.symbol)
        pend = self._pending.get(group)
        if not pend:
            return
        start = lot.trade_date - dt.timedelta(days=WASH_WINDOW_DAYS)
        live = [p for p in pend if p.unmatched > 0 and p.date_sold >= start]
        if len(live) != len(pend):
            if live:
                self._pending[group] = live
            else:
                del self._pending[group]
        for p in sorted(live, key=lambda x: (x.date_sold, x.seq)):
            if lot.quantity <= 0 or lot.used:
                break
            if lot.short and not p.short:
                # A short sale is not an acquisition of stock: it replaces only a cover loss.
                continue
            self._match(p, lot)
        if group in self._pending:
            self._pending[group] = [p for p in self._pending[group] if p.unmatched > 0]
            if not self._pending[group]:
                del self._pending[group]

    def _match(self, pending: _Pending, lot: _Lot) -> None:
        """Match ``min(unmatched, lot)`` loss shares with replacement shares of ``lot``.

        IRC §1091(a), (d); Treas. Reg. §1.1091-1(c)-(d): a partial replacement splits the lot;
        the disallowed part of the loss is ``loss × matched / sold`` (cumulatively rounded to
        the cent so a fully replaced loss is disallowed exactly).  A taxable replacement takes
        it into its basis (a short replacement's basis — its proceeds — is lowered) and tacks
        the sold shares' holding period (IRC §1223(3)); an IRA/Roth replacement disallows it
        for good (Rev. Rul. 2008-5).
        """
        qty = min(pending.unmatched, lot.quantity)
        if qty <= 0:
            return
        if qty < lot.quantity:
            lot = self._split(lot, qty)
        before = pending.sold_qty - pending.unmatched
        after = before + qty
        disallowed = _share(pending.loss, after, pending.sold_qty) - _share(
            pending.loss, before, pending.sold_qty
        )
        pending.unmatched -= qty
        lot.used = True
        permanent = lot.account_type != TAXABLE
        if not permanent:
            if lot.short:
                lot.basis -= disallowed
            else:
                lot.basis += disallowed
            lot.wash_adj += disallowed
            if not lot.short and not pending.short:
                # IRC §1223(3): the replacement's holding period includes the sold shares'.
                # Tacking (docs/ledger.md: the day-count method, also for a replacement
                # bought before the sale).  A start tacked back past 0001-01-01 (decades of
                # daily rotation) stays there: long-term either way, never an OverflowError
                # (ledger audit, 2026-12-07 second session: a 50,000-row history).
                held = (pending.date_sold - pending.acquired).days
                lot.acquired = dt.date.fromordinal(max(1, lot.trade_date.toordinal() - held))
        self._matches.append(
            WashMatch(
                loss_txn=pending.txn,
                loss_account=pending.account,
                loss_lot_id=pending.lot_id,
                date_sold=pending.date_sold,
                replacement_account=lot.account,
                replacement_lot_id=lot.lot_id,
                replacement_date=lot.trade_date,
                quantity=qty,
                disallowed_usd=disallowed,
                permanent=permanent,
                loss_slice=pending.slice_index,
                symbol=pending.symbol,
            )
        )
        if pending.slice_index is not None:
            s = self._sales[pending.slice_index]
            self._sales[pending.slice_index] = msgspec.structs.replace(
                s,
                adjustment_code="W",
                disallowed_loss=s.disallowed_loss + disallowed,
                permanently_disallowed=s.permanently_disallowed
                + (disallowed if permanent else _ZERO),
                gain=s.gain + disallowed,
            )


def _check_commission(txn: Transaction, commission: Decimal) -> None:
    """A commission is whole cents, ≥ 0 and at most what the largest row can amount to."""
    try:
        ok = commission.is_finite() and commission >= 0 and commission == commission.quantize(CENT)
    except InvalidOperation:  # pragma: no cover - signalling NaN or too many digits
        ok = False
    if not ok or commission > MAX_QUANTITY * MAX_PRICE:
        raise LedgerError(
            f"commission must be a number of USD ≥ 0 in whole cents, got {commission}",
            row=txn.id,
            field="commission",
            account=txn.account,
        )


def _fifo_key(lot: _Lot) -> tuple[dt.date, int, dt.date, int]:
    """First in, first out (Treas. Reg. §1.1012-1(c)(1)): by purchase date, purchases of one day
    in the order they were made (file order); within one purchase split by a wash sale, the
    replacement part with the tacked (earlier) holding period first.  A tacked start does not
    move a purchase ahead of an earlier one of the same day (ledger audit: it did)."""
    return (lot.trade_date, lot.seq, lot.acquired, lot.sub)


def _acquisition_key(lot: _Lot) -> tuple[dt.date, dt.date, int, int]:
    """The order in which one sale's loss slices are matched with replacement shares (Treas. Reg.
    §1.1091-1(c), "in accordance with the order of their acquisition"): trade date, then the
    tacked start, then the order the lots were opened."""
    return (lot.trade_date, lot.acquired, lot.seq, lot.sub)


def _same_purchase(a: _Lot, b: _Lot) -> bool:
    """Sub-lots of one purchase (the sold shares and the unsold rest of their purchase)."""
    return a.account == b.account and a.symbol == b.symbol and a.lot_id == b.lot_id


def _qty(q: Decimal) -> str:
    """Shares as plain text without exponent (``100``, ``0.5``)."""
    text = format(q.normalize(), "f")
    return text
