"""Pilots by store: the matched-control readout of a pilot, and the power of a pilot before it.

A pilot launches the design in some stores only (``Playbook.pilot``; the engine's side is
:mod:`simulator.engine.stores`). The question a pilot answers is the design's effect on
revenue per customer, and what it is read against is the other stores: this module reads a
pilot the way an analyst would, from the stores' months alone, and sets that beside the true
effect the simulation knows, then asks how many stores and months a pilot needs.

The outcome. For store k and a window W of months, revenue per customer is

    y_k(W) = sum_{t in W} revenue_kt / sum_{t in W} customers_kt

(per customer-month; customers whose home store is k, stores.parquet). The pilot's months
are the d months from launch, W_post; the months simulated before launch (``start`` before
``launch`` in the playbook: the program is not running yet, so the design run is the
baseline there) are W_pre.

Matched controls. Each pilot store gets one control store among the stores outside the
pilot, by nearest-neighbour matching without replacement on standardised features
(Abadie & Imbens 2006, for matching estimators; Rosenbaum 2002, ch. 10, for optimal
matching): the features x_k are the store's mean customers and its revenue per customer
y_k before launch (W_pre; with no month before launch, the baseline run's same figures
over W_post, which a store has without the program), and with a store network giving
them, the store's enrolment multiplier; each is standardised over the network,
z_kf = (x_kf - mean_f) / sd_f, the distance is Euclidean, ||z_p - z_c||, and the pairs
minimise the sum of the distances over all one-to-one assignments (the Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``). It needs at least as many stores outside the
pilot as in it: a pilot in more than half the stores has no readout.

The estimate: a difference in differences at store level (Card & Krueger 1994; with every
pilot store starting the same month, the two-group, two-period case of Callaway &
Sant'Anna 2021). Each store's change is

    delta_k = y_k^design(W_post) - y_k^design(W_pre)

and the pilot's estimated effect is the pilot stores' mean change less their controls':

    effect_hat = mean_{p in P} delta_p - mean_{c in C} delta_c

Without months before launch, the "before" is the baseline run over the same months,
delta_k = y_k^design(W_post) - y_k^baseline(W_post): a real pilot has no such run, so this
readout is the simulation's, and is nearly the true effect by construction (on common
random numbers a control store's design and baseline months are the same). To read a pilot
as it would be read in the field, start the playbook some months before launch.

Its interval. The pilot and control stores come in matched pairs (p_i, c_i), so the main
test is the paired t-test (Student 1908; ``scipy.stats.ttest_rel``) on the pair differences
g_i = delta_{p_i} - delta_{c_i}: effect_hat = mean_i g_i (the same estimate), se = s_g /
sqrt(n), n - 1 degrees of freedom, the (1 - alpha) interval effect_hat +- t_{1 - alpha/2, n-1}
se and its p-value. Matching makes a pair's two stores alike, so their changes move together
and the pairs' spread s_g is smaller than the groups' (it gives back the power that the pairs
cost in degrees of freedom). Beside it, Welch's t-test (Welch 1947) of the pilot stores'
changes against the controls' as two groups, standard error sqrt(s_P^2 / n_P + s_C^2 / n_C),
degrees of freedom by the Welch-Satterthwaite equation (``scipy.stats.ttest_ind(equal_var=
False)``), the ``welch_*`` columns. When the pilot holds more than :data:`PAIRED_MAX_SHARE` =
40% of the stores, the controls are whatever stores are left and the pairs are not alike:
Welch's test is the main one (column ``test``). Over replications, the readout also gives the
P10, P50 and P90 of effect_hat: the range one pilot's readout falls in.

The true effect, which the simulation knows and a pilot does not: the mean over the pilot
stores of design minus baseline on the same customers (common random numbers),

    effect = mean_{p in P} [ y_p^design(W_post) - y_p^baseline(W_post) ]

so bias = effect_hat - effect, and the share of replications whose interval holds the true
effect (coverage) says whether the readout is honest.

Simulated power (``loyalty-sim pilot``). For each number of pilot stores k and duration d in
months, R replications r = 0..R-1 of the design piloted in k stores: replication r draws a
random order of the network's stores from a stream of its own (seed, r), and its k-store
pilot takes the first k, so candidates share their stores (the 4 stores of a 4-store pilot
are among an 8-store pilot's; see :data:`CHOICES` for the other ways to choose them) as well as their customers (replication r of every candidate
runs on the same random numbers): common random numbers, so the differences between
candidates are not noise. One run per (k, r) covers every duration, from ``pre`` months
before launch to the longest d after; the d-month readout uses the first d. The test is the
readout's main test (paired, or Welch's above 40% of the stores) at level alpha, two-sided, and

    power(k, d) = (1/R) sum_r 1[p_r(k, d) < alpha],   se = sqrt(power (1 - power) / R)

(binomial standard error). The recommendation is the candidate with the fewest store-months
k d whose power reaches the target (ties: the shorter pilot). For a check against the
textbook: with equal stores and a store-level change about normal with standard deviation
sigma in both groups, the power of the two-sample t-test with n = k stores a group is
1 - F(t_{1-alpha/2}) + F(-t_{1-alpha/2}), F the non-central t distribution with 2k - 2
degrees of freedom and non-centrality effect / (sigma sqrt(2/k)) (Cohen 1988, ch. 2).

What the simulated stores' noise is: only the sampling of the simulated customers (each
store has about ``agents x share_k`` of them) and their months. A store's own shocks (a
competitor opening, roadworks, a manager leaving) are not modelled, and a simulation with
fewer agents than the market has customers has noisier stores than the market: simulated
power is the power against customer-level noise, at the number of agents simulated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

#: Columns of a run's pilot.csv, one row per replication.
READOUT_COLUMNS = ("replication", "method", "pre_months", "months", "pilot_stores", "control_stores", "estimate",
                   "test", "se", "ci_lo", "ci_hi", "p_value", "welch_se", "welch_ci_lo", "welch_ci_hi", "welch_p_value",
                   "true_effect", "bias", "covered")
#: Columns of power.csv (``power``: the main test's; ``power_welch``: Welch's beside it).
POWER_COLUMNS = ("stores", "months", "store_months", "replications", "test", "power", "power_se", "power_welch",
                 "mean_estimate", "sd_estimate", "true_effect", "mean_bias")
#: Above this share of the network's stores in the pilot, the readout's main test is Welch's
#: (the controls are the stores left, not alike pairs); at or below it, the paired t-test.
PAIRED_MAX_SHARE = 0.4
PAIRED, WELCH = "paired", "welch"
PRE_DID = "difference in differences against the months before launch"
BASELINE_DID = "difference in differences against the baseline run (the simulation's: a real pilot has no such run)"


def months_before_launch(start: dt.date | None, launch: dt.date) -> int:
    """Months simulated before the launch month (0 when the run starts at launch)."""
    if start is None:
        return 0
    return max(0, (launch.year - start.year) * 12 + launch.month - start.month)


def _panel(table: pd.DataFrame, column: str, stores: Sequence[str]) -> np.ndarray:
    """[K, T] of one figure by store (rows in ``stores`` order) and month."""
    wide = table.pivot(index="store", columns="month", values=column)
    return wide.loc[list(stores)].to_numpy(dtype=float)


def _rpc(rev: np.ndarray, cust: np.ndarray, window: slice) -> np.ndarray:
    r, c = rev[:, window].sum(axis=1), cust[:, window].sum(axis=1)
    return np.divide(r, c, out=np.zeros(len(r)), where=c > 0)


def match_controls(features: np.ndarray, pilot: np.ndarray) -> np.ndarray:
    """Indices of one control store per pilot store (in the pilot's order), among the stores
    outside it: nearest neighbours without replacement on standardised features, the pairs
    minimising the total Euclidean distance (module docstring). ``features`` [K, F];
    ``pilot`` the pilot stores' indices."""
    x = np.asarray(features, dtype=float)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    pilot = np.asarray(pilot, dtype=int)
    others = np.setdiff1d(np.arange(len(x)), pilot)
    if len(others) < len(pilot):
        raise ValueError(f"{len(pilot)} pilot stores leave {len(others)} outside the pilot: matching without "
                         "replacement needs at least as many")
    dist = np.sqrt(((z[pilot][:, None, :] - z[others][None, :, :]) ** 2).sum(axis=2))
    rows, cols = optimize.linear_sum_assignment(dist)
    out = np.empty(len(pilot), dtype=int)
    out[rows] = others[cols]
    return out


@dataclass(frozen=True)
class Readout:
    """One pilot read against its matched controls (module docstring)."""

    method: str
    pre_months: int
    months: int
    pilot: tuple[str, ...]
    controls: tuple[str, ...]
    estimate: float
    se: float
    ci_lo: float
    ci_hi: float
    p_value: float
    true_effect: float
    test: str = WELCH
    welch_se: float = float("nan")
    welch_ci_lo: float = float("nan")
    welch_ci_hi: float = float("nan")
    welch_p_value: float = float("nan")

    @property
    def bias(self) -> float:
        return self.estimate - self.true_effect

    @property
    def covered(self) -> bool:
        return bool(self.ci_lo <= self.true_effect <= self.ci_hi)


class Panel:
    """A run's stores by month, as arrays: customers and revenue of design and baseline,
    [K, T] each, and the stores' enrolment multipliers (or None)."""

    def __init__(self, design: pd.DataFrame, baseline: pd.DataFrame, enrolment: dict[str, float] | None = None):
        self.stores = tuple(pd.unique(design["store"]))
        self.cust_d, self.rev_d = (_panel(design, c, self.stores) for c in ("customers", "revenue"))
        self.cust_b, self.rev_b = (_panel(baseline, c, self.stores) for c in ("customers", "revenue"))
        self.enrolment = None if enrolment is None else np.array([float(enrolment[s]) for s in self.stores])

    @property
    def T(self) -> int:
        return self.cust_d.shape[1]

    def readout(self, pilot: Sequence[str], *, pre_months: int, months: int | None = None,
                alpha: float = 0.05) -> Readout:
        """The pilot of stores ``pilot`` read over the ``months`` months from launch (default
        every month after launch) against its matched controls."""
        index = {s: i for i, s in enumerate(self.stores)}
        P = np.array([index[s] for s in pilot], dtype=int)
        d = self.T - pre_months if months is None else int(months)
        if d < 1 or pre_months + d > self.T:
            raise ValueError(f"{d} months after {pre_months} before launch do not fit a {self.T}-month run")
        post, pre = slice(pre_months, pre_months + d), slice(0, pre_months)
        after = _rpc(self.rev_d, self.cust_d, post)
        base_after = _rpc(self.rev_b, self.cust_b, post)
        if pre_months > 0:
            before, cust = _rpc(self.rev_d, self.cust_d, pre), self.cust_d[:, pre].mean(axis=1)
            method = PRE_DID
        else:
            before, cust = base_after, self.cust_b[:, post].mean(axis=1)
            method = BASELINE_DID
        feats = [cust, before] + ([self.enrolment] if self.enrolment is not None else [])
        C = match_controls(np.column_stack(feats), P)
        change = after - before
        a, b = change[P], change[C]
        estimate = float(a.mean() - b.mean())
        welch = _test(a, b, estimate, alpha, paired=False)
        test = PAIRED if len(P) <= PAIRED_MAX_SHARE * len(self.stores) + 1e-9 else WELCH
        main = _test(a, b, estimate, alpha, paired=True) if test == PAIRED else welch
        true = float((after[P] - base_after[P]).mean())
        return Readout(method, pre_months, d, tuple(self.stores[i] for i in P), tuple(self.stores[i] for i in C),
                       estimate, *main, true, test, *welch)


def _test(a: np.ndarray, b: np.ndarray, estimate: float, alpha: float, *, paired: bool) -> tuple[float, float, float, float]:
    """se, interval and p-value of the pilot's changes ``a`` against their controls' ``b``
    (pair i: a[i], b[i]): the paired t-test, or Welch's two-group test."""
    n = len(a)
    if n < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    if paired:
        se = float((a - b).std(ddof=1) / np.sqrt(n))
    else:
        se = float(np.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / len(b)))
    if se > 0:
        test = stats.ttest_rel(a, b) if paired else stats.ttest_ind(a, b, equal_var=False)
        ci = test.confidence_interval(1 - alpha)
        return se, float(ci.low), float(ci.high), float(test.pvalue)
    # no spread at all: no test
    return se, estimate, estimate, (0.0 if estimate != 0 else 1.0)


