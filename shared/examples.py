"""Realistic synthetic requests and books: one account for ``taxview example-request``, many
accounts for ``taxview nightly --synthetic-accounts N`` and ``taxview bench solve``.

:func:`example_request` replays a generated trade history through the real ledger (so every lot,
wash-sale adjustment and window memory is what the rules make of it); :func:`synthetic_book`
generates thousands of accounts directly with numpy (no replay) and builds each household's
:class:`~shared.messages.LedgerState` from arrays, fast enough for 10,000 accounts.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from decimal import Decimal

import msgspec
import numpy as np

from shared.calendar import trading_day_on_or_before
from shared.ledger import Ledger
from shared.market import MarketHistory
from shared.messages import (
    AccountSpec,
    FactorTilt,
    LedgerState,
    LongShortSpec,
    Lot,
    MarketSnapshot,
    PendingLoss,
    RebalanceRequest,
    RecentPurchase,
    RiskModel,
    Transaction,
)
from shared.optimizer.data import BoolArray
from shared.types import AccountType, FloatArray, Side, Strategy

#: The default date of examples and benchmarks (an NYSE session), fixed so a seed is a request.
DEFAULT_AS_OF = dt.date(2026, 6, 30)

#: Years of history generated before ``as_of`` (lots are at most three years old).
HISTORY_YEARS = 3

#: Style factors a tilt may target, in preference order (those the risk model has).
TILT_FACTORS = ("quality", "momentum", "value", "low_vol", "lowvol", "low-vol")

_CENT = Decimal("0.01")

#: Steady-state books: the largest loss (fraction of price) left on a lot older than 30 days.
STEADY_STATE_MAX_LOSS = 0.01

#: Steady-state books: share of lots carrying a fresh, harvestable dip.
STEADY_STATE_FRESH_DIP = 0.03


def _history_start(as_of: dt.date) -> dt.date:
    """First calendar day of the synthetic market history behind a book of ``as_of``."""
    return dt.date(as_of.year - HISTORY_YEARS, as_of.month, 1) - dt.timedelta(days=40)


def _market_history(names: int, seed: int, as_of: dt.date) -> MarketHistory:
    from shared.synthetic import synthetic_market

    return synthetic_market(n_names=names, start=_history_start(as_of), end=as_of, seed=seed)


@functools.cache
def earliest_synthetic_night() -> dt.date:
    """The first NYSE session a synthetic book can be dated.

    Its market simulates :data:`HISTORY_YEARS` years (and 40 days) before the night, after a
    warm-up of ``shared.synthetic.WARMUP_DAYS`` sessions, and all of it must lie inside the NYSE
    calendar (from ``shared.calendar.CALENDAR_START``, 1990-01-02): the first night is in 1994.
    """
    from shared.calendar import CALENDAR_END, CALENDAR_START, trading_days
    from shared.synthetic import WARMUP_DAYS

    sessions = trading_days(CALENDAR_START, CALENDAR_END)
    # The history's first session needs WARMUP_DAYS sessions before it, so the history must
    # start after sessions[WARMUP_DAYS - 1]; its start grows with the night: bisect.
    last_too_early = sessions[WARMUP_DAYS - 1]
    lo, hi = 0, len(sessions) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _history_start(sessions[mid]) > last_too_early:
            hi = mid
        else:
            lo = mid + 1
    return sessions[lo]


def _session(history: MarketHistory, d: dt.date) -> dt.date:
    """``d`` itself when it is a session of the history, else the last one before it."""
    dates = history.dates
    t = int(np.searchsorted(np.array(dates, dtype="datetime64[D]"), np.datetime64(d), "right"))
    return dates[max(0, t - 1)]


class _Book:
    """Transactions of one household and the running cash of its accounts."""

    def __init__(self, as_of: dt.date) -> None:
        self.as_of = as_of
        self.txns: list[Transaction] = []
        self.cash: dict[str, Decimal] = {}
        self.lots: dict[str, list[tuple[str, str, int, Decimal]]] = {}  # account → open lots

    def trade(
        self,
        *,
        date: dt.date,
        account: str,
        account_type: AccountType,
        symbol: str,
        side: Side,
        qty: int,
        price: float,
        lot_id: str = "",
    ) -> str:
        tid = f"T{len(self.txns) + 1:06d}"
        px = Decimal(repr(round(price, 4)))
        self.txns.append(
            Transaction(
                id=tid,
                date=date,
                account=account,
                account_type=account_type,
                symbol=symbol,
                side=side,
                quantity=Decimal(qty),
                price=px,
                lot_id=lot_id or tid,
            )
        )
        sign = {"buy": -1, "sell": 1, "short": 1, "cover": -1}[side]
        self.cash[account] = self.cash.get(account, Decimal(0)) + sign * (Decimal(qty) * px)
        return lot_id or tid


def example_request(
    *, names: int, seed: int, as_of: dt.date | None = None, strategy: Strategy = "direct-index"
) -> RebalanceRequest:
    """A realistic, self-contained request for one account.

    A taxable account funded one to three years before ``as_of`` in four tranches (so each held
    name has ~4 lots: some at a gain, some at a loss, some short-term, some long-term), an earlier
    harvest, a loss sale in the last two weeks (so a name is barred from buys, IRC §1091) and a
    purchase in the last week (so that name's loss lots may not be sold at a loss), a household
    IRA holding some names with a recent purchase of its own, sometimes a factor tilt and an
    exclusion.  The trades are replayed through :class:`shared.ledger.Ledger` and the request
    carries ``ledger.state(as_of)`` and the history; the market is
    ``synthetic_market(...).snapshot(as_of)`` with the generator's true risk model.

    Args:
        names: universe size (≥ 10).
        seed: random seed; the same seed gives the same request.
        as_of: the rebalance date (default :data:`DEFAULT_AS_OF`, moved back to a session).
        strategy: ``direct-index``, ``long-short`` or ``market-neutral``.

    Returns:
        The request.

    Raises:
        InputError: ``names`` < 10.
    """
    from shared.errors import InputError

    if names < 10:
        raise InputError(f"{names} names is too few for an example (≥ 10)", field="names")
    history = _market_history(names, seed, as_of or DEFAULT_AS_OF)
    as_of = _session(history, as_of or DEFAULT_AS_OF)
    dates = history.dates
    prices = history.prices
    bw = history.benchmark_weights
    symbols = history.symbols
    snapshot = history.snapshot(as_of)
    rng = np.random.default_rng([seed, 20_26])
    t_end = dates.index(as_of)
    acct = f"ACC-{seed:04d}"
    ira = f"IRA-{seed:04d}"
    household = f"HH-{seed:04d}"
    book = _Book(as_of)
    capital = float(rng.uniform(0.5e6, 2.0e6))

    fund_t = max(0, t_end - int(rng.integers(252, 3 * 252)))
    tranche_t = sorted({fund_t, *rng.integers(fund_t + 20, t_end - 45, size=3).tolist()})
    split = [0.55, 0.15, 0.15, 0.15][: len(tranche_t)]
    longs, shorts = _sides(strategy, len(symbols), rng)
    gross_long, gross_short = {
        "direct-index": (0.99, 0.0),
        "long-short": (1.3, 0.3),
        "market-neutral": (0.5, 0.5),
    }[strategy]
    book.cash[acct] = Decimal(0)
    for t, frac in zip(tranche_t, split, strict=True):
        amount = capital * frac
        book.cash[acct] += Decimal(repr(round(amount, 2)))
        opening: tuple[tuple[Side, BoolArray, float], ...] = (
            ("buy", longs, gross_long),
            ("short", shorts, gross_short),
        )
        for side, mask, gross in opening:
            if gross == 0:
                continue
            listed = np.isfinite(prices[t]) & mask
            w = np.where(listed, bw[t] + 1e-4, 0.0)
            w = w / w.sum() * gross * amount
            for i in np.flatnonzero(w > 0).tolist():
                qty = int(w[i] // prices[t, i])
                if qty > 0:
                    book.trade(
                        date=dates[t],
                        account=acct,
                        account_type="taxable",
                        symbol=symbols[i],
                        side=side,
                        qty=qty,
                        price=float(prices[t, i]),
                    )
    # The household IRA: ~20 names bought a year or so ago.
    ira_t = max(0, t_end - int(rng.integers(120, 400)))
    ira_names = rng.choice(
        np.flatnonzero(np.isfinite(prices[ira_t])), size=min(20, names // 2), replace=False
    )
    for i in ira_names.tolist():
        qty = int(rng.integers(20, 200))
        book.trade(
            date=dates[ira_t],
            account=ira,
            account_type="ira",
            symbol=symbols[i],
            side="buy",
            qty=qty,
            price=float(prices[ira_t, i]),
        )

    ledger = Ledger(lot_method="specific", identical=[], household_id=household)
    txns = sorted(book.txns, key=lambda x: (x.date, x.id))
    for txn in txns:
        ledger.apply(txn)
    # An earlier harvest, a recent loss sale, a recent purchase (taxable) and one in the IRA.
    extra = _recent_trades(
        ledger,
        book,
        rng,
        acct=acct,
        ira=ira,
        t_end=t_end,
        dates=dates,
        prices=prices,
        symbols=symbols,
        strategy=strategy,
    )
    for txn in extra:
        ledger.apply(txn)
    state = ledger.state(as_of)
    cash = max(book.cash[acct], Decimal(0)).quantize(_CENT)
    spec = _account_spec(
        strategy,
        acct=acct,
        household=household,
        cash=cash,
        rng=rng,
        snapshot=snapshot,
        state=state,
    )
    return RebalanceRequest(
        as_of=as_of,
        account=spec,
        ledger=state,
        history=[x for x in [*txns, *extra] if (as_of - x.date).days <= 400],
        market=snapshot,
    )


def _sides(strategy: Strategy, n: int, rng: np.random.Generator) -> tuple[BoolArray, BoolArray]:
    if strategy == "direct-index":
        return np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
    short = rng.random(n) < (0.2 if strategy == "long-short" else 0.5)
    return ~short, short


def _recent_trades(
    ledger: Ledger,
    book: _Book,
    rng: np.random.Generator,
    *,
    acct: str,
    ira: str,
    t_end: int,
    dates: tuple[dt.date, ...],
    prices: FloatArray,
    symbols: tuple[str, ...],
    strategy: Strategy,
) -> list[Transaction]:
    """Sell at a loss a few days ago (→ no buys today), buy a week ago (→ its loss lots are in
    the window), and buy one name in the IRA (a household purchase washes too, Rev. Rul. 2008-5).
    """
    open_lots = [x for x in ledger.open_lots(acct) if not x.short]
    index = {s: i for i, s in enumerate(symbols)}
    before = len(book.txns)
    t_sell = t_end - int(rng.integers(3, 12))
    t_buy = t_end - int(rng.integers(1, 3))
    losers = [
        lot
        for lot in open_lots
        if prices[t_sell, index[lot.symbol]] * float(lot.quantity) < float(lot.cost_basis_usd)
    ]
    sold: set[str] = set()
    if losers:
        pick = losers[int(rng.integers(len(losers)))]
        sold.add(pick.symbol)
        for lot in (x for x in losers if x.symbol == pick.symbol):
            book.trade(
                date=dates[t_sell],
                account=acct,
                account_type="taxable",
                symbol=lot.symbol,
                side="sell",
                qty=int(lot.quantity),
                price=float(prices[t_sell, index[lot.symbol]]),
                lot_id=lot.lot_id,
            )
    held = sorted({x.symbol for x in losers} - sold) or sorted({x.symbol for x in open_lots})
    if held and strategy == "direct-index":
        sym = held[int(rng.integers(len(held)))]
        i = index[sym]
        book.trade(
            date=dates[t_buy],
            account=acct,
            account_type="taxable",
            symbol=sym,
            side="buy",
            qty=max(1, int(5_000 // prices[t_buy, i])),
            price=float(prices[t_buy, i]),
        )
    others = [s for s in {x.symbol for x in open_lots} - sold if s not in held[:1]]
    if others:
        sym = sorted(others)[int(rng.integers(len(others)))]
        i = index[sym]
        book.trade(
            date=dates[t_buy],
            account=ira,
            account_type="ira",
            symbol=sym,
            side="buy",
            qty=max(1, int(3_000 // prices[t_buy, i])),
            price=float(prices[t_buy, i]),
        )
    return sorted(book.txns[before:], key=lambda x: (x.date, x.id))


def _account_spec(
    strategy: Strategy,
    *,
    acct: str,
    household: str,
    cash: Decimal,
    rng: np.random.Generator,
    snapshot: MarketSnapshot,
    state: LedgerState,
) -> AccountSpec:
    factors = snapshot.risk_model.factor_names
    tilts: list[FactorTilt] = []
    candidates = [f for f in TILT_FACTORS if f in factors]
    if candidates and strategy == "direct-index" and rng.random() < 0.5:
        tilts = [
            FactorTilt(
                factor=candidates[int(rng.integers(len(candidates)))],
                min_exposure=round(float(rng.uniform(0.05, 0.2)), 3),
            )
        ]
    held = sorted({x.symbol for x in state.lots if x.account == acct})
    exclusions = [held[int(rng.integers(len(held)))]] if held and rng.random() < 0.5 else []
    spec = AccountSpec(
        account_id=acct,
        household_id=household,
        account_type="taxable",
        strategy=strategy,
        cash_usd=cash,
        exclusions=exclusions,
        tilts=tilts,
        te_budget=0.02,
        max_weight=name_cap(snapshot),
    )
    if strategy == "long-short":
        return msgspec.structs.replace(
            spec,
            te_budget=0.04,
            long_short=LongShortSpec(long_w=1.3, short_w=0.3),
            max_cash_w=0.05,
        )
    if strategy == "market-neutral":
        return msgspec.structs.replace(
            spec, te_budget=0.06, max_weight=0.05, gross_limit_w=2.0, max_cash_w=1.0
        )
    return spec


def name_cap(snapshot: MarketSnapshot) -> float:
    """A single-name cap the benchmark itself satisfies with room to spare: 10%, or the largest
    benchmark weight plus 5 points when that is larger (a small universe is concentrated)."""
    return max(0.10, round(max(snapshot.benchmark_weights) + 0.05, 2))


# --------------------------------------------------------------------------------------------
# Many accounts, fast
# --------------------------------------------------------------------------------------------


def synthetic_book(
    *, accounts: int, names: int, seed: int, as_of: dt.date, steady_state: bool = True
) -> tuple[MarketSnapshot, list[tuple[AccountSpec, LedgerState]]]:
    """Many accounts on one universe, generated directly (no ledger replay).

    Households of one to three accounts (the first taxable, the others taxable or IRA) share
    one :class:`LedgerState` object carrying all their lots and a little wash-sale window memory
    (a recent loss sale and a recent purchase in about half of them).  Each taxable account
    holds ~90% of the names in ~4 lots each, bought over the last three years at prices drawn
    around today's (so gains and losses, short- and long-term terms all occur).

    With ``steady_state`` (the default) the book looks like one that taxview has managed every
    night: losses older than the wash window that were worth harvesting are gone (capped at
    :data:`STEADY_STATE_MAX_LOSS`) except for :data:`STEADY_STATE_FRESH_DIP` of the lots (today's
    dips).  ``steady_state=False`` keeps every drawn loss: a freshly transferred-in book, whose
    first rebalance harvests hundreds of lots.

    Args:
        accounts: number of accounts.
        names: universe size.
        seed: random seed.
        as_of: the day (moved back to a session of the generated market).

    Returns:
        The day's market snapshot and ``(account, household ledger state)`` pairs.
    """
    market, pairs = synthetic_book_stream(
        accounts=accounts, names=names, seed=seed, as_of=as_of, steady_state=steady_state
    )
    return market, list(pairs)


def synthetic_book_stream(
    *, accounts: int, names: int, seed: int, as_of: dt.date, steady_state: bool = True
) -> tuple[MarketSnapshot, Iterator[tuple[AccountSpec, LedgerState]]]:
    """:func:`synthetic_book` one household at a time: the market now, the pairs as they are
    drawn (a household's accounts one after another, sharing one state), so a consumer can
    compress or send each household and drop it.  The same arguments give the same pairs.
    """
    history = _market_history(names, seed, as_of)
    as_of = _session(history, as_of)
    snapshot = history.snapshot(as_of)
    rng = np.random.default_rng([seed, 7])
    # k days ago, as the NYSE session on or before it: lots are bought and sold on trading days
    # (contract audit, 2026-12-07: a third of the synthetic lots were dated on weekends and
    # holidays, e.g. Christmas Day).
    days = [trading_day_on_or_before(as_of - dt.timedelta(days=k)) for k in range(0, 3 * 366 + 1)]
    return snapshot, _synthetic_households(
        accounts=accounts,
        rng=rng,
        snapshot=snapshot,
        seed=seed,
        as_of=as_of,
        days=days,
        steady_state=steady_state,
    )


def _synthetic_households(
    *,
    accounts: int,
    rng: np.random.Generator,
    snapshot: MarketSnapshot,
    seed: int,
    as_of: dt.date,
    days: list[dt.date],
    steady_state: bool,
) -> Iterator[tuple[AccountSpec, LedgerState]]:
    prices = np.asarray(snapshot.prices)
    w_b = np.asarray(snapshot.benchmark_weights)
    symbols = snapshot.symbols
    n = len(symbols)
    index = {s: i for i, s in enumerate(symbols)}
    cap = name_cap(snapshot)
    made = 0
    h = 0
    while made < accounts:
        size = min(int(rng.integers(1, 4)), accounts - made)
        household = f"HH{seed:03d}-{h:05d}"
        h += 1
        members: list[tuple[str, AccountType]] = []
        lots: list[Lot] = []
        for m in range(size):
            aid = f"A{seed:03d}-{made + m:06d}"
            atype: AccountType = "taxable" if m == 0 or rng.random() < 0.5 else "ira"
            members.append((aid, atype))
            lots.extend(
                _account_lots(
                    rng,
                    aid=aid,
                    atype=atype,
                    prices=prices,
                    w_b=w_b,
                    symbols=symbols,
                    days=days,
                    n=n,
                    steady_state=steady_state,
                )
            )
        pending, recent = _window_memory(
            rng, members=members, lots=lots, prices=prices, symbols=symbols, days=days
        )
        state = LedgerState(
            as_of=as_of,
            household_id=household,
            lots=lots,
            pending_losses=pending,
            recent_purchases=recent,
        )
        cash_w = rng.uniform(0.0, 0.03, size=size)
        values = _account_values(lots, prices, index)
        for m, (aid, atype) in enumerate(members):
            tilt = []
            if rng.random() < 0.3:
                cands = [f for f in TILT_FACTORS if f in snapshot.risk_model.factor_names]
                if cands:
                    tilt = [FactorTilt(factor=cands[0], min_exposure=0.1)]
            # An account that drew no lot (a few names, an IRA holding 30% of them) is newly
            # funded: all cash (contract audit, 2026-12-07: a KeyError on 3-name books).
            cash = (
                Decimal(repr(round(float(cash_w[m]) * values[aid], 2)))
                if aid in values
                else NEW_ACCOUNT_CASH_USD
            )
            spec = AccountSpec(
                account_id=aid,
                household_id=household,
                account_type=atype,
                cash_usd=cash,
                tilts=tilt,
                exclusions=[symbols[int(rng.integers(n))]] if rng.random() < 0.2 else [],
                max_weight=cap,
            )
            yield spec, state
        made += size


#: The cash of a synthetic account that holds no lot: newly funded, invested by its first night.
NEW_ACCOUNT_CASH_USD = Decimal("1000000.00")


def _account_values(lots: list[Lot], prices: FloatArray, index: dict[str, int]) -> dict[str, float]:
    out: dict[str, float] = {}
    for x in lots:
        out[x.account] = out.get(x.account, 0.0) + float(x.quantity) * float(
            prices[index[x.symbol]]
        )
    return out


def _account_lots(
    rng: np.random.Generator,
    *,
    aid: str,
    atype: AccountType,
    prices: FloatArray,
    w_b: FloatArray,
    symbols: list[str],
    days: list[dt.date],
    n: int,
    steady_state: bool,
) -> list[Lot]:
    value = float(rng.uniform(2e5, 5e6))
    held = rng.random(n) < (0.9 if atype == "taxable" else 0.3)
    per = rng.integers(1, 8, size=n) * held  # lots per name, mean ~4
    name = np.repeat(np.arange(n), per)
    L = len(name)
    if L == 0:
        return []
    share = rng.dirichlet(np.ones(L)) if L < 2 else rng.random(L)
    weight = (w_b[name] + 1e-4) * share / np.bincount(name, weights=share, minlength=n)[name]
    weight = weight / weight.sum() * 0.98
    qty = np.maximum(1, np.floor(weight * value / prices[name])).astype(np.int64)
    age = rng.integers(1, 3 * 366, size=L)  # days held
    years = age / 365.25
    # Basis around today's price: a drift of ~8%/yr with 30% annual volatility.
    basis_ps = prices[name] * np.exp(-0.08 * years + 0.3 * np.sqrt(years) * rng.standard_normal(L))
    if steady_state:
        p = prices[name]
        old = age > 30
        keep = rng.random(L) < STEADY_STATE_FRESH_DIP
        cap = p * (1 + STEADY_STATE_MAX_LOSS * rng.random(L))
        basis_ps = np.where(old & ~keep, np.minimum(basis_ps, cap), basis_ps)
    cents = np.round(basis_ps * qty * 100).astype(np.int64)
    return [
        Lot(
            account=aid,
            symbol=symbols[i],
            lot_id=f"{aid}-L{j}",
            quantity=Decimal(int(q)),
            trade_date=days[a],
            acquired=days[a],
            cost_basis_usd=Decimal(int(c)).scaleb(-2),
            account_type=atype,
        )
        for j, (i, q, a, c) in enumerate(
            zip(name.tolist(), qty.tolist(), age.tolist(), cents.tolist(), strict=True)
        )
    ]


def _window_memory(
    rng: np.random.Generator,
    *,
    members: list[tuple[str, AccountType]],
    lots: list[Lot],
    prices: FloatArray,
    symbols: list[str],
    days: list[dt.date],
) -> tuple[list[PendingLoss], list[RecentPurchase]]:
    """A recent taxable loss sale (IRC §1091 window still open) and a recent purchase."""
    pending: list[PendingLoss] = []
    recent: list[RecentPurchase] = []
    aid, atype = members[0]
    free: list[int] = []
    i, ago, qty = 0, 0, Decimal(0)
    if rng.random() < 0.5:
        i = int(rng.integers(len(symbols)))
        ago = int(rng.integers(1, 25))
        qty = Decimal(int(rng.integers(10, 200)))
        # A ledger washes a loss into the household's unused purchases of the name within 30
        # days of the sale (IRC §1091(a)), so a loss still pending is of a name the household
        # did not buy then: the next such name after the drawn one (nightly audit: 4 demo
        # pending losses sat beside such purchases, 2 of them in IRAs).
        sold = days[ago]
        bought = {x.symbol for x in lots if abs((x.trade_date - sold).days) <= 30}
        free = [k for k in (*range(i, len(symbols)), *range(i)) if symbols[k] not in bought]
    if free:
        i = free[0]
        loss = (qty * Decimal(repr(round(float(prices[i]) * 0.1, 2)))).quantize(_CENT)
        pending.append(
            PendingLoss(
                txn=f"{aid}-S1",
                account=aid,
                symbol=symbols[i],
                lot_id=f"{aid}-sold1",
                date_sold=days[ago],
                quantity=qty,
                loss_usd=loss,
                sold_quantity=qty,
                acquired=days[ago + 200],
            )
        )
    recent_lots = [x for x in lots if (days[0] - x.trade_date).days <= 20]
    if recent_lots and rng.random() < 0.5:
        x = recent_lots[int(rng.integers(len(recent_lots)))]
        recent.append(
            RecentPurchase(
                txn=f"{x.lot_id}-T",
                account=x.account,
                account_type=x.account_type,
                symbol=x.symbol,
                lot_id=x.lot_id,
                date=x.trade_date,
                quantity=x.quantity,
            )
        )
    del atype
    return pending, recent


# --------------------------------------------------------------------------------------------
# Worker warm-up: a tiny request without a market history
# --------------------------------------------------------------------------------------------

#: Names of :func:`warmup_request`'s universe.
WARMUP_NAMES = 12


def warmup_request() -> RebalanceRequest:
    """A tiny, valid request that exercises the whole rebalance path in a few milliseconds.

    For a worker's start-up (imports, Clarabel's first call, the ledger's rules): unlike
    :func:`example_request`, which generates three years of market history (1.5–7 s even at 12
    names), the market here is written down directly — 12 names, a 5-factor risk model — and
    the household's history is a handful of trades replayed through the real
    :class:`~shared.ledger.Ledger`: a funding purchase 400 days ago (long-term lots), a second
    tranche 60 days ago (short-term), a loss sale 10 days ago (so a name may not be bought,
    IRC §1091) and a purchase 3 days ago (so that name's loss lots are in the window), with
    gains and losses on both tranches, and a value tilt.  A direct-indexing account (the
    strategy most accounts run); deterministic: every call returns the same request.

    Returns:
        The request.
    """
    n = WARMUP_NAMES
    as_of = DEFAULT_AS_OF
    rng = np.random.default_rng(12)
    symbols = [f"WRM{i:02d}" for i in range(n)]
    prices = np.round(rng.uniform(40.0, 160.0, n), 2)
    bench = rng.uniform(0.5, 1.5, n)
    bench = bench / bench.sum()
    sectors = ["alpha" if i % 2 else "beta" for i in range(n)]
    style = rng.standard_normal((n, 2))
    style = (style - style.mean(axis=0)) / style.std(axis=0)
    loadings = np.column_stack(
        [np.ones(n), [s == "alpha" for s in sectors], [s == "beta" for s in sectors], style]
    ).astype(np.float64)
    vols = np.array([0.16, 0.06, 0.06, 0.04, 0.05])
    factor_cov = np.diag(vols**2) + 0.0002 * (np.outer(vols, vols) > 0)
    market = MarketSnapshot(
        as_of=as_of,
        benchmark="warm-up",
        symbols=symbols,
        prices=prices.tolist(),
        benchmark_weights=bench.tolist(),
        sectors=sectors,
        risk_model=RiskModel(
            factor_names=["market", "sector:alpha", "sector:beta", "value", "momentum"],
            loadings=loadings.tolist(),
            factor_cov=factor_cov.tolist(),
            specific_var=rng.uniform(0.03, 0.09, n).round(4).tolist(),
        ),
    )
    acct, household = "WARMUP-1", "WARMUP"
    book = _Book(as_of)
    day = dt.timedelta(days=1)
    capital = 1_000_000.0
    # Two tranches: 400 days ago (long-term) and 60 days ago (short-term), at prices ±15%.
    for days, frac, move in ((400, 0.7, 0.85), (60, 0.3, 1.15)):
        for i in range(n):
            price = float(prices[i]) * (move if i % 3 else 2.0 - move)
            qty = int(bench[i] * 0.97 * capital * frac // price)
            if qty > 0:
                book.trade(
                    date=as_of - days * day,
                    account=acct,
                    account_type="taxable",
                    symbol=symbols[i],
                    side="buy",
                    qty=qty,
                    price=price,
                )
    # A loss sale 10 days ago (name 0's first lot was bought at 0.85×: sell below it) and a
    # purchase 3 days ago (name 2), so both wash-sale restrictions bite.
    lot0 = next(t for t in book.txns if t.symbol == symbols[0])
    book.trade(
        date=as_of - 10 * day,
        account=acct,
        account_type="taxable",
        symbol=symbols[0],
        side="sell",
        qty=int(lot0.quantity),
        price=float(lot0.price) * 0.9,
        lot_id=lot0.lot_id,
    )
    book.trade(
        date=as_of - 3 * day,
        account=acct,
        account_type="taxable",
        symbol=symbols[2],
        side="buy",
        qty=10,
        price=float(prices[2]),
    )
    ledger = Ledger(lot_method="specific", identical=[], household_id=household)
    for txn in book.txns:
        ledger.apply(txn)
    state = ledger.state(as_of)
    cash = max(book.cash[acct] + Decimal(int(capital)), Decimal(0)).quantize(_CENT)
    spec = AccountSpec(
        account_id=acct,
        household_id=household,
        cash_usd=cash,
        te_budget=0.06,
        max_weight=0.25,
        tilts=[FactorTilt(factor="value", min_exposure=0.05)],
    )
    return RebalanceRequest(as_of=as_of, account=spec, ledger=state, market=market)
