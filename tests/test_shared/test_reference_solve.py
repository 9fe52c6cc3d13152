"""The rebalance solve, checked against an independent reference formulation.

Reviewers will "check the solve against an independent reference formulation on requests from
``taxview example-request``".  This module does that: ``reference_model`` is a separately written
CVXPY model of DESIGN §2; the slow tests run the real commands (``taxview example-request`` →
``taxview rebalance``) and compare the outcome with it.  The measured gaps and every finding
(F1, F2, …) are in the reviewers' notes ``refsolve_audit.md``; product shortcomings are
``xfail(strict=True)`` so the suite stays green while the gap stays visible (a strict xfail that
starts passing means it was fixed: remove the mark).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "reference_model", Path(__file__).with_name("reference_model.py")
)
assert _spec is not None and _spec.loader is not None
_ref = importlib.util.module_from_spec(_spec)
sys.modules["reference_model"] = _ref  # dataclasses resolve their module by name
_spec.loader.exec_module(_ref)
audit = _ref.audit
build_reference_data = _ref.build_reference_data
is_long_term = _ref.is_long_term
lot_name_matrix = _ref.lot_name_matrix
objective_value = _ref.objective_value
solve_reference = _ref.solve_reference
te_squared = _ref.te_squared

#: (names, seed) of ``taxview example-request``, chosen to cover: a fresh book with a tilt
#: (30/1), a relaxation chain down to no TE cap with an exclusion (30/3), a loss sale of a lot
#: bought in the window (60/1), a tilt at the TE budget (60/4), a partial sale of a window lot,
#: an exclusion and a tilt (150/2) and a 500-name book with an exclusion (500/1).
CASES = [(30, 1), (30, 3), (60, 1), (60, 4), (150, 2), (500, 1)]

#: 30/1 again with substantially identical groups declared (IRC §1091, "substantially
#: identical"): BZQ (bought by the plain 30/1 outcome) is a twin of PQW (a loss sale 15 days ago)
#: and MKJ (harvested by it) is a twin of TLI (bought yesterday).
IDENTICAL = "30/1+identical"

#: 30/1 again with two harvested loss lots moved to the one-year boundary (IRC §1222): one
#: acquired exactly a year before ``as_of`` (short-term), one a day earlier (long-term).
ANNIVERSARY = "30/1+anniversary"
ANNIVERSARY_LOTS = {"T000006": "2025-06-30", "T000017": "2025-06-29"}


def _with_identical(req: dict[str, Any]) -> None:
    req["ledger"]["identical"] = [["PQW", "BZQ"], ["TLI", "MKJ"]]


def _with_anniversary_lots(req: dict[str, Any]) -> None:
    for lot in req["ledger"]["lots"]:
        if lot["lot_id"] in ANNIVERSARY_LOTS:
            lot["acquired"] = lot["trade_date"] = ANNIVERSARY_LOTS[lot["lot_id"]]


def _with_budgets(req: dict[str, Any]) -> None:
    req["account"].update(gain_budget_usd="0", turnover_limit_w=0.08)


def _with_turnover_limit(req: dict[str, Any]) -> None:
    req["account"].update(turnover_limit_w=0.05)


#: The generator never sets the optional budgets (DESIGN §2), so two cases add them.
MUTATED = [
    (IDENTICAL, "30/1", _with_identical),
    (ANNIVERSARY, "30/1", _with_anniversary_lots),
    ("150/2+budgets", "150/2", _with_budgets),
    ("60/4+turnover", "60/4", _with_turnover_limit),
]


def _budget_excess(a: dict[str, Any]) -> list[str]:
    """Turnover above its limit (weights) and net realized gain above its budget (USD)."""
    out = []
    if a["turnover_limit_w"] is not None and a["turnover_w"] > a["turnover_limit_w"]:
        out.append(f"turnover {a['turnover_w']:.6f} > {a['turnover_limit_w']}")
    if a["gain_budget_usd"] is not None and a["net_gain_usd"] > a["gain_budget_usd"]:
        out.append(f"net gain {a['net_gain_usd']} > {a['gain_budget_usd']}")
    return out


#: Objective units are fractions of NAV; whole-share rounding moves the objective by ~1e-5.
ROUNDING_TOL = 5e-5


def _taxview() -> str:
    return str(Path(sys.executable).with_name("taxview"))


def _run(args: list[str]) -> bytes:
    return subprocess.run([_taxview(), *args], check=True, capture_output=True, timeout=300).stdout


@pytest.fixture(scope="module")
def audits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """One audit per case, from the real command-line contract (DESIGN §5)."""
    tmp = tmp_path_factory.mktemp("refsolve")
    out: dict[str, dict[str, Any]] = {}
    for names, seed in CASES:
        req_path = tmp / f"req_{names}_{seed}.json"
        _run(
            ["example-request", "--names", str(names), "--seed", str(seed), "--out", str(req_path)]
        )
        outcome = json.loads(_run(["rebalance", str(req_path)]))
        assert outcome["kind"] == "solved", outcome
        out[f"{names}/{seed}"] = audit(json.loads(req_path.read_text()), outcome)
    for label, base, mutate in MUTATED:
        base_names, base_seed = base.split("/")
        req = json.loads((tmp / f"req_{base_names}_{base_seed}.json").read_text())
        mutate(req)
        req_path = tmp / f"req_{label.replace('/', '_')}.json"
        req_path.write_text(json.dumps(req))
        outcome = json.loads(_run(["rebalance", str(req_path)]))
        assert outcome["kind"] == "solved", outcome
        out[label] = audit(req, outcome) | {"outcome": outcome}
    return out


def _violations(audits: dict[str, dict[str, Any]], bad: Any) -> dict[str, Any]:
    found = {case: bad(a) for case, a in audits.items()}
    return {case: v for case, v in found.items() if v}


# --------------------------------------------------------------------------------------------
# The reference model itself (fast)
# --------------------------------------------------------------------------------------------


def test_a_lot_sold_on_its_first_anniversary_is_still_short_term() -> None:
    # IRC §1222: long-term only when held MORE than one year; the period starts the next day.
    assert not is_long_term(dt.date(2025, 6, 30), dt.date(2026, 6, 30))
    assert is_long_term(dt.date(2025, 6, 30), dt.date(2026, 7, 1))


def test_a_lot_bought_on_february_29_turns_long_term_after_february_28() -> None:
    assert not is_long_term(dt.date(2024, 2, 29), dt.date(2025, 2, 28))
    assert is_long_term(dt.date(2024, 2, 29), dt.date(2025, 3, 1))


def _tiny_request(**account: Any) -> dict[str, Any]:
    """Two names, one account with an old loss lot of AAA and a fresh lot of AAA and BBB."""
    lot = {"account": "A1", "trade_date": "2024-01-02", "acquired": "2024-01-02"}
    return {
        "as_of": "2026-06-30",
        "account": {"account_id": "A1", "cash_usd": "1000", **account},
        "ledger": {
            "as_of": "2026-06-30",
            "lots": [
                {**lot, "symbol": "AAA", "lot_id": "L1", "quantity": "500",
                 "cost_basis_usd": "10000"},
                {**lot, "symbol": "AAA", "lot_id": "L2", "quantity": "100",
                 "cost_basis_usd": "1100", "trade_date": "2026-06-20", "acquired": "2026-06-20"},
                {**lot, "symbol": "BBB", "lot_id": "L3", "quantity": "400",
                 "cost_basis_usd": "8000"},
            ],
            "pending_losses": [],
            "recent_purchases": [
                {"txn": "t2", "account": "A1", "symbol": "AAA", "lot_id": "L2",
                 "date": "2026-06-20", "quantity": "100"},
            ],
            "identical": [],
        },
        "market": {
            "as_of": "2026-06-30",
            "symbols": ["AAA", "BBB"],
            "prices": [10.0, 25.0],
            "benchmark_weights": [0.4, 0.6],
            "risk_model": {
                "factor_names": ["market"],
                "loadings": [[1.0], [1.0]],
                "factor_cov": [[0.04]],
                "specific_var": [0.09, 0.09],
            },
        },
    }  # fmt: skip


def test_a_recent_purchase_washes_an_older_loss_lot_but_never_its_own_shares() -> None:
    # IRC §1091(a); the sold shares are not their own replacement (Rev. Rul. 56-602).
    d = build_reference_data(_tiny_request())
    washed = dict(zip((lot.lot_id for lot in d.lots), d.washed_loss_lot, strict=True))
    assert washed == {"L1": True, "L2": False, "L3": False}
    assert d.tau[0] == 0.0 and d.tau[1] < 0 < d.tau[2]


def test_a_loss_sale_in_the_window_blocks_buying_the_name_and_its_identical_twin() -> None:
    req = _tiny_request()
    req["ledger"]["identical"] = [["BBB", "CCC"]]
    req["ledger"]["pending_losses"] = [
        {"txn": "t9", "account": "IRA1", "symbol": "CCC", "lot_id": "x", "date_sold": "2026-06-01",
         "quantity": "5", "loss_usd": "50", "sold_quantity": "5", "acquired": "2025-01-01"},
    ]  # fmt: skip
    assert build_reference_data(req).buy_blocked_names == {"BBB", "CCC"}


def test_a_loss_sale_older_than_thirty_days_blocks_nothing() -> None:
    req = _tiny_request()
    req["ledger"]["pending_losses"] = [
        {"txn": "t9", "account": "A1", "symbol": "BBB", "lot_id": "x", "date_sold": "2026-05-30",
         "quantity": "5", "loss_usd": "50", "sold_quantity": "5", "acquired": "2025-01-01"},
    ]  # fmt: skip
    assert build_reference_data(req).buy_blocked_names == set()


def test_the_side_free_reference_harvests_by_buying_the_name_back_which_sides_forbid() -> None:
    # The classic failure a side rule exists for: sell the loss lot and rebuy it the same day.
    d = build_reference_data(_tiny_request(te_budget=0.5, max_weight=1.0, trading_cost_bps=1.0))
    free = solve_reference(d)
    aaa = d.index_of("AAA")
    assert free.status == "optimal"
    assert free.u[1] > 1e-4 and free.beta[aaa] > 1e-4
    sided = solve_reference(d, no_buy_names={"AAA"})
    assert sided.beta[aaa] < 1e-7 and sided.objective >= free.objective - 1e-9


def test_the_reference_optimum_meets_its_constraints_and_reports_its_own_objective() -> None:
    d = build_reference_data(_tiny_request(te_budget=0.01, max_weight=0.7, trading_cost_bps=5.0))
    sol = solve_reference(d)
    assert sol.status == "optimal"
    assert sol.te <= 0.01 + 1e-6
    assert sol.w.max() <= 0.7 + 1e-7 and sol.w.min() >= -1e-9
    assert 0 - 1e-7 <= 1 - sol.w.sum() <= 0.02 + 1e-7
    assert np.allclose(sol.w, d.w0 - lot_name_matrix(d) @ sol.u + sol.beta)
    assert objective_value(d, sol.u, sol.beta) == pytest.approx(sol.objective)
    assert np.sqrt(te_squared(d, sol.w)) == pytest.approx(sol.te)


# --------------------------------------------------------------------------------------------
# The product against the reference (slow: runs the real commands)
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_reference_solve_of_every_case_is_optimal(audits: dict[str, dict[str, Any]]) -> None:
    assert _violations(audits, lambda a: [s for s in a["statuses"] if s != "optimal"]) == {}


@pytest.mark.slow
def test_the_outcome_is_within_share_rounding_of_the_optimum_for_its_own_side_decisions(
    audits: dict[str, dict[str, Any]],
) -> None:
    # Reference with the product's side pattern fixed (bought → no loss sales; loss-sold → no
    # buys; untouched → neither): only whole-share rounding should separate the two.
    assert _violations(audits, lambda a: abs(a["gap_pattern_nav"]) > ROUNDING_TOL) == {}


@pytest.mark.slow
def test_no_outcome_beats_the_side_free_reference_bound(audits: dict[str, dict[str, Any]]) -> None:
    assert _violations(audits, lambda a: a["f_prod"] < a["f_relaxed"] - ROUNDING_TOL) == {}


@pytest.mark.slow
def test_no_legal_side_assignment_improves_on_the_outcome(
    audits: dict[str, dict[str, Any]],
) -> None:
    # Two legal assignments: the product's harvested names on the harvest side and every other
    # name on the buy side ("reopened"), and one read off the side-free bound ("heuristic").
    def bad(a: dict[str, Any]) -> str:
        best = min(a["f_reopened"], np.nan_to_num(a["f_heuristic"], nan=np.inf))
        return f"{a['f_prod']:.5f} vs {best:.5f}" if a["f_prod"] > best + ROUNDING_TOL else ""

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_the_outcome_weights_are_its_trades_and_sum_to_one_with_cash(
    audits: dict[str, dict[str, Any]],
) -> None:
    def bad(a: dict[str, Any]) -> list[str]:
        out = []
        if a["unknown_lots"] or a["extra_weight_names"]:
            out.append(f"unknown {a['unknown_lots']} {a['extra_weight_names']}")
        if a["w_out_vs_trades"] > 1e-9:
            out.append(f"weights vs trades {a['w_out_vs_trades']:.2e}")
        if abs(a["sum_w_plus_cash"] - 1) > 1e-9 or abs(a["cash_out"] - a["cash_trades"]) > 1e-9:
            out.append(f"sum {a['sum_w_plus_cash']!r} cash {a['cash_out']} vs {a['cash_trades']}")
        return out

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_no_weight_is_negative_above_its_cap_or_left_in_an_excluded_name(
    audits: dict[str, dict[str, Any]],
) -> None:
    assert (
        _violations(
            audits,
            lambda a: a["min_w"] < -1e-12 or a["max_w"] > a["cap"] + 1e-9 or a["excluded_weight"],
        )
        == {}
    )


@pytest.mark.slow
def test_share_rounding_moves_tracking_error_tilts_and_budgets_by_under_one_percent(
    audits: dict[str, dict[str, Any]],
) -> None:
    def bad(a: dict[str, Any]) -> list[str]:
        out = []
        if a["te_mine"] > a["te_budget_eff"] * 1.01:
            out.append(f"TE {a['te_mine']:.6f} > {a['te_budget_eff']}")
        out += [f"{f} short by {s:.2e}" for f, s in a["tilt_shortfall"].items() if s < -1e-3]
        if a["turnover_limit_w"] is not None and a["turnover_w"] > a["turnover_limit_w"] * 1.01:
            out.append(f"turnover {a['turnover_w']:.6f}")
        if a["gain_budget_usd"] is not None and a["net_gain_usd"] > a["gain_budget_usd"] + max(
            Decimal("0.0001") * a["nav_mine"], Decimal(0)
        ):
            out.append(f"net gain {a['net_gain_usd']}")
        return out

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_tracking_error_budget_tilt_floors_and_budgets_hold_after_rounding(
    audits: dict[str, dict[str, Any]],
) -> None:
    def bad(a: dict[str, Any]) -> list[str]:
        out = [f"TE {a['te_mine']:.6f}"] if a["te_mine"] > a["te_budget_eff"] + 1e-6 else []
        out += [f"{f} {s:.1e}" for f, s in a["tilt_shortfall"].items() if s < -1e-6]
        return out + _budget_excess(a)

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_cash_after_rounding_stays_within_the_account_limits(
    audits: dict[str, dict[str, Any]],
) -> None:
    assert (
        _violations(
            audits,
            lambda a: not a["min_cash_w"] - 1e-9 <= a["cash_out"] <= a["max_cash_w"] + 1e-6,
        )
        == {}
    )


@pytest.mark.slow
def test_the_reported_te_and_factor_exposures_equal_the_recomputation(
    audits: dict[str, dict[str, Any]],
) -> None:
    def bad(a: dict[str, Any]) -> list[str]:
        out = (
            [f"te {a['te_out']} vs {a['te_mine']}"]
            if abs(a["te_out"] - a["te_mine"]) > 1e-9
            else []
        )
        if a["exposure_max_diff"] > 1e-9 or a["exposure_missing"]:
            out.append(f"exposures {a['exposure_max_diff']:.1e} {a['exposure_missing']}")
        return out

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_the_reported_realized_split_tax_and_harvest_equal_the_recomputation_to_the_cent(
    audits: dict[str, dict[str, Any]],
) -> None:
    def bad(a: dict[str, Any]) -> list[str]:
        mine, out = a["realized_mine"], a["realized_out"]
        diffs = [
            f"{k} {out[k]} vs {mine[k]}"
            for k in ("realized_st_usd", "realized_lt_usd", "harvested_loss_usd")
            if out[k] != mine[k]
        ]
        # A tie at exactly half a cent may round either way (observed: half-to-even).
        tax = out["estimated_tax_usd"]
        if tax not in (mine["estimated_tax_usd"], mine["estimated_tax_usd_half_even"]):
            diffs.append(f"tax {tax} vs {mine['estimated_tax_usd']}")
        return diffs

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_the_reported_nav_is_the_lots_at_four_decimal_prices_plus_cash(
    audits: dict[str, dict[str, Any]],
) -> None:
    # docs/rebalance.md §2: nav_usd uses prices to 4 decimals, so it may differ from the NAV at
    # the snapshot's full prices by at most half a unit of the 4th decimal per share.
    def bad(a: dict[str, Any]) -> str:
        slack = a["shares_held"] * Decimal("0.00005") + Decimal("0.005")
        gap = abs(a["nav_out"] - a["nav_mine"])
        return f"{a['nav_out']} vs {a['nav_mine']}" if gap > slack else ""

    assert _violations(audits, bad) == {}


@pytest.mark.slow
def test_no_trade_list_buys_a_blocked_or_excluded_name_or_washes_a_loss_it_sells(
    audits: dict[str, dict[str, Any]],
) -> None:
    keys = (
        "bought_blocked",
        "bought_and_loss_sold",
        "bought_excluded",
        "window_loss_sales",
        "oversold_lots",
        "wash_sale_issues",
    )
    assert _violations(audits, lambda a: {k: a[k] for k in keys if a[k]}) == {}


@pytest.mark.slow
def test_a_twin_of_a_recent_loss_sale_is_not_bought_nor_a_twin_of_a_recent_buy_loss_sold(
    audits: dict[str, dict[str, Any]],
) -> None:
    a = audits[IDENTICAL]
    # The groups really reach the reference's restrictions (so the checks below are not vacuous).
    assert "BZQ" in a["buy_blocked_names"] and "MKJ" in a["washed_loss_lot_names"]
    assert a["bought_blocked"] == [] and a["window_loss_sales"] == []
    assert a["bought_and_loss_sold"] == [] and a["wash_sale_issues"] == []


@pytest.mark.slow
def test_a_lot_sold_on_its_first_anniversary_is_reported_short_term_and_a_day_older_long(
    audits: dict[str, dict[str, Any]],
) -> None:
    realized = {r["lot_id"]: r for r in audits[ANNIVERSARY]["outcome"]["realized"]}
    terms = {lot: realized[lot]["term"] for lot in ANNIVERSARY_LOTS if lot in realized}
    assert terms, "neither boundary lot was sold: the case no longer tests the boundary"
    expected = {"T000006": "short", "T000017": "long"}
    assert terms == {lot: expected[lot] for lot in terms}


@pytest.mark.slow
def test_every_relaxation_the_outcome_records_was_needed(
    audits: dict[str, dict[str, Any]],
) -> None:
    # The side-free reference bounds every side assignment: if it is infeasible at a level,
    # no trade list could meet that level, so the step to the next one was needed.
    assert any(a["relaxations"] for a in audits.values()), "no case exercises the chain"
    assert _violations(audits, lambda a: a["skipped_levels_feasible"]) == {}
