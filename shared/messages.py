"""Wire schemas: every message that crosses a process boundary, as frozen msgspec Structs.

Rules (msgspec's schema-evolution guide): fields are only ever *added*, always with a default;
unknown fields are tolerated (no ``forbid_unknown_fields``) so producer and worker images can be
deployed at different moments.  Money that is reported (basis, proceeds, gains) is ``Decimal`` and
travels as a JSON string; weights and risk numbers are ``float``.

Encode with :func:`to_wire` (``msgspec.to_builtins``) before Celery's ``json`` serializer and decode
with :func:`from_wire` (``msgspec.convert``) after it; code past the task edge never sees dicts.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from decimal import Decimal
from typing import Any, Literal, TypeVar

import msgspec

from shared.errors import InputError
from shared.types import AccountType, Side, Strategy, Term

#: The one task name shared by producer and worker (never derived from a module path).
TASK_REBALANCE = "taxview.rebalance_account.v1"

#: Bumped only when a field changes meaning; adding a field does not bump it.
SCHEMA_VERSION = 1


class _Wire(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every wire Struct."""


# --------------------------------------------------------------------------------------------
# Ledger: transactions and lots
# --------------------------------------------------------------------------------------------


class Transaction(_Wire, frozen=True, kw_only=True):
    """One trade of a household, exactly the columns of ``taxview realized``'s input.

    ``lot_id`` names the lot a buy/short creates, or the lot a sell/cover relieves (specific
    identification); empty means "let the lot method choose" for sells and "use ``id``" for buys.
    """

    id: str
    date: dt.date
    account: str
    account_type: AccountType = "taxable"
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    lot_id: str = ""


class Lot(_Wire, frozen=True, kw_only=True, gc=False):
    """An open tax lot.

    Not tracked by the garbage collector (``gc=False``): its fields are strings, dates,
    Decimals and bools, which can never refer back to it, so it can be in no reference cycle;
    a worker decodes thousands per task, and tracking them doubled the collections it ran.

    ``cost_basis_usd`` is the whole lot's basis including wash-sale adjustments (for a short lot:
    the proceeds of the short sale, less any washed loss carried into it).  ``acquired`` is the
    holding-period start after tacking (IRC §1223(3)); ``trade_date`` the day it was really bought.
    """

    account: str
    symbol: str
    lot_id: str
    quantity: Decimal
    trade_date: dt.date
    acquired: dt.date
    cost_basis_usd: Decimal
    wash_adjustment_usd: Decimal = Decimal(0)
    short: bool = False
    account_type: AccountType = "taxable"
    #: These shares already absorbed a loss as wash-sale replacement shares (each replacement
    #: share absorbs at most one loss, Treas. Reg. §1.1091-1(c)-(d)); set by the ledger.
    replacement_used: bool = False

    @property
    def used_as_replacement(self) -> bool:
        """Whether these shares already absorbed a washed loss: ``replacement_used``, or a wash
        adjustment in the basis (the ledger splits a lot so that only matched shares carry
        one).  A ``LOTS.csv`` of ``taxview realized`` has the adjustment and no
        ``replacement_used`` column: read so, its lots neither took a loss again nor were
        two parts of one purchase a repeated row (review audit, 2026-12-07)."""
        return self.replacement_used or self.wash_adjustment_usd != 0


class PendingLoss(_Wire, frozen=True, kw_only=True):
    """A taxable loss sale still inside its 30-day window (IRC §1091(a)) with shares that no
    replacement has absorbed yet: a purchase in the next days can still wash them."""

    txn: str
    account: str
    symbol: str
    lot_id: str
    date_sold: dt.date
    #: Loss shares not yet matched to a replacement share.
    quantity: Decimal
    #: The slice's whole loss (positive USD) and its whole share count, so a partial match
    #: disallows ``loss_usd * matched / sold_quantity`` (rounded to the cent).
    loss_usd: Decimal
    sold_quantity: Decimal
    #: Holding-period start of the sold shares, for tacking (IRC §1223(3)).
    acquired: dt.date
    short: bool = False


class RecentPurchase(_Wire, frozen=True, kw_only=True):
    """A purchase (or short sale) inside the last 30 days whose shares can still serve as
    replacement shares for a loss sale (each replacement share absorbs at most one loss)."""

    txn: str
    account: str
    account_type: AccountType = "taxable"
    symbol: str
    lot_id: str
    date: dt.date
    #: Shares of this purchase not yet used as a replacement.
    quantity: Decimal
    short: bool = False


