"""Typed settings of the fleet, read once at an entry point (``worker.app``, the producer CLI).

Nothing here reads the environment at import: :meth:`Settings.from_env` takes the mapping to read
(``os.environ`` at the entry point, a plain dict in tests), validates every value and names the
variable in the error.  ``shared`` functions never take :class:`Settings`; the worker and producer
pass the few numbers they need down explicitly.

Environment variables (documented with defaults in ``docs/fleet.md``):

=================================== ============================================================
``TAXVIEW_BROKER_URL``              Celery broker (``redis://…`` or ``amqp://…``); empty means the
                                    embedded default of ``taxview nightly``.
``TAXVIEW_REDIS_URL``               Results store (Redis).  Defaults to the broker URL when that is
                                    a Redis URL.
``TAXVIEW_QUEUE``                   Queue the rebalance tasks travel on.
``TAXVIEW_SOFT_TIME_LIMIT``         Seconds before a solve is interrupted (then retried / failed).
``TAXVIEW_HARD_TIME_LIMIT``         Seconds before the pool process is killed.
``TAXVIEW_VISIBILITY_TIMEOUT``      Redis broker: seconds before an unacked task is redelivered.
``TAXVIEW_RESTORE_INTERVAL``        Redis broker: seconds between unacked-restore sweeps.
``TAXVIEW_MAX_RETRIES``             Re-deliveries of one account (solver failure, lost process).
``TAXVIEW_RETRY_BACKOFF``           First retry delay in seconds (doubles, with jitter).
``TAXVIEW_RETRY_BACKOFF_MAX``       Cap of the retry delay in seconds.
``TAXVIEW_CONCURRENCY``             Pool processes per worker (0: one per CPU).
``TAXVIEW_MAX_MEMORY_PER_CHILD_KB`` Resident memory after which a pool process is recycled.
``TAXVIEW_MAX_TASKS_PER_CHILD``     Tasks after which a pool process is recycled (0: never).
``TAXVIEW_RESULTS_TTL``             Seconds the results store keeps a night's keys.
``FLOWER_BASIC_AUTH``               ``user:password[,user:password]`` read by Flower itself.
=================================== ============================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import urlsplit

import msgspec

from shared.errors import InputError

#: Prefix of every taxview variable.
PREFIX: Final = "TAXVIEW_"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a fleet process is configured with.  Build it with :meth:`from_env`."""

    broker_url: str = ""
    redis_url: str = ""
    queue: str = "taxview"
    #: A whole rebalance takes ~15 ms (n=500 direct indexing) to a few seconds (n=3000
    #: example requests: long/short 1.2 s, market-neutral 3.5 s, several solves and the
    #: rounding repair); 30 s is headroom, and short limits keep a dead worker's recovery short.
    soft_time_limit_s: int = 30
    hard_time_limit_s: int = 40
    #: Must exceed ``hard_time_limit_s`` or a slow (alive) task is delivered twice; it is also
    #: how long a dead worker's tasks wait before the unacked restore brings them back.
    visibility_timeout_s: int = 60
    restore_interval_s: int = 5
    max_retries: int = 3
    retry_backoff_s: int = 2
    retry_backoff_max_s: int = 60
    concurrency: int = 0
    max_memory_per_child_kb: int = 1_500_000
    max_tasks_per_child: int = 0
    results_ttl_s: int = 7 * 24 * 3600
    flower_basic_auth: str = ""

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: ``taxview nightly`` runs its own Redis."""
        return self.broker_url == ""

    @property
    def broker_is_redis(self) -> bool:
        """True for ``redis://``/``rediss://`` brokers (the visibility-timeout options apply)."""
        return self.broker_url.startswith(("redis://", "rediss://", "unix://"))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate the settings from ``env``.

        Args:
            env: the environment to read (``os.environ`` at an entry point).

        Returns:
            The validated settings.

        Raises:
            InputError: a variable is not a number, out of range, or the limits are inconsistent;
                ``field`` names the variable.
        """
        default = cls()
        broker = env.get(f"{PREFIX}BROKER_URL", "").strip()
        redis_url = env.get(f"{PREFIX}REDIS_URL", "").strip()
        if not redis_url and broker.startswith(("redis://", "rediss://", "unix://")):
            redis_url = broker
        ints: dict[str, int] = {}
        for name, var, minimum in _INT_VARS:
            raw = env.get(f"{PREFIX}{var}", "").strip()
            if raw == "":
                ints[name] = getattr(default, name)
                continue
            # ASCII digits only: int() also reads "1_0" and non-ASCII digits (settings audit).
            if not _WHOLE.fullmatch(raw):
                raise InputError(f"expected a whole number, got {raw!r}", field=f"{PREFIX}{var}")
            value = int(raw)
            if not minimum <= value <= MAX_INT_SETTING:
                raise InputError(
                    f"must be between {minimum} and {MAX_INT_SETTING:,}, got {value}",
                    field=f"{PREFIX}{var}",
                )
            ints[name] = value
        if not env.get(f"{PREFIX}VISIBILITY_TIMEOUT", "").strip():  # unset or empty: the default
            ints["visibility_timeout_s"] = max(
                ints["visibility_timeout_s"], ints["hard_time_limit_s"] + 20
            )
        settings = cls(
            broker_url=broker,
            redis_url=redis_url,
            queue=env.get(f"{PREFIX}QUEUE", "").strip() or default.queue,
            flower_basic_auth=env.get("FLOWER_BASIC_AUTH", ""),
            **ints,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check the relations between settings.

        Raises:
            InputError: soft ≥ hard time limit, a visibility timeout not above the hard limit, a
                broker without a results store, or a malformed ``FLOWER_BASIC_AUTH``.
        """
        if self.soft_time_limit_s >= self.hard_time_limit_s:
            raise InputError(
                f"soft limit {self.soft_time_limit_s}s ({PREFIX}SOFT_TIME_LIMIT) must be below "
                f"the hard limit {self.hard_time_limit_s}s ({PREFIX}HARD_TIME_LIMIT) so a slow "
                "solve is interrupted before it is killed",
                field=f"{PREFIX}SOFT_TIME_LIMIT",
            )
        if self.visibility_timeout_s <= self.hard_time_limit_s:
            raise InputError(
                f"visibility timeout {self.visibility_timeout_s}s must exceed the hard time "
                f"limit {self.hard_time_limit_s}s, or a task still running is delivered twice",
                field=f"{PREFIX}VISIBILITY_TIMEOUT",
            )
        if self.broker_url and not self.broker_url.startswith(
            ("redis://", "rediss://", "amqp://", "amqps://", "pyamqp://", "unix://")
        ):
            # The scheme alone, and only when it is one: a URL without "://" is all secret
            # (settings audit: 'u:hunter2@host:6391/0' was echoed whole).
            scheme, sep, _ = self.broker_url.partition("://")
            shown = f"{scheme!r}" if sep and scheme.isalnum() else "a URL without a scheme"
            raise InputError(
                f"unsupported broker scheme ({shown}): use redis:// or amqp://",
                field=f"{PREFIX}BROKER_URL",
            )
        for url, var in ((self.broker_url, "BROKER_URL"), (self.redis_url, "REDIS_URL")):
            _check_url(url, f"{PREFIX}{var}")
        if self.broker_url and not self.redis_url:
            raise InputError(
                "a non-Redis broker needs a results store: set TAXVIEW_REDIS_URL=redis://host:6379/1",
                field=f"{PREFIX}REDIS_URL",
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise InputError("the results store must be a redis:// URL", field=f"{PREFIX}REDIS_URL")
        if self.flower_basic_auth:
            for pair in self.flower_basic_auth.split(","):
                user, sep, password = pair.partition(":")
                # ASCII: Flower compares credentials with hmac.compare_digest, which raises on
                # non-ASCII text, so every request was a 500 (settings audit).
                if not sep or not user or not password or not pair.isascii():
                    raise InputError(
                        "expected ASCII user:password pairs separated by commas",
                        field="FLOWER_BASIC_AUTH",
                    )

    def with_urls(self, *, broker_url: str, redis_url: str) -> Settings:
        """A copy pointing at other servers (the embedded default, a flag on the command line)."""
        out = msgspec.structs.replace(self, broker_url=broker_url, redis_url=redis_url)
        out.validate()
        return out

    def to_env(self) -> dict[str, str]:
        """The environment that reproduces these settings in a child process."""
        env = {
            f"{PREFIX}BROKER_URL": self.broker_url,
            f"{PREFIX}REDIS_URL": self.redis_url,
            f"{PREFIX}QUEUE": self.queue,
        }
        for name, var, _ in _INT_VARS:
            env[f"{PREFIX}{var}"] = str(getattr(self, name))
        return env


def _check_url(url: str, field: str) -> None:
    """Refuse a server URL whose host and port cannot be read, without echoing it (it may hold
    a password): a password with ``/``, ``#``, ``?`` or ``@`` must be percent-encoded (deploy
    audit: a base64 password with ``/`` crashed preflight and the worker with a traceback that
    showed its first characters)."""
    if not url or url.startswith("unix://"):
        return
    encode = "percent-encode any '/', '#', '?' or '@' in its password (e.g. / as %2F)"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise InputError(
            f"cannot read the host and port of this URL; {encode}", field=field
        ) from exc
    # An '@' after the host means the password held a '/' (or '?', '#') that ended the host
    # early: 'amqp://guest:12/hunter2@host' read user 'guest' as the host and 12 as the port
    # (settings audit: it passed, and the password was printed).
    if "@" in url.partition("://")[2][len(parts.netloc) :]:
        raise InputError(f"cannot read the host of this URL; {encode}", field=field)
    if not parts.hostname:
        raise InputError("the URL names no host", field=field)
    if port == 0:  # the Redis client takes port 0 for "the default", 6379: another server
        raise InputError("the URL's port is 0", field=field)
    if (
        parts.scheme in ("redis", "rediss")
        and parts.path.strip("/")
        and not (parts.path.strip("/").isascii() and parts.path.strip("/").isdigit())
    ):
        raise InputError(
            "a redis:// URL's path is its database number (redis://host:6379/0)", field=field
        )


#: A whole number as a setting takes it: ASCII digits, one optional sign.
_WHOLE: Final = re.compile(r"[+-]?[0-9]+")

#: Largest value of an integer setting (a year in seconds is 3.2e7; Redis refuses an expiry
#: time near 2^62: settings audit).
MAX_INT_SETTING: Final = 10**9

#: (attribute, variable suffix, minimum) of every integer setting.
_INT_VARS: Final[tuple[tuple[str, str, int], ...]] = (
    ("soft_time_limit_s", "SOFT_TIME_LIMIT", 1),
    ("hard_time_limit_s", "HARD_TIME_LIMIT", 2),
    ("visibility_timeout_s", "VISIBILITY_TIMEOUT", 3),
    ("restore_interval_s", "RESTORE_INTERVAL", 1),
    ("max_retries", "MAX_RETRIES", 0),
    ("retry_backoff_s", "RETRY_BACKOFF", 0),
    ("retry_backoff_max_s", "RETRY_BACKOFF_MAX", 0),
    ("concurrency", "CONCURRENCY", 0),
    ("max_memory_per_child_kb", "MAX_MEMORY_PER_CHILD_KB", 0),
    ("max_tasks_per_child", "MAX_TASKS_PER_CHILD", 0),
    ("results_ttl_s", "RESULTS_TTL", 60),
)
