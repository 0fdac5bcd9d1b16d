r"""Self-selection and the lift after enrolment, measured from a member transaction log.

Panel. Each customer's spend and purchases per calendar month (0 in a month without a
purchase), from its first purchase on; its enrolment month ``g`` is the month of its first
member-flagged purchase (a customer never flagged has not joined).

Event study with staggered adoption (Callaway & Sant'Anna 2021, "Difference-in-differences with
multiple time periods", J. Econometrics 225(2); not-yet-treated controls). Customers join at
different months, so a two-way fixed-effects regression would compare late joiners with early
ones already treated and mix effects of different durations with negative weights
(Goodman-Bacon 2021; de Chaisemartin & D'Haultfoeuille 2020). Instead, for each cohort ``g``
and months since joining ``e``:

.. code-block:: text

    ATT(g, e) = mean_{joiners of g} Y_{g+e}
                - mean_{joiners of g} Ybar_g * mean_{controls} Y_{g+e} / mean_{controls} Ybar_g

* controls: customers not yet joined in month ``g`` (they join later or never) who also bought in
  month ``g``: a customer joins at the till, so a joiner bought in its join month by
  construction, and comparing it with customers who did not buy then would credit the program
  with that purchase. They stay controls after ``g`` even if they join later (by default,
  ``fixed_controls``): Callaway & Sant'Anna's not-yet-treated group at ``g + e`` keeps only those
  who have not joined by then, and since joining needs a purchase, that group is selected on
  buying little after ``g`` (measured: it inflated the lift on engine logs). Keeping them dilutes
  the estimate toward zero by their own lift after they join (an intent-to-treat comparison);
* multiplicative parallel trends: the joiners' counterfactual is their own base times the
  controls' growth since theirs, ``Ybar_T (Y_C,t / Ybar_C)`` (Wooldridge 2023, "Simple approaches
  to nonlinear difference-in-differences with panel data", Econometrics J. 26(3)): purchase
  rates are multiplicative (``rate_s m_i season``), so heavier buyers gain more from a season in
  levels and level trends are not parallel between heavy joiners and lighter controls;
* ``Ybar_g``: the customer's mean over the ``L`` months before ``g`` (a long base: one month alone is
  noisy); both groups must have been customers ``L`` months before ``g``. ``match`` adds exact
  matching on the purchase count over those months (off by default: matching on a noisy proxy
  of the rate left more bias on engine logs, not less).

``ATT(e)`` averages the cohorts' ``ATT(g, e)`` weighted by their joiners. Months ``e < 0`` are
placebos (the program cannot act before joining), inside the base window.

Uncertainty: a delete-a-group jackknife over customers (customers in 50 random groups; each
replicate leaves one group out, with each customer's whole history; Quenouille-Tukey, the
grouped form of Kish & Frankel 1974), the same replicates for every cohort and month, so the
intervals of ``ATT(e)`` account for customers who are controls in several cohorts and for any
correlation of a customer's months. Intervals are ``estimate -/+ z se``; the jackknife variance
is conservative in expectation (Efron & Stein 1981). ``variance="bootstrap"`` gives a Poisson(1)
customer bootstrap with percentile intervals instead (measured: the same widths).

The estimand is the lift of the joiners who were customers ``L`` months before joining (those
the comparison can be made for; ``EventStudy.joiner_ids``): newer customers who join are not
in it.

Limits, measured on engine logs (:mod:`simulator.response.generate`, tests in
``tests/response``). With moderate self-selection (``self_selection`` 1) and real effects, the
90% interval of the mean lift over months 0..11 held the engine's true lift of the same joiners
in 145 of 160 seeds for purchases (91%) and 149 of 160 for spend (93%) (seeds 100..259, 8,000
agents; the slow test). With no behavioural effect and no self-selection on the rate it is zero
within its interval. With strong self-selection (``self_selection`` 2) and no effect at all it
still finds +0.08 purchases a month on average (interval holding 0 in 9 of 30 seeds). It is not
the selection of the base months by not having joined then (every month a heavy buyer bought
without joining was a chance to join refused): a base window of the ``L`` months before the
launch, when nobody could join, left it as it was (+0.085 against +0.088 on average over seeds
1..11, the interval excluding 0 in 6 of them against 7; ``base="launch"`` was not kept). What
is left is the joiners' rates, far above the comparison customers' when joining goes with
``m^2``: presumably the comparison customers' growth from their base to ``g + e`` is not the
joiners' would-be growth because the segments' rates move with a customer's own purchases (a
light buyer who bought in ``g`` falls back, a heavy one stays); an earlier measurement found
the bias vanishes with the true rate multiplier known. Matching on purchases before joining
(``match``) was tried and left more bias: a count is a noisy proxy of the rate, and among
customers with the same count joiners still have the higher rate, so no re-weighting on the
log's history removes it (measured over seeds 1..6: +0.19 matched against +0.10 unmatched, and
+0.20 matched on the months before the launch; matched instead on which of the 3 months before
joining had a purchase, a proxy of the segment then, +0.14, and +0.12 with the base taken from
the 6 months before those). By month since joining (seeds 1..6, means): about 0 in the placebo
months but +0.06 in the month before joining, -0.08 in the joining month itself, then +0.05 to
+0.14 (mostly about +0.12) in every month from 1 to 17: a level shift from the month after
joining, not a trend that grows. About half of it is the engine's normalisation of the joining
weight within the segment, ``m^beta / E_s[m^beta]``: with ``beta`` 2, ``E_s[m^2] = 1 + 1/k_s``
differs across segments of different ``rate_shape`` ``k_s``, so joining also selects on the
customer's segment in the month of joining (a state the log does not show, and which persists);
with one ``rate_shape`` for every segment the bias falls to +0.047 (seeds 1..8, the interval
holding 0 in 5 of 8), about what ``beta`` 1 gives with no effect (``E_s[m] = 1`` in every
segment): +0.039 (seeds 1..8, 5 of 8 holding 0), the other half, there with any selection on
the rate (within the intervals' width when there are real effects: the coverage above). Logs
must carry only customers the retailer can identify: customers who could never join (anonymous
at the till) in the comparison group raise the bias (0.033 purchases a month at
``self_selection`` 1 before the generator dropped them). The naive member comparison is 5 to 7
times further off.

Lapses. A lapse is a month with a purchase followed by ``LAPSE_MONTHS`` (6) months without one;
the outcome is 1 in the month a customer lapses (unknown in the log's last 6 months). A customer
who bought in month ``g`` cannot have lapsed in the months before, so there is no base to
difference: :func:`lapse_study` compares, month by month after ``g``, the joiners' lapses with
those of the comparison customers with the same purchase count over the 12 months before ``g``
(exact matching, counts above 15 pooled; Imbens & Rubin 2015, ch. 18), the same cohorts,
weights and jackknife as above; the joiners' counterfactual rate is their observed rate minus
the estimate. Measured on engine logs (``self_selection`` 1, ``transition_effect`` 0.3; seeds
100..129): mean -0.0049 lapses a member-month against a truth of -0.0045 (sd 0.0016 over
seeds), the 90% interval holding the truth in 28 of 30 seeds; with every mechanism off but
self-selection (seeds 1..15), 0.0001 and 14 of 15. It is the lapse rate a log shows, not the
engine's ``transition_effect`` (a cut in moves into lapsed segments, which a log does not show:
a customer also falls silent for 6 months by chance), so it is reported, not written.

What the estimates mean for the engine. The engine has no parameter "lift after joining": a
member's rate is raised by goal gradient, rewarded behaviour, tier status and fewer lapses,
each its own ``response`` field. The event study measures their combined effect as the log
shows it; it is not written into any of them. Goal gradient and rewarded behaviour are measured
on their own from the balances (:mod:`simulator.response.balances`) and written.

Self-selection: joiners' mean monthly spend in the ``L`` months before joining against the
(unmatched) controls' over the same months, as a ratio; the naive member uplift (members'
mean monthly spend after the launch against non-members') is reported beside the true lift to
show how much of it is selection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Panel", "EventStudy", "panel_from_log", "event_study", "lapse_study", "MAX_COUNT", "LAPSE_MONTHS"]

#: A lapse: a month with a purchase followed by this many months without one.
LAPSE_MONTHS = 6

#: Purchases before joining are matched exactly up to this count (the last cell is open).
MAX_COUNT = 15
N_CELLS = MAX_COUNT + 1


@dataclass(frozen=True)
class Panel:
    """Customers x calendar months.

    spend, purchases : [N, T] per customer and month (0 before the first purchase too).
    first : [N] month of the first purchase. joined : [N] enrolment month, -1 never.
    months : [T] the calendar months (``pandas.Period``).
    """

    customers: np.ndarray
    months: pd.PeriodIndex
    spend: np.ndarray
    purchases: np.ndarray
    first: np.ndarray
    joined: np.ndarray

    @property
    def n_joiners(self) -> int:
        return int((self.joined >= 0).sum())

    @property
    def lapses(self) -> np.ndarray:
        """[N, T] 1 in a month with a purchase followed by ``LAPSE_MONTHS`` months without one (the
        month the customer lapsed), else 0; unknown (NaN) in the last ``LAPSE_MONTHS`` months."""
        P = self.purchases > 0
        T = P.shape[1]
        K = LAPSE_MONTHS
        out = np.full(P.shape, np.nan)
        if T > K:
            cs = np.concatenate([np.zeros((P.shape[0], 1)), np.cumsum(P, axis=1)], axis=1)
            after = cs[:, K + 1:T + 1] - cs[:, 1:T - K + 1]  # purchases in months t+1..t+K, t < T-K
            out[:, :T - K] = (P[:, :T - K] & (after == 0)).astype(float)
        return out


def panel_from_log(tx: pd.DataFrame) -> Panel:
    """The panel of a cleaned log (columns ``customer_id``, ``date``, ``amount``, ``member``)."""
    period = pd.PeriodIndex(pd.to_datetime(tx["date"]), freq="M")
    p0 = period.min()
    months = pd.period_range(p0, period.max(), freq="M")
    t = np.asarray((period.year - p0.year) * 12 + (period.month - p0.month), dtype=np.int64)
    cust, idx = np.unique(tx["customer_id"].astype(str).to_numpy(), return_inverse=True)
    N, T = len(cust), len(months)
    flat = idx * T + t
    spend = np.bincount(flat, weights=tx["amount"].to_numpy(dtype=float), minlength=N * T).reshape(N, T)
    purchases = np.bincount(flat, minlength=N * T).reshape(N, T).astype(float)
    first = np.full(N, T, dtype=np.int64)
    np.minimum.at(first, idx, t)
    member = tx["member"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    joined = np.full(N, T, dtype=np.int64)
    np.minimum.at(joined, idx[member], t[member])
    joined[joined == T] = -1
    return Panel(cust, months, spend, purchases, first, joined)


@dataclass
class EventStudy:
    """ATT by months since joining, with jackknife (or bootstrap) intervals, and the figures around it."""

    outcome: str
    events: np.ndarray
    att: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    se: np.ndarray
    joiners: np.ndarray           # joiners contributing at each event month
    level: float
    pre_joiners: float            # joiners' mean monthly outcome in the L months before joining
    pre_controls: float           # controls' (unmatched) over the same months
    pre_ratio: tuple[float, float, float]  # joiners / controls before joining: estimate, lo, hi
    naive: float                  # members' minus non-members' mean monthly outcome after the launch
    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    cohorts: int = 0
    replicates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [boot, events]
    joiner_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))  # the joiners estimated on
    variance: str = "jackknife"   # what ``replicates`` are: delete-a-group jackknife or bootstrap replicates
    treated: np.ndarray = field(default_factory=lambda: np.zeros(0))  # joiners' mean outcome by event month

    def counterfactual(self, first: int = 0, last: int | None = None) -> float:
        """The joiners' mean outcome over event months first..last had they not joined (their
        observed mean minus the estimated lift), weighted as :meth:`post`."""
        e = self.events
        m = (e >= max(first, 0)) & (e <= (e.max() if last is None else last)) & (self.joiners > 0)
        w = self.joiners[m] / self.joiners[m].sum()
        return float((self.treated[m] - self.att[m]) @ w)

    def post(self, first: int = 0, last: int | None = None) -> tuple[float, float, float]:
        """Mean ATT over event months first..last, weighted by their joiners (estimate, lo, hi),
        the interval from the same replicates."""
        e = self.events
        m = (e >= max(first, 0)) & (e <= (e.max() if last is None else last)) & (self.joiners > 0)
        w = self.joiners[m] / self.joiners[m].sum()
        est = float(self.att[m] @ w)
        lo, hi = _interval(est, self.replicates[:, m] @ w, self.level, self.variance)
        return est, float(lo), float(hi)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"event": self.events, "att": self.att, "lo": self.lo, "hi": self.hi, "se": self.se,
                             "joiners": self.joiners})


def _interval(est, reps: np.ndarray, level: float, variance: str):
    """Interval from replicates: jackknife, ``est -/+ z se`` with the delete-a-group variance
    ``(G-1)/G sum (b_g - mean b)^2``; bootstrap, the replicates' percentiles."""
    a = (1 - level) / 2
    if variance == "jackknife":
        G = reps.shape[0]
        se = np.sqrt((G - 1) / G * np.nansum((reps - np.nanmean(reps, axis=0)) ** 2, axis=0))
        z = float(stats.norm.ppf(1 - a))
        return est - z * se, est + z * se
    return np.nanquantile(reps, a, axis=0), np.nanquantile(reps, 1 - a, axis=0)