class LastPurchase(_Wire, frozen=True, kw_only=True):
    """The latest purchase (or short sale) of a security anywhere in the household inside the
    last 30 days, whether its shares are still held or not.

    The rebalance sells no lot of that security's substantially identical group at a loss (covers
    no short at a loss, for a short sale) until 30 days after this date (DESIGN.md §2: "no loss
    sale of a name bought within the last 30 days in the household"), so no reading of IRC
    §1091(a)'s "has acquired" — a replacement bought and sold again before the loss sale, the
    sold lot's own purchase — can make one of its sales a wash sale.  The ledger's own tax
    accounting does not use it."""

    symbol: str
    date: dt.date
    short: bool = False


class LedgerState(_Wire, frozen=True, kw_only=True):
    """A household's ledger at the close of ``as_of``: open lots of every account (IRAs
    included, flagged by ``account_type``) plus the wash-sale window memory.  The ledger
    (``shared.ledger.Ledger.from_state`` / ``.state()``) is the only code that builds one."""

    as_of: dt.date
    household_id: str = ""
    lots: list[Lot] = []
    pending_losses: list[PendingLoss] = []
    recent_purchases: list[RecentPurchase] = []
    #: Groups of substantially identical securities declared for this household.
    identical: list[list[str]] = []
    #: The latest purchase / short sale date of every security bought / sold short in the last
    #: 30 days (held or since sold): the rebalance's "no loss sale after a purchase" memory.
    last_purchases: list[LastPurchase] = []


# --------------------------------------------------------------------------------------------
# Market
# --------------------------------------------------------------------------------------------


class RiskModel(_Wire, frozen=True, kw_only=True):
    """Factor risk model ``Σ = B F Bᵀ + diag(d)``, annualised, in factor form.

    ``loadings`` is n×k row-major (row i = name ``symbols[i]``), cross-sectionally standardised
    for style factors; ``factor_cov`` is k×k; ``specific_var`` has n entries.
    """

    factor_names: list[str]
    loadings: list[list[float]]
    factor_cov: list[list[float]]
    specific_var: list[float]


class MarketSnapshot(_Wire, frozen=True, kw_only=True):
    """Everything about the day's market one account's solve needs.

    Aligned arrays: ``symbols[i]`` has price ``prices[i]``, benchmark weight
    ``benchmark_weights[i]`` and risk-model row ``risk_model.loadings[i]``.
    """

    as_of: dt.date
    benchmark: str = "synthetic"
    symbols: list[str]
    prices: list[float]
    benchmark_weights: list[float]
    sectors: list[str] = []
    risk_model: RiskModel
    #: Cross-sectional alpha per name (annualised return units), for the market-neutral sleeve.
    alpha: list[float] = []


# --------------------------------------------------------------------------------------------
# Account and request
# --------------------------------------------------------------------------------------------


class TaxRates(_Wire, frozen=True, kw_only=True):
    """Marginal rates; NIIT (IRC §1411) is added to both terms."""

    short_term: float = 0.37
    long_term: float = 0.20
    niit: float = 0.038

    def with_niit(self) -> tuple[Decimal, Decimal]:
        """(short-term, long-term) rates with NIIT added, as exact decimals of the rates as
        written (``0.37`` is ``Decimal("0.37")``, not the binary float's expansion).

        Short-term gains are ordinary income (IRC §1222(1), §1(j)), long-term ones take the
        §1(h) rate; NIIT (IRC §1411) applies to both.
        """
        niit = Decimal(repr(self.niit))
        return Decimal(repr(self.short_term)) + niit, Decimal(repr(self.long_term)) + niit


class FactorTilt(_Wire, frozen=True, kw_only=True):
    """Active exposure floor ``B_fᵀ(w − w_b) ≥ min_exposure`` (standardised units, sigmas)."""

    factor: str
    min_exposure: float


class LongShortSpec(_Wire, frozen=True, kw_only=True):
    """Long/short book shape, e.g. 130/30: ``long_w=1.3``, ``short_w=0.3`` (net = long − short)."""

    long_w: float = 1.3
    short_w: float = 0.3
    gross_limit_w: float | None = None


