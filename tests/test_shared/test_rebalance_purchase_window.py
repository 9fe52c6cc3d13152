"""DESIGN.md §2: no loss sale of a name bought within the last 30 days in the household — the
sold lot's own purchase and purchases sold again since included (the ledger's ``LastPurchase``
memory), so no reading of IRC §1091(a)'s "has acquired" finds a wash sale in a ticket."""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal

import msgspec
import pytest

from shared.errors import InputError
from shared.examples import example_request
from shared.ledger import Ledger
from shared.messages import (
    LastPurchase,
    Lot,
    PendingLoss,
    RebalanceRequest,
    Solved,
    Transaction,
)
from shared.rebalance import outcome_transactions, rebalance


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


def _with_history(request: RebalanceRequest, *rows: Transaction) -> RebalanceRequest:
    return msgspec.structs.replace(request, history=[*request.history, *rows])


def _hist(request: RebalanceRequest, spec: tuple[int, int, str, str, str, str]) -> Transaction:
    """A history row: (n, days before as_of, symbol, side, price, lot id), in another
    taxable account of the household."""
    n, days_ago, symbol, side, price, lot_id = spec
    return Transaction(
        id=f"H{n}",
        date=request.as_of - dt.timedelta(days=days_ago),
        account="SPOUSE-1",
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        quantity=Decimal(10),
        price=Decimal(price),
        lot_id=lot_id,
    )


def test_a_purchase_in_the_requests_history_alone_still_blocks_the_loss_sale() -> None:
    # Reference-solve audit: a household buy of FSA twelve days earlier, written into the
    # request's history but not into the ledger's window memory; the ticket harvested three FSA
    # lots (a wash sale under IRC §1091(a)).  History only ever adds restrictions.
    request = _request()
    symbol, _ = _harvested_old_lot(request)
    for days_ago in (12, 30):
        buy = _hist(request, (1, days_ago, symbol, "buy", "50", "H-L1"))
        out = rebalance(_with_history(request, buy))
        assert symbol not in _loss_sold(out)
    # Outside the window (31 days), a history row restricts nothing; after the night it is
    # refused (as a window-memory entry after the ledger's date: fuzz audit, 2026-12-07).
    buy = _hist(request, (1, 31, symbol, "buy", "50", "H-L1"))
    assert symbol in _loss_sold(rebalance(_with_history(request, buy)))
    with pytest.raises(InputError, match="after the request's as_of"):
        rebalance(_with_history(request, _hist(request, (1, -1, symbol, "buy", "50", "H-L1"))))


def test_a_loss_sale_the_history_shows_blocks_buys_of_the_name_and_its_twins() -> None:
    from shared.rebalance import history_window

    request = _request()
    rows = (
        _hist(request, (1, 60, "AAA", "buy", "100", "L1")),
        _hist(request, (2, 10, "AAA", "sell", "90", "L1")),  # a loss 10 days ago
        _hist(request, (3, 60, "BBB", "buy", "100", "L2")),
        _hist(request, (4, 10, "BBB", "sell", "120", "L2")),  # a gain: no restriction
        _hist(request, (5, 60, "CCC", "buy", "100", "L3")),
        _hist(request, (6, 40, "CCC", "sell", "90", "L3")),  # a loss 40 days ago: outside
        _hist(request, (7, 60, "DDD", "short", "50", "S1")),
        _hist(request, (8, 5, "DDD", "cover", "55", "S1")),  # a cover loss (IRC §1091(e))
        _hist(request, (9, 5, "EEE", "sell", "1", "UNKNOWN")),  # its cost is not in the history
    )
    ira = msgspec.structs.replace(
        _hist(request, (10, 3, "FFF", "sell", "90", "L4")), account_type="ira"
    )
    ira_buy = msgspec.structs.replace(
        _hist(request, (11, 50, "FFF", "buy", "100", "L4")), account_type="ira"
    )
    recent = (
        _hist(request, (12, 5, "GGG", "buy", "10", "L5")),
        _hist(request, (13, 29, "HHH", "short", "10", "S2")),
    )
    bought, lost = history_window(
        _with_history(request, *rows, ira_buy, ira, *recent),
        [frozenset({"AAA", "AAB"})],
    )
    # The IRA's loss sale reports nothing (IRS Pub. 550): it restricts no purchase.  (The
    # example's own history has loss sales in the window too.)
    own_bought, own = history_window(request, [])
    # EEE: its cost is in neither the history nor the ledger's lots — a loss of unknown size.
    assert set(lost) - set(own) == {"AAA", "AAB", "DDD", "EEE"}
    assert "unknown size" in lost["EEE"][0]
    assert lost["AAA"][1] is False and lost["DDD"][1] is True
    assert "IRC §1091" in lost["AAA"][0]
    assert bought - own_bought == {("GGG", False), ("HHH", True)}


