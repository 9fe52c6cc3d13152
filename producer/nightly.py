"""The nightly run: pre-flight, publish, enqueue (windowed), wait with progress, sweep, aggregate.

Sending is windowed: at most ``window`` accounts are in flight (sent, no outcome yet), which
bounds the broker's memory for a large book.  If no outcome arrives for ``stall_s`` seconds while
accounts are still missing, the accounts without an outcome are re-enqueued (the same as
``taxview sweep``; a duplicate of a task still queued is harmless: outcomes are overwrites and a
redelivery of a finished account changes nothing).

On a Redis broker a lost message is sent again sooner: after :data:`LOST_PROBE_S` without
progress once everything is sent, the loop reads which tasks the broker holds (queued or
delivered and not acknowledged, :func:`~producer.broker.broker_task_ids`); a household none of
whose tasks is held there on two reads :data:`LOST_PROBE_S` apart, and whose accounts are not
all done, is lost (a worker killed between kombu's ``BRPOP`` and its unacked record: kombu #305,
celery #7950) and is sent again right away instead of after ``stall_s``.  A task a dead worker
holds unacknowledged is still held: its visibility timeout brings it back, nothing is re-sent.
The stall re-send then skips the households the broker holds too (with no worker running it
queued every pending household again at each stall).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import msgspec
import redis
from celery import Celery

from producer import results_reader as reader
from producer.aggregate import NightSummary, aggregate
from producer.book import Book, Format
from producer.enqueue import (
    book_digests,
    pending_chains,
    plan_night,
    publish_market,
    send_chains,
    write_manifest,
)
from shared import results_keys as keys
from shared.messages import AccountTask, MarketSnapshot

#: Seconds without progress, once every account is sent, before the broker is asked which tasks
#: it holds; a household missing from two such reads this far apart is sent again.  A chain step
#: is out of the broker only between its predecessor's outcome and its own publication (within a
#: millisecond, by the same pool process), and a running or retry-scheduled task is held as
#: unacknowledged, so two reads seconds apart never mistake either for a lost one.
LOST_PROBE_S = 5.0

#: Polls per full status breakdown (the polls between read one HLEN); the progress line is drawn
#: after each breakdown only, every ``FULL_EVERY × poll_s`` seconds (0.8 s by default).
FULL_EVERY = 4


class NightStats(msgspec.Struct, kw_only=True):
    """Timings and counts of one run."""

    accounts: int
    wall_s: float
    accounts_per_s: float
    swept: int
    progress: reader.Progress
    redis_peak_mb: float


#: A store that is restarting (refused) or stopped answering (timed out): waited for.
_STORE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def run_night(
    *,
    client: redis.Redis[bytes],
    app: Celery,
    book: Book,
    market: MarketSnapshot,
    ttl_s: int,
    window: int = 256,
    stall_s: float = 300.0,
    poll_s: float = 0.2,
    progress_out: TextIO | None = sys.stderr,
    timeout_s: float | None = None,
    on_poll: Callable[[reader.Progress], None] | None = None,
    check: Callable[[], None] | None = None,
    check_store: bool = True,
    held: Callable[[], set[str]] | None = None,
    lost_probe_s: float = LOST_PROBE_S,
) -> NightStats:
    """Enqueue the night and wait until every account has an outcome.

    Args:
        client: the results store.
        app: the producer's Celery client.
        book: the book at the previous close.
        market: the night's market (its ``as_of`` is the night).
        ttl_s: lifetime of the night's keys.
        window: accounts in flight at most.
        stall_s: seconds without progress before missing accounts are re-enqueued.
        poll_s: progress polling period.
        progress_out: where the progress line goes (``None``: silent).
        timeout_s: give up waiting after this long (the aggregator then names what is missing).
        on_poll: called with each progress sample (tests inject faults here).
        check: called before each poll, also while the store is unreachable; it raises to
            stop waiting (the embedded fleet's :meth:`~producer.embedded.EmbeddedFleet.check`:
            its own server or workers died, so nothing would ever finish).
        check_store: run the pre-flight check (the embedded server is started with
            ``noeviction`` and may be a fakeredis without ``CONFIG``).
        held: the ids of the tasks the broker holds (a Redis broker's
            :func:`~producer.broker.broker_task_ids`), to send lost households again after
            ``lost_probe_s`` instead of ``stall_s`` (``None``: the stall re-send only, e.g. on
            RabbitMQ, which acknowledges per channel and has no such gap).
        lost_probe_s: seconds without progress between two reads of ``held``.

    Returns:
        Counts and timings.
    """
    as_of = market.as_of
    if check_store:
        reader.preflight(client)
    started = time.monotonic()
    chains = plan_night(book, as_of, market=market)
    publish_market(client, market, ttl_s=ttl_s)
    digests = book_digests(book)
    expected = write_manifest(client, as_of, chains, ttl_s=ttl_s, digests=digests)

    def republish() -> None:
        # A store that came back empty (Redis restarted without its AOF) lost the night's
        # snapshot and manifest too: publish them again before anything is sent again, or
        # every re-sent account finds no market (fleet fault audit: all 80 were rejected).
        if not client.exists(keys.market_key(as_of)):
            publish_market(client, market, ttl_s=ttl_s)
            if bar is not None:
                bar.note("the results store lost the night's market snapshot: published again")
        if not client.exists(keys.manifest_key(as_of)):
            write_manifest(client, as_of, chains, ttl_s=ttl_s, digests=digests)

    queue = pending_chains(client, as_of, chains)
    sent = sum(len(c) for c in chains) - sum(len(c) for c in queue)
    position = 0
    swept = 0
    last_done, last_change = -1, time.monotonic()
    prog = reader.Progress(
        expected=expected, done=0, ok=0, relaxed=0, held=0, rejected=0, failed=0, retried=0
    )
    shown = prog  # the last full breakdown: what the progress line shows
    polls = 0
    done_at_start: int | None = None
    lost = _LostHouseholds(as_of, chains) if held is not None else None
    bar = None if progress_out is None else ProgressBar(progress_out)
    try:
        while True:
            if check is not None:
                check()
            try:
                # The full breakdown reads every status; between breakdowns one HLEN (enough for the
                # window and the stall check) keeps the loop cheap on a big night.
                full = polls % FULL_EVERY == 0 or prog.done >= expected
                if full:
                    prog = reader.progress(client, as_of, expected)
                else:
                    done = reader.done_count(client, as_of)
                    if done >= expected:
                        prog, full = reader.progress(client, as_of, expected), True
                    else:
                        prog = msgspec.structs.replace(prog, done=done)
                polls += 1
            except _STORE_DOWN:
                # The store is restarting: the workers retry, so do we (the night is not lost)
                # — up to ``timeout_s`` (fleet fault audit, 2026-12-07 eighth session: a dead
                # store kept `nightly --timeout 30` waiting for ever).
                if bar is not None:
                    bar.note("results store unreachable, retrying…")
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    # Nothing can be aggregated from a store that is down: say so now rather
                    # than after more reads' retry budgets (review audit: 74 s for --timeout 20).
                    raise redis.exceptions.ConnectionError(
                        f"still unreachable when --timeout {timeout_s:g}s ran out"
                    ) from None
                time.sleep(1.0)
                continue
            if full:
                shown = prog
            if done_at_start is None:
                done_at_start = prog.done  # a resumed night's earlier outcomes count for nothing
            while position < len(queue) and sent - prog.done < window:
                sent += send_chains(app, client, [queue[position]], book.ledgers, ttl_s=ttl_s)
                position += 1
            now = time.monotonic()
            if prog.done != last_done:
                last_done, last_change = prog.done, now
            # A line is drawn only from a full breakdown, so its counts add up to its `done`.
            if bar is not None and full and prog.done < expected:
                bar.draw(shown, now - started)
            if on_poll is not None:
                on_poll(prog)
            if prog.done >= expected:
                break
            if timeout_s is not None and now - started > timeout_s:
                break
            if position >= len(queue) and now - last_change > stall_s:
                todo = pending_chains(client, as_of, chains)
                if lost is not None and held is not None:
                    # A household the broker still holds is not sent again: with no worker
                    # running, each stall used to queue every pending household once more (an
                    # operator audit saw 306 messages for 34 households; at 10,000 accounts the
                    # copies would fill a noeviction Redis).
                    with contextlib.suppress(*_STORE_DOWN):
                        todo = lost.not_held(todo, held())
                if todo:
                    republish()
                swept += send_chains(app, client, todo, book.ledgers, ttl_s=ttl_s)
                last_change = now
                if bar is not None and todo:
                    bar.say(_stall_note(stall_s, len(todo), prog.done - done_at_start))
                if lost is not None:
                    lost.suspects.clear()
            elif (
                lost is not None
                and held is not None
                and position >= len(queue)
                and now - last_change > lost_probe_s
                and now - lost.probed >= lost_probe_s
            ):
                lost.probed = now
                try:
                    todo = lost.confirm(pending_chains(client, as_of, chains), held())
                except _STORE_DOWN:
                    todo = []  # the broker or store is restarting: read again later
                if todo:
                    republish()
                    swept += send_chains(app, client, todo, book.ledgers, ttl_s=ttl_s)
                    if bar is not None:
                        households = ", ".join(c[0].household_id for c in todo[:3])
                        bar.note(
                            f"sent again: {len(todo)} household(s) the broker lost ({households})"
                        )
            time.sleep(poll_s)
    except BaseException:  # an error or Ctrl-C: end the progress line before the message
        if bar is not None:
            bar.end()
        raise
    wall = time.monotonic() - started
    if shown is not prog:  # the loop ended on a cheap poll (a time-out): count once more
        with contextlib.suppress(*_STORE_DOWN):
            shown = reader.progress(client, as_of, expected)
    if bar is not None:
        bar.draw(shown, wall, final=True)
        bar.end()
    return NightStats(
        accounts=expected,
        wall_s=wall,
        accounts_per_s=shown.done / wall if wall > 0 else 0.0,
        swept=swept,
        progress=shown,
        redis_peak_mb=reader.used_memory_mb(client),
    )


class _LostHouseholds:
    """The households whose tasks the broker no longer holds (see :data:`LOST_PROBE_S`)."""

    def __init__(self, as_of: dt.date, chains: list[list[AccountTask]]) -> None:
        self.ids = {
            c[0].household_id: {keys.task_id(as_of, t.account.account_id) for t in c}
            for c in chains
        }
        #: Households found missing at the last read.
        self.suspects: set[str] = set()
        self.probed = -float("inf")

    def not_held(self, todo: list[list[AccountTask]], held: set[str]) -> list[list[AccountTask]]:
        """The pending chains none of whose household's tasks the broker holds."""
        return [c for c in todo if self.ids[c[0].household_id].isdisjoint(held)]

    def confirm(self, todo: list[list[AccountTask]], held: set[str]) -> list[list[AccountTask]]:
        """The pending chains missing now and at the last read (to send again).  A household is
        held while any of its tasks is: an earlier account's message carries the rest of the
        chain, and its redelivery sends them."""
        missing = {c[0].household_id for c in self.not_held(todo, held)}
        lost = [c for c in todo if c[0].household_id in missing & self.suspects]
        self.suspects = missing.difference(c[0].household_id for c in lost)
        return lost