def _cells(pre_count: np.ndarray) -> np.ndarray:
    """Matching cell: purchases over the L months before joining (exact up to MAX_COUNT)."""
    return np.minimum(pre_count, MAX_COUNT).astype(np.int64)


def _att(v: np.ndarray, C: int) -> tuple[np.ndarray, np.ndarray]:
    """Joiners' outcome at t minus their own base times the controls' growth since theirs
    (multiplicative parallel trends), summed over cells; and the joiners counted."""
    v = v.reshape(*v.shape[:-1], 6, C)
    nt, tyt, tyb, nc, cyt, cyb = (v[..., k, :] for k in range(6))
    ok = (nc > 0) & (cyb > 0)
    growth = np.where(ok, cyt / np.where(ok, cyb, 1.0), 0.0)
    diff = np.where(ok, tyt - tyb * growth, 0.0)
    return diff.sum(axis=-1), np.where(ok, nt, 0.0).sum(axis=-1)


def lapse_study(panel: Panel, *, pre: int = 12, post: int = 12, **kw) -> "EventStudy":
    """Members' monthly lapses against comparison customers with the same purchases over the
    ``pre`` months before joining (see the module docstring, "Lapses")."""
    return event_study(panel, outcome="lapses", pre=pre, post=post, match=True, placebo=0, **kw)


