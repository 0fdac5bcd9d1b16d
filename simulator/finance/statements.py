"""Statements by fiscal year: the program's P&L and the IFRS 15 roll-forwards, from the monthly
table of one run (design or baseline) or of the difference (incremental, design minus
baseline). Money is in the market's currency, as in the monthly table.

**Fiscal years.** The month ``YYYY-MM`` belongs to the fiscal year that starts in month ``s``
(the playbook's ``accounting.fiscal_year_start``) of year

    y = YYYY if MM >= s else YYYY - 1

labelled ``FY2027`` when ``s = 1`` (calendar years) and ``FY2027/28`` otherwise (the year
starting in 2027). A year the horizon cuts (usually the first and the last) is partial: its
``months`` is below 12 and ``partial`` is true; its figures are those of its months, not
annualised.

**P&L by year.** Every line is the sum of the year's months, so the years add up to the
monthly totals:

    program cost = reward + tier benefit + campaign + enrolment drive + fixed (running and
                   amortised set-up) + per-member + bonus-points provision movement
                   - membership fees earned
    operating result = gross margin - program cost
    result before tax = operating result - horizon charge
    tax = tax rate x result before tax,    result after tax = result before tax - tax

The provision movement is the provision's closing minus its opening; program cost is the
monthly ``program_cost`` summed (the formula above holds month by month). The horizon charge
is the P&L's part of the obligation left at the horizon (:mod:`simulator.finance.obligation`),
in the fiscal year of the last month: the expected cost of redeeming the points earned with
sales still outstanding. Bonus points are provided for already (the provision), and fees
received for months after the horizon were never booked as revenue (only fees earned are), so
neither is charged again. Tax, only when ``accounting.tax_rate`` is given, is the rate times the year's result:
negative for a loss, a saving against the group's other profits (no loss carried forward); it
is the undiscounted tax that ``npv_after_tax`` deducts month by month.

**IFRS 15 by year.** Balances are the opening of the year's first month and the closing of its
last month; movements are the sums of its months:

    contract liability: opening + deferred + converted in - converted out
                        - recognised on redemption - recognised as breakage = closing
    bonus-points provision: opening + charged - used + re-measured = closing
    revenue (IFRS 15) = net sales - deferred + recognised + membership fees earned

(:mod:`simulator.finance.ifrs15` for the monthly roll-forwards; the identities hold month by
month, hence by year, for one run, for the difference and for means over replications, all
being linear.)
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

#: Cost groups of the program cost (monthly columns), before the provision movement and fees.
COST_GROUPS = ("reward_cost", "benefit_cost", "campaign_cost", "enrolment_cost", "fixed_cost", "member_cost")

#: Columns that say which months a fiscal year covers.
YEAR_COLUMNS = ("fiscal_year", "first_period", "last_period", "months", "partial")
#: Money columns of :func:`pnl_by_year` (``TAX_COLUMNS`` follow when a tax rate is given).
PNL_COLUMNS = ("revenue", "gross_margin", *COST_GROUPS, "provision_movement", "fee_revenue", "program_cost",
               "operating_result", "horizon_charge", "result_before_tax")
TAX_COLUMNS = ("tax", "result_after_tax")
#: Money columns of :func:`ifrs15_by_year`.
LIABILITY_COLUMNS = ("liability_opening", "liability_deferred", "liability_converted_in", "liability_converted_out",
                     "liability_recognised_redemption", "liability_recognised_breakage", "liability_recognised",
                     "liability_closing")
PROVISION_COLUMNS = ("provision_opening", "provision_charged", "provision_used", "provision_remeasured",
                     "provision_closing")
REVENUE_COLUMNS = ("net_sales", "fee_revenue", "ifrs15_revenue")


def fiscal_year(period: str, start: int = 1) -> str:
    """The fiscal year of month ``YYYY-MM`` when years start in month ``start`` (1-12)."""
    if not 1 <= start <= 12:
        raise ValueError(f"fiscal year start {start} is not a month (expected 1-12)")
    y, m = int(str(period)[:4]), int(str(period)[5:7])
    y = y if m >= start else y - 1
    return f"FY{y}" if start == 1 else f"FY{y}/{(y + 1) % 100:02d}"


def _by_year(monthly: pd.DataFrame, start: int, sums: Sequence[str], opening: Sequence[str] = (),
             closing: Sequence[str] = ()) -> pd.DataFrame:
    """One row per fiscal year: the months it covers, ``sums`` summed, ``opening`` of its first
    month and ``closing`` of its last."""
    if "scenario" in monthly and monthly["scenario"].nunique() > 1:
        raise ValueError("statements take the monthly rows of one run (design, baseline or difference), "
                         f"got {', '.join(map(str, monthly['scenario'].unique()))}")
    m = monthly.sort_values("period", kind="mergesort")
    g = m.groupby([fiscal_year(p, start) for p in m["period"]], sort=False)
    out = pd.DataFrame({"first_period": g["period"].first(), "last_period": g["period"].last(),
                        "months": g["period"].size()})
    out["partial"] = out["months"] < 12
    out = out.join(g[list(sums)].sum()).join(g[list(opening)].first()).join(g[list(closing)].last())
    return out.rename_axis("fiscal_year").reset_index()


def pnl_by_year(monthly: pd.DataFrame, fiscal_year_start: int = 1, tax_rate: float | None = None) -> pd.DataFrame:
    """The P&L by fiscal year (module docstring): :data:`YEAR_COLUMNS`, :data:`PNL_COLUMNS` and,
    with a ``tax_rate``, :data:`TAX_COLUMNS`."""
    m = monthly.assign(provision_movement=monthly["provision_closing"] - monthly["provision_opening"])
    out = _by_year(m, fiscal_year_start, ("revenue", "gross_margin", *COST_GROUPS, "provision_movement", "fee_revenue",
                                          "program_cost", "horizon_charge"))
    out["operating_result"] = out["gross_margin"] - out["program_cost"]
    out["result_before_tax"] = out["operating_result"] - out["horizon_charge"]
    if tax_rate is None:
        return out[list(YEAR_COLUMNS + PNL_COLUMNS)]
    out["tax"] = tax_rate * out["result_before_tax"]
    out["result_after_tax"] = out["result_before_tax"] - out["tax"]
    return out[list(YEAR_COLUMNS + PNL_COLUMNS + TAX_COLUMNS)]


def ifrs15_by_year(monthly: pd.DataFrame, fiscal_year_start: int = 1) -> pd.DataFrame:
    """The contract-liability and provision roll-forwards and IFRS 15 revenue by fiscal year
    (module docstring): :data:`YEAR_COLUMNS`, :data:`LIABILITY_COLUMNS`,
    :data:`PROVISION_COLUMNS`, :data:`REVENUE_COLUMNS`."""
    balances = ("liability_opening", "liability_closing", "provision_opening", "provision_closing")
    flows = [c for c in LIABILITY_COLUMNS + PROVISION_COLUMNS if c not in balances]
    out = _by_year(monthly.assign(net_sales=monthly["revenue"]), fiscal_year_start, flows + ["net_sales", "fee_revenue"],
                   opening=balances[0::2], closing=balances[1::2])
    out["ifrs15_revenue"] = out["net_sales"] - out["liability_deferred"] + out["liability_recognised"] + out["fee_revenue"]
    return out[list(YEAR_COLUMNS + LIABILITY_COLUMNS + PROVISION_COLUMNS + REVENUE_COLUMNS)]
