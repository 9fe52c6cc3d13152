"""Fleet subcommands: ``nightly``, ``enqueue``, ``aggregate``, ``sweep``, ``preflight`` and
``bench fleet``.  Settings are read once here, from the environment and the flags."""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import amqp.exceptions
import kombu.exceptions
import redis

from producer import results_reader as reader
from producer.aggregate import IncompleteNight, NightSummary, check_book_apart, check_out_dir
from producer.bench_out import contract_keys
from producer.book import (
    Book,
    book_from_stream,
    book_warnings,
    read_book,
    read_market,
    refuse_booked_night,
    write_book,
    write_market,
)
from producer.broker import broker_task_ids, client_app
from producer.cli import iso_date, out_path, positive_float, positive_int, universe_size
from producer.embedded import EmbeddedFleet, check_fleet_size
from producer.enqueue import (
    check_same_book,
    enqueue_night,
    pending_chains,
    plan_night,
    send_chains,
)
from producer.nightly import finish_night, run_night
from shared import results_keys as keys
from shared.config import Settings
from shared.errors import InputError
from shared.messages import MarketSnapshot


def _add_urls(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker-url", help="Celery broker (default: $TAXVIEW_BROKER_URL)")
    p.add_argument("--redis-url", help="results store (default: $TAXVIEW_REDIS_URL)")


#: A synthetic book's universe size and seed when ``--names`` / ``--seed`` are not given.
SYNTHETIC_NAMES = 500
SYNTHETIC_SEED = 7


def _add_inputs(p: argparse.ArgumentParser, *, synthetic_default: int | None) -> None:
    p.add_argument("--date", type=iso_date, help="the night (default: the market's / book's day)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--book", type=Path, help="book directory (see docs/formats.md (Book format))")
    src.add_argument(
        "--synthetic-accounts",
        type=positive_int,
        default=synthetic_default,
        help="generate a synthetic book of N accounts"
        + (f" (default {synthetic_default} without --book)" if synthetic_default else ""),
    )
    p.add_argument("--market", type=Path, help="market snapshot JSON or market directory")
    p.add_argument(
        "--names",
        type=universe_size,
        help=f"synthetic universe size (default {SYNTHETIC_NAMES}; not with --book)",
    )
    p.add_argument(
        "--seed", type=int, help=f"synthetic seed (default {SYNTHETIC_SEED}; not with --book)"
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the fleet subcommands."""
    p = sub.add_parser(
        "nightly",
        help="run the night: enqueue every account, wait, aggregate (embedded fleet by default)",
        description="Load the book and market, enqueue one rebalance per account, wait with a "
        "progress bar, check completeness and write the firm-wide P/L, outcomes, trades, "
        "not-ok list and next day's book.  With no broker configured it starts its own Redis "
        "and worker processes.",
    )
    _add_inputs(p, synthetic_default=200)
    _add_urls(p)
    p.add_argument("--out", type=out_path, help="output directory (default ./taxview-nightly/DATE)")
    p.add_argument(
        "--workers", type=positive_int, default=1, help="embedded worker processes (default 1)"
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="pool size per worker (default: the number of CPUs)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        help="stop waiting after SECONDS and aggregate what is there (refused, naming the "
        "missing accounts, unless --allow-partial); default: wait until every account is done",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="with --timeout: publish the night with accounts missing (exit 1)",
    )
    p.add_argument(
        "--window", type=positive_int, default=256, help="accounts in flight at most (default 256)"
    )
    p.add_argument(
        "--format",
        choices=["csv", "parquet"],
        default="csv",
        help="format of next_book (and, for a synthetic night, of book/) (default csv)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--embedded-server",
        choices=["auto", "redis-server", "fakeredis"],
        default="auto",
        help="embedded store/broker (default auto: redis-server when installed, else fakeredis)",
    )
    p.set_defaults(func=_one_line(cmd_nightly))

    p = sub.add_parser(
        "enqueue",
        help="publish the market and manifest, send one task/account",
        description="For a deployed fleet (TAXVIEW_BROKER_URL, TAXVIEW_REDIS_URL): publish the "
        "night's market snapshot and manifest once, then send one rebalance task per account "
        "without an outcome (task id DATE:ACCOUNT; a household's accounts as one chain), so a "
        "re-run after a crash sends only what is still missing.",
    )
    _add_inputs(p, synthetic_default=None)
    _add_urls(p)
    p.add_argument("--resend", action="store_true", help="also send accounts that have outcomes")
    p.set_defaults(func=_one_line(cmd_enqueue))

    p = sub.add_parser(
        "aggregate",
        help="check completeness and write the night's reports",
        description="Read the night's outcomes from the results store, refuse a night with "
        "accounts missing (naming them) unless --allow-partial, and write the firm-wide P/L, "
        "outcomes, trades, realized slices, the not-ok list and, with --book, the next book.",
    )
    p.add_argument("--date", type=iso_date, required=True, help="the night")
    p.add_argument("--out", type=out_path, required=True, help="output directory")
    p.add_argument("--book", type=Path, help="the night's input book: writes out/next_book")
    p.add_argument("--allow-partial", action="store_true", help="publish with accounts missing")
    p.add_argument(
        "--format", choices=["csv", "parquet"], default="csv", help="next_book format (default csv)"
    )
    _add_urls(p)
    p.set_defaults(func=_one_line(cmd_aggregate))

    p = sub.add_parser(
        "sweep",
        help="re-enqueue the accounts of a night that have no outcome",
        description="Once the workers are idle: send again the tasks of every account of the "
        "night's manifest that has no stored outcome (a task lost with its broker, say).",
    )
    _add_inputs(p, synthetic_default=None)
    _add_urls(p)
    p.set_defaults(func=_one_line(cmd_sweep))

    p = sub.add_parser(
        "preflight",
        help="check the results store and broker before a night",
        description="Check that the results store and the broker answer and that neither has "
        "an evicting maxmemory policy (a store that evicts could lose outcomes).",
    )
    _add_urls(p)
    p.set_defaults(func=_one_line(cmd_preflight))


def register_bench(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``taxview bench fleet``."""
    p = bench_sub.add_parser(
        "fleet",
        help="fleet throughput vs an in-process loop; prints one JSON line",
        description="Solve a synthetic book on an embedded fleet (one worker, --workers pool "
        "processes) and the same accounts in a plain loop; print one JSON line: accounts, names, "
        "workers, accounts_per_s, overhead_vs_inline, redis_peak_mb (--details adds more).",
    )
    p.add_argument("--accounts", type=positive_int, default=1000, help="accounts (default 1000)")
    p.add_argument("--names", type=universe_size, default=500, help="universe size (default 500)")
    p.add_argument("--workers", type=positive_int, default=2, help="solving processes (default 2)")
    p.add_argument("--seed", type=int, default=11, help="synthetic seed (default 11)")
    p.add_argument(
        "--inline-sample",
        type=positive_int,
        default=200,
        help="accounts solved in the plain loop to time it, scaled to --accounts (default 200)",
    )
    p.add_argument(
        "--details",
        action="store_true",
        help="also print the wall time, the plain loop's time per account and the statuses",
    )
    p.set_defaults(func=cmd_bench_fleet)


# --------------------------------------------------------------------------------------------


def _one_line(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``command`` with an unreachable (or refusing) results store or broker reported as one
    line naming the setting to check, never a traceback."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except redis.exceptions.RedisError as exc:
            if _settings(args).embedded:  # nothing the user set (embedded audit)
                raise InputError(
                    f"the embedded results store is unreachable or refused a command: {exc}; "
                    "nothing was published: run the night again",
                    field="embedded store",
                ) from exc
            raise InputError(
                f"results store is unreachable or refused a command: {exc}",
                field="TAXVIEW_REDIS_URL",
            ) from exc
        except (kombu.exceptions.OperationalError, amqp.exceptions.AMQPError) as exc:
            raise InputError(f"broker is unreachable: {exc}", field="TAXVIEW_BROKER_URL") from exc

    return run


def check_broker(settings: Settings, *, retries: int = reader.PREFLIGHT_RETRIES) -> None:
    """Refuse a broker that is unreachable or, for Redis, may evict queued tasks.

    Raises:
        InputError: naming ``TAXVIEW_BROKER_URL`` (unreachable) or ``maxmemory-policy``.
    """
    if settings.broker_is_redis:
        reader.check_server(
            settings.broker_url, what="broker", setting="TAXVIEW_BROKER_URL", retries=retries
        )
        return
    from kombu.connection import Connection

    conn = Connection(settings.broker_url, connect_timeout=5)  # type: ignore[no-untyped-call]
    try:
        conn.ensure_connection(max_retries=retries, interval_start=0.2, interval_step=0.5)  # type: ignore[no-untyped-call]
    except (
        kombu.exceptions.OperationalError,
        amqp.exceptions.AMQPError,
        OSError,
        *conn.connection_errors,
    ) as exc:
        raise InputError(
            f"broker {_redacted(settings.broker_url)} is unreachable: {exc}",
            field="TAXVIEW_BROKER_URL",
        ) from exc
    finally:
        conn.release()  # type: ignore[no-untyped-call]


def _redacted(url: str) -> str:
    """``url`` without its credentials: everything from the scheme to the last ``@`` of the
    URL (a password may hold ``/`` or ``@``; settings audit: one with a ``/`` was printed)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url if sep else "(a URL)"
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env(os.environ)
    broker = getattr(args, "broker_url", None)
    store = getattr(args, "redis_url", None)
    if broker or store:
        broker = broker or settings.broker_url
        store = store or settings.redis_url or (broker if broker.startswith("redis") else "")
        settings = settings.with_urls(broker_url=broker, redis_url=store)
    return settings


def _require_fleet(settings: Settings, command: str) -> None:
    if settings.embedded:
        raise InputError(
            f"`taxview {command}` drives a deployed fleet: set TAXVIEW_BROKER_URL and "
            "TAXVIEW_REDIS_URL (or --broker-url/--redis-url); `taxview nightly` runs embedded",
            field="TAXVIEW_BROKER_URL",
        )


def load_inputs(args: argparse.Namespace) -> tuple[Book, MarketSnapshot]:
    """The book and the night's market from the flags (a synthetic book by default)."""
    if args.book is not None:
        for flag, value in (("--names", args.names), ("--seed", args.seed)):
            if value is not None:  # contracts audit: both were silently ignored
                raise InputError(
                    f"{flag} shapes a synthetic book; with --book it would do nothing",
                    field=flag,
                )
    if args.book is None:
        if not args.synthetic_accounts:
            raise InputError("give --book DIR or --synthetic-accounts N", field="--book")
        if getattr(args, "market", None) is not None:
            raise InputError(
                "--market needs --book: a synthetic book brings its own synthetic market",
                field="--market",
            )
        from shared.calendar import CALENDAR_END, CALENDAR_START, trading_day_on_or_before
        from shared.examples import HISTORY_YEARS, earliest_synthetic_night, synthetic_book_stream
        from shared.synthetic import WARMUP_DAYS

        first = earliest_synthetic_night()
        if args.date is not None and args.date < first:
            raise InputError(
                f"--date {args.date} is too early for a synthetic book: its market simulates "
                f"{HISTORY_YEARS} years of history after a {WARMUP_DAYS}-session warm-up, all "
                f"inside the NYSE calendar (from {CALENDAR_START}); the first possible night is "
                f"{first}",
                field="--date",
            )
        if args.date is not None and args.date > CALENDAR_END:
            raise InputError(
                f"--date {args.date} is after the NYSE calendar's end, {CALENDAR_END}",
                field="--date",
            )
        _check_session(args.date)
        day = args.date or trading_day_on_or_before(dt.date.today() - dt.timedelta(days=1))
        market, pairs = synthetic_book_stream(
            accounts=args.synthetic_accounts,
            names=SYNTHETIC_NAMES if args.names is None else args.names,
            seed=SYNTHETIC_SEED if args.seed is None else args.seed,
            as_of=day,
        )
        return book_from_stream(market.as_of, pairs), market
    _check_session(args.date)
    book = read_book(args.book)
    for warning in book_warnings(book):
        print(f"taxview: warning: {warning}", file=sys.stderr)
    market_path = args.market or _default_market(args.book)
    if args.date is None and market_path.is_file():
        from producer.book import decode_market_file

        try:
            day = decode_market_file(market_path.read_bytes()).as_of
        except InputError as exc:
            raise InputError(f"{market_path}: {exc.reason}", field=exc.field or "market") from exc
        # The night's date comes from the file: it must be a session as --date must (book
        # audit: a market dated 2026-12-25 ran a night and dated 79 lots on Christmas).
        _check_session(day, f"{market_path}: as_of", "market.as_of")
    else:
        from shared.calendar import next_trading_day

        day = args.date or next_trading_day(book.as_of)
    if day < book.as_of:
        raise InputError(
            f"the night {day} is before the book's close {book.as_of} ({args.book}/book.json): "
            "its lots and trades would be from the future; give the book of an earlier close",
            field="--date",
        )
    refuse_booked_night(book, day)
    _warn_skipped_sessions(book.as_of, day, args.book)
    return book, read_market(market_path, day)


def _warn_skipped_sessions(close: dt.date, day: dt.date, book_dir: Path) -> None:
    """One stderr line when sessions lie between the book's close and the night: a night run
    on one of them wrote a ``next_book`` that this book lacks, and running on the older book
    would trade that night's trades again.  A warning, not a refusal: a firm that ran no night
    on those sessions has no newer book."""
    from shared.calendar import next_trading_day

    first = next_trading_day(close)
    if close < day and first < day:
        print(
            f"taxview: warning: the book closed {close} ({book_dir}/book.json) and the night is "
            f"{day}: the session(s) from {first} are skipped; if a night ran on them, use its "
            "next_book instead",
            file=sys.stderr,
        )


def _default_market(book_dir: Path) -> Path:
    for candidate in (book_dir / "market.json", book_dir / "market"):
        if candidate.exists():
            return candidate
    raise InputError(
        f"no market given and none in {book_dir} (market.json or market/): pass --market",
        field="--market",
    )


def _check_session(day: dt.date | None, label: str = "--date", field: str = "--date") -> None:
    """Refuse a ``--date`` (or a market file's date) that is no NYSE session, naming the
    session before it (a date outside the calendar is left to the checks that name its
    bounds)."""
    from shared.calendar import (
        CALENDAR_END,
        CALENDAR_START,
        is_trading_day,
        trading_day_on_or_before,
    )

    if day is not None and CALENDAR_START <= day <= CALENDAR_END and not is_trading_day(day):
        raise InputError(
            f"{label} {day} is not an NYSE session (a weekend or a holiday): no market, "
            f"no night; the session before it is {trading_day_on_or_before(day)}",
            field=field,
        )


def cmd_nightly(args: argparse.Namespace) -> int:
    """``taxview nightly``."""
    if args.allow_partial and args.timeout is None:
        raise InputError(
            "--allow-partial publishes a night stopped by --timeout; without --timeout nightly "
            "waits for every account, so it would never apply",
            field="--allow-partial",
        )
    settings = _settings(args)
    if settings.embedded and settings.redis_url:
        # Contracts audit: the store was dropped without a word and a private one started.
        raise InputError(
            "a results store without a broker: give TAXVIEW_BROKER_URL (or --broker-url) too "
            "to drive a deployed fleet, or neither to run the embedded default",
            field="--redis-url" if getattr(args, "redis_url", None) else "TAXVIEW_REDIS_URL",
        )
    if args.out is not None:
        _check_night_out(args, args.out)
    if settings.embedded:
        check_fleet_size(
            args.workers,
            args.concurrency,
            flag="--workers" if args.workers >= args.concurrency else "--concurrency",
        )
    book, market = load_inputs(args)
    if not settings.embedded:
        # A deployed fleet's store and broker are checked before anything is written, so a
        # refused run touches nothing in --out (review: an unreachable store left a finished
        # night's folder without its firm_pnl.json).
        reader.check_server(settings.redis_url)
        check_broker(settings)
    out: Path = args.out or Path("taxview-nightly") / market.as_of.isoformat()
    _check_night_out(args, out)
    _make_out(out)
    # An earlier night's summary in this folder says "complete" for other outputs than this
    # run's: removed before anything of this run is written (embedded audit: a re-run into the
    # same --out that was interrupted left its new book beside the old run's firm_pnl.json).
    (out / "firm_pnl.json").unlink(missing_ok=True)
    if args.book is not None and (out / "book").is_dir():
        # An earlier synthetic night's book/ is no input of this one (contract audit,
        # 2026-12-08: it stayed beside a --book night's outputs) — unless it is this night's.
        given = args.book.resolve()
        if given != (out / "book").resolve() and (out / "book").resolve() not in given.parents:
            shutil.rmtree(out / "book")
    if args.book is None:  # keep the synthetic input next to its outputs
        write_book(out / "book", book, fmt=args.format)
        write_market(out / "book" / "market.json", market)
    progress = None if args.quiet else sys.stderr
    if settings.embedded:
        print(
            f"taxview: no broker configured: embedded fleet ({args.workers} worker(s) × "
            f"{args.concurrency} processes)",
            file=sys.stderr,
        )
        try:
            with EmbeddedFleet(
                settings,
                workers=args.workers,
                concurrency=args.concurrency,
                log_dir=out,
                server=args.embedded_server,
            ) as fleet:
                print(f"taxview: embedded {fleet.redis.kind} at {fleet.redis.url}", file=sys.stderr)
                summary, stats = _run(
                    settings=fleet.settings,
                    book=book,
                    market=market,
                    out=out,
                    args=args,
                    progress=progress,
                    embedded=True,
                    check=fleet.check,
                )
        except IncompleteNight as exc:
            # The embedded store goes with the fleet: `taxview sweep` has nothing to sweep
            # (contracts audit: the advice could not be followed).
            head = exc.reason.partition("; if the workers are still solving")[0]
            raise InputError(
                f"{head}; the embedded fleet and its store are gone: run the night again (a "
                "longer --timeout, or none), or pass --allow-partial",
                field=exc.field,
            ) from exc
    else:
        summary, stats = _run(
            settings=settings, book=book, market=market, out=out, args=args, progress=progress
        )
    totals = summary.totals
    print(
        f"night {summary.as_of}: {summary.received}/{summary.expected} accounts in "
        f"{stats.wall_s:.1f}s ({stats.accounts_per_s:.1f}/s); realized ST "
        f"{totals['st_net_usd']} LT {totals['lt_net_usd']}, harvested "
        f"{totals['harvested_loss_usd']}, tax saved {totals['tax_saved_usd']}; "
        f"rejected {totals['rejected']}, failed {totals['failed']}"
    )
    print(
        f"outputs: {out}/ (firm_pnl.json, pnl_by_account.csv, pnl_by_household.csv, "
        "pnl_by_strategy.csv, outcomes.jsonl, trades.csv, realized.csv, not_ok.csv, "
        "wash_amendments.csv, next_book/)"
    )
    _note_book_washes(summary)
    return 0 if summary.complete else 1


def _note_book_washes(summary: NightSummary) -> None:
    """Say on stderr when reading the book washed loss sales of earlier nights."""
    if summary.book_washes:
        print(
            f"taxview: reading the book washed {summary.book_washes} loss sale slice(s) of "
            "earlier nights (purchases in the book within 30 days before or after them): "
            "listed in wash_amendments.csv; their Form 8949 lines need code W (a row of 0.00 "
            "is a sale whose loss the book cannot size: check that sale's cost)",
            file=sys.stderr,
        )


def _run(
    *,
    settings: Settings,
    book: Book,
    market: MarketSnapshot,
    out: Path,
    args: argparse.Namespace,
    progress: Any,
    embedded: bool = False,
    check: Callable[[], None] | None = None,
) -> tuple[Any, Any]:
    client = reader.connect(settings.redis_url)
    if not embedded:  # the embedded store never evicts
        reader.check_server(settings.redis_url)
        check_broker(settings)
    app = client_app(settings)
    # A Redis broker is asked which tasks it holds, so a message it lost is sent again within
    # seconds (producer.nightly.LOST_PROBE_S) rather than after the stall.
    broker = redis.Redis.from_url(settings.broker_url) if settings.broker_is_redis else None
    try:
        stats = run_night(
            client=client,
            app=app,
            book=book,
            market=market,
            ttl_s=settings.results_ttl_s,
            window=args.window,
            stall_s=max(60.0, settings.visibility_timeout_s * 1.5),
            progress_out=progress,
            timeout_s=args.timeout,
            check=check,
            check_store=False,  # checked above, with short timeouts
            held=None
            if broker is None
            else functools.partial(broker_task_ids, broker, settings.queue),
        )
        summary = finish_night(
            client,
            market.as_of,
            out,
            book=book,
            allow_partial=args.allow_partial,
            book_format=args.format,
        )
    finally:
        app.close()
        client.close()
        if broker is not None:
            broker.close()
    return summary, stats


def cmd_enqueue(args: argparse.Namespace) -> int:
    """``taxview enqueue``."""
    settings = _settings(args)
    _require_fleet(settings, "enqueue")
    book, market = load_inputs(args)
    reader.check_server(settings.redis_url)
    check_broker(settings)
    client = reader.connect(settings.redis_url)
    app = client_app(settings)
    try:
        expected, sent = enqueue_night(
            client,
            app,
            book,
            market,
            ttl_s=settings.results_ttl_s,
            skip_done=not args.resend,
        )
    finally:
        app.close()
    print(json.dumps({"as_of": market.as_of.isoformat(), "expected": expected, "sent": sent}))
    return 0


def _check_night_out(args: argparse.Namespace, out: Path) -> None:
    """:func:`~producer.aggregate.check_out_dir` with what ``nightly`` writes besides the
    reports: the embedded workers' logs and a synthetic night's ``book/``."""
    logs = [f"worker{i}.log" for i in range(args.workers)]  # embedded fleets only; harmless
    check_out_dir(out, extra_files=logs, extra_dirs=("book",) if args.book is None else ())
    check_book_apart(out, args.book)


def _make_out(out: Path) -> None:
    """Create ``--out`` (and its parents), or say in one line why it cannot be."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create --out {out}: {exc.strerror}", field="--out") from exc


def cmd_aggregate(args: argparse.Namespace) -> int:
    """``taxview aggregate``."""
    settings = _settings(args)
    _require_fleet(settings, "aggregate")
    # Checked, not created: a refused run leaves no folder behind (contract audit, 2026-12-08).
    check_out_dir(args.out)
    check_book_apart(args.out, args.book)
    client = reader.connect(settings.redis_url)
    book = read_book(args.book) if args.book else None
    summary = finish_night(
        client,
        args.date,
        args.out,
        book=book,
        allow_partial=args.allow_partial,
        book_format=args.format,
    )
    print(
        json.dumps(
            {
                "as_of": summary.as_of.isoformat(),
                "complete": summary.complete,
                "expected": summary.expected,
                "received": summary.received,
                "out": str(args.out),
            }
        )
    )
    if not summary.complete:
        # The JSON says so; a person reading the terminal is told too (fleet fault audit).
        print(
            f"taxview: night {summary.as_of} published PARTIAL (--allow-partial): "
            f"{summary.expected - summary.received} account(s) missing, listed in not_ok.csv",
            file=sys.stderr,
        )
    _note_book_washes(summary)
    return 0 if summary.complete else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    """``taxview sweep``: re-enqueue accounts without an outcome."""
    settings = _settings(args)
    _require_fleet(settings, "sweep")
    book, market = load_inputs(args)
    # The quick store check first, as enqueue's (fleet fault audit: a sweep against a store that
    # was not there took 41 s to say so, enqueue 4 s).
    reader.check_server(settings.redis_url)
    client = reader.connect(settings.redis_url)
    if client.exists(keys.market_key(market.as_of)) == 0:
        raise InputError(
            f"nothing was enqueued for {market.as_of}: run `taxview enqueue` first",
            field="--date",
        )
    if client.exists(keys.manifest_key(market.as_of)) == 0:
        # The producer stopped between the snapshot and the manifest: without the manifest
        # there is no book to hold this one to, and a sweep of another book's accounts would
        # be taken as the night's (fleet fault audit: a sweep with another book's cash, then
        # enqueue sent nothing and aggregate published the mix as complete).
        raise InputError(
            f"night {market.as_of} has a market snapshot but no manifest (the producer stopped "
            "before writing it): run `taxview enqueue` again, which writes it and sends every "
            "account without an outcome",
            field="--date",
        )
    chains = plan_night(book, market.as_of, market=market)
    check_same_book(client, book, market, chains)
    app = client_app(settings)
    try:
        todo = pending_chains(client, market.as_of, chains)
        sent = send_chains(app, client, todo, book.ledgers, ttl_s=settings.results_ttl_s)
    finally:
        app.close()
    print(json.dumps({"as_of": market.as_of.isoformat(), "resent": sent}))
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    """``taxview preflight``: the store and the broker are reachable and never evict."""
    settings = _settings(args)
    _require_fleet(settings, "preflight")
    reader.check_server(settings.redis_url)
    check_broker(settings)
    print("preflight ok: results store and broker reachable, neither evicts keys")
    return 0


def cmd_bench_fleet(args: argparse.Namespace) -> int:
    """``taxview bench fleet``: one JSON line."""
    from producer.fleet_bench import bench_fleet

    check_fleet_size(1, args.workers)
    result = bench_fleet(
        accounts=args.accounts,
        names=args.names,
        workers=args.workers,
        seed=args.seed,
        inline_sample=args.inline_sample,
        settings=Settings.from_env(os.environ),
    )
    # compact, as the issue writes the line: {"accounts":…,"names":…,…}
    print(
        json.dumps(
            contract_keys(result, BENCH_FLEET_KEYS, details=args.details), separators=(",", ":")
        )
    )
    return 0


#: The keys of ``taxview bench fleet``'s line, in order (issue contract).
BENCH_FLEET_KEYS = (
    "accounts",
    "names",
    "workers",
    "accounts_per_s",
    "overhead_vs_inline",
    "redis_peak_mb",
)
