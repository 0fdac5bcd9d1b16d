"""Opt-in shares by channel from a log's opt-in columns (simulator/calibration/stores.py,
with_opt_in; calibrate --optin-col): the customer's last recorded value, the market's shares,
each store's reach recovered from a log the engine wrote, the columns read, listed or refused."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from simulator.calibration.estimate import DEFAULT_MEMBER_OPT_IN, calibrate
from simulator.calibration.stores import customer_opt_in, with_opt_in
from simulator.calibration.transactions import read_transactions
from simulator.errors import InputErrors
from simulator.specs.market import StoreNetwork

#: The known network: share of customers, and per channel the store's reach multiplier.
TRUTH = {"north": (0.5, {"email": 1.0, "sms": 1.0}), "south": (0.3, {"email": 2.0, "sms": 0.5}),
         "east": (0.2, {"email": 0.5, "sms": 3.0})}
CHANNELS = {"email": 0.3, "sms": 0.2}
Z = 4.0


def test_a_customers_flag_is_the_last_recorded_value_in_the_window() -> None:
    frame = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b", "b", "c", "d"],
        "date": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-08-01", "2024-01-01", "2024-03-01", "2024-02-01",
                                "2024-02-01"]),
        "amount": 1.0,
        # a: yes then no (withdrawn), then yes after the end; b: no then unknown; c unknown; d yes
        "optin_email": pd.array([True, False, True, False, None, None, True], dtype="boolean"),
    })
    flags = customer_opt_in(frame, np.array(["a", "b", "c", "d", "e"]), pd.Timestamp("2024-06-30"))
    assert flags["email"].tolist() == [0, 0, -1, 1, -1]


@pytest.fixture(scope="module")
def optin_log():
    """The usa market with the known network and reach, no opt-in on joining (a customer's opt-in
    is the one drawn at the start, every month), opt-in columns in the log."""
    from simulator.response.generate import member_log
    from simulator.scenario import resolve

    sc = resolve("markets/usa/cagnotte_launch.yaml")
    net = StoreNetwork.model_validate({"stores": tuple({"name": k, "share": s, "reach": r}
                                                       for k, (s, r) in TRUTH.items())})
    reach = sc.market.reachability.model_copy(update={"channels": CHANNELS, "member_opt_in": {}})
    sc = dataclasses.replace(sc, market=sc.market.model_copy(update={"stores": net, "reachability": reach}))
    log = member_log(sc, response={"enrolment_propensity": 0.03, "self_selection": 0.0}, agents=6000, seed=11,
                     pre_months=6, months=24, stores=True, opt_in=True)
    tx = log.transactions[["customer_id", "date", "amount", "store", "optin_email", "optin_sms"]].copy()
    for ch in CHANNELS:
        tx[f"optin_{ch}"] = tx[f"optin_{ch}"].astype(bool).astype("boolean")
    cm = calibrate(tx, name="optin", currency="USD", gross_margin=0.3, potential_horizon=0)
    notes = with_opt_in(cm, tx)
    return {"log": log, "cm": cm, "notes": notes}


def test_opt_in_shares_by_store_are_recovered(optin_log) -> None:
    cm = optin_log["cm"]
    m = cm.market
    table = cm.diagnostics.optional_columns.network.table.set_index("store")
    reach = {s.name: s.reach for s in m.stores.stores}
    n = int(table["customers"].sum())
    for ch, p in CHANNELS.items():
        est = m.reachability.channels[ch]
        truth = sum(s * min(1.0, p * r[ch]) for s, r in TRUTH.values())
        print(f"\n{ch}: market {est:.4f} (truth {truth:.4f})")
        assert abs(est - truth) < Z * math.sqrt(truth * (1 - truth) / n)
        for store, (_, r) in TRUTH.items():
            q = min(1.0, p * r[ch])
            n_k = int(table.loc[store, "customers"])
            got = float(table.loc[store, f"optin_{ch}"])
            print(f"  {store}: opt-in {got:.4f} (truth {q:.4f}, {n_k:,} customers), reach "
                  f"{reach[store].get(ch, 1.0):.3f} (truth {r[ch]})")
            assert abs(got - q) < Z * math.sqrt(q * (1 - q) / n_k), (ch, store, got, q)
            # the engine draws min(1, share x reach): the store's own share back
            assert min(1.0, est * reach[store].get(ch, 1.0)) == pytest.approx(got, abs=1e-3)
    assert m.reachability.member_opt_in == DEFAULT_MEMBER_OPT_IN  # not in a log: as calibrate set it
    assert "reach = the store's opt-in share" in m.stores.description
    assert any("opt-in: email" in x for x in optin_log["notes"])
    assert not any("reach multipliers not estimated" in x for x in cm.diagnostics.notes)


def test_the_market_with_opt_in_reads_back_and_reports(optin_log, tmp_path) -> None:
    from simulator.calibration.estimate import write_market
    from simulator.calibration.report import report_html
    from simulator.specs import load_market

    cm = optin_log["cm"]
    market = load_market(write_market(cm, tmp_path / "optin" / "market.yaml"))
    assert market.stores == cm.market.stores and market.reachability == cm.market.reachability
    html = report_html(cm)
    assert "optin_email" in html and "reach_sms" in html


def _csv(tmp_path, rows: list[str]):
    p = tmp_path / "log.csv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_opt_in_columns_are_named_found_or_listed_as_ignored(tmp_path) -> None:
    p = _csv(tmp_path, ["customer_id,date,amount,Opt_In_Email,sms_consent,note",
                        "a,2024-01-05,10,yes,1,x", "a,2024-01-05,5,,0,x", "b,2024-02-01,7,no,,y"])
    log = read_transactions(p)
    assert list(log.transactions["optin_email"]) == [True, False]  # one transaction of a: any row yes
    assert log.report.ignored_text() == "ignored columns: sms_consent, note -- to use them: --optin-col sms=sms_consent"
    log = read_transactions(p, optin_cols={"sms": "sms_consent"})
    assert log.transactions["optin_sms"].tolist() == [True, pd.NA] or log.transactions["optin_sms"].isna().tolist() == [False, True]
    assert log.report.ignored_text() == "ignored columns: note"
    with pytest.raises(InputErrors) as err:
        read_transactions(p, optin_cols={"sms": "consent"})
    assert "no column 'consent' (given with --optin-col sms=consent)" in str(err.value)


def test_a_bad_opt_in_value_is_one_line_naming_file_line_and_field(tmp_path) -> None:
    p = _csv(tmp_path, ["customer_id,date,amount,optin_email", "a,2024-01-05,10,yes", "b,2024-02-01,7,perhaps",
                        "c,2024-02-01,7,2"])
    with pytest.raises(InputErrors) as err:
        read_transactions(p)
    assert len(err.value.errors) == 1
    assert str(err.value) == (f"{p}:3: optin_email: 'perhaps' is not an opt-in flag (expected yes/no, 1/0, true/false, "
                              "or blank for unknown) (2 rows have such values)")


def test_calibrate_cli_bad_opt_in_exits_2(tmp_path) -> None:
    from typer.testing import CliRunner

    from simulator.cli import app

    p = _csv(tmp_path, ["customer_id,date,amount,consent", "a,2024-01-05,10,yes", "b,2024-02-01,7,maybe"])
    out = tmp_path / "m" / "market.yaml"
    r = CliRunner().invoke(app, ["calibrate", str(p), "--out", str(out), "--currency", "EUR", "--gross-margin", "0.3",
                                 "--optin-col", "email=consent"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and f"{p}:3: consent: 'maybe' is not an opt-in flag" in lines[0]
    assert not out.exists()
    r = CliRunner().invoke(app, ["calibrate", str(p), "--out", str(out), "--currency", "EUR", "--gross-margin", "0.3",
                                 "--optin-col", "email"])
    assert r.exit_code == 2 and "--optin-col" in r.output and "CHANNEL=COLUMN" in r.output