def _enrolment(scenario) -> dict[str, float] | None:
    net = scenario.market.stores
    return None if net is None else {s.name: float(s.enrolment) for s in net.stores}


def run_readout(result, alpha: float = 0.05) -> pd.DataFrame | None:
    """pilot.csv of a run whose playbook pilots the design (None otherwise, and when fewer
    stores are outside the pilot than in it: no control store for each): one row per
    replication, :data:`READOUT_COLUMNS`, the readout over every month after launch."""
    sc = result.scenario
    pb = sc.playbook
    if pb.pilot is None or not pb.pilot.stores or not result.replications or result.replications[0].stores_design is None:
        return None
    if 2 * len(set(pb.pilot.stores)) > len(sc.market.stores.stores):
        return None
    pre = months_before_launch(pb.start, pb.launch)
    rows = []
    for r, rep in enumerate(result.replications):
        ro = Panel(rep.stores_design, rep.stores_baseline, _enrolment(sc)).readout(pb.pilot.stores, pre_months=pre,
                                                                                   alpha=alpha)
        rows.append(_row(r, ro))
    return pd.DataFrame(rows, columns=list(READOUT_COLUMNS))


def _row(r: int, ro: Readout) -> dict[str, Any]:
    return {"replication": r, "method": ro.method, "pre_months": ro.pre_months, "months": ro.months,
            "pilot_stores": " ".join(ro.pilot), "control_stores": " ".join(ro.controls), "estimate": ro.estimate,
            "test": ro.test, "se": ro.se, "ci_lo": ro.ci_lo, "ci_hi": ro.ci_hi, "p_value": ro.p_value,
            "welch_se": ro.welch_se, "welch_ci_lo": ro.welch_ci_lo, "welch_ci_hi": ro.welch_ci_hi,
            "welch_p_value": ro.welch_p_value, "true_effect": ro.true_effect, "bias": ro.bias, "covered": ro.covered}


