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

Campaign contacts (``control_share``). The engine applies a campaign's lift to every customer
its target and channel reach; it draws no holdout, and this module does not change it. The
control group is made with common random numbers instead: the realised scenario is run twice
with the same seed, once as given and once with every campaign kept in the calendar (same
targets, channels and months, so the engine still decides whom it would reach) but doing
nothing (no lift, no points). Every agent's draws are keyed by (seed, month, agent), and agents
do not interact (except through referrals: a design with a referral bonus brings different
referred customers in the two runs, and those are not a clean holdout), so an agent's history in the second run is exactly the
history it would have had had it been held out of every campaign. A random share of the
customers (a hash of the seed and the agent, independent of everything the engine draws) is
held out: their whole history is taken from the second run, everyone else's from the first,
and the contacts table lists, for each campaign and month, the customers it reached in their
own run, ``contacted`` or ``control``. This is a universal holdout, as retailers keep one
(a customer is held out of every campaign, not drawn afresh for each): a customer reached by
two campaigns in the same month is lifted by both, so that month's comparison measures their
joint effect, and a campaign's lift can change whom a later campaign targets (a recency
target); the test playbooks' campaigns do not overlap. Reach is recomputed with the engine's
own target tests from the state each step sees and checked against the engine's count of
contacts, month by month. Only identified customers (in the log) are in the table.

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
    contacts : with ``control_share``, the campaign contacts table: ``customer_id``, ``campaign``,
        ``month`` (YYYY-MM), ``group`` (``contacted`` / ``control``), one row per customer,
        campaign and month the campaign reached (or, for the held-out, would have reached) them.
    campaign_lifts : with ``control_share``, each campaign's true lift (its own ``lift``, else the
        market's ``campaign_lift``; 0 with the campaigns mechanism off).
    """

    transactions: pd.DataFrame
    truth: pd.DataFrame
    start: dt.date
    launch_month: int
    response: dict[str, float]
    mechanisms: dict[str, bool] = field(default_factory=dict)
    home_store: pd.Series | None = None
    contacts: pd.DataFrame | None = None
    campaign_lifts: dict[str, float] = field(default_factory=dict)

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
               opt_in: bool = False, control_share: float | None = None, as_given: bool = False) -> MemberLog:
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

    ``control_share``: the playbook's campaigns run (``keep_actions``), a random share of the
    customers is held out of every campaign (a universal control group), and the log's
    ``contacts`` table says, per campaign and month, who was contacted and which held-out
    customers the campaign would have reached (module docstring, "Campaign contacts").

    ``as_given``: ``playbook`` is a Scenario already prepared for generating (its response,
    dates and segments' overrides as they are, e.g. by
    :func:`simulator.response.selection.fit_scenario`); ``response``, ``pre_months``,
    ``months`` and ``keep_actions`` are not applied.
    """
    from simulator.executor import replication

    scenario = playbook if isinstance(playbook, Scenario) else resolve(playbook)
    if control_share is not None:
        if not 0.0 < control_share < 1.0:
            raise ValueError(f"control_share must be in (0, 1), got {control_share!r}")
        keep_actions = True
    if not as_given:
        scenario = with_response(scenario, response, pre_months=pre_months, months=months, keep_actions=keep_actions)
    if control_share is not None and not scenario.playbook.campaigns:
        raise ValueError("control_share needs a playbook with campaigns (its 'campaigns' list is empty)")
    sim = replication(scenario, agents=agents, seed=seed, mechanisms=mechanisms)
    traced = _trace(sim, opt_in, targets=control_share is not None)
    hold = np.zeros(sim.pop.capacity, dtype=bool)
    contacts = None
    if control_share is not None:
        # the held-out world: the realised scenario of the first run (the same draws of every
        # uncertain parameter), its campaigns kept (same targets, channels, calendar: the engine
        # still counts whom they would reach) but doing nothing to anyone: a reactivation kind
        # (no points) with no lift
        from simulator.engine.simulation import Simulation

        held_pb = sim.scenario.playbook.model_copy(update={"campaigns": tuple(
            c.model_copy(update={"kind": "reactivation", "lift": 0.0, "multiplier": 1.0, "bonus_points": 0})
            for c in sim.scenario.playbook.campaigns)})
        held = Simulation(dataclasses.replace(sim.scenario, playbook=held_pb), agents=agents, seed=seed,
                          replication=0, mechanisms=mechanisms)
        other = _trace(held, opt_in, targets=True)
        hold = _day_uniform(seed + 15485863, 0, np.arange(sim.pop.capacity, dtype=np.int64),
                            np.zeros(sim.pop.capacity, dtype=np.int64)) < control_share
        # each customer's whole history comes from one world: the held-out customers' from the
        # second run, the others' from the first (agents interact only through referrals)
        for name in ("counts_design", "segs_design", "member", "balance", "enrol", "reach"):
            a, b = traced[name], other[name]
            if a is not None:
                traced[name] = np.where(hold, b, a) if a.ndim == 1 else np.where(hold[None, :], b, a)
        contacts = (traced["targets"], other["targets"])
    counts = {"design": traced["counts_design"], "baseline": traced["counts_baseline"]}
    segs = {"design": traced["segs_design"], "baseline": traced["segs_baseline"]}
    member, reach, balance = traced["member"], traced["reach"], traced["balance"]
    cap = sim.pop.capacity
    H = sim.H
    enrol = traced["enrol"].astype(np.int64)
    m = sim.market
    sigma = m.basket_sigma
    mean = m.basket_mean
    rows, truth = [], []
    joined = np.flatnonzero(member[H - 1] | (enrol >= 0))
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
    table, lifts = None, {}
    if contacts is not None:
        table = _contacts_table(sim, contacts[0], contacts[1], hold, start)
        table = table[sim.pop.identified[table["customer_id"].to_numpy(dtype=np.int64)]].reset_index(drop=True)
        table["customer_id"] = "C" + table["customer_id"].astype(str).str.zfill(7)
        base_lift = float(np.asarray(sim.market.response["campaign_lift"]).ravel()[0])
        on = (mechanisms or scenario.playbook.mechanisms).campaigns  # campaigns switched off: no lift
        lifts = {cp.name: (base_lift if cp.lift is None else float(cp.lift)) if on else 0.0 for cp in sim.campaigns}
    return MemberLog(tx, tr, start, sim.launch_t, used, mech, home_store, table, lifts)


