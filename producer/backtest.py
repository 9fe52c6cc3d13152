"""The daily backtest: replay the nightly rebalance, day by day, through the ledger and the taxes.

One simulated taxable account (:class:`Book`: an ``AccountSpec``'s cash, a
:class:`shared.ledger.Ledger` kept across days, a share-count mirror for fast valuation, and a
:class:`producer.taxes.TaxAccountant`) is driven by a :class:`Policy`:

* :class:`OptimizerPolicy` — the product: on every rebalance day it builds the very
  :class:`shared.messages.RebalanceRequest` the workers receive (``ledger.state(day)`` and the
  day's market snapshot), calls :func:`shared.rebalance.rebalance` in-process and turns the
  outcome into ledger transactions with :func:`shared.rebalance.outcome_transactions`;
* the baselines of :mod:`producer.baselines` (hold the index; threshold harvester).

Conventions (documented in docs/runner.md):

* Fills at the day's close, at the snapshot's prices; no spread unless ``trading_cost_bps`` is set,
  in which case each fill's commission is paid from cash and carried into the tax lots (a buy's
  basis, a sale's proceeds: IRS Pub. 550).
* Day one invests the capital: the optimizer runs *the same solve* starting from all cash (so
  exclusions and tilts hold from the first day); the baselines buy the benchmark weights directly.
* Taxes are accrued daily and settled outside the account (see :mod:`producer.taxes`), so the
  pre-tax NAV is the account's own value and the after-tax NAV is pre-tax NAV − net tax.
* Every trading day between ``start`` and ``end`` (NYSE calendar) is marked to market; the account
  rebalances daily, weekly (first session of each week) or monthly (first session of each month).
"""

from __future__ import annotations

import datetime as dt
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Protocol

import msgspec
import numpy as np
from tqdm import tqdm

from producer.taxes import Rates, TaxAccountant, TaxNetting
from shared.errors import InputError, SolverFailed
from shared.ledger import cents
from shared.market import PRICE_QUANTUM
from shared.messages import (
    AccountSpec,
    FactorTilt,
    LongShortSpec,
    MarketSnapshot,
    RebalanceRequest,
    Solved,
    TaxRates,
    Transaction,
)
from shared.types import FloatArray, Strategy

Frequency = Literal["daily", "weekly", "monthly"]

#: Trading days per year, for annualising.
DAYS_PER_YEAR = 252

#: The simulated account and household.
ACCOUNT_ID = "backtest"
HOUSEHOLD_ID = "backtest-household"

_ZERO = Decimal(0)

#: The account's cash band when no trading cost is charged (``AccountSpec`` defaults).
_CASH_BAND = {
    f.name: f.default
    for f in msgspec.structs.fields(AccountSpec)
    if f.name in ("min_cash_w", "max_cash_w")
}


def close_price(close: float) -> Decimal:
    """The session's close as the account trades at it: the price's shortest decimal form,
    rounded to 1/100 of a cent (``shared.market.PRICE_QUANTUM``), exactly the price the
    nightly rebalance fills at.  The runner marks positions, fills the baselines and cashes out
    delisted names at this same price, so a fill never creates a gain or loss of its own."""
    return Decimal(repr(float(close))).quantize(PRICE_QUANTUM, ROUND_HALF_UP)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


