from __future__ import annotations

import datetime as dt

import exchange_calendars as xcals
import pandas as pd
import pytest

from shared.calendar import (
    is_trading_day,
    next_trading_day,
    previous_trading_day,
    trading_day_on_or_before,
    trading_days,
)
from shared.errors import InputError

# exchange_calendars 4.x trips pandas 3 deprecation warnings when it builds a calendar.
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")


def test_independence_day_is_closed_and_the_day_after_thanksgiving_is_open():
    assert not is_trading_day(dt.date(2024, 7, 4))
    assert is_trading_day(dt.date(2024, 11, 29))
    assert not is_trading_day(dt.date(2024, 11, 28))
    assert not is_trading_day(dt.date(2024, 7, 6))  # a Saturday


def test_trading_days_agree_with_exchange_calendars_over_a_year():
    cal = xcals.get_calendar("XNYS", start="2023-01-01", end="2024-12-31")
    expected = [ts.date() for ts in cal.sessions_in_range("2024-01-01", "2024-12-31")]
    got = trading_days(dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert got == expected
    assert len(got) == 252
    assert dt.date(2024, 7, 4) not in got


def test_trading_days_are_inclusive_of_both_ends_and_empty_when_reversed():
    days = trading_days(dt.date(2024, 7, 3), dt.date(2024, 7, 5))
    assert days == [dt.date(2024, 7, 3), dt.date(2024, 7, 5)]
    assert trading_days(dt.date(2024, 7, 5), dt.date(2024, 7, 3)) == []


def test_previous_and_next_trading_day_skip_weekends_and_holidays():
    assert next_trading_day(dt.date(2024, 7, 3)) == dt.date(2024, 7, 5)
    assert previous_trading_day(dt.date(2024, 7, 5)) == dt.date(2024, 7, 3)
    assert previous_trading_day(dt.date(2024, 7, 8)) == dt.date(2024, 7, 5)
    assert next_trading_day(dt.date(2024, 7, 6)) == dt.date(2024, 7, 8)
    assert previous_trading_day(dt.date(2024, 7, 8), n=2) == dt.date(2024, 7, 3)
    assert next_trading_day(dt.date(2024, 12, 24)) == dt.date(2024, 12, 26)
    assert trading_day_on_or_before(dt.date(2024, 7, 4)) == dt.date(2024, 7, 3)
    assert trading_day_on_or_before(dt.date(2024, 7, 3)) == dt.date(2024, 7, 3)


def test_unscheduled_closures_come_from_exchange_calendars():
    # Hurricane Sandy (2012-10-29/30) and the national day of mourning for President Carter.
    assert not is_trading_day(dt.date(2012, 10, 29))
    assert not is_trading_day(dt.date(2025, 1, 9))
    cal = xcals.get_calendar("XNYS")
    assert is_trading_day(dt.date(2025, 1, 10)) == cal.is_session(pd.Timestamp("2025-01-10"))


def test_a_date_outside_the_calendar_range_is_rejected_with_the_field():
    with pytest.raises(InputError) as info:
        is_trading_day(dt.date(1980, 1, 2))
    assert info.value.field == "date"
    with pytest.raises(InputError):
        trading_days(dt.date(2024, 1, 1), dt.date(2050, 1, 1))
    with pytest.raises(InputError):
        previous_trading_day(dt.date(2024, 1, 2), n=0)
