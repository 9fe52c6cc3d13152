"""Rounding long/short and market-neutral tickets to shares: the share-by-share repair keeps the
hard limits of the problem solved (docs/rebalance.md §7), and every limit is checked here
independently, from the request and the outcome's trades alone (no product code)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import pytest

import shared.rebalance as rb
from shared.examples import example_request
from shared.messages import RebalanceRequest, Solved
from shared.optimizer.check import objective_value
from shared.optimizer.data import ProblemData
from shared.rebalance import rebalance

#: Inequalities are held to this (of NAV); the post-rounding check's own tolerance.
TOL = 1e-9
#: What whole shares cannot meet exactly (a sleeve's net 0 and Bᵀw = 0, the 130/30 shape
#: floors): docs/rebalance.md §7 holds them to 1e-3 of NAV.
EQ = 1e-3


def _request(names: int, seed: int, strategy: str, *, fractional: bool) -> RebalanceRequest:
    r = example_request(names=names, seed=seed, strategy=strategy)
    return msgspec.structs.replace(
        r, account=msgspec.structs.replace(r.account, fractional_shares=fractional)
    )


def _ticket_cash(request: RebalanceRequest, out: Solved) -> Decimal:
    """The account's cash after the ticket, in dollars: each line moves it by its notional."""
    flow = sum(
        (t.notional_usd if t.side in ("sell", "short") else -t.notional_usd for t in out.trades),
        Decimal(0),
    )
    return request.account.cash_usd + flow


def _misses(request: RebalanceRequest, out: Solved) -> list[str]:
    """Every hard limit of the account the rounded ticket misses, recomputed from the request's
    lots and prices and the outcome's trades (weights at the snapshot's prices, of the pre-trade
    NAV, as docs/rebalance.md §2 defines them)."""
    acct, market = request.account, request.market
    index = {s: i for i, s in enumerate(market.symbols)}
    p = np.asarray(market.prices)
    n = len(p)
    long_sh, short_sh = np.zeros(n), np.zeros(n)
    for lot in request.ledger.lots:
        if lot.account == acct.account_id:
            (short_sh if lot.short else long_sh)[index[lot.symbol]] += float(lot.quantity)
    nav = float(acct.cash_usd) + float(long_sh @ p) - float(short_sh @ p)
    bought, shorted = set(), set()
    traded = 0.0
    for t in out.trades:
        i, q = index[t.symbol], float(t.quantity)
        traded += q * p[i] / nav
        if t.side == "sell":
            long_sh[i] -= q
        elif t.side == "buy":
            long_sh[i] += q
            bought.add(t.symbol)
        elif t.side == "cover":
            short_sh[i] -= q
        else:
            short_sh[i] += q
            shorted.add(t.symbol)
    w_long, w_short = long_sh * p / nav, short_sh * p / nav
    w = w_long - w_short
    cap = np.where(np.isin(market.symbols, acct.exclusions), 0.0, acct.max_weight)
    misses: list[str] = []
    if (over := np.maximum(np.abs(w) - cap, 0.0)).max() > TOL:
        misses.append(f"|w| above max_weight by {over.max():.3g}")
    if (neg := min(long_sh.min(), short_sh.min())) < -1e-9:
        misses.append(f"more shares sold than held ({neg:.3g})")
    # IRC §1259: no name left long and short through a buy or a new short of this ticket.
    both = [s for s in bought if short_sh[index[s]] > 1e-9]
    both += [s for s in shorted if long_sh[index[s]] > 1e-9]
    if both:
        misses.append(f"long and short through a trade: {sorted(both)}")
    # IRC §1091: no name bought (or shorted) and sold (covered) at a loss in one ticket.
    loss = {s.symbol for s in out.realized if s.gain_usd < 0}
    if washed := loss & (bought | shorted):
        misses.append(f"bought and sold at a loss: {sorted(washed)}")
    cash = _ticket_cash(request, out)
    if cash < 0:
        misses.append(f"cash ${cash} after the ticket")
    loadings = np.asarray(market.risk_model.loadings)
    cov = np.asarray(market.risk_model.factor_cov)
    spec = np.asarray(market.risk_model.specific_var)
    bench = (
        np.zeros(n) if acct.strategy == "market-neutral" else np.asarray(market.benchmark_weights)
    )
    a = w - bench
    y = loadings.T @ a
    te = float(np.sqrt(y @ cov @ y + spec @ (a * a)))
    if te > acct.te_budget + TOL:
        misses.append(f"TE (risk) {te:.6f} above {acct.te_budget}")
    if acct.turnover_limit_w is not None and traded > acct.turnover_limit_w + TOL:
        misses.append(f"turnover {traded:.6f}")
    cash_w = 1.0 - float(w.sum())
    if acct.strategy == "long-short":
        ls = acct.long_short
        assert ls is not None
        band = max(rb.LONG_SHORT_BAND, acct.min_cash_w)
        long_side, short_side = float(w_long.sum()), float(w_short.sum())
        if not ls.long_w - band - EQ <= long_side <= ls.long_w + TOL:
            misses.append(f"long side {long_side:.6f}")
        if not ls.short_w - band - EQ <= short_side <= ls.short_w + TOL:
            misses.append(f"short side {short_side:.6f}")
        gross = ls.gross_limit_w or ls.long_w + ls.short_w
        if long_side + short_side > gross + TOL:
            misses.append(f"gross {long_side + short_side:.6f}")
        if not acct.min_cash_w - TOL <= cash_w <= min(acct.max_cash_w, band) + TOL:
            misses.append(f"cash {cash_w:.3g} outside its range")
    else:
        if abs(float(w.sum())) > EQ:
            misses.append(f"net {float(w.sum()):.6f}")
        if (worst := float(np.abs(loadings.T @ w).max())) > EQ:
            misses.append(f"factor exposure {worst:.6f}")
        if float(np.abs(w).sum()) > acct.gross_limit_w + TOL:
            misses.append(f"gross {float(np.abs(w).sum()):.6f}")
    return misses