class AccountSpec(_Wire, frozen=True, kw_only=True):
    """One account's settings and constraints."""

    account_id: str
    household_id: str = ""
    account_type: AccountType = "taxable"
    strategy: Strategy = "direct-index"
    cash_usd: Decimal = Decimal(0)
    #: Annualised ex-ante tracking-error budget (0.02 = 2%).
    te_budget: float = 0.02
    #: Single-name cap as a weight (``c_max``).
    max_weight: float = 0.10
    exclusions: list[str] = []
    tilts: list[FactorTilt] = []
    lambda_te: float = 1.0
    lambda_tax: float = 1.0
    #: One-way trading cost κ in basis points of traded notional.
    trading_cost_bps: float = 5.0
    min_cash_w: float = 0.0
    max_cash_w: float = 0.02
    turnover_limit_w: float | None = None
    #: Cap on net realized gains this rebalance (USD), if any.
    gain_budget_usd: Decimal | None = None
    fractional_shares: bool = False
    rates: TaxRates = TaxRates()
    long_short: LongShortSpec | None = None
    #: Gross limit for the market-neutral sleeve (sum of |w|), as a fraction of sleeve capital.
    gross_limit_w: float = 2.0
    #: Groups of substantially identical securities, e.g. ``[["GOOG", "GOOGL"]]``.
    identical: list[list[str]] = []
    #: Commission (bps of a fill's amount) the account's ledger nets into its lots' basis and
    #: its sales' proceeds (IRS Pub. 550), so a sale is a loss when its proceeds *net of it*
    #: are below the basis.  ``taxview-runner --cost-bps`` sets it; 0 (the default) for
    #: ledgers whose trades carry no commission, as ``taxview realized``'s rows.
    commission_bps: float = 0.0


class RebalanceRequest(_Wire, frozen=True, kw_only=True):
    """A self-contained request: the account, its household's ledger state, and the market.

    ``ledger`` is household-wide (every account's open lots and the wash-sale window memory) so
    the restrictions of IRC §1091 are derived across accounts; the account's own lots are the
    ones with ``lot.account == account.account_id``.  ``history`` optionally carries the
    household's recent transactions for display and audit; the ledger state is what counts, and
    a trade of the last 30 days that only the history shows still restricts the ticket
    (``shared.rebalance.history_window``: a purchase blocks loss sales of the name, a sale the
    history shows was a loss blocks buys).
    """

    schema_version: int = SCHEMA_VERSION
    as_of: dt.date
    account: AccountSpec
    ledger: LedgerState
    history: list[Transaction] = []
    market: MarketSnapshot


# --------------------------------------------------------------------------------------------
# Outcome
# --------------------------------------------------------------------------------------------

TradeReason = Literal["harvest", "rebalance", "exclusion", "tilt", "cash", "cover", "alpha"]


class Trade(_Wire, frozen=True, kw_only=True):
    """One order line.  Every sell/cover names its lot; buys and shorts create ``lot_id``."""

    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    notional_usd: Decimal
    lot_id: str
    reason: TradeReason
    #: The factor whose score drove the trade (trade-ticket annotation), if any.
    driver: str | None = None
    factor_score: float | None = None


class RealizedSlice(_Wire, frozen=True, kw_only=True):
    """Realized P/L of one lot slice sold (or covered) by this rebalance."""

    symbol: str
    lot_id: str
    quantity: Decimal
    proceeds_usd: Decimal
    cost_basis_usd: Decimal
    gain_usd: Decimal
    term: Term
    date_acquired: dt.date
    disallowed_loss_usd: Decimal = Decimal(0)
    #: The part of ``disallowed_loss_usd`` lost for good: the replacement was bought in an
    #: IRA/Roth of the household (Rev. Rul. 2008-5), so no basis carries it forward.
    permanently_disallowed_usd: Decimal = Decimal(0)


class FactorExposure(_Wire, frozen=True, kw_only=True):
    """One row of the risk panel: active exposure against its target (if any)."""

    factor: str
    active: float
    target_min: float | None = None


class SolverInfo(_Wire, frozen=True, kw_only=True):
    """Which solve produced the trades, and how long each part took."""

    solver: str
    status: str
    iterations: int
    solver_ms: float
    total_ms: float
    attempts: list[str] = []
    #: Optimizer time outside the producing attempt's own Clarabel time (ms): validation,
    #: assembly, marshalling, the check, and attempts that did not produce the trades (e.g. an
    #: uncapped attempt that came back over the TE budget); summed over the solves like
    #: ``solver_ms``.
    setup_ms: float = 0.0
    #: Wall time inside the optimizer (assembly, every attempt, the solution check), ms;
    #: ``total_ms − optimizer_ms`` is the use case's own work (validation, ledger, trade list).
    optimizer_ms: float = 0.0


class WashSaleIssue(_Wire, frozen=True, kw_only=True):
    """A wash sale the final trade list would create (should be empty), with the reason."""

    symbol: str
    lot_id: str
    reason: str