class MarketData(Protocol):
    """What the backtest reads from a market history (``shared.market.MarketHistory`` or the
    sample dataset of :mod:`producer.datasets`)."""

    @property
    def symbols(self) -> tuple[str, ...]:
        """Universe, aligned with the columns of ``prices``."""
        ...

    @property
    def dates(self) -> tuple[dt.date, ...]:
        """Trading days, aligned with the rows of ``prices``."""
        ...

    @property
    def prices(self) -> FloatArray:
        """T×n close prices, NaN while a name is not listed."""
        ...

    @property
    def benchmark_weights(self) -> FloatArray:
        """T×n benchmark weights (rows sum to 1; 0 outside the index)."""
        ...

    @property
    def benchmark_level(self) -> FloatArray:
        """(T,) total-return level of the benchmark."""
        ...

    def snapshot(self, d: dt.date) -> MarketSnapshot:
        """The market of one day, risk model included."""
        ...


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """Every setting of a run; all of it is written to ``summary.json``."""

    start: dt.date
    end: dt.date
    strategy: Strategy = "direct-index"
    universe: str = "synthetic:500"
    seed: int = 0
    capital_usd: Decimal = Decimal(1_000_000)
    te_budget: float = 0.02
    lambda_tax: float = 1.0
    lambda_te: float = 1.0
    tilts: tuple[FactorTilt, ...] = ()
    exclusions: tuple[str, ...] = ()
    #: Single-name cap; ``None``: on each day max(10%, 1.25 × the largest benchmark weight of
    #: the run so far) — :func:`default_caps`.
    max_weight: float | None = None
    rebalance: Frequency = "daily"
    tax_netting: TaxNetting = "daily"
    rates: TaxRates = field(default_factory=TaxRates)
    #: Long/short book shape for the ``long-short`` strategy (default 130/30).
    long_short: LongShortSpec | None = None
    #: Commission charged on every fill, bps of its amount, paid from cash and carried into the
    #: lots' basis and the sales' proceeds (0: fills exactly at the close).
    trading_cost_bps: float = 0.0
    #: The threshold harvester sells lots down more than this fraction of their basis.
    harvest_threshold: float = 0.10
    #: Reconcile the share mirror with the ledger's open lots every day (tests; slower).
    audit: bool = False

    def cash_band(self) -> tuple[float, float]:
        """``(min_cash_w, max_cash_w)`` of the account.

        With ``trading_cost_bps`` the runner pays each fill's commission from cash; a
        long-only account cannot hold negative cash (no margin), so its floor covers a day's
        worst case — selling and re-buying the whole book, 2 × NAV traded — and the band's top
        moves up by as much.  Without a cost it is the ``AccountSpec`` default.
        """
        lo, hi = float(_CASH_BAND["min_cash_w"]), float(_CASH_BAND["max_cash_w"])
        if self.trading_cost_bps > 0 and self.strategy == "direct-index":
            reserve = 2.0 * self.trading_cost_bps / 10_000
            lo, hi = lo + reserve, hi + reserve
        return lo, min(hi, 1.0)

    def account_spec(self, cash_usd: Decimal) -> AccountSpec:
        """The account settings the optimizer is given (cash as of the day)."""
        min_cash_w, max_cash_w = self.cash_band()
        return AccountSpec(
            account_id=ACCOUNT_ID,
            household_id=HOUSEHOLD_ID,
            account_type="taxable",
            strategy=self.strategy,
            cash_usd=cash_usd,
            te_budget=self.te_budget,
            max_weight=0.10 if self.max_weight is None else self.max_weight,
            exclusions=list(self.exclusions),
            tilts=list(self.tilts),
            lambda_te=self.lambda_te,
            lambda_tax=self.lambda_tax,
            rates=self.rates,
            min_cash_w=min_cash_w,
            max_cash_w=max_cash_w,
            # The ledger nets each fill's commission into basis and proceeds, so the rebalance
            # must judge a loss sale net of it (a wash sale otherwise: IRC §1091(a)).
            commission_bps=self.trading_cost_bps,
            long_short=(self.long_short or LongShortSpec())
            if self.strategy == "long-short"
            else None,
        )

    def settings(self) -> dict[str, Any]:
        """JSON-safe dump of every setting (reproducibility)."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, dt.date):
                out[key] = value.isoformat()
            elif isinstance(value, Decimal):
                out[key] = f"{value:.2f}"  # USD to the cent, plain (never "1E+3")
            elif value is None or isinstance(value, msgspec.Struct):
                out[key] = msgspec.to_builtins(value)
            elif isinstance(value, tuple):
                out[key] = [msgspec.to_builtins(v) for v in value]
            else:
                out[key] = value
        return out


def rebalance_mask(dates: Sequence[dt.date], frequency: Frequency) -> np.ndarray:
    """Which days rebalance: every day, the first session of each ISO week, or of each month.

    The first day always trades (it invests the capital).

    Raises:
        InputError: unknown frequency.
    """
    n = len(dates)
    if frequency == "daily":
        mask = np.ones(n, dtype=bool)
    elif frequency == "weekly":
        keys = [d.isocalendar()[:2] for d in dates]
        mask = np.array([i == 0 or keys[i] != keys[i - 1] for i in range(n)], dtype=bool)
    elif frequency == "monthly":
        mask = np.array(
            [
                i == 0 or (dates[i].year, dates[i].month) != (dates[i - 1].year, dates[i - 1].month)
                for i in range(n)
            ],
            dtype=bool,
        )
    else:
        raise InputError(f"unknown rebalance frequency {frequency!r}", field="rebalance")
    if n:
        mask[0] = True
    return mask


def window(market: MarketData, start: dt.date, end: dt.date) -> tuple[int, int]:
    """Row indices ``[t0, t1]`` of the trading days of ``market`` inside ``[start, end]``.

    Raises:
        InputError: the window is empty, reversed, or not covered by the market's history (every
            NYSE session from ``start`` to ``end`` must be in it: the span is named).
    """
    if end < start:
        raise InputError(f"--end {end} is before --start {start}", field="end")
    dates = market.dates
    if not dates or start > dates[-1] or end < dates[0]:
        span = f"{dates[0]}..{dates[-1]}" if dates else "no dates"
        raise InputError(
            f"window {start}..{end} is outside the market data ({span})", field="start"
        )
    ordinals = np.fromiter((d.toordinal() for d in dates), dtype=np.int64, count=len(dates))
    t0 = int(np.searchsorted(ordinals, start.toordinal(), side="left"))
    t1 = int(np.searchsorted(ordinals, end.toordinal(), side="right")) - 1
    if t1 - t0 < 1:
        # A backtest needs a day to invest and a day to mark (runner audit: a one-session
        # window read as if its data were missing).
        what = "one NYSE session" if t1 == t0 else "no NYSE session in the data"
        raise InputError(
            f"window {start}..{end} has {what}; a backtest needs at least two sessions (the "
            "first invests the capital)",
            field="end",
        )
    # One row per NYSE session of the window: a window the data cover only in part is refused
    # (naming the span), never silently shortened.
    from shared.calendar import trading_days

    sessions = trading_days(start, end)
    span = f"the market data cover {dates[0]}..{dates[-1]}"
    if sessions and sessions[0] < dates[t0]:
        raise InputError(
            f"--start {start}: the session {sessions[0]} is not in the data ({span})",
            field="start",
        )
    if sessions and sessions[-1] > dates[t1]:
        raise InputError(
            f"--end {end}: the session {sessions[-1]} is not in the data ({span})", field="end"
        )
    return t0, t1


# --------------------------------------------------------------------------------------------
# The simulated account
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Fill:
    """What one day's trades did to the account."""

    #: The day's change of the realized short- and long-term gains, restatements included.
    realized_st: Decimal
    realized_lt: Decimal
    #: The sum of the day's slices *with a gain*, per term (the base of ``taxes_paid``).
    gains_st: Decimal = _ZERO
    gains_lt: Decimal = _ZERO
    #: Restatements (IRC §1091(a)) of slices sold in an earlier calendar year than the
    #: washing purchase, by the year of the sale: (short-term, long-term) change.  Included in
    #: ``realized_st``/``realized_lt``; the tax books them in the sale's year.
    prior_years: dict[int, tuple[Decimal, Decimal]] = field(default_factory=dict)
    losses: Decimal
    bought_usd: Decimal
    sold_usd: Decimal
    cost_usd: Decimal
    washed: int