def event_study(panel: Panel, *, outcome: str = "spend", pre: int = 6, post: int = 12, placebo: int = 4,
                boot: int = 999, seed: int = 0, level: float = 0.90, match: bool = False,
                fixed_controls: bool = True, variance: str = "jackknife", groups: int = 50) -> EventStudy:
    """ATT(e) for e = -placebo .. post-1 (see the module docstring)."""
    Y = getattr(panel, outcome)
    P = panel.purchases
    N, T = Y.shape
    known = T - LAPSE_MONTHS if outcome == "lapses" else T  # months whose outcome the log shows
    Y = np.nan_to_num(Y)
    g_all = panel.joined
    events = np.arange(-placebo, post)
    E = len(events)
    rng = np.random.default_rng(seed)
    if variance == "jackknife":  # customers in ``groups`` random groups; replicate k leaves group k out
        group = rng.permutation(N) % groups
        W = (group[None, :] != np.arange(groups)[:, None]).astype(float)
        boot = groups
    elif variance == "bootstrap":
        W = rng.poisson(1.0, size=(boot, N)).astype(float)
    else:
        raise ValueError(f"variance {variance!r} (expected jackknife or bootstrap)")
    est_num = np.zeros(E)
    treated_sum = np.zeros(E)
    boot_num = np.zeros((boot, E))
    weight = np.zeros(E)
    pre_sum, pre_n = np.zeros(2), np.zeros(2)
    boot_pre, boot_pre_n = np.zeros((boot, 2)), np.zeros((boot, 2))
    bal_rows = []
    cohorts = 0
    used = np.zeros(N, dtype=bool)
    for g in range(pre, known):
        base_ok = panel.first <= g - pre
        treated = (g_all == g) & base_ok
        if not treated.any():
            continue
        anchor = base_ok & (P[:, g] > 0) & ((g_all > g) | (g_all < 0))
        sel = np.flatnonzero(treated | anchor)
        is_t = treated[sel]
        pre_count = P[sel, g - pre:g].sum(axis=1)
        cell = _cells(pre_count) if match else np.zeros(len(sel), dtype=np.int64)
        C = N_CELLS if match else 1
        onehot = np.zeros((len(sel), C))
        onehot[np.arange(len(sel)), cell] = 1.0
        ctrl_cells = onehot[~is_t].sum(axis=0) > 0
        usable_t = is_t & ctrl_cells[cell]
        if not usable_t.any():
            continue
        cohorts += 1
        used[sel[usable_t]] = True
        yb = np.ones(len(sel)) if outcome == "lapses" else Y[sel, g - pre:g].mean(axis=1)
        cols, meta = [], []
        for j, e in enumerate(events):
            t = g + e
            if t < 0 or t >= known or (e < 0 and t < g - pre):
                continue
            yt = Y[sel, t]
            not_yet = (g_all[sel] > t) | (g_all[sel] < 0)
            c_mask = (~is_t) & (not_yet | fixed_controls)
            cols += [onehot * x[:, None] for x in (usable_t * 1.0, usable_t * yt, usable_t * yb,
                                                   c_mask * 1.0, c_mask * yt, c_mask * yb)]
            meta.append(j)
        if not meta:
            continue
        M = np.hstack(cols)  # [n_sel, 6 C per event]
        full = M.sum(axis=0)
        bs = W[:, sel] @ M
        for q, j in enumerate(meta):
            blk = slice(6 * C * q, 6 * C * (q + 1))
            num, n = _att(full[blk], C)
            v = full[blk].reshape(6, C)
            treated_sum[j] += v[1][(v[3] > 0) & (v[5] > 0)].sum()
            bnum, bn = _att(bs[:, blk], C)
            # cohorts weighted by their joiners (full-sample counts); each replicate's ATT(g, e)
            # is its own difference of means, re-weighted to the same count
            est_num[j] += num
            boot_num[:, j] += np.where(bn > 0, bnum / np.where(bn > 0, bn, 1.0), 0.0) * n
            weight[j] += n
        # self-selection: the L months before joining, joiners vs the cohort's controls, unmatched
        pre_mean = Y[sel, g - pre:g].mean(axis=1)
        for k, mask in enumerate((is_t, ~is_t)):
            pre_sum[k] += pre_mean[mask].sum()
            pre_n[k] += mask.sum()
            boot_pre[:, k] += W[:, sel[mask]] @ pre_mean[mask]
            boot_pre_n[:, k] += W[:, sel[mask]].sum(axis=1)
        bal_rows.append((pre_count, cell, is_t, usable_t, pre_mean))
    with np.errstate(invalid="ignore", divide="ignore"):
        att = est_num / weight
        b = boot_num / weight
        ratio_b = (boot_pre[:, 0] / boot_pre_n[:, 0]) / (boot_pre[:, 1] / boot_pre_n[:, 1])
    a = (1 - level) / 2
    if cohorts:
        lo, hi = _interval(est_num / weight, b, level, variance)
        se = (hi - lo) / 2 / stats.norm.ppf(1 - a) if variance == "jackknife" else np.nanstd(b, axis=0, ddof=1)
        pr = float(pre_sum[0] / max(pre_n[0], 1) / (pre_sum[1] / max(pre_n[1], 1))) if pre_sum[1] > 0 else float("nan")
        ratio_lo, ratio_hi = (float(np.ravel(x)[0]) for x in _interval(pr, ratio_b[:, None], level, variance))
    else:
        lo = hi = se = np.full(E, np.nan)
        ratio_lo = ratio_hi = float("nan")
    pre_j, pre_c = pre_sum / np.maximum(pre_n, 1)
    ratio = (float(pre_j / pre_c) if pre_c > 0 else float("nan"), ratio_lo, ratio_hi)
    return EventStudy(outcome, events, att, lo, hi, se, weight, level, float(pre_j), float(pre_c), ratio,
                      _naive(panel, Y, known), _balance(bal_rows, C if cohorts else 1), cohorts, b, panel.customers[used],
                      variance, treated_sum / np.where(weight > 0, weight, np.nan))


