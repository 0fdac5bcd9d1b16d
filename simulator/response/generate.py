r"""A member transaction log written by the engine itself, with the truth it was drawn from.

The proof that ``estimate-response`` measures rather than invents: choose a ``response``
(self-selection, goal gradient, rewarded behaviour, fewer lapses...), let the engine run the
program on a market, write what a till system would export (one row per purchase: customer,
date, amount, member flag, points balance; only customers the retailer can identify, the
market's ``identified_share``, have an id in it: the others are anonymous at the till and cannot
join either), and keep what no log shows: what the same
customers would have bought without the program.

How. A playbook is resolved as ``run`` does; its design is launched ``pre_months`` after the
first simulated month (so every joiner has a history before joining), against no program,
without its campaigns and drives unless asked (so the lift is the program's own). The
chosen response values replace the market's, for every segment. One
:class:`~simulator.engine.simulation.Simulation` steps the design and the no-program baseline
on the same customers with the same luck (common random numbers); a ``progress`` callback
records, after each month, every agent's purchases in both runs, membership and enrolment
month, and points balance (the engine already keeps these arrays; nothing is added to its
step, so a normal run is unchanged).

Amounts. The engine sums the design run's spend without keeping it per agent, so the log's
amounts are redrawn here with the engine's own kernel and keys (``kernels.baskets``,
:mod:`simulator.engine.mechanisms.purchases`): the k-th purchase of agent i in month t costs
``basket_s b_i exp(sigma_s z - sigma_s^2 / 2)``, ``s`` the agent's segment in that run and
month, ``z`` the normal the step drew for (t, i, k). They are the amounts the engine's points
were earned on (so the log's balances follow from its amounts under the design's rules), and
both runs' common purchases cost the same: the difference between the runs is the program's
extra (or fewer) purchases.

Truth. For each joiner and month, the design's minus the baseline's purchases and spend: the
true lift, by months since joining (what the event study estimates), and the same
definitions as a run's ``true lift`` (:mod:`simulator.results`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.engine import kernels
from simulator.engine.compiled import CENTI
from simulator.response.estimate import LAPSE_MONTHS
from simulator.scenario import Scenario, resolve
from simulator.specs.market import RESPONSE_DEFAULTS
from simulator.specs.playbook import Mechanisms

__all__ = ["MemberLog", "member_log", "with_response"]


@dataclass(frozen=True)
class MemberLog:
    """A generated log and its truth.

    Attributes
    ----------
    transactions : one row per purchase of the design run: ``customer_id``, ``transaction_id``,
        ``date``, ``amount`` (currency, prices as the market gives them), ``member`` (1 when the
        customer was a member in that month, else 0), ``balance`` (the member's spendable and
        pending points at the start of the month, whole points; empty for non-members).
    truth : per (customer, month) of every customer who joined: ``customer_id``, ``month``
        (index from the first simulated month), ``event`` (months since joining),
        ``purchases_lift``, ``spend_lift``, ``lapses_lift`` (design minus baseline; a lapse is a
        month with a purchase followed by ``LAPSE_MONTHS`` without, blank in the last of them).
    start : first day of the first simulated month.
    launch_month : index of the launch month.
    response : the response values used (market-wide, every segment).
    home_store : with ``stores=True``, each logged customer's home store in the engine (index
        ``customer_id``), the truth a calibration's home stores are checked against.
    """

    transactions: pd.DataFrame
    truth: pd.DataFrame
    start: dt.date
    launch_month: int
    response: dict[str, float]
    mechanisms: dict[str, bool] = field(default_factory=dict)
    home_store: pd.Series | None = None

    def true_lift(self, outcome: str = "spend", events: range = range(0, 12)) -> pd.Series:
        """Mean true lift per joiner by months since joining (``outcome``: spend, purchases or lapses)."""
        t = self.truth[self.truth["event"].isin(list(events))]
        return t.groupby("event")[f"{outcome}_lift"].mean()


def with_response(scenario: Scenario, response: dict[str, float], *, pre_months: int, months: int,
                  keep_actions: bool = False) -> Scenario:
    """The scenario to generate from: the chosen response for every segment, no program as the
    baseline, the first month ``pre_months`` before the launch, ``months`` simulated."""
    unknown = sorted(set(response) - set(RESPONSE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown response parameter(s): {', '.join(unknown)} (expected some of: {', '.join(RESPONSE_DEFAULTS)})")
    market = scenario.market
    values = {k: (response[k] if k in response else getattr(market.response, k)) for k in RESPONSE_DEFAULTS}
    new_response = market.response.model_copy(update={**values, "segments": {}})
    market = market.model_copy(update={"response": new_response})
    pb = scenario.playbook
    launch = dt.date(pb.launch.year, pb.launch.month, 1)
    y, m = divmod(launch.year * 12 + launch.month - 1 - pre_months, 12)
    update = {"start": dt.date(y, m + 1, 1), "horizon_months": months}
    if not keep_actions:
        update.update(campaigns=(), enrolment_drives=())
    return dataclasses.replace(scenario, market=market, baseline=None, playbook=pb.model_copy(update=update))


def member_log(playbook: str | Path | Scenario, *, response: dict[str, float], agents: int = 5000, seed: int = 1,
               pre_months: int = 12, months: int = 36, mechanisms: Mechanisms | None = None,
               keep_actions: bool = False, stores: bool = False, away_share: float = 0.0,
               opt_in: bool = False) -> MemberLog:
    """Run the engine on ``playbook`` with ``response`` and return its member log and truth.

    ``response`` gives numbers for fields of the market's ``response`` block (the others keep
    the market's values; per-segment overrides are dropped so that the chosen values hold for
    every customer). ``mechanisms`` switches the behavioural effects (all off: the program
    changes no purchase and the truth is zero everywhere).

    ``stores`` (a market with a store network): the log gets a ``store`` column, each purchase's
    store being the customer's home store in the engine, except a share ``away_share`` of
    purchases, each made in one of the other stores (uniform; drawn from a hash of the seed,
    month, customer and purchase, so the rest of the log is the same with or without it).

    ``opt_in``: the log gets a column ``optin_<channel>`` per channel of the market's
    ``reachability`` (1 / 0), the customer's opt-in on that channel in the design run in the
    purchase's month (the engine's reach bit: drawn at the start from the market's share times
    the home store's ``reach``, and set on joining by ``member_opt_in``).
    """
    from simulator.executor import replication

    scenario = playbook if isinstance(playbook, Scenario) else resolve(playbook)
    scenario = with_response(scenario, response, pre_months=pre_months, months=months, keep_actions=keep_actions)
    sim = replication(scenario, agents=agents, seed=seed, mechanisms=mechanisms)
    design, base = sim.runs["design"], sim.runs["baseline"]
    cap = sim.pop.capacity
    H = sim.H
    counts = {r: np.zeros((H, cap), dtype=np.uint16) for r in ("design", "baseline")}
    segs = {r: np.zeros((H, cap), dtype=np.int16) for r in ("design", "baseline")}
    member = np.zeros((H, cap), dtype=bool)
    reach = np.zeros((H, cap), dtype=np.uint8) if opt_in else None
    balance = np.zeros((H + 1, cap), dtype=np.int64)  # at the end of month t-1: the start of t
    current = {"design": design.segment.copy(), "baseline": base.segment.copy()}

    def record(t: int) -> None:
        for r, run in (("design", design), ("baseline", base)):
            counts[r][t] = sim.scratch[r].counts
            segs[r][t] = current[r]
            current[r] = run.segment.copy()  # after the month's transitions: next month's segment
        member[t] = design.member
        if reach is not None:
            reach[t] = design.reach
        balance[t + 1] = design.earned - design.consumed

    sim.run(progress=record)
    enrol = design.enrol_month.astype(np.int64)
    m = sim.market
    sigma = m.basket_sigma
    mean = m.basket_mean
    rows, truth = [], []
    joined = np.flatnonzero(design.member | (enrol >= 0))
    joined = joined[enrol[joined] >= 0]
    start = sim.start
    for t in range(H):
        nd = counts["design"][t].astype(np.int64)
        nb = counts["baseline"][t].astype(np.int64)
        base_key = sim.streams.stream_base("basket", t)

        def spend(n: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """The engine's own baskets of the month (kernels.baskets: the step's keys and draws)."""
            total = int(n.sum())
            agent, amt = np.empty(total, dtype=np.int64), np.empty(total)
            kernels.baskets(n, seg.astype(np.int16), sim.pop.basket_mult, mean, sigma, base_key, 1.0, agent, amt,
                            np.zeros(cap))
            kk = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
            return agent, kk, amt

        agent, kk, amt = spend(nd, segs["design"][t])
        y, mo = divmod(start.year * 12 + start.month - 1 + t, 12)
        first = dt.date(y, mo + 1, 1)
        days_in = (dt.date(y + (mo + 1) // 12, (mo + 1) % 12 + 1, 1) - first).days
        day = 1 + (np.floor(_day_uniform(seed, t, agent, kk) * days_in)).astype(np.int64)
        is_member = member[t][agent]
        rows.append(pd.DataFrame({
            "customer_id": agent, "month": t, "k": kk,
            "date": np.datetime64(first) + (day - 1).astype("timedelta64[D]"),
            "amount": np.round(amt, 2), "member": is_member.astype(np.int8),
            "balance": np.where(is_member, balance[t][agent] // CENTI, -1),
            **({f"optin_{ch}": ((reach[t][agent] >> c) & 1).astype(np.int8)
                for c, ch in enumerate(sim.market.channels[:8])} if reach is not None else {}),
        }))
        if joined.size:
            sd = np.bincount(agent, weights=np.round(amt, 2), minlength=cap)
            ab, _, amtb = spend(nb, segs["baseline"][t])
            sb = np.bincount(ab, weights=np.round(amtb, 2), minlength=cap)
            ev = t - enrol[joined]
            lapse = {}
            for r in ("design", "baseline"):
                c = counts[r][:, joined]
                lapse[r] = ((c[t] > 0) & (c[t + 1:t + 1 + LAPSE_MONTHS].sum(axis=0) == 0)).astype(float) \
                    if t + LAPSE_MONTHS < H else np.full(joined.size, np.nan)
            truth.append(pd.DataFrame({"customer_id": joined, "month": t, "event": ev,
                                       "purchases_lift": (nd - nb)[joined], "spend_lift": (sd - sb)[joined],
                                       "lapses_lift": lapse["design"] - lapse["baseline"]}))
    tx = pd.concat(rows, ignore_index=True)
    names = None
    if stores:
        net = sim.scenario.market.stores
        if net is None:
            raise ValueError("stores=True needs a market with a store network (market.stores)")
        if not 0.0 <= away_share < 1.0:
            raise ValueError(f"away_share must be in [0, 1), got {away_share!r}")
        names = np.array(net.names, dtype=object)
        agent, month, kk = (tx[c].to_numpy(dtype=np.int64) for c in ("customer_id", "month", "k"))
        home = sim.pop.store.astype(np.int64)[agent]
        K = len(names)
        away = (_day_uniform(seed + 7919, month, agent, kk) < away_share) & (K > 1)
        step = 1 + np.floor(_day_uniform(seed + 104729, month, agent, kk) * max(K - 1, 1)).astype(np.int64)
        tx["store"] = names[np.where(away, (home + step) % K, home)]
    # a till log links purchases to a customer only for customers the retailer can identify
    # (``identified_share``: the same ones who can join); the others' purchases are anonymous
    tx = tx[sim.pop.identified[tx["customer_id"].to_numpy()]]
    tx = tx.sort_values(["customer_id", "date", "k"], kind="stable")
    tx["transaction_id"] = [f"T{c}-{mo}-{k}" for c, mo, k in zip(tx["customer_id"], tx["month"], tx["k"])]
    tx["customer_id"] = "C" + tx["customer_id"].astype(str).str.zfill(7)
    tx["balance"] = tx["balance"].astype("Int64").where(tx["balance"] >= 0)
    tx = tx[["customer_id", "transaction_id", "date", "amount", "member", "balance"]
            + (["store"] if names is not None else [])
            + [c for c in tx.columns if str(c).startswith("optin_")]].reset_index(drop=True)
    home_store = None
    if names is not None:
        logged = np.unique(tx["customer_id"].str.slice(1).astype(np.int64).to_numpy())
        home_store = pd.Series(names[sim.pop.store.astype(np.int64)[logged]], name="home_store",
                               index=pd.Index(["C" + str(i).zfill(7) for i in logged], name="customer_id"))
    tr = pd.concat(truth, ignore_index=True) if truth else pd.DataFrame(
        columns=["customer_id", "month", "event", "purchases_lift", "spend_lift", "lapses_lift"])
    tr["customer_id"] = "C" + tr["customer_id"].astype(str).str.zfill(7)
    mech = (mechanisms or scenario.playbook.mechanisms).model_dump()
    used = sim.scenario.market.response.for_segment(sim.scenario.market.segments[0].name)
    return MemberLog(tx, tr, start, sim.launch_t, used, mech, home_store)


def _day_uniform(seed: int, t: int, agent: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A uniform per (seed, month, agent, k) for the purchase's day (SplitMix64 of the key)."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(t) * np.uint64(0xBF58476D1CE4E5B9)
             + agent.astype(np.uint64) * np.uint64(0x94D049BB133111EB) + k.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
