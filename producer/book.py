"""The firm's book on disk: accounts, open lots, wash-window memory and trade history.

A book directory holds one file per table, CSV or Parquet (``.csv`` / ``.parquet``, the same
columns; every value is written as text so money stays exact).  See ``docs/formats.md``
(Book format).

- ``book.json`` — ``{"as_of": "YYYY-MM-DD"}``: the close the book describes.
- ``accounts`` — one row per account rebalanced each night (:class:`AccountSpec` columns; lists are
  ``;``-separated, tilts ``factor:min``, identical groups ``A=B;C=D``).
- ``lots`` — open lots (``taxview realized``'s ``LOTS.csv`` columns + ``short``,
  ``account_type``, ``household_id``).
- ``pending_losses`` / ``recent_purchases`` — the 30-day wash-sale window memory (IRC §1091(a)).
- ``households`` — ``household_id, identical``: substantially identical groups per household.
- ``history`` — the household transactions (``taxview realized`` input columns + ``household_id``).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgspec

from shared import results_keys as keys
from shared.errors import InputError
from shared.messages import (
    AccountSpec,
    FactorTilt,
    LedgerState,
    LongShortSpec,
    Lot,
    MarketSnapshot,
    PendingLoss,
    RecentPurchase,
    TaxRates,
    Transaction,
    decode_json,
    encode_json,
)

Format = Literal["csv", "parquet"]

ACCOUNT_COLUMNS: tuple[str, ...] = (
    "account_id",
    "household_id",
    "account_type",
    "strategy",
    "cash_usd",
    "te_budget",
    "max_weight",
    "exclusions",
    "tilts",
    "lambda_te",
    "lambda_tax",
    "trading_cost_bps",
    "min_cash_w",
    "max_cash_w",
    "turnover_limit_w",
    "gain_budget_usd",
    "fractional_shares",
    "short_term_rate",
    "long_term_rate",
    "niit_rate",
    "long_w",
    "short_w",
    "long_short_gross_limit_w",
    "gross_limit_w",
    "identical",
)
LOT_COLUMNS: tuple[str, ...] = (
    "household_id",
    "account",
    "symbol",
    "lot_id",
    "quantity",
    "trade_date",
    "acquired",
    "cost_basis",
    "wash_adjustment",
    "short",
    "account_type",
)
PENDING_COLUMNS: tuple[str, ...] = ("household_id", *PendingLoss.__struct_fields__)
RECENT_COLUMNS: tuple[str, ...] = ("household_id", *RecentPurchase.__struct_fields__)
HISTORY_COLUMNS: tuple[str, ...] = ("household_id", *Transaction.__struct_fields__)
HOUSEHOLD_COLUMNS: tuple[str, ...] = ("household_id", "identical")


class Book(msgspec.Struct, kw_only=True):
    """A whole book: the accounts and one ledger per household, at the close of ``as_of``."""

    as_of: dt.date
    accounts: list[AccountSpec]
    #: household id → the household's ledger (every account's lots, IRAs included); a
    #: :class:`CompressedLedgers` for a big generated book.
    ledgers: Mapping[str, LedgerState]
    history: list[Transaction] = []

    def households(self) -> dict[str, list[AccountSpec]]:
        """Accounts grouped by household, in a stable order (household id, then account id)."""
        out: dict[str, list[AccountSpec]] = {}
        for spec in sorted(self.accounts, key=lambda s: (household_of(s), s.account_id)):
            out.setdefault(household_of(spec), []).append(spec)
        return out


def household_of(spec: AccountSpec) -> str:
    """The household key of an account (an account without one is its own household)."""
    return spec.household_id or spec.account_id


def book_from_pairs(as_of: dt.date, pairs: Sequence[tuple[AccountSpec, LedgerState]]) -> Book:
    """Build a book from ``(account, ledger)`` pairs (``shared.examples.synthetic_book``).

    Ledgers of accounts of one household are merged (lots keyed by account and lot id, window
    memory by transaction and lot), so household-wide or per-account states both work.

    Raises:
        InputError: two accounts share an id.
    """
    seen: set[str] = set()
    accounts: list[AccountSpec] = []
    by_household: dict[str, list[LedgerState]] = {}
    for spec, state in pairs:
        if spec.account_id in seen:
            raise InputError("duplicate account id", account=spec.account_id, field="account_id")
        seen.add(spec.account_id)
        accounts.append(spec)
        by_household.setdefault(household_of(spec), []).append(state)
    ledgers = {h: merge_states(h, states, as_of) for h, states in by_household.items()}
    return Book(as_of=as_of, accounts=accounts, ledgers=ledgers)


class CompressedLedgers(Mapping[str, LedgerState]):
    """Household ledgers held as the results store stages them (Zstandard-compressed JSON,
    :func:`shared.results_keys.encode_ledger`, ~14× smaller than the JSON and far smaller than
    the decoded lots), decoded on access; :meth:`raw` hands the stored bytes to the enqueuer
    without a decode/encode round trip."""

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}

    def add(self, state: LedgerState) -> None:
        """Store ``state`` under its household (compressing it now)."""
        self._raw[state.household_id] = keys.encode_ledger(state)

    def raw(self, household: str) -> bytes:
        """The staged form of a household's ledger (``KeyError`` when unknown)."""
        return self._raw[household]

    def __getitem__(self, household: str) -> LedgerState:
        return keys.decode_ledger(self._raw[household], household=household)

    def __contains__(self, household: object) -> bool:  # Mapping's would decode the ledger
        return household in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