def _solved(request: RebalanceRequest) -> Solved:
    out = rebalance(request)
    assert isinstance(out, Solved)
    assert out.status == "ok" and out.relaxations == []  # the account's own limits apply
    return out


@pytest.mark.parametrize("seed", [0, 2])
def test_a_fractional_long_short_ticket_kept_to_the_cent_reports_no_false_cash_breach(
    seed: int,
) -> None:
    # 40 names, fractional shares: the ticket left $0.00 of cash to the cent, but the weights,
    # at the snapshot's full-precision prices, put it at -1e-7 of NAV and the check listed
    # "cash -0.000000 outside [0.0, 0.01]".  The repair now holds the cash range on the
    # weights too (a 1/10,000 share here or there), as it does for direct indexing.
    request = _request(40, seed, "long-short", fractional=True)
    out = rebalance(request)
    assert isinstance(out, Solved) and out.status in ("ok", "relaxed")
    assert out.limit_breaches == []
    assert out.cash_w >= 0.0
    assert _ticket_cash(request, out) >= 0


@pytest.mark.parametrize(
    ("names", "seed"),
    [(100, 3), (500, 3), (500, 4)],
)
def test_whole_share_long_short_books_end_inside_their_130_30_shape_and_cash_range(
    names: int, seed: int
) -> None:
    # Before the repair: 100/3 long 1.288970 and short 0.288972 against floors of 1.29 and
    # 0.29; 500/3 long 1.288532; 500/4 long 1.288143 and cash 0.010007 above its 0.01.
    request = _request(names, seed, "long-short", fractional=False)
    out = _solved(request)
    assert out.limit_breaches == []
    assert _misses(request, out) == []


@pytest.mark.parametrize(("names", "seed"), [(300, 0), (500, 0), (500, 3)])
def test_whole_share_market_neutral_sleeves_end_net_and_factor_neutral_within_tolerance(
    names: int, seed: int
) -> None:
    # Before the repair: 300/0 net -0.0034 and market exposure 0.00334; 500/0 momentum
    # 0.00196; 500/3 net -0.0029 and low_vol -0.00479 (five factors beyond 1e-3).
    request = _request(names, seed, "market-neutral", fractional=False)
    out = _solved(request)
    assert out.limit_breaches == []
    assert _misses(request, out) == []
    assert [t for t in out.trades if t.side in ("short", "cover")]


