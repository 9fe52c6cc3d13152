"""Regression tests for the second independent solve audit (all three strategies).

An independent CVXPY formulation of DESIGN §2 was solved on requests of ``taxview
example-request`` with the product's own sides fixed; each test here is a request on which the
product was measurably worse than that optimum (or broke a rule) before its fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import msgspec
import numpy as np
import pytest

import shared.rebalance as rb
from shared.errors import InputError
from shared.examples import example_request, warmup_request
from shared.messages import RebalanceRequest, Solved
from shared.optimizer.check import CHECK_TOL, constructive_sales, objective_value
from shared.optimizer.data import ProblemData, Solution
from shared.optimizer.problem import SolveSettings, solve
from shared.rebalance import rebalance


def _captured(names: int, seed: int, strategy: str) -> list[tuple[ProblemData, Solution]]:
    calls: list[tuple[ProblemData, Solution]] = []

    def capture(data: ProblemData) -> Solution:
        sol = solve(data)
        calls.append((data, sol))
        return sol

    out = rebalance(example_request(names=names, seed=seed, strategy=strategy), solve=capture)
    assert isinstance(out, Solved)
    assert calls
    return calls


def _with_only_the_flips_used(data: ProblemData, sol: Solution) -> ProblemData:
    """The guard's rules (IRC §1259) with exactly the flips ``sol`` made: a name held long that
    it shorts has every long lot sold and no buy, a name held short that it buys has every short
    lot covered and no new short; every other held name keeps its direction, unforced."""
    n = data.n
    long0 = np.bincount(data.lot_name, weights=data.lot_w, minlength=n)
    short0 = np.bincount(data.short_name, weights=data.short_w, minlength=n)
    to_short = (long0 > 0) & (sol.short > CHECK_TOL)
    to_long = (short0 > 0) & (sol.buy > CHECK_TOL)
    sell_min = np.where(to_short[data.lot_name], data.lot_w, 0.0)
    cover_min = np.where(to_long[data.short_name], data.short_w, 0.0)
    return replace(
        data,
        short_allowed=data.short_allowed & ((long0 <= 0) | to_short) & ~to_long,
        buy_allowed=data.buy_allowed & ((short0 <= 0) | to_long) & ~to_short,
        lot_sell_min=sell_min,
        short_cover_min=cover_min,
    )


def test_a_market_neutral_name_flipped_in_vain_is_not_forced_closed() -> None:
    # 50 names, seed 8: the first (guarded) solve sold out 11 names; the flip solve forced all
    # their lots sold and opened the other direction in only 5.  The other 6 (MEE: a 6.5% short
    # at a gain) were closed for nothing: estimated tax $23,362 instead of $5,948, objective
    # 0.0127 against 0.0029 for the optimum of the flips actually made (IRC §1259 guard).
    calls = _captured(50, 8, "market-neutral")
    for data, sol in calls:
        assert constructive_sales(data, sol) == []
        legal = _with_only_the_flips_used(data, sol)
        best = solve(legal, settings=SolveSettings(constructive_sale_guard=False))
        assert constructive_sales(legal, best) == []
        assert sol.objective <= best.objective + 1e-6 * max(1.0, abs(best.objective))
    # The first solve releases names flipped in vain (the side flip pass's later solves start
    # from sides where the guard may have nothing to release).
    assert any("released" in a for a in calls[0][1].attempts)


@pytest.mark.parametrize(
    ("strategy", "names", "seed"),
    [("market-neutral", 50, 2), ("long-short", 50, 1), ("market-neutral", 100, 7)],
)
def test_the_guarded_solve_is_optimal_for_the_flips_it_made(
    strategy: str, names: int, seed: int
) -> None:
    # 100/7: one release was not enough (a released solve left another flip unused: 7.7e-4 of
    # NAV above the optimum for the flips made); the release now repeats.
    for data, sol in _captured(names, seed, strategy):
        legal = _with_only_the_flips_used(data, sol)
        best = solve(legal, settings=SolveSettings(constructive_sale_guard=False))
        assert sol.objective <= best.objective + 1e-6 * max(1.0, abs(best.objective))


def _ticket_objective(ctx: rb._Context, out: Solved) -> float:
    """The objective of DESIGN §2 at the outcome's rounded trades (the account's base problem)."""
    base = ctx.base
    p, nav = ctx.market.prices, ctx.nav
    longs = {lot.lot_id: j for j, lot in enumerate(ctx.longs.lots)}
    shorts = {lot.lot_id: j for j, lot in enumerate(ctx.shorts.lots)}
    sell, cover = np.zeros(ctx.longs.size), np.zeros(ctx.shorts.size)
    buy, short = np.zeros(base.n), np.zeros(base.n)
    for t in out.trades:
        i = ctx.market.index[t.symbol]
        w = float(t.quantity) * p[i] / nav
        if t.side == "sell":
            sell[longs[t.lot_id]] += w
        elif t.side == "cover":
            cover[shorts[t.lot_id]] += w
        elif t.side == "buy":
            buy[i] += w
        else:
            short[i] += w
    return objective_value(base, sell, buy, cover, short)


def _added_and_loss_sold(ctx: rb._Context, out: Solved) -> set[str]:
    added = {t.symbol for t in out.trades if t.side in ("buy", "short")}
    return added & {s.symbol for s in out.realized if s.gain_usd < 0}


@pytest.mark.parametrize(("strategy", "seed"), [("long-short", 5), ("market-neutral", 4)])
def test_a_long_short_or_market_neutral_book_reopens_the_names_it_did_not_harvest(
    strategy: str, seed: int
) -> None:
    # 100 names: the pre-pass puts every name with a worthwhile loss lot on the harvest side (no
    # buys, no new shorts); the side refinement that reopens the ones the solve then leaves
    # unharvested ran for direct indexing only.  The long/short book harvested $77k where the
    # reopened sides give $121k (objective 0.027 of NAV better); the sleeve 0.028 of NAV.
    request: RebalanceRequest = example_request(names=100, seed=seed, strategy=strategy)
    market, scan = rb._validate(request)
    ctx = rb._context(request, market, scan)
    locked = np.zeros(ctx.base.n, dtype=np.bool_)
    pre = rb.harvest_sides(ctx, locked)
    first = solve(rb._with_sides(ctx, pre, locked))
    keep = rb._loss_sold_names(ctx, first) | ~ctx.base.buy_allowed
    keep |= ctx.w0 > ctx.base.max_w + rb.WEIGHT_EPS
    reopened = rb._spread_to_groups(keep, ctx.group) & pre
    assert (pre & ~reopened).any()
    best = solve(rb._with_sides(ctx, reopened, locked))
    out = rebalance(request)
    assert isinstance(out, Solved) and out.status == "ok"
    assert any("reopened" in a for a in out.solver.attempts)
    # Rounding to shares costs ~1e-5 of NAV here; the unrefined ticket was 1e-2 worse.
    assert _ticket_objective(ctx, out) <= best.objective + 1e-3
    assert _added_and_loss_sold(ctx, out) == set()


def test_a_reopened_solve_worse_than_its_start_is_solved_again_with_the_starts_flips() -> None:
    # Market-neutral audit, 100 names seed 3: the second reopening round's guard chose other
    # flips than the round's starting solution and ended worse (−0.05310 against −0.05600), so
    # refining stopped there: −0.05600 kept, against −0.05803 for the product's own final
    # flips and sides in an independent CVXPY model.  The starting solution's flips (feasible
    # for the reopened problem) are now tried when the guard's own end above it.
    request = example_request(names=100, seed=3, strategy="market-neutral")
    market, scan = rb._validate(request)
    ctx = rb._context(request, market, scan)
    out = rebalance(request)
    assert isinstance(out, Solved) and out.status == "ok"
    assert any("the hint's flips tried too" in a for a in out.solver.attempts)
    assert _ticket_objective(ctx, out) <= -0.0580
    assert _added_and_loss_sold(ctx, out) == set()


def test_a_sleeve_whose_searched_sides_fail_after_flips_is_searched_again_without_flips() -> None:
    # 50 names, seed 6: the free solve flipped names (sold a long out at a loss and shorted it);
    # read off as sides, the flipped names landed on the harvest side where they may not be
    # shorted, the searched sides were infeasible at every level of the chain and the sleeve was
    # held (no trades) after relaxing its risk budget away.  Sides read off a free solve without
    # flips are feasible as given.
    request = example_request(names=50, seed=6, strategy="market-neutral")
    market, scan = rb._validate(request)
    ctx = rb._context(request, market, scan)
    out = rebalance(request)
    assert isinstance(out, Solved)
    assert out.status == "ok" and out.relaxations == []
    assert any("searched sides (no flips)" in a for a in out.solver.attempts)
    assert _added_and_loss_sold(ctx, out) == set()
    assert abs(out.cash_w - 1.0) < 1e-3  # dollar neutral after rounding


Edit = Callable[[RebalanceRequest], RebalanceRequest]


def _ledger(edit: Callable[[Any], Any]) -> Edit:
    return lambda r: msgspec.structs.replace(r, ledger=edit(r.ledger))


def _pending(**changes: Any) -> Edit:
    return _ledger(
        lambda g: msgspec.structs.replace(
            g,
            pending_losses=[
                msgspec.structs.replace(g.pending_losses[0], **changes),
                *g.pending_losses[1:],
            ],
        )
    )


def _recent(**changes: Any) -> Edit:
    return _ledger(
        lambda g: msgspec.structs.replace(
            g,
            recent_purchases=[
                msgspec.structs.replace(g.recent_purchases[0], **changes),
                *g.recent_purchases[1:],
            ],
        )
    )


def _lot0(**changes: Any) -> Edit:
    return _ledger(
        lambda g: msgspec.structs.replace(
            g, lots=[msgspec.structs.replace(g.lots[0], **changes), *g.lots[1:]]
        )
    )


def _price0(value: float) -> Edit:
    return lambda r: msgspec.structs.replace(
        r, market=msgspec.structs.replace(r.market, prices=[value, *r.market.prices[1:]])
    )


FUTURE = dt.date(2099, 1, 1)

#: Each was a traceback (decimal.InvalidOperation) or silently solved before the audit.
BAD: list[tuple[str, Edit, str]] = [
    ("pending NaN shares", _pending(quantity=Decimal("NaN")), "pending_losses[0].quantity"),
    ("pending NaN sold", _pending(sold_quantity=Decimal("NaN")), "pending_losses[0].sold_quantity"),
    ("pending NaN loss", _pending(loss_usd=Decimal("NaN")), "pending_losses[0].loss_usd"),
    ("pending negative loss", _pending(loss_usd=Decimal(-5)), "pending_losses[0].loss_usd"),
    ("pending sold later", _pending(date_sold=FUTURE), "pending_losses[0].date_sold"),
    ("recent NaN shares", _recent(quantity=Decimal("NaN")), "recent_purchases[0].quantity"),
    ("recent zero shares", _recent(quantity=Decimal(0)), "recent_purchases[0].quantity"),
    ("recent bought later", _recent(date=FUTURE), "recent_purchases[0].date"),
    ("lot of 1e30 shares", _lot0(quantity=Decimal("1e30")), "lots[0].quantity"),
    (
        "lot NaN wash adjustment",
        _lot0(wash_adjustment_usd=Decimal("NaN")),
        "lots[0].wash_adjustment_usd",
    ),
    (
        "one lot id on two purchases",
        _ledger(
            lambda g: msgspec.structs.replace(
                g,
                lots=[
                    *g.lots,
                    msgspec.structs.replace(
                        g.lots[0],
                        trade_date=g.lots[0].trade_date - dt.timedelta(days=1),
                        acquired=g.lots[0].acquired - dt.timedelta(days=1),
                    ),
                ],
            )
        ),
        "lots[{n}].lot_id",
    ),
    (
        "cash of 1e30",
        lambda r: msgspec.structs.replace(
            r, account=msgspec.structs.replace(r.account, cash_usd=Decimal("1e30"))
        ),
        "account.cash_usd",
    ),
    ("price of 1e300", _price0(1e300), "market.prices[0]"),
    ("price below 4 decimals", _price0(4e-5), "market.prices[0]"),
]


@pytest.mark.parametrize(("what", "edit", "field"), BAD, ids=[b[0] for b in BAD])
def test_malformed_window_memory_lots_cash_and_prices_are_rejected_naming_the_field(
    what: str, edit: Edit, field: str
) -> None:
    request = warmup_request()
    assert request.ledger.pending_losses and request.ledger.recent_purchases
    assert request.ledger.lots[0].account == request.account.account_id
    bad = edit(request)
    with pytest.raises(InputError) as info:
        rebalance(bad)
    expected = field.format(n=len(request.ledger.lots))
    if not expected.startswith(("account.", "market.")):
        expected = f"ledger.{expected}"
    assert info.value.field == expected, str(info.value)
    assert info.value.account == request.account.account_id


def _stored_request(name: str) -> RebalanceRequest:
    import gzip
    from pathlib import Path

    raw = gzip.decompress((Path(__file__).parent / "data" / name).read_bytes())
    return msgspec.json.decode(raw, type=RebalanceRequest)


def test_side_refinement_repeats_while_a_reopened_solve_leaves_harvest_names_unsold() -> None:
    # Long/short audit: a 100-name 150/50 book with short lots (taxview example-request
    # --names 100 --seed 7 --strategy long-short, ten names turned into short lots).  The
    # first reopening cut its harvest side to the names sold at a loss, and the re-solve then
    # sold fewer of them (58 → 43): 15 names stayed unbuyable and unsold, objective −0.0345
    # against −0.0575 for its own final sides in an independent CVXPY model (tax −3.9% of NAV
    # against −6.2%).  Reopening again from the better solution reaches that optimum.
    out = rebalance(_stored_request("ls_100_seed7_150_50_request.json.gz"))
    assert isinstance(out, Solved) and out.status == "relaxed"
    assert out.relaxations == ["te_budget×1.5"]
    assert out.estimated_tax_usd < Decimal("-0.06") * out.nav_usd
    reopened = [a for a in out.solver.attempts if "/reopened" in a and a.endswith("Solved")]
    assert len({a.split(":")[0] for a in reopened}) >= 2, out.solver.attempts


def test_a_gross_limit_below_the_long_short_shape_floors_is_rejected_naming_it() -> None:
    # Long/short audit: 200/100 with gross_limit_w 2.9 can never hold its shape (the floors
    # need 1.99 + 0.99); it was accepted and the chain dropped the whole TE budget first.
    request = example_request(names=40, seed=3, strategy="long-short")
    account = request.account
    assert account.long_short is not None
    shape = msgspec.structs.replace(account.long_short, long_w=2.0, short_w=1.0, gross_limit_w=2.9)
    bad = msgspec.structs.replace(
        request, account=msgspec.structs.replace(account, long_short=shape)
    )
    with pytest.raises(InputError, match="below the 2/1 shape's floors") as err:
        rb.validate_request(bad)
    assert err.value.field == "account.long_short.gross_limit_w"
    ok = msgspec.structs.replace(shape, gross_limit_w=2.98)
    rb.validate_request(
        msgspec.structs.replace(request, account=msgspec.structs.replace(account, long_short=ok))
    )


@pytest.mark.parametrize(
    ("name", "dropped"),
    [
        ("fuzz_gain_budget_relaxed_but_met_request.json.gz", "gain_budget"),
        ("fuzz_tilt_relaxed_but_met_request.json.gz", "tilt"),
    ],
)
def test_a_limit_the_final_ticket_meets_is_not_recorded_as_relaxed(name: str, dropped: str) -> None:
    # Fuzz audit (2026-12-07, eighth session): the chain dropped the limit on the sides it had
    # searched, the refined sides then met it — the outcome still said it was dropped
    # (−$70,782.54 realized against a +$10,000 budget; momentum 0.1091 against a 0.1 floor).
    request = _stored_request(name)
    out = rebalance(request)
    assert dropped not in out.relaxations and not out.limit_breaches
    acct = request.account
    if dropped == "gain_budget":
        assert acct.gain_budget_usd is not None
        assert out.realized_st_usd + out.realized_lt_usd <= acct.gain_budget_usd
    else:
        (tilt,) = acct.tilts
        (row,) = [x for x in out.factor_exposures if x.factor == tilt.factor]
        assert row.active >= tilt.min_exposure
        assert out.status == "ok" and out.relaxations == []
