"""Tax accounting of the backtest: daily accrual, Schedule D netting, $3,000 offset, carry-over."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.taxes import Rates, TaxAccountant, net_year
from shared.errors import InputError
from shared.ledger import cents
from shared.messages import TaxRates

RATES = Rates.from_wire(TaxRates())
D = Decimal


def test_default_rates_include_the_net_investment_income_tax() -> None:
    assert RATES.short_term == D("0.408")
    assert RATES.long_term == D("0.238")


def test_a_rate_of_one_hundred_percent_is_rejected_naming_the_field() -> None:
    with pytest.raises(InputError, match=r"rates\.long_term"):
        Rates.from_wire(TaxRates(long_term=1.0))


def test_daily_mode_taxes_each_days_gains_and_credits_each_days_losses_at_the_rates() -> None:
    acct = TaxAccountant(RATES)
    assert acct.record(2020, D("1000"), D("0")) == D("408.00")
    assert acct.record(2020, D("-500"), D("200")) == D("-204.00") + D("47.60")
    totals = acct.totals()
    assert totals.net_tax == D("251.60")
    assert totals.taxes_paid == D("408.00") + D("47.60")
    assert totals.tax_saved == D("204.00")
    assert totals.realized_short_term == D("500")
    assert totals.realized_long_term == D("200")


@given(
    st.lists(
        st.tuples(
            st.decimals(min_value=-(10**6), max_value=10**6, places=2),
            st.decimals(min_value=-(10**6), max_value=10**6, places=2),
        ),
        max_size=30,
    )
)
def test_daily_mode_net_tax_is_rate_times_realized_day_by_day(days) -> None:
    acct = TaxAccountant(RATES)
    expected = D(0)
    for st_gain, lt_gain in days:
        change = acct.record(2021, st_gain, lt_gain)
        day = cents(st_gain * RATES.short_term) + cents(lt_gain * RATES.long_term)
        assert change == day
        expected += day
    totals = acct.totals()
    assert totals.net_tax == expected
    assert totals.taxes_paid - totals.tax_saved == totals.net_tax
    # Rounding per day can drift from rate × total by at most a cent per day and term.
    exact = totals.realized_short_term * RATES.short_term
    exact += totals.realized_long_term * RATES.long_term
    assert abs(totals.net_tax - exact) <= D("0.01") * len(days)


def test_netting_taxes_gains_of_both_terms_at_their_own_rates() -> None:
    n = net_year(D(1000), D(2000), rates=RATES)
    assert n.tax == D("408.00") + D("476.00")
    assert n.carry_short_term == n.carry_long_term == 0


def test_a_short_term_loss_offsets_a_long_term_gain_and_the_rest_is_taxed_as_long_term() -> None:
    n = net_year(D(-1000), D(3000), rates=RATES)
    assert n.tax == D("476.00")  # 2,000 × 23.8%


def test_a_long_term_loss_offsets_a_short_term_gain_and_the_rest_is_taxed_as_short_term() -> None:
    n = net_year(D(3000), D(-1000), rates=RATES)
    assert n.tax == D("816.00")  # 2,000 × 40.8%


def test_a_net_loss_offsets_three_thousand_of_ordinary_income_and_carries_the_rest() -> None:
    # Pub 550: net ST loss 5,000 and net LT loss 2,000 → deduct 3,000 (ST first), carry
    # 2,000 ST and 2,000 LT.
    n = net_year(D(-5000), D(-2000), rates=RATES)
    assert n.ordinary_offset == D(3000)
    assert n.tax == D("-1224.00")
    assert n.carry_short_term == D(-2000)
    assert n.carry_long_term == D(-2000)


def test_a_long_term_loss_larger_than_a_short_term_gain_carries_as_long_term() -> None:
    n = net_year(D(1000), D(-6000), rates=RATES)
    assert n.ordinary_offset == D(3000)
    assert n.carry_short_term == 0
    assert n.carry_long_term == D(-2000)


def test_a_carried_loss_offsets_next_years_gains_with_its_character() -> None:
    n = net_year(D(500), D(4000), rates=RATES, carry_short_term=D(-1500))
    # ST 500 − 1,500 = −1,000 offsets LT 4,000 → 3,000 LT taxed at 23.8%.
    assert n.tax == D("714.00")
    assert n.carry_short_term == n.carry_long_term == 0


def test_a_positive_carry_forward_is_rejected() -> None:
    with pytest.raises(InputError, match="carry"):
        net_year(D(0), D(0), rates=RATES, carry_short_term=D(1))


def test_annual_mode_accrues_the_year_to_date_tax_and_rolls_the_carry_forward() -> None:
    acct = TaxAccountant(RATES, netting="annual")
    acct.record(2020, D(-10000), D(0))
    assert acct.totals().net_tax == D("-1224.00")  # only 3,000 is usable this year
    acct.record(2020, D(2000), D(0))
    assert acct.totals().net_tax == D("-1224.00")  # still a net loss above 3,000
    acct.record(2021, D(0), D(10000))  # rolls 2020: carry ST −5,000
    assert acct.years[2020].carry_short_term == D(-5000)
    assert acct.carry_forward == (D(-5000), D(0))
    # 2021: LT 10,000 − 5,000 ST carry = 5,000 LT gain.
    assert acct.totals().net_tax == D("-1224.00") + D("1190.00")
    totals = acct.totals()
    assert totals.taxes_paid - totals.tax_saved == totals.net_tax


def test_annual_mode_refuses_days_out_of_year_order() -> None:
    acct = TaxAccountant(RATES, netting="annual")
    acct.record(2021, D(1), D(0))
    with pytest.raises(InputError, match="date"):
        acct.record(2020, D(1), D(0))


def test_liquidation_tax_is_rate_times_unrealized_in_daily_mode() -> None:
    acct = TaxAccountant(RATES)
    assert acct.liquidation_tax(1000.0, -500.0) == pytest.approx(408.0 - 119.0)


def test_liquidation_tax_in_annual_mode_is_the_years_extra_tax() -> None:
    acct = TaxAccountant(RATES, netting="annual")
    acct.record(2020, D(-2000), D(0))  # −816 accrued
    # Selling everything would add a 5,000 LT gain: net 3,000 LT at 23.8% = 714 → +1,530.
    assert acct.liquidation_tax(0.0, 5000.0) == pytest.approx(714.0 + 816.0)


def test_an_unknown_netting_mode_is_rejected() -> None:
    with pytest.raises(InputError, match="tax_netting"):
        TaxAccountant(RATES, netting="weekly")  # type: ignore[arg-type]


def test_a_rate_that_reaches_one_hundred_percent_with_the_niit_is_rejected() -> None:
    # 37% + 70% NIIT would tax $1.07 per $1 of gain.
    with pytest.raises(InputError, match=r"rates\.short_term"):
        Rates.from_wire(TaxRates(niit=0.7))
    with pytest.raises(InputError, match=r"rates\.long_term"):
        Rates.from_wire(TaxRates(short_term=0.2, long_term=0.5, niit=0.5))
    assert Rates.from_wire(TaxRates(short_term=0.5, niit=0.4)).short_term == D("0.9")


def test_a_carried_loss_earns_its_ordinary_offset_from_the_new_years_first_day() -> None:
    # IRC §1211(b), §1212(b): the accrual is the year-to-date tax "as if the year ended that
    # day", so a carry-in counts on a day that realizes nothing (audit: it waited for the
    # year's first sale, and a one-cent gain then moved the after-tax NAV by $1,224).
    rates = Rates(short_term=Decimal("0.408"), long_term=Decimal("0.238"))
    acc = TaxAccountant(rates, netting="annual")
    acc.record(2023, Decimal("-10000"), Decimal(0))
    assert acc.totals().net_tax == Decimal("-1224.00")
    acc.record(2024, Decimal(0), Decimal(0))
    assert acc.carry_forward == (Decimal("-7000.00"), Decimal(0))
    assert acc.totals().net_tax == Decimal("-2448.00")
    acc.record(2024, Decimal("0.01"), Decimal(0))
    assert acc.totals().net_tax == Decimal("-2448.00")


def test_annual_taxes_paid_on_gains_alone_equal_the_net_tax_to_the_cent() -> None:
    # Runner audit: daily-rounded tax on gains summed to 2 cents under the year's tax rounded
    # once, so a year with no loss showed a tax_saved of -$0.02.
    acct = TaxAccountant(Rates.from_wire(TaxRates()), netting="annual")
    for k in range(40):
        gain = Decimal("13.37") + Decimal(k) / 100
        acct.record(2024 if k < 25 else 2025, gain, gain / 3)
        totals = acct.totals()
        assert totals.tax_saved == 0 and totals.taxes_paid == totals.net_tax
