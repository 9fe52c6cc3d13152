"""Tax accounting of a backtested account: realized gains → taxes paid, tax saved, carry-forwards.

Pure bookkeeping, no I/O: the backtest feeds it each day's realized short- and long-term gains
(from the ledger's sale slices, after wash-sale adjustments) and reads back the cumulative tax.

Two modes:

* ``daily`` (default, the seed's premise): every day's net realized short-term gain is taxed at the
  short-term rate (ordinary 37% + 3.8% NIIT, IRC §1(j), §1411) and every day's net long-term gain
  at the long-term rate (20% + 3.8%, IRC §1(h), §1411); a net loss of the day is *credited* at the
  same rate, i.e. the investor is assumed to have enough other gains of that character to absorb
  it (this is how the literature, e.g. Chaudhuri, Burnham & Lo 2020, values harvested losses).
* ``annual``: the year's gains are netted as on Schedule D (IRC §1222): short-term against
  short-term, long-term against long-term, then across terms; a net capital loss offsets at most
  $3,000 of ordinary income (IRC §1211(b)) and the rest is carried forward keeping its character,
  the $3,000 absorbing short-term loss first (IRC §1212(b)(1)–(2), IRS Pub 550 "Capital Loss
  Carryover").  Because the $3,000 deduction also reduces net investment income (Treas. Reg.
  §1.1411-4(d)(2)), it is valued at the short-term rate including NIIT.

When tax is paid: taxes are *accrued daily* in both modes — the after-tax NAV on day ``t`` already
nets the liability (or credit) created by the gains realized up to ``t``.  Taxes and credits are
settled outside the account (the investor pays them from, or is credited to, other money), so the
portfolio itself stays fully invested and the after-tax NAV is
``pre-tax NAV − taxes paid + tax saved by losses``.  In ``annual`` mode the accrual is the tax of
the year-to-date gains as if the year ended that day; at each year end it is locked in and the
carry-forward rolls into the next year.

Definitions used in every output (both modes): ``taxes_paid`` is the tax the realized *gains*
alone would cost — every sale slice with a gain (Form 8949, after wash-sale adjustments, IRC
§1091) at its term's rate, summed per day and term before rounding, *before* any loss of the same
day or term is netted against it; ``tax_saved`` is how much the realized losses reduced it
(``taxes_paid − net tax``): a loss realized the same day as a same-term gain counts as saved like
any other.  So ``net tax = taxes_paid − tax_saved`` exactly, and the split never changes the net
tax (hence the after-tax NAV).  Amounts are ``Decimal`` rounded to the cent (half-up) at the point
each tax is computed.

Wash sales across a year end (``annual`` mode): a purchase in January that washes a loss sold in
December disallows the loss *in the year of the sale* (IRC §1091(a): "no deduction shall be
allowed" for the loss of that sale; IRS Pub 550, "Wash Sales": the disallowed loss is added to the
replacement's basis).  :meth:`TaxAccountant.restate` reopens the closed year, nets it again as on
Schedule D with the loss gone, and rolls the changed carry-forward into the later years; the
accrual changes on the day the washing purchase is known.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from shared.errors import InputError
from shared.ledger import cents
from shared.messages import TaxRates

#: Tax-netting modes of :class:`TaxAccountant`.
TaxNetting = Literal["daily", "annual"]

#: Net capital loss deductible against ordinary income per year (IRC §1211(b)(1)).
ORDINARY_LOSS_LIMIT_USD = Decimal(3000)

_ZERO = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class Rates:
    """Marginal rates as exact decimals, NIIT included (IRC §1411)."""

    #: Short-term gains are ordinary income (IRC §1222(1), §1(j)) plus NIIT.
    short_term: Decimal
    #: Long-term gains: the §1(h) rate plus NIIT.
    long_term: Decimal

    @classmethod
    def from_wire(cls, rates: TaxRates) -> Rates:
        """Build from the account's :class:`shared.messages.TaxRates`.

        Raises:
            InputError: a rate is negative or not below 100%, alone or with NIIT.
        """
        for name, value in (
            ("short_term", rates.short_term),
            ("long_term", rates.long_term),
            ("niit", rates.niit),
        ):
            if not 0.0 <= value < 1.0:
                raise InputError(f"tax rate {value} must be in [0, 1)", field=f"rates.{name}")
        short_term, long_term = rates.with_niit()
        for name, total in (("short_term", short_term), ("long_term", long_term)):
            # A marginal rate of 100% or more (with NIIT) would tax more than the gain.
            if total >= 1:
                raise InputError(
                    f"{name.replace('_', '-')} rate {getattr(rates, name)} + NIIT "
                    f"{rates.niit} = {total} must be below 1",
                    field=f"rates.{name}",
                )
        return cls(short_term=short_term, long_term=long_term)


@dataclass(frozen=True, kw_only=True)
class YearNetting:
    """Schedule D netting of one tax year (IRC §1222, §1211(b), §1212(b))."""

    #: Net short-term and long-term results *including* the carry-in (negative = loss).
    net_short_term: Decimal
    net_long_term: Decimal
    #: Net capital loss deducted against ordinary income (≥ 0, ≤ $3,000).
    ordinary_offset: Decimal
    #: Losses carried into next year, as non-positive numbers keeping their character.
    carry_short_term: Decimal
    carry_long_term: Decimal
    #: The year's tax on capital gains; negative when the ordinary offset saves tax.
    tax: Decimal


def net_year(
    short_term: Decimal,
    long_term: Decimal,
    *,
    rates: Rates,
    carry_short_term: Decimal = _ZERO,
    carry_long_term: Decimal = _ZERO,
    loss_limit: Decimal = ORDINARY_LOSS_LIMIT_USD,
) -> YearNetting:
    """Net one year's realized gains as on Schedule D and compute its tax.

    Args:
        short_term: the year's realized short-term gain (USD, negative = loss).
        long_term: the year's realized long-term gain (USD).
        rates: marginal rates.
        carry_short_term: short-term loss carried in (≤ 0), treated as a short-term loss of this
            year (IRC §1212(b)(1)(A)).
        carry_long_term: long-term loss carried in (≤ 0) (IRC §1212(b)(1)(B)).
        loss_limit: the ordinary-income offset cap, $3,000 (IRC §1211(b)(1)).

    Returns:
        The netting, the carry-forward out and the tax.

    Raises:
        InputError: a carry-in is positive.
    """
    if carry_short_term > 0 or carry_long_term > 0:
        raise InputError("a loss carry-forward must be ≤ 0", field="carry")
    st = short_term + carry_short_term
    lt = long_term + carry_long_term
    total = st + lt
    if st >= 0 and lt >= 0:
        tax = st * rates.short_term + lt * rates.long_term
        return YearNetting(
            net_short_term=st,
            net_long_term=lt,
            ordinary_offset=_ZERO,
            carry_short_term=_ZERO,
            carry_long_term=_ZERO,
            tax=cents(tax),
        )
    if total >= 0:
        # One term lost, the other gained more: the loss offsets the gain of the other term and
        # the remainder keeps the winning term's character (IRC §1222(5)–(11)).
        rate = rates.short_term if st > 0 else rates.long_term
        return YearNetting(
            net_short_term=st,
            net_long_term=lt,
            ordinary_offset=_ZERO,
            carry_short_term=_ZERO,
            carry_long_term=_ZERO,
            tax=cents(total * rate),
        )
    # Net capital loss.  Split it by character: a term with a gain absorbs the other term's loss
    # first (IRC §1212(b)(1): "excess of the net short-term capital loss over the net long-term
    # capital gain", and vice versa).
    st_loss = -min(st + max(lt, _ZERO), _ZERO)
    lt_loss = -min(lt + max(st, _ZERO), _ZERO)
    offset = min(loss_limit, st_loss + lt_loss)
    # IRC §1212(b)(2): the deducted amount is treated as a short-term gain for the carry-over
    # computation, so it uses up short-term loss before long-term loss.
    from_st = min(offset, st_loss)
    from_lt = offset - from_st
    return YearNetting(
        net_short_term=st,
        net_long_term=lt,
        ordinary_offset=offset,
        carry_short_term=-(st_loss - from_st),
        carry_long_term=-(lt_loss - from_lt),
        tax=cents(-offset * rates.short_term),
    )


@dataclass(frozen=True, kw_only=True)
class TaxTotals:
    """Cumulative tax position of an account at the close of a day (USD, to the cent)."""

    #: Tax the realized gains alone would cost (≥ 0).
    taxes_paid: Decimal
    #: How much the realized losses reduced it (``taxes_paid − net_tax``).
    tax_saved: Decimal
    #: Net tax accrued since the start (negative = a net refund of the investor's other tax).
    net_tax: Decimal
    #: Cumulative realized short-term and long-term gains (after wash-sale adjustments).
    realized_short_term: Decimal
    realized_long_term: Decimal


class TaxAccountant:
    """Turns a stream of daily realized gains into accrued tax, in either netting mode.

    Days must be fed in date order; a year rolls over when the first day of a later year
    arrives (or when :meth:`close_year` is called).

    Args:
        rates: marginal rates (NIIT included).
        netting: ``daily`` (each day taxed or credited at the rates) or ``annual``.
    """

    def __init__(self, rates: Rates, *, netting: TaxNetting = "daily") -> None:
        if netting not in ("daily", "annual"):
            raise InputError(f"unknown tax netting {netting!r}", field="tax_netting")
        self.rates = rates
        self.netting: TaxNetting = netting
        self._year: int | None = None
        self._gross = _ZERO  # tax on gains alone, cumulative (annual: of the closed years)
        # annual: the open year's gain slices per term, taxed once as Schedule D rounds its
        # tax (runner audit: summing each day's rounded tax left taxes_paid 2 cents under the
        # net tax of a year with no loss, a tax_saved of -$0.02)
        self._ytd_gains_st = self._ytd_gains_lt = _ZERO
        self._net_prior = _ZERO  # net tax of closed years (annual) / of all days (daily)
        self._ytd_st = _ZERO
        self._ytd_lt = _ZERO
        self._ytd_net = _ZERO  # annual: accrued tax of the open year
        self._carry_st = _ZERO
        self._carry_lt = _ZERO
        #: Closed years' realized (short-term, long-term) gains and their carry-in (annual mode),
        #: to net a closed year again when a later purchase washes one of its losses.
        self._closed: dict[int, tuple[Decimal, Decimal, Decimal, Decimal]] = {}
        self._cum_st = _ZERO
        self._cum_lt = _ZERO
        #: Closed years' netting (annual mode), by year.
        self.years: dict[int, YearNetting] = {}

    def record(
        self,
        year: int,
        short_term: Decimal,
        long_term: Decimal,
        *,
        gains_short_term: Decimal | None = None,
        gains_long_term: Decimal | None = None,
    ) -> Decimal:
        """Record one day's net realized gains and return that day's change in net tax.

        Args:
            year: calendar year of the day.
            short_term: the day's net realized short-term gain (USD, negative = loss).
            long_term: the day's net realized long-term gain (USD).
            gains_short_term: the sum of the day's short-term slices *with a gain* (≥ 0), before
                any loss is netted: ``taxes_paid`` is the tax on it.  Default: the positive part
                of ``short_term`` (a caller who only knows the day's net).
            gains_long_term: the same for long-term slices.

        Returns:
            The change in accrued net tax caused by this day (negative = tax saved).

        Raises:
            InputError: days are fed out of year order, or a gain sum is negative.
        """
        if self._year is None:
            self._year = year
        elif year < self._year:
            raise InputError(f"year {year} recorded after {self._year}", field="date")
        elif year > self._year:
            self.close_year()
            self._year = year
        before = self._net_prior + self._ytd_net
        gains_st = max(short_term, _ZERO) if gains_short_term is None else gains_short_term
        gains_lt = max(long_term, _ZERO) if gains_long_term is None else gains_long_term
        if gains_st < 0 or gains_lt < 0:
            raise InputError("the day's realized gains alone must be ≥ 0", field="gains")
        # Tax on the gain slices alone, per term at its rate (IRC §1(h), §1(j), §1411), before
        # any loss nets against them: the losses' effect is ``tax_saved``.
        if self.netting == "daily":
            gross_st = cents(gains_st * self.rates.short_term)
            gross_lt = cents(gains_lt * self.rates.long_term)
            self._gross += gross_st + gross_lt
        else:
            self._ytd_gains_st += gains_st
            self._ytd_gains_lt += gains_lt
        self._cum_st += short_term
        self._cum_lt += long_term
        self._ytd_st += short_term
        self._ytd_lt += long_term
        if self.netting == "daily":
            # Each term taxed or credited at its own rate, rounded per day and term.
            day = cents(short_term * self.rates.short_term) + cents(
                long_term * self.rates.long_term
            )
            self._net_prior += day
        else:
            # Every day, not only days that realize something: on a new year's first days the
            # loss carried in (IRC §1212(b)) already earns its $3,000 ordinary offset
            # (§1211(b)) "as if the year ended that day", before the year's first sale.
            self._ytd_net = self._netting().tax
        return self._net_prior + self._ytd_net - before

    def _netting(self) -> YearNetting:
        return net_year(
            self._ytd_st,
            self._ytd_lt,
            rates=self.rates,
            carry_short_term=self._carry_st,
            carry_long_term=self._carry_lt,
        )

    def close_year(self) -> None:
        """Lock in the open year's tax and roll its loss carry-forward (annual mode)."""
        if self._year is None:
            return
        if self.netting == "annual":
            self._closed[self._year] = (self._ytd_st, self._ytd_lt, self._carry_st, self._carry_lt)
            netting = self._netting()
            self.years[self._year] = netting
            self._net_prior += netting.tax
            self._carry_st = netting.carry_short_term
            self._carry_lt = netting.carry_long_term
            self._gross = self._gross_total()
            self._ytd_gains_st = self._ytd_gains_lt = _ZERO
        self._ytd_st = self._ytd_lt = self._ytd_net = _ZERO

    def restate(self, year: int, short_term: Decimal, long_term: Decimal) -> Decimal:
        """Book a change to the realized gains of slices sold in ``year``, known today.

        A purchase within 30 days after a loss sale disallows (part of) that loss (IRC
        §1091(a)); the ledger restates the sold slice, and this books the change (≥ 0: a loss
        reduced) in the year of the *sale*.  In ``annual`` mode a sale of a year already closed
        reopens it: the year is netted again (Schedule D, §1211(b), §1212(b)), its tax replaces
        the one locked in, and the changed carry-forward rolls through the later years into the
        open one.  In ``daily`` mode the change is taxed at the rates on the day it is booked.
        ``taxes_paid`` is unchanged (a washed slice still has no gain: the disallowed loss is
        at most the loss, Pub 550 "Wash Sales"); ``tax_saved`` falls by the tax change.

        Args:
            year: calendar year of the sale of the restated slices.
            short_term: change of the short-term realized gain (USD).
            long_term: change of the long-term realized gain (USD).

        Returns:
            The change in accrued net tax.

        Raises:
            InputError: ``year`` is after the open year, or no day was recorded yet.
        """
        if self._year is None or year > self._year:
            raise InputError(f"a restatement of {year} before that year was recorded", field="date")
        before = self._net_prior + self._ytd_net
        self._cum_st += short_term
        self._cum_lt += long_term
        if self.netting == "daily":
            self._net_prior += cents(short_term * self.rates.short_term) + cents(
                long_term * self.rates.long_term
            )
        elif year == self._year:
            self._ytd_st += short_term
            self._ytd_lt += long_term
            self._ytd_net = self._netting().tax
        else:
            if year not in self._closed:
                raise InputError(f"year {year} was never recorded", field="date")
            st, lt, carry_st, carry_lt = self._closed[year]
            self._closed[year] = (st + short_term, lt + long_term, carry_st, carry_lt)
            # Net the reopened year and every later closed year again, each with the carry-in
            # the year before it now leaves (IRC §1212(b)).
            for y in sorted(k for k in self._closed if k >= year):
                st, lt, _, _ = self._closed[y]
                self._closed[y] = (st, lt, carry_st, carry_lt)
                netting = net_year(
                    st, lt, rates=self.rates, carry_short_term=carry_st, carry_long_term=carry_lt
                )
                self.years[y] = netting
                carry_st, carry_lt = netting.carry_short_term, netting.carry_long_term
            self._net_prior = sum((n.tax for n in self.years.values()), _ZERO)
            self._carry_st, self._carry_lt = carry_st, carry_lt
            self._ytd_net = self._netting().tax
        return self._net_prior + self._ytd_net - before

    def _gross_total(self) -> Decimal:
        """``taxes_paid``: the closed years' and, in annual mode, the open year's gain slices
        taxed at their rates and rounded once, as :func:`net_year` rounds the year's tax."""
        if self.netting == "daily":
            return self._gross
        rates = self.rates
        return self._gross + cents(
            self._ytd_gains_st * rates.short_term + self._ytd_gains_lt * rates.long_term
        )

    @property
    def carry_forward(self) -> tuple[Decimal, Decimal]:
        """Loss carried into the open year, (short-term, long-term), each ≤ 0."""
        return self._carry_st, self._carry_lt

    def totals(self) -> TaxTotals:
        """The cumulative position at the last recorded day."""
        net = self._net_prior + self._ytd_net
        gross = self._gross_total()
        return TaxTotals(
            taxes_paid=gross,
            tax_saved=gross - net,
            net_tax=net,
            realized_short_term=self._cum_st,
            realized_long_term=self._cum_lt,
        )

    def liquidation_tax(self, unrealized_short_term: float, unrealized_long_term: float) -> float:
        """Extra tax if every open lot were sold at today's close (USD, float estimate).

        Args:
            unrealized_short_term: unrealized gain of lots held one year or less (IRC §1222(1)).
            unrealized_long_term: unrealized gain of lots held more than one year.

        Returns:
            The additional net tax (negative when the unrealized losses would save tax).
        """
        st_rate = float(self.rates.short_term)
        lt_rate = float(self.rates.long_term)
        if self.netting == "daily":
            return unrealized_short_term * st_rate + unrealized_long_term * lt_rate
        st = Decimal(repr(round(unrealized_short_term, 2)))
        lt = Decimal(repr(round(unrealized_long_term, 2)))
        after = net_year(
            self._ytd_st + st,
            self._ytd_lt + lt,
            rates=self.rates,
            carry_short_term=self._carry_st,
            carry_long_term=self._carry_lt,
        )
        return float(after.tax - self._ytd_net)
