"""``taxview-runner``: the daily after-tax backtest (DESIGN.md §5).

Writes ``OUT/nav.csv``, ``OUT/summary.json``, ``OUT/nav.png`` and ``OUT/report.html`` (plus
``OUT/tradeoff.png`` with ``--baselines`` or ``--sweep``, and ``OUT/risk.png``).  User errors
(bad dates, unknown universe, bad data) print one line and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from producer.cli import OneLineParser, iso_date, out_path
from shared.errors import InputError, TaxviewError

PROG = "taxview-runner"


#: Largest ``--capital`` (USD 1 trillion): money is exact ``Decimal`` to the cent, and the
#: largest real books are far below this.
MAX_CAPITAL = Decimal(10) ** 12


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").replace("_", ""))
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from exc
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive amount")
    if value > MAX_CAPITAL:
        raise argparse.ArgumentTypeError(f"{text!r} is above the largest amount, {MAX_CAPITAL:,}")
    if value != value.quantize(Decimal("0.01")):
        raise argparse.ArgumentTypeError(f"{text!r} must be whole cents (USD to the cent)")
    # Plain cents: ``1e3`` is 1000.00 in every output (summary settings, not "1E+3").
    return value.quantize(Decimal("0.01"))


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if math.isnan(value) or not 0.0 <= value < 10.0:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range")
    return value


def _bps(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if math.isnan(value) or not 0.0 <= value <= 1000.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1000 bps")
    return value


def _tilt(text: str) -> tuple[str, float]:
    # The last colon splits: sector factors are named ``sector:Energy`` (``sector:Energy:0.1``).
    name, sep, sigmas = text.rpartition(":")
    try:
        value = float(sigmas)
    except ValueError:
        value = float("nan")
    if not sep or not name or not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected FACTOR:SIGMAS, e.g. quality:0.3 or sector:Energy:0.1"
        )
    return name, value


def _long_short(text: str) -> tuple[float, float]:
    long_text, sep, short_text = text.partition("/")
    try:
        long_pct, short_pct = float(long_text), float(short_text)
    except ValueError:
        long_pct = short_pct = math.nan
    if not sep or not (100 <= long_pct <= 400 and 0 <= short_pct <= 300):
        raise argparse.ArgumentTypeError(f"{text!r}: expected LONG/SHORT percent, e.g. 130/30")
    if not math.isclose(long_pct - short_pct, 100.0):
        raise argparse.ArgumentTypeError(f"{text!r}: long − short must be 100 (net 100%)")
    return long_pct / 100.0, short_pct / 100.0


def build_parser() -> argparse.ArgumentParser:
    """The ``taxview-runner`` argument parser."""
    p = OneLineParser(
        prog=PROG,
        description=(
            "Replay the nightly tax-aware rebalance day by day (NYSE sessions) and report "
            "after-tax NAV against the benchmark: nav.csv, summary.json, nav.png, report.html."
        ),
    )
    p.add_argument("--start", type=iso_date, required=True, help="first day (YYYY-MM-DD)")
    p.add_argument("--end", type=iso_date, required=True, help="last day (YYYY-MM-DD)")
    p.add_argument(
        "--strategy",
        choices=("direct-index", "long-short", "market-neutral"),
        default="direct-index",
        help="strategy of the account (default direct-index)",
    )
    p.add_argument(
        "--universe",
        default="synthetic:500",
        help="synthetic:N (deterministic from --seed), sp500-sample (bundled with skfolio: "
        "the 'data' extra), or a market-data directory (docs/formats.md); default synthetic:500",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic market (default 0)")
    p.add_argument(
        "--capital",
        type=_money,
        default=Decimal(1_000_000),
        help="starting cash, USD to the cent (1000000)",
    )
    p.add_argument(
        "--te-budget",
        type=_fraction,
        default=0.02,
        help="annualised ex-ante TE cap, above 0 (0.02 = 2%%)",
    )
    p.add_argument("--lambda-tax", type=_fraction, default=1.0, help="weight of the tax term (1)")
    p.add_argument("--lambda-te", type=_fraction, default=1.0, help="weight of the TE² term (1)")
    p.add_argument(
        "--tilt",
        type=_tilt,
        action="append",
        default=[],
        metavar="FACTOR:SIGMAS",
        help="minimum active exposure to a factor, in standardised units, e.g. quality:0.3 or "
        "sector:Energy:0.1 (the last colon splits; repeatable)",
    )
    p.add_argument(
        "--long-short",
        type=_long_short,
        default=None,
        metavar="LONG/SHORT",
        help="book shape of the long-short strategy in percent, e.g. 130/30 (the default): "
        "long 100–400, short 0–300, long − short = 100",
    )
    p.add_argument(
        "--exclude", action="append", default=[], metavar="SYMBOL", help="never hold SYMBOL"
    )
    p.add_argument(
        "--max-weight",
        type=_fraction,
        default=None,
        help="single-name cap as a weight in (0, 1] (default, each day: max(10%%, 1.25 × the "
        "largest benchmark weight of the run so far))",
    )
    p.add_argument(
        "--rebalance",
        choices=("daily", "weekly", "monthly"),
        default="daily",
        help="how often the account rebalances (every session is marked to market)",
    )
    p.add_argument(
        "--tax-netting",
        choices=("daily", "annual"),
        default="daily",
        help="daily: each day's ST/LT gains taxed and losses credited at the rates (default); "
        "annual: Schedule D netting, $3,000 ordinary offset, carry-forward "
        "(IRC §1211(b), §1212(b))",
    )
    p.add_argument("--st-rate", type=_fraction, default=0.37, help="short-term rate (0.37)")
    p.add_argument("--lt-rate", type=_fraction, default=0.20, help="long-term rate (0.20)")
    p.add_argument("--niit", type=_fraction, default=0.038, help="NIIT added to both (0.038)")
    p.add_argument(
        "--cost-bps",
        type=_bps,
        default=0.0,
        help="commission charged on each fill, bps of its amount, paid from cash and carried "
        "into the lots' basis and the sales' proceeds (IRS Pub. 550); a long-only account keeps "
        "2 × this of its NAV as a cash floor; default 0",
    )
    p.add_argument(
        "--baselines",
        action="store_true",
        help="also run hold-the-index and the threshold harvester (long-only, honouring "
        "--exclude; --strategy direct-index only) and compare on tax alpha vs TE",
    )
    p.add_argument(
        "--harvest-threshold",
        type=_fraction,
        default=None,
        help="threshold harvester (with --baselines): sell lots down more than this fraction "
        "(0.10)",
    )
    p.add_argument(
        "--sweep",
        action="append",
        default=None,
        metavar="PARAM=a,b,c",
        help="frontier: lambda_tax=a,b,c, lambda_te=a,b,c or te_budget=a,b,c "
        "(one optimizer run per value)",
    )
    p.add_argument(
        "--out",
        type=out_path,
        default=Path("runner-out"),
        help="output directory (default runner-out)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _config(args: argparse.Namespace) -> Any:
    from producer.backtest import BacktestConfig
    from shared.messages import FactorTilt, LongShortSpec, TaxRates

    return BacktestConfig(
        start=args.start,
        end=args.end,
        strategy=args.strategy,
        universe=args.universe,
        seed=args.seed,
        capital_usd=args.capital,
        te_budget=args.te_budget,
        lambda_tax=args.lambda_tax,
        lambda_te=args.lambda_te,
        tilts=tuple(FactorTilt(factor=f, min_exposure=s) for f, s in args.tilt),
        exclusions=tuple(args.exclude),
        max_weight=args.max_weight,
        rebalance=args.rebalance,
        tax_netting=args.tax_netting,
        rates=TaxRates(short_term=args.st_rate, long_term=args.lt_rate, niit=args.niit),
        trading_cost_bps=args.cost_bps,
        harvest_threshold=0.10 if args.harvest_threshold is None else args.harvest_threshold,
        long_short=None
        if args.long_short is None
        else LongShortSpec(long_w=args.long_short[0], short_w=args.long_short[1]),
    )


def _check_account_settings(config: Any) -> None:
    """Refuse the account settings the rebalance would refuse on the first day, before the
    market loads and ``--out`` is created: the same bounds as ``shared.rebalance``'s account
    validation (a TE budget above 0; a single-name cap in (0, 1]).

    Raises:
        InputError: naming the flag.
    """
    if not config.te_budget > 0:
        raise InputError(
            f"--te-budget {config.te_budget:g} must be above 0 (an annualised TE cap, 0.02 = 2%)",
            field="--te-budget",
        )
    if config.max_weight is not None and not 0 < config.max_weight <= 1:
        raise InputError(
            f"--max-weight {config.max_weight:g} must be above 0 and at most 1 "
            "(a single-name cap as a weight, 0.10 = 10%)",
            field="--max-weight",
        )
    from shared.rebalance import MAX_ABS_TILT

    for tilt in config.tilts:
        if not abs(tilt.min_exposure) <= MAX_ABS_TILT:
            raise InputError(
                f"--tilt {tilt.factor}:{tilt.min_exposure:g}: a floor within ±{MAX_ABS_TILT:g} "
                "standard deviations of active exposure",
                field="--tilt",
            )
    if config.tilts and config.strategy == "market-neutral":
        # A sleeve pins every factor exposure to zero: a floor would be dropped every day.
        raise InputError(
            "--tilt does nothing for --strategy market-neutral (every factor exposure is "
            "pinned to zero)",
            field="--tilt",
        )


def run(args: argparse.Namespace) -> int:
    """Run the backtest described by ``args`` and write the outputs.

    Raises:
        TaxviewError: bad input (dates, universe, data, settings).
    """
    from producer import reports
    from producer.backtest import (
        OptimizerPolicy,
        SweepParam,
        compare_at_equal_te,
        parse_sweep,
        simulate,
        summarize,
        sweep,
        window,
    )
    from producer.baselines import HoldIndexPolicy, ThresholdHarvestPolicy
    from producer.datasets import is_synthetic, load_universe
    from producer.taxes import Rates

    started = time.perf_counter()
    progress = not args.quiet
    config = _config(args)
    # Everything that can be refused is refused before the (long) runs, not after them.
    if config.end < config.start:
        raise InputError(f"--end {config.end} is before --start {config.start}", field="end")
    try:
        Rates.from_wire(config.rates)
    except InputError as exc:  # named by the flags, not by the account's fields
        flag = {"rates.short_term": "--st-rate", "rates.long_term": "--lt-rate"}.get(
            exc.field or "", "--niit"
        )
        if "NIIT" in exc.reason:
            flag = f"{flag}/--niit"
        raise InputError(exc.reason, field=flag) from exc
    if args.sweep and len(args.sweep) > 1:
        raise InputError("--sweep takes one parameter per run (give it once)", field="--sweep")
    sweep_spec = parse_sweep(args.sweep[0]) if args.sweep else None
    if args.seed and not is_synthetic(config.universe):
        # (0, the default, is what summary.json's settings record for any universe.)
        raise InputError(
            f"--seed {args.seed} draws a synthetic market; the universe {config.universe} is "
            "not one",
            field="--seed",
        )

    if args.long_short is not None and config.strategy != "long-short":
        raise InputError(
            f"--long-short shapes the long-short strategy, not {config.strategy} "
            "(add --strategy long-short)",
            field="--long-short",
        )
    if args.baselines and config.strategy != "direct-index":
        raise InputError(
            f"--baselines are long-only index baselines (hold the index, harvest into peers); "
            f"they compare with --strategy direct-index, not {config.strategy}",
            field="--baselines",
        )
    _check_account_settings(config)
    if args.harvest_threshold is not None and not args.baselines:
        raise InputError(
            "--harvest-threshold sets the threshold harvester of --baselines (add --baselines)",
            field="--harvest-threshold",
        )
    harvester = ThresholdHarvestPolicy(config.harvest_threshold) if args.baselines else None
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise TaxviewError(f"cannot create --out {out}: it is a file")
    market, reference = load_universe(
        config.universe, start=config.start, end=config.end, seed=config.seed
    )
    load_seconds = time.perf_counter() - started
    unknown = sorted(set(config.exclusions) - set(market.symbols))
    if unknown:
        raise InputError(
            f"{', '.join(s or repr(s) for s in unknown)} is not in the universe {config.universe}",
            field="--exclude",
        )
    if set(market.symbols) <= set(config.exclusions):
        raise InputError(
            f"--exclude names every name of the universe {config.universe}: nothing to hold",
            field="--exclude",
        )
    eligible = len(set(market.symbols) - set(config.exclusions))
    need = 1.0 - config.cash_band()[1]
    if (
        config.strategy == "direct-index"
        and config.max_weight is not None
        and config.max_weight * eligible < need - 1e-12
    ):
        # The book starts in cash: no day could invest it (fuzz audit: every day was held and
        # the headline read "tax alpha +8.24%/y").
        raise InputError(
            f"--max-weight {config.max_weight:g} × {eligible} names that may be held = "
            f"{config.max_weight * eligible:.4g} of NAV, below the {need:.4g} a direct-index "
            "book must invest",
            field="--max-weight",
        )
    t0, t1 = window(market, config.start, config.end)
    if config.strategy == "market-neutral" and not market.alpha(market.dates[t0]):
        raise InputError(
            f"the market-neutral strategy needs an alpha signal, and the universe "
            f"{config.universe} has none on {market.dates[t0]} (synthetic:N has one; a market "
            "directory needs an alpha table with values for every date of the window: "
            "docs/formats.md)",
            field="--strategy",
        )
    if config.strategy == "market-neutral" and getattr(market, "alpha_table", None) is not None:
        # A per-date table must cover the window: a night without a view is refused, not
        # solved on a zero signal (review audit, 2026-12-07).
        gap = next((d for d in market.dates[t0 : t1 + 1] if not market.alpha(d)), None)
        if gap is not None:
            raise InputError(
                f"the alpha table of {config.universe} gives no value on {gap}, inside the "
                f"window {config.start}..{config.end}: the market-neutral strategy needs a "
                "signal every night (docs/formats.md)",
                field="--strategy",
            )
    if config.tilts:
        # The first day's model (cached: the run reuses it) names the universe's factors.
        factors = market.risk_model(market.dates[t0]).factor_names
        for k, tilt in enumerate(config.tilts):
            if tilt.factor not in factors:
                raise InputError(
                    f"--tilt {tilt.factor}:{tilt.min_exposure:g}: the universe {config.universe} "
                    f"has no factor {tilt.factor!r} (its factors: {', '.join(factors)})",
                    field=f"--tilt[{k}]",
                )
            loads = market.risk_model(market.dates[t0]).loadings
            j = factors.index(tilt.factor)
            if all(row[j] == 0 for row in loads):
                raise InputError(
                    f"--tilt {tilt.factor}:{tilt.min_exposure:g}: no name of the universe "
                    f"{config.universe} loads on {tilt.factor} (an empty sector?)",
                    field=f"--tilt[{k}]",
                )
    # Created once every setting is accepted (and removed again, empty, when the solve itself
    # refuses the run): a refused run leaves no empty directory behind.
    with _out_dir(out):
        policy = OptimizerPolicy(config)
        main = simulate(market, policy, config, progress=progress)
        used = main.config or config
        opt = summarize(main, used)
        solver = main_solver(opt.get("diagnostics", {}).get("solvers", {}))

        baselines: dict[str, Any] = {}
        if harvester is not None:
            for base in (HoldIndexPolicy(), harvester):
                baselines[base.name] = summarize(
                    simulate(market, base, used, progress=progress), used
                )
        frontier: list[dict[str, Any]] = []
        if sweep_spec is not None:
            frontier = sweep(market, used, sweep_spec[0], sweep_spec[1], progress=progress)

        comparison: dict[str, Any] = {}
        if "threshold-harvest" in baselines:
            h = baselines["threshold-harvest"]
            pts = [(opt["realized_te"], opt["annual_tax_alpha"])]
            pts += [(p["realized_te"], p["annual_tax_alpha"]) for p in frontier]
            h_point = (h["realized_te"], h["annual_tax_alpha"])
            comparison = compare_at_equal_te(pts, h_point)
            if comparison["beats"] is None and h["realized_te"] > 0:
                # Not comparable yet: place one more optimizer run at the harvester's TE.  Above it,
                # cap the TE budget there; below it, the λ_te penalty (not the budget) holds TE
                # down, so scale λ_te by the squared TE ratio (TE² is what λ_te prices).
                te_opt = opt["realized_te"]
                param: SweepParam
                if te_opt > h["realized_te"]:
                    param, value = "te_budget", float(h["realized_te"])
                else:
                    param = "lambda_te"
                    value = used.lambda_te * (te_opt / h["realized_te"]) ** 2
                matched = sweep(market, used, param, [value], progress=progress)
                for point in matched:
                    point["matched_to"] = "threshold-harvest"
                frontier += matched
                pts += [(p["realized_te"], p["annual_tax_alpha"]) for p in matched]
                comparison = compare_at_equal_te(pts, h_point)

        seconds = time.perf_counter() - started
        contract = (
            "annual_tax_alpha",
            "realized_te",
            "pre_tax_active_return",
            "harvested_losses",
            "turnover",
            "wash_sales_created",
            "rebalances",
        )
        summary: dict[str, Any] = {k: opt[k] for k in contract}
        summary["seconds"] = seconds
        summary["seconds_optimizer_run"] = opt["seconds"]
        summary["seconds_market_load"] = load_seconds
        summary["te_budget"] = used.te_budget
        summary["solver"] = solver
        summary["window"] = {
            "start": main.dates[0].isoformat(),
            "end": main.dates[-1].isoformat(),
            "sessions": len(main.dates),
        }
        summary["settings"] = used.settings()
        if main.max_weight_used is not None:
            # The cap of the first and the last day: the default one follows the benchmark's
            # largest weight so far (producer.backtest.default_caps); null max_weight = default.
            summary["settings"]["max_weight_used"] = list(main.max_weight_used)
        # The run's own flags too, so the settings say everything that was run (runner audit).
        summary["settings"]["baselines"] = bool(args.baselines)
        summary["settings"]["sweep"] = args.sweep[0] if args.sweep else None
        if not args.baselines:  # only read with --baselines (the flag is refused without it)
            summary["settings"].pop("harvest_threshold", None)
        summary["optimizer"] = opt
        if reference is not None:
            ref = reference[-len(main.dates) :]
            summary["reference_index_return"] = float(ref[-1] / ref[0] - 1.0)
        if baselines:
            summary["baselines"] = baselines
        if frontier:
            summary["frontier"] = frontier
        if comparison:
            summary["comparison"] = comparison

        title = reports.chart_title(used.strategy, main.dates[0], main.dates[-1], solver)
        reports.write_nav_csv(out / "nav.csv", main)
        reports.write_summary(out / "summary.json", summary)
        reports.save_nav_png(out / "nav.png", main, title)
        tradeoff = None
        if baselines or frontier:
            policies: list[dict[str, Any]] = [{"label": "optimizer", **opt}]
            policies += [{"label": name, **block} for name, block in baselines.items()]
            tradeoff = reports.tradeoff_figure(
                policies, f"Tax alpha vs realized TE · {title}", frontier=frontier
            )
            reports.save_figure(out / "tradeoff.png", tradeoff)
            tradeoff = reports.tradeoff_figure(
                policies, f"Tax alpha vs realized TE · {title}", frontier=frontier
            )
        names, exposures = policy.exposure_matrix()
        risk = None
        if names:
            risk = reports.risk_panel_figure(
                policy.exposure_dates, names, exposures, policy.targets
            )
            reports.save_figure(out / "risk.png", risk)
            risk = reports.risk_panel_figure(
                policy.exposure_dates, names, exposures, policy.targets
            )
        # A reused --out keeps no file of an earlier run that this one did not write (runner
        # audit: an earlier --baselines run's tradeoff.png sat beside the new outputs).
        for name, written in (
            ("tradeoff.png", tradeoff is not None),
            ("risk.png", risk is not None),
        ):
            if not written:
                (out / name).unlink(missing_ok=True)
        reports.write_report_html(
            out / "report.html",
            title=title,
            summary=summary,
            nav_fig=reports.nav_figure(main, title),
            risk_fig=risk,
            tradeoff_fig=tradeoff,
            tickets=policy.tickets.tickets,
        )
        # A run whose every day was held (no trade: the solve found no feasible level) or relaxed
        # (the tilt or the TE budget dropped) still exits 0: the line says how many there were.
        statuses = opt.get("diagnostics", {}).get("statuses", {})
        line = (
            f"{title}: tax alpha {opt['annual_tax_alpha']:+.2%}/y, realized TE "
            f"{opt['realized_te']:.2%} (budget {used.te_budget:.2%}), wash sales "
            f"{opt['wash_sales_created']}, {opt['rebalances']} rebalances "
            f"({statuses.get('held', 0)} held, {statuses.get('relaxed', 0)} relaxed"
            + (f", {statuses['failed']} failed" if statuses.get("failed") else "")
            + "), "
            f"{seconds:.1f}s → {out}"
        )
        print(line)
        if comparison:
            print(comparison["verdict"])
        return 0


def main_solver(solvers: dict[str, int]) -> str:
    """The solver that produced most days' trades (``solvers``: days per solver); held days
    (``none``) do not count (runner audit: nine held days and one day of clarabel's trades
    titled the run "none"); ``none`` only when no day traded."""
    solved = {k: v for k, v in solvers.items() if k != "none"}
    return max(solved, key=solved.__getitem__) if solved else "none"


#: The files a run writes into ``--out``.
OUTPUTS = ("nav.csv", "summary.json", "nav.png", "report.html", "tradeoff.png", "risk.png")


@contextlib.contextmanager
def _out_dir(out: Path) -> Iterator[None]:
    """Create ``out`` and refuse one the run could not write into, before the backtest runs
    (runner audit: a directory named ``nav.csv`` inside it, or a read-only folder, ended the
    run with a traceback after all the work); remove it again if it was created here and a
    refusal (:class:`TaxviewError`) leaves it empty; a write that still fails is a one-line
    error naming the file."""
    first_new: Path | None = None  # the outermost directory this run creates
    probe = out
    while not probe.exists() and probe != probe.parent:
        first_new, probe = probe, probe.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaxviewError(f"cannot create --out {out}: {exc.strerror}") from exc
    try:
        for name in OUTPUTS:
            if (out / name).is_dir():
                raise TaxviewError(f"cannot write {out / name}: it is a directory")
        try:
            with tempfile.NamedTemporaryFile(dir=out, prefix=".taxview-probe-"):
                pass
        except OSError as exc:
            raise TaxviewError(f"cannot write into --out {out}: {exc.strerror or exc}") from exc
        try:
            yield
        except OSError as exc:
            # A failed write() names no file (a full disk): then the folder is named.
            where = exc.filename if exc.filename else f"into --out {out}"
            raise TaxviewError(f"cannot write {where}: {exc.strerror or exc}") from exc
    except (TaxviewError, KeyboardInterrupt):  # a refusal, or Ctrl-C (runner audit)
        if first_new is not None:  # every directory this run created, if left empty
            level = out
            while level.is_dir() and not any(level.iterdir()):
                level.rmdir()
                if level == first_new:
                    break
                level = level.parent
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taxview-runner`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(args)
    except TaxviewError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