def _trace(sim, opt_in: bool, *, targets: bool) -> dict:
    """Run ``sim`` and record, month by month, what the log is written from: each run's purchases
    and segments, the design run's membership, opt-ins, balances and enrolment months, and
    (``targets``) whom each of the playbook's campaigns reached in each month ([C, H, capacity]).

    Reach is recomputed here with the engine's own target and channel tests
    (:class:`~simulator.engine.mechanisms.campaigns.CompiledTarget` and ``reached``) on the state
    the step sees: the state after the previous month closed, plus the month's arrivals. The
    engine counts its contacts in the step; the two counts must agree month by month, or the run
    is refused (a contacts table that is not the engine's would make the truth wrong)."""
    from simulator.engine.mechanisms import campaigns as camp

    design, base = sim.runs["design"], sim.runs["baseline"]
    cap, H = sim.pop.capacity, sim.H
    counts = {r: np.zeros((H, cap), dtype=np.uint16) for r in ("design", "baseline")}
    segs = {r: np.zeros((H, cap), dtype=np.int16) for r in ("design", "baseline")}
    member = np.zeros((H, cap), dtype=bool)
    reach = np.zeros((H, cap), dtype=np.uint8) if opt_in else None
    balance = np.zeros((H + 1, cap), dtype=np.int64)  # at the end of month t-1: the start of t
    current = {"design": design.segment.copy(), "baseline": base.segment.copy()}
    hit = np.zeros((len(sim.campaigns), H, cap), dtype=bool) if targets else None
    store = sim.pop.store if sim.market.stores else None

    def reach_of(t: int) -> None:
        """Whom the campaigns live in month t reach, from the state at the start of t."""
        if hit is None or t >= H or t < sim.launch_t:
            return
        live = [c for c, cp in enumerate(sim.campaigns) if cp.start <= t < cp.end]
        if not live:
            return
        exists, seg, rec = design.exists.copy(), design.segment.copy(), design.recency.copy()
        a, b = sim.pop.arrivals_by_month[t]
        exists[a:b], seg[a:b], rec[a:b] = True, sim.market.arrival_segment, 0
        for c in live:
            cp = sim.campaigns[c]
            hit[c, t] = (exists & cp.target.mask(None, seg, design.member, design.tier, sim.pop.potential, rec, store)
                         & camp.reached(cp.channel, None, design.reach))

    def record(t: int) -> None:
        for r, run in (("design", design), ("baseline", base)):
            counts[r][t] = sim.scratch[r].counts
            segs[r][t] = current[r]
            current[r] = run.segment.copy()  # after the month's transitions: next month's segment
        member[t] = design.member
        if reach is not None:
            reach[t] = design.reach
        balance[t + 1] = design.earned - design.consumed
        reach_of(t + 1)

    reach_of(0)
    sim.run(progress=record)
    if hit is not None:
        engine = np.array([rec.get("campaign_contacts", 0.0) for rec in sim.records["design"]])
        mine = hit.sum(axis=(0, 2))
        if not np.array_equal(engine, mine):
            bad = int(np.flatnonzero(engine != mine)[0])
            raise RuntimeError(f"campaign reach recomputed for the contacts table ({int(mine[bad])}) differs from the "
                               f"engine's contacts ({int(engine[bad])}) in month {bad}: a target this generator does "
                               "not rebuild (pilot stores, referred customers)")
    return {"counts_design": counts["design"], "counts_baseline": counts["baseline"],
            "segs_design": segs["design"], "segs_baseline": segs["baseline"], "member": member, "reach": reach,
            "balance": balance, "enrol": design.enrol_month.copy(), "targets": hit}


def _contacts_table(sim, hit: np.ndarray, held: np.ndarray, hold: np.ndarray, start: dt.date) -> pd.DataFrame:
    """One row per customer, campaign and month reached: ``contacted`` if reached in the first
    run and not held out, ``control`` if held out and reached in the held-out run."""
    frames = []
    for c, cp in enumerate(sim.campaigns):
        for t in range(sim.H):
            ids = np.flatnonzero((hit[c, t] & ~hold) | (held[c, t] & hold))
            if not ids.size:
                continue
            y, mo = divmod(start.year * 12 + start.month - 1 + t, 12)
            frames.append(pd.DataFrame({"customer_id": ids, "campaign": cp.name, "month": f"{y}-{mo + 1:02d}",
                                        "group": np.where(hold[ids], "control", "contacted")}))
    cols = ["customer_id", "campaign", "month", "group"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _day_uniform(seed: int, t: int, agent: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A uniform per (seed, month, agent, k) for the purchase's day (SplitMix64 of the key)."""
    with np.errstate(over="ignore"):
        x = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(t) * np.uint64(0xBF58476D1CE4E5B9)
             + agent.astype(np.uint64) * np.uint64(0x94D049BB133111EB) + k.astype(np.uint64) * np.uint64(0x2545F4914F6CDD1D))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