def readout_summary(table: pd.DataFrame) -> dict[str, Any]:
    """The readout over replications: the estimate's P10/P50/P90 and mean, the true effect's
    mean, the mean bias with its 95% interval over replications (t, R - 1 degrees of freedom;
    none with one replication), the share of replications whose interval holds the true
    effect, and replication 0's pairs (pilot store, control store)."""
    est, bias = table["estimate"].to_numpy(float), table["bias"].to_numpy(float)
    R = len(table)
    out: dict[str, Any] = {
        "method": str(table["method"].iloc[0]), "replications": R, "pre_months": int(table["pre_months"].iloc[0]),
        "months": int(table["months"].iloc[0]),
        "estimate": {"mean": float(est.mean()), **{f"p{q}": float(np.percentile(est, q)) for q in (10, 50, 90)}},
        "true_effect": float(table["true_effect"].mean()),
        "analyst_interval": [float(table["ci_lo"].iloc[0]), float(table["ci_hi"].iloc[0])],
        "test": str(table["test"].iloc[0]) if "test" in table else WELCH,
        "welch_interval": ([float(table["welch_ci_lo"].iloc[0]), float(table["welch_ci_hi"].iloc[0])]
                           if "welch_ci_lo" in table else None),
        "welch_coverage": (float(((table["welch_ci_lo"] <= table["true_effect"])
                                  & (table["true_effect"] <= table["welch_ci_hi"])).mean())
                           if "welch_ci_lo" in table else None),
        "coverage": float(table["covered"].astype(bool).mean()),
        "bias": {"mean": float(bias.mean()), "lo": None, "hi": None},
        "pairs": list(zip(str(table["pilot_stores"].iloc[0]).split(), str(table["control_stores"].iloc[0]).split())),
    }
    if R > 1:
        half = float(stats.t.ppf(0.975, R - 1) * bias.std(ddof=1) / np.sqrt(R))
        out["bias"].update(lo=float(bias.mean() - half), hi=float(bias.mean() + half))
    return out


