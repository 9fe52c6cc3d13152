"""DESIGN.md §2: no loss sale of a name bought within the last 30 days in the household — the
sold lot's own purchase and purchases sold again since included (the ledger's ``LastPurchase``
memory), so no reading of IRC §1091(a)'s "has acquired" finds a wash sale in a ticket."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

import msgspec

from shared.examples import example_request
from shared.ledger import Ledger
from shared.messages import LastPurchase, Lot, RebalanceRequest, Solved, Transaction
from shared.rebalance import rebalance


@functools.cache
def _request() -> RebalanceRequest:
    return example_request(names=40, seed=2)


def _loss_sold(out: Solved) -> set[str]:
    return {s.symbol for s in out.realized if s.gain_usd < 0}


def _harvested_old_lot(request: RebalanceRequest) -> tuple[str, int]:
    """A name the ticket sells at a loss whose lots are all older than the window, and the
    index of one of its loss lots in the ledger."""
    out = rebalance(request)
    cut = request.as_of - dt.timedelta(days=30)
    sold = {s.lot_id for s in out.realized if s.gain_usd < 0}
    for i, lot in enumerate(request.ledger.lots):
        if lot.account != request.account.account_id or lot.lot_id not in sold:
            continue
        same = [x for x in request.ledger.lots if x.symbol == lot.symbol]
        if all(x.trade_date < cut for x in same):
            return lot.symbol, i
    raise AssertionError("the example harvests no name bought more than 30 days ago")


def _with_lot(request: RebalanceRequest, i: int, traded: dt.date) -> RebalanceRequest:
    lots = list(request.ledger.lots)
    lots[i] = msgspec.structs.replace(lots[i], trade_date=traded, acquired=traded)
    return msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, lots=lots)
    )


def _with_last_purchase(request: RebalanceRequest, symbol: str, day: dt.date) -> RebalanceRequest:
    memory = [*request.ledger.last_purchases, LastPurchase(symbol=symbol, date=day)]
    return msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, last_purchases=memory)
    )


def test_a_lot_bought_yesterday_is_not_sold_at_a_loss_even_as_the_only_purchase() -> None:
    request = _request()
    symbol, i = _harvested_old_lot(request)
    yesterday = _with_lot(request, i, request.as_of - dt.timedelta(days=1))
    assert symbol not in _loss_sold(rebalance(yesterday))
    # Thirty-one days later the window is closed and the loss is harvested again.
    later = _with_lot(request, i, request.as_of - dt.timedelta(days=31))
    assert symbol in _loss_sold(rebalance(later))


def test_a_purchase_sold_again_inside_the_window_still_blocks_loss_sales_of_the_name() -> None:
    request = _request()
    symbol, _ = _harvested_old_lot(request)
    day_30 = _with_last_purchase(request, symbol, request.as_of - dt.timedelta(days=30))
    assert symbol not in _loss_sold(rebalance(day_30))
    day_31 = _with_last_purchase(request, symbol, request.as_of - dt.timedelta(days=31))
    assert symbol in _loss_sold(rebalance(day_31))


def test_an_ira_purchase_sold_again_blocks_the_taxable_loss_sale_too() -> None:
    # Household-wide, IRAs included: the memory holds no account, only the security.
    request = _request()
    symbol, _ = _harvested_old_lot(request)
    ira = Ledger(household_id="H")
    day = request.as_of - dt.timedelta(days=12)
    ira.apply(_txn("b", day, "IRA1", symbol, "buy"))
    ira.apply(_txn("s", day + dt.timedelta(days=2), "IRA1", symbol, "sell"))
    memory = ira.state(request.as_of).last_purchases
    assert [(p.symbol, p.date, p.short) for p in memory] == [(symbol, day, False)]
    ledger = msgspec.structs.replace(request.ledger, last_purchases=memory)
    assert symbol not in _loss_sold(rebalance(msgspec.structs.replace(request, ledger=ledger)))


def test_a_window_lot_a_sibling_sells_after_the_snapshot_still_blocks_loss_sales_of_the_name() -> (
    None
):
    # A book can list the lots bought in the window and no `last_purchases` (the lots say it).
    # When the household's previous account sells such a lot tonight, the ledger its next
    # account starts from must still remember the purchase (found on a synthetic nightly book).
    request = _request()
    symbol, _ = _harvested_old_lot(request)
    bought = request.as_of - dt.timedelta(days=7)
    window_lot = Lot(
        account="SIBLING",
        symbol=symbol,
        lot_id="W1",
        quantity=Decimal(10),
        trade_date=bought,
        acquired=bought,
        cost_basis_usd=Decimal("1.00"),  # sold at a gain: it absorbs no loss
    )
    assert not any(p.symbol == symbol for p in request.ledger.last_purchases)
    book = msgspec.structs.replace(request.ledger, lots=[*request.ledger.lots, window_lot])
    ledger = Ledger.from_state(book)
    ledger.apply(_txn("s", request.as_of, "SIBLING", symbol, "sell", qty=10))
    after = ledger.state(request.as_of)
    assert not any(lot.lot_id == "W1" for lot in after.lots)
    assert (symbol, bought, False) in [(p.symbol, p.date, p.short) for p in after.last_purchases]
    # ... and so the next account keeps its loss lots of the name.
    assert symbol not in _loss_sold(rebalance(msgspec.structs.replace(request, ledger=after)))


def _txn(
    tid: str, day: dt.date, account: str, symbol: str, side: str, *, qty: int = 10
) -> Transaction:
    return msgspec.convert(
        {
            "id": tid,
            "date": day.isoformat(),
            "account": account,
            "account_type": "ira" if account.startswith("IRA") else "taxable",
            "symbol": symbol,
            "side": side,
            "quantity": str(qty),
            "price": "100",
        },
        Transaction,
    )


def test_the_ledger_remembers_the_last_purchase_of_a_sold_lot_for_30_days() -> None:
    day = dt.date(2024, 3, 1)
    ledger = Ledger(household_id="H")
    ledger.apply(_txn("b1", day, "A", "XYZ", "buy"))
    ledger.apply(_txn("b2", day + dt.timedelta(days=3), "A", "XYZ", "buy", qty=5))
    ledger.apply(_txn("s1", day + dt.timedelta(days=5), "A", "XYZ", "sell", qty=15))
    ledger.apply(_txn("x1", day + dt.timedelta(days=6), "A", "QQQ", "short"))
    assert {lot.symbol for lot in ledger.open_lots("A")} == {"QQQ"}  # XYZ sold out
    state = ledger.state(day + dt.timedelta(days=33))
    assert [(p.symbol, p.date, p.short) for p in state.last_purchases] == [
        ("QQQ", day + dt.timedelta(days=6), True),
        ("XYZ", day + dt.timedelta(days=3), False),
    ]
    # A resumed ledger keeps the memory; after 30 days it is gone.
    resumed = Ledger.from_state(state)
    assert resumed.state(day + dt.timedelta(days=33)).last_purchases == state.last_purchases
    assert [p.symbol for p in resumed.state(day + dt.timedelta(days=34)).last_purchases] == ["QQQ"]
    assert resumed.state(day + dt.timedelta(days=37)).last_purchases == []


def test_with_a_commission_a_lot_in_the_window_is_not_sold_at_a_loss_net_of_it() -> None:
    # IRS Pub. 550: the ledger takes a sale's commission off its proceeds.  A lot bought
    # yesterday whose sale brings one cent more than its basis is a gain without commission and
    # a loss with one: the rebalance must then keep it (DESIGN.md §2, IRC §1091(a)).
    from decimal import Decimal

    from shared.ledger import cents

    request = example_request(names=40, seed=3)
    lot_id = "T000185"
    sold = next(s for s in rebalance(request).realized if s.lot_id == lot_id)
    assert sold.gain_usd > 0
    lots = list(request.ledger.lots)
    i = next(k for k, lot in enumerate(lots) if lot.lot_id == lot_id)
    yesterday = request.as_of - dt.timedelta(days=1)
    lots[i] = msgspec.structs.replace(
        lots[i],
        trade_date=yesterday,
        acquired=yesterday,
        cost_basis_usd=sold.proceeds_usd - Decimal("0.01"),
    )
    ledger = msgspec.structs.replace(request.ledger, lots=lots)
    base = msgspec.structs.replace(request, ledger=ledger)
    plain = rebalance(base)
    assert [s.gain_usd for s in plain.realized if s.lot_id == lot_id] == [Decimal("0.01")]
    account = msgspec.structs.replace(base.account, commission_bps=50.0)
    out = rebalance(msgspec.structs.replace(base, account=account))
    assert isinstance(out, Solved)
    assert [s for s in out.realized if s.lot_id == lot_id] == []
    assert out.wash_sale_issues == []
    # and every slice it reports is net of its sale's commission, 50 bps to the cent.
    notional = {t.lot_id: t.notional_usd for t in out.trades if t.side == "sell"}
    assert out.realized
    for s in out.realized:
        assert s.proceeds_usd == notional[s.lot_id] - cents(notional[s.lot_id] * Decimal("0.005"))
