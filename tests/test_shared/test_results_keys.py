"""The staged-ledger codec: Zstandard JSON, zlib still readable, a corrupt value named."""

from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import LastPurchase, LedgerState, Lot, encode_json

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


def test_a_staged_ledger_leaves_out_only_the_default_fields_of_plain_lots() -> None:
    plain = _ledger(4).lots
    odd = [
        msgspec.structs.replace(plain[0], lot_id="W", wash_adjustment_usd=Decimal("1.50")),
        msgspec.structs.replace(plain[1], lot_id="S", short=True),
        msgspec.structs.replace(plain[2], lot_id="I", account_type="ira"),
        msgspec.structs.replace(plain[3], lot_id="R", replacement_used=True),
        msgspec.structs.replace(plain[0], lot_id="Z", wash_adjustment_usd=Decimal("0.00")),
        # The pattern inside a string value is escaped JSON: never cut.
        msgspec.structs.replace(
            plain[1],
            symbol=keys._DEFAULT_LOT_TAIL.decode(),
            lot_id='x","replacement_used":false}',
        ),
    ]
    state = msgspec.structs.replace(_ledger(4), lots=[*plain, *odd])
    text = keys._text(keys.encode_ledger(state), "H")
    assert text.count(b'"wash_adjustment_usd"') == len(odd) - 1  # the last is plain
    assert len(text) < len(encode_json(state)) - 3 * len(keys._DEFAULT_LOT_TAIL)
    decoded = keys.decode_ledger(keys.encode_ledger(state), household="H")
    assert decoded == state
    assert [str(x.wash_adjustment_usd) for x in decoded.lots[4:]] == [
        "1.50",
        "0",
        "0",
        "0",
        "0.00",
        "0",
    ]


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


def _booked(before: LedgerState) -> LedgerState:
    """A ledger as booking leaves it: most lots carried over as the very objects, one rebuilt in
    place, one sold out, one opened today, and new window memory."""
    lots = list(before.lots)
    lots[3] = msgspec.structs.replace(lots[3], quantity=lots[3].quantity - 1)
    del lots[10]
    lots.append(
        Lot(
            account="A1",
            symbol="S7",
            lot_id="T1",
            quantity=Decimal("3.5"),
            trade_date=DAY,
            acquired=DAY,
            cost_basis_usd=Decimal("35.00"),
        )
    )
    return msgspec.structs.replace(
        before,
        lots=lots,
        identical=[["GOOG", "GOOGL"], ["A", "B"]],
        last_purchases=[LastPurchase(symbol="S7", date=DAY), LastPurchase(symbol="S9", date=DAY)],
    )


def test_a_ledger_patch_on_field_0_decodes_to_the_same_bytes_and_is_far_smaller() -> None:
    base = keys.encode_ledger(_ledger())
    first = keys.decode_ledger(base, household="H")
    after = _booked(first)
    lineage = keys.trace(first, keys.base_lineage(base, first), after)
    assert lineage.origin.count(-1) == 2  # the rebuilt lot and the opened one
    patch = keys.encode_patch(after, lineage)
    assert patch is not None and keys.is_patch(patch)
    assert len(patch) * 5 < len(keys.encode_ledger(after))
    state, again = keys.decode_patch(patch, base, household="H")
    assert encode_json(state) == encode_json(after)
    # A patch of the patched ledger is still a patch on field 0 (two siblings booked).
    later = _booked(state)
    patch2 = keys.encode_patch(later, keys.trace(state, again, later))
    assert patch2 is not None
    assert encode_json(keys.decode_patch(patch2, base, household="H")[0]) == encode_json(later)


def test_a_ledger_patch_is_refused_on_another_or_a_missing_base_naming_the_household() -> None:
    base = keys.encode_ledger(_ledger())
    first = keys.decode_ledger(base, household="H")
    patch = keys.encode_patch(first, keys.base_lineage(base, first))
    assert patch is not None
    other = keys.encode_ledger(_ledger(199))
    for wrong in (other, None):
        with pytest.raises(InputError, match="HH-9") as err:
            keys.decode_patch(patch, wrong, household="HH-9")
        assert err.value.field == "ledger"
    with pytest.raises(InputError, match="without its base"):
        keys.decode_ledger(patch, household="HH-9")


def test_a_ledger_patch_carries_every_field_of_the_ledger_state() -> None:
    # A field added to LedgerState must travel in patches too, or siblings would lose it.
    assert set(LedgerState.__struct_fields__) - {"lots"} <= set(keys.LedgerPatch.__struct_fields__)


def test_a_ledger_booked_whole_patches_as_all_new_lots_even_when_it_has_more_than_field_0() -> None:
    # Booking into the whole household (no safe reduced ledger) rebuilds every lot: the patch
    # then carries them all, here more lots than field 0 holds.
    base = keys.encode_ledger(_ledger(20))
    first = keys.decode_ledger(base, household="H")
    rebuilt = keys.decode_ledger(keys.encode_ledger(_ledger(30)), household="H")
    lineage = keys.trace(first, keys.base_lineage(base, first), rebuilt)
    assert set(lineage.origin) == {-1}
    patch = keys.encode_patch(rebuilt, lineage)
    assert patch is not None
    state, _ = keys.decode_patch(patch, base, household="H")
    assert encode_json(state) == encode_json(rebuilt)


def _repatched(patch: bytes, **change: Any) -> bytes:
    """``patch`` re-encoded with some :class:`LedgerPatch` fields changed (a corrupt patch)."""
    text = keys._text(patch, "H")
    tampered = msgspec.structs.replace(msgspec.json.decode(text, type=keys.LedgerPatch), **change)
    body = encode_json(tampered)
    codec = keys._zstd()
    assert codec is not None
    return keys.PATCH_TAG + keys._LENGTH.pack(len(body)) + codec.compress(body, asbytes=True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(runs=[0, 500]), "bad run"),  # past the end of field 0's lots
        (dict(runs=[-2, 1]), "bad run"),
        (dict(runs=[0, -1]), "bad run"),
        (dict(runs=[0, 5, -1]), "do not match"),  # an odd count of numbers
        (dict(runs=[-1, 5]), "do not match"),  # more new lots than the patch carries
        (dict(base_lots=7), "does not match its base"),
        (dict(base_digest="0" * 32), "another base"),
    ],
)
def test_a_corrupt_ledger_patch_is_refused_naming_the_household(
    change: dict[str, Any], message: str
) -> None:
    base = keys.encode_ledger(_ledger())
    first = keys.decode_ledger(base, household="H")
    after = _booked(first)
    patch = keys.encode_patch(after, keys.trace(first, keys.base_lineage(base, first), after))
    assert patch is not None
    keys.decode_patch(patch, base, household="H")  # the untampered patch decodes
    with pytest.raises(InputError, match=message) as err:
        keys.decode_patch(_repatched(patch, **change), base, household="H")
    assert err.value.field == "ledger"


def test_a_lineage_of_another_ledger_is_never_staged_as_a_patch() -> None:
    base = keys.encode_ledger(_ledger())
    first = keys.decode_ledger(base, household="H")
    after = msgspec.structs.replace(first, lots=first.lots[:-2])  # two lots sold out
    wrong = keys.base_lineage(base, first)  # one origin per lot of *first*, not of *after*
    assert len(wrong.origin) != len(after.lots)
    assert keys.encode_patch(after, wrong) is None  # the caller stages the whole ledger
