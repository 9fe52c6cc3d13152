"""Backtest outputs: ``nav.csv``, ``summary.json``, ``nav.png`` and a self-contained report.

Contract (DESIGN.md §5): ``nav.csv`` starts with exactly the columns
``date,after_tax_nav,pre_tax_nav,benchmark_nav,cum_realized_st,cum_realized_lt,tax_saved``
(then extra columns: ``liquidation_nav,cash,taxes_paid,net_tax``); ``nav.png`` draws the after-tax
NAV dark and the benchmark NAV grey, both from the starting capital, titled
"strategy · start–end · solver".  Money columns are written to the cent.

Charts use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from producer.backtest import RunResult
from shared.ledger import cents

#: The contract's leading columns of ``nav.csv``, in order.
NAV_COLUMNS = (
    "date",
    "after_tax_nav",
    "pre_tax_nav",
    "benchmark_nav",
    "cum_realized_st",
    "cum_realized_lt",
    "tax_saved",
)
#: Extra columns after the contract's.
NAV_EXTRA_COLUMNS = ("liquidation_nav", "cash", "taxes_paid", "net_tax")

DARK = "#111111"
GREY = "#9a9a9a"


def _usd(x: float | Decimal) -> str:
    if isinstance(x, Decimal):
        return str(cents(x))
    return f"{x:.2f}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk leaves no half-written .tmp behind
        raise


def write_nav_csv(path: Path, run: RunResult) -> None:
    """Write the daily series of ``run`` to ``path`` (contract columns first)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(NAV_COLUMNS + NAV_EXTRA_COLUMNS)
    exact = len(run.pre_tax_usd) == len(run.dates)
    for k, day in enumerate(run.dates):
        # After-tax NAV = pre-tax NAV − net tax, both exact to the cent (no float rounding).
        pre: float | Decimal = run.pre_tax_usd[k] if exact else float(run.pre_tax_nav[k])
        after: float | Decimal = (
            run.pre_tax_usd[k] - run.net_tax[k] if exact else float(run.after_tax_nav[k])
        )
        w.writerow(
            [
                day.isoformat(),
                _usd(after),
                _usd(pre),
                _usd(float(run.benchmark_nav[k])),
                _usd(run.cum_realized_st[k]),
                _usd(run.cum_realized_lt[k]),
                _usd(run.tax_saved[k]),
                _usd(float(run.liquidation_nav[k])),
                _usd(run.cash[k]),
                _usd(run.taxes_paid[k]),
                _usd(run.net_tax[k]),
            ]
        )
    _atomic_write(path, buf.getvalue())


def _json_default(obj: object) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by ``None``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    """Write ``summary.json`` (sorted keys are not used: the contract fields come first)."""
    text = json.dumps(_finite(dict(summary)), indent=2, default=_json_default)
    _atomic_write(path, text + "\n")


def _money_axis(ax: Any) -> None:
    """Dollar ticks in millions, with as many decimals as the tick spacing needs (a short
    window moves the NAV by thousands: two decimals printed "$1.00M" twice)."""

    def money(v: float, _: int | None) -> str:
        locs = np.asarray(ax.yaxis.get_majorticklocs(), dtype=float)
        step = float(np.min(np.diff(locs))) if len(locs) > 1 else 1e6
        decimals = 2 if step <= 0 else max(2, min(6, -math.floor(math.log10(step / 1e6))))
        return f"${v / 1e6:,.{decimals}f}M"

    ax.yaxis.set_major_formatter(FuncFormatter(money))


def nav_figure(run: RunResult, title: str) -> Figure:
    """After-tax NAV (dark) against benchmark NAV (grey), both from the starting capital."""
    fig, ax = plt.subplots(figsize=(10, 5.2), dpi=110)
    dates = np.array(run.dates, dtype="datetime64[D]")
    # The market-neutral sleeve's benchmark is cash (a flat line), not an index's total return.
    neutral = run.config is not None and run.config.strategy == "market-neutral"
    label = "Cash benchmark" if neutral else "Benchmark NAV (total return)"
    ax.plot(dates, run.benchmark_nav, color=GREY, lw=1.6, label=label)
    ax.plot(dates, run.after_tax_nav, color=DARK, lw=1.6, label="After-tax NAV")
    start = float(run.benchmark_nav[0])
    ax.axhline(start, color="#cccccc", lw=0.8, ls=":", zorder=0)
    ax.set_title(title, fontsize=12)
    ax.margins(x=0.08)
    ax.set_ylabel("NAV")
    _money_axis(ax)
    ax.grid(alpha=0.25)
    # A flat cash benchmark sits mid-chart, where "upper left" put the legend on top of it
    # (runner audit): matplotlib's "best" finds the corner the lines leave free.
    ax.legend(loc="best" if neutral else "upper left", frameon=False)
    at_end, b_end = float(run.after_tax_nav[-1]), float(run.benchmark_nav[-1])
    # The higher end value labelled above its line, the lower below, so they never overlap.
    dark_above = at_end >= b_end
    for value, color, above in ((at_end, DARK, dark_above), (b_end, GREY, not dark_above)):
        ax.annotate(
            f"${value:,.0f}",
            (dates[-1], value),
            color=color,
            fontsize=8,
            ha="left",
            va="bottom" if above else "top",
            xytext=(2, 2 if above else -2),
            textcoords="offset points",
        )
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def chart_title(strategy: str, start: dt.date, end: dt.date, solver: str) -> str:
    """``strategy · start–end · solver``."""
    return f"{strategy} · {start.isoformat()}–{end.isoformat()} · {solver}"