def readout_lines(summary: dict[str, Any], currency: str) -> list[str]:
    """The readout as a person reads it (printed by ``run``, shown in the report)."""
    e, b = summary["estimate"], summary["bias"]
    lo, hi = summary["analyst_interval"]
    pairs = ", ".join(f"{p}~{c}" for p, c in summary["pairs"])
    lines = [f"Pilot readout ({summary['method']}; {summary['months']} months after launch, "
             f"{summary['pre_months']} before): revenue per customer-month, pilot stores against matched controls",
             f"  estimated effect {e['mean']:+.3f} {currency} a customer-month, P10 {e['p10']:+.3f}, P90 {e['p90']:+.3f} "
             f"over {summary['replications']} replication(s); replication 0's 95% interval {lo:+.3f}..{hi:+.3f} "
             + ("(paired t-test over the matched pairs" + (f"; Welch {summary['welch_interval'][0]:+.3f}.."
                                                          f"{summary['welch_interval'][1]:+.3f})"
                                                          if summary.get("welch_interval") else ")")
                if summary.get("test") == PAIRED else
                "(Welch t-test: the pilot holds over 40% of the stores, its controls are not alike pairs)"),
             f"  true effect (design - baseline on the pilot stores) {summary['true_effect']:+.3f}; bias {b['mean']:+.3f}"
             + (f" (95% {b['lo']:+.3f}..{b['hi']:+.3f})" if b["lo"] is not None else "")
             + f"; the interval holds the true effect in {summary['coverage']:.0%} of replications"
             + (f" (Welch's in {summary['welch_coverage']:.0%})" if summary.get("test") == PAIRED
                and summary.get("welch_coverage") is not None else ""),
             f"  pairs (pilot~control, replication 0): {pairs}"]
    return lines


