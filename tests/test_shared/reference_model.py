"""An independent reference formulation of the per-account rebalance (DESIGN §2), in CVXPY.

Written straight from the request JSON, without reading ``shared/rebalance.py`` or
``shared/optimizer/*``: it exists so that the product's solve can be checked against a second,
separately written model the way outside reviewers will check it.

Model (all weights are fractions of the NAV ``V`` = lots at today's prices + cash):

* per-lot sells ``u_j ∈ [0, Q_j p_i / V]`` and buys ``β_i ≥ 0``; ``w = w₀ − A u + β``;
* cash ``w_c = 1 − Σw`` within ``[min_cash_w, max_cash_w]``; ``0 ≤ w ≤ max_weight``;
  exclusions ``w_i = 0``; ``TE = ‖[L_Fᵀ Bᵀ(w − w_b); √d ∘ (w − w_b)]‖ ≤ te_budget`` (factor form,
  annualised); tilts ``B_fᵀ(w − w_b) ≥ t_f``; optional turnover and realized-gain budgets;
* tax cost ``Σ τ_j u_j`` with ``τ_j = rate_j (p − c_j)/p``; ``rate_j`` is short-term + NIIT when
  the lot has been held one year or less and long-term + NIIT otherwise (IRC §1222: long-term
  only when held *more* than one year; the holding period starts at the lot's ``acquired`` date,
  which already carries any tacking under IRC §1223(3));
* wash sales (IRC §1091, IRS Pub 550), household-wide and IRAs included: a loss lot of a name
  (or a substantially identical one) purchased in any household account within the last 30 days
  gets no loss benefit (``τ_j = 0``), or, with ``block_window_loss_sales``, may not be sold at a
  loss at all; a name with a taxable loss sale within the last 30 days may not be bought;
* objective ``λ_te TE² + λ_tax Σ τ_j u_j + κ (Σu + Σβ)`` with ``κ = trading_cost_bps / 1e4``;
  solved with CLARABEL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import Any

import cvxpy as _cvxpy
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: cvxpy ships no type information worth checking against; treat it as dynamic.
cp: Any = _cvxpy

#: IRC §1091(a): the wash-sale window is 30 days before and after the sale.
WASH_WINDOW_DAYS = 30
CENT = Decimal("0.01")


def cents(x: Decimal) -> Decimal:
    """Round to the cent, half up."""
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def is_long_term(acquired: dt.date, sold: dt.date) -> bool:
    """IRC §1222(3): long-term only when held *more than* one year.

    The holding period starts the day after ``acquired`` (IRS Pub 550, "Holding period"), so a
    lot sold on the one-year anniversary is still short-term; a Feb 29 purchase's anniversary
    is Feb 28 of the next year.
    """
    try:
        anniversary = acquired.replace(year=acquired.year + 1)
    except ValueError:  # Feb 29 → Feb 28
        anniversary = acquired.replace(year=acquired.year + 1, day=28)
    return sold > anniversary


@dataclass(frozen=True)
class RefLot:
    """One open long taxable lot of the account."""

    lot_id: str
    symbol: str
    index: int
    quantity: Decimal
    basis_usd: Decimal
    acquired: dt.date

    @property
    def basis_per_share(self) -> Decimal:
        """Whole-lot basis / shares (USD per share)."""
        return self.basis_usd / self.quantity


@dataclass
class RefData:
    """The request, as arrays of the reference model."""

    as_of: dt.date
    symbols: list[str]
    prices: FloatArray
    w_b: FloatArray
    loadings: FloatArray
    factor_names: list[str]
    factor_cov: FloatArray
    specific_var: FloatArray
    lots: list[RefLot]
    cash_usd: Decimal
    nav_usd: Decimal
    nav: float
    w0: FloatArray
    lot_cap: FloatArray
    gain_frac: FloatArray
    rate: FloatArray
    tau: FloatArray
    washed_loss_lot: npt.NDArray[np.bool_]
    wash_window_names: set[str]
    buy_blocked_names: set[str]
    exclusions: set[str]
    account: dict[str, Any]
    tilts: list[tuple[str, float]] = field(default_factory=list)

    def index_of(self, symbol: str) -> int:
        """Position of ``symbol`` in the universe."""
        return self.symbols.index(symbol)


def _identical_closure(groups: list[list[str]], names: set[str]) -> set[str]:
    """Names plus every name declared substantially identical to one of them (IRC §1091)."""
    out = set(names)
    for group in groups:
        if out & set(group):
            out |= set(group)
    return out


def build_reference_data(req: dict[str, Any]) -> RefData:
    """Turn a request (decoded JSON dict) into the reference model's arrays."""
    acct = req["account"]
    acct_id = acct["account_id"]
    as_of = dt.date.fromisoformat(req["as_of"])
    mkt = req["market"]
    symbols: list[str] = list(mkt["symbols"])
    pos = {s: i for i, s in enumerate(symbols)}
    prices = np.asarray(mkt["prices"], dtype=float)
    rm = mkt["risk_model"]
    ledger = req["ledger"]
    groups = [list(g) for g in ledger.get("identical", [])] + [
        list(g) for g in acct.get("identical", [])
    ]

    lots: list[RefLot] = []
    for lot in ledger["lots"]:
        if lot["account"] != acct_id or lot.get("short", False):
            continue
        lots.append(
            RefLot(
                lot_id=lot["lot_id"],
                symbol=lot["symbol"],
                index=pos[lot["symbol"]],
                quantity=Decimal(lot["quantity"]),
                basis_usd=Decimal(lot["cost_basis_usd"]),
                acquired=dt.date.fromisoformat(lot["acquired"]),
            )
        )
    cash_usd = Decimal(acct.get("cash_usd", "0"))
    nav_usd = cash_usd + sum(
        (lot.quantity * Decimal(repr(float(prices[lot.index]))) for lot in lots), Decimal(0)
    )
    nav = float(nav_usd)

    n = len(symbols)
    w0 = np.zeros(n)
    lot_cap = np.zeros(len(lots))
    gain_frac = np.zeros(len(lots))
    rate = np.zeros(len(lots))
    rates = acct.get("rates", {})
    st = float(rates.get("short_term", 0.37)) + float(rates.get("niit", 0.038))
    lt = float(rates.get("long_term", 0.20)) + float(rates.get("niit", 0.038))
    for j, lot in enumerate(lots):
        p = prices[lot.index]
        lot_cap[j] = float(lot.quantity) * p / nav
        w0[lot.index] += lot_cap[j]
        gain_frac[j] = (p - float(lot.basis_per_share)) / p
        rate[j] = lt if is_long_term(lot.acquired, as_of) else st

    window_start = as_of - dt.timedelta(days=WASH_WINDOW_DAYS)
    # IRC §1091(a): a purchase of the name anywhere in the household (IRAs included, Rev. Rul.
    # 2008-5) within the 30 days before the sale makes a loss sale today a wash sale.  The shares
    # sold cannot be their own replacement (IRS Pub 550; Rev. Rul. 56-602: shares of the same
    # purchase kept after a partial loss sale are not replacement shares), so a purchase only
    # washes *other* lots.
    window_buys = [
        (rp["lot_id"], _identical_closure(groups, {rp["symbol"]}))
        for rp in ledger.get("recent_purchases", [])
        if not rp.get("short", False)
        and window_start <= dt.date.fromisoformat(rp["date"]) <= as_of
        and Decimal(rp["quantity"]) > 0
    ]
    wash_window_names: set[str] = set().union(*(names for _, names in window_buys))
    # ...and a taxable loss sale within the last 30 days makes a purchase today a replacement.
    sold_at_loss = {
        pl["symbol"]
        for pl in ledger.get("pending_losses", [])
        if window_start <= dt.date.fromisoformat(pl["date_sold"]) <= as_of
    }
    buy_blocked_names = _identical_closure(groups, sold_at_loss)

    washed = np.array(
        [
            gain_frac[j] < 0
            and any(lot.symbol in names and lid != lot.lot_id for lid, names in window_buys)
            for j, lot in enumerate(lots)
        ],
        dtype=bool,
    )
    tau = rate * gain_frac
    tau[washed] = 0.0

    return RefData(
        as_of=as_of,
        symbols=symbols,
        prices=prices,
        w_b=np.asarray(mkt["benchmark_weights"], dtype=float),
        loadings=np.asarray(rm["loadings"], dtype=float),
        factor_names=list(rm["factor_names"]),
        factor_cov=np.asarray(rm["factor_cov"], dtype=float),
        specific_var=np.asarray(rm["specific_var"], dtype=float),
        lots=lots,
        cash_usd=cash_usd,
        nav_usd=nav_usd,
        nav=nav,
        w0=w0,
        lot_cap=lot_cap,
        gain_frac=gain_frac,
        rate=rate,
        tau=tau,
        washed_loss_lot=washed,
        wash_window_names=wash_window_names,
        buy_blocked_names=buy_blocked_names,
        exclusions=set(acct.get("exclusions", [])),
        account=acct,
        tilts=[(t["factor"], float(t["min_exposure"])) for t in acct.get("tilts", [])],
    )


