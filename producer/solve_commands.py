"""``taxview rebalance``, ``taxview example-request``, ``taxview schema``, ``taxview bench solve``.

Exit codes of ``taxview rebalance``: 0 the account was solved (status ok, relaxed or held),
1 the outcome is ``rejected`` (bad input, the JSON names the field) or ``failed`` (every solver
attempt failed), 2 the request file cannot be read or is not a request at all.  The outcome JSON
is printed in every case but the last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from producer.bench_out import contract_keys
from producer.cli import (
    example_size,
    iso_date,
    non_negative_int,
    out_path,
    positive_int,
    universe_size,
)

REBALANCE_EPILOG = (
    "Prints the outcome JSON on stdout. Exit codes: 0 solved (status ok, relaxed or held); "
    "1 rejected (bad input: the outcome names the account and field) or failed (every solver "
    "attempt failed), with the reason on one line of stderr too; 2 the file is unreadable or "
    "not JSON."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``rebalance``, ``example-request`` and ``schema`` to the ``taxview`` parser."""
    p = sub.add_parser(
        "rebalance",
        help="solve one account from a self-contained request and print the outcome JSON",
        description="Solve one account from a self-contained request (account, household "
        "ledger state, market) and print the outcome JSON.",
        epilog=REBALANCE_EPILOG,
    )
    p.add_argument("request", metavar="REQUEST.json", help="the request file ('-' for stdin)")
    p.add_argument("--indent", action="store_true", help="pretty-print the outcome")
    p.set_defaults(func=cmd_rebalance)

    e = sub.add_parser(
        "example-request",
        help="write a realistic self-contained rebalance request",
        description="Generate a realistic request: a taxable account funded 1-3 years ago with "
        "lots at several dates, a household IRA, recent trades so the wash-sale rules bite, the "
        "day's synthetic market and its true risk model.",
    )
    e.add_argument("--names", type=example_size, default=100, help="universe size (default 100)")
    e.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    e.add_argument(
        "--strategy",
        choices=("direct-index", "long-short", "market-neutral"),
        default="direct-index",
        help="the account's strategy (default direct-index)",
    )
    e.add_argument(
        "--as-of",
        type=iso_date,
        default=None,
        help="YYYY-MM-DD; a weekend or holiday takes the NYSE session before it (default "
        "2026-06-30)",
    )
    e.add_argument(
        "--out", type=out_path, default=None, help="output file (default, or '-': stdout)"
    )
    e.set_defaults(func=cmd_example_request)

    s = sub.add_parser(
        "schema",
        help="print the JSON Schemas of the request, the outcome and every wire message",
        description="Print the JSON Schemas (msgspec-generated) of RebalanceRequest, the "
        "Outcome union (solved | rejected | failed) and every message of shared.messages, "
        "with shared $defs.",
    )
    s.set_defaults(func=cmd_schema)


