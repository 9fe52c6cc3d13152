"""The staged-ledger codec: Zstandard JSON, zlib still readable, a corrupt value named."""

from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal

import pytest

from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import LedgerState, Lot, encode_json

DAY = dt.date(2025, 6, 2)


def _ledger(n: int = 200) -> LedgerState:
    lots = [
        Lot(
            account=f"A{i % 3}",
            symbol=f"S{i % 50}",
            lot_id=f"L{i}",
            quantity=Decimal(i + 1),
            trade_date=DAY - dt.timedelta(days=i),
            acquired=DAY - dt.timedelta(days=i),
            cost_basis_usd=Decimal("12.34") * (i + 1),
        )
        for i in range(n)
    ]
    return LedgerState(as_of=DAY, household_id="H", lots=lots, identical=[["GOOG", "GOOGL"]])


def test_a_staged_ledger_round_trips_and_is_smaller_than_its_json() -> None:
    state = _ledger()
    raw = keys.encode_ledger(state)
    assert raw.startswith(keys.ZSTD_TAG)
    assert len(raw) * 5 < len(encode_json(state))
    assert keys.decode_ledger(raw, household="H") == state


def test_a_ledger_staged_with_zlib_still_decodes() -> None:
    state = _ledger()
    assert keys.decode_ledger(zlib.compress(encode_json(state), 1), household="H") == state


@pytest.mark.parametrize(
    "raw",
    [
        b"not compressed",
        keys.ZSTD_TAG,  # no length
        keys.ZSTD_TAG + (1 << 62).to_bytes(8, "little") + b"x",  # absurd length: not allocated
        keys.ZSTD_TAG + (100).to_bytes(8, "little") + b"not a zstd frame",
    ],
)
def test_a_corrupt_staged_ledger_is_refused_naming_the_household(raw: bytes) -> None:
    with pytest.raises(InputError, match="HH-9") as err:
        keys.decode_ledger(raw, household="HH-9")
    assert err.value.field == "ledger"