def lot_name_matrix(d: RefData) -> FloatArray:
    """``A``: n×m, ``A[i, j] = 1`` when lot ``j`` is of name ``i``."""
    a = np.zeros((len(d.symbols), len(d.lots)))
    for j, lot in enumerate(d.lots):
        a[lot.index, j] = 1.0
    return a


def te_squared(d: RefData, w: FloatArray) -> float:
    """Annualised ``(w−w_b)ᵀ(B F Bᵀ + diag d)(w−w_b)``, computed in factor form."""
    a = w - d.w_b
    y = d.loadings.T @ a
    return float(y @ d.factor_cov @ y + np.sum(d.specific_var * a * a))


def active_exposures(d: RefData, w: FloatArray) -> dict[str, float]:
    """``Bᵀ(w − w_b)`` per factor."""
    y = d.loadings.T @ (w - d.w_b)
    return dict(zip(d.factor_names, (float(v) for v in y), strict=True))


def objective_value(d: RefData, u: FloatArray, beta: FloatArray) -> float:
    """The reference objective at given sells ``u`` (per lot) and buys ``β`` (per name)."""
    acct = d.account
    w = d.w0 - lot_name_matrix(d) @ u + beta
    kappa = float(acct.get("trading_cost_bps", 5.0)) / 1e4
    return (
        float(acct.get("lambda_te", 1.0)) * te_squared(d, w)
        + float(acct.get("lambda_tax", 1.0)) * float(d.tau @ u)
        + kappa * float(u.sum() + beta.sum())
    )