class Book:
    """One simulated taxable account: cash, ledger, share mirror and taxes.

    Args:
        symbols: the universe (column order of the market's price matrix).
        capital_usd: starting cash.
        rates: tax rates.
        netting: tax-netting mode.
        trading_cost_bps: commission charged on each fill, bps of its amount.
        account_id: the account's id in the ledger.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        *,
        capital_usd: Decimal,
        rates: TaxRates,
        netting: TaxNetting = "daily",
        trading_cost_bps: float = 0.0,
        account_id: str = ACCOUNT_ID,
    ) -> None:
        from shared.ledger import Ledger

        if capital_usd <= 0:
            raise InputError("capital must be positive", account=account_id, field="capital")
        self.account_id = account_id
        self.symbols = tuple(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.ledger = Ledger(lot_method="fifo", household_id=HOUSEHOLD_ID)
        self.cash = capital_usd
        self.shares: FloatArray = np.zeros(len(self.symbols), dtype=np.float64)
        #: Exact share count per held name (column index → signed quantity, shorts negative).
        self.quantity: dict[int, Decimal] = {}
        #: Gain of every realized slice as counted so far, aligned with ``ledger.sales``.
        self._counted: list[Decimal] = []
        self.taxes = TaxAccountant(Rates.from_wire(rates), netting=netting)
        self._cost_rate = Decimal(repr(trading_cost_bps)) / Decimal(10_000)
        #: Realized losses harvested (positive USD) by calendar year of the sale.
        self.harvested_by_year: dict[int, Decimal] = defaultdict(lambda: _ZERO)
        self.bought_usd = _ZERO
        self.sold_usd = _ZERO
        self.costs_usd = _ZERO
        self.trades = 0
        #: Every transaction filled, in order (the trade log the ledger replays).
        self.log: list[Transaction] = []
        #: The commission of each transaction of ``log`` (USD, cents), to replay it exactly.
        self.commissions: list[Decimal] = []
        #: Lot mirror for the liquidation value: lot id → [name, shares, basis, LT day, sign].
        self._lots: dict[str, list[float]] | None = {}
        self._matches = 0
        self._table: FloatArray | None = None
        self._dirty = True

    def apply(self, txns: Sequence[Transaction]) -> Fill:
        """Fill the day's transactions: ledger, share mirror, cash.

        Raises:
            LedgerError: the ledger refused a transaction (names the row and field).
            InputError: a transaction names a symbol outside the universe.
        """
        st = lt = losses = bought = sold = cost = gains_st = gains_lt = _ZERO
        prior: dict[int, tuple[Decimal, Decimal]] = {}
        washed = 0
        for txn in txns:
            i = self.index.get(txn.symbol)
            if i is None:
                raise InputError(
                    f"trade in {txn.symbol!r}, which is not in the universe",
                    account=self.account_id,
                    field="symbol",
                )
            matched = len(self.ledger.wash_matches)
            # Cash moves by the trade's amount to the cent, half-up: the ledger's proceeds of
            # the same sale (IRS Pub. 550 amounts are in cents), not the unrounded product.
            notional = cents(txn.quantity * txn.price)
            # The fill's own commission, to the cent (half-up), paid from cash and carried into
            # the tax lots: IRS Pub. 550 ("Basis of Investment Property") adds a purchase's
            # commission to the basis, and a sale's reduces the amount realized (Form 8949).
            fee = self.commission(notional)
            slices = self.ledger.apply(txn, commission=fee)
            self.log.append(txn)
            self.commissions.append(fee)
            cost += fee
            self._dirty = True
            self._mirror(txn, i, slices, fee)
            q = float(txn.quantity)
            held = self.quantity.get(i, _ZERO)
            if txn.side in ("buy", "cover"):
                self.shares[i] += q
                held += txn.quantity
                self.cash -= notional
                bought += notional
            else:
                self.shares[i] -= q
                held -= txn.quantity
                self.cash += notional
                sold += notional
            if held:
                self.quantity[i] = held
            else:
                self.quantity.pop(i, None)
            for s in slices:
                if s.account_type != "taxable":
                    continue
                self._counted.append(s.gain)
                if s.term == "long":
                    lt += s.gain
                    gains_lt += max(s.gain, _ZERO)
                else:
                    st += s.gain
                    gains_st += max(s.gain, _ZERO)
                if s.gain < 0:
                    losses -= s.gain
                    self.harvested_by_year[s.date_sold.year] -= s.gain
                if s.adjustment_code == "W":
                    washed += 1
            if txn.side in ("buy", "short") and len(self.ledger.wash_matches) != matched:
                # IRC §1091(a): a purchase within 30 days *after* a loss sale disallows (part
                # of) that earlier loss.  The ledger adjusted the earlier slice in place; the
                # adjustment is known today, with the sold slice's term, and belongs to the
                # year of the sale (a December sale washed in January: ``prior_years``).
                for s, before in self._restate(txn.date):
                    change = s.gain - before
                    if s.term == "long":
                        lt += change
                    else:
                        st += change
                    if s.date_sold.year < txn.date.year:
                        p_st, p_lt = prior.get(s.date_sold.year, (_ZERO, _ZERO))
                        if s.term == "long":
                            p_lt += change
                        else:
                            p_st += change
                        prior[s.date_sold.year] = (p_st, p_lt)
                    lost = max(-s.gain, _ZERO) - max(-before, _ZERO)
                    losses += lost
                    self.harvested_by_year[s.date_sold.year] += lost
                    washed += 1
        self.cash -= cost
        self.costs_usd += cost
        self.bought_usd += bought
        self.sold_usd += sold
        self.trades += len(txns)
        return Fill(
            realized_st=st,
            realized_lt=lt,
            gains_st=gains_st,
            gains_lt=gains_lt,
            prior_years=prior,
            losses=losses,
            bought_usd=bought,
            sold_usd=sold,
            cost_usd=cost,
            washed=washed,
        )

    def record_taxes(self, day: dt.date, fills: Sequence[Fill]) -> None:
        """Feed one day's fills to the tax accountant: the day's realized gains (and its gain
        slices alone, for ``taxes_paid``) in the day's year, and each restatement of a slice
        sold in an earlier year in the year of that sale (IRC §1091(a))."""
        st = sum((f.realized_st for f in fills), _ZERO)
        lt = sum((f.realized_lt for f in fills), _ZERO)
        prior: dict[int, tuple[Decimal, Decimal]] = {}
        for f in fills:
            for year, (p_st, p_lt) in f.prior_years.items():
                st, lt = st - p_st, lt - p_lt
                a, b = prior.get(year, (_ZERO, _ZERO))
                prior[year] = (a + p_st, b + p_lt)
        self.taxes.record(
            day.year,
            st,
            lt,
            gains_short_term=sum((f.gains_st for f in fills), _ZERO),
            gains_long_term=sum((f.gains_lt for f in fills), _ZERO),
        )
        # After the day is recorded (its first session closes the previous year), so the
        # restatement reopens that closed year.
        for year in sorted(prior):
            self.taxes.restate(year, *prior[year])

    def commission(self, amount: Decimal) -> Decimal:
        """The commission of a fill of ``amount`` USD: the cost rate of it, to the cent
        (half-up); zero without ``trading_cost_bps``."""
        return cents(amount * self._cost_rate) if self._cost_rate else _ZERO

    def net_proceeds(self, quantity: Decimal, price: Decimal) -> Decimal:
        """What a sale of ``quantity`` shares at ``price`` realizes for the ledger: its amount
        to the cent less its commission (IRS Pub. 550; compare with a lot's basis to tell a
        loss sale)."""
        amount = cents(quantity * price)
        return amount - self.commission(amount)

    def _restate(self, day: dt.date) -> list[tuple[Any, Decimal]]:
        """Slices of the last 30 days whose gain the ledger changed since they were counted
        (a later purchase washed them), as ``(slice, gain counted before)``; updates the
        count."""
        from shared.ledger import WASH_WINDOW_DAYS

        sales = self.ledger.sales
        if len(sales) != len(self._counted):
            raise AssertionError("the ledger's slices and the account's count disagree")
        start = day - dt.timedelta(days=WASH_WINDOW_DAYS)
        out = []
        for k in range(len(sales) - 1, -1, -1):
            s = sales[k]
            if s.date_sold < start:
                break
            if s.gain != self._counted[k]:
                out.append((s, self._counted[k]))
                self._counted[k] = s.gain
        return out

    def close_out(
        self, day: dt.date, names: Sequence[int] | np.ndarray, last_price: FloatArray
    ) -> list[Transaction]:
        """Transactions closing every open lot of ``names`` at their last close: a name that
        stops trading (delisted; no price in the data) while held is cashed out at its last
        price, lot by lot, so the account never holds what the solver cannot see."""
        wanted = {self.symbols[int(i)] for i in names}
        out: list[Transaction] = []
        for lot in self.ledger.open_lots(self.account_id):
            if lot.symbol not in wanted:
                continue
            price = close_price(last_price[self.index[lot.symbol]])
            out.append(
                Transaction(
                    id=f"delist:{day}:{len(out)}",
                    date=day,
                    account=self.account_id,
                    account_type="taxable",
                    symbol=lot.symbol,
                    side="cover" if lot.short else "sell",
                    quantity=lot.quantity,
                    price=price,
                    lot_id=lot.lot_id,
                )
            )
        return out

    def value(self, prices: FloatArray) -> float:
        """Pre-tax NAV at ``prices`` (NaN prices must be zeroed by the caller), a float
        estimate for sizing trades; :meth:`marked_value` is the exact valuation."""
        return float(self.cash) + float(self.shares @ prices)

    def marked_value(self, prices: FloatArray) -> tuple[Decimal, FloatArray]:
        """Market value of the positions at the day's closes, exactly.

        Each name is valued at the close the account trades at (:func:`close_price`) times its
        exact share count, rounded to the cent (half-up) per position as a brokerage statement
        shows it.  So a name bought today is worth exactly the cash its fill cost, and on day
        one the pre-tax NAV is the capital (less any trading cost).

        Returns:
            The value (USD, cents; shorts negative) and ``prices`` with every held name's close
            replaced by that traded close (for valuing the open lots).
        """
        marks = np.array(prices, dtype=np.float64, copy=True)
        total = _ZERO
        for i, q in self.quantity.items():
            price = close_price(prices[i])
            marks[i] = float(price)
            total += cents(q * price)
        return total, marks

    def _mirror(
        self, txn: Transaction, i: int, slices: Sequence[Any], fee: Decimal = _ZERO
    ) -> None:
        """Keep the lot mirror (lot id → [name, shares, basis, first long-term day, sign]) in
        step with one filled transaction, from the ledger's own slices.  A wash-sale match
        (which moves basis and holding periods between lots) forces a rebuild from the ledger."""
        from shared.ledger import long_term_from  # IRC §1222(3): held more than one year

        matches = len(self.ledger.wash_matches)
        if matches != self._matches:
            self._matches = matches
            self._lots = None
        if self._lots is None:
            return
        if txn.side in ("buy", "short"):
            short = txn.side == "short"
            lot_id = txn.lot_id or txn.id
            if lot_id in self._lots:
                self._lots = None  # a lot id reused: let the ledger say what it holds
                return
            self._lots[lot_id] = [
                float(i),
                float(txn.quantity),
                # The ledger's basis, to the cent: the amount rounded half-up (IRS Pub. 550
                # amounts in cents, as ``Ledger`` opens the lot) plus the commission (a short
                # lot: its proceeds less the commission).  The unrounded product put the
                # liquidation value off by cents.
                float(cents(txn.quantity * txn.price) + (-fee if short else fee)),
                # Covering a short is always short-term (IRC §1233(b)).
                1e12 if short else float(long_term_from(txn.date).toordinal()),
                -1.0 if short else 1.0,
            ]
            return
        for sl in slices:
            row = self._lots.get(sl.lot_id)
            if row is None:
                self._lots = None
                return
            row[1] -= float(sl.quantity)
            # A covered short's "proceeds" is the short lot's basis relieved (Form 8949 layout).
            row[2] -= float(sl.proceeds if sl.short else sl.cost_basis)
            if row[1] <= 1e-12:
                del self._lots[sl.lot_id]

    def _lot_table(self) -> FloatArray:
        """Open taxable lots as an L×5 array: name index, shares, basis, first long-term day
        (ordinal), sign (−1 for a short lot), from the mirror (rebuilt from the ledger's open
        lots only when the mirror cannot follow a change)."""
        if self._table is not None and not self._dirty:
            return self._table
        if self._lots is None:
            from shared.ledger import long_term_from

            self._lots = {}
            for lot in self.ledger.open_lots(self.account_id):
                if lot.lot_id in self._lots:  # sub-lots of one purchase after a wash split
                    row = self._lots[lot.lot_id]
                    row[1] += float(lot.quantity)
                    row[2] += float(lot.cost_basis_usd)
                    # a split lot with mixed holding periods: no single long-term day, so keep
                    # the mirror off until the ledger is consulted again
                    acquired = float(long_term_from(lot.acquired).toordinal())
                    if not lot.short and acquired != row[3]:
                        self._lots = None
                        return self._table_from_ledger()
                    continue
                self._lots[lot.lot_id] = [
                    float(self.index[lot.symbol]),
                    float(lot.quantity),
                    float(lot.cost_basis_usd),
                    1e12 if lot.short else float(long_term_from(lot.acquired).toordinal()),
                    -1.0 if lot.short else 1.0,
                ]
        rows = list(self._lots.values())
        self._table = np.array(rows, dtype=np.float64).reshape(len(rows), 5)
        self._dirty = False
        return self._table

    def _table_from_ledger(self) -> FloatArray:
        """The lot table straight from the ledger's open lots (slow path, exact)."""
        from shared.ledger import long_term_from

        rows = [
            (
                float(self.index[lot.symbol]),
                float(lot.quantity),
                float(lot.cost_basis_usd),
                1e12 if lot.short else float(long_term_from(lot.acquired).toordinal()),
                -1.0 if lot.short else 1.0,
            )
            for lot in self.ledger.open_lots(self.account_id)
        ]
        self._table = np.array(rows, dtype=np.float64).reshape(len(rows), 5)
        self._dirty = False
        return self._table

    def unrealized(self, day: dt.date, prices: FloatArray) -> tuple[float, float]:
        """Unrealized (short-term, long-term) gain of the open taxable lots at ``prices``.

        Long-term means held more than one year (IRC §1222(3), the ledger's ``long_term_from``);
        short lots are always short-term when covered (IRC §1233(b)).
        """
        table = self._lot_table()
        if not len(table):
            return 0.0, 0.0
        idx = table[:, 0].astype(np.int64)
        gain = table[:, 4] * (table[:, 1] * prices[idx] - table[:, 2])
        is_lt = table[:, 3] <= day.toordinal()
        return float(gain[~is_lt].sum()), float(gain[is_lt].sum())

    def audit(self, day: dt.date) -> None:
        """Check that the share mirror equals the ledger's open lots, name by name.

        Raises:
            AssertionError: they disagree (a bookkeeping bug, never user input).
        """
        ledger_shares = np.zeros(len(self.symbols))
        for lot in self.ledger.open_lots(self.account_id):
            q = float(lot.quantity)
            ledger_shares[self.index[lot.symbol]] += -q if lot.short else q
        table = self._lot_table()
        exact = self._table_from_ledger()
        self._dirty = True
        if not (
            np.allclose(np.sort(table[:, 1] * table[:, 4]), np.sort(exact[:, 1] * exact[:, 4]))
            # The basis to the cent (the ledger's amounts), never a relative tolerance that
            # lets a large book's mirror drift by dollars.
            and np.isclose(table[:, 2].sum(), exact[:, 2].sum(), rtol=0.0, atol=0.005)
            and np.isclose((table[:, 3] * table[:, 1]).sum(), (exact[:, 3] * exact[:, 1]).sum())
        ):
            raise AssertionError(f"{day}: lot mirror and ledger disagree")
        if not np.allclose(ledger_shares, self.shares, atol=1e-9):
            bad = np.flatnonzero(~np.isclose(ledger_shares, self.shares, atol=1e-9))
            names = [self.symbols[i] for i in bad[:5]]
            raise AssertionError(f"{day}: share mirror and ledger disagree on {names}")


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class DayContext:
    """What a policy sees on one day."""

    t: int
    day: dt.date
    first: bool
    rebalance: bool
    prices: FloatArray
    book: Book
    market: MarketData
    config: BacktestConfig
    _snapshot: MarketSnapshot | None = None

    def snapshot(self) -> MarketSnapshot:
        """The day's market snapshot (built once, on demand)."""
        if self._snapshot is None:
            self._snapshot = self.market.snapshot(self.day)
        return self._snapshot