# ----------------------------------------------------------------------------- power

def store_order(stores: Sequence[str], seed: int, replication: int) -> tuple[str, ...]:
    """Replication ``replication``'s random order of the stores (its k-store pilot is the first k)."""
    rng = np.random.default_rng([int(seed), int(replication), 0x9170])
    return tuple(np.array(stores, dtype=object)[rng.permutation(len(stores))])


#: How ``loyalty-sim pilot --choose`` picks a replication's k pilot stores (each nested: a
#: k-store pilot's stores are among a larger one's):
#: ``random``: the first k of a random order of the stores (:func:`store_order`), new each
#: replication; ``best``: the k best recruiters (the market's store ``enrolment`` multiplier,
#: then the larger share, then the name), the same every replication: a pilot where the
#: program is likeliest to be sold, read against matched controls among the others;
#: ``matched``: the stores paired by size and recruitment (sorted by share, then enrolment;
#: consecutive stores a pair), a random order of the pairs and a coin per pair each
#: replication, the k first pairs giving one pilot store each (a matched-pair randomised design).
CHOICES = ("random", "best", "matched")


def best_recruiters(scenario) -> tuple[str, ...]:
    """The network's stores, best recruiters first (enrolment multiplier, then share, then name)."""
    stores = scenario.market.stores.stores
    return tuple(s.name for s in sorted(stores, key=lambda s: (-float(s.enrolment), -float(s.share), s.name)))


def matched_order(scenario, seed: int, replication: int) -> tuple[str, ...]:
    """Replication ``replication``'s pilot stores of a matched-pair design, in order (see
    :data:`CHOICES`): one store of each pair, the pairs in a random order."""
    stores = sorted(scenario.market.stores.stores, key=lambda s: (-float(s.share), -float(s.enrolment), s.name))
    pairs = [stores[i:i + 2] for i in range(0, len(stores) - 1, 2)]
    rng = np.random.default_rng([int(seed), int(replication), 0x9A1D])
    order = rng.permutation(len(pairs))
    coins = rng.integers(0, 2, size=len(pairs))
    return tuple(pairs[j][int(coins[j])].name for j in order)