def test_a_name_the_history_shows_sold_at_a_loss_is_not_bought() -> None:
    request = _request()
    base = rebalance(request)
    bought = sorted({t.symbol for t in base.trades if t.side == "buy"})
    assert bought
    symbol = bought[0]
    price = next(
        p for s, p in zip(request.market.symbols, request.market.prices, strict=True) if s == symbol
    )
    rows = (
        _hist(request, (1, 200, symbol, "buy", str(Decimal(repr(price)) * 2), "HX")),
        _hist(request, (2, 7, symbol, "sell", str(Decimal(repr(price))), "HX")),
    )
    out = rebalance(_with_history(request, *rows))
    assert symbol not in {t.symbol for t in out.trades if t.side == "buy"}


def test_the_history_is_judged_by_the_ledger_not_by_raw_prices() -> None:
    # Diff review: a sale naming no lot, basis carried by an earlier wash sale, a sale just
    # above cost that commissions make a loss, and a reused lot id all hid a loss sale of the
    # window; each let the ticket buy the name (a wash sale, IRC §1091(a)).
    from shared.rebalance import history_window

    request = _request()

    def lost(
        *specs: tuple[int, int, str, str, str, str], bps: float = 0.0, last_qty: int = 10
    ) -> set[str]:
        rows = [_hist(request, s) for s in specs]
        rows[-1] = msgspec.structs.replace(rows[-1], quantity=Decimal(last_qty))
        req = _with_history(request, *rows)
        if bps:
            req = msgspec.structs.replace(
                req, account=msgspec.structs.replace(req.account, commission_bps=bps)
            )
        return set(history_window(req, [])[1]) - set(history_window(request, [])[1])

    # No lot named: FIFO (and HIFO) relieve the only lot, bought at 120.
    assert lost((1, 200, "ZZA", "buy", "120", "HX"), (2, 10, "ZZA", "sell", "100", "")) == {"ZZA"}
    # Washed 45 days ago into the replacement's basis (105 + 30): sold at 110, a loss.
    assert lost(
        (1, 200, "ZZB", "buy", "130", "HA"),
        (2, 45, "ZZB", "sell", "100", "HA"),
        (3, 40, "ZZB", "buy", "105", "HB"),
        (4, 10, "ZZB", "sell", "110", "HB"),
    ) == {"ZZB"}
    # 10 bps on each fill: sold 0.1% above cost is a loss net of them, and not without them.
    specs = ((1, 200, "ZZC", "buy", "100", "HC"), (2, 10, "ZZC", "sell", "100.10", "HC"))
    assert lost(*specs, bps=10.0) == {"ZZC"}
    assert lost(*specs) == set()
    # The id reused by a later purchase of 1 share does not turn the earlier loss sale into a
    # gain: 9 of its 10 shares are still unmatched.  (A purchase of all 10 absorbs the loss:
    # a buy today washes nothing more.)
    reuse = (
        (1, 200, "ZZD", "buy", "120", "HX"),
        (2, 10, "ZZD", "sell", "100", "HX"),
        (3, 5, "ZZD", "buy", "90", "HX"),
    )
    assert lost(*reuse, last_qty=1) == {"ZZD"}
    assert lost(*reuse, last_qty=10) == set()