class Policy(Protocol):
    """A trading rule: given the day, the transactions to fill at the close."""

    name: str

    def decide(self, ctx: DayContext) -> list[Transaction]:
        """The day's transactions (empty on days it does not trade)."""
        ...


@dataclass
class TicketSample:
    """A small deterministic sample of trade tickets per reason (for the report)."""

    per_reason: int = 6
    seed: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    tickets: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def offer(self, day: dt.date, trade: Any) -> None:
        """Reservoir-sample one trade (``shared.messages.Trade``)."""
        reason = str(trade.reason)
        self.seen[reason] += 1
        k = self.seen[reason]
        row = {
            "date": day.isoformat(),
            "symbol": trade.symbol,
            "side": trade.side,
            "quantity": str(trade.quantity),
            "price": str(trade.price),
            "notional_usd": str(cents(trade.notional_usd)),
            "lot_id": trade.lot_id,
            "reason": reason,
            "driver": trade.driver,
            "factor_score": trade.factor_score,
        }
        bucket = self.tickets[reason]
        if len(bucket) < self.per_reason:
            bucket.append(row)
        else:
            j = self._rng.randrange(k)
            if j < self.per_reason:
                bucket[j] = row


class OptimizerPolicy:
    """The product: the nightly rebalance solve, in-process (STYLE.md convention 1)."""

    name = "optimizer"

    def __init__(self, config: BacktestConfig) -> None:
        from shared.rebalance import outcome_transactions, rebalance

        self._rebalance = rebalance
        self._transactions = outcome_transactions
        self.config = config
        self.statuses: Counter[str] = Counter()
        self.solvers: Counter[str] = Counter()
        self.relaxations: Counter[str] = Counter()
        self.solve_ms: list[float] = []
        self.te_ex_ante: list[float] = []
        self.exposure_dates: list[dt.date] = []
        self.exposure_rows: list[dict[str, float]] = []
        self.targets: dict[str, float] = {}
        self.wash_issues = 0
        self.reasons: Counter[str] = Counter()
        self.tickets = TicketSample(seed=config.seed)

    def decide(self, ctx: DayContext) -> list[Transaction]:
        """Solve the day's request and return the outcome's transactions."""
        if not ctx.rebalance:
            return []
        book = ctx.book
        request = RebalanceRequest(
            as_of=ctx.day,
            account=ctx.config.account_spec(book.cash),
            ledger=book.ledger.state(ctx.day),
            market=ctx.snapshot(),
        )
        t0 = time.perf_counter()
        try:
            outcome: Solved = self._rebalance(request)
        except SolverFailed:
            # Every solver attempt failed (the fleet would retry, then report it `failed`):
            # the day trades nothing and is counted, the backtest goes on (a sleeve's day
            # whose solves all stopped AlmostSolved ended a half-year run on its 61st day).
            self.solve_ms.append((time.perf_counter() - t0) * 1000.0)
            self.statuses["failed"] += 1
            return []
        self.solve_ms.append((time.perf_counter() - t0) * 1000.0)
        self._record(ctx.day, outcome)
        return list(self._transactions(outcome, account_type="taxable"))

    def _record(self, day: dt.date, outcome: Solved) -> None:
        self.statuses[outcome.status] += 1
        self.solvers[outcome.solver.solver] += 1
        for r in outcome.relaxations:
            self.relaxations[r] += 1
        self.wash_issues += len(outcome.wash_sale_issues)
        self.te_ex_ante.append(outcome.te_ex_ante)
        self.exposure_rows.append({e.factor: e.active for e in outcome.factor_exposures})
        for e in outcome.factor_exposures:
            if e.target_min is not None:
                self.targets[e.factor] = e.target_min
        self.exposure_dates.append(day)
        for trade in outcome.trades:
            self.reasons[trade.reason] += 1
            self.tickets.offer(day, trade)

    def exposure_matrix(self) -> tuple[list[str], FloatArray]:
        """Active exposures per rebalance day: (factor names, days × factors; NaN if absent)."""
        names: list[str] = []
        for row in self.exposure_rows:
            names += [f for f in row if f not in names]
        out = np.full((len(self.exposure_rows), len(names)), np.nan)
        for k, row in enumerate(self.exposure_rows):
            for j, f in enumerate(names):
                if f in row:
                    out[k, j] = row[f]
        return names, out

    def report(self) -> dict[str, Any]:
        """Diagnostics for ``summary.json``."""
        ms = np.asarray(self.solve_ms) if self.solve_ms else np.zeros(1)
        return {
            "statuses": dict(self.statuses),
            "solvers": dict(self.solvers),
            "relaxations": dict(self.relaxations),
            "wash_sale_issues": self.wash_issues,
            "trade_reasons": dict(self.reasons),
            "rebalance_ms_p50": float(np.percentile(ms, 50)),
            "rebalance_ms_p95": float(np.percentile(ms, 95)),
            "te_ex_ante_mean": float(np.mean(self.te_ex_ante)) if self.te_ex_ante else 0.0,
        }


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class RunResult:
    """Daily series and totals of one policy's run."""

    policy: str
    dates: list[dt.date]
    pre_tax_nav: FloatArray
    after_tax_nav: FloatArray
    benchmark_nav: FloatArray
    liquidation_nav: FloatArray
    cash: list[Decimal]
    positions_usd: FloatArray
    cum_realized_st: list[Decimal]
    cum_realized_lt: list[Decimal]
    taxes_paid: list[Decimal]
    tax_saved: list[Decimal]
    net_tax: list[Decimal]
    book: Book
    #: Exact pre-tax NAV per day (cash + positions marked per name to the cent).
    pre_tax_usd: list[Decimal] = field(default_factory=list)
    #: Bought + sold on the first day (the investment of the capital, excluded from turnover).
    first_day_traded_usd: Decimal = _ZERO
    rebalances: int
    wash_sales_created: int
    seconds: float
    policy_obj: Any = None
    #: The run's settings.
    config: BacktestConfig | None = None
    #: The single-name cap of the first and the last day (the default cap moves with the
    #: benchmark, :func:`default_caps`; a given ``max_weight`` is both).
    max_weight_used: tuple[float, float] | None = None


