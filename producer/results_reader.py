"""The producer's reads of the results store: manifest, outcomes, progress counts, pre-flight.

Read-only, except nothing: the writes of the producer (market, manifest) live in
:mod:`producer.enqueue`, the outcome writes in ``worker.results_writer``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import Outcome

T = TypeVar("T")

#: maxmemory policies under which Redis never drops our keys.
SAFE_POLICIES = frozenset({"noeviction"})


class ManifestEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One expected account: its household and its place in the household's chain."""

    household: str
    index: int = 0
    size: int = 1
    strategy: str = "direct-index"
    account_type: str = "taxable"
    #: BLAKE2b of the account's settings and its household's ledger as enqueued
    #: (:func:`producer.enqueue.book_digests`): another book for the same night — a lot or the
    #: cash changed — is refused by ``enqueue`` and ``aggregate --book``.  Empty in manifests
    #: written before it existed (not compared then).
    book: str = ""


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """Counts for the progress line."""

    expected: int
    done: int
    ok: int
    relaxed: int
    held: int
    rejected: int
    failed: int
    retried: int


#: Reconnect attempts of a store command (exponential backoff capped at 2 s: about half a
#: minute in all), so the producer rides out a Redis restart.
STORE_RETRIES = 20
#: Wall-clock budget of those attempts: a store that accepts connections and never answers
#: (a hung server, a half-open network path) held each attempt for the whole socket timeout,
#: and ``aggregate`` sat silent for 665 s (fleet fault audit, 2026-12-07 eighth session).
STORE_RETRY_BUDGET_S = 30.0
#: Seconds a store command waits for the next bytes of its answer (per socket read: a large
#: answer that keeps streaming never times out).
STORE_SOCKET_TIMEOUT_S = 10.0


#: Connection attempts of a preflight check (it answers in seconds, not half a minute).
PREFLIGHT_RETRIES = 3
#: Seconds a preflight check waits for an answer: ``CONFIG GET`` is instant on a live server,
#: and one that never answers (a ``rediss://`` URL on a plain port: the TLS handshake hangs)
#: held each attempt for a working read's 30 s (settings audit: preflight 121 s, enqueue 666 s).
PREFLIGHT_TIMEOUT_S = 5.0


class BudgetRetry(Retry):
    """redis-py's :class:`~redis.retry.Retry` that also stops once ``budget_s`` seconds have
    passed since the command's first attempt (a timed-out attempt counts its wait)."""

    def __init__(self, backoff: ExponentialBackoff, retries: int, budget_s: float) -> None:
        super().__init__(backoff, retries)
        self.budget_s = budget_s

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        """redis-py's own loop, told an error is not worth retrying once the budget is spent."""
        deadline = time.monotonic() + self.budget_s

        def retryable(error: Exception) -> bool:
            return (is_retryable is None or is_retryable(error)) and time.monotonic() < deadline

        return super().call_with_retry(  # type: ignore[call-arg]
            do, fail, retryable, with_failure_count
        )