class Solved(_Wire, frozen=True, kw_only=True, tag="solved", tag_field="kind"):
    """A solved account.  ``status`` is ``ok``, ``relaxed`` (the relaxation chain ran; see
    ``relaxations``) or ``held`` (nothing feasible improved on holding)."""

    account_id: str
    household_id: str = ""
    as_of: dt.date
    strategy: Strategy = "direct-index"
    status: Literal["ok", "relaxed", "held"] = "ok"
    relaxations: list[str] = []
    #: What the account asked for that the market changed: an exclusion matched regardless of
    #: case, or naming no security of the market (it excludes nothing).
    notes: list[str] = []
    nav_usd: Decimal
    weights: dict[str, float]
    cash_w: float
    trades: list[Trade]
    realized: list[RealizedSlice]
    realized_st_usd: Decimal
    realized_lt_usd: Decimal
    harvested_loss_usd: Decimal
    estimated_tax_usd: Decimal
    te_ex_ante: float
    te_budget: float
    factor_exposures: list[FactorExposure]
    wash_sale_issues: list[WashSaleIssue] = []
    #: Hard limits (TE budget, tilt floors, name caps, turnover, gain budget, cash range; for
    #: long/short and market-neutral also net, gross and side limits and factor neutrality)
    #: the rounded ticket still misses after the share-rounding repair; empty when all hold.
    #: A held account lists what its unchanged book misses (lines starting ``held:``).
    limit_breaches: list[str] = []
    solver: SolverInfo


class Rejected(_Wire, frozen=True, kw_only=True, tag="rejected", tag_field="kind"):
    """Bad input: never retried.  ``field`` names what to fix."""

    account_id: str
    household_id: str = ""
    as_of: dt.date
    field: str = ""
    reason: str
    status: Literal["rejected"] = "rejected"


class Failed(_Wire, frozen=True, kw_only=True, tag="failed", tag_field="kind"):
    """Gave up after bounded attempts (solver failure, a process that keeps dying)."""

    account_id: str
    household_id: str = ""
    as_of: dt.date
    reason: str
    attempts: int = 0
    status: Literal["failed"] = "failed"


Outcome = Solved | Rejected | Failed

T = TypeVar("T")


def _field_of(msg: str) -> str:
    """The offending field of a msgspec validation message, as a dotted path.

    ``Expected `int`, got `str` - at `$.lots[3].quantity``` → ``lots[3].quantity``;
    ``Object missing required field `account``` → ``account``.
    """
    path = msg.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in msg else "$"
    missing = re.search(r"missing required field `([^`]+)`", msg)
    if missing:
        path = f"{path}.{missing.group(1)}"
    return path.removeprefix("$").removeprefix(".") or "message"


def to_wire(obj: msgspec.Struct) -> Any:
    """Struct → JSON-safe builtins (dates and Decimals become strings)."""
    return msgspec.to_builtins(obj)


