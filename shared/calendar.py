"""NYSE trading days, from ``exchange_calendars`` (holidays are never hand-rolled here).

The ``XNYS`` calendar is slow to build (~0.1 s) and bounded: it is built once, lazily, over
:data:`CALENDAR_START` .. :data:`CALENDAR_END`, and its sessions are kept as a sorted array of
``datetime64[D]`` so every lookup below is a binary search.  Dates outside the bounds raise
:class:`~shared.errors.InputError` (``field="date"``) instead of silently answering wrong.

This module is about *trading days* only.  Tax holding periods (IRC §1222, §1223) and the
wash-sale window (IRC §1091) count *calendar* days and live with the ledger, not here.

``shared`` may use ``exchange_calendars``, ``pandas`` and ``pyarrow`` for market data (this
module, :mod:`shared.synthetic`, :mod:`shared.market`, :mod:`shared.loaders`).
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from typing import cast

import numpy as np
import numpy.typing as npt

from shared.errors import InputError

#: Exchange code of the New York Stock Exchange in ``exchange_calendars``.
EXCHANGE = "XNYS"
#: First and last day the calendar is built for; widen here if history needs it.
CALENDAR_START = dt.date(1990, 1, 2)
CALENDAR_END = dt.date(2035, 12, 31)

DayArray = npt.NDArray[np.datetime64]


@functools.cache
def _sessions() -> DayArray:
    """All NYSE sessions between the bounds, as sorted ``datetime64[D]`` (built once)."""
    import exchange_calendars as xcals

    with warnings.catch_warnings():
        # exchange_calendars 4.x trips pandas 3 deprecation warnings while it builds.
        warnings.simplefilter("ignore")
        cal = xcals.get_calendar(
            EXCHANGE, start=CALENDAR_START.isoformat(), end=CALENDAR_END.isoformat()
        )
    days: DayArray = cal.sessions.to_numpy().astype("datetime64[D]")
    return days


def _d64(d: dt.date) -> np.datetime64:
    return np.datetime64(d.isoformat(), "D")


def _to_date(x: np.datetime64) -> dt.date:
    return cast(dt.date, x.astype("datetime64[D]").item())


def _check_bounds(d: dt.date, what: str = "date") -> None:
    if not isinstance(d, dt.date) or isinstance(d, dt.datetime):
        raise InputError(f"{what} must be a datetime.date, got {d!r}", field=what)
    if not CALENDAR_START <= d <= CALENDAR_END:
        raise InputError(
            f"{what} {d} is outside the NYSE calendar range {CALENDAR_START}..{CALENDAR_END}",
            field=what,
        )


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """NYSE sessions ``start <= d <= end`` (both inclusive), in order.

    Args:
        start: first calendar day of the range.
        end: last calendar day of the range.

    Returns:
        The trading days in the range (empty if ``end < start``).

    Raises:
        InputError: a bound outside the calendar range.
    """
    return [_to_date(x) for x in trading_days_array(start, end)]


def trading_days_array(start: dt.date, end: dt.date) -> DayArray:
    """Like :func:`trading_days` but as a ``datetime64[D]`` array (fast for long ranges).

    Raises:
        InputError: a bound outside the calendar range.
    """
    _check_bounds(start, "start")
    _check_bounds(end, "end")
    s = _sessions()
    lo = int(np.searchsorted(s, _d64(start), side="left"))
    hi = int(np.searchsorted(s, _d64(end), side="right"))
    out: DayArray = s[lo:hi].copy()
    return out


def trading_days_before(d: dt.date, n: int) -> DayArray:
    """The ``n`` NYSE sessions strictly before ``d``, oldest first (``datetime64[D]``).

    Raises:
        InputError: not enough sessions in the calendar before ``d``.
    """
    _check_bounds(d)
    s = _sessions()
    hi = int(np.searchsorted(s, _d64(d), side="left"))
    if n < 0 or hi - n < 0:
        raise InputError(f"need {n} NYSE sessions before {d}; the calendar has {hi}", field="date")
    out: DayArray = s[hi - n : hi].copy()
    return out


def is_trading_day(d: dt.date) -> bool:
    """Whether the NYSE is open on ``d``.

    Raises:
        InputError: ``d`` outside the calendar range.
    """
    _check_bounds(d)
    s = _sessions()
    i = int(np.searchsorted(s, _d64(d), side="left"))
    return i < len(s) and s[i] == _d64(d)


def previous_trading_day(d: dt.date, n: int = 1) -> dt.date:
    """The ``n``-th NYSE session strictly before ``d`` (``d`` need not be a session).

    Raises:
        InputError: ``d`` (or the answer) outside the calendar range, or ``n < 1``.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}", field="n")
    _check_bounds(d)
    s = _sessions()
    i = int(np.searchsorted(s, _d64(d), side="left")) - n
    if i < 0:
        raise InputError(f"no NYSE session {n} day(s) before {d} in the calendar", field="date")
    return _to_date(s[i])


def next_trading_day(d: dt.date, n: int = 1) -> dt.date:
    """The ``n``-th NYSE session strictly after ``d`` (``d`` need not be a session).

    Raises:
        InputError: ``d`` (or the answer) outside the calendar range, or ``n < 1``.
    """
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}", field="n")
    _check_bounds(d)
    s = _sessions()
    i = int(np.searchsorted(s, _d64(d), side="right")) + n - 1
    if i >= len(s):
        raise InputError(f"no NYSE session {n} day(s) after {d} in the calendar", field="date")
    return _to_date(s[i])


def trading_day_on_or_before(d: dt.date) -> dt.date:
    """``d`` if it is a session, else the last session before it.

    Raises:
        InputError: ``d`` outside the calendar range.
    """
    return d if is_trading_day(d) else previous_trading_day(d)
