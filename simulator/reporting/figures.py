"""The report's figures, one function per figure, each taking pandas data (built by the
helpers of :mod:`simulator.reporting.study`) and returning a matplotlib ``Figure``.

No pyplot: figures are ``matplotlib.figure.Figure`` objects drawn on an Agg canvas, so
nothing is registered in pyplot's global figure manager and nothing leaks between calls.
Styling is applied inside :func:`styled` (matplotlib's defaults plus :data:`STYLE`, restored
on exit), for creation and for rendering, so a user's ``matplotlibrc`` cannot change the
bytes. :func:`png_bytes` renders at a fixed dpi without the "Software" metadata, so the same
data gives the same PNG bytes.

Money axes are in the reporting currency, scaled to thousands, millions or billions.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Iterator, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter

DPI = 96

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.labelsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.0,
    "legend.frameon": False,
    "xtick.labelsize": 8.0,
    "ytick.labelsize": 8.0,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "path.simplify": False,
    "axes.axisbelow": True,
}

#: Scenario colours by rank (colour-blind-safe palette of Okabe & Ito, then tab10).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")

COST_COLOURS = {"rewards": "#0072B2", "tier benefits": "#56B4E9", "campaigns": "#E69F00",
                "enrolment drives": "#F0E442", "running + set-up": "#999999", "per-member costs": "#CC79A7",
                "obligation left at the horizon": "#D55E00", "fees received": "#009E73"}


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """matplotlib's defaults plus :data:`STYLE`, restored on exit."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(STYLE)
        yield


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, identical for identical figures (no timestamp, no
    software tag). The figure's layout is computed and then frozen (its layout engine is
    set to none), so render a figure once."""
    buf = io.BytesIO()
    with styled():
        engine = fig.get_layout_engine()
        if engine is not None:
            # lay out now (two passes, as two draws would) and freeze the layout, so that
            # savefig draws the figure once instead of twice
            fig.set_dpi(dpi)
            engine.execute(fig)
            engine.execute(fig)
            fig.set_layout_engine("none")
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def colours(order: Sequence[str]) -> dict[str, str]:
    return {sid: PALETTE[i % len(PALETTE)] for i, sid in enumerate(order)}


def money_scale(values: Sequence[float] | np.ndarray) -> tuple[float, str]:
    """(divisor, word) to show money values: thousands, millions or billions."""
    arr = np.abs(np.asarray(values, dtype=float))
    peak = float(np.nanmax(arr)) if arr.size and np.isfinite(arr).any() else 0.0
    for div, word in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if peak >= div:
            return div, word
    return 1.0, ""


def _money_axis(axis, values, currency: str, what: str) -> float:  # noqa: ANN001
    div, word = money_scale(values)
    axis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v / div:,.1f}" if div > 1 else f"{v:,.0f}"))
    axis.set_label_text(f"{what} ({currency}{' ' + word if word else ''})")
    return div


def _empty(fig: Figure, message: str) -> Figure:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return fig


def _legend_cols(labels: Sequence[str]) -> int:
    """Legend columns that fit an 8-inch-wide figure."""
    longest = max((len(str(x)) for x in labels), default=1)
    return max(1, min(len(labels), 3 if longest <= 26 else 2 if longest <= 44 else 1))


def _grid(n: int, ncols: int = 2) -> tuple[int, int]:
    ncols = min(ncols, max(n, 1))
    return -(-max(n, 1) // ncols), ncols


# ----------------------------------------------------------------------------- figures
def cumulative_cash_flow(bands: pd.DataFrame, currency: str, order: Sequence[str] | None = None) -> Figure:
    """Cumulative incremental cash flow by month since launch: the P50 line and the P10-P90
    band of each scenario (``bands``: scenario, month, p10, p50, p90)."""
    order = list(order or dict.fromkeys(bands["scenario"]))
    col = colours(order)
    with styled():
        fig = _new(8.0, 4.2)
        ax = fig.add_subplot()
        for sid in order:
            b = bands[bands["scenario"] == sid].sort_values("month")
            ax.fill_between(b["month"], b["p10"], b["p90"], color=col[sid], alpha=0.18, linewidth=0)
            ax.plot(b["month"], b["p50"], color=col[sid], linewidth=1.8, label=sid)
        ax.axhline(0.0, color="#333333", linewidth=0.8)
        ax.set_xlabel("month since launch")
        _money_axis(ax.yaxis, bands[["p10", "p90"]].to_numpy().ravel(), currency, "cumulative incremental cash flow")
        ax.set_title("Cumulative incremental cash flow (line P50, band P10-P90)")
        fig.legend(loc="outside lower center", ncols=_legend_cols(order))
    return fig


def npv_distribution(samples: pd.DataFrame, currency: str, order: Sequence[str] | None = None) -> Figure:
    """Each replication's NPV (dots) and its P10-P90 range and median (box) per scenario
    (``samples``: scenario, replication, npv)."""
    order = list(order or dict.fromkeys(samples["scenario"]))
    col = colours(order)
    with styled():
        fig = _new(8.0, 0.9 + 0.55 * max(len(order), 1))
        ax = fig.add_subplot()
        ys = np.arange(len(order))[::-1]
        for y, sid in zip(ys, order):
            v = np.sort(samples.loc[samples["scenario"] == sid, "npv"].to_numpy(dtype=float))
            if not v.size:
                continue
            p10, p50, p90 = np.percentile(v, [10, 50, 90])
            ax.add_patch(Rectangle((p10, y - 0.28), p90 - p10, 0.56, facecolor=col[sid],
                                                      alpha=0.22, edgecolor=col[sid], linewidth=0.8))
            ax.plot([p50, p50], [y - 0.28, y + 0.28], color=col[sid], linewidth=2.2)
            # deterministic jitter: evenly spread offsets in replication order
            jitter = (np.arange(v.size) % 7 - 3) * 0.06
            ax.scatter(v, y + jitter, s=10, color=col[sid], zorder=3, linewidths=0)
        ax.axvline(0.0, color="#aa0000", linewidth=0.9)
        ax.set_yticks(ys, order)
        ax.set_ylim(-0.6, len(order) - 0.4)
        ax.grid(axis="y", visible=False)
        _money_axis(ax.xaxis, samples["npv"].to_numpy(), currency, "NPV")
        ax.set_title("NPV by replication (dots), P10-P90 (box) and P50 (bar); red line = 0")
    return fig


def members_by_tier(tiers: pd.DataFrame, order: Sequence[str] | None = None) -> Figure:
    """Members at month end by tier in the design run, one panel per scenario, stacked
    (``tiers``: scenario, month, tier, members)."""
    order = list(order or dict.fromkeys(tiers["scenario"]))
    rows, ncols = _grid(len(order))
    with styled():
        fig = _new(8.0, 2.5 * rows + 0.3)
        if not order:
            return _empty(fig, "no scenarios")
        axes = fig.subplots(rows, ncols, squeeze=False)
        for k, sid in enumerate(order):
            ax = axes[k // ncols][k % ncols]
            t = tiers[tiers["scenario"] == sid]
            names = list(dict.fromkeys(t["tier"]))
            wide = t.pivot(index="month", columns="tier", values="members").reindex(columns=names).sort_index()
            div, word = money_scale(wide.sum(axis=1).to_numpy())
            cmap = matplotlib.colormaps["viridis"]
            cols = [cmap(0.15 + 0.7 * i / max(len(names) - 1, 1)) for i in range(len(names))]
            ax.stackplot(wide.index.to_numpy(), (wide.to_numpy(dtype=float) / div).T, labels=names, colors=cols,
                         alpha=0.9, linewidth=0)
            ax.set_title(sid, fontsize=9)
            ax.set_ylabel(f"members{' (' + word + 's)' if word else ''}")
            ax.set_xlabel("month since launch")
            ax.legend(loc="upper left", fontsize=7)
        for k in range(len(order), rows * ncols):
            axes[k // ncols][k % ncols].set_axis_off()
        fig.suptitle("Members by tier at month end (design run, mean over replications)", fontweight="bold", fontsize=10)
    return fig


def points_and_liability(df: pd.DataFrame, currency: str, order: Sequence[str] | None = None) -> Figure:
    """Points outstanding (top) and IFRS 15 points liability (bottom) at month end: design run
    solid, baseline run dashed (``df``: scenario, run, month, points_outstanding, liability_closing)."""
    order = list(order or dict.fromkeys(df["scenario"]))
    col = colours(order)
    with styled():
        fig = _new(8.0, 5.6)
        ax1, ax2 = fig.subplots(2, 1, sharex=True)
        pdiv, pword = money_scale(df["points_outstanding"].to_numpy())
        for sid in order:
            for run, style in (("design", "-"), ("baseline", "--")):
                d = df[(df["scenario"] == sid) & (df["run"] == run)].sort_values("month")
                if d.empty or (run == "baseline" and not d["points_outstanding"].abs().sum() and not d["liability_closing"].abs().sum()):
                    continue
                label = sid if run == "design" else None
                lw = 1.8 if run == "design" else 1.0
                ax1.plot(d["month"], d["points_outstanding"] / pdiv, style, color=col[sid], linewidth=lw, label=label)
                ax2.plot(d["month"], d["liability_closing"], style, color=col[sid], linewidth=lw, label=label)
        ax1.set_ylabel(f"points outstanding{' (' + pword + 's)' if pword else ''}")
        ax1.set_title("Points outstanding and points liability (solid: design run, dashed: baseline run)")
        fig.legend(*ax1.get_legend_handles_labels(), loc="outside lower center", ncols=_legend_cols(order))
        _money_axis(ax2.yaxis, df["liability_closing"].to_numpy(), currency, "liability")
        ax2.set_xlabel("month since launch")
    return fig


def cost_breakdown(costs: pd.DataFrame, currency: str, order: Sequence[str] | None = None) -> Figure:
    """Incremental program cost by group per scenario (stacked; savings and fees to the left
    of zero; the black diamond is the net) (``costs``: scenario, group, amount)."""
    order = list(order or dict.fromkeys(costs["scenario"]))
    groups = list(dict.fromkeys(costs["group"]))
    with styled():
        fig = _new(8.0, 1.3 + 0.55 * max(len(order), 1))
        ax = fig.add_subplot()
        ys = np.arange(len(order))[::-1]
        pos = np.zeros(len(order))
        neg = np.zeros(len(order))
        wide = costs.pivot(index="scenario", columns="group", values="amount").reindex(index=order, columns=groups).fillna(0.0)
        for g in groups:
            v = wide[g].to_numpy(dtype=float)
            left = np.where(v >= 0, pos, neg)
            ax.barh(ys, v, left=left, height=0.6, color=COST_COLOURS.get(g, "#777777"), label=g)
            pos += np.where(v >= 0, v, 0.0)
            neg += np.where(v < 0, v, 0.0)
        net = wide.sum(axis=1).to_numpy()
        ax.scatter(net, ys, marker="D", color="black", s=22, zorder=3, label="net program cost")
        ax.axvline(0.0, color="#333333", linewidth=0.8)
        ax.set_yticks(ys, order)
        ax.grid(axis="y", visible=False)
        _money_axis(ax.xaxis, np.concatenate([pos, neg]), currency, "incremental cost over the horizon")
        ax.set_title("Where the incremental cost goes (mean over replications)")
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=7)
    return fig


def margin_sources(df: pd.DataFrame, currency: str, order: Sequence[str] | None = None) -> Figure:
    """Members' apparent extra spend split into true lift (counted in the incremental margin)
    and self-selection (not counted) per scenario (``df``: scenario, true_lift,
    self_selection, naive, ...)."""
    order = list(order or df["scenario"])
    with styled():
        fig = _new(8.0, 1.3 + 0.55 * max(len(order), 1))
        ax = fig.add_subplot()
        ys = np.arange(len(order))[::-1]
        d = df.set_index("scenario").reindex(order)
        tl = d["true_lift"].to_numpy(dtype=float)
        ss = d["self_selection"].to_numpy(dtype=float)
        ax.barh(ys, tl, height=0.6, color="#009E73", label="true lift (counted)")
        left = np.where((ss >= 0) == (tl >= 0), tl, 0.0)
        ax.barh(ys, ss, left=left, height=0.6, color="#BBBBBB", label="self-selection (not counted)")
        for y, t, n in zip(ys, tl, d["naive"].to_numpy(dtype=float)):
            share = f"{t / n:.0%} true lift" if n else "no uplift"
            ax.annotate(share, (max(n, t, 0.0), y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
        ax.axvline(0.0, color="#333333", linewidth=0.8)
        ax.set_yticks(ys, order)
        ax.grid(axis="y", visible=False)
        _money_axis(ax.xaxis, np.concatenate([tl, tl + ss, ss]), currency, "members' extra spend over the horizon")
        ax.set_title("Members' extra spend: true lift vs self-selection (mean over replications)")
        ax.legend(loc="lower right", fontsize=7)
        ax.margins(x=0.12)
    return fig


def migration_heatmaps(segments: Sequence[str], design: np.ndarray, baseline: np.ndarray, title: str) -> Figure:
    """Monthly segment transitions of the design's members: in the design run, of the same
    customers in the baseline run, and the difference (percentage points)."""
    segments = list(segments)
    diff = design - baseline
    n = len(segments)
    with styled():
        fig = _new(11.0, 1.6 + 0.42 * n)
        axes = fig.subplots(1, 3)
        lim = float(np.max(np.abs(diff))) or 1e-6
        panels = ((design, "members, design run", "Blues", None),
                  (baseline, "same customers, baseline run", "Blues", None),
                  (diff, "difference, percentage points", "RdBu", TwoSlopeNorm(0.0, -lim, lim)))
        for ax, (mat, name, cmap, norm) in zip(axes, panels):
            kw = {"norm": norm} if norm is not None else {"vmin": 0.0, "vmax": 1.0}
            ax.imshow(mat, cmap=cmap, aspect="auto", **kw)
            ax.set_xticks(range(n), segments, rotation=40, ha="right")
            ax.set_yticks(range(n), segments if ax is axes[0] else [""] * n)
            ax.grid(False)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("to segment (next month)")
            for i in range(n):
                for j in range(n):
                    v = mat[i, j]
                    if norm is None:
                        txt, dark = (f"{v:.0%}" if v else ""), v > 0.6
                    else:
                        txt, dark = (f"{100 * v:+.2f}" if abs(v) >= 0.00005 else ""), abs(v) > 0.6 * lim
                    ax.text(j, i, txt, ha="center", va="center", fontsize=6.5, color="white" if dark else "#222222")
        axes[0].set_ylabel("from segment")
        fig.suptitle(title, fontweight="bold", fontsize=10)
    return fig


def param_value(v: float) -> str:
    """A parameter's value with 3 significant digits and no exponent (0.0447, 0.3, 12.5),
    whole with thousands separators from 1,000 on."""
    if abs(v) >= 999.5:
        return f"{v:,.0f}"
    return np.format_float_positional(float(v), precision=3, unique=False, fractional=False, trim="-")


def wrap_name(name: str, width: int = 22) -> str:
    """A parameter name on lines of at most ``width`` characters, broken after a ``.``, else
    (a part longer than a line) after a ``_`` or a space, else cut:
    ``india.response.goal_gradient`` -> ``india.response.`` / ``goal_gradient``."""
    lines: list[str] = []

    def add(piece: str) -> None:
        if lines and len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)

    for part in re.findall(r"[^.]+\.*|\.+", str(name)):
        for piece in [part] if len(part) <= width else re.findall(r"[^_ ]+[_ ]*|[_ ]+", part):
            while len(piece) > width:
                add(piece[:width])
                piece = piece[width:]
            add(piece)
    return "\n".join(lines) or str(name)


def tornado(bars: pd.DataFrame, currency: str, title: str, headline: float | None = None) -> Figure:
    """NPV when each uncertain parameter is at its low or high value, the others at their
    central value; widest swing on top (``bars``: parameter, low, high, npv_low, npv_high,
    npv_base). Each parameter has two half-height bars from the base, low value (orange) above
    high value (blue), each labelled with the parameter's value at its outer end, so no label
    meets another even when both NPVs fall on the same side of the base; parameter names are
    wrapped and the figure grows with the number of bars and lines. The solid line is the base
    (every uncertain parameter central), the dashed line the headline NPV P50 when given: a
    different figure (every parameter drawn)."""
    names = [wrap_name(p) for p in bars["parameter"]]
    lines_per_bar = max((n.count("\n") + 1 for n in names), default=1)
    row = max(0.5, 0.16 * lines_per_bar + 0.2)  # inches per parameter
    with styled():
        fig = _new(8.0, 1.7 + row * max(len(bars), 1))
        if bars.empty:
            return _empty(fig, "no sensitivity analysis")
        ax = fig.add_subplot()
        b = bars.reset_index(drop=True)
        ys = np.arange(len(b))[::-1]
        base = float(b["npv_base"].iloc[0])
        handles = []  # legend: bars, then lines
        for side, colour, dy in (("low", "#D55E00", 0.19), ("high", "#0072B2", -0.19)):
            npvs = b[f"npv_{side}"].to_numpy(dtype=float)
            handles.append(ax.barh(ys + dy, npvs - base, left=base, height=0.36, color=colour,
                                   label=f"parameter at its {side} value"))
            for y, val, x in zip(ys + dy, b[side], npvs):
                right = x >= base
                ax.annotate(param_value(val), (x, y), xytext=(3 if right else -3, 0), textcoords="offset points",
                            ha="left" if right else "right", va="center", fontsize=7,
                            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})
        handles.append(ax.axvline(base, color="#333333", linewidth=0.9, label="base: every uncertain parameter central"))
        lines = [base]
        if headline is not None:
            handles.append(ax.axvline(headline, color="#333333", linewidth=0.9, linestyle="--",
                                      label="headline NPV P50 (every parameter drawn)"))
            lines.append(headline)
        handles.append(ax.axvline(0.0, color="#aa0000", linewidth=0.8, linestyle=":", label="NPV = 0"))
        ax.set_yticks(ys, names)
        ax.set_ylim(-0.6, len(b) - 0.4)
        ax.grid(axis="y", visible=False)
        _money_axis(ax.xaxis, np.concatenate([b["npv_low"], b["npv_high"], lines]), currency, "NPV")
        ax.set_title(f"{title}\nNPV at each parameter's low (orange) and high (blue) value, the others central", fontsize=9)
        ax.margins(x=0.18)
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=7)
    return fig