def from_wire(data: Any, typ: type[T], *, account: str | None = None) -> T:
    """Builtins → a validated Struct; a malformed message raises :class:`InputError` naming the
    path of the bad field (msgspec's ``$.lots[3].quantity``)."""
    try:
        return msgspec.convert(data, typ, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        field = _field_of(msg)
        raise InputError(msg, account=account, field=field) from exc


def decode_json(
    raw: bytes | str, typ: type[T], *, account: str | None = None, strict: bool = False
) -> T:
    """JSON bytes → a validated Struct, errors as :class:`InputError` (``strict``: no number
    written as text, msgspec's strict mode)."""
    try:
        return msgspec.json.decode(raw, type=typ, strict=strict)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        field = _field_of(msg)
        raise InputError(msg, account=account, field=field) from exc
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # Invalid UTF-8 in a string and nesting deeper than the interpreter's stack are not
        # msgspec.DecodeError (fuzz audit: both were tracebacks).
        raise InputError(
            f"not valid JSON: {_short(exc)}", account=account, field="document"
        ) from exc


def duplicate_key(raw: bytes) -> str | None:
    """The first key written twice in one object of the JSON document ``raw`` (``None``: none,
    or not valid JSON — the decoder says why).  msgspec, like most decoders, keeps the last
    silently (badinput audit: ``"exclusions": ["BEU"], "exclusions": []`` held BEU without a
    word); a file a person writes is read strictly."""
    import json

    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        if not found:
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    found.append(key)
                    break
                seen.add(key)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


#: A JSON string (skipped) or a number (group 1), left to right.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)')


def json_error_hint(raw: bytes, exc: Exception) -> str:
    """msgspec's "invalid character (byte N)" as a line and column with the text there, and
    a hint for what Python's ``json.dump`` writes that JSON has not (``NaN``, ``Infinity``)."""
    match = re.search(r"\(byte (\d+)\)", str(exc))  # not "can't decode byte 0xff …"
    at: int | None = None if match is None else min(int(match.group(1)), len(raw))
    if at is None and "out of range" in str(exc):
        # msgspec elides the path ("$[...][...][0]"): find the number no float holds (badinput
        # audit: 1e400 named neither its field nor its place), strings skipped (review: one
        # inside an id was named instead).
        at = next(
            (
                m.start()
                for m in _JSON_TOKENS.finditer(raw)
                if m.group(1) is not None and math.isinf(float(m.group(1)))
            ),
            None,
        )
    if at is None:
        return str(exc)
    line = raw.count(b"\n", 0, at) + 1
    column = len(raw[raw.rfind(b"\n", 0, at) + 1 : at].decode("utf-8", "replace")) + 1  # chars
    text = raw[at : at + 12].decode("utf-8", "replace").split("\n", 1)[0]
    hint = ""
    if text.lstrip("-").startswith(("NaN", "Infinity")):
        hint = " (NaN and Infinity are not JSON numbers: write a number, or leave the key out)"
    what = str(exc).split(" (byte")[0].split(" - at ")[0]
    return f"{what} at line {line}, column {column}: {text!r}{hint}"


def unknown_field(doc: Any, typ: Any) -> tuple[str, str] | None:
    """The first key of the decoded JSON ``doc`` that ``typ`` (a Struct type) has no field for:
    ``(path, message)``, e.g. ``("account.exclusion", "unknown field 'exclusion' (did you mean
    'exclusions'?)")``; ``None`` when every key is known.

    The wire Structs tolerate unknown fields (rolling deploys, module docstring); a file a
    user wrote does not: a misspelt ``exclusion`` was ignored and the excluded name kept at
    12.7% of the account (fuzz audit).
    """
    return _unknown(doc, msgspec.inspect.type_info(typ), "")


def _unknown(obj: Any, info: Any, path: str) -> tuple[str, str] | None:
    mi = msgspec.inspect
    if isinstance(info, mi.UnionType):
        for member in info.types:
            if isinstance(member, mi.StructType) and isinstance(obj, dict):
                return _unknown(obj, member, path)
            if isinstance(member, (mi.ListType, mi.VarTupleType)) and isinstance(obj, list):
                return _unknown(obj, member, path)
        return None
    if isinstance(info, mi.StructType) and isinstance(obj, dict):
        fields = {f.encode_name: f for f in info.fields}
        for key, value in obj.items():
            where = f"{path}.{key}" if path else str(key)
            found = fields.get(key)
            if found is None:
                close = difflib.get_close_matches(str(key).strip(), list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return where, f"unknown field {key!r}{hint}"
            hit = _unknown(value, found.type, where)
            if hit is not None:
                return hit
        return None
    if isinstance(info, (mi.ListType, mi.VarTupleType)) and isinstance(obj, list):
        for i, item in enumerate(obj):
            hit = _unknown(item, info.item_type, f"{path}[{i}]")
            if hit is not None:
                return hit
    return None


def _short(exc: BaseException) -> str:
    """An exception's message, or its type when it has none."""
    return str(exc) or type(exc).__name__


def encode_json(obj: Any) -> bytes:
    """Struct (or builtins) → JSON bytes."""
    return msgspec.json.encode(obj)


# --------------------------------------------------------------------------------------------
# Fleet task message (added by the fleet; add-only)
# --------------------------------------------------------------------------------------------


class BookError(_Wire, frozen=True, kw_only=True):
    """Why an account's household could not be read from the book (``producer.book``'s
    quarantine): the worker stores a ``rejected`` outcome with it and solves nothing."""

    field: str = ""
    reason: str


class AccountTask(_Wire, frozen=True, kw_only=True):
    """One account's nightly rebalance as it travels on the broker.

    The day's market is not in the message: the producer publishes it once in the results store
    under ``market_key`` and every worker caches it.  Accounts of one household run in order
    (``household_index`` 0…``household_size``−1, a Celery chain): the first carries the
    household's ledger at the previous close in ``ledger``; a later one reads the ledger as
    updated by its siblings' trades from the results store, so no same-day cross-account wash
    sale can arise (IRC §1091 applies across a household's accounts, IRAs included).
    """

    schema_version: int = SCHEMA_VERSION
    as_of: dt.date
    market_key: str
    account: AccountSpec
    household_id: str
    household_index: int = 0
    household_size: int = 1
    ledger: LedgerState | None = None
    #: :func:`shared.results_keys.snapshot_digest` of the snapshot the night was planned with
    #: (empty: not checked): a worker's cached snapshot with another digest is read again, and
    #: a stored one with another digest is not solved on.
    market_digest: str = ""
    #: The household's book rows could not be read: the account is ``rejected`` with this.
    book_error: BookError | None = None
