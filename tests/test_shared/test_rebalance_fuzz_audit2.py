"""Regression tests for the second request fuzz audit (2026-12-07): ~1,800 mutations of
``taxview example-request`` requests.  Each test is a mutation that ended in a traceback, a
rejection naming the wrong field, an ``ok`` ticket that broke the wash-sale rules, or a setting
no ticket can meet run to ``held``, before its fix."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from shared.errors import InputError
from shared.examples import example_request
from shared.messages import PendingLoss, RebalanceRequest, Solved, Transaction
from shared.rebalance import rebalance


def _req() -> RebalanceRequest:
    return example_request(names=30, seed=1)


def _rejected(request: RebalanceRequest, field: str, match: str | None = None) -> InputError:
    with pytest.raises(InputError, match=None if match is None else re.escape(match)) as info:
        rebalance(request)
    assert info.value.field == field
    assert info.value.account == request.account.account_id
    return info.value


def _with_market(request: RebalanceRequest, **changes: Any) -> RebalanceRequest:
    return msgspec.structs.replace(
        request, market=msgspec.structs.replace(request.market, **changes)
    )


def _with_ledger(request: RebalanceRequest, **changes: Any) -> RebalanceRequest:
    return msgspec.structs.replace(
        request, ledger=msgspec.structs.replace(request.ledger, **changes)
    )


def _own_lot(request: RebalanceRequest) -> int:
    aid = request.account.account_id
    return next(i for i, lot in enumerate(request.ledger.lots) if lot.account == aid)


def test_two_market_symbols_that_differ_only_in_case_are_refused() -> None:
    # MKJ and mkj are one security to IRC §1091: the ticket harvested MKJ and bought mkj the
    # same day, a wash sale reported as $196k harvested.
    req = _req()
    symbols = list(req.market.symbols)
    symbols[-1] = symbols[0].lower()
    err = _rejected(_with_market(req, symbols=symbols), f"market.symbols[{len(symbols) - 1}]")
    assert "differ only in case" in err.reason


@pytest.mark.parametrize("bad", [" ", "VLK ", "A\x00B", "BDF\n", ""])
def test_a_blank_padded_or_control_character_symbol_is_refused(bad: str) -> None:
    req = _req()
    symbols = list(req.market.symbols)
    symbols[3] = bad
    field = "market.symbols" if bad == "" else "market.symbols[3]"
    with pytest.raises(InputError) as info:
        rebalance(_with_market(req, symbols=symbols))
    assert info.value.field is not None and info.value.field.startswith(field)


def test_a_pending_loss_written_in_another_case_still_blocks_the_purchase() -> None:
    # The window memory's PQW written `pqw` matched no name, and the ticket bought PQW 15 days
    # after its loss sale (IRC §1091(a)).
    req = _req()
    free = rebalance(req)
    assert isinstance(free, Solved)
    bought = [t.symbol for t in free.trades if t.side == "buy"]
    assert bought, "the example must buy something for the test to mean anything"
    sym = bought[0]
    loss = PendingLoss(
        txn="T-X",
        account=req.account.account_id,
        symbol=sym.lower(),
        lot_id="L-X",
        date_sold=req.as_of - dt.timedelta(days=15),
        quantity=Decimal(10),
        loss_usd=Decimal("100.00"),
        sold_quantity=Decimal(10),
        acquired=req.as_of - dt.timedelta(days=400),
    )
    for spelled in (sym, sym.lower()):
        pending = [*req.ledger.pending_losses, msgspec.structs.replace(loss, symbol=spelled)]
        out = rebalance(_with_ledger(req, pending_losses=pending))
        assert isinstance(out, Solved)
        assert sym not in {t.symbol for t in out.trades if t.side == "buy"}, spelled


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("quantity", Decimal("NaN")),
        ("quantity", Decimal(0)),
        ("quantity", Decimal(-5)),
        ("quantity", Decimal("0.1234567890123456789")),
        ("price", Decimal("Infinity")),
        ("price", Decimal(-1)),
    ],
)
def test_a_bad_history_row_is_refused_naming_it_not_a_traceback(
    column: str, value: Decimal
) -> None:
    req = _req()
    recent = max(range(len(req.history)), key=lambda i: req.history[i].date)
    history: list[Transaction] = list(req.history)
    history[recent] = msgspec.structs.replace(history[recent], **{column: value})
    req = msgspec.structs.replace(req, history=history)
    _rejected(req, f"history[{recent}].{column}")


def test_a_huge_wash_adjustment_is_refused_naming_the_field_not_a_traceback() -> None:
    req = _req()
    i = _own_lot(req)
    lots = list(req.ledger.lots)
    lots[i] = msgspec.structs.replace(lots[i], wash_adjustment_usd=Decimal("1e30"))
    _rejected(_with_ledger(req, lots=lots), f"ledger.lots[{i}].wash_adjustment_usd")


def test_an_empty_lot_id_is_refused_naming_the_lot_id() -> None:
    # It used to be matched to no lot and the rejection named `quantity`.
    req = _req()
    i = _own_lot(req)
    lots = list(req.ledger.lots)
    lots[i] = msgspec.structs.replace(lots[i], lot_id="")
    _rejected(_with_ledger(req, lots=lots), f"ledger.lots[{i}].lot_id", "empty lot_id")


def test_a_cap_no_long_only_book_can_be_invested_under_is_refused_naming_max_weight() -> None:
    req = _req()
    n = len(req.market.symbols)
    cap = 0.5 / n
    account = msgspec.structs.replace(req.account, max_weight=cap)
    err = _rejected(msgspec.structs.replace(req, account=account), "account.max_weight")
    assert f"× {n} names" in err.reason


def test_exclusions_of_every_name_are_refused_naming_the_exclusions() -> None:
    req = _req()
    account = msgspec.structs.replace(req.account, exclusions=list(req.market.symbols))
    _rejected(msgspec.structs.replace(req, account=account), "account.exclusions")