@dataclass
class RefSolution:
    """Optimum of the reference model."""

    status: str
    objective: float
    u: FloatArray
    beta: FloatArray
    w: FloatArray
    te: float


def solve_reference(
    d: RefData,
    *,
    no_loss_sale_names: AbstractSet[str] = frozenset(),
    no_buy_names: AbstractSet[str] = frozenset(),
    block_window_loss_sales: bool = False,
    drop_te_budget: bool = False,
    drop_tilts: bool = False,
) -> RefSolution:
    """Solve the reference problem with CLARABEL.

    Args:
        d: The reference data.
        no_loss_sale_names: Names whose loss lots may not be sold (a side decision fixed to buy).
        no_buy_names: Names that may not be bought (a side decision fixed to sell).
        block_window_loss_sales: Forbid loss sales of wash-window names outright instead of only
            removing their benefit (DESIGN §2 states both readings).
        drop_te_budget: Leave out ``TE ≤ te_budget`` (to mirror a documented relaxation).
        drop_tilts: Leave out the tilt floors (to mirror a documented relaxation).
    """
    acct = d.account
    n, m = len(d.symbols), len(d.lots)
    a_mat = lot_name_matrix(d)
    u = cp.Variable(m, nonneg=True)
    beta = cp.Variable(n, nonneg=True)
    w = d.w0 - a_mat @ u + beta
    act = w - d.w_b
    l_f = np.linalg.cholesky(d.factor_cov + 1e-14 * np.eye(len(d.factor_names)))
    te_vec = cp.hstack([l_f.T @ (d.loadings.T @ act), cp.multiply(np.sqrt(d.specific_var), act)])
    kappa = float(acct.get("trading_cost_bps", 5.0)) / 1e4
    objective = (
        float(acct.get("lambda_te", 1.0)) * cp.sum_squares(te_vec)
        + float(acct.get("lambda_tax", 1.0)) * (d.tau @ u)
        + kappa * (cp.sum(u) + cp.sum(beta))
    )
    cash = 1 - cp.sum(w)
    cons: list[Any] = [
        u <= d.lot_cap,
        w >= 0,
        w <= float(acct.get("max_weight", 0.10)),
        cash >= float(acct.get("min_cash_w", 0.0)),
        cash <= float(acct.get("max_cash_w", 0.02)),
    ]
    if not drop_te_budget:
        cons.append(cp.norm(te_vec) <= float(acct.get("te_budget", 0.02)))
    if not drop_tilts:
        for fac, floor in d.tilts:
            k = d.factor_names.index(fac)
            cons.append(d.loadings[:, k] @ act >= floor)
    blocked_buy = d.buy_blocked_names | set(no_buy_names) | d.exclusions
    for i, s in enumerate(d.symbols):
        if s in blocked_buy:
            cons.append(beta[i] == 0)
        if s in d.exclusions:
            cons.append(w[i] == 0)
    for j, lot in enumerate(d.lots):
        # An excluded name is sold whole whatever its lots' wash status (docs/rebalance.md §3).
        loss = d.gain_frac[j] < 0 and lot.symbol not in d.exclusions
        if loss and lot.symbol in no_loss_sale_names:
            cons.append(u[j] == 0)
        if loss and block_window_loss_sales and d.washed_loss_lot[j]:
            cons.append(u[j] == 0)
    if acct.get("turnover_limit_w") is not None:
        # One-way turnover (docs/formats.md): half the sum of the legs.
        cons.append((cp.sum(u) + cp.sum(beta)) / 2 <= float(acct["turnover_limit_w"]))
    if acct.get("gain_budget_usd") is not None:
        cons.append(d.nav * (d.gain_frac @ u) <= float(acct["gain_budget_usd"]))
    prob = cp.Problem(cp.Minimize(objective), cons)
    prob.solve(solver=cp.CLARABEL)
    if u.value is None or beta.value is None:
        return RefSolution(prob.status, float("nan"), np.zeros(m), np.zeros(n), d.w0, float("nan"))
    uv = np.clip(np.asarray(u.value, dtype=float), 0, d.lot_cap)
    bv = np.clip(np.asarray(beta.value, dtype=float), 0, None)
    wv = d.w0 - a_mat @ uv + bv
    return RefSolution(
        prob.status, objective_value(d, uv, bv), uv, bv, wv, float(np.sqrt(te_squared(d, wv)))
    )