def test_a_late_entered_purchase_before_a_pending_loss_sold_tonight_carries_it_in_its_basis() -> (
    None
):
    # A client's purchase keyed into the book late, dated 50 days ago: 25 days before a loss
    # sale the window memory still holds, so reading the ledger washes that loss into it (IRC
    # §1091(a), (d): within 30 days before the sale).  Tonight the name is excluded and the lot
    # sold: the outcome's realized slice must be the whole ledger's (its basis carries the
    # $500.00; the reduced ledgers keep the lot though it is older than their 30-day window).
    request = example_request(names=60, seed=3)
    aid = request.account.account_id
    held = {x.symbol for x in request.ledger.lots}
    sym = next(s for s in request.market.symbols if s not in held)
    price = Decimal(repr(request.market.prices[request.market.symbols.index(sym)]))
    sold = request.as_of - dt.timedelta(days=25)
    bought = sold - dt.timedelta(days=25)  # 50 days before the night
    lot = Lot(
        account=aid,
        symbol=sym,
        lot_id="HAND1",
        quantity=Decimal(10),
        trade_date=bought,
        acquired=bought,
        cost_basis_usd=(price * 8).quantize(Decimal("0.01")),
    )
    loss = PendingLoss(
        txn="S-OLD",
        account=aid,
        symbol=sym,
        lot_id="OLD1",
        date_sold=sold,
        quantity=Decimal(10),
        loss_usd=Decimal("500.00"),
        sold_quantity=Decimal(10),
        acquired=sold - dt.timedelta(days=200),
    )
    ledger = msgspec.structs.replace(
        request.ledger,
        lots=[*request.ledger.lots, lot],
        pending_losses=[*request.ledger.pending_losses, loss],
    )
    account = msgspec.structs.replace(request.account, exclusions=[sym])
    out = rebalance(msgspec.structs.replace(request, ledger=ledger, account=account))
    (got,) = [s for s in out.realized if s.lot_id == "HAND1"]
    whole = Ledger.from_state(ledger)
    n = len(whole.sales)
    for txn in outcome_transactions(out, account_type="taxable"):
        whole.apply(txn)
    (want,) = [s for s in whole.sales[n:] if s.lot_id == "HAND1"]
    assert (got.cost_basis_usd, got.gain_usd, got.date_acquired, got.term) == (
        want.cost_basis,
        want.gain,
        want.date_acquired,
        want.term,
    )
    assert got.cost_basis_usd == lot.cost_basis_usd + Decimal("500.00")


def test_a_forced_loss_sale_beside_a_purchase_only_the_history_shows_is_noted_not_silent() -> None:
    # Fuzz audit (2026-12-07, eighth session): an excluded name sold at a loss 29 days after a
    # household purchase that only the request's history showed was reported nowhere (the
    # ledger, which needs replacement shares still held, finds no wash sale).
    request = _request()
    symbol, i = _harvested_old_lot(request)
    lot = request.ledger.lots[i]
    bought = Transaction(
        id="SIB-BUY",
        date=request.as_of - dt.timedelta(days=29),
        account="SIBLING",
        symbol=symbol,
        side="buy",
        quantity=Decimal(3),
        price=Decimal(repr(request.market.prices[request.market.symbols.index(symbol)])),
        lot_id="SIB1",
    )
    account = msgspec.structs.replace(request.account, exclusions=[symbol])
    out = rebalance(msgspec.structs.replace(request, account=account, history=[bought]))
    assert any(s.lot_id == lot.lot_id and s.gain_usd < 0 for s in out.realized)
    assert not out.wash_sale_issues
    (note,) = [n for n in out.notes if "literal reading" in n]
    assert symbol in note and lot.lot_id in note