def default_caps(bench_weights: FloatArray) -> FloatArray:
    """The default single-name cap of each day of a run: max(10%, 1.25 × the largest benchmark
    weight of the run so far), rounded to 4 decimals, at most 1.

    Only what is known on the day (runner audit, 2026-12-07 eighth session: the cap was
    resolved from the largest weight of the *whole* window, so a name the 20-name sample would
    grow into by 2022 loosened the cap of 2000 from 17% to 69%, and the same days traded
    otherwise depending on ``--end``).  Running maximum, so the cap never falls and never
    forces a sale; 10% keeps a broad index's book diversified; 1.25 × lets a 20- or 50-name
    universe whose largest weight exceeds 10% stay feasible.  A cap above 1 means none (a
    2-name universe's largest weight × 1.25 was 1.16 and the first rebalance rejected it).

    Args:
        bench_weights: (T, n) benchmark weights of the run's days (NaN: not listed).

    Returns:
        (T,) caps.
    """
    largest = np.nanmax(np.where(np.isfinite(bench_weights), bench_weights, 0.0), axis=1)
    return np.minimum(1.0, np.round(np.maximum(0.10, 1.25 * np.maximum.accumulate(largest)), 4))


def simulate(
    market: MarketData,
    policy: Policy,
    config: BacktestConfig,
    *,
    progress: bool = False,
    liquidation_every: int = 1,
) -> RunResult:
    """Run one policy over the configured window.

    Args:
        market: the market history.
        policy: the trading rule.
        config: the run's settings.
        progress: show a progress bar on stderr.
        liquidation_every: compute the liquidation value every this many days (carried forward in
            between; the last day is always computed).

    Returns:
        The daily series and the account.

    Raises:
        InputError: bad window or settings.
    """
    started = time.perf_counter()
    t0, t1 = window(market, config.start, config.end)
    dates = list(market.dates[t0 : t1 + 1])
    T = len(dates)
    raw = np.asarray(market.prices[t0 : t1 + 1], dtype=np.float64)
    listed = np.isfinite(raw)
    prices = np.nan_to_num(raw, nan=0.0)
    # Last close of every name up to each day (for a name that stops trading while held).
    last_close = np.asarray(market.prices[: t0 + 1], dtype=np.float64)
    last_px = np.full(raw.shape[1], np.nan)
    seen = np.isfinite(last_close)
    if seen.any():
        rows = np.where(seen, np.arange(len(last_close))[:, None], -1).max(axis=0)
        has = rows >= 0
        last_px[has] = last_close[rows[has], np.flatnonzero(has)]
    level = np.asarray(market.benchmark_level[t0 : t1 + 1], dtype=np.float64)
    if not np.all(np.isfinite(level)) or np.any(level <= 0):
        raise InputError("benchmark level must be positive and finite", field="benchmark_level")
    caps = (
        default_caps(np.asarray(market.benchmark_weights[t0 : t1 + 1], dtype=np.float64))
        if config.max_weight is None
        else None
    )
    capital = float(config.capital_usd)
    if config.strategy == "market-neutral":
        # The dollar-neutral sleeve's benchmark is cash: its active return is its return.
        benchmark_nav = np.full(T, capital)
    else:
        benchmark_nav = capital * level / level[0]
    mask = rebalance_mask(dates, config.rebalance)
    book = Book(
        market.symbols,
        capital_usd=config.capital_usd,
        rates=config.rates,
        netting=config.tax_netting,
        trading_cost_bps=config.trading_cost_bps,
    )
    pre = np.empty(T)
    pre_usd: list[Decimal] = []
    first_traded = _ZERO
    pos = np.empty(T)
    liq = np.empty(T)
    cash: list[Decimal] = []
    cum_st: list[Decimal] = []
    cum_lt: list[Decimal] = []
    paid: list[Decimal] = []
    saved: list[Decimal] = []
    net: list[Decimal] = []
    rebalances = 0
    liq_tax = 0.0
    bar = tqdm(
        total=T, desc=policy.name, unit="day", file=sys.stderr, disable=not progress, leave=False
    )
    for k in range(T):
        day = dates[k]
        px = prices[k]
        ctx = DayContext(
            t=t0 + k,
            day=day,
            first=k == 0,
            rebalance=bool(mask[k]),
            prices=px,
            book=book,
            market=market,
            config=config if caps is None else replace(config, max_weight=float(caps[k])),
        )
        np.copyto(last_px, raw[k], where=listed[k])
        held_unlisted = (book.shares != 0) & ~listed[k]
        fills: list[Fill] = []
        if held_unlisted.any():
            # Cash out before the policy looks at the ledger (the solver cannot see the name).
            fills.append(book.apply(book.close_out(day, np.flatnonzero(held_unlisted), last_px)))
        txns = policy.decide(ctx)
        if ctx.rebalance:
            rebalances += 1
        fill = book.apply(txns)
        fills.append(fill)
        if k == 0:
            first_traded = fill.bought_usd + fill.sold_usd
        book.record_taxes(day, fills)
        totals = book.taxes.totals()
        if config.audit:
            book.audit(day)
        marked, marks = book.marked_value(px)
        pre_usd.append(book.cash + marked)
        pos[k] = float(marked)
        pre[k] = float(pre_usd[-1])
        if k % liquidation_every == 0 or k == T - 1:
            liq_tax = book.taxes.liquidation_tax(*book.unrealized(day, marks))
        liq[k] = pre[k] - float(totals.net_tax) - liq_tax
        cash.append(book.cash)
        cum_st.append(totals.realized_short_term)
        cum_lt.append(totals.realized_long_term)
        paid.append(totals.taxes_paid)
        saved.append(totals.tax_saved)
        net.append(totals.net_tax)
        bar.update(1)
    bar.close()
    book.taxes.close_year()
    after = np.asarray([float(p - n) for p, n in zip(pre_usd, net, strict=True)])
    washed = sum(
        1 for s in book.ledger.sales if s.account_type == "taxable" and s.adjustment_code == "W"
    )
    return RunResult(
        policy=policy.name,
        dates=dates,
        pre_tax_nav=pre,
        after_tax_nav=after,
        benchmark_nav=benchmark_nav,
        liquidation_nav=liq,
        cash=cash,
        positions_usd=pos,
        cum_realized_st=cum_st,
        cum_realized_lt=cum_lt,
        taxes_paid=paid,
        tax_saved=saved,
        net_tax=net,
        book=book,
        pre_tax_usd=pre_usd,
        first_day_traded_usd=first_traded,
        rebalances=rebalances,
        wash_sales_created=washed,
        seconds=time.perf_counter() - started,
        policy_obj=policy,
        config=config,
        max_weight_used=(
            (float(caps[0]), float(caps[-1]))
            if caps is not None
            else (float(config.max_weight), float(config.max_weight))
            if config.max_weight is not None
            else None
        ),
    )


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def annualised_return(nav: FloatArray, start: float | None = None) -> float:
    """Geometric annual return of a NAV path of trading days (252 per year), from ``start``
    (the capital invested on the first day: its commission is a cost of the investor's, and
    the benchmark starts from it too) or else from the path's first value."""
    years = (len(nav) - 1) / DAYS_PER_YEAR
    base = float(nav[0]) if start is None else start
    if years <= 0 or base <= 0 or nav[-1] <= 0:
        return 0.0
    return float((nav[-1] / base) ** (1.0 / years) - 1.0)


