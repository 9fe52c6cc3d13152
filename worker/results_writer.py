"""The worker's only door to the results store (Redis): every key it writes goes through here.

Each account's outcome is one hash field (``HSET``), written in one atomic script together with
the status index and, for a household, the ledger state handed to the next sibling — and only
when the account has no outcome yet: the first stored stands, so a redelivered task (or a
delivery that resumes after its copy finished) changes nothing.  Keys follow
:mod:`shared.results_keys` and expire after the configured TTL.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections import OrderedDict
from typing import Any, NamedTuple

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared import results_keys as keys
from shared.messages import LedgerState, MarketSnapshot, Outcome, decode_json, encode_json
from worker.handlers import NotReady, Start

log = logging.getLogger(__name__)

#: Reconnect attempts of one store operation (exponential backoff capped at 2 s: ~45 s in all),
#: so a task rides out a Redis restart instead of failing while the broker is down too.
STORE_RETRIES = 25

#: Household ledgers a process keeps decoded after writing them (~2-3 MB each at 500 names), so
#: the next sibling skips the decompress + decode when it lands on this process; a few, not one,
#: so a sibling still hits when another household's account ran in between.
WRITTEN_LEDGERS = 4

#: :meth:`ResultsStore.begin` in one atomic step: KEYS = results, attempts, ledger hash, market
#: digest; ARGV = account, ledger field ('' = none needed), TTL, the patch tag, the task's market
#: digest ('' = not checked).  Returns ``{attempts, outcome, ledger, base, digest}``: ``base`` is
#: the household's field ``0`` when the staged ledger is a patch on it (read in the same step, so
#: the last sibling's release cannot fall in between); ``digest`` the stored snapshot's digest.
#: The attempt is counted only when there is no outcome, the ledger is there (or not needed) and
#: the stored snapshot is the task's (when the task names one: a missing digest is not ready —
#: the night's keys were deleted, or the store came back empty, and the producer publishes it
#: again before it sends anything).
BEGIN_SCRIPT = """
local done = redis.call('HGET', KEYS[1], ARGV[1])
if done then return {0, done, false, false, false} end
local digest = redis.call('GET', KEYS[4])
if ARGV[5] ~= '' and digest ~= ARGV[5] then return {0, false, false, false, digest} end
local staged = false
local base = false
if ARGV[2] ~= '' then
  staged = redis.call('HGET', KEYS[3], ARGV[2])
  if not staged then return {0, false, false, false, digest} end
  if ARGV[2] ~= '0' and string.sub(staged, 1, string.len(ARGV[4])) == ARGV[4] then
    base = redis.call('HGET', KEYS[3], '0')
  end
end
local n = redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
return {n, false, staged, base, digest}
"""

#: :meth:`ResultsStore.put_unreadable` in one atomic step: KEYS = results, status, ledger hash;
#: ARGV = account, outcome JSON, status, the unreadable field ('' = none), the next sibling's
#: field, '1' to release the household's ledgers, TTL.  Writes nothing when the account already
#: has an outcome (a duplicate delivery finished it: its outcome stands).  Returns 1 if written.
UNREADABLE_SCRIPT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[3])
elseif ARGV[4] ~= '' then
  local raw = redis.call('HGET', KEYS[3], ARGV[4])
  if raw then
    redis.call('HSET', KEYS[3], ARGV[5], raw)
    redis.call('EXPIRE', KEYS[3], tonumber(ARGV[7]))
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[7]))
return 1
"""


