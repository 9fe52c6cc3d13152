"""The results-store key schema, as plain strings, so the writer and the reader cannot drift.

One night (``as_of``) owns these Redis keys, all expiring after the settings' TTL:

- ``taxview:market:{as_of}`` — the day's :class:`~shared.messages.MarketSnapshot` JSON, published
  once by the producer and read (and cached per process) by every worker.
- ``taxview:manifest:{as_of}`` — hash ``account_id → {"household": h, "index": k, "size": n}``:
  the accounts the producer expects, written before any task is sent.
- ``taxview:results:{as_of}`` — hash ``account_id → outcome JSON``: one outcome per account,
  written by overwrite, so a redelivered task changes nothing.
- ``taxview:status:{as_of}`` — hash ``account_id → status``: the small index progress bars poll.
- ``taxview:attempts:{as_of}`` — hash ``account_id → solve attempts started and not taken back``
  (a retried solver failure is taken back): bounds the solves of an account whose process keeps
  dying.
- ``taxview:ledger:{as_of}:{household}`` — hash ``k → zstd(LedgerState JSON)``: the household's
  ledger after its first ``k`` accounts traded (accounts of one household run in order, see
  ``docs/fleet.md``).  Compressed because a household's lots run to megabytes of JSON: Zstandard
  level 1 (through pyarrow, already a dependency; ~14× smaller, ~0.7 ms to compress and ~0.5 ms
  to expand 800 KB, where zlib level 1 took ~2.3 ms and ~0.8 ms for ~10×); a zlib value (as staged
  before) still decodes.  Field ``0`` is the producer's whole ledger; a field a sibling writes is
  usually a *patch* on it (:data:`PATCH_TAG`): the lots that are still field ``0``'s very lots as
  runs of indices, only the lots booking rebuilt or opened written out, and the window memory.
  :func:`encode_ledger` / :func:`decode_ledger` and :func:`encode_patch` /
  :func:`decode_patch` are the only codec.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import itertools
import struct
import zlib
from typing import Any, Final, NamedTuple, NoReturn

import msgspec
import numpy as np

from shared.messages import (
    LastPurchase,
    LedgerState,
    Lot,
    PendingLoss,
    RecentPurchase,
    decode_json,
    encode_json,
)

#: Namespace of every key.
NAMESPACE: Final = "taxview"


def market_key(as_of: dt.date) -> str:
    """Key of the day's market snapshot."""
    return f"{NAMESPACE}:market:{as_of.isoformat()}"


def market_digest_key(as_of: dt.date) -> str:
    """Key of the digest (:func:`snapshot_digest`) of the day's stored snapshot: read by the
    worker's one round trip before a solve, so a task planned with another snapshot is never
    solved (the snapshot itself is too large to read per task)."""
    return f"{NAMESPACE}:market-digest:{as_of.isoformat()}"