def pilot_stores(scenario, choose: str, seed: int, replication: int, k: int) -> tuple[str, ...]:
    """Replication ``replication``'s ``k`` pilot stores chosen by ``choose`` (:data:`CHOICES`)."""
    if choose == "random":
        return store_order(tuple(s.name for s in scenario.market.stores.stores), seed, replication)[:k]
    if choose == "best":
        return best_recruiters(scenario)[:k]
    if choose == "matched":
        return matched_order(scenario, seed, replication)[:k]
    raise ValueError(f"{choose!r} is not a way to choose pilot stores (expected one of: {', '.join(CHOICES)})")


def pilot_scenario(scenario, stores: Sequence[str], *, pre_months: int, months: int):
    """The scenario piloting its design in ``stores``, simulated from ``pre_months`` before
    launch to ``months`` after it (baseline none; the playbook's own pilot replaced)."""
    from simulator.specs.playbook import Pilot

    pb = scenario.playbook
    y, m = divmod(pb.launch.year * 12 + pb.launch.month - 1 - pre_months, 12)
    start = dt.date(y, m + 1, 1)
    pb = pb.model_copy(update={"pilot": Pilot(stores=tuple(stores)), "start": start,
                               "horizon_months": pre_months + months})
    return dataclasses.replace(scenario, playbook=pb)


def pilot_task(task) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run one replication of a pilot and keep its stores' months only (what the readout
    needs: small to send back from a worker). Top-level so that worker processes import it."""
    from simulator.executor import replication

    rep = replication(task.scenario, agents=task.agents, seed=task.seed, replication=task.replication,
                      parameters=task.parameters).run()
    keep = ["store", "month", "customers", "revenue"]
    return rep.stores_design[keep].copy(), rep.stores_baseline[keep].copy()


@dataclass
class PowerStudy:
    """``loyalty-sim pilot``'s results: power.csv's table, every replication's readout and
    the recommendation (None when no candidate reaches the target)."""

    table: pd.DataFrame
    readouts: pd.DataFrame
    recommendation: dict[str, Any] | None
    target: float
    alpha: float


def candidates_check(n_stores: int, stores: Sequence[int], months: Sequence[int]) -> list[str]:
    """What is wrong with the candidates (empty: nothing), one message each."""
    out = []
    for k in stores:
        if k < 2:
            out.append(f"--stores: {k} pilot store(s) (expected at least 2: the test needs a spread on each side)")
        elif 2 * k > n_stores:
            out.append(f"--stores: {k} pilot stores leave {n_stores - k} of the network's {n_stores} for matched controls "
                       f"(expected at most {n_stores // 2}: one control store per pilot store, without replacement)")
    out += [f"--months: {d} (expected at least 1)" for d in months if d < 1]
    return out


def power_study(scenario, *, stores: Sequence[int], months: Sequence[int], replications: int, seed: int, agents: int,
                pre_months: int, alpha: float = 0.05, target: float = 0.8, executor=None,
                progress: Callable[[int], None] | None = None, choose: str = "random") -> PowerStudy:
    """Simulated power of every (k, d) candidate (module docstring): ``len(stores) x
    replications`` pilot runs on the executor's workers; the same seed gives the same table
    on any number of workers."""
    from simulator.executor import Executor, tasks_for

    ks, ds = sorted(set(int(k) for k in stores)), sorted(set(int(d) for d in months))
    tasks, keys = [], []
    for k in ks:
        for r in range(replications):
            sc = pilot_scenario(scenario, pilot_stores(scenario, choose, seed, r, k), pre_months=pre_months,
                                months=max(ds))
            tasks += tasks_for(sc, agents=agents, seed=seed, replications=[r])
            keys.append((k, r))
    ex = executor if executor is not None else Executor(1)
    results = ex.map(tasks, done=None if progress is None else (lambda i: progress(1)), fn=pilot_task)
    enrol = _enrolment(scenario)
    rows = []
    for (k, r), (design, baseline) in zip(keys, results):
        panel = Panel(design, baseline, enrol)
        pilot = pilot_stores(scenario, choose, seed, r, k)
        for d in ds:
            ro = panel.readout(pilot, pre_months=pre_months, months=d, alpha=alpha)
            rows.append({"stores": k, **_row(r, ro)})
    readouts = pd.DataFrame(rows)
    table = power_table(readouts, alpha)
    return PowerStudy(table, readouts, recommend(table, target), target, alpha)


def power_table(readouts: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """power.csv from every replication's readout (:data:`POWER_COLUMNS`)."""
    rows = []
    for (k, d), g in readouts.groupby(["stores", "months"], sort=True):
        p = g["p_value"].to_numpy(float)
        power = float(np.mean(np.nan_to_num(p, nan=1.0) < alpha))
        pw = g["welch_p_value"].to_numpy(float) if "welch_p_value" in g else p
        R = len(g)
        rows.append({"stores": int(k), "months": int(d), "store_months": int(k * d), "replications": R,
                     "test": str(g["test"].iloc[0]) if "test" in g else WELCH, "power": power,
                     "power_se": float(np.sqrt(power * (1 - power) / R)),
                     "power_welch": float(np.mean(np.nan_to_num(pw, nan=1.0) < alpha)),
                     "mean_estimate": float(g["estimate"].mean()),
                     "sd_estimate": float(g["estimate"].std(ddof=1)) if R > 1 else 0.0,
                     "true_effect": float(g["true_effect"].mean()), "mean_bias": float(g["bias"].mean())})
    return pd.DataFrame(rows, columns=list(POWER_COLUMNS))