def _stall_note(stall_s: float, households: int, finished: int) -> str:
    """What a stall tells the operator.  With nothing finished at all, the likeliest cause is
    the deployment: no worker running, or workers reading another results store or broker than
    this producer (contracts audit: a producer whose store defaulted to the broker's URL while
    the workers had their own ``TAXVIEW_REDIS_URL`` waited silently for good)."""
    text = f"no account finished in the last {stall_s:.0f} s: sent {households} household(s) again"
    if finished == 0:  # nothing finished since this run started
        text += (
            "; none has finished yet: check that workers are running and use this producer's "
            "broker and results store (TAXVIEW_BROKER_URL, TAXVIEW_REDIS_URL)"
        )
    return text


#: Seconds between progress lines when the output is not a terminal (a log file, journald).
LOG_EVERY_S = 10.0


class ProgressBar:
    """The night's progress on ``out``: one line redrawn in place on a terminal; on anything
    else (a log) a new line every :data:`LOG_EVERY_S` seconds and a last one at the end, so a
    log does not collect one endless line of carriage returns."""

    def __init__(self, out: TextIO, *, every_s: float = LOG_EVERY_S) -> None:
        self.out = out
        isatty = getattr(out, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.every_s = every_s
        self._open = False  # a terminal line is drawn and not ended
        self._last: float | None = None

    def draw(self, p: reader.Progress, elapsed: float, *, final: bool = False) -> None:
        """Show ``p`` after ``elapsed`` seconds (``final``: always, the night's last line)."""
        throttled = not self.tty and not final and self._last is not None
        if throttled and elapsed - (self._last or 0.0) < self.every_s:
            return
        self._last = elapsed
        self._write(progress_text(p, elapsed))

    def note(self, text: str) -> None:
        """A passing message (the store is unreachable) in place of the progress line."""
        self._write(text)

    def say(self, text: str) -> None:
        """A message that stays: on a line of its own, the progress line redrawn below it."""
        self.end()
        self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        """End a line drawn in place (before an error message or the summary)."""
        if self._open:
            self.out.write("\n")
            self.out.flush()
            self._open = False

    def _write(self, text: str) -> None:
        if self.tty:
            self.out.write("\r" + text)
            self._open = True
        else:
            self.out.write(text + "\n")
        self.out.flush()


def progress_text(p: reader.Progress, elapsed: float) -> str:
    """One progress line: the bar, done / expected, the outcome classes and the rate."""
    rate = p.done / elapsed if elapsed > 0 else 0.0
    width = 30
    filled = int(width * p.done / p.expected) if p.expected else width
    bar = "#" * filled + "-" * (width - filled)
    return (
        f"[{bar}] {p.done}/{p.expected} done (ok {p.ok + p.relaxed + p.held}, rejected "
        f"{p.rejected}, failed {p.failed}, retried {p.retried}) {rate:.1f} accounts/s "
        f"{elapsed:.0f}s"
    )


def finish_night(
    client: redis.Redis[bytes],
    as_of: dt.date,
    out: Path,
    *,
    book: Book | None,
    allow_partial: bool,
    book_format: Format = "csv",
) -> NightSummary:
    """Read the night back from the store and aggregate it into ``out`` (``out/next_book`` in
    ``book_format`` when ``book`` is given)."""
    return aggregate(
        as_of,
        reader.manifest(client, as_of),
        reader.outcomes(client, as_of),
        out,
        book=book,
        allow_partial=allow_partial,
        book_format=book_format,
    )