def daily_returns(nav: FloatArray) -> FloatArray:
    """Simple daily returns of a NAV path."""
    return np.asarray(nav[1:] / nav[:-1] - 1.0, dtype=np.float64)


def realized_te(portfolio_nav: FloatArray, benchmark_nav: FloatArray) -> float:
    """Annualised standard deviation of daily active returns (portfolio − benchmark)."""
    active = daily_returns(portfolio_nav) - daily_returns(benchmark_nav)
    if len(active) < 2:
        return 0.0
    return float(np.std(active, ddof=1) * math.sqrt(DAYS_PER_YEAR))


def _year_slices(dates: Sequence[dt.date]) -> dict[int, tuple[int, int]]:
    """For each calendar year, (index of the previous year-end or the start, last index)."""
    out: dict[int, tuple[int, int]] = {}
    for i, d in enumerate(dates):
        if d.year not in out:
            out[d.year] = (max(i - 1, 0), i)
        else:
            out[d.year] = (out[d.year][0], i)
    return out


def by_year(run: RunResult, capital: float | None = None) -> dict[str, dict[str, float]]:
    """Per calendar year: after-tax, pre-tax and benchmark return, tax alpha and realized TE.
    The first year's returns start from ``capital`` when given (as :func:`summarize`'s)."""
    out: dict[str, dict[str, float]] = {}
    for year, (a, b) in _year_slices(run.dates).items():
        if b <= a:
            continue
        at0 = capital if a == 0 and capital is not None else run.after_tax_nav[a]
        pt0 = capital if a == 0 and capital is not None else run.pre_tax_nav[a]
        at = run.after_tax_nav[b] / at0 - 1.0
        pt = run.pre_tax_nav[b] / pt0 - 1.0
        bm = run.benchmark_nav[b] / run.benchmark_nav[a] - 1.0
        saved = float(run.net_tax[a] - run.net_tax[b]) if b > a else 0.0
        out[str(year)] = {
            "tax_savings_pct_nav": saved / float(np.mean(run.pre_tax_nav[a : b + 1])),
            "after_tax_return": float(at),
            "pre_tax_return": float(pt),
            "benchmark_return": float(bm),
            "tax_alpha": float(at - bm),
            "pre_tax_active_return": float(pt - bm),
            "realized_te": realized_te(run.pre_tax_nav[a : b + 1], run.benchmark_nav[a : b + 1]),
        }
    return out