def recommend(table: pd.DataFrame, target: float) -> dict[str, Any] | None:
    """The candidate with the fewest store-months reaching the target power (ties: fewer months)."""
    ok = table[table["power"] >= target]
    if ok.empty:
        return None
    best = ok.sort_values(["store_months", "months", "stores"], kind="mergesort").iloc[0]
    return {k: (int(best[k]) if k in ("stores", "months", "store_months", "replications") else
                str(best[k]) if k == "test" else float(best[k])) for k in POWER_COLUMNS}


def analytic_power(effect: float, sigma: float, n: int, alpha: float = 0.05, df: float | None = None) -> float:
    """Power of the two-sided two-sample t-test with ``n`` units a group, the effect and a
    common standard deviation sigma (Cohen 1988): non-central t, ``df`` degrees of freedom
    (default Student's 2n - 2; Welch's are between n - 1 and 2n - 2)."""
    df = 2 * n - 2 if df is None else df
    nc = effect / (sigma * np.sqrt(2.0 / n))
    tc = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(tc, df, nc) + stats.nct.cdf(-tc, df, nc))


def power_lines(study: PowerStudy, currency: str) -> list[str]:
    """The power table and the recommendation as a person reads them (printed by ``pilot``)."""
    t = study.table
    lines = [f"{'stores':>7}{'months':>8}{'test':>8}{'power':>8}{'+-se':>7}{'Welch':>7}{'estimate':>11}{'true':>9}   "
             f"(effect on revenue per customer-month, {currency})"]
    for _, r in t.iterrows():
        lines.append(f"{int(r['stores']):>7}{int(r['months']):>8}{str(r['test']):>8}{r['power']:>8.2f}"
                     f"{r['power_se']:>7.2f}{r['power_welch']:>7.2f}{r['mean_estimate']:>+11.3f}{r['true_effect']:>+9.3f}")
    rec = study.recommendation
    if rec is None:
        best = t.sort_values(["power", "store_months"], ascending=[False, True], kind="mergesort").iloc[0]
        lines.append(f"no candidate reaches power {study.target:.0%} at level {study.alpha:g}: the best is "
                     f"{int(best['stores'])} stores for {int(best['months'])} months ({best['power']:.0%}); "
                     "try more stores or months")
    else:
        lines.append(f"recommendation: {rec['stores']} stores for {rec['months']} months ({rec['store_months']} "
                     f"store-months) reach power {rec['power']:.0%} (+-{rec['power_se']:.0%}) at level {study.alpha:g} "
                     f"against a target of {study.target:.0%}")
    return lines


