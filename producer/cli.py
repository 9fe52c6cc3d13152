"""The ``taxview`` command: one argparse program whose subcommands live in their own modules.

Each module in :data:`COMMAND_MODULES` exposes ``register(sub)`` (and optionally
``register_bench(bench_sub)`` for ``taxview bench …``); each subcommand sets ``func(args) -> int``.
User errors (:class:`shared.errors.TaxviewError`) print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import math
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from shared.errors import TaxviewError


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the bad flag named), exit 2.

    Subparsers inherit the class, so every ``taxview`` subcommand behaves the same.
    """

    def error(self, message: str) -> NoReturn:
        """Print ``PROG: error: MESSAGE (see PROG --help)`` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class SubcommandParser(OneLineParser):
    """The parser of a subcommand: an argument it does not know is its own usage error.

    argparse (3.11) hands a subcommand's unrecognised arguments back to the top-level parser,
    which then reports ``taxview: error: unrecognized arguments`` without naming the
    subcommand; here the subcommand reports them (``taxview rebalance: error: …``), like its
    other usage errors.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, refusing any argument left over."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def iso_date(text: str) -> dt.date:
    """argparse type: a ``YYYY-MM-DD`` date (Python 3.11 also reads ``20210301`` and week
    dates: the help says YYYY-MM-DD, so only that is taken)."""
    try:
        if not _ISO_DAY.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def out_path(text: str) -> Path:
    """argparse type: an output path; an empty one is refused (``Path("")`` is the current
    directory: ``--out ''`` wrote a whole night there, settings audit)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty: name the output directory")
    return Path(text)


def _whole_number(minimum: int, rule: str, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number in ``minimum..maximum`` (``rule`` says so in the error)."""

    def parse(text: str) -> int:
        try:
            if not text.isascii():  # int() reads "１２"; the settings from the environment do not
                raise ValueError(text)
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{value} {rule}")
        return value

    return parse


#: argparse type: a whole number ≥ 1.
positive_int = _whole_number(1, "must be > 0")
#: argparse type: a whole number ≥ 0.
non_negative_int = _whole_number(0, "must be ≥ 0")
#: argparse type: the size of a synthetic universe, as ``taxview-runner --universe
#: synthetic:N`` takes it (contracts audit: ``--names 100000000`` was a numpy memory-error
#: traceback or a run that never ended; ``--names 1`` named an internal field).
universe_size = _whole_number(2, "is not between 2 and 10,000 names", maximum=10_000)
#: An example request needs ten names at least (``shared.examples``).
example_size = _whole_number(10, "is not between 10 and 10,000 names", maximum=10_000)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return value


#: Modules that contribute subcommands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "producer.realized",
    "producer.fleet_commands",
    "producer.solve_commands",
)


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from every command module."""
    parser = OneLineParser(
        prog="taxview",
        description="Tax-aware direct indexing: ledger, rebalance solve, nightly fleet.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=SubcommandParser)
    sub.required = True
    bench = sub.add_parser("bench", help="benchmarks whose numbers go into the README")
    bench_sub = bench.add_subparsers(
        dest="bench_command", metavar="BENCH", parser_class=SubcommandParser
    )
    bench_sub.required = True
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub)
        if hasattr(module, "register_bench"):
            module.register_bench(bench_sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (systemd, ``timeout``, Kubernetes), torn down as Ctrl-C is."""


def _terminated(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taxview`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM stops a command as Ctrl-C does: an embedded night tears its fleet down (embedded
    # audit: it died at once, its worker orphaned and its temporary directory left behind).
    try:
        previous: Any = signal.signal(signal.SIGTERM, _terminated)
    except ValueError:  # not the main thread (an embedding program's): its own handling stands
        previous = None
    try:
        rc: int = args.func(args)
    except TaxviewError as exc:
        print(f"taxview: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("taxview: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("taxview: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return rc


if __name__ == "__main__":
    sys.exit(main())
