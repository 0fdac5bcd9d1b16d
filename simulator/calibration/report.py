"""The calibration report: one self-contained HTML file (figures embedded as base64 PNG).

:func:`write_report` writes, for a :class:`~simulator.calibration.estimate.CalibratedMarket`:

* where the market comes from (log, window, customers) and the calibration notes;
* segment sizes (for the default segmentation, customers by frequency tier x recency);
* the monthly transition matrix as a heatmap (and, for the default segmentation, the
  probability of buying next month by tier and recency, which is what the matrix encodes);
* fitted against observed: monthly repeat transactions (one-step-ahead), the share of customers
  buying next month by months since their last purchase, the distribution of repeat
  transactions per customer, the distribution of transaction amounts;
* the potential score: out-of-time AUC, calibration table and plot, coefficients, and how the
  potential bands spread over the segments;
* when the log has optional columns (category, member, channel, store), what they gave: the
  category shares written to the market file, the enrolment estimate from the member flag,
  spend by channel, the store network written to the market file and its figures by store;
* optionally a backtest (:class:`~simulator.calibration.backtest.BacktestResult`).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator import __version__
from simulator.calibration.groups import ACTIVE_MONTHS, MIN_SEGMENT_CUSTOMERS, PROJECTION_MONTHS

if TYPE_CHECKING:  # pragma: no cover
    from simulator.calibration.backtest import BacktestResult
    from simulator.calibration.estimate import CalibratedMarket
    from simulator.calibration.transactions import CleaningReport

__all__ = ["report_html", "write_report"]

#: Stores shown in the report's table (the largest; stores.csv has them all).
MAX_STORE_ROWS = 50

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#555;font-size:.9em}ul.notes li{font-size:.9em;color:#444}
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode("ascii")}">'


def _table(df: pd.DataFrame, floats: str = "{:,.3f}", index: bool = False) -> str:
    """An HTML table: floats as ``floats``, integers (counts) whole with thousands separators."""
    def fmt(v):
        if isinstance(v, (bool, np.bool_)):
            return str(v)
        if isinstance(v, (int, np.integer)):
            return f"{v:,}"
        if isinstance(v, (float, np.floating)):
            return "" if not np.isfinite(v) else floats.format(v)
        return html.escape(str(v))

    cols = ([df.index.name or ""] if index else []) + [str(c) for c in df.columns]
    # by column, so that an integer column stays integer (a row of numbers would be upcast to floats)
    cells = ([[html.escape(str(i)) for i in df.index]] if index else []) + [[fmt(v) for v in df[c].tolist()]
                                                                          for c in df.columns]
    rows = ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in zip(*cells)]
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _whole(expected: np.ndarray, total: int) -> np.ndarray:
    """Whole customers in proportion to ``expected`` that add up to ``total`` (largest-remainder rounding)."""
    x = np.asarray(expected, dtype=np.float64)
    if x.sum() <= 0:
        return np.zeros(len(x), dtype=np.int64)
    x = x * (total / x.sum())
    out = np.floor(x).astype(np.int64)
    out[np.argsort(out - x, kind="stable")[: total - out.sum()]] += 1
    return out


def _segment_sizes(cm: "CalibratedMarket") -> pd.DataFrame:
    """Segment sizes with ``customers`` (shares times the customers at the calibration end, i.e. expected
    numbers) in whole customers that add up to them."""
    sizes = cm.diagnostics.segment_sizes
    return sizes.assign(customers=_whole(sizes["customers"].to_numpy(), int(cm.panel.n_customers)))


def _base_section(cm: "CalibratedMarket") -> str:
    """The customer base and the fixed costs it can carry (scenario.FIXED_COST_SHARE of its annual
    gross margin): a warning when it is the log's own customers."""
    from simulator.scenario import FIXED_COST_SHARE

    m = cm.market
    margin = m.annual_gross_margin()
    cap = FIXED_COST_SHARE * margin
    log_n = m.calibration.log_customers if m.calibration is not None else cm.panel.n_customers
    given = m.customers != log_n
    text = (f"Customer base: <b>{m.customers:,}</b> customers" +
            (f" as given with <code>--customers</code> (the log holds {log_n:,}; shares as estimated, arrivals scaled)"
             if given else " (the log's customers at the calibration end)") +
            f". Its annual gross margin is about {margin:,.0f} {m.currency} (expected purchases x baskets x net "
            f"factor x gross margin, at the start): <code>run</code> and <code>validate</code> warn when a playbook's "
            f"fixed costs a year (set-up amortised, running costs, campaigns' and drives' fixed costs) exceed "
            f"{FIXED_COST_SHARE:.0%} of it, {cap:,.0f} {m.currency}.")
    if not given:
        text = (f"<b>Warning: the base is tiny for the costs a program carries if the log is a sample or one banner of "
                f"several</b>: {m.customers:,} customers carry at most {cap:,.0f} {m.currency} of fixed costs a year. Give "
                f"the whole base with <code>loyalty-sim calibrate --customers N</code>. " + text)
    return f"<p>{text}</p>"