def power_png(study: PowerStudy, title: str) -> bytes:
    """power.png: power against the number of pilot stores, one line per duration, +- 1
    binomial standard error, and the target."""
    from simulator.reporting.figures import _new, png_bytes, styled

    with styled():
        fig = _new(6.5, 4.0)
        ax = fig.add_subplot(1, 1, 1)
        for d, g in study.table.groupby("months", sort=True):
            ax.errorbar(g["stores"], g["power"], yerr=g["power_se"], marker="o", ms=4, capsize=3,
                        label=f"{int(d)} months")
        ax.axhline(study.target, color="#888888", linestyle="--", linewidth=1, label=f"target {study.target:.0%}")
        ax.set_xlabel("pilot stores (each with a matched control store)")
        ax.set_ylabel(f"power (paired t-test, Welch's above 40% of stores; level {study.alpha:g})")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.legend()
        return png_bytes(fig)


# ----------------------------------------------------------------------------- the pilot command
#: Files ``loyalty-sim pilot`` writes (and manifest.json, which lists their SHA-256).
POWER_FILES = ("power.csv", "power.png", "readouts.csv", "summary.txt")


def check_scenario(scenario, path: str) -> None:
    """Refuse a playbook a pilot cannot be simulated on (InputErrors, one line each)."""
    from simulator.errors import InputErrors

    if scenario.market.stores is None:
        raise InputErrors.one(path, f"market {scenario.market.name} has no store network (expected a `stores:` section "
                                    "in the market file: a pilot is launched in some stores)", field="market")
    if scenario.baseline is not None:
        raise InputErrors.one(path, "a pilot by store needs baseline 'none' (a design replacing a running program in some "
                                    "stores only is not modelled)", field="baseline")


def power_manifest(scenario, arguments: dict[str, Any]) -> dict[str, Any]:
    from simulator import __version__
    from simulator.runner import environment

    return {"tool": "loyalty-sim", "version": __version__, "command": "pilot", "arguments": arguments,
            "inputs": scenario.inputs, "roles": scenario.paths, "environment": environment()}


def write_power(study: PowerStudy, scenario, out, *, force: bool, arguments: dict[str, Any]) -> list[str]:
    """Write power.csv, power.png, readouts.csv (every replication's readout), summary.txt and
    manifest.json into ``out`` atomically; return summary.txt's lines."""
    import hashlib
    import json

    from simulator.output import staged_directory
    from simulator.runner import _json

    cur = scenario.market.currency
    net = len(scenario.market.stores.stores)
    head = [f"{scenario.playbook.name}: {scenario.program.name} piloted in k of the {net} stores of {scenario.market.name} "
            f"against matched control stores, {arguments['pre_months']} months before launch observed",
            f"{arguments['agents']:,} agents x {arguments['replications']} replications per candidate, seed "
            f"{arguments['seed']}; " + {
                "random": "stores drawn at random",
                "best": "the best recruiters piloted (enrolment multiplier)",
                "matched": "stores paired by size and recruitment, one of each pair piloted at random",
            }[arguments.get("choose", "random")] + " (nested: a k-store pilot's stores are among a larger one's)"]
    lines = head + power_lines(study, cur)
    man = power_manifest(scenario, arguments)
    man["recommendation"] = study.recommendation
    with staged_directory(out, force) as tmp:
        study.table.to_csv(tmp / "power.csv", index=False, float_format="%.10g")
        (tmp / "power.png").write_bytes(power_png(study, f"{scenario.playbook.name}: power of a pilot by store"))
        study.readouts.to_csv(tmp / "readouts.csv", index=False, float_format="%.10g")
        (tmp / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        man["outputs"] = {f: hashlib.sha256((tmp / f).read_bytes()).hexdigest() for f in POWER_FILES}
        (tmp / "manifest.json").write_text(_json(json.loads(json.dumps(man, default=str))), encoding="utf-8")
    return lines
