"""A workaround for a kombu Redis-transport bug that stops a worker when Redis goes away.

When the broker connection drops, Celery's consumer first ``collect()``s the connection (which
detaches the transport from its ``kombu.Connection``: ``transport.client = None``) and then
closes it.  If the first close of the default channel was cut short (a BRPOP in flight timed
out), the second close restores the channel's unacknowledged messages through a *new* client:
``Channel.pool`` → ``Channel._connparams()`` reads ``self.connection.client.hostname`` and raises
``AttributeError: 'NoneType' object has no attribute 'hostname'``.  That is not one of the
connection errors Celery ignores while closing, so the worker's main process logs
``Unrecoverable error`` and shuts down (kombu 5.7 / Celery 5.7; about 1 night in 7–15 with Redis
killed mid-night in ``tests/test_producer/test_fleet_reliability.py``).

:func:`patch_redis_transport` makes that call raise the transport's own
``redis.exceptions.ConnectionError`` instead: the close goes on, the consumer reconnects, and the
messages that could not be restored stay in the broker's unacked set, which the restore sweep
puts back on the queue after the visibility timeout (docs/fleet.md, "Delivery").
"""

from __future__ import annotations

import functools
from typing import Any

_PATCHED = "_taxview_detached_guard"


def patch_redis_transport() -> bool:
    """Install the guard on ``kombu.transport.redis.Channel._connparams`` (idempotent).

    Returns:
        True when the guard is in place (now or before); False when this kombu has no such
        method (the guard is then not needed or not applicable).
    """
    try:
        import redis.exceptions
        from kombu.transport import redis as kombu_redis
    except ImportError:  # no redis client: no Redis transport to patch
        return False
    channel = getattr(kombu_redis, "Channel", None)
    original = getattr(channel, "_connparams", None)
    if channel is None or original is None:
        return False
    if getattr(original, _PATCHED, False):
        return True

    @functools.wraps(original)
    def _connparams(self: Any, *args: Any, **kwargs: Any) -> Any:
        transport = getattr(self, "connection", None)
        if transport is None or getattr(transport, "client", None) is None:
            raise redis.exceptions.ConnectionError(
                "broker connection already closed (its transport was detached)"
            )
        return original(self, *args, **kwargs)

    setattr(_connparams, _PATCHED, True)
    channel._connparams = _connparams
    return True