def _arrivals(per_month: float) -> str:
    """New customers per month (an expected number): whole customers, or two digits below one."""
    return f"{per_month:,.0f}" if per_month >= 1 or per_month == 0 else f"{per_month:.2g}"


def _state_grid(cm: "CalibratedMarket", values: np.ndarray) -> pd.DataFrame:
    """Values of the model's states (``diagnostics.states``, without ``new``) as a tier x recency table."""
    R = cm.segmentation.recency_months
    names = cm.types.names
    grid = np.asarray(values).reshape(len(names), R + 1)
    cols = [f"{k}" for k in range(R)] + [f"{R}+"]
    return pd.DataFrame(grid, index=pd.Index(names, name="tier"), columns=cols)


def _grid_heatmap(grid: pd.DataFrame, *, cmap: str, fmt: str, min_shown: float, dark_when_high: bool, label: str,
                  title: str) -> str:
    """A tier x recency grid as an annotated heatmap (values below ``min_shown`` left blank;
    the text white on the colour map's dark end)."""
    plt = _plt()
    values = grid.to_numpy()
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(grid)))
    im = ax.imshow(values, aspect="auto", cmap=cmap)
    ax.set_xticks(range(grid.shape[1]), grid.columns)
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.set_xlabel("months since the last purchase")
    half = values.max() / 2
    for (i, j), v in np.ndenumerate(values):
        if v >= min_shown:
            dark = v > half if dark_when_high else v < half
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def _segments_section(cm: "CalibratedMarket") -> str:
    plt = _plt()
    sizes = _segment_sizes(cm)
    out = ["<h2>Segments</h2>",
           f"<p class='note'>Customers at the calibration end: each segment's share of the {cm.panel.n_customers:,} "
           "customers, rounded to whole customers that add up to them (largest remainders).</p>"]
    if cm.types is not None and cm.diagnostics.states is not None:
        st = cm.diagnostics.states
        counts = _state_grid(cm, _whole(st["customers"].to_numpy(), int(round(st["customers"].sum()))))
        out.append(_grid_heatmap(counts, cmap="Blues", fmt="{:,}", min_shown=1, dark_when_high=True,
                                 label="customers",
                                 title="Customers at the calibration end by frequency tier and recency"))
        tiers = pd.DataFrame({"tier": cm.types.names, "active rate / month": cm.types.rate,
                              "lapse after a purchase month": cm.types.lapse, "weight among new customers": cm.types.weight,
                              "customers now": counts.sum(axis=1).to_numpy()})
        out.append("<p>Frequency tiers (types of the lapse-and-return model):</p>" + _table(tiers))
        merged = st[st["segment"] != st["state"]]
        if len(merged):
            out.append(f"<p>{len(merged)} states held fewer than {MIN_SEGMENT_CUSTOMERS:g} whole customer, at the "
                       f"calibration end and in each of the {PROJECTION_MONTHS} months the chain projects after it, and "
                       "are merged with neighbours (a tier holding less with an adjacent tier, recency by recency; then "
                       f"adjacent recencies) into {merged['segment'].nunique()} segments of the market file: " + html.escape("; ".join(f"{seg}: {', '.join(g['state'])}" for seg, g in
                                                       merged.groupby("segment", sort=False))) + ".</p>")
        shown = sizes
    else:
        fig, ax = plt.subplots(figsize=(10, 0.6 + 0.32 * len(sizes)))
        ax.barh(sizes["segment"][::-1], sizes["customers"][::-1], color="tab:blue")
        ax.set_xlabel("customers at the calibration end")
        out.append(_png(fig))
        shown = sizes
    out.append(_table(shown.rename(columns={"purchase_rate": "purchases next month", "basket_mean": "basket"})))
    return "\n".join(out)


