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
  before) still decodes.  :func:`encode_ledger` / :func:`decode_ledger` are the only codec.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
import zlib
from typing import Any, Final

from shared.messages import LedgerState, decode_json, encode_json

#: Namespace of every key.
NAMESPACE: Final = "taxview"


def market_key(as_of: dt.date) -> str:
    """Key of the day's market snapshot."""
    return f"{NAMESPACE}:market:{as_of.isoformat()}"


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


def encode_ledger(state: LedgerState) -> bytes:
    """A staged household ledger as stored: Zstandard-compressed msgspec JSON (:data:`ZSTD_TAG`,
    length, frame); zlib level 1 where pyarrow has no Zstandard."""
    text = encode_json(state)
    codec = _zstd()
    if codec is None:
        return zlib.compress(text, 1)
    frame: bytes = codec.compress(text, asbytes=True)
    return ZSTD_TAG + _LENGTH.pack(len(text)) + frame


def decode_ledger(raw: bytes, *, household: str) -> LedgerState:
    """Inverse of :func:`encode_ledger` (a zlib value decodes too).

    Raises:
        InputError: the stored value is not a compressed ledger (names the household).
    """
    try:
        text = _expand(raw)
    except (zlib.error, OSError, ValueError, struct.error) as exc:
        from shared.errors import InputError

        raise InputError(
            f"staged ledger is not compressed ledger data: {exc}", account=household, field="ledger"
        ) from exc
    return decode_json(text, LedgerState, account=household)


def _expand(raw: bytes) -> bytes:
    if not raw.startswith(ZSTD_TAG):
        return zlib.decompress(raw)
    codec = _zstd()
    if codec is None:
        raise ValueError("Zstandard data, and this pyarrow has no Zstandard codec")
    (size,) = _LENGTH.unpack_from(raw, len(ZSTD_TAG))
    if size > MAX_LEDGER_BYTES:
        raise ValueError(f"declared length {size} is over {MAX_LEDGER_BYTES} bytes")
    text: bytes = codec.decompress(
        memoryview(raw)[len(ZSTD_TAG) + _LENGTH.size :], decompressed_size=size, asbytes=True
    )
    return text
