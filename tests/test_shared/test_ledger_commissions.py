"""Commissions in the ledger, hand-computed to the cent.

IRS Pub. 550 ("Basis of Investment Property"): the basis of stock bought is the purchase price
plus the costs of purchase, such as commissions; the amount realized on a sale is reduced by the
selling expenses (Form 8949 instructions: proceeds net of commissions).  A wash sale (IRC §1091)
disallows the loss as so computed, and the replacement's basis is its own cost (commission
included) plus the disallowed loss (§1091(d)).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from shared.errors import LedgerError
from shared.ledger import Ledger
from shared.messages import Transaction

D = Decimal


def tx(tid: str, date: str, side: str, qty: str, price: str, *, lot: str = "") -> Transaction:
    return Transaction(
        id=tid,
        date=dt.date.fromisoformat(date),
        account="A",
        symbol="X",
        side=side,  # type: ignore[arg-type]
        quantity=D(qty),
        price=D(price),
        lot_id=lot,
    )


def test_a_buy_commission_enters_the_basis_and_a_sale_commission_leaves_the_proceeds() -> None:
    ledger = Ledger()
    ledger.apply(tx("b", "2024-01-02", "buy", "100", "50.00", lot="L1"), commission=D("7.95"))
    (lot,) = ledger.open_lots()
    assert lot.cost_basis_usd == D("5007.95")  # 5,000.00 + 7.95
    (s,) = ledger.apply(tx("s", "2024-06-03", "sell", "100", "60.00"), commission=D("7.95"))
    assert (s.proceeds, s.cost_basis, s.gain, s.term) == (
        D("5992.05"),  # 6,000.00 − 7.95
        D("5007.95"),
        D("984.10"),  # 1,000.00 less both commissions
        "short",
    )
    assert ledger.open_lots() == []


def test_a_sale_over_several_lots_splits_its_commission_so_the_slices_add_up_to_it() -> None:
    ledger = Ledger()  # FIFO
    ledger.apply(tx("b1", "2024-01-02", "buy", "10", "20.00", lot="L1"), commission=D("1.00"))
    ledger.apply(tx("b2", "2024-02-01", "buy", "20", "25.00", lot="L2"), commission=D("1.00"))
    ledger.apply(tx("b3", "2024-03-01", "buy", "3", "30.00", lot="L3"), commission=D("0.99"))
    slices = ledger.apply(tx("s", "2024-04-01", "sell", "31", "40.00"), commission=D("1.00"))
    # Amount 1,240.00 over 10 + 20 + 1 shares: 400.00, 800.00, 40.00.  Commission 1.00,
    # cumulatively rounded: 10/31 → 0.32; 30/31 → 0.97, so 0.65; 31/31 → 1.00, so 0.03.
    # L3's basis 90.99 for 3 shares: 1 share takes 30.33 and 60.66 stays on the lot.
    got = [(s.lot_id, s.quantity, s.proceeds, s.cost_basis, s.gain) for s in slices]
    assert got == [
        ("L1", D(10), D("399.68"), D("201.00"), D("198.68")),
        ("L2", D(20), D("799.35"), D("501.00"), D("298.35")),
        ("L3", D(1), D("39.97"), D("30.33"), D("9.64")),
    ]
    assert sum(s.proceeds for s in slices) == D("1239.00")  # 1,240.00 − 1.00 exactly
    (rest,) = ledger.open_lots()
    assert (rest.lot_id, rest.quantity, rest.cost_basis_usd) == ("L3", D(2), D("60.66"))


def test_a_washed_loss_includes_the_commissions_and_the_replacement_keeps_its_own() -> None:
    ledger = Ledger()
    ledger.apply(tx("b1", "2024-01-02", "buy", "100", "10.00", lot="L1"), commission=D("5.00"))
    (loss,) = ledger.apply(tx("s1", "2024-03-01", "sell", "100", "9.00"), commission=D("5.00"))
    # Loss 110.00 = basis 1,005.00 − proceeds 895.00: 100.00 of price and 10.00 of commissions.
    assert (loss.proceeds, loss.cost_basis, loss.gain) == (D("895.00"), D("1005.00"), D("-110.00"))
    # 40 replacement shares 14 days later: 40/100 of the loss, 44.00, is disallowed and joins
    # their basis, 380.00 + their own commission 2.00 (IRC §1091(a), (d)).
    ledger.apply(tx("b2", "2024-03-15", "buy", "40", "9.50", lot="L2"), commission=D("2.00"))
    (washed,) = ledger.sales
    assert (washed.adjustment_code, washed.disallowed_loss, washed.gain) == (
        "W",
        D("44.00"),
        D("-66.00"),
    )
    (rep,) = ledger.open_lots()
    assert (rep.cost_basis_usd, rep.wash_adjustment_usd) == (D("426.00"), D("44.00"))
    # The sold shares were held 59 days: the replacement's holding period tacks them (§1223(3)).
    assert rep.acquired == dt.date(2024, 1, 16)
    (s2,) = ledger.apply(tx("s2", "2024-05-01", "sell", "40", "11.00"), commission=D("2.00"))
    assert (s2.proceeds, s2.cost_basis, s2.gain) == (D("438.00"), D("426.00"), D("12.00"))
    # Once every share is sold the gains (−66.00 + 12.00) are the cash the round trips made,
    # commissions included: −1,005.00 + 895.00 − 382.00 + 438.00 = −54.00.
    assert sum(s.gain for s in ledger.sales) == D("-54.00")


def test_a_short_sale_commission_lowers_its_proceeds_and_a_cover_commission_raises_its_cost() -> (
    None
):
    ledger = Ledger()
    ledger.apply(tx("sh", "2024-01-02", "short", "10", "100.00", lot="S1"), commission=D("1.00"))
    (lot,) = ledger.open_lots()
    assert (lot.short, lot.cost_basis_usd) == (True, D("999.00"))
    (s,) = ledger.apply(tx("cv", "2024-02-01", "cover", "10", "90.00"), commission=D("1.00"))
    assert (s.proceeds, s.cost_basis, s.gain, s.term) == (
        D("999.00"),
        D("901.00"),
        D("98.00"),
        "short",
    )


def test_no_commission_leaves_every_amount_as_before() -> None:
    plain, zero = Ledger(), Ledger()
    rows = [
        tx("b1", "2024-01-02", "buy", "7", "13.37", lot="L1"),
        tx("s1", "2024-02-01", "sell", "3", "11.11"),
    ]
    for row in rows:
        plain.apply(row)
        zero.apply(row, commission=D("0.00"))
    assert plain.sales == zero.sales
    assert plain.open_lots() == zero.open_lots()


@pytest.mark.parametrize("bad", ["-0.01", "0.005", "NaN", "Infinity"])
def test_a_commission_that_is_negative_or_not_whole_cents_is_refused_and_changes_nothing(
    bad: str,
) -> None:
    ledger = Ledger()
    ledger.apply(tx("b1", "2024-01-02", "buy", "10", "10.00", lot="L1"))
    with pytest.raises(LedgerError, match="commission") as exc:
        ledger.apply(tx("s1", "2024-02-01", "sell", "10", "9.00"), commission=D(bad))
    assert exc.value.field == "commission"
    assert "s1" in str(exc.value)
    (lot,) = ledger.open_lots()
    assert (lot.quantity, lot.cost_basis_usd) == (D(10), D("100.00"))
    assert ledger.sales == []


def test_an_ira_replacement_and_a_split_replacement_carry_the_commissions_to_the_cent() -> None:
    # IRS Pub. 550 ("Wash Sales"), Treas. Reg. §1.1091-1(c)-(d), Rev. Rul. 2008-5.
    ledger = Ledger()

    def row(
        tid: str, date: str, side: str, qty: str, price: str, *, ira: bool = False
    ) -> Transaction:
        return Transaction(
            id=tid,
            date=dt.date.fromisoformat(date),
            account="I" if ira else "A",
            account_type="ira" if ira else "taxable",
            symbol="X",
            side=side,  # type: ignore[arg-type]
            quantity=D(qty),
            price=D(price),
        )

    ledger.apply(row("b1", "2024-01-02", "buy", "50", "20.00"), commission=D("4.95"))
    # 900.00 − 4.95 = 895.05 against 1,000.00 + 4.95 = 1,004.95: a loss of 109.90.
    ledger.apply(row("s1", "2024-02-01", "sell", "50", "18.00"), commission=D("4.95"))
    # 20 shares bought in the IRA: 20/50 of the loss, 43.96, is lost for good; the IRA lot's
    # basis is its own cost, 350.00 + 1.00.
    ledger.apply(row("b2", "2024-02-10", "buy", "20", "17.50", ira=True), commission=D("1.00"))
    # 100 shares in the taxable account replace the other 30: the lot (1,700.00 + 7.00) splits;
    # the 30 carry 30/100 of it, 512.10, plus 109.90 − 43.96 = 65.94, and the 30 days the sold
    # shares were held (2024-02-15 − 30 days = 2024-01-16, IRC §1223(3)); the 70 keep 1,194.90.
    ledger.apply(row("b3", "2024-02-15", "buy", "100", "17.00"), commission=D("7.00"))
    (loss,) = ledger.sales
    assert (loss.disallowed_loss, loss.permanently_disallowed, loss.gain) == (
        D("109.90"),
        D("43.96"),
        D("0.00"),
    )
    got = [(x.account, x.quantity, x.cost_basis_usd, x.acquired) for x in ledger.open_lots()]
    assert got == [
        ("A", D(30), D("578.04"), dt.date(2024, 1, 16)),
        ("A", D(70), D("1194.90"), dt.date(2024, 2, 15)),
        ("I", D(20), D("351.00"), dt.date(2024, 2, 10)),
    ]
    # All 100 sold at 19.00 with 9.99 of commission: 30/100 of it is 2.997 → 3.00, the rest 6.99.
    slices = ledger.apply(row("s2", "2024-03-01", "sell", "100", "19.00"), commission=D("9.99"))
    assert [(x.quantity, x.proceeds, x.cost_basis, x.gain, x.term) for x in slices] == [
        (D(30), D("567.00"), D("578.04"), D("-11.04"), "short"),
        (D(70), D("1323.01"), D("1194.90"), D("128.11"), "short"),
    ]
    # No replacement is left for the −11.04 (the IRA shares already absorbed a loss; the 70
    # were sold in the same sale).  Gains = the taxable cash, net of every commission, plus
    # what the IRA purchase disallowed for good: −1,004.95 + 895.05 − 1,707.00 + 1,890.01
    # + 43.96 = 117.07.
    assert [x.adjustment_code for x in ledger.sales] == ["W", "", ""]
    assert sum(x.gain for x in ledger.sales) == D("117.07")