def register_bench(bench_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bench solve``."""
    b = bench_sub.add_parser(
        "solve",
        help="time whole rebalances of M accounts on one N-name universe",
        description="Run M different accounts on one universe in this process and print one "
        'JSON line: {"names","lots","p50_ms","p95_ms","solver_p50_ms","peak_rss_mb"} '
        "(--details: CPU times, ratio, statuses and more after them).  Times are whole "
        "rebalances (validation, pre-pass, solve, trade list, wash check).",
    )
    b.add_argument(
        "--details",
        action="store_true",
        help="also print CPU percentiles, the ratio to Clarabel, trades and statuses",
    )
    b.add_argument("--names", type=universe_size, default=500, help="universe size (default 500)")
    b.add_argument(
        "--accounts",
        type=positive_int,
        default=20,
        help="different accounts solved on the one universe (default 20)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the universe and book (default 0)")
    b.add_argument(
        "--warmup", type=non_negative_int, default=1, help="untimed rebalances first (default 1)"
    )
    b.add_argument(
        "--fresh",
        action="store_true",
        help="freshly transferred-in books (every drawn loss kept; the first rebalance harvests "
        "hundreds of lots) instead of steady-state books",
    )
    b.set_defaults(func=cmd_bench_solve)


def _write_stdout(data: bytes) -> None:
    """Write to stdout; a reader that stops early (``| head``) is not an error."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's documented idiom: point stdout at devnull so the exit flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _read_request_bytes(path: str) -> bytes:
    from shared.errors import InputError

    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", field="REQUEST.json") from exc


def cmd_rebalance(args: argparse.Namespace) -> int:
    """Solve one request file; see :data:`REBALANCE_EPILOG` for the exit codes."""
    import msgspec

    from shared.errors import InputError, OptimizationError
    from shared.messages import (
        Failed,
        Outcome,
        RebalanceRequest,
        Rejected,
        decode_json,
        duplicate_key,
        json_error_hint,
        unknown_field,
    )
    from shared.rebalance import rebalance

    raw = _read_request_bytes(args.request).removeprefix(b"\xef\xbb\xbf")  # a BOM, as CSVs
    try:
        doc = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # Invalid UTF-8 and nesting deeper than the stack are not msgspec.DecodeError.
        raise InputError(
            f"not valid JSON: {json_error_hint(raw, exc)}", field="REQUEST.json"
        ) from exc
    if not isinstance(doc, dict):
        raise InputError("a request is a JSON object", field="REQUEST.json")
    twice = duplicate_key(raw)
    if twice is not None:
        raise InputError(
            f"key {twice!r} appears twice in one object (JSON keeps only one of them: give it "
            "once)",
            field="REQUEST.json",
        )
    acct = doc.get("account") if isinstance(doc.get("account"), dict) else {}
    account_id = str(acct.get("account_id", "")) if acct else ""
    as_of = _as_of(doc.get("as_of"))
    household_id = str(acct.get("household_id", "")) if acct else ""
    outcome: Outcome
    try:
        unknown = unknown_field(doc, RebalanceRequest)
        if unknown is not None:
            raise InputError(unknown[1], account=account_id or None, field=unknown[0])
        # strict: a number written as text is refused, as the published schema says (money
        # is Decimal and travels as text either way).
        request = decode_json(raw, RebalanceRequest, account=account_id or None, strict=True)
        outcome = rebalance(request)
    except InputError as exc:
        outcome = Rejected(
            account_id=account_id,
            household_id=household_id,
            as_of=as_of,
            field=exc.field or "",
            reason=exc.reason,
        )
    except OptimizationError as exc:
        outcome = Failed(
            account_id=account_id,
            household_id=household_id,
            as_of=as_of,
            reason=str(exc),
            attempts=1,
        )
    out = msgspec.json.encode(outcome)
    if args.indent:
        out = msgspec.json.format(out, indent=2)
    _write_stdout(out + b"\n")
    if isinstance(outcome, Rejected):
        # The JSON on stdout is the outcome; the reason also goes to stderr on one line, so a
        # caller who keeps only the exit status and stderr sees why (DESIGN.md §5).
        where = ", ".join(
            x
            for x in (
                f"account {outcome.account_id}" if outcome.account_id else "",
                f"field {outcome.field}" if outcome.field else "",
            )
            if x
        )
        _one_line(f"taxview rebalance: rejected: {where + ': ' if where else ''}{outcome.reason}")
        return 1
    if isinstance(outcome, Failed):
        # The solver's own message may already name the account (SolverFailed's text).
        reason = outcome.reason.removeprefix(f"account {outcome.account_id}: ")
        _one_line(f"taxview rebalance: failed: account {outcome.account_id}: {reason}")
        return 1
    return 0


def _one_line(text: str) -> None:
    print(" ".join(text.split()), file=sys.stderr)


def _as_of(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        return dt.date(1970, 1, 1)


def cmd_example_request(args: argparse.Namespace) -> int:
    """Write an example request (stdout or ``--out``)."""
    import msgspec

    from shared.errors import InputError
    from shared.examples import example_request

    try:
        request = example_request(
            names=args.names, seed=args.seed, as_of=args.as_of, strategy=args.strategy
        )
    except InputError as exc:
        if exc.field not in {"start", "end", "as_of"}:
            raise
        # The example's market history starts years before --as-of (fuzz audit: the error
        # named `start`, a date the user never gave); a date past the calendar's end is not
        # "too early" (contracts audit).
        from shared.calendar import CALENDAR_END

        when = "too late" if args.as_of > CALENDAR_END else "too early"
        raise InputError(
            f"--as-of {args.as_of} is {when} for an example's market history: {exc.reason}",
            field="--as-of",
        ) from exc
    data = msgspec.json.format(msgspec.json.encode(request), indent=1) + b"\n"
    if args.out is None or str(args.out) == "-":  # '-' is stdout, as `rebalance -` reads stdin
        _write_stdout(data)
    else:
        try:
            args.out.write_bytes(data)
        except OSError as exc:
            raise InputError(f"cannot write {args.out}: {exc.strerror}", field="--out") from exc
    return 0


def schemas() -> dict[str, Any]:
    """JSON Schemas of the request, the outcome union and every wire message, sharing ``$defs``.

    ``request`` and ``outcome`` are the two documents ``taxview rebalance`` reads and writes;
    ``messages`` references every Struct of :mod:`shared.messages` by name.
    """
    import msgspec

    from shared import messages
    from shared.messages import Outcome, RebalanceRequest

    structs = sorted(
        (
            obj
            for obj in vars(messages).values()
            if isinstance(obj, type)
            and issubclass(obj, msgspec.Struct)
            and obj.__module__ == messages.__name__
            and not obj.__name__.startswith("_")
        ),
        key=lambda t: t.__name__,
    )
    (request_schema, outcome_schema, *each), defs = msgspec.json.schema_components(
        [RebalanceRequest, Outcome, *structs], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "taxview messages",
        "request": request_schema,
        "outcome": outcome_schema,
        "messages": {t.__name__: ref for t, ref in zip(structs, each, strict=True)},
        "$defs": defs,
    }


def cmd_schema(args: argparse.Namespace) -> int:
    """Print :func:`schemas` as JSON."""
    _write_stdout(json.dumps(schemas(), indent=2, sort_keys=True).encode() + b"\n")
    return 0


def bench_solve(
    *, names: int, accounts: int, seed: int = 0, warmup: int = 1, fresh: bool = False
) -> dict[str, Any]:
    """Time whole rebalances of ``accounts`` synthetic accounts on one ``names``-name universe.

    Wall times (``p50_ms``, ``p95_ms``) are what a worker sees; process CPU times
    (``cpu_p50_ms``, ``cpu_p95_ms``) are robust to other processes on a shared machine (the
    rebalance is single-threaded when BLAS threads are pinned to 1, as in the worker image).

    Every account is a different book (:func:`shared.examples.synthetic_book`) on the same
    market snapshot object, as a worker sees a night: the market's validation and array
    conversion are cached per snapshot, everything else (the account's validation, ledger
    restrictions, pre-pass, solve, rounding, trade list, wash check, outcome) is timed.

    Returns:
        ``names, lots, p50_ms, p95_ms, solver_p50_ms, peak_rss_mb`` then extras.
    """
    import resource
    import time

    import numpy as np

    from shared.examples import DEFAULT_AS_OF, synthetic_book
    from shared.messages import RebalanceRequest
    from shared.rebalance import rebalance

    market, book = synthetic_book(
        accounts=accounts, names=names, seed=seed, as_of=DEFAULT_AS_OF, steady_state=not fresh
    )
    requests = [
        RebalanceRequest(as_of=market.as_of, account=spec, ledger=state, market=market)
        for spec, state in book
    ]
    for request in requests[: max(0, warmup)]:
        rebalance(request)
    total_ms: list[float] = []
    solver_ms: list[float] = []
    setup_ms: list[float] = []
    optimizer_ms: list[float] = []
    lots: list[int] = []
    trades: list[int] = []
    statuses: dict[str, int] = {}
    cpu_ms: list[float] = []
    for request in requests:
        c0 = time.process_time()
        t0 = time.perf_counter()
        outcome = rebalance(request)
        total_ms.append((time.perf_counter() - t0) * 1e3)
        cpu_ms.append((time.process_time() - c0) * 1e3)
        solver_ms.append(outcome.solver.solver_ms)
        setup_ms.append(outcome.solver.setup_ms)
        optimizer_ms.append(outcome.solver.optimizer_ms)
        aid = request.account.account_id
        lots.append(sum(1 for lot in request.ledger.lots if lot.account == aid))
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
        trades.append(len(outcome.trades))
    total = np.asarray(total_ms)
    solver = np.asarray(solver_ms)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "names": names,
        "lots": round(float(np.mean(lots))),
        "p50_ms": round(float(np.percentile(total, 50)), 2),
        "p95_ms": round(float(np.percentile(total, 95)), 2),
        "solver_p50_ms": round(float(np.percentile(solver, 50)), 2),
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "accounts": accounts,
        "cpu_p50_ms": round(float(np.percentile(cpu_ms, 50)), 2),
        "cpu_p95_ms": round(float(np.percentile(cpu_ms, 95)), 2),
        "setup_p50_ms": round(float(np.percentile(setup_ms, 50)), 2),
        "optimizer_p50_ms": round(float(np.percentile(optimizer_ms, 50)), 2),
        "usecase_p50_ms": round(float(np.percentile(total - np.asarray(optimizer_ms), 50)), 2),
        "ratio_p50": round(
            float(np.percentile(total, 50) / max(np.percentile(solver, 50), 1e-9)), 3
        ),
        "trades_p50": float(np.percentile(trades, 50)),
        "book": "fresh" if fresh else "steady-state",
        "statuses": statuses,
    }


def cmd_bench_solve(args: argparse.Namespace) -> int:
    """Print :func:`bench_solve` as one JSON line."""
    result = bench_solve(
        names=args.names,
        accounts=args.accounts,
        seed=args.seed,
        warmup=args.warmup,
        fresh=args.fresh,
    )
    # compact, as the issue writes the line: {"names":N,"lots":L,…}
    print(
        json.dumps(
            contract_keys(result, BENCH_SOLVE_KEYS, details=args.details), separators=(",", ":")
        )
    )
    return 0


#: The keys of ``taxview bench solve``'s line, in order (issue contract); ``--details`` adds
#: the rest of :func:`bench_solve`'s dict after them.
BENCH_SOLVE_KEYS = ("names", "lots", "p50_ms", "p95_ms", "solver_p50_ms", "peak_rss_mb")