def _transitions_section(cm: "CalibratedMarket") -> str:
    plt = _plt()
    d = cm.diagnostics
    P = d.transitions.to_numpy()
    names = list(d.transitions.index)
    out = ["<h2>Monthly transition matrix</h2>"]
    if cm.types is not None and d.states is not None:
        buy = _state_grid(cm, d.states["buy_next_month"].to_numpy())
        out.append("<p class='note'>Each state moves only to recency 0 of its tier (a purchase) or to the next recency "
                   "(no purchase): the matrix encodes the probability of buying next month, shown here.</p>")
        out.append(_grid_heatmap(buy, cmap="viridis", fmt="{:.2f}", min_shown=-np.inf, dark_when_high=False,
                                 label="P(buy next month)",
                                 title="Probability of moving to recency 0 (buying next month); otherwise the customer "
                                       "ages one month"))
    fig, ax = plt.subplots(figsize=(9, 8))
    with np.errstate(divide="ignore"):
        im = ax.imshow(np.where(P > 0, P, np.nan), cmap="magma_r", vmin=0, vmax=1, interpolation="nearest")
    step = max(1, len(names) // 40)
    ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=6)
    ax.set_yticks(range(0, len(names), step), names[::step], fontsize=6)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    fig.colorbar(im, ax=ax, label="probability", shrink=0.7)
    ax.set_title("Transition matrix (rows: from, columns: to; blank: 0)", fontsize=10)
    out.append(_png(fig))
    if len(names) <= 16:
        out.append(_table(d.transitions, floats="{:.3f}", index=True))
    return "\n".join(out)