def summarize(run: RunResult, config: BacktestConfig) -> dict[str, Any]:
    """The per-policy block of ``summary.json``."""
    book = run.book
    # Returns run from the capital, as the benchmark's: the first day's NAV is already net of
    # its commission (runner audit: at 50 bps the tax alpha read +8.62%/y against +4.31%/y).
    capital = float(config.capital_usd)
    after = annualised_return(run.after_tax_nav, capital)
    pre = annualised_return(run.pre_tax_nav, capital)
    bench = annualised_return(run.benchmark_nav, capital)
    liq = annualised_return(run.liquidation_nav, capital)
    years = max((len(run.dates) - 1) / DAYS_PER_YEAR, 1e-9)
    avg_nav = float(np.mean(run.pre_tax_nav))
    # One-way turnover, annualised, excluding the first day's investment of the capital (every
    # trade of day one: the account starts all cash, so its buys and short sales are the
    # investment, whatever the book's shape).
    traded = float(book.bought_usd + book.sold_usd - run.first_day_traded_usd)
    turnover = traded / 2.0 / avg_nav / years if avg_nav > 0 else 0.0
    totals = book.taxes.totals()
    out: dict[str, Any] = {
        "policy": run.policy,
        "annual_tax_alpha": after - bench,
        "realized_te": realized_te(run.pre_tax_nav, run.benchmark_nav),
        "pre_tax_active_return": pre - bench,
        "after_tax_return": after,
        "pre_tax_return": pre,
        "benchmark_return": bench,
        "liquidation_return": liq,
        # Net tax saved per year as a fraction of the average NAV (the literature's "tax alpha":
        # the value of harvested losses, before the credits compound).
        "tax_savings_pct_nav": -float(totals.net_tax) / avg_nav / years if avg_nav > 0 else 0.0,
        "liquidation_tax_alpha": liq - bench,
        "harvested_losses": {
            str(y): str(cents(v)) for y, v in sorted(book.harvested_by_year.items())
        },
        "turnover": turnover,
        "wash_sales_created": run.wash_sales_created,
        "rebalances": run.rebalances,
        "trades": book.trades,
        "seconds": run.seconds,
        "final": {
            "pre_tax_nav": str(cents(Decimal(repr(float(run.pre_tax_nav[-1]))))),
            "after_tax_nav": str(cents(Decimal(repr(float(run.after_tax_nav[-1]))))),
            "liquidation_nav": str(cents(Decimal(repr(float(run.liquidation_nav[-1]))))),
            "benchmark_nav": str(cents(Decimal(repr(float(run.benchmark_nav[-1]))))),
            "cash": str(cents(run.cash[-1])),
            "realized_st": str(cents(totals.realized_short_term)),
            "realized_lt": str(cents(totals.realized_long_term)),
            "taxes_paid": str(totals.taxes_paid),
            "tax_saved": str(totals.tax_saved),
            "net_tax": str(totals.net_tax),
            "trading_costs": str(book.costs_usd),
        },
        "by_year": by_year(run, capital),
    }
    if book.taxes.netting == "annual":
        carry_st, carry_lt = book.taxes.carry_forward
        out["final"]["carry_forward_st"] = str(carry_st)
        out["final"]["carry_forward_lt"] = str(carry_lt)
        # Each year as filed (Schedule D; the last as of the run's end), restated when a later
        # purchase washed one of its losses (TaxAccountant.restate).
        out["tax_years"] = {
            str(year): {
                "net_short_term": str(y.net_short_term),
                "net_long_term": str(y.net_long_term),
                "ordinary_offset": str(y.ordinary_offset),
                "carry_short_term": str(y.carry_short_term),
                "carry_long_term": str(y.carry_long_term),
                "tax": str(y.tax),
            }
            for year, y in sorted(book.taxes.years.items())
        }
    report = getattr(run.policy_obj, "report", None)
    if callable(report):
        out["diagnostics"] = report()
    return out