def connect(
    url: str,
    *,
    retries: int | None = None,
    socket_timeout: float = STORE_SOCKET_TIMEOUT_S,
    budget_s: float = STORE_RETRY_BUDGET_S,
) -> redis.Redis[bytes]:
    """A client of the results store (connects on first command; a dropped connection or an
    answer that does not come is retried with backoff — :data:`STORE_RETRIES` times unless
    ``retries`` says otherwise, and for at most ``budget_s`` seconds — before the error
    surfaces)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5,
        retry=BudgetRetry(
            ExponentialBackoff(cap=2.0, base=0.05),
            STORE_RETRIES if retries is None else retries,
            budget_s,
        ),
    )


def check_server(
    url: str,
    *,
    what: str = "results store",
    setting: str = "TAXVIEW_REDIS_URL",
    retries: int = PREFLIGHT_RETRIES,
) -> None:
    """:func:`preflight` on a client of its own with short timeouts (``retries`` attempts of
    :data:`PREFLIGHT_TIMEOUT_S`)."""
    client = connect(url, retries=retries, socket_timeout=PREFLIGHT_TIMEOUT_S)
    try:
        preflight(client, what=what, setting=setting)
    finally:
        client.close()


def preflight(
    client: redis.Redis[bytes],
    *,
    what: str = "results store",
    setting: str = "TAXVIEW_REDIS_URL",
) -> None:
    """Refuse a Redis that may evict our keys or is unreachable.

    Args:
        client: the server to check.
        what: how the error names it (``results store``, ``broker``).
        setting: the variable that points at it (named when it is unreachable).

    Raises:
        InputError: the server is unreachable, or its ``maxmemory-policy`` evicts keys (set it to
            ``noeviction``); ``field`` names the setting.
    """
    try:
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "")
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise InputError(f"{what} is unreachable: {exc}", field=setting) from exc
    except redis.exceptions.ResponseError as exc:
        raise InputError(
            f"{what} refuses CONFIG GET ({exc}); cannot verify that it never evicts keys",
            field="maxmemory-policy",
        ) from exc
    if isinstance(policy, bytes):
        policy = policy.decode()
    if policy not in SAFE_POLICIES:
        raise InputError(
            f"{what} ({setting}) has maxmemory-policy {policy!r}: it may evict keys mid-night "
            "(queued tasks, outcomes, staged ledgers); set `maxmemory-policy noeviction`",
            field="maxmemory-policy",
        )


def manifest(client: redis.Redis[bytes], as_of: dt.date) -> dict[str, ManifestEntry]:
    """Expected accounts of the night (empty when the producer never ran)."""
    raw: Any = client.hgetall(keys.manifest_key(as_of))
    return {k.decode(): msgspec.json.decode(v, type=ManifestEntry) for k, v in sorted(raw.items())}


def outcomes(client: redis.Redis[bytes], as_of: dt.date) -> dict[str, Outcome]:
    """Every stored outcome of the night, by account id (sorted).

    Raises:
        InputError: a stored outcome cannot be decoded (another schema version, a corrupt
            value), or it is filed under another account or night than its own (fleet fault
            audit: a misfiled outcome was counted twice and its account silently dropped from
            a night published as complete).  Names the account.
    """
    raw: Any = client.hgetall(keys.results_key(as_of))
    decoder = msgspec.json.Decoder(Outcome)
    out: dict[str, Outcome] = {}
    for key, value in sorted(raw.items()):
        account = key.decode(errors="replace")
        out[account] = _checked(decoder, value, account, as_of)
    return out


def checked_outcome(value: bytes, account: str, as_of: dt.date) -> Outcome:
    """One stored outcome, decoded and checked against the field and night it is filed under.

    Raises:
        InputError: as :func:`outcomes`.
    """
    return _checked(msgspec.json.Decoder(Outcome), value, account, as_of)


def _checked(
    decoder: msgspec.json.Decoder[Outcome], value: bytes, account: str, as_of: dt.date
) -> Outcome:
    """One stored outcome, decoded and checked against the field and night it is filed under."""
    try:
        outcome = decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise InputError(
            f"the stored outcome of account {account} for {as_of} cannot be read: {exc}",
            account=account,
            field="outcome",
        ) from exc
    if outcome.account_id != account or outcome.as_of != as_of:
        raise InputError(
            f"the outcome stored for account {account} on {as_of} belongs to account "
            f"{outcome.account_id} on {outcome.as_of}: the results store is corrupt; "
            f"delete that field and run `taxview sweep` to solve the account again",
            account=account,
            field="outcome",
        )
    return outcome


def outcomes_with_status(
    client: redis.Redis[bytes], as_of: dt.date, statuses: set[str]
) -> dict[str, Outcome]:
    """The stored outcomes whose status is one of ``statuses`` (sorted by account id), read
    through the small status index: only those outcomes are fetched and decoded."""
    index: Any = client.hgetall(keys.status_key(as_of))
    wanted = sorted(k.decode() for k, v in index.items() if v.decode() in statuses)
    if not wanted:
        return {}
    raw: Any = client.hmget(keys.results_key(as_of), wanted)
    decoder = msgspec.json.Decoder(Outcome)
    return {
        a: _checked(decoder, v, a, as_of) for a, v in zip(wanted, raw, strict=True) if v is not None
    }


def done_accounts(client: redis.Redis[bytes], as_of: dt.date) -> set[str]:
    """Accounts that have an outcome: a field of the results hash (not of the status index,
    which the runbook's "delete that field" leaves behind: fleet fault audit, `taxview sweep`
    then re-sent nothing while `aggregate` kept asking for it)."""
    raw: Any = client.hkeys(keys.results_key(as_of))
    return {k.decode() for k in raw}


def progress(client: redis.Redis[bytes], as_of: dt.date, expected: int) -> Progress:
    """Counts of outcomes by status, and ``retried``: accounts whose solve was started more
    than once without finishing the first time (a lost worker process)."""
    statuses: Any = client.hvals(keys.status_key(as_of))
    counts = Counter(s.decode() for s in statuses)
    attempts: Any = client.hvals(keys.attempts_key(as_of))
    return Progress(
        expected=expected,
        done=sum(counts.values()),
        ok=counts["ok"],
        relaxed=counts["relaxed"],
        held=counts["held"],
        rejected=counts["rejected"],
        failed=counts["failed"],
        retried=sum(1 for a in attempts if int(a) > 1),
    )


def done_count(client: redis.Redis[bytes], as_of: dt.date) -> int:
    """How many accounts have an outcome (one ``HLEN``: cheap enough to poll often)."""
    return int(client.hlen(keys.status_key(as_of)))


def attempts(client: redis.Redis[bytes], as_of: dt.date) -> dict[str, int]:
    """Solve attempts started and not taken back, per account (see
    :func:`shared.results_keys.attempts_key`)."""
    raw: Any = client.hgetall(keys.attempts_key(as_of))
    return {k.decode(): int(v) for k, v in raw.items()}


def used_memory_mb(client: redis.Redis[bytes]) -> float:
    """Peak memory the server has used (``used_memory_peak``), in MB (0 for a server without
    ``INFO``, such as the fakeredis fallback)."""
    try:
        info: Any = client.info("memory")
    except redis.exceptions.ResponseError:
        return 0.0
    return float(info.get("used_memory_peak", 0)) / 1e6


def manifest_json(entry: ManifestEntry) -> str:
    """The stored form of a manifest entry."""
    return json.dumps(msgspec.to_builtins(entry), sort_keys=True)
