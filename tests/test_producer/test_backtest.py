"""The backtest's accounting identities, on a small synthetic market through the real modules."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest

from producer.backtest import (
    BacktestConfig,
    OptimizerPolicy,
    RunResult,
    annualised_return,
    compare_at_equal_te,
    parse_sweep,
    realized_te,
    rebalance_mask,
    simulate,
    summarize,
    window,
)
from shared.errors import InputError
from shared.ledger import Ledger, cents
from shared.synthetic import synthetic_market

START, END = dt.date(2022, 1, 3), dt.date(2022, 3, 31)


@pytest.fixture(scope="module")
def market():
    return synthetic_market(n_names=30, start=START, end=END, seed=7)


@pytest.fixture(scope="module")
def config() -> BacktestConfig:
    return BacktestConfig(start=START, end=END, universe="synthetic:30", seed=7, audit=True)


@pytest.fixture(scope="module")
def run(market, config) -> RunResult:
    return simulate(market, OptimizerPolicy(config), config)


def test_cash_plus_positions_equals_the_pre_tax_nav_every_day(run, market) -> None:
    t0, _ = window(market, START, END)
    prices = np.nan_to_num(market.prices[t0 : t0 + len(run.dates)])
    # Positions valued independently from the ledger's open lots of each day would need a
    # replay per day; the audit flag already reconciled the share mirror with the ledger daily,
    # so value the mirror-independent way at the end and the identity on every day.
    cash = np.array([float(c) for c in run.cash])
    assert np.allclose(cash + run.positions_usd, run.pre_tax_nav, atol=1e-6)
    lots = run.book.ledger.open_lots(run.book.account_id)
    index = {s: i for i, s in enumerate(market.symbols)}
    # The ledger's open lots at the close the account trades at, per name to the cent: exactly.
    held: dict[str, Decimal] = defaultdict(Decimal)
    for lot in lots:
        held[lot.symbol] += lot.quantity
    ledger_value = sum(
        (cents(q * _traded_close(prices[-1][index[s]])) for s, q in held.items()), Decimal(0)
    )
    assert ledger_value + run.cash[-1] == run.pre_tax_usd[-1]
    assert float(run.pre_tax_usd[-1]) == run.pre_tax_nav[-1]
    assert run.pre_tax_nav[0] == pytest.approx(1_000_000, rel=1e-3)


def test_the_account_is_invested_from_day_one(run) -> None:
    assert float(run.cash[0]) < 0.05 * 1_000_000
    assert run.positions_usd[0] > 0.95 * 1_000_000


def test_taxes_equal_rate_times_realized_gains(run) -> None:
    st, lt = run.cum_realized_st[-1], run.cum_realized_lt[-1]
    exact = st * Decimal("0.408") + lt * Decimal("0.238")
    assert abs(run.net_tax[-1] - exact) <= Decimal("0.01") * len(run.dates) * 2
    assert run.taxes_paid[-1] - run.tax_saved[-1] == run.net_tax[-1]
    after = run.pre_tax_nav - np.array([float(x) for x in run.net_tax])
    assert np.allclose(after, run.after_tax_nav)


def test_the_run_harvests_losses_and_creates_no_wash_sale(run) -> None:
    assert run.wash_sales_created == 0
    assert run.cum_realized_st[-1] + run.cum_realized_lt[-1] < 0  # a quarter of harvesting
    assert sum(run.book.harvested_by_year.values()) > 0


def test_lots_reconcile_with_a_ledger_replay_of_the_trade_log(run) -> None:
    replay = Ledger(lot_method="fifo", household_id=run.book.ledger.state(END).household_id)
    for txn, fee in zip(run.book.log, run.book.commissions, strict=True):
        replay.apply(txn, commission=fee)

    def key(lot):
        return (lot.symbol, lot.lot_id, lot.quantity, lot.cost_basis_usd, lot.acquired)

    assert sorted(map(key, replay.open_lots())) == sorted(map(key, run.book.ledger.open_lots()))
    gains = sum((s.gain for s in replay.sales), Decimal(0))
    assert gains == run.cum_realized_st[-1] + run.cum_realized_lt[-1]
    assert not any(s.adjustment_code == "W" for s in replay.sales)


def test_the_benchmark_nav_is_the_index_total_return_from_the_capital(run, market) -> None:
    t0, t1 = window(market, START, END)
    level = market.benchmark_level[t0 : t1 + 1]
    assert np.allclose(run.benchmark_nav, 1_000_000 * level / level[0])
    # and the level is the total return of the benchmark weights (w[t−1]·r[t]).
    w = market.benchmark_weights[t0:t1]
    r = np.nan_to_num(market.prices[t0 + 1 : t1 + 1] / market.prices[t0:t1] - 1.0)
    assert np.allclose(level[1:] / level[:-1] - 1.0, (w * r).sum(axis=1), atol=1e-9)


def test_summary_has_the_contract_fields_and_reproducible_settings(run, config) -> None:
    s = summarize(run, run.config or config)
    for key in (
        "annual_tax_alpha",
        "realized_te",
        "pre_tax_active_return",
        "harvested_losses",
        "turnover",
        "wash_sales_created",
        "rebalances",
        "seconds",
    ):
        assert key in s
    assert s["rebalances"] == len(run.dates)
    assert s["harvested_losses"]["2022"] == str(cents(run.book.harvested_by_year[2022]))
    assert s["realized_te"] < 0.10
    assert (run.config or config).settings()["seed"] == 7


@pytest.mark.slow
def test_a_second_run_with_the_same_settings_is_identical(market, config, run) -> None:
    again = simulate(market, OptimizerPolicy(config), config)
    assert np.array_equal(again.after_tax_nav, run.after_tax_nav)
    assert again.net_tax == run.net_tax


def test_weekly_rebalancing_trades_on_the_first_session_of_each_week() -> None:
    days = [dt.date(2024, 1, d) for d in (2, 3, 4, 5, 8, 9, 16)]
    assert rebalance_mask(days, "weekly").tolist() == [1, 0, 0, 0, 1, 0, 1]
    months = [dt.date(2024, 1, 30), dt.date(2024, 1, 31), dt.date(2024, 2, 1)]
    assert rebalance_mask(months, "monthly").tolist() == [1, 0, 1]
    assert rebalance_mask(months, "daily").all()


def test_an_unknown_rebalance_frequency_names_the_field() -> None:
    with pytest.raises(InputError, match="rebalance"):
        rebalance_mask([dt.date(2024, 1, 2)], "hourly")  # type: ignore[arg-type]


def test_a_window_outside_the_market_is_rejected_with_its_span(market) -> None:
    with pytest.raises(InputError, match="outside the market data"):
        window(market, dt.date(2030, 1, 1), dt.date(2030, 6, 1))
    with pytest.raises(InputError, match="before --start"):
        window(market, END, START)


def test_a_window_of_one_session_is_refused_saying_so(market) -> None:
    day = market.dates[3]
    with pytest.raises(InputError, match="has one NYSE session; a backtest needs at least two"):
        window(market, day, day)


def test_realized_te_annualises_the_daily_active_return_deviation() -> None:
    rng = np.random.default_rng(0)
    active = rng.normal(0, 0.01 / np.sqrt(252), 5000)
    bench = np.cumprod(np.r_[1.0, np.full(5000, 1.0003)])
    port = bench * np.cumprod(np.r_[1.0, 1.0 + active / 1.0003])
    assert realized_te(port, bench) == pytest.approx(0.01, rel=0.05)
    nav = np.array([100.0 * 1.1 ** (k / 252) for k in range(253)])
    assert annualised_return(nav) == pytest.approx(0.1)


def test_sweep_text_is_parsed_or_rejected_naming_the_field() -> None:
    assert parse_sweep("lambda_tax=0.5,1,2") == ("lambda_tax", [0.5, 1.0, 2.0])
    assert parse_sweep("te-budget=0.01") == ("te_budget", [0.01])
    assert parse_sweep("lambda_te=0.1,1") == ("lambda_te", [0.1, 1.0])
    with pytest.raises(InputError, match="sweep"):
        parse_sweep("kappa=1")
    with pytest.raises(InputError, match="sweep"):
        parse_sweep("lambda_tax=a")


def test_the_comparison_interpolates_the_frontier_at_the_harvesters_te() -> None:
    out = compare_at_equal_te([(0.01, 0.010), (0.03, 0.020)], (0.02, 0.012))
    assert out["beats"] is True
    assert out["optimizer_alpha_at_te"] == pytest.approx(0.015)
    worse = compare_at_equal_te([(0.01, 0.010), (0.03, 0.020)], (0.02, 0.018))
    assert worse["beats"] is False
    assert "DOES NOT BEAT" in worse["verdict"]


def test_the_comparison_decides_outside_the_frontier_only_by_dominance() -> None:
    assert compare_at_equal_te([(0.01, 0.02)], (0.03, 0.01))["beats"] is True
    assert compare_at_equal_te([(0.05, 0.01)], (0.03, 0.02))["beats"] is False
    lower_te_less_alpha = compare_at_equal_te([(0.01, 0.005)], (0.07, 0.03))
    assert lower_te_less_alpha["beats"] is None
    assert "NOT COMPARABLE" in lower_te_less_alpha["verdict"]
    assert "sweep te_budget higher" in lower_te_less_alpha["verdict"]


def test_annual_netting_accrues_the_years_schedule_d_tax_across_a_year_end() -> None:
    start, end = dt.date(2021, 11, 1), dt.date(2022, 2, 28)
    m = synthetic_market(n_names=30, start=start, end=end, seed=5)
    cfg = BacktestConfig(start=start, end=end, seed=5, tax_netting="annual", rebalance="weekly")
    run = simulate(m, OptimizerPolicy(cfg), cfg)
    taxes = run.book.taxes
    assert 2021 in taxes.years
    y2021 = taxes.years[2021]
    last_2021 = max(k for k, d in enumerate(run.dates) if d.year == 2021)
    assert run.net_tax[last_2021] == y2021.tax
    # The 2021 netting never credits more than the $3,000 ordinary offset at the ST rate.
    assert y2021.tax >= -Decimal(3000) * Decimal("0.408")
    assert run.taxes_paid[-1] - run.tax_saved[-1] == run.net_tax[-1]
    assert run.wash_sales_created == 0
    # The summary files each closed year as netted (review: docs promised it, no output had it).
    filed = summarize(run, cfg)["tax_years"]
    assert list(filed) == [str(y) for y in sorted(taxes.years)] and "2021" in filed
    assert filed["2021"]["tax"] == str(y2021.tax)
    assert filed["2021"]["ordinary_offset"] == str(y2021.ordinary_offset)


@pytest.fixture(scope="module")
def long_short_run() -> RunResult:
    start, end = dt.date(2021, 1, 4), dt.date(2021, 2, 26)
    m = synthetic_market(n_names=30, start=start, end=end, seed=9)
    cfg = BacktestConfig(start=start, end=end, seed=9, strategy="long-short", audit=True)
    return simulate(m, OptimizerPolicy(cfg), cfg)


@pytest.mark.slow
def test_a_long_short_run_keeps_cash_plus_positions_equal_to_nav(long_short_run) -> None:
    run = long_short_run
    cash = np.array([float(c) for c in run.cash])
    assert np.allclose(cash + run.positions_usd, run.pre_tax_nav, atol=1e-6)
    assert run.wash_sales_created == 0


def test_a_short_lot_is_valued_and_covered_as_short_term() -> None:
    from producer.backtest import Book
    from shared.messages import TaxRates, Transaction

    book = Book(["AAA", "BBB"], capital_usd=Decimal(10_000), rates=TaxRates())
    opened, covered = dt.date(2023, 1, 3), dt.date(2024, 3, 1)
    book.apply(
        [
            Transaction(
                id="s1", date=opened, account=book.account_id, symbol="BBB", side="short",
                quantity=Decimal(10), price=Decimal(50), lot_id="S1",
            )
        ]
    )  # fmt: skip
    assert book.cash == Decimal(10_500)
    assert book.shares.tolist() == [0.0, -10.0]
    assert book.value(np.array([0.0, 40.0])) == pytest.approx(10_100.0)
    # more than a year later the open short is still short-term (IRC §1233(b))
    st, lt = book.unrealized(covered, np.array([0.0, 40.0]))
    assert (st, lt) == (pytest.approx(100.0), 0.0)
    book.audit(covered)
    fill = book.apply(
        [
            Transaction(
                id="c1", date=covered, account=book.account_id, symbol="BBB", side="cover",
                quantity=Decimal(10), price=Decimal(40), lot_id="S1",
            )
        ]
    )  # fmt: skip
    assert fill.realized_st == Decimal("100.00")
    assert fill.realized_lt == 0
    assert book.cash == Decimal(10_100)
    assert book.shares.tolist() == [0.0, 0.0]
    book.audit(covered)


def test_fills_move_cash_exactly_and_carry_each_fills_commission_into_the_tax_lots() -> None:
    from producer.backtest import Book
    from shared.messages import TaxRates, Transaction

    book = Book(["AAA", "BBB"], capital_usd=Decimal(10_000), rates=TaxRates(), trading_cost_bps=10)
    day1, day2 = dt.date(2024, 3, 1), dt.date(2024, 3, 4)
    buy = Transaction(
        id="t1", date=day1, account=book.account_id, symbol="AAA", side="buy",
        quantity=Decimal(10), price=Decimal("100.25"), lot_id="L1",
    )  # fmt: skip
    fill = book.apply([buy])
    assert fill.cost_usd == Decimal("1.00")  # 10 bps of 1,002.50, to the cent
    assert book.cash == Decimal(10_000) - Decimal("1002.50") - Decimal("1.00")
    # IRS Pub. 550: the commission is part of the lot's basis.
    assert [lot.cost_basis_usd for lot in book.ledger.open_lots()] == [Decimal("1003.50")]
    sell = Transaction(
        id="t2", date=day2, account=book.account_id, symbol="AAA", side="sell",
        quantity=Decimal(4), price=Decimal("90"), lot_id="L1",
    )  # fmt: skip
    fill = book.apply([sell])
    assert fill.cost_usd == Decimal("0.36")  # 10 bps of 360.00
    assert book.cash == Decimal(10_000) - Decimal("1003.50") + Decimal("360.00") - Decimal("0.36")
    # Proceeds 360.00 − 0.36 = 359.64; basis 4/10 of 1,003.50 = 401.40.
    assert fill.realized_st == Decimal("-41.76")
    assert book.harvested_by_year[2024] == Decimal("41.76")
    assert book.shares.tolist() == [6.0, 0.0]
    st, lt = book.unrealized(day2, np.array([95.0, 0.0]))
    assert st == pytest.approx(6 * 95 - 602.10)  # the rest of the basis, 1,003.50 − 401.40
    assert lt == 0.0
    assert book.commissions == [Decimal("1.00"), Decimal("0.36")]
    book.audit(day2)


def test_each_fill_pays_its_own_commission_rounded_to_the_cent() -> None:
    from producer.backtest import Book
    from shared.messages import TaxRates, Transaction

    book = Book(["AAA", "BBB"], capital_usd=Decimal(10_000), rates=TaxRates(), trading_cost_bps=10)
    day = dt.date(2024, 3, 1)
    buys = [
        Transaction(
            id=f"t{k}", date=day, account=book.account_id, symbol=sym, side="buy",
            quantity=Decimal(1), price=Decimal("5.05"), lot_id=f"L{k}",
        )
        for k, sym in enumerate(("AAA", "BBB"))
    ]  # fmt: skip
    fill = book.apply(buys)
    # 10 bps of 5.05 is 0.00505 → 0.01 half-up, on each fill (the day's 10.10 would be 0.01).
    assert fill.cost_usd == Decimal("0.02")
    assert book.cash == Decimal(10_000) - Decimal("10.10") - Decimal("0.02")
    assert sorted(lot.cost_basis_usd for lot in book.ledger.open_lots()) == [Decimal("5.06")] * 2


def test_a_held_name_that_stops_trading_is_cashed_out_at_its_last_close() -> None:
    from producer.baselines import HoldIndexPolicy
    from shared.market import MarketHistory

    dates = tuple(dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5))
    nan = float("nan")
    prices = np.array(
        [
            [10.0, 20.0, 40.0],
            [10.5, 20.0, 38.0],
            [11.0, 21.0, 36.0],
            [11.0, 21.5, nan],
            [11.5, 22.0, nan],
        ]
    )
    weights = np.array([[0.3, 0.3, 0.4]] * 3 + [[0.5, 0.5, 0.0]] * 2)
    level = 100.0 * np.cumprod(
        np.r_[1.0, [(weights[t - 1] * np.nan_to_num(prices[t] / prices[t - 1] - 1)).sum()
                    + 1.0 for t in range(1, 5)]]
    )  # fmt: skip
    market = MarketHistory(
        symbols=("AAA", "BBB", "CCC"),
        sectors=("x", "x", "y"),
        dates=dates,
        prices=prices,
        benchmark_weights=weights,
        benchmark_level=level,
        factor_names=(),
    )
    cfg = BacktestConfig(start=dates[0], end=dates[-1], rebalance="monthly", audit=True)
    run = simulate(market, HoldIndexPolicy(), cfg)
    out = [t for t in run.book.log if t.id.startswith("delist:")]
    assert out, "CCC was cashed out"
    assert {t.symbol for t in out} == {"CCC"}
    assert all(t.date == dates[3] and t.price == Decimal("36.000000") for t in out)
    assert run.book.shares[2] == 0
    bought = sum(t.quantity for t in run.book.log if t.symbol == "CCC" and t.side == "buy")
    assert run.cum_realized_st[3] == bought * (Decimal(36) - Decimal(40))
    cash = np.array([float(c) for c in run.cash])
    assert np.allclose(cash + run.positions_usd, run.pre_tax_nav)


def test_an_optimizer_at_higher_te_with_more_alpha_is_not_comparable_and_says_which_way() -> None:
    out = compare_at_equal_te([(0.02, 0.05)], (0.015, 0.04))
    assert out["beats"] is None
    assert "higher TE with more alpha" in out["verdict"]
    assert "sweep te_budget lower" in out["verdict"]
    below = compare_at_equal_te([(0.01, 0.03)], (0.015, 0.04))
    assert below["beats"] is None
    assert "lower TE with less alpha" in below["verdict"]


def _traded_close(x: float) -> Decimal:
    # Written out here rather than imported: the price the rebalance fills at, 1/100 of a cent.
    return Decimal(repr(float(x))).quantize(Decimal("0.0001"))


def _nav_rows(run: RunResult, tmp_path) -> list[dict[str, Decimal]]:
    import csv

    from producer.reports import write_nav_csv

    write_nav_csv(tmp_path / "nav.csv", run)
    with open(tmp_path / "nav.csv", newline="") as fh:
        return [
            {k: v if k == "date" else Decimal(v) for k, v in row.items()}
            for row in csv.DictReader(fh)
        ]


def test_nav_csv_marks_every_position_at_the_fill_price_to_the_cent_from_exactly_the_capital(
    run, market, tmp_path
) -> None:
    t0, _ = window(market, START, END)
    index = {s: i for i, s in enumerate(market.symbols)}
    rows = _nav_rows(run, tmp_path)
    log: dict[dt.date, list] = defaultdict(list)
    for txn in run.book.log:
        log[txn.date].append(txn)
    cash, held = Decimal(1_000_000), defaultdict(Decimal)
    for k, (day, row) in enumerate(zip(run.dates, rows, strict=True)):
        closes = market.prices[t0 + k]
        for txn in log[day]:
            # every fill is at the session's close as the account trades at it
            assert txn.price == _traded_close(closes[index[txn.symbol]]), (day, txn.symbol)
            amount = cents(txn.quantity * txn.price)
            cash += -amount if txn.side == "buy" else amount
            held[txn.symbol] += txn.quantity if txn.side == "buy" else -txn.quantity
        marked = sum(
            (cents(q * _traded_close(closes[index[s]])) for s, q in held.items()), Decimal(0)
        )
        assert row["cash"] == cash
        assert row["pre_tax_nav"] == cash + marked, day
        assert row["after_tax_nav"] == row["pre_tax_nav"] - row["net_tax"], day
        assert row["net_tax"] == row["taxes_paid"] - row["tax_saved"], day
    # Day one: the account invested the capital and is worth exactly it, like the benchmark.
    assert rows[0]["after_tax_nav"] == rows[0]["benchmark_nav"] == Decimal("1000000.00")


def test_a_purchase_that_washes_an_earlier_loss_sale_restates_the_loss_and_its_tax() -> None:
    from producer.backtest import Book
    from shared.messages import TaxRates, Transaction

    book = Book(["AAA"], capital_usd=Decimal(10_000), rates=TaxRates())
    days = [dt.date(2024, 3, 1), dt.date(2024, 3, 11), dt.date(2024, 3, 25)]

    def txn(n: int, side: str, qty: int, price: str, lot: str) -> Transaction:
        return Transaction(
            id=f"t{n}", date=days[n], account=book.account_id, symbol="AAA", side=side,
            quantity=Decimal(qty), price=Decimal(price), lot_id=lot,
        )  # fmt: skip

    for n, t in enumerate(
        [
            txn(0, "buy", 10, "100", "L1"),
            txn(1, "sell", 10, "90", "L1"),
            txn(2, "buy", 4, "91", "L2"),
        ]
    ):
        fill = book.apply([t])
        book.taxes.record(days[n].year, fill.realized_st, fill.realized_lt)
    # IRC §1091(a): the 4 shares bought 14 days after the loss sale disallow 4/10 of its $100.
    (sale,) = book.ledger.sales
    assert sale.adjustment_code == "W" and sale.gain == Decimal("-60.00")
    assert fill.realized_st == Decimal("40.00") and fill.washed == 1
    totals = book.taxes.totals()
    assert totals.realized_short_term == sale.gain
    assert totals.net_tax == cents(Decimal("-100") * Decimal("0.408")) + cents(
        Decimal("40") * Decimal("0.408")
    )
    assert book.harvested_by_year[2024] == Decimal("60.00")
    book.audit(days[2])


@pytest.fixture(scope="module")
def cost_run() -> RunResult:
    start, end = dt.date(2022, 1, 3), dt.date(2022, 2, 28)
    m = synthetic_market(n_names=30, start=start, end=end, seed=7)
    cfg = BacktestConfig(start=start, end=end, seed=7, trading_cost_bps=5, audit=True)
    assert cfg.cash_band() == (pytest.approx(0.001), pytest.approx(0.021))
    return simulate(m, OptimizerPolicy(cfg), cfg)  # refused by the solve once cash was < 0


def test_a_trading_cost_is_paid_from_a_cash_reserve_so_cash_never_goes_below_zero(
    cost_run,
) -> None:
    run = cost_run
    assert min(run.cash) >= 0
    assert run.book.costs_usd > 0
    assert run.book.costs_usd == sum(run.book.commissions, Decimal(0))
    # Day one is worth the capital less what investing it cost: each fill's 5 bps to the cent.
    first = [
        fee
        for txn, fee in zip(run.book.log, run.book.commissions, strict=True)
        if txn.date == run.dates[0]
    ]
    assert first and all(
        fee == cents(cents(t.quantity * t.price) * Decimal("0.0005"))
        for t, fee in zip(run.book.log, first, strict=False)
    )
    assert run.pre_tax_usd[0] == Decimal(1_000_000) - sum(first, Decimal(0))


def test_with_a_trading_cost_every_return_runs_from_the_capital_as_the_benchmark_does(
    cost_run,
) -> None:
    # The first row is net of the commission of investing the capital: measured from it, 50 bps
    # doubled the tax alpha of a two-month run (runner audit).
    run = cost_run
    s = summarize(run, run.config)
    years = (len(run.dates) - 1) / 252
    capital = 1_000_000.0
    assert run.pre_tax_nav[0] < capital == run.benchmark_nav[0]
    after = (run.after_tax_nav[-1] / capital) ** (1 / years) - 1
    bench = (run.benchmark_nav[-1] / capital) ** (1 / years) - 1
    assert s["after_tax_return"] == pytest.approx(after, rel=1e-12)
    assert s["annual_tax_alpha"] == pytest.approx(after - bench, rel=1e-12)
    first_year = s["by_year"][str(run.dates[0].year)]
    assert first_year["pre_tax_return"] == pytest.approx(
        run.pre_tax_nav[-1] / capital - 1, rel=1e-12
    )


def test_with_a_trading_cost_realized_gains_are_proceeds_less_commissions_less_basis(
    cost_run,
) -> None:
    # IRS Pub. 550 / Form 8949: gain = (proceeds − sale commissions) − (cost + buy commissions).
    # Over the run: everything sold net of its commissions, less everything bought with its
    # commissions, plus the basis still open (wash adjustments cancel out: none here anyway).
    run, book = cost_run, cost_run.book
    sold = sold_fees = bought = bought_fees = Decimal(0)
    for txn, fee in zip(book.log, book.commissions, strict=True):
        amount = cents(txn.quantity * txn.price)
        assert fee == cents(amount * Decimal("0.0005"))
        if txn.side == "sell":
            sold, sold_fees = sold + amount, sold_fees + fee
        else:
            assert txn.side == "buy"
            bought, bought_fees = bought + amount, bought_fees + fee
    assert sold_fees > 0 and bought_fees > 0
    open_basis = sum((lot.cost_basis_usd for lot in book.ledger.open_lots()), Decimal(0))
    realized = run.cum_realized_st[-1] + run.cum_realized_lt[-1]
    assert realized == (sold - sold_fees) - (bought + bought_fees) + open_basis
    assert realized == sum((s.gain for s in book.ledger.sales), Decimal(0))
    # The trade log with its commissions replays to the same lots and gains.
    replay = Ledger(lot_method="fifo", household_id=book.ledger.household_id)
    for txn, fee in zip(book.log, book.commissions, strict=True):
        replay.apply(txn, commission=fee)
    assert replay.sales == book.ledger.sales
    assert replay.open_lots() == book.ledger.open_lots()
    # and nav.csv's tax columns follow those gains (daily netting: rate × each day's net).
    assert run.taxes_paid[-1] - run.tax_saved[-1] == run.net_tax[-1]
    exact = run.cum_realized_st[-1] * Decimal("0.408") + run.cum_realized_lt[-1] * Decimal("0.238")
    assert abs(run.net_tax[-1] - exact) <= Decimal("0.01") * len(run.dates)


def test_a_window_the_data_cover_only_in_part_is_refused_naming_the_span(market) -> None:
    with pytest.raises(InputError, match=r"2022-04-01 is not in the data") as exc:
        window(market, START, dt.date(2022, 4, 1))
    assert exc.value.field == "end"
    with pytest.raises(InputError, match=r"2021-12-30 is not in the data") as exc:
        window(market, dt.date(2021, 12, 30), END)
    assert exc.value.field == "start"
    # A first day that is not a session is fine.
    assert window(market, dt.date(2022, 1, 1), END) == window(market, START, END)


def test_a_te_budget_sweep_of_zero_is_refused_before_any_run() -> None:
    with pytest.raises(InputError, match="TE budget must be > 0") as exc:
        parse_sweep("te_budget=0,0.02")
    assert exc.value.field == "sweep"


def test_a_verdict_by_dominance_quotes_the_optimizer_runs_own_te() -> None:
    out = compare_at_equal_te([(0.05, 0.01)], (0.03, 0.02))
    assert out["beats"] is False
    assert "at realized TE 5.00% vs the harvester's 3.00%" in out["verdict"]
    better = compare_at_equal_te([(0.01, 0.03)], (0.03, 0.02))
    assert "tax alpha 3.00%/y vs 2.00%/y at realized TE 1.00%" in better["verdict"]


@pytest.mark.slow
def test_turnover_leaves_out_every_trade_of_day_one_for_a_long_short_book(long_short_run) -> None:
    run = long_short_run
    first = run.dates[0]
    assert {t.side for t in run.book.log if t.date == first} == {"buy", "short"}
    later = sum((cents(t.quantity * t.price) for t in run.book.log if t.date != first), Decimal(0))
    years = (len(run.dates) - 1) / 252
    expected = float(later) / 2 / float(np.mean(run.pre_tax_nav)) / years
    # (capital − day-one cash nets the short sales against the buys: it counted the shorts,
    # and the longs they paid for, as turnover.)
    assert summarize(run, run.config)["turnover"] == pytest.approx(expected, rel=1e-12)


def test_no_loss_sale_is_within_30_days_of_a_purchase_of_its_name_whichever_came_first(
    run,
) -> None:
    # DESIGN.md §2 read literally, the way an outside check reads a trade log: a loss sale with
    # a purchase of the same name in the 30 days before it (the sold lot's own purchase, or one
    # bought and sold again since, included) or after it.  The ledger would not call all of
    # these wash sales (docs/ledger.md), but the optimizer makes none of them.
    buys: dict[str, list[dt.date]] = {}
    for txn in run.book.log:
        if txn.side == "buy":
            buys.setdefault(txn.symbol, []).append(txn.date)
    losses = [s for s in run.book.ledger.sales if s.gain < 0]
    assert losses  # the quarter harvests
    near = [
        (s.symbol, s.date_sold, d)
        for s in losses
        for d in buys.get(s.symbol, [])
        if abs((d - s.date_sold).days) <= 30
    ]
    assert not near, near[:5]


class _CapSpy:
    """A policy that trades nothing and notes the single-name cap each day's solve would get."""

    name = "spy"

    def __init__(self) -> None:
        self.caps: list[float] = []

    def decide(self, ctx) -> list:
        self.caps.append(ctx.config.account_spec(ctx.book.cash).max_weight)
        return []


