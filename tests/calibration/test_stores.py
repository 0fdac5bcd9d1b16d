"""The market's store network from a log's store column (simulator/calibration/stores.py): home
stores on a hand-sized case, figures by store counted exactly, sparse stores merged, valid ids,
and recovery of a known network from a log the engine wrote."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from simulator.calibration.estimate import calibrate
from simulator.calibration.segmentation import monthly_panel, rfm_arrays
from simulator.calibration.stores import OTHER_STORE, home_stores, store_codes, store_names, store_network
from simulator.specs.market import StoreNetwork

END = pd.Timestamp("2024-06-30")


def test_home_store_is_the_most_spend_then_most_transactions_then_the_first_name() -> None:
    rows = [  # customer, store, amount
        (0, "B", 10.0), (0, "A", 20.0), (0, "B", 5.0),   # A 20 > B 15: A
        (1, "A", 10.0), (1, "B", 10.0),                  # same spend, one transaction each: A (first name)
        (2, "A", 10.0), (2, "B", 5.0), (2, "B", 5.0),    # same spend, B has more transactions: B
        (3, None, 50.0),                                 # no store at all: none
        (4, " B ", 7.0), (4, "B", 7.0), (4, "A", 12.0),  # ' B ' is B: B 14 > A 12
        (5, "C", 1.0), (5, "", 30.0),                    # a blank store counts for no store: C
    ]
    cust = np.array([r[0] for r in rows])
    code, texts = store_codes(pd.Series([r[1] for r in rows], dtype=object))
    assert list(texts) == ["A", "B", "C"]  # sorted: the smallest code is the first name
    home, pairs = home_stores(cust, code, np.array([r[2] for r in rows]), 6)
    assert [texts[h] if h >= 0 else None for h in home] == ["A", "A", "B", None, "B", "C"]
    b = pairs[(pairs["customer"] == 4) & (pairs["store"] == 1)]
    assert b["spend"].item() == 14.0 and b["transactions"].item() == 2


def test_store_ids_are_valid_distinct_names() -> None:
    names = store_names(["Paris Rivoli", "0042", "Lyon-Part-Dieu", "Épinal (centre)", "paris rivoli", "!!"])
    assert names == ["Paris_Rivoli", "s_0042", "Lyon-Part-Dieu", "Epinal_centre", "paris_rivoli_2", "s"]
    StoreNetwork.model_validate({"stores": tuple({"name": n, "share": 1 / 6} for n in names)})


def _small_log() -> pd.DataFrame:
    """Six customers, three stores (one home to a single customer), over 2024-01..2024-06, plus
    a row after the end."""
    rows = [
        ("a", "2024-01-05", 10.0, "S1"), ("a", "2024-03-07", 30.0, "S1"), ("a", "2024-06-01", 5.0, "S2"),
        ("b", "2024-02-10", 20.0, "S1"), ("b", "2024-02-11", 4.0, "S2"),
        ("c", "2024-01-20", 8.0, "S2"), ("c", "2024-05-02", 12.0, "S2"), ("c", "2024-05-03", 1.0, "S1"),
        ("d", "2024-04-01", 50.0, "S2"),
        ("e", "2024-06-15", 9.0, "S3"), ("e", "2024-07-02", 500.0, "S1"),   # July: after the end
        ("f", "2024-01-02", 3.0, None),
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "date", "amount", "store"])
    df["date"] = pd.to_datetime(df["date"])
    return df


def _network(df: pd.DataFrame, **kw):
    panel = monthly_panel(df, END)
    n = panel.n_customers
    # two segments: customers a, c, e weigh on 'x'; b, d on 'y'; f half and half
    w = {"a": (1, 0), "b": (0, 1), "c": (1, 0), "d": (0, 1), "e": (1, 0), "f": (0.5, 0.5)}
    weights = sparse.csr_matrix(np.array([w[c] for c in panel.customers], dtype=float))
    return panel, store_network(df, customers=panel.customers, end=END, counts=panel.counts, spend=panel.spend,
                                first_month=panel.first_month, recency=rfm_arrays(panel, panel.n_months - 1)["recency_months"],
                                weights=weights, segments=("x", "y"), **kw)


def test_figures_by_store_are_counted_exactly() -> None:
    df = _small_log()
    enrol = pd.DataFrame({"at_risk": [3, 2, 1, 1, 1, 0], "joined": [1, 0, 1, 0, 0, 0], "member": [1, 1, 1, 0, 0, 0]})
    panel, fit = _network(df, min_customers=1, enrolment=enrol, propensity=0.25)
    assert list(panel.customers) == ["a", "b", "c", "d", "e", "f"]
    t = fit.table.set_index("store")
    # homes: a S1 (40 vs 5), b S1, c S2 (20 vs 1), d S2, e S3 (July is after the end), f none
    assert list(t.index) == ["S1", "S2", "S3"] and fit.without_store == 1 and fit.merged == 0
    assert t["customers"].tolist() == [2, 2, 1]
    assert t["share"].tolist() == [0.4, 0.4, 0.2]
    # active: a purchase in April..June (the last 3 months): a, c, d, e
    assert t["active"].tolist() == [1, 2, 1]
    # transactions of their home customers in any store; frequency per customer-month known
    # (a: Jan..Jun 6 months, b: Feb..Jun 5, c: 6, d: Apr..Jun 3, e: 1)
    assert t["transactions"].tolist() == [5, 4, 1]
    assert t.loc["S1", "frequency"] == pytest.approx(5 / 11) and t.loc["S2", "frequency"] == pytest.approx(4 / 9)
    assert t.loc["S1", "spend"] == pytest.approx(69.0) and t.loc["S1", "basket"] == pytest.approx(69 / 5)
    assert t.loc["S1", "home_spend_share"] == pytest.approx(60 / 69)
    assert t.loc["S2", "home_spend_share"] == pytest.approx(70 / 71)
    # members, joins / at risk, the multiplier over the market's rate 0.25
    assert t["members"].tolist() == [2, 1, 0] and t["joins"].tolist() == [1, 1, 0] and t["at_risk"].tolist() == [5, 2, 1]
    assert t["enrolment"].tolist() == [0.8, 2.0, 0.0]
    # segment mix: x = a (S1), c (S2), e (S3); y = b (S1), d (S2); f has no store
    assert fit.network["segment_mix"] == {"x": {"S1": 0.333334, "S2": 0.333333, "S3": 0.333333},
                                          "y": {"S1": 0.5, "S2": 0.5}}
    assert [s["enrolment"] for s in fit.network["stores"]] == [0.8, 2.0, 0.0]


def test_sparse_stores_are_merged_into_other() -> None:
    df = _small_log()
    df["store"] = df["store"].replace({"S1": "Lyon Centre", "S3": "12 rue d'Été"})
    _, fit = _network(df, min_customers=2)
    t = fit.table
    assert t["store"].tolist() == ["Lyon_Centre", "S2", OTHER_STORE]  # the 2-customer stores, then other
    assert t["label"].tolist()[:2] == ["Lyon Centre", "S2"] and "1 stores with fewer than 2" in t["label"].iloc[2]
    assert t["customers"].tolist() == [2, 2, 1] and t["stores_merged"].tolist() == [1, 1, 1] and fit.merged == 1
    assert "enrolment" not in t.columns and all("enrolment" not in s for s in fit.network["stores"])
    assert any("fewer than 2 customers" in n for n in fit.notes)
    _, fit3 = _network(df, min_customers=3)  # every store sparse: one store, 'other'
    assert fit3.table["store"].tolist() == [OTHER_STORE] and fit3.table["customers"].tolist() == [5]
    assert fit3.network["stores"][0]["share"] == 1.0


def test_a_store_named_other_keeps_its_name() -> None:
    df = _small_log()
    df["store"] = df["store"].replace({"S1": "other"})
    _, fit = _network(df, min_customers=2)
    assert fit.table["store"].tolist() == ["S2", "other", "other_stores"]  # ties of customers: by name


# --------------------------------------------------------------------------------------
# recovery on a log the engine wrote
# --------------------------------------------------------------------------------------

#: The known network: shares of customers and enrolment multipliers (stores independent of segments).
TRUTH = {"north": (0.5, 1.0), "south": (0.3, 2.0), "east": (0.2, 0.5)}
PROPENSITY = 0.03
#: Tolerance of estimated against true proportions and rates: this many binomial standard errors.
Z = 4.0


@pytest.fixture(scope="module")
def engine_log():
    """The usa market with the known network, a program launched 6 months into the log (the
    calibration's burn-in, so that every counted month is one where customers can join), no
    self-selection (the rate of joining is the propensity times the store's multiplier for every
    purchasing non-member), 10% of purchases in another store than the home store."""
    from simulator.response.generate import member_log
    from simulator.scenario import resolve

    sc = resolve("markets/usa/cagnotte_launch.yaml")
    net = StoreNetwork.model_validate({"stores": tuple({"name": k, "share": s, "enrolment": e}
                                                       for k, (s, e) in TRUTH.items())})
    sc = dataclasses.replace(sc, market=sc.market.model_copy(update={"stores": net}))
    log = member_log(sc, response={"enrolment_propensity": PROPENSITY, "self_selection": 0.0}, agents=6000, seed=5,
                     pre_months=6, months=30, stores=True, away_share=0.1)
    tx = log.transactions[["customer_id", "date", "amount", "member", "store"]]
    kw = dict(name="stores", currency="USD", gross_margin=0.3, potential_horizon=0)
    # the same log with every purchase in the home store (away_share 0: the other draws are the same)
    home_only = tx.assign(store=tx["customer_id"].map(log.home_store))
    return {"log": log, "tx": tx, "away": calibrate(tx, **kw), "home": calibrate(home_only, **kw)}


def test_home_stores_of_the_engine_log_are_the_agents_stores(engine_log) -> None:
    log, cm = engine_log["log"], engine_log["away"]
    fit = cm.diagnostics.optional_columns.network
    est = pd.Series(fit.table["store"].to_numpy()[fit.home], index=cm.panel.customers)
    truth = log.home_store.reindex(est.index)
    # a customer with more than half their window spend in their home store gets it, whatever else
    tx = engine_log["tx"][engine_log["tx"]["date"] <= cm.calibration_end]
    share_home = (tx.assign(h=tx["store"] == tx["customer_id"].map(log.home_store))
                  .groupby("customer_id").apply(lambda g: g.loc[g["h"], "amount"].sum() / g["amount"].sum(),
                                                include_groups=False))
    majority = share_home.reindex(est.index) > 0.5
    assert majority.mean() > 0.9
    assert (est[majority] == truth[majority]).all()
    # with every purchase in the home store, every customer's home store is the agent's
    fit0 = engine_log["home"].diagnostics.optional_columns.network
    est0 = pd.Series(fit0.table["store"].to_numpy()[fit0.home], index=engine_log["home"].panel.customers)
    assert (est0 == log.home_store.reindex(est0.index)).all()


def test_store_shares_and_enrolment_multipliers_are_recovered(engine_log) -> None:
    cm = engine_log["home"]
    m = cm.market
    t = cm.diagnostics.optional_columns.network.table.set_index("store")
    n = int(t["customers"].sum())
    assert n == m.calibration.log_customers
    shares = {s.name: s.share for s in m.stores.stores}
    mult = {s.name: s.enrolment for s in m.stores.stores}
    h = m.response.enrolment_propensity
    print(f"\nenrolment_propensity {h:.4g} over {n:,} customers (truth {PROPENSITY} x the stores' multipliers)")
    for store, (share, e) in TRUTH.items():
        print(f"{store}: share {shares[store]:.4f} (truth {share}), multiplier {mult[store]:.3f} "
              f"(se {t.loc[store, 'enrolment_se']:.3f}), rate {h * mult[store]:.4f} (truth {PROPENSITY * e:.4f})")
    for store, (share, e) in TRUTH.items():
        # the agents' home stores are draws from the shares: binomial
        assert abs(shares[store] - share) < Z * math.sqrt(share * (1 - share) / n), (store, shares[store])
        # the market's rate times the store's multiplier is the store's own monthly rate of joining,
        # PROPENSITY x e for each purchaser-month at risk: binomial over them
        rate, at_risk = PROPENSITY * e, int(t.loc[store, "at_risk"])
        assert abs(h * mult[store] - rate) < Z * math.sqrt(rate * (1 - rate) / at_risk), (store, h * mult[store], rate)
    # the same within each segment's mix (stores independent of segments), for the large segments
    for seg, row in m.stores.segment_mix.items():
        weight = m.segments[m.segment_names.index(seg)].share * n
        if weight >= 500:
            for store, (share, _) in TRUTH.items():
                assert abs(row.get(store, 0.0) - share) < Z * math.sqrt(share * (1 - share) / weight), (seg, store)


def test_purchases_elsewhere_leave_the_shares_close(engine_log) -> None:
    """With 10% of purchases in other stores, customers with few purchases may get another home
    store: the shares move toward each other by at most the share of customers mis-assigned."""
    away, home = (engine_log[k].diagnostics.optional_columns.network.table.set_index("store") for k in ("away", "home"))
    fit = engine_log["away"].diagnostics.optional_columns.network
    est = pd.Series(fit.table["store"].to_numpy()[fit.home], index=engine_log["away"].panel.customers)
    wrong = float((est != engine_log["log"].home_store.reindex(est.index)).mean())
    assert wrong < 0.1
    for store in TRUTH:
        assert abs(away.loc[store, "share"] - home.loc[store, "share"]) <= wrong + 1e-6
    assert (away["home_spend_share"] > 0.85).all() and (home["home_spend_share"] == 1.0).all()


def test_the_calibrated_market_with_its_network_validates(engine_log, tmp_path) -> None:
    from simulator.calibration.market_file import write_market
    from simulator.specs import load_market

    cm = engine_log["away"]
    path = write_market(cm, tmp_path / "stores" / "market.yaml")
    assert "# stores: each customer's home store" in path.read_text()
    market = load_market(path)
    assert market.stores == cm.market.stores and market.stores.names == ("north", "south", "east")
    assert "store column 'store'" in market.stores.description
