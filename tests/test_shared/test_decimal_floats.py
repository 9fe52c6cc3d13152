"""The fast Decimal → float conversion used on every lot agrees with ``float(Decimal)``."""

from __future__ import annotations

import math
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from shared.rebalance import decimals_to_floats


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False), max_size=50))
def test_every_finite_decimal_converts_to_the_same_float_as_float_does(
    values: list[Decimal],
) -> None:
    got = decimals_to_floats(values).tolist()
    assert [x.hex() for x in got] == [float(v).hex() for v in values]  # -0.0 included


@given(st.lists(st.decimals(min_value=0, max_value=10**9, places=6), min_size=1, max_size=50))
def test_share_counts_and_cents_round_trip_bit_for_bit(values: list[Decimal]) -> None:
    got = decimals_to_floats(values)
    assert [x.hex() for x in got.tolist()] == [float(v).hex() for v in values]


def test_nan_and_infinity_and_out_of_range_values_stay_non_finite() -> None:
    got = decimals_to_floats(
        [Decimal("1.5"), Decimal("NaN"), Decimal("Infinity"), Decimal("1E+400")]
    )
    assert got[0] == 1.5
    assert math.isnan(got[1])
    assert got[2] == math.inf
    assert got[3] == math.inf


def test_negative_zero_keeps_its_sign() -> None:
    got = decimals_to_floats([Decimal("-0"), Decimal("-0.00"), Decimal("0")])
    assert [math.copysign(1.0, x) for x in got.tolist()] == [-1.0, -1.0, 1.0]


def test_an_empty_list_gives_an_empty_array() -> None:
    assert decimals_to_floats([]).shape == (0,)
