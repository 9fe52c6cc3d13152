"""Firm-wide realized P/L: one :class:`PnL` per account outcome, folded with :func:`combine`.

:func:`combine` is field-wise addition of exact ``Decimal`` cents and integer counts, so it is
associative and commutative with :data:`ZERO` as identity: the firm total does not depend on the
order outcomes arrive in, nor on how the accounts are grouped (account → household → strategy →
firm), which is what lets the aggregator fold a night without a Celery chord.

Terms follow IRC §1222: a slice held one year or less is short-term, longer is long-term (the
holding period after tacking, IRC §1223(3), as recorded on the slice).  ``gain_usd`` of a slice
already includes any disallowed wash-sale loss (IRC §1091(a), IRS Pub. 550: the disallowed part is
added back and carried into the replacement's basis), so a washed loss counts as zero here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import reduce
from typing import Final

import msgspec

from shared.ledger import cents  # one rounding rule for reported money: half-up
from shared.messages import Failed, Outcome, Rejected, Solved


class PnL(msgspec.Struct, frozen=True, kw_only=True):
    """Realized P/L and counts of one account, or of any group of accounts.  USD, exact cents.

    ``*_gain_usd`` sums the positive slices, ``*_loss_usd`` the negative ones (as a negative
    number); ``harvested_loss_usd`` is the positive amount of losses realized and allowed;
    ``estimated_tax_usd`` is the rebalance's tax estimate (negative = tax saved) and
    ``tax_saved_usd`` its negative (docs/rebalance.md §9): net over a group, so an account
    whose trades realize gains lowers its household's and the firm's tax saved (summing only
    the accounts that saved tax overstated a household whose net estimate was a cost).
    """

    accounts: int = 0
    ok: int = 0
    relaxed: int = 0
    held: int = 0
    rejected: int = 0
    failed: int = 0
    trades: int = 0
    nav_usd: Decimal = Decimal("0.00")
    traded_usd: Decimal = Decimal("0.00")
    st_gain_usd: Decimal = Decimal("0.00")
    st_loss_usd: Decimal = Decimal("0.00")
    lt_gain_usd: Decimal = Decimal("0.00")
    lt_loss_usd: Decimal = Decimal("0.00")
    disallowed_loss_usd: Decimal = Decimal("0.00")
    permanently_disallowed_usd: Decimal = Decimal("0.00")
    harvested_loss_usd: Decimal = Decimal("0.00")
    estimated_tax_usd: Decimal = Decimal("0.00")
    tax_saved_usd: Decimal = Decimal("0.00")

    @property
    def st_net_usd(self) -> Decimal:
        """Net short-term realized gain (IRC §1222(5)-(6))."""
        return self.st_gain_usd + self.st_loss_usd

    @property
    def lt_net_usd(self) -> Decimal:
        """Net long-term realized gain (IRC §1222(7)-(8))."""
        return self.lt_gain_usd + self.lt_loss_usd

    def row(self) -> dict[str, str | int]:
        """Flat mapping for CSV and JSON reports (amounts as exact strings)."""
        out: dict[str, str | int] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, Decimal) else int(value)
        out["st_net_usd"] = str(self.st_net_usd)
        out["lt_net_usd"] = str(self.lt_net_usd)
        return out


#: The identity of :func:`combine`.
ZERO: Final = PnL()

_FIELDS: Final = PnL.__struct_fields__


def combine(a: PnL, b: PnL) -> PnL:
    """Field-wise sum: associative, commutative, with :data:`ZERO` as identity."""
    return PnL(**{name: getattr(a, name) + getattr(b, name) for name in _FIELDS})


def fold(items: Iterable[PnL]) -> PnL:
    """Combine any number of P/Ls (empty → :data:`ZERO`)."""
    return reduce(combine, items, ZERO)


def account_pnl(outcome: Outcome) -> PnL:
    """The P/L contribution of one account's outcome.

    A ``rejected`` or ``failed`` account traded nothing: it counts, realizes nothing.

    Args:
        outcome: the account's outcome.

    Returns:
        The account's P/L, amounts in exact cents.
    """
    if isinstance(outcome, Rejected):
        return PnL(accounts=1, rejected=1)
    if isinstance(outcome, Failed):
        return PnL(accounts=1, failed=1)
    return _solved_pnl(outcome)


def _solved_pnl(outcome: Solved) -> PnL:
    st_gain = st_loss = lt_gain = lt_loss = disallowed = permanent = Decimal(0)
    for piece in outcome.realized:
        gain = piece.gain_usd
        disallowed += piece.disallowed_loss_usd
        permanent += piece.permanently_disallowed_usd  # IRA replacement: Rev. Rul. 2008-5
        if piece.term == "short":  # held one year or less, IRC §1222(1)-(2)
            if gain >= 0:
                st_gain += gain
            else:
                st_loss += gain
        elif gain >= 0:  # held more than one year, IRC §1222(3)-(4)
            lt_gain += gain
        else:
            lt_loss += gain
    tax = outcome.estimated_tax_usd
    return PnL(
        accounts=1,
        ok=int(outcome.status == "ok"),
        relaxed=int(outcome.status == "relaxed"),
        held=int(outcome.status == "held"),
        trades=len(outcome.trades),
        nav_usd=cents(outcome.nav_usd),
        traded_usd=cents(sum((abs(t.notional_usd) for t in outcome.trades), Decimal(0))),
        st_gain_usd=cents(st_gain),
        st_loss_usd=cents(st_loss),
        lt_gain_usd=cents(lt_gain),
        lt_loss_usd=cents(lt_loss),
        disallowed_loss_usd=cents(disallowed),
        permanently_disallowed_usd=cents(permanent),
        harvested_loss_usd=cents(outcome.harvested_loss_usd),
        estimated_tax_usd=cents(tax),
        tax_saved_usd=cents(-tax),
    )


def group_by(outcomes: Iterable[Outcome], key: Callable[[Outcome], str]) -> dict[str, PnL]:
    """Fold outcomes into one P/L per group, groups sorted by key.

    Args:
        outcomes: the night's outcomes.
        key: the group of an outcome (account id, household id, strategy…).

    Returns:
        ``{group: PnL}`` in sorted key order.
    """
    groups: dict[str, PnL] = {}
    for outcome in outcomes:
        k = key(outcome)
        groups[k] = combine(groups.get(k, ZERO), account_pnl(outcome))
    return dict(sorted(groups.items()))