#: :meth:`ResultsStore._write` in one atomic step (one round trip): KEYS = results, status, the
#: released household's ledgers (or results), the staged ledger hash (or results), the market
#: digest; ARGV = account, outcome JSON, status, TTL, '1' to release, the staged field ('' =
#: none), its bytes, the task's market digest ('' = not checked).  Writes nothing and returns 0
#: when the task names a digest and the stored one is not it; writes nothing and returns 2 when
#: the account already has an outcome: the first one stored stands, with the sibling ledger it
#: staged (fleet fault audit: a delivery frozen past its visibility timeout resumed after the
#: redelivered copy had stored its outcome and its sibling had solved on that copy's ledger,
#: and overwrote the outcome with another ticket — the night published complete with P/L no
#: worker computed as a whole).
PUT_SCRIPT = """
if ARGV[8] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[8] then return 0 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 2 end
local ttl = tonumber(ARGV[4])
if ARGV[5] == '1' then redis.call('DEL', KEYS[3]) end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[7])
  redis.call('EXPIRE', KEYS[4], ttl)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""


class _Staged(NamedTuple):
    """A household ledger this process wrote: its stored bytes, decoded state and lineage."""

    raw: bytes
    state: LedgerState
    lineage: keys.Lineage | None


def _carried_ok(before: LedgerState, carried: list[int], after: LedgerState) -> bool:
    """Whether booking's ``carried`` (per lot of ``after``, the index of the lot of ``before``
    it is, or -1) describes ``after``: one entry per lot, and each carried lot the very object
    (a few hundred µs; a wrong claim would stage a wrong ledger)."""
    if len(carried) != len(after.lots):
        return False
    old = before.lots
    return all(
        c < 0 or (c < len(old) and old[c] is lot)
        for c, lot in zip(carried, after.lots, strict=True)
    )


def store_retry() -> Retry:
    """The retry policy of every results-store command."""
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), STORE_RETRIES)


class ResultsStore:
    """Redis-backed results store, one client per process (reconnects by itself after a fork).

    Args:
        url: the results store, ``redis://host:port/db``.
        ttl_s: seconds every key of a night lives.
    """

    def __init__(self, url: str, *, ttl_s: int) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._client: redis.Redis[bytes] | None = None
        #: ``(client, the registered BEGIN_SCRIPT)``: redis-py loads it again after a restart.
        self._begin: tuple[Any, Any] | None = None
        #: ``(client, the registered PUT_SCRIPT)``, likewise.
        self._put: tuple[Any, Any] | None = None
        self._pid = 0
        #: The last household ledgers this process wrote, ``(key, field) → (stored bytes,
        #: state, lineage)``: when the household's next account lands on this process and the
        #: store still holds exactly those bytes, the decoded state is reused instead of expanded
        #: and decoded.
        self._written: OrderedDict[tuple[str, str], _Staged] = OrderedDict()
        #: The household ledger the last :meth:`begin` handed out, ``(key, field, state,
        #: lineage)``: :meth:`put` stages its successor as a patch on field ``0``.
        self._handed: tuple[str, str, LedgerState, keys.Lineage] | None = None

    @property
    def client(self) -> redis.Redis[bytes]:
        """The connection pool of this process (a forked child builds its own)."""
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=30,
                socket_connect_timeout=5,
                health_check_interval=15,
                retry=store_retry(),
            )
            self._pid = os.getpid()
        return self._client

    # -- reads (the worker reads its inputs and its own previous work) -----------------------

    def begin(
        self,
        as_of: dt.date,
        account_id: str,
        *,
        ledger: tuple[str, int] | None,
        market_digest: str = "",
    ) -> Start:
        """One round trip before a solve: the outcome an earlier delivery stored, the staged
        household ledger ``(household, index)`` (when asked), the stored snapshot's digest, and
        — only when there is no outcome, the ledger is there or not needed, and the stored
        snapshot is the task's ``market_digest`` (when both are known) — one more solve attempt
        counted in ``attempts:{D}`` (deliveries that wait, or find their outcome, do not count).
        """
        client = self.client
        self._handed = None
        if self._begin is None or self._begin[0] is not client:
            self._begin = (client, client.register_script(BEGIN_SCRIPT))
        results = keys.results_key(as_of)
        key, field = (keys.ledger_key(as_of, ledger[0]), str(ledger[1])) if ledger else ("", "")
        count, done, raw, base, digest = self._begin[1](
            keys=[results, keys.attempts_key(as_of), key or results, keys.market_digest_key(as_of)],
            args=[account_id, field, self.ttl_s, keys.PATCH_TAG, market_digest],
            client=client,
        )
        if done is not None:
            return Start(outcome=bytes(done), ledger=None, attempts=0)
        stored = None if digest is None else bytes(digest).decode()
        if market_digest and stored != market_digest:
            return Start(outcome=None, ledger=None, attempts=0, market_digest=stored)
        state = None
        if ledger is not None and raw is not None:
            state = self._ledger(
                key,
                field,
                bytes(raw),
                household=ledger[0],
                base=None if base is None else bytes(base),
            )
        return Start(outcome=None, ledger=state, attempts=int(count), market_digest=stored)

    def end_attempt(self, as_of: dt.date, account_id: str) -> None:
        """Take back one counted solve attempt (it ended in a failure that is retried, so it
        was not a lost process)."""
        self.client.hincrby(keys.attempts_key(as_of), account_id, -1)

    def release(self, as_of: dt.date, household: str) -> None:
        """Delete a household's staged ledgers (its last account was delivered again after its
        outcome was stored, e.g. by ``taxview enqueue --resend``: nothing will read them)."""
        self.client.delete(keys.ledger_key(as_of, household))

    def outcome(self, as_of: dt.date, account_id: str) -> bytes | None:
        """The outcome JSON already stored for the account, if any."""
        raw: Any = self.client.hget(keys.results_key(as_of), account_id)
        return bytes(raw) if raw is not None else None

    def market(self, key: str) -> MarketSnapshot | None:
        """The market snapshot published under ``key`` (``None`` if absent)."""
        entry = self.market_entry(key)
        return None if entry is None else entry[0]

    def market_entry(self, key: str) -> tuple[MarketSnapshot, str] | None:
        """The market snapshot published under ``key`` and the digest of its stored bytes
        (:func:`shared.results_keys.snapshot_digest`); ``None`` if absent."""
        raw: Any = self.client.get(key)
        if raw is None:
            return None
        return decode_json(raw, MarketSnapshot), keys.snapshot_digest(bytes(raw))

    def household_ledger(self, as_of: dt.date, household: str, index: int) -> LedgerState | None:
        """The household's ledger after its first ``index`` accounts traded, if written yet."""
        key, field = keys.ledger_key(as_of, household), str(index)
        raw: Any = self.client.hget(key, field)
        if raw is None:
            return None
        return self._ledger(key, field, bytes(raw), household=household)

    def _ledger(
        self, key: str, field: str, stored: bytes, *, household: str, base: bytes | None = None
    ) -> LedgerState:
        """The staged ledger ``(key, field)`` whose stored bytes are ``stored``: the decoded one
        this process wrote when the bytes are the same, else decoded (a patch on field ``0`` of
        the household: ``base``, that field as read with it, or read now).  Remembered for
        :meth:`put` with its lineage."""
        self._handed = None
        written = self._written.pop((key, field), None)
        lineage: keys.Lineage | None
        if written is not None and written[0] == stored:
            _, state, lineage = written
        elif keys.is_patch(stored):
            if base is None:
                read: Any = self.client.hget(key, "0")
                base = None if read is None else bytes(read)
            state, lineage = keys.decode_patch(stored, base, household=household)
        else:
            state = keys.decode_ledger(stored, household=household)
            lineage = keys.base_lineage(stored, state) if field == "0" else None
        if lineage is not None:
            self._handed = (key, field, state, lineage)
        return state

    # -- the write ---------------------------------------------------------------------------

    def put_unreadable(self, outcome: Outcome, *, household: str, index: int, last: bool) -> None:
        """Store the outcome of an account whose staged ledger ``(household, index)`` cannot be
        read and, in the same transaction, copy that stored value to the next sibling's field
        (it is rejected the same way) or, after the household's ``last`` account, delete the
        household's staged ledgers.  Nothing is written when the account already has an outcome:
        a duplicate delivery that read the ledger before it was released finished the account,
        and its outcome stands (:data:`UNREADABLE_SCRIPT`)."""
        as_of = outcome.as_of
        client = self.client
        script: Any = client.register_script(UNREADABLE_SCRIPT)  # a rare path: loaded per use
        script(
            keys=[
                keys.results_key(as_of),
                keys.status_key(as_of),
                keys.ledger_key(as_of, household),
            ],
            args=[
                outcome.account_id,
                encode_json(outcome),
                outcome.status,
                "" if last else str(index),
                str(index + 1),
                "1" if last else "0",
                self.ttl_s,
            ],
            client=client,
        )

    def put(
        self,
        outcome: Outcome,
        *,
        next_ledger: tuple[str, int, LedgerState] | None = None,
        release: str | None = None,
        booked_from: tuple[LedgerState, list[int]] | None = None,
        market_digest: str = "",
    ) -> None:
        """Store one account's outcome (unless it has one: the first stands) and, for a
        household, the ledger that the next account of the household starts from, atomically —
        only while the night's stored
        snapshot is still ``market_digest`` (when given; else :class:`~worker.handlers.NotReady`
        and nothing is written: a solve of an earlier run of the night, its keys deleted while
        it ran, never leaves its outcome in the new run).

        Args:
            outcome: the account's outcome.
            next_ledger: ``(household, k, state)``: the ledger after the household's first ``k``
                accounts, written in the same transaction.
            release: a household whose last account this is: its staged ledgers are deleted in
                the same transaction (a redelivery finds the outcome first and reads none).
            booked_from: ``(ledger, carried)`` when the next ledger was booked from ``ledger``
                keeping its lots ``carried`` (``shared.household.Booked``): the patch is then
                made without searching the lots (only used when ``ledger`` is the one
                :meth:`begin` handed out).
        """
        if next_ledger is None:
            self._write(outcome, staged=None, release=release, market_digest=market_digest)
            return
        household, index, state = next_ledger
        key = keys.ledger_key(outcome.as_of, household)
        lineage, raw = self._patch(key, index, state, booked_from)
        staged = (key, str(index), raw)
        if not self._write(outcome, staged=staged, release=release, market_digest=market_digest):
            return  # another delivery's outcome and ledger stand: this one is not cached
        self._written[key, staged[1]] = _Staged(raw, state, lineage)
        while len(self._written) > WRITTEN_LEDGERS:
            self._written.popitem(last=False)

    def _patch(
        self,
        key: str,
        index: int,
        state: LedgerState,
        booked_from: tuple[LedgerState, list[int]] | None,
    ) -> tuple[keys.Lineage | None, bytes]:
        """``state`` as staged for sibling ``index``: a patch on the household's field ``0``
        when it was booked from the ledger :meth:`begin` handed out for sibling ``index - 1``
        (whose lineage is known), else the whole ledger."""
        handed, self._handed = self._handed, None
        if handed is not None and handed[0] == key and handed[1] == str(index - 1):
            before = handed[2]
            if (
                booked_from is not None
                and booked_from[0] is before
                and _carried_ok(before, booked_from[1], state)
            ):
                lineage = keys.carry(handed[3], booked_from[1])
            else:
                lineage = keys.trace(before, handed[3], state)
            raw = keys.encode_patch(state, lineage)
            if raw is not None:
                return lineage, raw
        return None, keys.encode_ledger(state)

    def _write(
        self,
        outcome: Outcome,
        *,
        staged: tuple[str, str, bytes] | None,
        release: str | None,
        market_digest: str = "",
    ) -> bool:
        """One atomic step (:data:`PUT_SCRIPT`): release a household's staged ledgers, stage
        ``(key, field, stored bytes)``, and write the outcome and its status, all with the TTL;
        with a ``market_digest``, only while the stored snapshot's digest is that one (else
        :class:`~worker.handlers.NotReady`, nothing written).  Returns ``False`` (nothing
        written) when the account already has an outcome: the first stored stands."""
        as_of = outcome.as_of
        client = self.client
        if self._put is None or self._put[0] is not client:
            self._put = (client, client.register_script(PUT_SCRIPT))
        results = keys.results_key(as_of)
        written = self._put[1](
            keys=[
                results,
                keys.status_key(as_of),
                keys.ledger_key(as_of, release) if release is not None else results,
                staged[0] if staged is not None else results,
                keys.market_digest_key(as_of),
            ],
            args=[
                outcome.account_id,
                encode_json(outcome),
                outcome.status,
                self.ttl_s,
                "1" if release is not None else "0",
                staged[1] if staged is not None else "",
                staged[2] if staged is not None else b"",
                market_digest,
            ],
            client=client,
        )
        if not written:
            raise NotReady(
                f"account {outcome.account_id}: the night's market snapshot changed while it "
                "was solved (the night was started over): not stored"
            )
        if written == 2:
            log.warning(
                "account %s already has an outcome (another delivery stored it first): this "
                "delivery's is not stored",
                outcome.account_id,
            )
            return False
        return True