def snapshot_digest(raw: bytes) -> str:
    """Fingerprint of a stored market snapshot's bytes (BLAKE2b-128, hex): a task carries the
    one it was planned with, so a worker's cached snapshot of an earlier run of the night is
    never used for it (fleet fault audit: a night restarted with a corrected market was solved
    on the old one by workers that stayed up)."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def manifest_key(as_of: dt.date) -> str:
    """Hash of the accounts expected for the night."""
    return f"{NAMESPACE}:manifest:{as_of.isoformat()}"


def results_key(as_of: dt.date) -> str:
    """Hash of one outcome per account."""
    return f"{NAMESPACE}:results:{as_of.isoformat()}"


def status_key(as_of: dt.date) -> str:
    """Hash of one status word per account (progress polling)."""
    return f"{NAMESPACE}:status:{as_of.isoformat()}"


def attempts_key(as_of: dt.date) -> str:
    """Hash counting per account the solve attempts started and not taken back (a retried
    solver failure is taken back; waits for a sibling's ledger are never counted)."""
    return f"{NAMESPACE}:attempts:{as_of.isoformat()}"


def ledger_key(as_of: dt.date, household: str) -> str:
    """Hash of a household's ledger states, field ``k`` = after its first ``k`` accounts."""
    return f"{NAMESPACE}:ledger:{as_of.isoformat()}:{household}"


def task_id(as_of: dt.date, account_id: str) -> str:
    """The deterministic Celery task id of one account's rebalance (``date:account``)."""
    return f"{as_of.isoformat()}:{account_id}"


def night_keys_pattern(as_of: dt.date) -> str:
    """Glob matching every key of one night (for clean-up)."""
    return f"{NAMESPACE}:*:{as_of.isoformat()}*"


#: First bytes of a Zstandard ledger: a tag, then the JSON's length (``<Q``), then one zstd frame.
ZSTD_TAG: Final = b"tvz1"
_LENGTH = struct.Struct("<Q")
#: Largest ledger JSON a stored value may declare (a corrupt length is refused, not allocated).
MAX_LEDGER_BYTES: Final = 1 << 30


@functools.cache
def _zstd() -> Any:
    """pyarrow's Zstandard codec (level 1), or ``None`` in a pyarrow built without it."""
    import pyarrow

    if not pyarrow.Codec.is_available("zstd"):
        return None
    return pyarrow.Codec("zstd", compression_level=1)


#: The JSON of a :class:`~shared.messages.Lot` whose last four fields hold their defaults (no
#: wash-sale adjustment, long, taxable, not yet a replacement): nearly every lot of a book.
_DEFAULT_LOT_TAIL: Final = (
    b',"wash_adjustment_usd":"0","short":false,"account_type":"taxable","replacement_used":false}'
)


def _compact(text: bytes) -> bytes:
    """Staged-ledger JSON without the default tail of each plain lot (:data:`_DEFAULT_LOT_TAIL`);
    the decoder fills in the defaults.  A worker decodes a household's ~4,000 lots per task, and
    the ``Decimal("0")`` of every lot's adjustment was most of that decode (5.9 → 1.9 ms, 1.04 →
    0.72 MB of JSON on a 4,157-lot household).  Only structure can match: the pattern's quotes
    are unescaped, which no JSON string value contains."""
    return text.replace(_DEFAULT_LOT_TAIL, b"}")


def encode_ledger(state: LedgerState) -> bytes:
    """A staged household ledger as stored: Zstandard-compressed msgspec JSON (:data:`ZSTD_TAG`,
    length, frame; plain lots without their default fields, :func:`_compact`); zlib level 1
    where pyarrow has no Zstandard."""
    text = _compact(encode_json(state))
    codec = _zstd()
    if codec is None:
        return zlib.compress(text, 1)
    frame: bytes = codec.compress(text, asbytes=True)
    return ZSTD_TAG + _LENGTH.pack(len(text)) + frame


def decode_ledger(raw: bytes, *, household: str) -> LedgerState:
    """Inverse of :func:`encode_ledger` (a zlib value decodes too; a patch needs its base:
    :func:`decode_patch`).

    Raises:
        InputError: the stored value is not a compressed ledger (names the household).
    """
    if is_patch(raw):
        _unreadable("a patch read without its base ledger", household)
    return decode_json(_text(raw, household), LedgerState, account=household)


def _text(raw: bytes, household: str) -> bytes:
    try:
        return _expand(raw)
    except (zlib.error, OSError, ValueError, struct.error) as exc:
        _unreadable(f"staged ledger is not compressed ledger data: {exc}", household, exc)


def _unreadable(reason: str, household: str, cause: BaseException | None = None) -> NoReturn:
    from shared.errors import InputError

    raise InputError(reason, account=household, field="ledger") from cause


def _expand(raw: bytes) -> bytes:
    tag = raw[: len(ZSTD_TAG)]
    if tag not in (ZSTD_TAG, PATCH_TAG):
        return zlib.decompress(raw)
    codec = _zstd()
    if codec is None:
        raise ValueError("Zstandard data, and this pyarrow has no Zstandard codec")
    (size,) = _LENGTH.unpack_from(raw, len(tag))
    if size > MAX_LEDGER_BYTES:
        raise ValueError(f"declared length {size} is over {MAX_LEDGER_BYTES} bytes")
    text: bytes = codec.decompress(
        memoryview(raw)[len(tag) + _LENGTH.size :], decompressed_size=size, asbytes=True
    )
    return text


# -- patches on the household's field 0 ------------------------------------------------------

#: First bytes of a staged ledger *patch* (tag, length, one zstd frame of :class:`LedgerPatch`
#: JSON): the ledger after some of a household's accounts traded, as a change to field ``0``.
PATCH_TAG: Final = b"tvp2"


class Lineage(NamedTuple):
    """Where a decoded household ledger's lots come from in the household's field ``0``."""

    #: BLAKE2b-128 digest (hex) of field ``0``'s stored bytes: a patch is refused on any other
    #: base.  (A CRC-32 would let one changed base in 2³² through as a wrong ledger.)
    base: str
    #: Lots in field ``0``.
    size: int
    #: Per lot of the ledger: the index of the very lot of field ``0`` it is, or -1 (a lot that
    #: booking rebuilt or opened: a patch carries it).
    origin: list[int]


class LedgerPatch(msgspec.Struct, frozen=True, kw_only=True):
    """A staged ledger as a change to field ``0`` of its household (:func:`encode_patch`)."""

    base_digest: str
    base_lots: int
    as_of: dt.date
    household_id: str = ""
    #: Flat pairs ``start, count``: ``start >= 0`` copies the base's lots ``[start, start +
    #: count)``, ``start == -1`` takes the next ``count`` lots of ``lots``.
    runs: list[int]
    lots: list[Lot]
    pending_losses: list[PendingLoss] = []
    recent_purchases: list[RecentPurchase] = []
    identical: list[list[str]] = []
    last_purchases: list[LastPurchase] = []


def is_patch(raw: bytes) -> bool:
    """Whether a stored value is a :class:`LedgerPatch` (it needs field ``0`` to decode)."""
    return raw.startswith(PATCH_TAG)


def base_lineage(raw: bytes, state: LedgerState) -> Lineage:
    """The lineage of field ``0`` itself, decoded from its stored bytes ``raw``."""
    return Lineage(base_digest(raw), len(state.lots), list(range(len(state.lots))))


def base_digest(raw: bytes) -> str:
    """The digest a patch records of its base (field ``0``'s stored bytes): BLAKE2b, 128 bits
    (~50 µs on a 60 KB staged ledger)."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def trace(before: LedgerState, lineage: Lineage, after: LedgerState) -> Lineage:
    """The lineage of ``after``, a ledger booked from ``before`` (whose lineage is ``lineage``).

    A lot of ``after`` keeps its origin only when it *is* (identity, not equality) a lot of
    ``before``: booking carries every untouched lot over in place (``shared.household``), and
    an object identical to a lot of field ``0`` encodes to the same bytes.  Both ledgers are
    alive here, so an ``id`` cannot be shared by two of their lots.
    """
    if after is before or after.lots is before.lots:
        return lineage
    pos = dict(zip(map(id, before.lots), lineage.origin, strict=True))
    origin = list(map(pos.get, map(id, after.lots), itertools.repeat(-1)))
    return Lineage(lineage.base, lineage.size, origin)


def carry(lineage: Lineage, carried: list[int]) -> Lineage:
    """The lineage of a ledger booked from one whose lineage is ``lineage``, keeping its lots
    ``carried`` (``shared.household.Booked.carried``: per new lot, the index of the old lot it
    is, or -1)."""
    ext = [*lineage.origin, -1]  # index -1 reads the sentinel: a rebuilt lot stays -1
    return Lineage(lineage.base, lineage.size, list(map(ext.__getitem__, carried)))


def encode_patch(state: LedgerState, lineage: Lineage) -> bytes | None:
    """``state`` staged as a patch on the field ``0`` that ``lineage`` describes (``None``
    where pyarrow has no Zstandard, or when ``lineage`` does not have one origin per lot of
    ``state``: stage the whole ledger then)."""
    codec = _zstd()
    if codec is None or len(lineage.origin) != len(state.lots):
        return None  # no Zstandard, or a lineage of another ledger: stage the whole ledger
    origin = np.asarray(lineage.origin, dtype=np.int64)
    n = len(origin)
    literal = origin < 0
    if n:
        cut = np.empty(n, dtype=bool)
        cut[0] = True
        cut[1:] = (literal[1:] != literal[:-1]) | (~literal[1:] & (origin[1:] != origin[:-1] + 1))
        starts = np.flatnonzero(cut)
        counts = np.diff(np.append(starts, n))
        firsts = np.where(literal[starts], -1, origin[starts])
        runs = np.column_stack((firsts, counts)).ravel().tolist()
    else:
        runs = []
    lots = state.lots
    patch = LedgerPatch(
        base_digest=lineage.base,
        base_lots=lineage.size,
        as_of=state.as_of,
        household_id=state.household_id,
        runs=runs,
        lots=[lots[i] for i in np.flatnonzero(literal).tolist()],
        pending_losses=state.pending_losses,
        recent_purchases=state.recent_purchases,
        identical=state.identical,
        last_purchases=state.last_purchases,
    )
    text = _compact(encode_json(patch))
    frame: bytes = codec.compress(text, asbytes=True)
    return PATCH_TAG + _LENGTH.pack(len(text)) + frame


def decode_patch(raw: bytes, base: bytes | None, *, household: str) -> tuple[LedgerState, Lineage]:
    """The ledger staged as patch ``raw`` on field ``0``'s stored bytes ``base``, and its lineage.

    Raises:
        InputError: the patch or its base cannot be read, or the base is not the one the patch
            was made on (names the household).
    """
    patch = decode_json(_text(raw, household), LedgerPatch, account=household)
    if base is None:
        _unreadable("the staged ledger patch has no base ledger (field 0) in the store", household)
    if base_digest(base) != patch.base_digest:
        _unreadable("the staged ledger patch was made on another base ledger (field 0)", household)
    whole = decode_ledger(base, household=household)
    if len(whole.lots) != patch.base_lots:
        _unreadable("the staged ledger patch does not match its base ledger's lots", household)
    lots: list[Lot] = []
    origin: list[int] = []
    taken = 0
    runs = patch.runs
    for k in range(0, len(runs) - 1, 2):
        start, count = runs[k], runs[k + 1]
        if count < 0 or start < -1 or (start >= 0 and start + count > patch.base_lots):
            _unreadable(f"the staged ledger patch has a bad run ({start}, {count})", household)
        if start < 0:
            lots.extend(patch.lots[taken : taken + count])
            origin.extend(itertools.repeat(-1, count))
            taken += count
        else:
            lots.extend(whole.lots[start : start + count])
            origin.extend(range(start, start + count))
    if len(runs) % 2 or taken != len(patch.lots) or len(lots) != len(origin):
        _unreadable("the staged ledger patch's runs do not match its lots", household)
    state = LedgerState(
        as_of=patch.as_of,
        household_id=patch.household_id,
        lots=lots,
        pending_losses=patch.pending_losses,
        recent_purchases=patch.recent_purchases,
        identical=patch.identical,
        last_purchases=patch.last_purchases,
    )
    return state, Lineage(patch.base_digest, patch.base_lots, origin)
