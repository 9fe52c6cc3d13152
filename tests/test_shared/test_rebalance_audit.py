"""Regression tests for the findings of the independent solve audit (example requests).

Each request here made `rebalance` miss DESIGN §2 before its fix: a rounded ticket over its TE
budget, a sale's notional one cent off its realized proceeds, a worse side assignment than the
side search's, a name left above its cap without a breach.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

import shared.rebalance as rb
from shared.examples import example_request
from shared.messages import RebalanceRequest, Solved
from shared.rebalance import rebalance


def _solved(request: RebalanceRequest) -> Solved:
    out = rebalance(request)
    assert isinstance(out, Solved)
    return out


@pytest.fixture(scope="module")
def request_50_2() -> RebalanceRequest:
    return example_request(names=50, seed=2)


def test_a_rounded_ticket_meets_the_te_budget_when_one_share_of_a_bought_name_overshoots() -> None:
    # 50 names, seed 1: after rounding, TE was 0.020004 against 0.02. The repair ranked moves
    # on the TE gradient alone; the cheapest ones (one share of an expensive bought name with a
    # near-zero gradient) raised TE once the share's own variance counted, failed the exact
    # test and kept the helpful moves (a share less of a harvest sale) out of the tries.
    out = _solved(example_request(names=50, seed=1))
    assert out.limit_breaches == []
    assert out.te_ex_ante <= out.te_budget


def test_a_sale_notional_is_its_realized_proceeds_to_the_cent(
    request_50_2: RebalanceRequest,
) -> None:
    # 50 x 157.2801 = 7864.005: the trade said 7864.00 (half-even) while the ledger's realized
    # slice said 7864.01 (half-up, docs/ledger.md); the aggregator books the notional as cash.
    out = _solved(request_50_2)
    proceeds = {(s.lot_id, s.quantity): s.proceeds_usd for s in out.realized}
    sells = [t for t in out.trades if t.side == "sell"]
    assert any((t.quantity * t.price * 100) % 1 == 0.5 for t in sells)  # a half-cent tie
    for t in sells:
        assert t.notional_usd == proceeds[(t.lot_id, t.quantity)]


def test_a_book_whose_pre_pass_sides_were_refined_also_gets_the_side_search() -> None:
    # 100 names, seed 4 (value tilt): reopening the unharvested names kept the pre-pass's
    # harvest names; the side search's sides harvest $1.5k more tax inside every limit
    # (estimated tax -16,020.18 before, -17,536.91 after; independent CVXPY reference: the
    # objective was 0.2% of NAV above that assignment's optimum).
    out = _solved(example_request(names=100, seed=4))
    assert any("/searched sides" in a for a in out.solver.attempts)
    assert out.estimated_tax_usd < -17_000
    assert out.limit_breaches == []


def test_a_name_left_above_its_cap_after_rounding_is_repaired_or_reported(
    request_50_2: RebalanceRequest,
) -> None:
    # A 5% cap on a book holding 10.5% of one name: the per-lot rounding of its four sales left
    # it 1.5 shares above the cap, and caps were not among the repair's limits, so nothing said so.
    acct = msgspec.structs.replace(request_50_2.account, max_weight=0.05, te_budget=0.03)
    out = _solved(msgspec.structs.replace(request_50_2, account=acct))
    over = {s: w for s, w in out.weights.items() if w > acct.max_weight + 1e-9}
    assert not over or any(b.startswith("cap:") for b in out.limit_breaches)
    assert max(out.weights.values()) < acct.max_weight + 1e-4  # within a share or so


def test_a_lot_of_a_billionth_share_at_an_ordinary_basis_still_solves(
    request_50_2: RebalanceRequest,
) -> None:
    # The smallest lot the validation lets through (1e-9 shares; brokers carry ≤ 9 decimals).
    lots = list(request_50_2.ledger.lots)
    aid = request_50_2.account.account_id
    j = next(k for k, x in enumerate(lots) if x.account == aid)
    lots[j] = msgspec.structs.replace(lots[j], quantity=Decimal("1E-9"), cost_basis_usd=Decimal(0))
    ledger = msgspec.structs.replace(request_50_2.ledger, lots=lots)
    out = _solved(msgspec.structs.replace(request_50_2, ledger=ledger))
    assert out.status == "ok"


@pytest.mark.parametrize(
    ("strategy", "seed", "repair", "missed"),
    [
        ("market-neutral", 1, False, True),
        ("market-neutral", 1, True, False),
        ("long-short", 1, True, False),
    ],
)
def test_a_long_short_or_neutral_ticket_lists_each_limit_rounding_misses(
    strategy: str, seed: int, repair: bool, missed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every limit of the solved problem is checked on the rounded (and repaired) weights and a
    # miss is listed, never silent (audit: a 50-name sleeve ended with DNK at 0.0501 against
    # its 0.05 cap and nothing said so).  The share-by-share repair now brings DNK back under
    # its cap; without it (no repair steps) the miss is listed.
    if not repair:
        monkeypatch.setattr(rb, "MAX_REPAIR_STEPS", 0)
    request = example_request(names=50, seed=seed, strategy=strategy)
    out = _solved(request)
    cap = request.account.max_weight
    over = sorted(s for s, w in out.weights.items() if abs(w) > cap + 1e-9)
    capped = [b for b in out.limit_breaches if b.startswith(("w > max_w", "w < min_w"))]
    assert bool(over) == bool(capped), (over, out.limit_breaches)
    net = sum(out.weights.values())
    if strategy == "market-neutral":
        assert (abs(net) > 1e-3) == any(b.startswith("cash ") for b in out.limit_breaches)
    assert bool(out.limit_breaches) == missed, out.limit_breaches
    assert all(b.endswith("after rounding to shares") for b in out.limit_breaches)
