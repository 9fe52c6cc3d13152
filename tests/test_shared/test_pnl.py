"""The firm P/L fold is exact, associative and commutative, and splits terms per IRC §1222."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared import pnl
from shared.messages import Failed, RealizedSlice, Rejected, Solved, SolverInfo, Trade

DAY = dt.date(2025, 6, 2)


def _solved(account: str, gains: list[tuple[str, str]], tax: str = "0") -> Solved:
    realized = [
        RealizedSlice(
            symbol="AAA",
            lot_id=f"L{i}",
            quantity=Decimal(1),
            proceeds_usd=Decimal(100),
            cost_basis_usd=Decimal(100) - Decimal(g),
            gain_usd=Decimal(g),
            term=term,  # type: ignore[arg-type]
            date_acquired=dt.date(2024, 1, 2),
        )
        for i, (term, g) in enumerate(gains)
    ]
    losses = -sum((Decimal(g) for _, g in gains if Decimal(g) < 0), Decimal(0))
    return Solved(
        account_id=account,
        as_of=DAY,
        nav_usd=Decimal("1000000.00"),
        weights={},
        cash_w=0.0,
        trades=[
            Trade(
                symbol="AAA",
                side="sell",
                quantity=Decimal(1),
                price=Decimal(100),
                notional_usd=Decimal(100),
                lot_id="L0",
                reason="harvest",
            )
        ],
        realized=realized,
        realized_st_usd=Decimal(0),
        realized_lt_usd=Decimal(0),
        harvested_loss_usd=losses,
        estimated_tax_usd=Decimal(tax),
        te_ex_ante=0.01,
        te_budget=0.02,
        factor_exposures=[],
        solver=SolverInfo(
            solver="clarabel", status="optimal", iterations=1, solver_ms=1, total_ms=1
        ),
    )


def test_short_and_long_term_gains_and_losses_land_in_their_own_columns() -> None:
    p = pnl.account_pnl(
        _solved("A", [("short", "10.25"), ("short", "-3.10"), ("long", "7"), ("long", "-1.5")])
    )
    assert (p.st_gain_usd, p.st_loss_usd) == (Decimal("10.25"), Decimal("-3.10"))
    assert (p.lt_gain_usd, p.lt_loss_usd) == (Decimal("7.00"), Decimal("-1.50"))
    assert p.st_net_usd == Decimal("7.15") and p.lt_net_usd == Decimal("5.50")
    assert p.harvested_loss_usd == Decimal("4.60")


def test_tax_saved_is_the_negative_of_the_estimate_so_a_group_nets_its_accounts() -> None:
    saver = pnl.account_pnl(_solved("A", [], tax="-120.5"))
    payer = pnl.account_pnl(_solved("B", [], tax="80"))
    assert saver.tax_saved_usd == Decimal("120.50")
    assert payer.tax_saved_usd == Decimal("-80.00")
    household = pnl.fold([saver, payer])
    assert household.tax_saved_usd == -household.estimated_tax_usd == Decimal("40.50")


def test_rejected_and_failed_accounts_count_but_realize_nothing() -> None:
    r = pnl.account_pnl(Rejected(account_id="R", as_of=DAY, reason="bad"))
    f = pnl.account_pnl(Failed(account_id="F", as_of=DAY, reason="died"))
    assert (r.accounts, r.rejected, r.st_gain_usd) == (1, 1, Decimal("0.00"))
    assert (f.accounts, f.failed, f.trades) == (1, 1, 0)


_money = st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False)
_pnls = st.builds(
    pnl.PnL,
    accounts=st.integers(0, 50),
    ok=st.integers(0, 50),
    st_gain_usd=_money,
    st_loss_usd=_money,
    lt_gain_usd=_money,
    harvested_loss_usd=_money,
    estimated_tax_usd=_money,
)


@given(_pnls, _pnls, _pnls)
def test_combine_is_associative(a: pnl.PnL, b: pnl.PnL, c: pnl.PnL) -> None:
    assert pnl.combine(pnl.combine(a, b), c) == pnl.combine(a, pnl.combine(b, c))


@given(_pnls, _pnls)
def test_combine_is_commutative_with_zero_as_identity(a: pnl.PnL, b: pnl.PnL) -> None:
    assert pnl.combine(a, b) == pnl.combine(b, a)
    assert pnl.combine(a, pnl.ZERO) == a


@given(st.lists(_pnls, max_size=12), st.randoms())
def test_the_firm_total_does_not_depend_on_arrival_order(items: list[pnl.PnL], rnd) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert pnl.fold(items) == pnl.fold(shuffled)


def test_grouping_by_household_then_folding_equals_folding_the_accounts() -> None:
    outcomes = [
        _solved("A1", [("short", "-5")]),
        _solved("A2", [("long", "3.33")]),
        _solved("B1", [("long", "-1.01")], tax="-2"),
        Rejected(account_id="B2", as_of=DAY, reason="x"),
    ]
    household = {"A1": "A", "A2": "A", "B1": "B", "B2": "B"}
    groups = pnl.group_by(outcomes, lambda o: household[o.account_id])
    assert list(groups) == ["A", "B"]
    assert pnl.fold(groups.values()) == pnl.fold(pnl.account_pnl(o) for o in outcomes)