@dataclass
class ProductPoint:
    """The product's outcome mapped into the reference variables."""

    u: FloatArray
    beta: FloatArray
    w: FloatArray
    sold_shares: dict[str, Decimal]
    bought_names: set[str]
    loss_sold_names: set[str]
    unknown_lots: list[str]


def product_point(d: RefData, outcome: dict[str, Any]) -> ProductPoint:
    """Reconstruct per-lot sells and per-name buys (fractions of NAV) from the trade list.

    Trades are valued at the market's price (the ticket's price is rounded to 4 decimals).
    """
    lot_pos = {lot.lot_id: j for j, lot in enumerate(d.lots)}
    u = np.zeros(len(d.lots))
    beta = np.zeros(len(d.symbols))
    sold: dict[str, Decimal] = {}
    bought: set[str] = set()
    loss_sold: set[str] = set()
    unknown: list[str] = []
    for t in outcome["trades"]:
        i = d.index_of(t["symbol"])
        q = Decimal(t["quantity"])
        if t["side"] == "sell":
            j = lot_pos.get(t["lot_id"])
            if j is None:
                unknown.append(t["lot_id"])
                continue
            u[j] += float(q) * d.prices[i] / d.nav
            sold[t["lot_id"]] = sold.get(t["lot_id"], Decimal(0)) + q
            if d.gain_frac[j] < 0:
                loss_sold.add(t["symbol"])
        elif t["side"] == "buy":
            beta[i] += float(q) * d.prices[i] / d.nav
            bought.add(t["symbol"])
        else:
            unknown.append(f"{t['side']}:{t['symbol']}")
    w = d.w0 - lot_name_matrix(d) @ u + beta
    return ProductPoint(u, beta, w, sold, bought, loss_sold, unknown)