@pytest.mark.parametrize("strategy", ["long-short", "market-neutral"])
def test_what_the_repair_leaves_is_listed_by_the_independent_check_never_silently(
    strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _request(500, 3, strategy, fractional=False)
    monkeypatch.setattr(rb, "MAX_REPAIR_STEPS", 0)
    out = _solved(request)
    misses = _misses(request, out)
    assert misses  # whole shares alone miss a limit here ...
    assert out.limit_breaches  # ... and the outcome says so
    assert all(b.endswith("after rounding to shares") for b in out.limit_breaches)


def test_the_repair_never_gives_a_name_a_direction_the_ticket_did_not() -> None:
    # Names the rounded ticket shorts may not be bought, names it buys may not be shorted, a
    # name held short may be bought only when the ticket flips it (every short lot covered):
    # a name long and short through a trade is a constructive sale (IRC §1259).
    request = _request(100, 0, "market-neutral", fractional=False)
    market, scan = rb._validate(request)
    ctx = rb._context(request, market, scan)
    none = np.zeros(len(market.symbols), dtype=np.bool_)
    data = rb._with_sides(ctx, rb.harvest_sides(ctx, none), none)
    n = data.n
    held_short = np.bincount(ctx.shorts.name, weights=ctx.shorts.qty, minlength=n) > 0
    held_long = np.bincount(ctx.longs.name, weights=ctx.longs.qty, minlength=n) > 0
    assert held_short.any() and held_long.any()
    buy_sh, short_sh = np.zeros(n), np.zeros(n)
    cover_sh = np.zeros(ctx.shorts.size)
    free = np.flatnonzero(data.buy_allowed & data.short_allowed & ~held_long & ~held_short)
    u = int(free[0])  # held neither way: a sleeve (no shape floors) may go either way
    can_buy, can_short = rb._book_directions(data, ctx, buy_sh, short_sh, cover_sh)
    assert can_buy[u] and can_short[u]
    buy_sh[u] = 1.0  # the ticket buys it: never shorted
    can_buy, can_short = rb._book_directions(data, ctx, buy_sh, short_sh, cover_sh)
    assert can_buy[u] and not can_short[u]
    buy_sh[u], short_sh[u] = 0.0, 1.0  # the ticket shorts it: never bought
    can_buy, can_short = rb._book_directions(data, ctx, buy_sh, short_sh, cover_sh)
    assert can_short[u] and not can_buy[u]
    short_sh[u] = 0.0
    assert not (can_buy & held_short).any()  # no flips in this ticket
    assert not (can_short & held_long).any()
    assert not (can_buy & ~data.buy_allowed).any() and not (can_short & ~data.short_allowed).any()
    # A name held short whose every short lot the ticket covers and which it buys: a flip.
    j = int(np.flatnonzero(held_short & data.buy_allowed & ~held_long)[0])
    lots = ctx.shorts.name == j
    cover_sh[lots] = ctx.shorts.qty[lots]
    buy_sh[j] = 1.0
    can_buy, _ = rb._book_directions(data, ctx, buy_sh, short_sh, cover_sh)
    assert can_buy[j]
    cover_sh[np.flatnonzero(lots)[0]] -= 1.0  # one share left short: no more buys
    can_buy, _ = rb._book_directions(data, ctx, buy_sh, short_sh, cover_sh)
    assert not can_buy[j]


def test_the_repair_costs_little_of_the_objective_on_a_500_name_sleeve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The repaired ticket's objective (alpha, risk, tax, trading cost at the rounded trades)
    # against the continuous solution of the same problem: rounding and repair cost < 1e-3 of
    # NAV (measured 1.2-4.4e-4 at 300-500 names, docs/rebalance.md §7).
    request = _request(500, 0, "market-neutral", fractional=False)
    seen: dict[str, Any] = {}
    chain, enforce = rb._solve_chain, rb._enforce_limits

    def keep_chain(*args: Any) -> Any:
        out = chain(*args)
        seen["sol"], seen["data"] = out[0], out[1]
        return out

    def keep_orders(ctx: rb._Context, data: ProblemData, orders: rb._Orders) -> Any:
        out = enforce(ctx, data, orders)
        seen["ctx"], seen["orders"] = ctx, out[0]
        return out

    monkeypatch.setattr(rb, "_solve_chain", keep_chain)
    monkeypatch.setattr(rb, "_enforce_limits", keep_orders)
    out = _solved(request)
    assert out.limit_breaches == []
    ctx, orders, data, sol = seen["ctx"], seen["orders"], seen["data"], seen["sol"]
    p, nav, n = ctx.market.prices, ctx.nav, data.n

    def per_weight(index: Any, qty: list[Decimal], size: int, name: Any) -> Any:
        arr = np.zeros(size)
        arr[index] = np.asarray([float(q) for q in qty]) * p[name[index]] / nav
        return arr

    rounded = objective_value(
        data,
        per_weight(orders.sell_lot, orders.sell_qty, ctx.longs.size, ctx.longs.name),
        per_weight(orders.buy_name, orders.buy_qty, n, np.arange(n)),
        per_weight(orders.cover_lot, orders.cover_qty, ctx.shorts.size, ctx.shorts.name),
        per_weight(orders.short_name, orders.short_qty, n, np.arange(n)),
    )
    continuous = objective_value(data, sol.sell, sol.buy, sol.cover, sol.short)
    assert 0.0 <= rounded - continuous < 1e-3


def test_a_130_30_book_pinned_to_its_floors_clears_its_rounded_te_breach() -> None:
    # Reference audit (2026-12-07): rounding put this book 2.4e-5 above its 4% TE budget with
    # its shape floors and cash floor binding; the repair closed it one pair of shares at a time
    # between single moves and stopped after 400 steps at 0.04000765.  Accepted pairs are now
    # taken again while they help, and the repair may take 1,000 steps.
    request = _request(80, 3, "long-short", fractional=False)
    out = _solved(request)
    assert out.limit_breaches == []
    assert out.te_ex_ante <= request.account.te_budget
    assert _misses(request, out) == []