def save_nav_png(path: Path, run: RunResult, title: str) -> None:
    """Render :func:`nav_figure` to ``path``."""
    fig = nav_figure(run, title)
    fig.savefig(path, bbox_inches="tight")  # keeps the end-value labels inside the image
    plt.close(fig)


def tradeoff_figure(
    points: Sequence[Mapping[str, Any]], title: str, *, frontier: Sequence[Mapping[str, Any]] = ()
) -> Figure:
    """Tax alpha against realized TE: one marker per policy, plus the optimizer's frontier.

    Args:
        points: ``{"label", "realized_te", "annual_tax_alpha"}`` per policy.
        title: chart title.
        frontier: sweep points (``realized_te``, ``annual_tax_alpha`` and the swept setting).
    """
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    swept = ("lambda_tax", "lambda_te", "te_budget")
    # A point the runner added at the harvester's TE (``matched_to``) may vary another setting
    # than the sweep: it is drawn on its own, labelled with its own setting.
    for p in (p for p in frontier if "matched_to" in p):
        own = next(k for k in p if k in swept)
        ax.scatter(p["realized_te"], p["annual_tax_alpha"], marker="x", color=DARK, s=40)
        ax.annotate(
            f"{own}={p[own]:g} (at {p['matched_to']}'s TE)",
            (p["realized_te"], p["annual_tax_alpha"]),
            fontsize=7,
            xytext=(4, -10),
            textcoords="offset points",
        )
    frontier = [p for p in frontier if "matched_to" not in p]
    if frontier:
        fr = sorted(frontier, key=lambda p: p["realized_te"])
        key = next(k for k in fr[0] if k in swept)
        ax.plot(
            [p["realized_te"] for p in fr],
            [p["annual_tax_alpha"] for p in fr],
            "-o",
            color=DARK,
            ms=4,
            lw=1.2,
            label=f"optimizer frontier ({key})",
        )
        for p in fr:
            ax.annotate(
                f"{p[key]:g}",
                (p["realized_te"], p["annual_tax_alpha"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
    markers = {
        "optimizer": ("D", DARK),
        "threshold-harvest": ("s", "#c0504d"),
        "hold-index": ("o", GREY),
    }
    for p in points:
        marker, color = markers.get(str(p["label"]), ("^", "#4f81bd"))
        ax.scatter(
            [p["realized_te"]],
            [p["annual_tax_alpha"]],
            marker=marker,
            color=color,
            s=60,
            zorder=3,
            label=str(p["label"]),
        )
    ax.axhline(0, color="#cccccc", lw=0.8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_xlabel("Realized tracking error (annualised)")
    ax.set_ylabel("Annual tax alpha (after-tax − benchmark)")
    ax.set_title(title, fontsize=11)
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def risk_panel_figure(
    dates: Sequence[dt.date],
    names: Sequence[str],
    exposures: np.ndarray,
    targets: Mapping[str, float],
    *,
    max_lines: int = 8,
) -> Figure:
    """Active factor exposures over time against their targets (dashed), the console's panel.

    Shows the factors with a target plus the largest mean absolute exposures, at most
    ``max_lines``.
    """
    fig, ax = plt.subplots(figsize=(10, 4.6), dpi=110)
    x = np.array(dates, dtype="datetime64[D]")
    if exposures.size:
        mean_abs = np.nanmean(np.abs(exposures), axis=0)
        order = [i for i, f in enumerate(names) if f in targets]
        order += [int(i) for i in np.argsort(-mean_abs) if names[int(i)] not in targets]
        colors = plt.get_cmap("tab10")
        for c, i in enumerate(order[:max_lines]):
            ax.plot(x, exposures[:, i], lw=1.1, color=colors(c % 10), label=names[i])
            if names[i] in targets:
                ax.axhline(
                    targets[names[i]],
                    color=colors(c % 10),
                    ls="--",
                    lw=1.0,
                    label=f"{names[i]} target ≥ {targets[names[i]]:g}",
                )
    ax.axhline(0, color="#888888", lw=0.8)
    ax.set_title("Active factor exposures (standardised loadings) vs targets")
    ax.set_ylabel("Bᵀ(w − w_b)")
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=7, ncol=3, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _png_b64(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pct(x: Any) -> str:
    return "—" if x is None else f"{float(x):.2%}"


def write_report_html(
    path: Path,
    *,
    title: str,
    summary: Mapping[str, Any],
    nav_fig: Figure,
    risk_fig: Figure | None,
    tradeoff_fig: Figure | None,
    tickets: Mapping[str, Sequence[Mapping[str, Any]]],
) -> None:
    """A self-contained HTML report (charts inlined as PNG)."""
    e = html.escape
    rows = []
    blocks = [("optimizer", summary.get("optimizer", {})), *summary.get("baselines", {}).items()]
    for label, block in blocks:
        if not block:
            continue
        rows.append(
            "<tr>"
            f"<td>{e(label)}</td><td>{_pct(block.get('annual_tax_alpha'))}</td>"
            f"<td>{_pct(block.get('realized_te'))}</td>"
            f"<td>{_pct(block.get('pre_tax_active_return'))}</td>"
            f"<td>{_pct(block.get('tax_savings_pct_nav'))}</td>"
            f"<td>{_pct(block.get('turnover'))}</td>"
            f"<td>{e(str(block.get('wash_sales_created', '')))}</td></tr>"
        )
    years = summary.get("optimizer", {}).get("by_year", {})
    year_rows = "".join(
        f"<tr><td>{e(y)}</td><td>{_pct(v['tax_alpha'])}</td>"
        f"<td>{_pct(v['tax_savings_pct_nav'])}</td><td>{_pct(v['realized_te'])}</td>"
        f"<td>{_pct(v['pre_tax_active_return'])}</td>"
        f"<td>{e(summary.get('optimizer', {}).get('harvested_losses', {}).get(y, '0.00'))}</td>"
        "</tr>"
        for y, v in years.items()
    )
    ticket_rows = []
    for reason, items in tickets.items():
        for t in items:
            score = t.get("factor_score")
            ticket_rows.append(
                "<tr>"
                + "".join(
                    f"<td>{e(str(v))}</td>"
                    for v in (
                        t["date"],
                        t["symbol"],
                        t["side"],
                        t["quantity"],
                        t["price"],
                        t["notional_usd"],
                        t["lot_id"],
                        reason,
                        t.get("driver") or "",
                        "" if score is None else f"{score:+.2f}",
                    )
                )
                + "</tr>"
            )
    verdict = summary.get("comparison", {}).get("verdict", "")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ddd;padding:4px 8px;"
        "font-size:13px;text-align:right}th{background:#f4f4f4}td:first-child{text-align:left}"
        ".verdict{font-weight:bold;padding:.6em;background:#f7f7e8}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<img alt='NAV' src='data:image/png;base64,{_png_b64(nav_fig)}'>",
        "<h2>Policies</h2><table><tr><th>policy</th><th>annual tax alpha</th>"
        "<th>realized TE</th><th>pre-tax active</th><th>tax saved % NAV/y</th><th>turnover</th>"
        "<th>wash sales</th></tr>",
        *rows,
        "</table>",
    ]
    if verdict:
        parts.append(f"<p class='verdict'>{e(verdict)}</p>")
    if tradeoff_fig is not None:
        parts.append(
            f"<img alt='tax alpha vs TE' src='data:image/png;base64,{_png_b64(tradeoff_fig)}'>"
        )
    parts += [
        "<h2>Optimizer by year</h2><table><tr><th>year</th><th>tax alpha</th>"
        "<th>tax saved % NAV</th><th>realized TE</th>"
        "<th>pre-tax active</th><th>harvested losses (USD)</th></tr>",
        year_rows,
        "</table>",
    ]
    if risk_fig is not None:
        parts += [
            "<h2>Risk panel</h2>",
            f"<img alt='risk panel' src='data:image/png;base64,{_png_b64(risk_fig)}'>",
        ]
    parts += [
        "<h2>Sample trade tickets</h2><table><tr><th>date</th><th>symbol</th><th>side</th>"
        "<th>shares</th><th>price</th><th>notional</th><th>lot</th><th>reason</th>"
        "<th>driver</th><th>factor score</th></tr>",
        *ticket_rows,
        "</table>",
        "<h2>Settings</h2><pre>",
        e(json.dumps(summary.get("settings", {}), indent=2, default=_json_default)),
        "</pre></body></html>",
    ]
    _atomic_write(path, "\n".join(parts))


def save_figure(path: Path, fig: Figure) -> None:
    """Save and close a figure."""
    fig.savefig(path)
    plt.close(fig)