#: Relaxation steps the product records (docs/rebalance.md §6), as reference-model options.
def relaxed_options(d: RefData, relaxations: list[str]) -> dict[str, Any]:
    """Map the outcome's recorded relaxations to the reference's knobs (TE budget scale, …)."""
    te_scale = 1.0
    drop_te = drop_tilts = drop_turnover = drop_gain_budget = False
    for step in relaxations:
        if step == "tilt":
            drop_tilts = True
        elif step.startswith("te_budget×"):
            te_scale = float(step.split("×", 1)[1])
        elif step == "no_te_budget":
            drop_te = True
        elif step == "turnover":
            drop_turnover = True
        elif step == "gain_budget":
            drop_gain_budget = True
    return {
        "te_scale": te_scale,
        "drop_te_budget": drop_te,
        "drop_tilts": drop_tilts,
        "drop_turnover": drop_turnover,
        "drop_gain_budget": drop_gain_budget,
    }


def with_account(d: RefData, **changes: Any) -> RefData:
    """A copy of ``d`` whose account dict has ``changes`` applied."""
    import copy

    d2 = copy.copy(d)
    d2.account = {**d.account, **changes}
    return d2


def realized_recomputation(d: RefData, outcome: dict[str, Any]) -> dict[str, Decimal]:
    """Realized P/L of the ticket's sells, recomputed from the lots and the trade prices.

    Proceeds are ``quantity × ticket price`` to the cent; basis is the lot's basis pro rata
    (the whole lot's basis when the whole lot is sold); the term is IRC §1222's, from the lot's
    tacked ``acquired`` date.  Losses of wash-window lots are not counted as harvested.
    """
    lots = {lot.lot_id: lot for lot in d.lots}
    lots_pos = {lot.lot_id: j for j, lot in enumerate(d.lots)}
    rates = d.account.get("rates", {})
    st_rate = Decimal(str(rates.get("short_term", 0.37))) + Decimal(str(rates.get("niit", 0.038)))
    lt_rate = Decimal(str(rates.get("long_term", 0.20))) + Decimal(str(rates.get("niit", 0.038)))
    st = lt = harvested = Decimal(0)
    for t in outcome["trades"]:
        if t["side"] != "sell" or t["lot_id"] not in lots:
            continue
        lot = lots[t["lot_id"]]
        q = Decimal(t["quantity"])
        proceeds = cents(q * Decimal(t["price"]))
        basis = lot.basis_usd if q == lot.quantity else cents(lot.basis_usd * q / lot.quantity)
        gain = proceeds - basis
        if gain < 0 and d.washed_loss_lot[lots_pos[t["lot_id"]]]:
            gain = Decimal(0)  # disallowed under IRC §1091(a), added to the replacement's basis
        if is_long_term(lot.acquired, d.as_of):
            lt += gain
        else:
            st += gain
        if gain < 0:
            harvested -= gain
    return {
        "realized_st_usd": st,
        "realized_lt_usd": lt,
        "harvested_loss_usd": harvested,
        "estimated_tax_usd": cents(st_rate * st + lt_rate * lt),
        #: The same, rounded half-to-even (a tie at exactly half a cent may go either way).
        "estimated_tax_usd_half_even": (st_rate * st + lt_rate * lt).quantize(
            CENT, rounding=ROUND_HALF_EVEN
        ),
    }


