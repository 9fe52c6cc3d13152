"""Read (and write) a market-data directory in CSV or Parquet; the formats are in docs/formats.md.

A directory holds, each as ``NAME.csv`` or ``NAME.parquet`` (never both):

=====================  ========  ===========================================================
file                   required  columns
=====================  ========  ===========================================================
``prices``             yes       ``date,symbol,price`` (long) or ``date,<SYM>,<SYM>…`` (wide)
``benchmark_weights``  yes       ``date,symbol,weight`` (long) or ``date,<SYM>…`` (wide)
``sectors``            no        ``symbol,sector``
``factor_loadings``    no [1]_   ``symbol,factor,loading`` (long) or ``symbol,<FACTOR>…``
``factor_covariance``  no [1]_   ``factor,<FACTOR>…`` (k×k, annualised)
``specific_variance``  no [1]_   ``symbol,specific_var`` (annualised)
``factor_returns``     no        ``date,<FACTOR>…`` (daily simple returns)
=====================  ========  ===========================================================

.. [1] all three or none.  Without them the risk model of each date is estimated from the
   trailing daily returns (regressions on ``factor_returns`` if given, else a statistical model).

Every problem raises :class:`~shared.errors.InputError` whose message starts with the file and
the 1-based data row (the header is not counted: row 1 is line 2 of a CSV) and whose ``field``
is ``"<file>:<column>"``, e.g. ``prices.csv row 17: price 'abc' is not a number``.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from shared.calendar import CALENDAR_END, CALENDAR_START, trading_days_array
from shared.errors import InputError
from shared.market import (
    MAX_ABS_ALPHA,
    MAX_PRICE_USD,
    PRICE_QUANTUM,
    EstimatedRiskSource,
    MarketHistory,
    RiskSource,
    StaticRiskSource,
    coarse_price_reason,
    coarse_prices,
)
from shared.messages import RiskModel
from shared.risk_model import (
    TRADING_DAYS_PER_YEAR,
    make_risk_model,
    psd_violation,
    risk_model_arrays,
    validate_risk_model,
)
from shared.types import FloatArray

#: The one factor whose estimated loadings stay betas when a directory's ``factor_returns`` are
#: regressed on (every other factor's are standardised by default, as the synthetic market's
#: style loadings are: a factor tilt is a floor in standardised units).
MARKET_FACTOR = "market"

#: Benchmark weights of a date may sum to 1 ± this; they are then rescaled to sum to exactly 1.
WEIGHT_SUM_TOLERANCE = 0.01
#: File stems of a market directory.
PRICES, WEIGHTS, SECTORS = "prices", "benchmark_weights", "sectors"
LOADINGS, COVARIANCE, SPECIFIC, FACTOR_RETURNS = (
    "factor_loadings",
    "factor_covariance",
    "specific_variance",
    "factor_returns",
)
#: The cross-sectional alpha a market-neutral sleeve maximises (annualised, per date and name).
ALPHA = "alpha"
#: Sector of a name when the directory has no ``sectors`` file.
UNKNOWN_SECTOR = "Unknown"

Format = Literal["csv", "parquet"]
#: ``price``: > 0 and, like every rebalance's check, between :data:`PRICE_QUANTUM` and
#: :data:`MAX_PRICE_USD` (``shared.market``).
Sign = Literal["positive", "nonnegative", "any", "price"]
DateArray = npt.NDArray[np.datetime64]


# ------------------------------------------------------------------------------ reading tables


def find_file(directory: Path, stem: str, *, required: bool) -> Path | None:
    """``directory/stem.csv`` or ``directory/stem.parquet``.

    Raises:
        InputError: both exist, or neither and ``required``.
    """
    found = [directory / f"{stem}.{ext}" for ext in ("csv", "parquet")]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        raise InputError(
            f"{directory}: both {stem}.csv and {stem}.parquet exist; keep one", field=stem
        )
    if not found:
        if required:
            raise InputError(f"{directory}: {stem}.csv or {stem}.parquet is required", field=stem)
        return None
    return found[0]


#: pandas' message for a CSV line with more cells than the header (its line counts the header).
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (every cell read as text) or Parquet file as a DataFrame, columns stripped.

    Raises:
        InputError: the file cannot be parsed, or it has duplicate or empty column names.
    """
    try:
        if path.suffix == ".csv":
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
            if not isinstance(df.index, pd.RangeIndex):
                # pandas reads a first data row with one cell more than the header as an index
                # column (market audit: "date 'S00' is not a YYYY-MM-DD date"): a ragged row.
                width = len(df.columns)
                raise InputError(
                    f"{path.name} row 1: {width + 1} cells, the header has {width}",
                    field=path.name,
                )
            # pandas renames a repeated header ("price", "price.1"): compare the file's own.
            with path.open(newline="", encoding="utf-8-sig") as fh:
                header = next(csv.reader(fh), [])
            if len(header) == len(df.columns):
                df.columns = header
        else:
            df = pd.read_parquet(path)
    except Exception as exc:  # pandas/pyarrow raise many types; all mean "unreadable file"
        ragged = _RAGGED.search(str(exc))
        if ragged is not None:  # the row and the counts, not pandas' tokenizer message
            want, line, got = (int(x) for x in ragged.groups())
            raise InputError(
                f"{path.name} row {line - 1}: {got} cells, the header has {want}", field=path.name
            ) from exc
        what = " ".join(str(exc).split())  # one line (the tokenizer's messages end in "\n")
        raise InputError(f"{path.name}: cannot be read: {what}", field=path.name) from exc
    df.columns = [str(c).strip() for c in df.columns]
    if any(c == "" for c in df.columns):
        raise InputError(f"{path.name}: a column has an empty header", field=path.name)
    if len(set(df.columns)) != len(df.columns):
        dup = next(c for c in df.columns if list(df.columns).count(c) > 1)
        raise InputError(f"{path.name}: column {dup!r} appears twice", field=f"{path.name}:{dup}")
    return df


