"""The P&L and the IFRS 15 roll-forwards by fiscal year, on a table small enough to work out by
hand, and invariants for any table.

The hand-made table: five months, 2027-02 to 2027-06, fiscal years starting in April, so
February and March fall in FY2026/27 (2 months) and April to June in FY2027/28 (3 months),
both partial. A migration in April moves the liability (80 out, 80 in).

=========================  =====  =====  =====  =====  =====
month                      02     03     04     05     06
=========================  =====  =====  =====  =====  =====
revenue                    1000   1100   1200   1300   1400
gross margin               300    330    360    390    420
reward / benefit           10/5   20/5   30/5   40/5   50/5
campaign / enrolment       0/100  50/0   0/0    0/0    0/0
fixed / per-member         20/1   20/2   20/3   20/4   20/5
provision opening/closing  0/8    8/12   12/6   6/10   10/9
fees earned                0      0      15     15     15
program cost               144    101    37     58     64
obligation at horizon      0      0      0      0      70
=========================  =====  =====  =====  =====  =====

Program cost = groups + provision movement - fees: 136 + 8 = 144; 97 + 4 = 101; 58 - 6 - 15
= 37; 69 + 4 - 15 = 58; 80 - 1 - 15 = 64.

P&L, FY2026/27 (Feb-Mar): revenue 2,100, gross margin 630, rewards 30, benefits 10, campaigns
50, enrolment 100, fixed 40, per-member 3, provision movement 12 - 0 = 12, fees 0, program
cost 144 + 101 = 245 (= 233 + 12 - 0), operating result 630 - 245 = 385, no obligation,
result before tax 385, tax at 25 % 96.25, after tax 288.75.
FY2027/28 (Apr-Jun): revenue 3,900, gross margin 1,170, rewards 120, benefits 15, fixed 60,
per-member 12, provision movement 9 - 12 = -3, fees 45, program cost 37 + 58 + 64 = 159 (= 207
- 3 - 45), operating result 1,011, obligation 70 (June is the horizon), result before tax
941, tax 235.25, after tax 705.75.

Liability (opening, deferred, in, out, on redemption, breakage, closing) by month: (0, 60, 0,
0, 10, 0, 50), (50, 40, 0, 0, 5, 5, 80), (80, 30, 80, 80, 30, 10, 70), (70, 35, 0, 0, 10, 5,
90), (90, 20, 0, 0, 15, 5, 90). FY2026/27: 0 + 100 - 15 - 5 = 80. FY2027/28: 80 + 85 + 80 - 80
- 55 - 20 = 90.
Provision (charged, used, re-measured) by month: (10, 2, 0), (6, 1, -1), (0, 4, -2), (5, 1, 0),
(2, 2, -1). FY2026/27: 0 + 16 - 3 - 1 = 12. FY2027/28: 12 + 7 - 7 - 3 = 9.
IFRS 15 revenue: FY2026/27 2,100 - 100 + 20 + 0 = 2,020; FY2027/28 3,900 - 85 + 75 + 45 = 3,935.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simulator.finance import statements as st

HAND = pd.DataFrame({
    "scenario": "difference",
    "month": [1, 2, 3, 4, 5],
    "period": ["2027-02", "2027-03", "2027-04", "2027-05", "2027-06"],
    "revenue": [1000.0, 1100, 1200, 1300, 1400],
    "gross_margin": [300.0, 330, 360, 390, 420],
    "reward_cost": [10.0, 20, 30, 40, 50],
    "benefit_cost": [5.0] * 5,
    "campaign_cost": [0.0, 50, 0, 0, 0],
    "enrolment_cost": [100.0, 0, 0, 0, 0],
    "fixed_cost": [20.0] * 5,
    "member_cost": [1.0, 2, 3, 4, 5],
    "provision_opening": [0.0, 8, 12, 6, 10],
    "provision_charged": [10.0, 6, 0, 5, 2],
    "provision_used": [2.0, 1, 4, 1, 2],
    "provision_remeasured": [0.0, -1, -2, 0, -1],
    "provision_closing": [8.0, 12, 6, 10, 9],
    "fee_revenue": [0.0, 0, 15, 15, 15],
    "program_cost": [144.0, 101, 37, 58, 64],
    "horizon_charge": [0.0, 0, 0, 0, 70],
    "liability_opening": [0.0, 50, 80, 70, 90],
    "liability_deferred": [60.0, 40, 30, 35, 20],
    "liability_converted_in": [0.0, 0, 80, 0, 0],
    "liability_converted_out": [0.0, 0, 80, 0, 0],
    "liability_recognised_redemption": [10.0, 5, 30, 10, 15],
    "liability_recognised_breakage": [0.0, 5, 10, 5, 5],
    "liability_recognised": [10.0, 10, 40, 15, 20],
    "liability_closing": [50.0, 80, 70, 90, 90],
})

FLOWS = ("revenue", "gross_margin", *st.COST_GROUPS, "provision_movement", "fee_revenue", "program_cost",
         "operating_result", "horizon_charge", "result_before_tax", "tax", "result_after_tax")


def test_hand_table_is_consistent():
    """The table obeys the monthly definitions the statements rely on."""
    h = HAND
    assert (h[list(st.COST_GROUPS)].sum(axis=1) + h["provision_closing"] - h["provision_opening"] - h["fee_revenue"]
            == h["program_cost"]).all()
    assert (h["liability_opening"] + h["liability_deferred"] + h["liability_converted_in"] - h["liability_converted_out"]
            - h["liability_recognised"] == h["liability_closing"]).all()
    assert (h["provision_opening"] + h["provision_charged"] - h["provision_used"] + h["provision_remeasured"]
            == h["provision_closing"]).all()


def test_pnl_by_year_by_hand():
    p = st.pnl_by_year(HAND, fiscal_year_start=4, tax_rate=0.25)
    assert list(p.columns) == list(st.YEAR_COLUMNS + st.PNL_COLUMNS + st.TAX_COLUMNS)
    expected = {
        "fiscal_year": ["FY2026/27", "FY2027/28"], "first_period": ["2027-02", "2027-04"],
        "last_period": ["2027-03", "2027-06"], "months": [2, 3], "partial": [True, True],
        "revenue": [2100, 3900], "gross_margin": [630, 1170], "reward_cost": [30, 120], "benefit_cost": [10, 15],
        "campaign_cost": [50, 0], "enrolment_cost": [100, 0], "fixed_cost": [40, 60], "member_cost": [3, 12],
        "provision_movement": [12, -3], "fee_revenue": [0, 45], "program_cost": [245, 159],
        "operating_result": [385, 1011], "horizon_charge": [0, 70], "result_before_tax": [385, 941],
        "tax": [96.25, 235.25], "result_after_tax": [288.75, 705.75],
    }
    for col, values in expected.items():
        assert p[col].tolist() == values, col


def test_pnl_without_tax_and_calendar_years():
    p = st.pnl_by_year(HAND)
    assert list(p.columns) == list(st.YEAR_COLUMNS + st.PNL_COLUMNS)
    assert p["fiscal_year"].tolist() == ["FY2027"] and p["months"].tolist() == [5] and p["partial"].tolist() == [True]
    assert p["program_cost"].tolist() == [404] and p["result_before_tax"].tolist() == [1800 - 404 - 70]


def test_ifrs15_by_year_by_hand():
    y = st.ifrs15_by_year(HAND, fiscal_year_start=4)
    assert list(y.columns) == list(st.YEAR_COLUMNS + st.LIABILITY_COLUMNS + st.PROVISION_COLUMNS + st.REVENUE_COLUMNS)
    expected = {
        "liability_opening": [0, 80], "liability_deferred": [100, 85], "liability_converted_in": [0, 80],
        "liability_converted_out": [0, 80], "liability_recognised_redemption": [15, 55],
        "liability_recognised_breakage": [5, 20], "liability_recognised": [20, 75], "liability_closing": [80, 90],
        "provision_opening": [0, 12], "provision_charged": [16, 7], "provision_used": [3, 7],
        "provision_remeasured": [-1, -3], "provision_closing": [12, 9],
        "net_sales": [2100, 3900], "fee_revenue": [0, 45], "ifrs15_revenue": [2020, 3935],
    }
    for col, values in expected.items():
        assert y[col].tolist() == values, col


@pytest.mark.parametrize(("period", "start", "label"), [
    ("2027-01", 1, "FY2027"), ("2027-12", 1, "FY2027"), ("2027-03", 4, "FY2026/27"), ("2027-04", 4, "FY2027/28"),
    ("2099-12", 7, "FY2099/00"), ("2028-01", 12, "FY2027/28"), ("2027-12", 12, "FY2027/28")])
def test_fiscal_year_labels(period, start, label):
    assert st.fiscal_year(period, start) == label


def test_one_run_only_and_a_real_month():
    with pytest.raises(ValueError, match="one run"):
        st.pnl_by_year(pd.concat([HAND, HAND.assign(scenario="design")]))
    with pytest.raises(ValueError, match="1-12"):
        st.ifrs15_by_year(HAND, fiscal_year_start=13)


def random_table(seed: int, months: int = 30) -> pd.DataFrame:
    """A monthly table from 2026-11 whose roll-forwards close month by month (any figures)."""
    rng = np.random.default_rng(seed)
    T = months
    cols = {c: rng.uniform(0, 100, T) for c in ("revenue", "gross_margin", *st.COST_GROUPS, "fee_revenue",
                                                "liability_deferred", "liability_recognised_redemption",
                                                "provision_charged", "provision_used")}
    cols["liability_recognised_breakage"] = rng.uniform(-10, 10, T)
    cols["liability_recognised"] = cols["liability_recognised_redemption"] + cols["liability_recognised_breakage"]
    moved = np.where(np.arange(T) == 7, 123.0, 0.0)
    cols["liability_converted_in"] = cols["liability_converted_out"] = moved
    cols["provision_remeasured"] = rng.uniform(-5, 5, T)
    liab = 50 + np.cumsum(cols["liability_deferred"] - cols["liability_recognised"])
    prov = 20 + np.cumsum(cols["provision_charged"] - cols["provision_used"] + cols["provision_remeasured"])
    cols["liability_closing"], cols["liability_opening"] = liab, np.r_[50, liab[:-1]]
    cols["provision_closing"], cols["provision_opening"] = prov, np.r_[20, prov[:-1]]
    cols["program_cost"] = (sum(cols[c] for c in st.COST_GROUPS) + prov - cols["provision_opening"]
                            - cols["fee_revenue"])
    cols["horizon_charge"] = np.where(np.arange(T) == T - 1, 321.0, 0.0)
    periods = pd.period_range("2026-11", periods=T, freq="M").strftime("%Y-%m")
    return pd.DataFrame({"month": np.arange(1, T + 1), "period": periods, **cols})


@pytest.mark.parametrize("start", range(1, 13))
def test_years_add_up_to_the_months_and_roll_forwards_close(start):
    m = random_table(start)
    p = st.pnl_by_year(m, start, tax_rate=0.3)
    assert p["months"].sum() == len(m) and (p["months"] <= 12).all()
    assert p["partial"].tolist() == [n < 12 for n in p["months"]]
    assert set(p["partial"].iloc[1:-1]) <= {False}  # only the first and last year can be partial
    monthly = m.assign(provision_movement=m["provision_closing"] - m["provision_opening"],
                       operating_result=m["gross_margin"] - m["program_cost"])
    monthly["result_before_tax"] = monthly["operating_result"] - monthly["horizon_charge"]
    monthly["tax"] = 0.3 * monthly["result_before_tax"]
    monthly["result_after_tax"] = monthly["result_before_tax"] - monthly["tax"]
    for col in FLOWS:
        assert p[col].sum() == pytest.approx(monthly[col].sum(), rel=1e-12, abs=1e-9), col
    assert p["horizon_charge"].tolist()[-1] == 321.0 and (p["horizon_charge"].iloc[:-1] == 0).all()
    groups = p[list(st.COST_GROUPS)].sum(axis=1) + p["provision_movement"] - p["fee_revenue"]
    assert np.allclose(groups, p["program_cost"], rtol=1e-12)

    y = st.ifrs15_by_year(m, start)
    liab = (y["liability_opening"] + y["liability_deferred"] + y["liability_converted_in"] - y["liability_converted_out"]
            - y["liability_recognised_redemption"] - y["liability_recognised_breakage"])
    prov = y["provision_opening"] + y["provision_charged"] - y["provision_used"] + y["provision_remeasured"]
    assert np.allclose(liab, y["liability_closing"], rtol=1e-12) and np.allclose(prov, y["provision_closing"], rtol=1e-12)
    # one year's closing is the next year's opening; the first opening and last closing are the run's
    assert np.allclose(y["liability_opening"].iloc[1:], y["liability_closing"].iloc[:-1])
    assert np.allclose(y["provision_opening"].iloc[1:], y["provision_closing"].iloc[:-1])
    assert y["liability_opening"].iloc[0] == 50 and y["liability_closing"].iloc[-1] == m["liability_closing"].iloc[-1]
    assert y["ifrs15_revenue"].sum() == pytest.approx(
        (m["revenue"] - m["liability_deferred"] + m["liability_recognised"] + m["fee_revenue"]).sum(), rel=1e-12)
