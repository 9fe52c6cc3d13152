"""The results-store key schema, as plain strings, so the writer and the reader cannot drift.

One night (``as_of``) owns these Redis keys, all expiring after the settings' TTL:

- ``taxview:market:{as_of}`` — the day's :class:`~shared.messages.MarketSnapshot` JSON, published
  once by the producer and read (and cached per process) by every worker.
- ``taxview:manifest:{as_of}`` — hash ``account_id → {"household": h, "index": k, "size": n}``:
  the accounts the producer expects, written before any task is sent.
- ``taxview:results:{as_of}`` — hash ``account_id → outcome JSON``: one outcome per account,
  written by overwrite, so a redelivered task changes nothing.
- ``taxview:status:{as_of}`` — hash ``account_id → status``: the small index progress bars poll.
- ``taxview:attempts:{as_of}`` — hash ``account_id → deliveries started``: bounds redelivery.
- ``taxview:ledger:{as_of}:{household}`` — hash ``k → zlib(LedgerState JSON)``: the household's
  ledger after its first ``k`` accounts traded (accounts of one household run in order, see
  ``docs/fleet.md``).  Compressed (level 1: ~10× smaller for ~3 ms) because a household's lots
  run to megabytes of JSON; :func:`encode_ledger` / :func:`decode_ledger` are the only codec.
"""

from __future__ import annotations

import datetime as dt
import zlib
from typing import Final

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
    """Hash counting the deliveries started per account."""
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


def encode_ledger(state: LedgerState) -> bytes:
    """A staged household ledger as stored: zlib-compressed msgspec JSON."""
    return zlib.compress(encode_json(state), 1)


def decode_ledger(raw: bytes, *, household: str) -> LedgerState:
    """Inverse of :func:`encode_ledger`.

    Raises:
        InputError: the stored value is not a compressed ledger (names the household).
    """
    try:
        text = zlib.decompress(raw)
    except zlib.error as exc:
        from shared.errors import InputError

        raise InputError(
            f"staged ledger is not zlib data: {exc}", account=household, field="ledger"
        ) from exc
    return decode_json(text, LedgerState, account=household)