def book_from_stream(as_of: dt.date, pairs: Iterable[tuple[AccountSpec, LedgerState]]) -> Book:
    """Like :func:`book_from_pairs`, for ``(account, ledger)`` pairs that come household by
    household (``shared.examples.synthetic_book_stream``): each household's ledger is merged and
    compressed as soon as the next household starts, so only one household's lots are ever
    decoded in memory (a 10,000-account book: ~9 GB of lots otherwise).

    Raises:
        InputError: two accounts share an id, or a household comes back after another one.
    """
    seen: set[str] = set()
    accounts: list[AccountSpec] = []
    ledgers = CompressedLedgers()
    current: str | None = None
    states: list[LedgerState] = []

    def flush() -> None:
        if current is not None:
            ledgers.add(merge_states(current, states, as_of))

    for spec, state in pairs:
        if spec.account_id in seen:
            raise InputError("duplicate account id", account=spec.account_id, field="account_id")
        seen.add(spec.account_id)
        household = household_of(spec)
        if household != current:
            if household in ledgers:
                raise InputError(
                    f"household {household} comes back after another household: a stream must "
                    "give each household's accounts together",
                    account=spec.account_id,
                    field="household_id",
                )
            flush()
            current, states = household, []
        accounts.append(spec)
        if not any(s is state for s in states):
            states.append(state)
    flush()
    return Book(as_of=as_of, accounts=accounts, ledgers=ledgers)


def merge_states(household: str, states: Iterable[LedgerState], as_of: dt.date) -> LedgerState:
    """Union of ledger states of one household, without duplicates."""
    lots: dict[tuple[str, str], Lot] = {}
    pending: dict[tuple[str, str, str], PendingLoss] = {}
    recent: dict[tuple[str, str, str], RecentPurchase] = {}
    identical: list[list[str]] = []
    for state in states:
        for lot in state.lots:
            lots.setdefault((lot.account, lot.lot_id), lot)
        for p in state.pending_losses:
            pending.setdefault((p.txn, p.account, p.lot_id), p)
        for r in state.recent_purchases:
            recent.setdefault((r.txn, r.account, r.lot_id), r)
        for group in state.identical:
            if group not in identical:
                identical.append(list(group))
    return LedgerState(
        as_of=as_of,
        household_id=household,
        lots=list(lots.values()),
        pending_losses=list(pending.values()),
        recent_purchases=list(recent.values()),
        identical=identical,
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_book(directory: Path) -> Book:
    """Read a book directory (CSV or Parquet tables).

    Raises:
        InputError: a missing table or a bad value; the message names the file, the row (account
            or lot) and the column.
    """
    if not directory.is_dir():
        raise InputError(f"no book directory at {directory}", field="--book")
    meta_path = directory / "book.json"
    if not meta_path.exists():
        raise InputError(f"{meta_path} is missing (it holds the book's as_of date)", field="book")
    try:
        as_of = dt.date.fromisoformat(json.loads(meta_path.read_text())["as_of"])
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"{meta_path}: expected {{'as_of': 'YYYY-MM-DD'}}", field="as_of") from exc
    accounts = [_account(row, i) for i, row in enumerate(_table(directory, "accounts"))]
    household_of_account = {a.account_id: household_of(a) for a in accounts}
    states: dict[str, dict[str, list[Any]]] = {}

    def bucket(row: dict[str, str], table: str, i: int) -> dict[str, list[Any]]:
        household = row.get("household_id", "") or household_of_account.get(
            row.get("account", ""), ""
        )
        if not household:
            raise InputError(
                f"{table} row {i + 1}: no household_id and account {row.get('account')!r} "
                "is not in accounts",
                account=row.get("account"),
                field="household_id",
            )
        return states.setdefault(household, {"lots": [], "pending": [], "recent": []})

    for i, row in enumerate(_table(directory, "lots")):
        bucket(row, "lots", i)["lots"].append(_lot(row, i))
    for i, row in enumerate(_table(directory, "pending_losses", required=False)):
        bucket(row, "pending_losses", i)["pending"].append(
            _convert(row, PendingLoss, "pending_losses", i)
        )
    for i, row in enumerate(_table(directory, "recent_purchases", required=False)):
        bucket(row, "recent_purchases", i)["recent"].append(
            _convert(row, RecentPurchase, "recent_purchases", i)
        )
    identical = {
        row["household_id"]: _groups(row.get("identical", ""))
        for row in _table(directory, "households", required=False)
    }
    ledgers = {}
    for household in {*household_of_account.values(), *states}:
        parts = states.get(household, {"lots": [], "pending": [], "recent": []})
        ledgers[household] = LedgerState(
            as_of=as_of,
            household_id=household,
            lots=parts["lots"],
            pending_losses=parts["pending"],
            recent_purchases=parts["recent"],
            identical=identical.get(household, []),
        )
    history = [
        _convert(row, Transaction, "history", i)
        for i, row in enumerate(_table(directory, "history", required=False))
    ]
    return Book(as_of=as_of, accounts=accounts, ledgers=ledgers, history=history)