def audit(req: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    """Every comparison of the reference check for one request/outcome pair."""
    d = build_reference_data(req)
    acct = d.account
    opts = relaxed_options(d, list(outcome.get("relaxations", [])))
    d_eff = with_account(
        d,
        te_budget=float(acct.get("te_budget", 0.02)) * opts["te_scale"],
        **({"turnover_limit_w": None} if opts["drop_turnover"] else {}),
        **({"gain_budget_usd": None} if opts["drop_gain_budget"] else {}),
    )
    solve_kw = {"drop_te_budget": opts["drop_te_budget"], "drop_tilts": opts["drop_tilts"]}
    pp = product_point(d, outcome)
    f_prod = objective_value(d, pp.u, pp.beta)
    relaxed = solve_reference(d_eff, **solve_kw)
    relaxed_blocked = solve_reference(d_eff, block_window_loss_sales=True, **solve_kw)
    fixed = solve_reference(
        d_eff,
        no_loss_sale_names=pp.bought_names,
        no_buy_names=pp.loss_sold_names,
        block_window_loss_sales=True,
        **solve_kw,
    )
    untouched = set(d.symbols) - pp.bought_names - pp.loss_sold_names
    pattern = solve_reference(
        d_eff,
        no_loss_sale_names=pp.bought_names | untouched,
        no_buy_names=pp.loss_sold_names | untouched,
        block_window_loss_sales=True,
        **solve_kw,
    )
    # The product's harvest side (the names it sold at a loss), every other name on the buy
    # side: its own trade list stays feasible, so this re-solve can only improve on it.
    reopened = solve_reference(
        d_eff,
        no_loss_sale_names=set(d.symbols) - pp.loss_sold_names,
        no_buy_names=pp.loss_sold_names,
        block_window_loss_sales=True,
        **solve_kw,
    )
    # A legal side assignment from the relaxed optimum: harvest side where it loss-sold more
    # than it bought back, buy side elsewhere (names are never both).
    a_mat = lot_name_matrix(d)
    loss_u = a_mat @ (relaxed_blocked.u * (d.gain_frac < 0))
    harvest_side = {s for i, s in enumerate(d.symbols) if loss_u[i] > relaxed_blocked.beta[i]}
    heuristic = solve_reference(
        d_eff,
        no_loss_sale_names=set(d.symbols) - harvest_side,
        no_buy_names=harvest_side,
        block_window_loss_sales=True,
        **solve_kw,
    )
    # Was each skipped relaxation level really infeasible?  The relaxed (side-free) reference
    # is a lower bound on every side assignment, so if it is feasible the level was not needed.
    skipped_feasible: list[str] = []
    levels = [("base", 1.0, False, False)]
    for step in outcome.get("relaxations", []):
        o = relaxed_options(d, outcome["relaxations"][: outcome["relaxations"].index(step)])
        levels.append((f"before {step}", o["te_scale"], o["drop_te_budget"], o["drop_tilts"]))
    for name, scale, drop_te, drop_tilt in levels[1:] + levels[:1]:
        if name == "base" and not outcome.get("relaxations"):
            continue
        dl = with_account(d, te_budget=float(acct.get("te_budget", 0.02)) * scale)
        r = solve_reference(
            dl, block_window_loss_sales=True, drop_te_budget=drop_te, drop_tilts=drop_tilt
        )
        if r.status in ("optimal", "optimal_inaccurate"):
            skipped_feasible.append(name)

    w_out = np.array([float(outcome["weights"].get(s, 0.0)) for s in d.symbols])
    extra_weight_names = sorted(set(outcome["weights"]) - set(d.symbols))
    te_budget_eff = (
        float("inf")
        if opts["drop_te_budget"]
        else float(acct.get("te_budget", 0.02)) * opts["te_scale"]
    )
    exp_mine = active_exposures(d, w_out)
    exp_out = {f["factor"]: float(f["active"]) for f in outcome["factor_exposures"]}
    tilt_short = {
        f: exp_mine[f] - floor
        for f, floor in d.tilts
        if not opts["drop_tilts"] and exp_mine[f] < floor
    }
    realized = realized_recomputation(d, outcome)
    window_loss_sales = sorted(
        lot.lot_id
        for j, lot in enumerate(d.lots)
        if pp.u[j] > 0 and d.washed_loss_lot[j] and lot.symbol not in d.exclusions
    )

    def gap(ref: RefSolution) -> float:
        return (f_prod - ref.objective) / abs(ref.objective) if ref.objective else float("nan")

    return {
        "n": len(d.symbols),
        "status": outcome.get("status"),
        "relaxations": list(outcome.get("relaxations", [])),
        "f_prod": f_prod,
        "f_relaxed": relaxed.objective,
        "f_relaxed_blocked": relaxed_blocked.objective,
        "f_fixed": fixed.objective,
        "f_pattern": pattern.objective,
        "f_heuristic": heuristic.objective,
        "f_reopened": reopened.objective,
        "gap_relaxed": gap(relaxed),
        "gap_relaxed_blocked": gap(relaxed_blocked),
        "gap_fixed": gap(fixed),
        "gap_pattern": gap(pattern),
        "gap_heuristic": gap(heuristic),
        "gap_pattern_nav": f_prod - pattern.objective,
        "statuses": [r.status for r in (relaxed, relaxed_blocked, fixed, pattern, reopened)],
        "heuristic_status": heuristic.status,
        "skipped_levels_feasible": skipped_feasible,
        "nav_mine": d.nav_usd,
        "nav_out": Decimal(outcome["nav_usd"]),
        "shares_held": sum((lot.quantity for lot in d.lots), Decimal(0)),
        "unknown_lots": pp.unknown_lots,
        "w_out_vs_trades": float(np.abs(w_out - pp.w).max()),
        "extra_weight_names": extra_weight_names,
        "sum_w_plus_cash": float(w_out.sum() + float(outcome["cash_w"])),
        "cash_out": float(outcome["cash_w"]),
        "cash_trades": float(1 - pp.w.sum()),
        "min_cash_w": float(acct.get("min_cash_w", 0.0)),
        "max_cash_w": float(acct.get("max_cash_w", 0.02)),
        "cash_excess_usd": max(
            0.0, (float(outcome["cash_w"]) - float(acct.get("max_cash_w", 0.02))) * d.nav
        ),
        "min_w": float(w_out.min()),
        "max_w": float(w_out.max()),
        "cap": float(acct.get("max_weight", 0.10)),
        "excluded_weight": float(sum(w_out[d.index_of(s)] for s in d.exclusions if s in d.symbols)),
        "te_out": float(outcome["te_ex_ante"]),
        "te_mine": float(np.sqrt(te_squared(d, w_out))),
        "te_budget_eff": te_budget_eff,
        "exposure_max_diff": max(abs(exp_mine[k] - v) for k, v in exp_out.items()),
        "exposure_missing": sorted(set(d.factor_names) - set(exp_out)),
        "tilt_shortfall": tilt_short,
        "realized_mine": realized,
        "realized_out": {k: Decimal(outcome[k]) for k in realized if k in outcome},
        "turnover_w": float(pp.u.sum() + pp.beta.sum()) / 2,  # one-way
        "turnover_limit_w": acct.get("turnover_limit_w"),
        "net_gain_usd": realized["realized_st_usd"] + realized["realized_lt_usd"],
        "gain_budget_usd": (
            None if acct.get("gain_budget_usd") is None else Decimal(acct["gain_budget_usd"])
        ),
        "buy_blocked_names": sorted(d.buy_blocked_names),
        "washed_loss_lot_names": sorted(
            {lot.symbol for j, lot in enumerate(d.lots) if d.washed_loss_lot[j]}
        ),
        "bought_blocked": sorted(pp.bought_names & d.buy_blocked_names),
        "bought_and_loss_sold": sorted(pp.bought_names & pp.loss_sold_names),
        "bought_excluded": sorted(pp.bought_names & d.exclusions),
        "window_loss_sales": window_loss_sales,
        "oversold_lots": sorted(
            lot.lot_id
            for lot in d.lots
            if pp.sold_shares.get(lot.lot_id, Decimal(0)) > lot.quantity
        ),
        "wash_sale_issues": outcome.get("wash_sale_issues", []),
    }