def _fit_section(cm: "CalibratedMarket") -> str:
    plt = _plt()
    d = cm.diagnostics
    out = ["<h2>Fitted against observed (calibration window)</h2>"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    m = d.monthly
    x = np.arange(len(m))
    ax = axes[0, 0]
    ax.plot(x, m["observed_repeat"], "o-", color="black", label="observed repeat transactions")
    ax.plot(x, m["fitted_repeat"], "s--", color="tab:blue", label="fitted (one step ahead)")
    ax.bar(x, m["new_customers"], color="tab:gray", alpha=0.3, label="new customers")
    ax.set_xticks(x, m["period"], rotation=45, ha="right", fontsize=7)
    ax.set_title("Transactions per month", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    r = d.return_by_recency
    ax.plot(r["recency_months"], r["observed"], "o-", color="black", label="observed")
    ax.plot(r["recency_months"], r["fitted"], "s--", color="tab:blue", label="fitted")
    ax.set_xlabel("months since the last purchase")
    ax.set_ylabel("share buying next month")
    ax.set_title("Buying next month, by recency", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    f = d.frequency
    xx = np.arange(len(f))
    ax.bar(xx - 0.2, f["observed"], width=0.4, color="black", label="observed")
    ax.bar(xx + 0.2, f["fitted"], width=0.4, color="tab:blue", label="fitted (simulated)")
    ax.set_xticks(xx, f["repeat_transactions"])
    ax.set_xlabel("repeat transactions in the window")
    ax.set_ylabel("share of customers")
    ax.set_title("Repeat transactions per customer", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    amounts = d.basket_sample[d.basket_sample > 0]
    b = d.basket
    if len(amounts):
        logs = np.log(amounts)
        ax.hist(logs, bins=40, density=True, color="black", alpha=0.35, label="observed")
        grid = np.linspace(logs.min(), logs.max(), 200)
        s2 = b.sigma_within ** 2 + b.sigma_between ** 2
        dens = np.exp(-(grid - b.mean_log) ** 2 / (2 * s2)) / np.sqrt(2 * np.pi * s2)
        ax.plot(grid, dens, color="tab:blue", label="fitted lognormal")
        ax.set_xlabel("log(amount per transaction)")
        ax.set_title(f"Transaction amounts (mean {b.mean:,.2f}, cv {b.cv:.2f}, between customers {b.individual_cv:.2f})",
                     fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.append(_png(fig))
    out.append(_table(m, floats="{:,.1f}"))
    out.append(_table(r.assign(observations=r["observations"].round().astype(np.int64)), floats="{:.4f}"))
    return "\n".join(out)


def _potential_section(cm: "CalibratedMarket") -> str:
    d = cm.diagnostics
    p = d.potential
    if p is None:
        return "<h2>Potential score</h2><p>No potential score (see the notes).</p>"
    plt = _plt()
    target = ("at least one purchase" if p.model.target == "active" else f"spend of at least {p.model.min_spend:g}")
    out = ["<h2>Potential score</h2>",
           f"<p>Logistic regression of <em>{target} in the next {p.model.horizon_months} months</em> on RFM features. "
           f"Fitted at the end of {p.validated.origin}, validated on the later, held-out window from the end of "
           f"{p.model.origin}: <b>AUC {p.auc:.3f}</b> (in sample {p.training_auc:.3f}; base rate "
           f"{p.validation_base_rate:.3f}). The scoring model is refitted at the end of {p.model.origin} and scores "
           f"the customers at the end of {p.at}; bands are thirds of the scores (cuts {p.cuts[0]:.3f}, {p.cuts[1]:.3f}).</p>"]
    t = p.calibration
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="gray", lw=0.8)
    ax.plot(t["predicted"], t["observed"], "o-", color="tab:blue")
    top = float(max(t["predicted"].max(), t["observed"].max(), 0.05)) * 1.05
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted")
    ax.set_ylabel("observed")
    ax.set_title("Calibration on the held-out window (deciles)", fontsize=10)
    out.append(_png(fig))
    out.append(_table(t, floats="{:.4f}"))
    coef = pd.DataFrame({"coefficient (standardised)": pd.Series(p.model.coefficients)})
    coef.index.name = "predictor"
    out.append(_table(coef, floats="{:.4f}", index=True))
    if d.potential_mix is not None:
        mix = d.potential_mix.dropna()
        mix = mix[_segment_sizes(cm).set_index("segment")["customers"].reindex(mix.index) > 0]
        out.append("<p>Share of each segment's customers in each potential band at the calibration end:</p>")
        out.append(_table(mix, floats="{:.3f}", index=True))
    return "\n".join(out)


def _optional_section(cm: "CalibratedMarket") -> str:
    """Tables of what the log's optional columns gave ("" when it has none)."""
    opt = cm.diagnostics.optional_columns
    if opt is None:
        return ""
    out = ["<h2>Optional columns</h2>",
           f"<p>The log has: {html.escape(', '.join(opt.columns))}. Shares of spend are over the calibration window, "
           "counted on the rows before same-day merging (a basket spread over several categories counts for each).</p>"]
    if opt.categories is not None:
        cats = opt.categories.assign(spend=opt.categories["spend"].map("{:,.2f}".format)).rename(
            columns={"category": "category (market file)", "share": "share of spend", "values": "values in the log"})
        out.append("<p>Categories, written to the market's <code>categories</code>:</p>" +
                   _table(cats, floats="{:,.4f}"))
    elif "category" in opt.columns:
        out.append("<p>Categories: no spend in the calibration window; the market's <code>categories</code> is "
                   "left empty.</p>")
    e = opt.enrolment
    if e is not None:
        span = f"{e.months[0]}..{e.months[1]}" if e.months else "no month"
        if e.estimate is not None:
            what = (f"<b>enrolment_propensity {e.estimate:.4g}</b>, written to the market's <code>response</code>: "
                    f"{e.joiners:,} joins over {e.at_risk:,} purchaser-months at risk ({span})")
        else:
            what = (f"too little information to estimate enrolment_propensity ({e.joiners:,} joins over {e.at_risk:,} "
                    f"purchaser-months at risk, {span}): the default is kept")
        out.append(f"<p>Member flag: {what}. {e.member_share:.1%} of the customers known at the calibration end "
                   f"({e.member_customers:,}) have a member-flagged transaction; the flag is unknown on "
                   f"{e.unknown_share:.1%} of transactions.</p>")
    if opt.channels is not None:
        ch = opt.channels.assign(spend=opt.channels["spend"].map("{:,.2f}".format)).rename(columns={"share": "share of spend"})
        out.append("<p>Channels (no market field uses them):</p>" + _table(ch, floats="{:,.4f}"))
    if opt.stores is not None:
        net = opt.network
        if net is None:
            out.append(f"<p>Stores: {opt.stores:,} with purchases in the calibration window (no customer with a store: "
                       "no store network).</p>")
        else:
            merged = (f"; the {net.merged:,} stores home to fewer than {net.min_customers:,} customers each are merged "
                      f"into '{html.escape(net.table['store'].iloc[-1])}'" if net.merged else
                      f" (none home to fewer than {net.min_customers:,} customers, the minimum)")
            without = (f" {net.without_store:,} customers have no store in the window and follow the shares."
                       if net.without_store else "")
            members = ("Enrolment multiplier: the store's join rate (joins / purchaser-months at risk of its home "
                       "customers) over the market's enrolment_propensity, with its standard error."
                       if "enrolment" in net.table.columns else "No member column: enrolment multipliers are 1.")
            optins = [c[len("optin_"):] for c in net.table.columns if c.startswith("optin_")]
            reach = (("Opt-in: optin_&lt;channel&gt; is the share of the store's home customers whose last recorded "
                      "opt-in is yes; reach_&lt;channel&gt; is it over the market's share (the store's "
                      f"<code>reach</code>), for {', '.join(html.escape(c) for c in optins)}.") if optins else
                     "Reach multipliers are not estimated (the log has no opt-in column: optin_&lt;channel&gt; or "
                     "--optin-col).")
            out.append(f"<p>Stores: {opt.stores:,} with purchases in the calibration window, written to the market's "
                       f"<code>stores</code> as {len(net.table):,} stores{merged}. A customer's home store is the one "
                       f"with most of their spend (ties: more transactions, then the first name); figures are over each "
                       f"store's home customers: active = a purchase in the last {ACTIVE_MONTHS + 1} months of the window, frequency = "
                       f"transactions per customer-month known, basket = spend / transactions, home spend share = the "
                       f"share of their spend made in their home store.{without} {members} {reach} The same table is <code>stores.csv</code> beside "
                       f"the market file.</p>" + _table(net.table.head(MAX_STORE_ROWS), floats="{:,.4g}"))
            if len(net.table) > MAX_STORE_ROWS:
                out.append(f"<p>(the {MAX_STORE_ROWS} largest of {len(net.table):,} stores; all in stores.csv)</p>")
    return "\n".join(out)


def _backtest_section(bt: "BacktestResult") -> str:
    plt = _plt()
    m = bt.monthly
    x = np.arange(len(m))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, col in zip(axes, ("transactions", "revenue")):
        ax.plot(x, m[f"actual_{col}"], "o-", color="black", label="actual")
        ax.plot(x, m[f"forecast_{col}"], "s-", color="tab:blue", label="simulation")
        ax.plot(x, m[f"reference_{col}"], "^--", color="tab:orange", label="reference")
        ax.set_xticks(x, m["period"], rotation=45, ha="right", fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_title(col, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    rows = []
    for col in ("transactions", "revenue"):
        s = bt.summary[col]
        rows.append({"": col, "actual": s["actual"], "simulation": s["forecast"], "reference": s["reference"],
                     "simulation error %": s["forecast_error_pct"], "reference error %": s["reference_error_pct"],
                     "simulation MAPE %": s["forecast_mape_pct"], "reference MAPE %": s["reference_mape_pct"]})
    tx = bt.summary["transactions"]
    return "\n".join([
        "<h2>Backtest</h2>",
        f"<p>Calibrated to {bt.summary['calibration_end']}; the {bt.summary['customers']:,} customers known then simulated "
        f"through {bt.summary['holdout']['first_month']}..{bt.summary['holdout']['last_month']} "
        f"({bt.summary['replications']} replications), against BG/NBD (+ Gamma-Gamma). Correlation across customers of "
        f"holdout transactions: simulation {tx['forecast_customer_correlation']:.3f}, reference "
        f"{tx['reference_customer_correlation']:.3f}.</p>",
        _png(fig), _table(pd.DataFrame(rows), floats="{:,.1f}"), _table(m, floats="{:,.1f}")])


def _reading_section(cleaning: "CleaningReport") -> str:
    """How the log was read and cleaned: the "read as" line, the counts, the columns left out."""
    r = cleaning
    items = []
    if r.read_as:
        items.append(f"Read as: {html.escape(r.read_as)}.")
    items.append(f"{r.rows_read:,} rows read: {r.bad_rows_skipped:,} bad rows skipped, {r.duplicates_dropped:,} "
                 f"duplicates dropped, {r.identical_rows:,} identical rows kept, {r.returns_netted:,} returns netted "
                 f"({r.returns_unmatched:,} unmatched), {r.rows_merged:,} rows merged into their transaction "
                 f"(a transaction is a {html.escape(r.merged_by)}); {r.transactions:,} transactions of "
                 f"{r.customers:,} customers.")
    for text in (r.skipped_text(), r.ignored_text()):
        if text:
            items.append(html.escape(text[0].upper() + text[1:]) + ".")
    items += [html.escape(n) for n in r.notes]
    return "<h2>Reading the log</h2><ul class='notes'>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def report_html(cm: "CalibratedMarket", *, backtest: "BacktestResult | None" = None, title: str | None = None,
                cleaning: "CleaningReport | None" = None) -> str:
    """The report as one HTML string (with ``cleaning``, a section on how the log was read)."""
    d = cm.diagnostics
    panel = cm.panel
    src = cm.source.get("name", "(a log given in memory)")
    sha = cm.source.get("sha256")
    market = cm.market
    head = [
        f"<h1>{html.escape(title or f'Calibration report: {market.name}')}</h1>",
        f"<p>Source: <b>{html.escape(src)}</b>" + (f" (SHA-256 <code>{sha}</code>)" if sha else "") +
        f". Calibration window {panel.months[0]}..{panel.months[-1]} (ending {cm.calibration_end.date()}), "
        f"{panel.n_customers:,} customers, {int(panel.counts.sum()):,} transactions, revenue {panel.spend.sum():,.2f} "
        f"{market.currency}. Arrivals {_arrivals(market.acquisition.per_month)} per month into '{market.acquisition.segment}'. "
        f"loyalty-sim {__version__}.</p>",
        "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in d.notes) + "</ul>",
        "<p>Seasonality (January..December): " + ", ".join(f"{v:.3f}" for v in market.seasonality) + "</p>",
    ]
    parts = head + ([_reading_section(cleaning)] if cleaning is not None else [])
    parts += [_base_section(cm), _segments_section(cm), _transitions_section(cm), _fit_section(cm), _potential_section(cm)]
    optional = _optional_section(cm)
    if optional:
        parts.append(optional)
    if backtest is not None:
        parts.append(_backtest_section(backtest))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(market.name)} calibration</title>"
            f"<style>{_CSS}</style></head><body>{body}</body></html>")


def write_report(cm: "CalibratedMarket", path: str | Path, *, backtest: "BacktestResult | None" = None) -> Path:
    """Write the HTML report (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_html(cm, backtest=backtest), encoding="utf-8")
    return path