# --------------------------------------------------------------------------------------------
# Frontier and comparison
# --------------------------------------------------------------------------------------------

SweepParam = Literal["lambda_tax", "lambda_te", "te_budget"]


#: Upper bound (exclusive) of a swept λ or TE budget: the runner's flags take [0, 10).
MAX_SWEEP_VALUE = 10.0


def parse_sweep(text: str) -> tuple[SweepParam, list[float]]:
    """Parse ``lambda_tax=0.5,1,2``, ``lambda_te=0.1,1`` or ``te_budget=0.01,0.02``.

    Raises:
        InputError: malformed text (field ``sweep``).
    """
    name, sep, values = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in ("lambda_tax", "lambda_te", "te_budget"):
        raise InputError(
            f"{text!r}: expected lambda_tax=a,b,c, lambda_te=a,b,c or te_budget=a,b,c",
            field="sweep",
        )
    try:
        points = [float(v) for v in values.split(",")]
    except ValueError as exc:  # an empty value too (runner audit: "0.01,,0.02" dropped it)
        raise InputError(f"{text!r}: values must be numbers", field="sweep") from exc
    # The bounds of the flags they stand for (--lambda-tax, --lambda-te, --te-budget: runner
    # audit, a sweep took lambda_tax=1e6 that the flag refuses).
    if not points or any(not math.isfinite(v) or not 0 <= v < MAX_SWEEP_VALUE for v in points):
        raise InputError(
            f"{text!r}: give one or more numbers in [0, {MAX_SWEEP_VALUE:g}), as the flag takes",
            field="sweep",
        )
    if name == "te_budget" and min(points) <= 0:
        raise InputError(f"{text!r}: a TE budget must be > 0", field="sweep")
    params: dict[str, SweepParam] = {
        "lambda_tax": "lambda_tax",
        "lambda_te": "lambda_te",
        "te_budget": "te_budget",
    }
    param = params[name]
    return param, points


def sweep(
    market: MarketData,
    config: BacktestConfig,
    param: SweepParam,
    values: Sequence[float],
    *,
    progress: bool = False,
    on_run: Callable[[float, RunResult], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the optimizer once per setting: one frontier point (TE, tax alpha) each."""
    points = []
    for value in values:
        if param == "lambda_tax":
            cfg = replace(config, lambda_tax=value)
        elif param == "lambda_te":
            cfg = replace(config, lambda_te=value)
        else:
            cfg = replace(config, te_budget=value)
        run = simulate(market, OptimizerPolicy(cfg), cfg, progress=progress)
        if on_run is not None:
            on_run(value, run)
        s = summarize(run, cfg)
        points.append(
            {
                param: value,
                "annual_tax_alpha": s["annual_tax_alpha"],
                "realized_te": s["realized_te"],
                "pre_tax_active_return": s["pre_tax_active_return"],
                "turnover": s["turnover"],
                "wash_sales_created": s["wash_sales_created"],
                "seconds": s["seconds"],
            }
        )
    return points


def compare_at_equal_te(
    optimizer: Sequence[tuple[float, float]], harvester: tuple[float, float]
) -> dict[str, Any]:
    """Does the optimizer beat the threshold harvester at equal tracking error?

    Args:
        optimizer: (realized TE, annual tax alpha) of every optimizer run (main run and sweep).
        harvester: (realized TE, annual tax alpha) of the threshold harvester.

    Returns:
        ``{"beats": bool | None, "optimizer_alpha_at_te": float | None, "verdict": str}``.
        When the optimizer's runs bracket the harvester's TE, the optimizer's alpha at that TE
        is interpolated linearly along the frontier (sorted by TE) and compared.  Otherwise only
        dominance decides: an optimizer run with no more TE (5% tolerance) and more alpha beats
        it; a run with no less TE and less alpha does not; anything else is *not comparable*
        and the verdict says which way to sweep ``te_budget``.
    """
    h_te, h_alpha = harvester
    pts = sorted(optimizer)
    if len(pts) >= 2 and pts[0][0] <= h_te <= pts[-1][0]:
        at_te = float(np.interp(h_te, [p[0] for p in pts], [p[1] for p in pts]))
        beats = at_te > h_alpha
        how = "interpolated on the optimizer frontier"
        where = f"at the harvester's realized TE {h_te:.2%}"
    else:
        dominating = [(a, te) for te, a in pts if te <= h_te * 1.05 and a > h_alpha]
        dominated = [(a, te) for te, a in pts if te >= h_te * 0.95 and a <= h_alpha]
        if dominating or dominated:
            beats = bool(dominating)
            at_te, te_opt = max(dominating or dominated)
            how = "with equal or lower TE" if beats else "even with equal or higher TE"
            # The alpha compared is the optimizer run's own, at its own realized TE.
            where = f"at realized TE {te_opt:.2%} vs the harvester's {h_te:.2%}"
        else:
            lo, hi = (pts[0][0], pts[-1][0]) if pts else (math.nan, math.nan)
            if hi < h_te:
                where = "at lower TE with less alpha; sweep te_budget higher (or lambda_te lower)"
            else:
                where = "at higher TE with more alpha; sweep te_budget lower (or lambda_te higher)"
            return {
                "beats": None,
                "optimizer_alpha_at_te": None,
                "verdict": (
                    f"NOT COMPARABLE at equal TE: the threshold harvester ran at realized TE "
                    f"{h_te:.2%} (tax alpha {h_alpha:.2%}/y), the optimizer runs at "
                    f"{lo:.2%}–{hi:.2%} {where} to place it on the frontier."
                ),
            }
    word = "BEATS" if beats else "DOES NOT BEAT"
    return {
        "beats": beats,
        "optimizer_alpha_at_te": at_te,
        "verdict": (
            f"The optimizer {word} the threshold harvester ({how}): tax alpha "
            f"{at_te:.2%}/y vs {h_alpha:.2%}/y {where}."
        ),
    }