def test_the_default_cap_of_a_day_uses_no_benchmark_weight_after_it() -> None:
    # Runner audit (2026-12-07, eighth session): the default cap came from the largest benchmark
    # weight of the whole window — on the 20-name sample 68.6% in January 2000 for a run to
    # 2022 (one name grows to 55% of the basket), 17.3% for a run to the end of 2000 — so the
    # same days traded otherwise depending on --end.
    from producer.datasets import load_sp500_sample

    start = dt.date(2000, 1, 3)
    caps = []
    for end in (dt.date(2000, 3, 31), dt.date(2003, 12, 31)):
        market = load_sp500_sample(start, end).history
        spy = _CapSpy()
        run = simulate(market, spy, BacktestConfig(start=start, end=end, universe="sp500-sample"))
        caps.append(spy.caps)
        t0 = market.dates.index(start)
        largest = np.maximum.accumulate(market.benchmark_weights[t0:].max(axis=1))
        expect = np.minimum(1.0, np.round(np.maximum(0.10, 1.25 * largest), 4))
        assert spy.caps == expect.tolist()  # the largest weight so far: never falls
        assert run.max_weight_used == (spy.caps[0], spy.caps[-1])
    short, long = caps
    assert long[: len(short)] == short
    assert long[-1] > short[-1]  # the later window did grow a larger weight