def _shown(value: object) -> str:
    """A cell as an error message shows it: text quoted (``'abc'``), any other value plain
    (a Parquet ``np.True_`` or ``np.int64(20240603)`` as ``True`` / ``20240603``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _err(fname: str, row: int | None, column: str, what: str) -> InputError:
    where = f"{fname} row {row}" if row is not None else fname
    return InputError(f"{where}: {what}", field=f"{fname}:{column}")


def _require(df: pd.DataFrame, fname: str, columns: Sequence[str]) -> None:
    for c in columns:
        if c not in df.columns:
            raise _err(fname, None, c, f"missing column {c!r} (has {list(df.columns)})")


def parse_dates(values: pd.Series, fname: str, column: str = "date") -> DateArray:
    """A column of ``YYYY-MM-DD`` dates (or Parquet date/timestamp values) as ``datetime64[D]``.

    Raises:
        InputError: naming the first row that is not a date.
    """
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        parsed = pd.Series(values)
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        ok = parsed.notna().to_numpy()
        days = parsed.to_numpy().astype("datetime64[D]")
    else:
        # Few distinct dates in a long file: parse each distinct value once.
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        text = [v.isoformat() if isinstance(v, dt.date) else str(v).strip() for v in uniques]
        uparsed = pd.to_datetime(pd.Series(text, dtype=object), format="%Y-%m-%d", errors="coerce")
        uok = uparsed.notna().to_numpy()
        udays = uparsed.to_numpy().astype("datetime64[D]")
        ok = uok[codes]
        days = udays[codes]
    bad = np.flatnonzero(~ok)
    if bad.size:
        i = int(bad[0])
        raise _err(
            fname, i + 1, column, f"{column} {_shown(values.iloc[i])} is not a YYYY-MM-DD date"
        )
    out: DateArray = days
    return out


def parse_numbers(
    values: pd.Series,
    fname: str,
    column: str,
    *,
    allow_empty: bool = False,
    exact: bool = False,
) -> FloatArray:
    """A column of numbers as floats; empty cells are NaN when ``allow_empty``.

    A float32 / float16 Parquet column is read as each value's shortest text in its own
    precision (a float32 0.1 is 0.1, not 0.10000000149011612), as the book's are; with
    ``exact`` (prices: money, to 4 decimals) it is refused instead — ~7 significant digits
    cannot hold $1,234.5678 (market audit: 49.1044 read back as 49.104400634765625).

    Raises:
        InputError: naming the first row that is not a number (or is empty, or infinite), or
            a narrow float column where ``exact``.
    """
    if values.dtype in (np.float32, np.float16):
        if exact:
            raise _err(
                fname,
                None,
                column,
                f"{column} is stored as {values.dtype}, which holds ~7 significant digits or "
                "fewer: write prices as float64 (double), decimal or text",
            )
        narrow = values.to_numpy()
        values = pd.Series([float(str(v)) for v in narrow], index=values.index, dtype=np.float64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64, na_value=np.nan)
        empty = np.isnan(out)
    else:
        text = values.astype(str).str.strip()
        empty = (text == "").to_numpy() | values.isna().to_numpy()
        out = pd.to_numeric(text.mask(empty, "nan"), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        bad = np.flatnonzero(np.isnan(out) & ~empty & (text.str.lower() != "nan").to_numpy())
        if bad.size:
            i = int(bad[0])
            raise _err(fname, i + 1, column, f"{column} {_shown(values.iloc[i])} is not a number")
        empty = empty | np.isnan(out)
    if not allow_empty and empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise _err(fname, i + 1, column, f"{column} is empty")
    inf = np.flatnonzero(np.isinf(out))
    if inf.size:
        i = int(inf[0])
        raise _err(fname, i + 1, column, f"{column} {_shown(values.iloc[i])} is not finite")
    result: FloatArray = out
    return result


def _symbols(values: pd.Series, fname: str, column: str = "symbol") -> list[str]:
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    utext = np.array(
        ["" if v is None or v is pd.NA else str(v).strip() for v in uniques], dtype=object
    )
    text = utext[codes]
    empty = np.flatnonzero(text == "")
    if empty.size:
        raise _err(fname, int(empty[0]) + 1, column, f"{column} is empty")
    return [str(x) for x in text]


def _is_long(df: pd.DataFrame, key: str, value: str) -> bool:
    return key in df.columns and value in df.columns and len(df.columns) == 3


def _check_sign(vals: FloatArray, fname: str, column: str, label: str, sign: Sign) -> None:
    if sign == "any":
        return
    bad = vals < 0 if sign == "nonnegative" else vals <= 0
    rows = np.flatnonzero(bad)
    if rows.size:
        i = int(rows[0])
        need = ">= 0" if sign == "nonnegative" else "> 0"
        raise _err(fname, i + 1, column, f"{label} {vals[i]:g} must be {need}")
    if sign == "price":
        # The bounds each rebalance checks (docs/rebalance.md §1): the night would otherwise
        # send the market and reject every account.  NaN (no price) passes both comparisons.
        rows = np.flatnonzero((vals < float(PRICE_QUANTUM)) | (vals > MAX_PRICE_USD))
        if rows.size:
            i = int(rows[0])
            raise _err(
                fname,
                i + 1,
                column,
                f"{label} {vals[i]:g} must be between {PRICE_QUANTUM} and {MAX_PRICE_USD:,.0f} "
                "(trades carry 4 decimals; the ledger books at most $1e10 a share)",
            )
        rows = np.flatnonzero(coarse_prices(vals))
        if rows.size:
            i = int(rows[0])
            raise _err(fname, i + 1, column, f"{label}: {coarse_price_reason(float(vals[i]))}")


def read_panel(
    path: Path, *, value: str, allow_empty_wide: bool = True, sign: Sign = "any"
) -> tuple[DateArray, list[str], FloatArray]:
    """A date×symbol table in long (``date,symbol,<value>``) or wide (``date,<SYM>…``) layout.

    Returns:
        Sorted unique dates, symbols (sorted), and the D×S values (NaN where absent).

    Raises:
        InputError: bad cells (file, row, column), duplicate (date, symbol) rows or dates.
    """
    dates, symbols, values, _ = _read_panel(
        path, value=value, allow_empty_wide=allow_empty_wide, sign=sign
    )
    return dates, symbols, values


def _read_panel(
    path: Path,
    *,
    value: str,
    allow_empty_wide: bool = True,
    sign: Sign = "any",
    exact: bool = False,
) -> tuple[DateArray, list[str], FloatArray, bool]:
    """:func:`read_panel`, and whether the file is in the long layout."""
    fname = path.name
    df = read_table(path)
    _require(df, fname, ["date"])
    if len(df) == 0:
        raise _err(fname, None, "date", "has no rows")
    dates = parse_dates(df["date"], fname)
    if _is_long(df, "symbol", value):
        syms = _symbols(df["symbol"], fname)
        vals = parse_numbers(df[value], fname, value, exact=exact)
        _check_sign(vals, fname, value, value, sign)
        key = pd.DataFrame({"d": dates, "s": syms})
        dup = np.flatnonzero(key.duplicated().to_numpy())
        if dup.size:
            i = int(dup[0])
            raise _err(
                fname, i + 1, "symbol", f"{syms[i]} on {dates[i]} appears twice (second time here)"
            )
        udates = np.unique(dates)
        usyms = sorted(set(syms))
        di = np.searchsorted(udates, dates)
        si = pd.Index(usyms).get_indexer(pd.Index(syms))
        out = np.full((len(udates), len(usyms)), np.nan)
        out[di, si] = vals
        return udates, usyms, out, True
    cols = [c for c in df.columns if c != "date"]
    if not cols:
        raise _err(fname, None, "date", f"needs symbol columns (wide) or date,symbol,{value}")
    if "symbol" in cols:
        raise _err(fname, None, "symbol", f"long layout needs exactly date,symbol,{value}")
    order = np.argsort(dates, kind="stable")
    sd = dates[order]
    dup = np.flatnonzero(sd[1:] == sd[:-1])
    if dup.size:
        i = int(order[dup[0] + 1])
        raise _err(fname, i + 1, "date", f"date {dates[i]} appears twice")
    columns = []
    for c in cols:
        vals = parse_numbers(df[c], fname, c, allow_empty=allow_empty_wide, exact=exact)
        _check_sign(vals, fname, c, f"{value} of {c}", sign)
        columns.append(vals)
    out = np.column_stack(columns)[order]
    symbols = sorted(cols)
    return sd, symbols, out[:, [cols.index(s) for s in symbols]], False


# ------------------------------------------------------------------------------ market pieces


def _check_sessions(dates: DateArray, fname: str) -> None:
    first = dt.date.fromisoformat(str(dates[0]))
    last = dt.date.fromisoformat(str(dates[-1]))
    if first < CALENDAR_START or last > CALENDAR_END:
        raise _err(fname, None, "date", f"dates must lie in {CALENDAR_START}..{CALENDAR_END}")
    sessions = trading_days_array(first, last)
    extra = np.setdiff1d(dates, sessions)
    if extra.size:
        raise _err(fname, None, "date", f"{extra[0]} is not an NYSE trading day")
    missing = np.setdiff1d(sessions, dates)
    if missing.size:
        raise _err(
            fname,
            None,
            "date",
            f"NYSE trading day {missing[0]} is missing ({missing.size} missing between "
            f"{first} and {last}); every session in the range needs a row",
        )


def _check_case_twins(symbols: list[str], fname: str, long_layout: bool) -> None:
    """Tickers are case-insensitive (docs/ledger.md): ``S00`` and ``s00`` in one market file are
    one security listed twice, refused here rather than as two (market audit: the snapshot
    refused them later without naming the file)."""
    seen: dict[str, str] = {}
    for sym in symbols:
        twin = seen.setdefault(sym.upper(), sym)
        if twin != sym:
            raise _err(
                fname,
                None,
                "symbol" if long_layout else sym,  # a wide file's column is the symbol
                f"{twin} and {sym} are one ticker in two spellings (tickers are "
                "case-insensitive); list it once",
            )


def load_prices(path: Path) -> tuple[DateArray, list[str], FloatArray]:
    """Prices (USD per share, between $0.0001 and $1e10) on every NYSE session of their range.

    A name's prices must be one contiguous run of sessions: NaN before its listing and after its
    delisting, never a gap in between.

    Raises:
        InputError: see :func:`read_panel`, plus prices outside $0.0001..$1e10, missing or
            non-trading dates, gaps, names with no price.
    """
    fname = path.name
    dates, symbols, P, long_layout = _read_panel(path, value="price", sign="price", exact=True)
    _check_case_twins(symbols, fname, long_layout)
    _check_sessions(dates, fname)
    listed = np.isfinite(P)
    for i in np.flatnonzero(~listed.all(axis=0)):
        rows = np.flatnonzero(listed[:, i])
        if rows.size == 0:
            raise _err(fname, None, symbols[i], f"{symbols[i]} has no price")
        gap = np.flatnonzero(~listed[rows[0] : rows[-1] + 1, i])
        if gap.size:
            t = int(rows[0] + gap[0])
            raise _err(
                fname,
                None,
                "price" if long_layout else symbols[i],
                f"{symbols[i]} has no price on {dates[t]} between its first ({dates[rows[0]]}) "
                f"and last ({dates[rows[-1]]}) price; fill the gap",
            )
    return dates, symbols, P


def load_benchmark_weights(
    path: Path, dates: DateArray, symbols: list[str], P: FloatArray
) -> FloatArray:
    """Daily benchmark weights (T×n) from weights given on some dates.

    Rules (docs/formats.md): a given row summing to 1 ± :data:`WEIGHT_SUM_TOLERANCE` is
    rescaled to 1 (else rejected); between and around given dates the weights drift with prices
    like a cap-weighted index with fixed shares (``w_t ∝ w_{t−1}·P_t/P_{t−1}``, backwards before
    the first given date); a name that stops trading leaves with its weight spread pro rata.

    Raises:
        InputError: unknown symbols or dates, negative weights, bad sums, weight on a name with
            no price that day.
    """
    fname = path.name
    wdates, wsyms, Wg = read_panel(path, value="weight", sign="nonnegative")
    Wg = np.nan_to_num(Wg, nan=0.0)
    unknown = sorted(set(wsyms) - set(symbols))
    if unknown:
        raise _err(fname, None, "symbol", f"symbol {unknown[0]} has no prices")
    bad_dates = np.setdiff1d(wdates, dates)
    if bad_dates.size:
        raise _err(fname, None, "date", f"{bad_dates[0]} is not a date of the prices file")
    T, n = P.shape
    given = np.zeros((len(wdates), n))
    given[:, pd.Index(symbols).get_indexer(pd.Index(wsyms))] = Wg
    rows = np.searchsorted(dates, wdates)
    for g, t in enumerate(rows):
        s = given[g].sum()
        if abs(s - 1.0) > WEIGHT_SUM_TOLERANCE:
            hint = " (percentages? give fractions)" if abs(s - 100.0) < 1.0 else ""
            raise _err(
                fname,
                None,
                "weight",
                f"weights on {wdates[g]} sum to {s:.6g}; they must sum to 1 "
                f"(±{WEIGHT_SUM_TOLERANCE}){hint}",
            )
        unpriced = np.flatnonzero((given[g] > 0) & ~np.isfinite(P[t]))
        if unpriced.size:
            raise _err(
                fname,
                None,
                "weight",
                f"{symbols[int(unpriced[0])]} has weight on {wdates[g]} but no price that day",
            )
        given[g] /= s
    W = np.full((T, n), np.nan)
    W[rows] = given
    growth = np.nan_to_num(P[1:] / P[:-1], nan=0.0)  # 0: the name does not trade on both days
    for t in range(rows[0] + 1, T):
        if np.isnan(W[t, 0]):
            W[t] = _renorm(W[t - 1] * growth[t - 1])
    for t in range(rows[0] - 1, -1, -1):
        inv = np.divide(1.0, growth[t], out=np.zeros(n), where=growth[t] > 0)
        W[t] = _renorm(W[t + 1] * inv)
    return W


def _renorm(w: FloatArray) -> FloatArray:
    s = w.sum()
    if s <= 0:
        raise InputError(
            "every benchmark name stopped trading; give weights on a later date",
            field="benchmark_weights:weight",
        )
    out: FloatArray = w / s
    return out


def load_sectors(path: Path | None, symbols: list[str]) -> tuple[str, ...]:
    """Sector per symbol (``symbol,sector``); all :data:`UNKNOWN_SECTOR` without a file.

    Raises:
        InputError: missing columns, duplicate symbols, a priced symbol without a sector.
    """
    if path is None:
        return tuple(UNKNOWN_SECTOR for _ in symbols)
    fname = path.name
    df = read_table(path)
    _require(df, fname, ["symbol", "sector"])
    syms = _symbols(df["symbol"], fname)
    sectors = _symbols(df["sector"], fname, "sector")
    table = _unique_map(syms, sectors, fname)
    missing = [s for s in symbols if s not in table]
    if missing:
        raise _err(fname, None, "symbol", f"no sector for {missing[0]} ({len(missing)} missing)")
    return tuple(table[s] for s in symbols)


def _unique_map(keys: list[str], values: list[str], fname: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for i, (k, v) in enumerate(zip(keys, values, strict=True)):
        if k in out:
            raise _err(fname, i + 1, "symbol", f"{k} appears twice")
        out[k] = v
    return out


def load_risk_model(directory: Path, symbols: list[str]) -> RiskModel | None:
    """The vendor model of the directory over ``symbols`` (in that order), or ``None``.

    Raises:
        InputError: only some of the three files, misaligned factors, missing symbols,
            a covariance that is not square, symmetric and PSD, negative specific variance.
    """
    paths = {s: find_file(directory, s, required=False) for s in (LOADINGS, COVARIANCE, SPECIFIC)}
    present = [s for s, p in paths.items() if p is not None]
    if not present:
        return None
    if len(present) < 3:
        absent = [s for s, p in paths.items() if p is None]
        raise InputError(
            f"{directory}: {', '.join(present)} given without {', '.join(absent)}; a risk model "
            "needs factor_loadings, factor_covariance and specific_variance",
            field=absent[0],
        )
    factors, F = _load_covariance(_present(paths[COVARIANCE]))
    B = _load_loadings(_present(paths[LOADINGS]), symbols, factors)
    d = _load_specific(_present(paths[SPECIFIC]), symbols)
    _check_units(paths, B, F, d)
    rm = make_risk_model(factors, B, F, d)
    validate_risk_model(rm, len(symbols))
    return rm


#: Plausible median annualised volatility of a model's names (total, from B F Bᵀ + D), and the
#: most a median specific volatility can be: equities sit near 20–50%/y; a model in daily units
#: reads ~1–3%, one in percent squared ~100× too large.  A median, so a few extreme names pass.
MEDIAN_VOL_RANGE = (0.03, 2.0)
MEDIAN_SPECIFIC_VOL_MAX = 1.5
#: The least a median specific volatility can be (annualised): a name's own risk runs near
#: 15–40%/y; daily variances read ~1–2.5%/y.  The total volatility alone let a daily-unit
#: specific file through (the factors dominate it): TE read 0.57% for a book at 6.8% (audit).
MEDIAN_SPECIFIC_VOL_MIN = 0.03
#: The least the model's most volatile factor can move (annualised): a market or sector factor
#: runs near 15–25%/y, style factors at 3–10%/y; in daily units the market reads ~1%/y.
MIN_TOP_FACTOR_VOL = 0.02
#: Most a directory's median factor may move, annualised: market factors run near 16%/y and
#: style factors at 3–10%/y; the same returns in percent read ~100× that.
MAX_MEDIAN_FACTOR_VOL = 2.0


def _check_units(
    paths: dict[str, Path | None], B: FloatArray, F: FloatArray, d: FloatArray
) -> None:
    """Refuse a vendor model whose units are evidently not annualised fractions
    (docs/formats.md: variances annualised, as fractions): the solve would trade on it."""
    if not len(d):
        return
    spec = _present(paths[SPECIFIC]).name
    cov = _present(paths[COVARIANCE]).name
    specific_vol = float(np.sqrt(np.median(d)))
    if specific_vol > MEDIAN_SPECIFIC_VOL_MAX:
        raise _err(
            spec,
            None,
            "specific_var",
            f"the median specific volatility is {specific_vol:.0%}/y: give annualised variances "
            "as fractions (0.04 for a 20%/y volatility), not percent squared",
        )
    total = np.sqrt(np.einsum("ij,jk,ik->i", B, F, B) + d)
    vol = float(np.median(total))
    lo, hi = MEDIAN_VOL_RANGE
    if not lo <= vol <= hi:
        hint = "daily units? annualise them ×252" if vol < lo else "percent squared? give fractions"
        raise _err(
            cov,
            None,
            "factor",
            f"the model's median annualised volatility of a name is {vol:.1%}, outside "
            f"{lo:.0%}..{hi:.0%} ({hint})",
        )
    if specific_vol < MEDIAN_SPECIFIC_VOL_MIN:
        raise _err(
            spec,
            None,
            "specific_var",
            f"the median specific volatility is {specific_vol:.2%}/y, below "
            f"{MEDIAN_SPECIFIC_VOL_MIN:.0%}: daily units? give annualised variances (×252)",
        )
    top = float(np.sqrt(np.max(np.diag(F)))) if F.size else 0.0
    if top < MIN_TOP_FACTOR_VOL:
        raise _err(
            cov,
            None,
            "factor",
            f"the most volatile factor moves {top:.2%}/y, below {MIN_TOP_FACTOR_VOL:.0%}: daily "
            "units? give annualised covariances (×252)",
        )


def _present(path: Path | None) -> Path:
    if path is None:  # callers check presence first; this only narrows the type
        raise InputError("a required market file is missing", field="market_dir")
    return path


def _load_covariance(path: Path) -> tuple[list[str], FloatArray]:
    fname = path.name
    df = read_table(path)
    _require(df, fname, ["factor"])
    rows = _symbols(df["factor"], fname, "factor")
    cols = [c for c in df.columns if c != "factor"]
    if not cols or not rows:
        raise _err(
            fname,
            None,
            "factor",
            "names no factor: a risk model needs at least one factor (a row and a column each)",
        )
    if rows != cols:
        raise _err(
            fname,
            None,
            "factor",
            f"rows {rows} and columns {cols} must name the same factors in the same order",
        )
    F = np.column_stack([parse_numbers(df[c], fname, c) for c in cols])
    scale = max(float(np.abs(F).max()), 1e-300)
    asym = np.argwhere(np.abs(F - F.T) > 1e-8 * scale)
    if asym.size:
        i, j = (int(x) for x in asym[0])
        raise _err(
            fname, i + 1, cols[j], f"not symmetric: {rows[i]}/{cols[j]} != {cols[j]}/{rows[i]}"
        )
    low = psd_violation(F)  # the rebalance's own check (one tolerance, shared.risk_model.PSD_TOL)
    if low is not None:
        raise _err(fname, None, "factor", f"not positive semidefinite (eigenvalue {low:.3g})")
    # Exactly symmetric from here: the asymmetry allowed above is rounding in the file.
    return rows, (F + F.T) / 2


def _load_loadings(path: Path, symbols: list[str], factors: list[str]) -> FloatArray:
    fname = path.name
    df = read_table(path)
    _require(df, fname, ["symbol"])
    if _is_long(df, "factor", "loading"):
        syms = _symbols(df["symbol"], fname)
        facs = _symbols(df["factor"], fname, "factor")
        vals = parse_numbers(df["loading"], fname, "loading")
        unknown = np.flatnonzero(pd.Index(factors).get_indexer(pd.Index(facs)) < 0)
        if unknown.size:
            i = int(unknown[0])
            raise _err(fname, i + 1, "factor", f"factor {facs[i]} is not in factor_covariance")
        key = pd.DataFrame({"s": syms, "f": facs})
        dup = np.flatnonzero(key.duplicated().to_numpy())
        if dup.size:
            i = int(dup[0])
            raise _err(fname, i + 1, "factor", f"{syms[i]}/{facs[i]} appears twice")
        table = pd.DataFrame({"s": syms, "f": facs, "v": vals}).pivot(
            index="s", columns="f", values="v"
        )
    else:
        cols = [c for c in df.columns if c != "symbol"]
        if sorted(cols) != sorted(factors):
            raise _err(
                fname,
                None,
                "symbol",
                f"factor columns {cols} do not match factor_covariance {factors}",
            )
        syms = _symbols(df["symbol"], fname)
        _unique_map(syms, syms, fname)
        table = pd.DataFrame({c: parse_numbers(df[c], fname, c) for c in cols}, index=syms)
    missing = [s for s in symbols if s not in table.index]
    if missing:
        raise _err(fname, None, "symbol", f"no loadings for {missing[0]} ({len(missing)} missing)")
    B = table.reindex(index=symbols, columns=factors).to_numpy(dtype=np.float64)
    if np.isnan(B).any():
        i, j = (int(x) for x in np.argwhere(np.isnan(B))[0])
        raise _err(fname, None, "loading", f"no {factors[j]} loading for {symbols[i]}")
    return B


def _load_specific(path: Path, symbols: list[str]) -> FloatArray:
    fname = path.name
    df = read_table(path)
    _require(df, fname, ["symbol", "specific_var"])
    syms = _symbols(df["symbol"], fname)
    vals = parse_numbers(df["specific_var"], fname, "specific_var")
    neg = np.flatnonzero(vals < 0)
    if neg.size:
        i = int(neg[0])
        raise _err(fname, i + 1, "specific_var", f"specific_var {vals[i]} is negative")
    table = dict(zip(_unique_map(syms, syms, fname), vals, strict=True))
    missing = [s for s in symbols if s not in table]
    if missing:
        raise _err(
            fname, None, "symbol", f"no specific_var for {missing[0]} ({len(missing)} missing)"
        )
    return np.array([table[s] for s in symbols], dtype=np.float64)


def load_alpha(path: Path | None, dates: DateArray, symbols: list[str]) -> FloatArray | None:
    """The directory's ``alpha`` table on the prices' dates and symbols (NaN where it gives
    none: no view, 0 in a sleeve's objective), or ``None`` without the file.  ``symbol,alpha``
    gives one signal for every date; ``date,symbol,alpha`` (long) or ``date,<SYM>,…`` (wide) one
    per date.

    Raises:
        InputError: a bad cell, an alpha beyond ±:data:`MAX_ABS_ALPHA` (annualised: 0.05 = 5%/y),
            a date or symbol the prices do not have (file, row and column named).
    """
    if path is None:
        return None
    fname = path.name
    head = read_table(path)
    if sorted(head.columns) == ["alpha", "symbol"]:
        # One signal for every date (tonight's, written by the firm's alpha model).
        a_syms = _symbols(head["symbol"], fname)
        _unique_map(a_syms, a_syms, fname)
        a_dates = dates
        values = np.tile(parse_numbers(head["alpha"], fname, "alpha"), (len(dates), 1))
    else:
        a_dates, a_syms, values = read_panel(path, value="alpha")
    if not np.isfinite(values).any():
        raise _err(
            fname, None, "alpha", "the alpha table gives no value (no rows, or every cell empty)"
        )
    big = np.flatnonzero(np.abs(np.nan_to_num(values, nan=0.0)) > MAX_ABS_ALPHA)
    if big.size:
        t, j = divmod(int(big[0]), values.shape[1])
        raise _err(
            fname,
            None,
            "alpha",
            f"alpha {values[t, j]} for {a_syms[j]} on {a_dates[t]} is beyond "
            f"±{MAX_ABS_ALPHA:g} (annualised: 0.05 = 5%/y)",
        )
    row = {str(d): i for i, d in enumerate(dates)}
    col = {s: j for j, s in enumerate(symbols)}
    for d in a_dates:
        if str(d) not in row:
            raise _err(fname, None, "date", f"date {d} is not a date of the prices")
    for sym in a_syms:
        if sym not in col:
            raise _err(fname, None, "symbol", f"symbol {sym} has no prices")
    out = np.full((len(dates), len(symbols)), np.nan)
    out[np.ix_([row[str(d)] for d in a_dates], [col[s] for s in a_syms])] = values
    return out


def load_factor_returns(path: Path, dates: DateArray) -> tuple[list[str], FloatArray]:
    """Daily factor returns (``date,<FACTOR>…``) aligned with the price dates.

    Raises:
        InputError: bad cells, or a price date without factor returns.
    """
    fname = path.name
    fdates, factors, X = read_panel(path, value="return", allow_empty_wide=False)
    missing = np.setdiff1d(dates, fdates)
    if missing.size:
        raise _err(fname, None, "date", f"no factor returns on {missing[0]} (a prices date)")
    aligned = X[np.searchsorted(fdates, dates)]
    if len(aligned) > 1 and len(factors):
        # Daily simple returns as fractions (docs/formats.md): factor returns in percent load
        # otherwise, with betas 100× too small and factor risk 100× too large (data audit).
        vol = aligned.std(axis=0) * np.sqrt(TRADING_DAYS_PER_YEAR)
        if float(np.median(vol)) > MAX_MEDIAN_FACTOR_VOL:
            worst = int(np.argmax(vol))
            raise _err(
                fname,
                None,
                factors[worst],
                f"the median factor's annualised volatility is {float(np.median(vol)):.0%} "
                f"({factors[worst]}: {float(vol[worst]):.0%}), above "
                f"{MAX_MEDIAN_FACTOR_VOL:.0%}: returns in percent? give fractions (0.01 = 1%)",
            )
    return factors, aligned


# ------------------------------------------------------------------------------ the directory


#: Every table a market directory may hold (docs/formats.md).
MARKET_TABLES = (
    PRICES,
    WEIGHTS,
    SECTORS,
    LOADINGS,
    COVARIANCE,
    SPECIFIC,
    FACTOR_RETURNS,
    ALPHA,
)


def _refuse_unknown_tables(directory: Path) -> None:
    """A CSV or Parquet file the directory may not hold is a misspelt name, never ignored
    (badinput audit: ``factor_return.csv`` silently switched the night to the statistical risk
    model, ``sector.csv`` ran it without sectors).  Other files (a README) are left alone.

    Raises:
        InputError: naming the file and the name it likely meant.
    """
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() in (".csv", ".parquet") and path.stem not in MARKET_TABLES:
            close = difflib.get_close_matches(path.stem, MARKET_TABLES, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}{path.suffix}?)" if close else ""
            raise InputError(
                f"{directory}: unknown table {path.name}{hint}; a market directory holds "
                f"{', '.join(MARKET_TABLES)} (.csv or .parquet; docs/formats.md)",
                field=path.name,
            )


def load_market_dir(
    path: str | Path,
    *,
    lookback: int = 252,
    halflife: float | None = 126.0,
    n_factors: int = 10,
    standardise: Sequence[str] | None = None,
) -> MarketHistory:
    """Load a market directory (see the module docstring and docs/formats.md).

    Args:
        path: the directory.
        lookback: days of returns per estimate when the risk model is estimated.
        halflife: exponential weighting of those returns (days).
        n_factors: factors of the statistical model (no factor returns given).
        standardise: factor names whose estimated loadings (betas to ``factor_returns``) are
            standardised cross-sectionally; ``None``: every factor but ``market`` (a factor
            tilt is a floor in standardised units, docs/formats.md "Style loadings"), ``()``:
            none.

    Returns:
        The history; its risk source is the loaded model (used on every date) if the directory
        has one, else an estimate from the trailing ``lookback`` days.

    Raises:
        InputError: naming the file, row and column of the first problem found.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(f"{directory} is not a directory", field="market_dir")
    _refuse_unknown_tables(directory)
    dates, symbols, P = load_prices(_present(find_file(directory, PRICES, required=True)))
    W = load_benchmark_weights(
        _present(find_file(directory, WEIGHTS, required=True)), dates, symbols, P
    )
    sectors = load_sectors(find_file(directory, SECTORS, required=False), symbols)
    rm = load_risk_model(directory, symbols)
    source: RiskSource
    factor_names: tuple[str, ...]
    if rm is not None:
        source = StaticRiskSource(model=rm)
        factor_names = tuple(rm.factor_names)
    else:
        fr_path = find_file(directory, FACTOR_RETURNS, required=False)
        if fr_path is None:
            source = EstimatedRiskSource(lookback=lookback, halflife=halflife, n_factors=n_factors)
            factor_names = ()
        else:
            names, X = load_factor_returns(fr_path, dates)
            source = EstimatedRiskSource(
                lookback=lookback,
                halflife=halflife,
                factor_returns=X,
                factor_names=tuple(names),
                standardise=tuple(
                    (f for f in names if f != MARKET_FACTOR) if standardise is None else standardise
                ),
            )
            factor_names = tuple(names)
    alpha = load_alpha(find_file(directory, ALPHA, required=False), dates, symbols)
    ret = np.nan_to_num(P[1:] / P[:-1] - 1.0, nan=0.0)
    level = 100.0 * np.concatenate([[1.0], np.cumprod(1.0 + (W[:-1] * ret).sum(axis=1))])
    return MarketHistory(
        alpha_table=alpha,
        symbols=tuple(symbols),
        sectors=sectors,
        dates=tuple(dt.date.fromisoformat(str(d)) for d in dates),
        prices=P,
        benchmark_weights=W,
        benchmark_level=level,
        factor_names=factor_names,
        risk_source=source,
        benchmark=directory.name,
    )


def write_market_dir(
    history: MarketHistory,
    path: str | Path,
    *,
    fmt: Format = "csv",
    layout: Literal["long", "wide"] = "long",
    risk_model: bool = True,
) -> Path:
    """Write a history in the directory format (e.g. a synthetic market, as an example).

    The risk model written is the history's model on its last date; it needs every symbol
    listed on that date.  An ``alpha_table`` (a directory's, read back) is written as the long
    ``alpha`` table; a synthetic market's generated signal is not.

    Raises:
        InputError: ``risk_model`` requested but some symbol is not listed on the last date.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    dates = [d.isoformat() for d in history.dates]
    syms = list(history.symbols)

    def panel(values: FloatArray, name: str, shape: str = layout) -> pd.DataFrame:
        wide = pd.DataFrame(values, columns=syms)
        wide.insert(0, "date", dates)
        if shape == "wide":
            return wide
        long = wide.melt(id_vars="date", var_name="symbol", value_name=name)
        keep = np.isfinite(long[name].to_numpy(dtype=np.float64))
        kept: pd.DataFrame = long.loc[keep].reset_index(drop=True)
        return kept

    weights = np.where(history.benchmark_weights > 0, history.benchmark_weights, np.nan)
    tables = {
        PRICES: panel(history.prices, "price"),
        WEIGHTS: panel(weights, "weight"),
        SECTORS: pd.DataFrame({"symbol": syms, "sector": list(history.sectors)}),
    }
    if risk_model:
        last = history.dates[-1]
        if len(history.listed(len(history.dates) - 1)) != len(syms):
            raise InputError(
                f"cannot write one risk model for all symbols: some are not listed on {last}",
                field="risk_model",
            )
        rm = history.risk_model(last)
        B, F, d = risk_model_arrays(rm)
        loadings = pd.DataFrame(B, columns=rm.factor_names)
        loadings.insert(0, "symbol", syms)
        if layout == "long":
            loadings = loadings.melt(id_vars="symbol", var_name="factor", value_name="loading")
        cov = pd.DataFrame(F, columns=rm.factor_names)
        cov.insert(0, "factor", rm.factor_names)
        tables[LOADINGS] = loadings
        tables[COVARIANCE] = cov
        tables[SPECIFIC] = pd.DataFrame({"symbol": syms, "specific_var": d})
    if history.alpha_table is not None and np.isfinite(history.alpha_table).any():
        # A directory's alpha table read back is written back (review audit: a copy lost the
        # sleeve's signal); long, so a name without a view stays without one.
        tables[ALPHA] = panel(history.alpha_table, "alpha", shape="long")
    for stem, df in tables.items():
        target = out / f"{stem}.{fmt}"
        if fmt == "csv":
            df.to_csv(target, index=False, float_format="%.12g")
        else:
            df.to_parquet(target, index=False)
    return out