def _naive(panel: Panel, Y: np.ndarray, known: int | None = None) -> float:
    """Members' minus non-members' mean monthly outcome, customer-months from the first join on
    (each from its first purchase; a member's months from joining)."""
    joined = panel.joined
    if not (joined >= 0).any():
        return float("nan")
    launch = int(joined[joined >= 0].min())
    t = np.arange(Y.shape[1])[None, :]
    seen = (t >= panel.first[:, None]) & (t >= launch) & (t < (Y.shape[1] if known is None else known))
    mem = (joined[:, None] >= 0) & (t >= joined[:, None])
    a, b = Y[seen & mem], Y[seen & ~mem]
    return float(a.mean() - b.mean()) if a.size and b.size else float("nan")


def _balance(rows: list, C: int) -> pd.DataFrame:
    """Joiners against controls before joining: all controls, and re-weighted to the joiners'
    purchase counts over the L months before joining (what matching on them would give)."""
    if not rows:
        return pd.DataFrame()
    pc = np.concatenate([r[0] for r in rows]).astype(float)
    is_t = np.concatenate([r[2] for r in rows])
    use = np.concatenate([r[3] for r in rows])
    y = np.concatenate([r[4] for r in rows])
    cell = _cells(pc.astype(np.int64))
    nt = np.bincount(cell[use], minlength=N_CELLS).astype(float)
    nc = np.bincount(cell[~is_t], minlength=N_CELLS).astype(float)
    w = np.where(nc[cell] > 0, nt[cell] / np.maximum(nc[cell], 1), 0.0) * ~is_t

    def mean(x: np.ndarray, m: np.ndarray, wt: np.ndarray | None = None) -> float:
        wt = m.astype(float) if wt is None else wt
        return float((x * wt).sum() / wt.sum()) if wt.sum() > 0 else float("nan")

    return pd.DataFrame({
        "measure": ["purchases over the months before joining", "outcome a month before joining"],
        "joiners": [mean(pc, use), mean(y, use)],
        "controls_all": [mean(pc, ~is_t), mean(y, ~is_t)],
        "controls_reweighted": [mean(pc, ~is_t, w), mean(y, ~is_t, w)],
    })
