"""``taxview realized``: replay a household's trades and write the Form 8949-style report.

::

    taxview realized --transactions TX.csv --sales-out SALES.csv --lots-out LOTS.csv
                     [--lot-method fifo|hifo|specific] [--identical GOOG=GOOGL;SPY=VOO=IVV]
    taxview realized --example            # the bundled household, into ./out/

The rules (IRC §1091, §1222, §1223, §1233; IRS Pub. 550) live in :mod:`shared.ledger`; this
module parses rows (naming the row id and the field of the first bad one), writes both CSVs
atomically — to temporary files renamed into place only after the whole ledger applied — and
prints a summary by tax year.  See ``docs/ledger.md``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from shared.errors import InputError, LedgerError
from shared.ledger import Ledger, SaleSlice, cents
from shared.messages import Lot, Transaction
from shared.types import AccountType, LotMethod, Side

#: Input columns, in contract order (DESIGN.md §5).
INPUT_COLUMNS: tuple[str, ...] = (
    "id",
    "date",
    "account",
    "account_type",
    "symbol",
    "side",
    "quantity",
    "price",
    "lot_id",
)

#: SALES.csv header, exactly (one row per lot slice sold from a taxable account).
SALES_COLUMNS: tuple[str, ...] = (
    "txn",
    "date_sold",
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "date_acquired",
    "term",
    "proceeds",
    "cost_basis",
    "adjustment_code",
    "disallowed_loss",
    "permanently_disallowed",
    "gain",
)

#: LOTS.csv header, exactly (open taxable lots).
LOTS_COLUMNS: tuple[str, ...] = (
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "trade_date",
    "acquired",
    "cost_basis",
    "wash_adjustment",
)

#: Default outputs of ``--example`` when no paths are given.
DEFAULT_SALES_OUT = Path("out/sales.csv")
DEFAULT_LOTS_OUT = Path("out/lots.csv")

#: Substantially identical groups the bundled example declares (its GOOG/GOOGL wash).
EXAMPLE_IDENTICAL = "GOOG=GOOGL"

#: A quantity or price: optional sign, digits, optional fraction, optional exponent (pandas and
#: spreadsheets write 0.00001 as ``1e-05``); no ``_`` separators, no NaN or Infinity.
_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_SIDES: dict[str, Side] = {"buy": "buy", "sell": "sell", "short": "short", "cover": "cover"}
_ACCOUNT_TYPES: dict[str, AccountType] = {"taxable": "taxable", "ira": "ira", "roth": "roth"}


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def parse_identical(text: str | None) -> list[list[str]]:
    """Parse ``GOOG=GOOGL;SPY=VOO=IVV`` into groups of substantially identical symbols.

    Args:
        text: the ``--identical`` value (``None`` or blank: no groups).

    Returns:
        The groups, each with at least two symbols.

    Raises:
        InputError: a group with fewer than two symbols (names the group).
    """
    if not text or not text.strip():
        return []
    groups: list[list[str]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        members = [s.strip().upper() for s in part.split("=")]
        if any(ch in m for m in members for ch in ", \t\r\n"):
            # "SPY=VOO,IVV" would silently make "VOO,IVV" one symbol and miss the wash sale.
            raise InputError(
                f"group {part.strip()!r} has a symbol with a comma or a space; separate groups "
                "with ';', e.g. GOOG=GOOGL;SPY=VOO=IVV",
                field="--identical",
            )
        if len(set(members)) < 2 or any(not s for s in members):
            raise InputError(
                f"group {part.strip()!r} must name two or more different symbols joined by '=', "
                "e.g. GOOG=GOOGL;SPY=VOO=IVV",
                field="--identical",
            )
        groups.append(members)
    return groups


def _decimal(raw: str, *, row: str, field: str) -> Decimal:
    # Decimal numbers only (docs/ledger.md): Decimal() would also read "1_000", "NaN" and
    # "Infinity", none of which a trade file should carry.
    text = raw.strip()
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise LedgerError(f"{raw!r} is not a decimal number", row=row, field=field)
    return Decimal(text)


def parse_row(row: Mapping[str | None, Any], *, line: int) -> Transaction:
    """One CSV row → a :class:`~shared.messages.Transaction`, checked field by field.

    Args:
        row: the row as read by :class:`csv.DictReader`.
        line: its line number in the file (names the row when ``id`` is empty).

    Returns:
        The transaction.

    Raises:
        LedgerError: the first bad field, naming the row id and the column.
    """
    values = {k: str(row.get(k) or "").strip() for k in INPUT_COLUMNS}
    rid = values["id"]
    if not rid:
        raise LedgerError("id is empty", row=f"at line {line}", field="id")
    if row.get(None):
        raise LedgerError("the row has more fields than the header", row=rid, field="id")
    try:
        if not _ISO_DATE.fullmatch(values["date"]):  # not 2024-W01-1 or 20240101
            raise ValueError(values["date"])
        date = dt.date.fromisoformat(values["date"])
    except ValueError as exc:
        raise LedgerError(
            f"{values['date']!r} is not an ISO date (YYYY-MM-DD)", row=rid, field="date"
        ) from exc
    if not values["account"]:
        raise LedgerError("account is empty", row=rid, field="account")
    account_type = _ACCOUNT_TYPES.get((values["account_type"] or "taxable").lower())
    if account_type is None:
        raise LedgerError(
            f"unknown account type {values['account_type']!r}; use taxable, ira or roth",
            row=rid,
            field="account_type",
        )
    if not values["symbol"]:
        raise LedgerError("symbol is empty", row=rid, field="symbol")
    side = _SIDES.get(values["side"].lower())
    if side is None:
        raise LedgerError(
            f"unknown side {values['side']!r}; use buy, sell, short or cover",
            row=rid,
            field="side",
        )
    quantity = _decimal(values["quantity"], row=rid, field="quantity")
    if quantity <= 0:
        raise LedgerError(
            f"quantity must be a positive number of shares, got {values['quantity']}",
            row=rid,
            field="quantity",
        )
    price = _decimal(values["price"], row=rid, field="price")
    if price < 0:
        raise LedgerError(f"price must be ≥ 0, got {values['price']}", row=rid, field="price")
    return Transaction(
        id=rid,
        date=date,
        account=values["account"],
        account_type=account_type,
        # Tickers are case-insensitive identifiers: "xom" and "XOM" are one security, so a wash
        # sale (IRC §1091) cannot hide behind spelling.  Reported in upper case.
        symbol=values["symbol"].upper(),
        side=side,
        quantity=quantity,
        price=price,
        lot_id=values["lot_id"],
    )


def read_transactions(stream: TextIO) -> Iterator[Transaction]:
    """Yield the transactions of a CSV stream in file order, checking the header first.

    Raises:
        LedgerError: a bad row (row id and field), or a duplicate id.
        InputError: a missing column.
    """
    # strict: a stray quote is an error, not a field that swallows the rows after it
    reader = csv.DictReader(stream, strict=True)
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:
        raise InputError(f"the header is not valid CSV: {exc}", field="header") from exc
    missing = [c for c in INPUT_COLUMNS if c not in header]
    if missing:
        raise InputError(
            f"missing column(s) {', '.join(missing)}; expected {','.join(INPUT_COLUMNS)}",
            field="header",
        )
    twice = sorted({c for c in header if c and header.count(c) > 1})
    if twice:  # csv.DictReader would keep the last one silently
        raise InputError(f"column(s) {', '.join(twice)} appear more than once", field="header")
    reader.fieldnames = header
    seen: set[str] = set()
    rows = iter(reader)
    while True:
        start = reader.line_num + 1  # the line the next row starts on
        try:
            raw = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:
            raise LedgerError(
                f"not valid CSV ({exc}): a quote opened and never closed?",
                row=f"at line {start}",
                field="csv",
            ) from exc
        if not any((v or "").strip() for k, v in raw.items() if k is not None):
            continue  # blank line
        short = [k for k, v in raw.items() if k is not None and v is None]
        if short:  # csv.DictReader fills missing trailing cells with None, silently
            rid = str(raw.get("id") or "").strip() or f"at line {reader.line_num}"
            raise LedgerError(
                f"the row has {len(header) - len(short)} fields, the header {len(header)}: "
                f"{', '.join(short)} missing (an empty cell still needs its comma)",
                row=rid,
                field=short[0],
            )
        _one_line_fields(raw, line=reader.line_num)
        txn = parse_row(raw, line=reader.line_num)
        if txn.id in seen:
            raise LedgerError(f"id {txn.id} appears twice", row=txn.id, field="id")
        seen.add(txn.id)
        yield txn


def _one_line_fields(raw: Mapping[str | None, Any], *, line: int) -> None:
    """A quoted field may not span lines: a stray quote would otherwise swallow the rows after
    it into one field, and the trades in them would silently go missing (ledger audit)."""
    for key, value in raw.items():
        if key is not None and isinstance(value, str) and ("\n" in value or "\r" in value):
            rid = str(raw.get("id") or "").strip() or f"at line {line}"
            raise LedgerError(
                f"{key} spans several lines (a quote opened and never closed?)",
                row=rid if "\n" not in rid and "\r" not in rid else f"at line {line}",
                field=key.strip(),
            )


def replay(stream: TextIO, *, lot_method: LotMethod, identical: list[list[str]]) -> Ledger:
    """Apply every row of ``stream`` to a fresh household ledger, stopping at the first bad one.

    Raises:
        LedgerError: naming the row id and the field.
    """
    ledger = Ledger(lot_method=lot_method, identical=identical)
    for txn in read_transactions(stream):
        ledger.apply(txn)
    return ledger


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _money(x: Decimal) -> str:
    return f"{cents(x):.2f}"


def _shares(q: Decimal) -> str:
    return format(q.normalize(), "f") if q != 0 else "0"


def sales_rows(sales: Sequence[SaleSlice]) -> list[list[str]]:
    """SALES.csv rows (taxable slices only)."""
    return [
        [
            s.txn,
            s.date_sold.isoformat(),
            s.account,
            s.symbol,
            s.lot_id,
            _shares(s.quantity),
            s.date_acquired.isoformat(),
            s.term,
            _money(s.proceeds),
            _money(s.cost_basis),
            s.adjustment_code,
            _money(s.disallowed_loss),
            _money(s.permanently_disallowed),
            _money(s.gain),
        ]
        for s in sales
        if s.account_type == "taxable"
    ]


def lots_rows(lots: Sequence[Lot]) -> list[list[str]]:
    """LOTS.csv rows: open taxable lots; a short lot shows a negative quantity and its
    proceeds (less washed losses) as ``cost_basis``."""
    return [
        [
            lot.account,
            lot.symbol,
            lot.lot_id,
            _shares(-lot.quantity if lot.short else lot.quantity),
            lot.trade_date.isoformat(),
            lot.acquired.isoformat(),
            _money(lot.cost_basis_usd),
            _money(lot.wash_adjustment_usd),
        ]
        for lot in lots
        if lot.account_type == "taxable"
    ]


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _check_destinations(
    outputs: Sequence[tuple[Path, str]], *, source: Path | None
) -> list[tuple[Path, str]]:
    """Refuse destinations that cannot all be replaced, before anything is written.

    A symbolic link is written through: its target file is replaced and the link stays
    (ledger audit: the rename replaced the link itself and left its target unchanged).

    Returns:
        The outputs with each destination resolved to the file that will be replaced.

    Raises:
        InputError: a destination is a directory (:func:`_out_path` refuses one written with a
            trailing ``/``), not a regular file (a pipe or a device: the rename replaced
            ``/dev/full`` itself), two outputs share a path, or an output would overwrite the
            input (names the path).
    """
    seen: set[Path] = set()
    src = source.resolve() if source is not None else None
    out: list[tuple[Path, str]] = []
    for path, text in outputs:
        resolved = path.resolve()
        if path.is_dir():
            raise InputError(f"{path} is a directory; give a file path", field=str(path))
        if resolved.exists() and not resolved.is_file():
            raise InputError(
                f"{path} is not a regular file (a pipe, socket or device); give a file path",
                field=str(path),
            )
        if resolved in seen:
            raise InputError(f"{path} is given for two outputs", field=str(path))
        if src is not None and resolved == src:
            raise InputError(f"{path} would overwrite the input", field=str(path))
        seen.add(resolved)
        out.append((resolved if path.is_symlink() else path, text))
    return out


def write_atomically(outputs: Sequence[tuple[Path, str]], *, source: Path | None = None) -> None:
    """Write every file to a temporary sibling, then rename them all into place.

    All destinations are checked first and every temporary file is fully written before the
    first rename, so a refused destination leaves every earlier output untouched.  The files get
    the usual mode for new files (0666 less the umask), not ``mkstemp``'s private 0600.

    Raises:
        InputError: an output cannot be written (names the path).
    """
    outputs = _check_destinations(outputs, source=source)
    umask = os.umask(0)
    os.umask(umask)
    temps: list[tuple[Path, str]] = []
    try:
        for path, text in outputs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            except OSError as exc:
                # "File exists" for a parent that is a file says nothing (contract audit)
                blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
                why = f"{blocked} is a file" if blocked is not None else exc.strerror
                raise InputError(f"cannot write {path}: {why}", field=str(path)) from exc
            temps.append((path, tmp))
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(text)
            os.chmod(tmp, 0o666 & ~umask)
        for path, tmp in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise InputError(f"cannot write {path}: {exc.strerror}", field=str(path)) from exc
    finally:
        for _, tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)


@dataclass(frozen=True, slots=True)
class YearTotals:
    """Reported totals of one tax year (USD)."""

    year: int
    short_term: Decimal
    long_term: Decimal
    disallowed: Decimal
    permanently_disallowed: Decimal


def summarize(sales: Sequence[SaleSlice]) -> list[YearTotals]:
    """Totals per tax year of the sale (IRC §1222): short- and long-term gain after wash-sale
    adjustments, the disallowed loss deferred into replacement lots, and the loss disallowed for
    good by IRA/Roth replacements."""
    years: dict[int, list[Decimal]] = {}
    for s in sales:
        if s.account_type != "taxable":
            continue
        t = years.setdefault(s.date_sold.year, [Decimal(0)] * 4)
        t[0 if s.term == "short" else 1] += s.gain
        t[2] += s.disallowed_loss - s.permanently_disallowed
        t[3] += s.permanently_disallowed
    return [YearTotals(y, *years[y]) for y in sorted(years)]


def format_summary(totals: Sequence[YearTotals]) -> str:
    """The printed summary: one aligned row per tax year and a total row."""
    header = (
        "tax year",
        "short-term gain",
        "long-term gain",
        "disallowed (deferred)",
        "permanently disallowed",
    )
    rows = [
        (
            str(t.year),
            _money(t.short_term),
            _money(t.long_term),
            _money(t.disallowed),
            _money(t.permanently_disallowed),
        )
        for t in totals
    ]
    if len(totals) > 1:
        rows.append(
            (
                "total",
                _money(sum((t.short_term for t in totals), Decimal(0))),
                _money(sum((t.long_term for t in totals), Decimal(0))),
                _money(sum((t.disallowed for t in totals), Decimal(0))),
                _money(sum((t.permanently_disallowed for t in totals), Decimal(0))),
            )
        )
    if not rows:
        rows.append(("-", "0.00", "0.00", "0.00", "0.00"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(r)
        )
        for r in [header, *rows]
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def example_path() -> Path:
    """Path of the bundled example household ledger."""
    return Path(str(resources.files("producer") / "data" / "example_transactions.csv"))


def _out_path(arg: str | Path) -> Path:
    """``arg`` as a path; ``Path`` drops a trailing ``/``, which says "a directory"."""
    text = str(arg)
    if text.endswith(("/", os.sep)):
        raise InputError(f"{text} is a directory; give a file path", field=text)
    return Path(text)


def run(args: argparse.Namespace) -> int:
    """Run ``taxview realized``.

    Raises:
        InputError: bad flags, an unreadable input, a bad row (``LedgerError``).
    """
    if args.example:
        source = example_path()
        sales_out = args.sales_out or DEFAULT_SALES_OUT
        lots_out = args.lots_out or DEFAULT_LOTS_OUT
    else:
        if args.sales_out is None or args.lots_out is None:
            raise InputError(
                "--sales-out and --lots-out are required with --transactions",
                field="--sales-out" if args.sales_out is None else "--lots-out",
            )
        source, sales_out, lots_out = args.transactions, args.sales_out, args.lots_out
    identical = parse_identical(
        EXAMPLE_IDENTICAL if args.example and args.identical is None else args.identical
    )
    try:
        with open(source, encoding="utf-8-sig", newline="") as fh:
            ledger = replay(fh, lot_method=args.lot_method, identical=identical)
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}", field="--transactions") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text", field="--transactions") from exc
    except csv.Error as exc:
        raise InputError(f"{source} is not valid CSV: {exc}", field="--transactions") from exc
    sales = ledger.sales
    write_atomically(
        [
            (_out_path(sales_out), _csv_text(SALES_COLUMNS, sales_rows(sales))),
            (_out_path(lots_out), _csv_text(LOTS_COLUMNS, lots_rows(ledger.open_lots()))),
        ],
        source=Path(source),
    )
    print(format_summary(summarize(sales)))
    n_w = sum(1 for s in sales if s.adjustment_code == "W")
    print(f"\n{len(sales)} sale slice(s), {n_w} washed (W); wrote {sales_out} and {lots_out}")
    sys.stdout.flush()
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``realized`` subcommand."""
    p = sub.add_parser(
        "realized",
        help="replay a household's trades with the wash-sale rules; write the 8949-style report",
        description=(
            "Replay a household's transactions (all accounts, IRAs included) with the full "
            "wash-sale rules (IRC §1091, IRS Pub. 550) and write one SALES row per lot slice "
            "sold from a taxable account and the open taxable lots.  Nothing is written when a "
            "row is bad."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--transactions",
        type=Path,
        metavar="TX.csv",
        help="columns: " + ",".join(INPUT_COLUMNS),
    )
    src.add_argument(
        "--example",
        action="store_true",
        help="replay the bundled example household, with --identical GOOG=GOOGL unless given "
        "(outputs default to ./out/sales.csv and ./out/lots.csv)",
    )
    p.add_argument("--sales-out", metavar="SALES.csv", help="realized slices")
    p.add_argument("--lots-out", metavar="LOTS.csv", help="open taxable lots")
    p.add_argument(
        "--lot-method",
        choices=("fifo", "hifo", "specific"),
        default="fifo",
        help="relief for sells that name no lot (default fifo; a named lot always wins)",
    )
    p.add_argument(
        "--identical",
        metavar="GROUPS",
        default=None,
        help="substantially identical securities, e.g. 'GOOG=GOOGL;SPY=VOO=IVV'",
    )
    p.set_defaults(func=run)