def read_market(path: Path, as_of: dt.date) -> MarketSnapshot:
    """The day's market: a ``MarketSnapshot`` JSON file, or a market directory
    (``shared.loaders.load_market_dir``, see ``docs/formats.md``).

    Raises:
        InputError: the file is missing or malformed, or dated another day.
    """
    if path.is_dir():
        from shared.loaders import load_market_dir

        loaded: Any = load_market_dir(path)
        snap: MarketSnapshot = loaded.snapshot(as_of) if hasattr(loaded, "snapshot") else loaded
        return snap
    if not path.exists():
        raise InputError(f"no market file at {path}", field="--market")
    snapshot = decode_json(path.read_bytes(), MarketSnapshot)
    if snapshot.as_of != as_of:
        raise InputError(
            f"{path} is the market of {snapshot.as_of}, not of {as_of}", field="market.as_of"
        )
    return snapshot


def _table(directory: Path, name: str, *, required: bool = True) -> list[dict[str, str]]:
    csv_path, pq_path = directory / f"{name}.csv", directory / f"{name}.parquet"
    if pq_path.exists():
        import pyarrow.parquet as pq

        rows = pq.read_table(pq_path).to_pylist()
        return [{k: "" if v is None else str(v) for k, v in row.items()} for row in rows]
    if csv_path.exists():
        with csv_path.open(newline="") as fh:
            return [dict(row) for row in csv.DictReader(fh)]
    if required:
        raise InputError(f"{directory} has neither {name}.csv nor {name}.parquet", field=name)
    return []


def _convert(row: dict[str, str], typ: type[Any], table: str, i: int) -> Any:
    data = {k: v for k, v in row.items() if k in typ.__struct_fields__ and v != ""}
    try:
        return msgspec.convert(data, typ, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        field = msg.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in msg else "row"
        raise InputError(
            f"{table} row {i + 1}: {msg}", account=row.get("account"), field=field
        ) from exc


def _lot(row: dict[str, str], i: int) -> Lot:
    data = dict(row)
    data["cost_basis_usd"] = data.pop("cost_basis", "")
    data["wash_adjustment_usd"] = data.pop("wash_adjustment", "")
    lot: Lot = _convert(data, Lot, "lots", i)
    return lot


def _split(text: str, sep: str = ";") -> list[str]:
    return [part.strip() for part in text.split(sep) if part.strip()]


def _groups(text: str) -> list[list[str]]:
    return [_split(group, "=") for group in _split(text)]


def _account(row: dict[str, str], i: int) -> AccountSpec:
    account = row.get("account_id", "") or f"<row {i + 1}>"

    def num(col: str) -> float | None:
        raw = row.get(col, "").strip()
        if raw == "":
            return None
        try:
            return float(raw)
        except ValueError as exc:
            raise InputError(f"not a number: {raw!r}", account=account, field=col) from exc

    tilts = []
    for part in _split(row.get("tilts", "")):
        factor, sep, value = part.partition(":")
        try:
            tilts.append(FactorTilt(factor=factor.strip(), min_exposure=float(value)))
        except ValueError as exc:
            raise InputError(
                f"expected factor:min_exposure, got {part!r}", account=account, field="tilts"
            ) from exc
        if not sep:
            raise InputError(f"expected factor:min, got {part!r}", account=account, field="tilts")
    data: dict[str, Any] = {
        k: v
        for k, v in row.items()
        if k in AccountSpec.__struct_fields__
        and v != ""
        and k not in {"exclusions", "tilts", "identical"}
    }
    data["exclusions"] = _split(row.get("exclusions", ""))
    data["tilts"] = tilts
    data["identical"] = _groups(row.get("identical", ""))
    defaults = TaxRates()
    rates = {
        "short_term": num("short_term_rate"),
        "long_term": num("long_term_rate"),
        "niit": num("niit_rate"),
    }
    data["rates"] = TaxRates(
        short_term=rates["short_term"] if rates["short_term"] is not None else defaults.short_term,
        long_term=rates["long_term"] if rates["long_term"] is not None else defaults.long_term,
        niit=rates["niit"] if rates["niit"] is not None else defaults.niit,
    )
    long_w, short_w = num("long_w"), num("short_w")
    if long_w is not None or short_w is not None:
        base = LongShortSpec()
        data["long_short"] = LongShortSpec(
            long_w=long_w if long_w is not None else base.long_w,
            short_w=short_w if short_w is not None else base.short_w,
            gross_limit_w=num("long_short_gross_limit_w"),
        )
    try:
        spec: AccountSpec = msgspec.convert(data, AccountSpec, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        field = msg.rsplit("at `$.", 1)[-1].rstrip("`") if "at `$." in msg else "row"
        raise InputError(f"accounts row {i + 1}: {msg}", account=account, field=field) from exc
    return spec


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_book(directory: Path, book: Book, *, fmt: Format = "csv") -> None:
    """Write a book directory that :func:`read_book` reads back to an equal book."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "book.json").write_text(json.dumps({"as_of": book.as_of.isoformat()}) + "\n")
    _write(directory, "accounts", ACCOUNT_COLUMNS, [_account_row(a) for a in book.accounts], fmt)
    lots, pending, recent, households = [], [], [], []
    for household, state in sorted(book.ledgers.items()):
        for lot in state.lots:
            lots.append(_lot_row(household, lot))
        pending += [_struct_row(household, p) for p in state.pending_losses]
        recent += [_struct_row(household, r) for r in state.recent_purchases]
        if state.identical:
            households.append(
                {"household_id": household, "identical": _fmt_groups(state.identical)}
            )
    _write(directory, "lots", LOT_COLUMNS, lots, fmt)
    _write(directory, "pending_losses", PENDING_COLUMNS, pending, fmt)
    _write(directory, "recent_purchases", RECENT_COLUMNS, recent, fmt)
    _write(directory, "households", HOUSEHOLD_COLUMNS, households, fmt)
    _write(
        directory,
        "history",
        HISTORY_COLUMNS,
        [_struct_row(_history_household(book, t), t) for t in book.history],
        fmt,
    )


def write_market(path: Path, market: MarketSnapshot) -> None:
    """Write a market snapshot as JSON (what :func:`read_market` reads)."""
    path.write_bytes(encode_json(market))


def _history_household(book: Book, txn: Transaction) -> str:
    for spec in book.accounts:
        if spec.account_id == txn.account:
            return household_of(spec)
    return ""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | Decimal):
        return str(value)
    return str(value)


def _struct_row(household: str, obj: msgspec.Struct) -> dict[str, str]:
    row = {"household_id": household}
    for name in obj.__struct_fields__:
        row[name] = _text(getattr(obj, name))
    return row


def _lot_row(household: str, lot: Lot) -> dict[str, str]:
    return {
        "household_id": household,
        "account": lot.account,
        "symbol": lot.symbol,
        "lot_id": lot.lot_id,
        "quantity": _text(lot.quantity),
        "trade_date": _text(lot.trade_date),
        "acquired": _text(lot.acquired),
        "cost_basis": _text(lot.cost_basis_usd),
        "wash_adjustment": _text(lot.wash_adjustment_usd),
        "short": _text(lot.short),
        "account_type": lot.account_type,
    }


def _fmt_groups(groups: list[list[str]]) -> str:
    return ";".join("=".join(g) for g in groups)


def _account_row(spec: AccountSpec) -> dict[str, str]:
    row = {
        name: _text(getattr(spec, name))
        for name in ACCOUNT_COLUMNS
        if name in AccountSpec.__struct_fields__
        and name not in {"exclusions", "tilts", "identical"}
    }
    row["exclusions"] = ";".join(spec.exclusions)
    row["tilts"] = ";".join(f"{t.factor}:{t.min_exposure!r}" for t in spec.tilts)
    row["identical"] = _fmt_groups(spec.identical)
    row["short_term_rate"] = repr(spec.rates.short_term)
    row["long_term_rate"] = repr(spec.rates.long_term)
    row["niit_rate"] = repr(spec.rates.niit)
    ls = spec.long_short
    row["long_w"] = repr(ls.long_w) if ls else ""
    row["short_w"] = repr(ls.short_w) if ls else ""
    row["long_short_gross_limit_w"] = _text(ls.gross_limit_w) if ls else ""
    return row


def _write(
    directory: Path, name: str, columns: Sequence[str], rows: list[dict[str, str]], fmt: Format
) -> None:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: pa.array([r.get(c, "") for r in rows], pa.string()) for c in columns})
        pq.write_table(table, directory / f"{name}.parquet")
        return
    with (directory / f"{name}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
