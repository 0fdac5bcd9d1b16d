r"""Campaign lifts, measured from a contacts table with a control group.

What it identifies. The engine multiplies a reached customer's purchase rate by ``1 + lift`` in
each month of a campaign (:mod:`simulator.engine.mechanisms.campaigns`; ``lift`` is the
campaign's own or the market's ``response.campaign_lift``). A retailer that keeps a random
control group -- customers the campaign would have reached, held out of it -- measures exactly
that: in the campaign's months, the purchase rate of the contacted customers over the rate of
the control customers is ``1 + lift``, because the holdout is random (a randomised experiment;
the standard in direct marketing: Blattberg, Kim & Neslin 2008, *Database Marketing: Analyzing
and Managing Customers*, Springer; Lewis & Rao 2015, "The unfavorable economics of measuring
the returns to advertising", QJE 130, on how noisy such comparisons are).

Input. A contacts table (CSV or Parquet), one row per customer, campaign and month the
campaign reached (or, for the control group, would have reached) the customer: the customer id
(as in the log), the campaign's name, the month (``YYYY-MM``, or a date in it) and the group,
``contacted`` or ``control``. Columns are named ``customer_id``, ``campaign``, ``month`` (or
``date``) and ``group`` unless given otherwise. Purchases come from the transaction log; a
customer of the table without a purchase in a month bought nothing that month.

Estimator. For each campaign, Poisson quasi-likelihood (consistent for any count distribution
with the right mean; Gourieroux, Monfort & Trognon 1984, Econometrica 52; Wooldridge 2010,
*Econometric Analysis of Cross Section and Panel Data*, on count responses) of the customer's purchases in
each campaign month:

.. code-block:: text

    E[y_im] = exp(a_m + b [contacted_i] + c1 log(1 + n12_i) + c2 [n12_i = 0] + c3 log(1 + n3_i))

``a_m`` the month, ``n12`` and ``n3`` the customer's purchases over the 12 and 3 months before
the campaign's first month (fewer where the log starts later). The covariates are the
pre-campaign purchases: with a random holdout they are not needed for consistency but take out
most of the customer-to-customer spread (regression adjustment of an experiment; Lin 2013,
"Agnostic notes on regression adjustments to experimental data", AoAS 7). The lift is
``exp(b) - 1``; the covariance is the cluster-robust sandwich by customer (a customer's months
and campaigns may be correlated; Cameron & Miller 2015, "A practitioner's guide to
cluster-robust inference", JHR 50), with the small-sample factor ``G / (G - 1)``, and the
interval is ``exp(b +- z se) - 1`` at the chosen level (90%). The pooled lift stacks the
campaigns' months with a month effect per campaign and month and one ``b``: it is what the
market's ``campaign_lift`` means when the campaigns take the market's lift, so campaigns that a
playbook gives their own ``lift`` are reported but not pooled. The fit is Newton's method on
the quasi-likelihood, written here as :mod:`simulator.response.balances` writes its own:
statsmodels is not a dependency of the project; its ``GLM(..., family=Poisson()).fit(
cov_type="cluster")`` is the same estimator (its default small-sample correction differs
slightly), not run here.

Not estimated, and said why: a campaign without control (or contacted) customers, with fewer
than ``MIN_CUSTOMERS`` customers in either group, whose months are outside the log or at its
first month (no purchases before it), or with no purchase in a group.

Caveats. A customer reached by two campaigns in the same month is lifted by both; with a
universal holdout (one control group for every campaign) that month compares both against
neither, so the rows that overlap another campaign are counted and reported. A campaign that
changes whom a later one targets (a recency target after a reactivation) makes the later
groups differ by more than chance; the pre-campaign covariates absorb part of it.

Measured on engine logs (:func:`simulator.response.generate.member_log` with
``control_share``): see README.md, "Measuring a running program".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from simulator.errors import InputError, InputErrors

__all__ = ["CONTACT_COLUMNS", "MIN_CUSTOMERS", "read_contacts", "campaign_lifts"]

#: The contacts table's columns by default (``--contacts-*-col`` rename them).
CONTACT_COLUMNS = {"customer": "customer_id", "campaign": "campaign", "month": "month", "group": "group"}
GROUPS = {"contacted": True, "control": False}
MIN_CUSTOMERS = 30
PRE_MONTHS = 12
RECENT_MONTHS = 3
MAX_ERRORS = 10
METHOD = ("contacted against control customers in the campaign's months: ratio of purchase rates by Poisson "
          "quasi-likelihood with the month and the customer's purchases over the 12 and 3 months before the campaign "
          "as covariates; cluster-robust (customer) sandwich intervals")


def read_contacts(path: str | Path, *, customer_col: str = "customer_id", campaign_col: str = "campaign",
                  month_col: str = "month", group_col: str = "group") -> pd.DataFrame:
    """The contacts table: ``customer_id`` (str), ``campaign`` (str), ``month``
    (``pandas.Period``), ``contacted`` (bool), one row per customer, campaign and month.

    Raises :class:`InputErrors` (one line each: file, line, field, what was expected) for a file
    that cannot be read, a missing column, an empty customer or campaign, a month that is not one,
    a group other than contacted / control, or a customer in both groups of a campaign."""
    p = Path(path)
    name = p.name.lower()
    if not p.is_file():
        raise InputErrors.one(path, "no such file (expected a contacts table, CSV or Parquet)")
    try:
        if name.endswith(".parquet"):
            df = pd.read_parquet(p)
            df = df.astype({c: str for c in df.columns}).where(df.notna(), "")
            first_row, unit = 1, "row"
        elif name.endswith((".csv", ".txt", ".csv.gz", ".txt.gz")):
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
            first_row, unit = 2, "line"
        else:
            raise InputErrors.one(path, "not a contacts table (expected a .csv, .csv.gz or .parquet file)")
    except InputErrors:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputErrors.one(path, f"cannot be read as a table ({exc})") from None
    if month_col == "month" and "month" not in df.columns and "date" in df.columns:
        month_col = "date"
    cols = {"customer_id": customer_col, "campaign": campaign_col, "month": month_col, "group": group_col}
    missing = [c for c in cols.values() if c not in df.columns]
    if missing:
        raise InputErrors.one(path, f"no column {', '.join(repr(c) for c in missing)} (expected columns "
                                    f"{customer_col}, {campaign_col}, {month_col} (or date), {group_col}; found "
                                    f"{', '.join(map(str, df.columns)) or 'none'})", line=1 if unit == "line" else None)
    df = df[list(cols.values())].copy()
    df.columns = list(cols)
    for c in df.columns:
        df[c] = df[c].astype(str).str.strip()
    errors: list[InputError] = []
    hidden = [0]

    def bad(rows: np.ndarray, field: str, message) -> None:
        hidden[0] += max(len(rows) - max(MAX_ERRORS - len(errors), 0), 0)
        for r in rows[: max(MAX_ERRORS - len(errors), 0)]:
            where = (r + first_row) if unit == "line" else None
            msg = message(r) if callable(message) else message
            errors.append(InputError(str(path), where, field, msg if unit == "line" else f"row {r + 1}: {msg}"))

    for key, field in (("customer_id", customer_col), ("campaign", campaign_col)):
        bad(np.flatnonzero((df[key] == "").to_numpy()), field, "empty (expected a value)")
    text = df["month"]
    month = pd.to_datetime(text, format="%Y-%m", errors="coerce")
    day = pd.to_datetime(text, format="ISO8601", errors="coerce")
    month = month.fillna(day)
    bad(np.flatnonzero(month.isna().to_numpy()), month_col,
        lambda r: f"'{text.iloc[r]}' is not a month (expected YYYY-MM or an ISO date YYYY-MM-DD)")
    group = df["group"].str.lower()
    bad(np.flatnonzero(~group.isin(list(GROUPS)).to_numpy()), group_col,
        lambda r: f"'{df['group'].iloc[r]}' is not a group (expected contacted or control)")
    if not errors:
        out = pd.DataFrame({"customer_id": df["customer_id"], "campaign": df["campaign"],
                            "month": pd.PeriodIndex(month, freq="M"), "contacted": group.map(GROUPS).astype(bool)})
        both = out.groupby(["campaign", "customer_id"])["contacted"].transform("nunique") > 1
        if both.any():
            rows = np.flatnonzero(both.to_numpy())
            first = out.loc[both].drop_duplicates(["campaign", "customer_id"]).index.to_numpy()
            rows = np.array([r for r in rows if r not in set(first)])
            bad(rows, group_col, lambda r: f"customer {out['customer_id'].iloc[r]} is both contacted and control in "
                                           f"campaign {out['campaign'].iloc[r]} (expected one group per customer and "
                                           "campaign)")
    if errors:
        if hidden[0]:
            errors.append(InputError(str(path), None, "", f"{hidden[0]} more rows with problems not shown"))
        raise InputErrors(errors)
    if out.empty:
        raise InputErrors.one(path, "no rows (expected one row per customer, campaign and month reached)")
    return out.drop_duplicates(["customer_id", "campaign", "month"]).reset_index(drop=True)


def poisson_ql(y: np.ndarray, X: np.ndarray, cluster: np.ndarray, *, maxiter: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Poisson quasi-likelihood ``E[y] = exp(X beta)`` by Newton's method: beta and its
    cluster-robust covariance (sandwich over ``cluster``, times G / (G - 1))."""
    beta = np.zeros(X.shape[1])
    beta[-1] = 0.0
    ll_prev = -np.inf
    for _ in range(maxiter):
        eta = np.clip(X @ beta, -30, 30)
        mu = np.exp(eta)
        ll = float((y * eta - mu).sum())
        grad = X.T @ (y - mu)
        H = (X * mu[:, None]).T @ X
        step = np.linalg.lstsq(H, grad, rcond=None)[0]
        s = 1.0
        while s > 1e-6:
            trial = beta + s * step
            et = np.clip(X @ trial, -30, 30)
            if float((y * et - np.exp(et)).sum()) >= ll - 1e-9:
                break
            s /= 2
        beta = beta + s * step
        if np.max(np.abs(s * step)) < 1e-10 or abs(ll - ll_prev) < 1e-12 * max(1.0, abs(ll)):
            break
        ll_prev = ll
    mu = np.exp(np.clip(X @ beta, -30, 30))
    _, inv = np.unique(cluster, return_inverse=True)
    G = int(inv.max()) + 1
    S = np.zeros((G, X.shape[1]))
    np.add.at(S, inv, X * (y - mu)[:, None])
    Hi = np.linalg.pinv((X * mu[:, None]).T @ X)
    cov = Hi @ (S.T @ S) @ Hi * (G / max(G - 1, 1))
    return beta, cov


@dataclass(frozen=True)
class _Rows:
    """A campaign's customer-months: customer index (-1 not in the log), month index, group, key."""

    customer: np.ndarray
    month: np.ndarray
    contacted: np.ndarray
    key: np.ndarray          # the customer id, for clustering
    first: int               # the campaign's first month in the log


def _design(panel, rows: _Rows) -> tuple[np.ndarray, np.ndarray]:
    """Outcome and covariates (contacted, pre-campaign purchases) of the rows, month effects apart."""
    P = panel.purchases
    inlog = rows.customer >= 0
    ci = np.where(inlog, rows.customer, 0)
    y = np.where(inlog, P[ci, rows.month], 0.0)
    a = rows.first
    n12 = np.where(inlog, P[ci, max(a - PRE_MONTHS, 0):a].sum(axis=1), 0.0)
    n3 = np.where(inlog, P[ci, max(a - RECENT_MONTHS, 0):a].sum(axis=1), 0.0)
    cov = np.column_stack([rows.contacted.astype(float), np.log1p(n12), (n12 == 0).astype(float), np.log1p(n3)])
    return y, cov


def _fit(panel, parts: list[_Rows], level: float) -> dict:
    """The pooled fit of ``parts`` (one per campaign): one contacted effect, a month effect per
    campaign and month."""
    ys, covs, cells, keys = [], [], [], []
    for k, r in enumerate(parts):
        y, c = _design(panel, r)
        ys.append(y)
        covs.append(c)
        cells.append(k * 10_000 + r.month)
        keys.append(r.key)
    y, C, cell, key = np.concatenate(ys), np.vstack(covs), np.concatenate(cells), np.concatenate(keys)
    _, cell_idx = np.unique(cell, return_inverse=True)
    D = np.eye(int(cell_idx.max()) + 1)[cell_idx]
    keep = [0] + [j for j in range(1, C.shape[1]) if np.ptp(C[:, j]) > 0]
    X = np.column_stack([C[:, keep], D])
    beta, cov = poisson_ql(y, X, key)
    b, se = float(beta[0]), float(np.sqrt(max(cov[0, 0], 0.0)))
    z = float(stats.norm.ppf(0.5 + level / 2))
    return {"estimate": float(np.expm1(b)), "lo": float(np.expm1(b - z * se)), "hi": float(np.expm1(b + z * se)),
            "log_ratio": b, "se_log_ratio": se, "level": level}


def campaign_lifts(panel, contacts: pd.DataFrame, *, level: float = 0.90, own_lift: frozenset[str] = frozenset(),
                   min_customers: int = MIN_CUSTOMERS) -> dict:
    """Each campaign's lift and the pooled lift of the campaigns not in ``own_lift`` (module
    docstring). ``panel``: :func:`simulator.response.estimate.panel_from_log`; ``contacts``:
    :func:`read_contacts`. Returns the dict written to ``estimates.json``."""
    contacts = contacts.reset_index(drop=True)
    index = pd.Index(panel.customers)
    cust = index.get_indexer(contacts["customer_id"].astype(str))
    months = panel.months
    m = np.asarray((contacts["month"].dt.year - months[0].year) * 12 + (contacts["month"].dt.month - months[0].month),
                   dtype=np.int64)
    T = len(months)
    inside = (m >= 0) & (m < T)
    # rows where the customer is contacted by another campaign in the same month
    c_key = contacts["customer_id"].astype(str) + "|" + contacts["month"].astype(str)
    contacted = contacts["contacted"].to_numpy(dtype=bool)
    n_contacts = c_key[contacted].value_counts()
    overlap = contacted & (c_key.map(n_contacts).fillna(0).to_numpy() > 1)
    by_campaign, pooled_parts, pooled_names = [], [], []
    for name, g in contacts.groupby("campaign", sort=False):
        ix = g.index.to_numpy()
        cmonths = sorted(set(g["month"].astype(str)))
        row = {"campaign": str(name), "months": cmonths,
               "contacted_customers": int(g.loc[g["contacted"], "customer_id"].nunique()),
               "control_customers": int(g.loc[~g["contacted"], "customer_id"].nunique()),
               "contacted_rows": int(g["contacted"].sum()), "control_rows": int((~g["contacted"]).sum()),
               "customers_not_in_log": int(g.loc[cust[ix] < 0, "customer_id"].nunique()),
               "rows_overlapping_another_campaign": int(overlap[ix].sum()),
               "own_lift_in_playbook": str(name) in own_lift}
        why = None
        ok = ix[inside[ix]]
        if row["control_rows"] == 0:
            why = "no control group: every customer of the table was contacted (expected customers in group control)"
        elif row["contacted_rows"] == 0:
            why = "no contacted customers (expected customers in group contacted)"
        elif ok.size == 0:
            why = (f"its months ({cmonths[0]}..{cmonths[-1]}) are outside the log's ({months[0]}..{months[-1]})")
        elif int(m[ok].min()) == 0:
            why = f"its first month is the log's first ({months[0]}): no purchases before it to compare the groups on"
        else:
            gc = contacted[ok]
            nc = len(set(contacts["customer_id"].to_numpy()[ok][gc]))
            nh = len(set(contacts["customer_id"].to_numpy()[ok][~gc]))
            if min(nc, nh) < min_customers:
                why = (f"too few customers: {nc} contacted, {nh} control in the log's months (expected at least "
                       f"{min_customers} in each group)")
        if why is None:
            rows = _Rows(cust[ok], m[ok], contacted[ok], contacts["customer_id"].to_numpy()[ok].astype(str),
                         int(m[ok].min()))
            y, _ = _design(panel, rows)
            rate_c, rate_h = float(y[rows.contacted].mean()), float(y[~rows.contacted].mean())
            row.update(rate_contacted=rate_c, rate_control=rate_h,
                       rows_outside_log=int(ix.size - ok.size))
            if min(y[rows.contacted].sum(), y[~rows.contacted].sum()) == 0:
                why = ("no purchase by the " + ("contacted" if y[rows.contacted].sum() == 0 else "control")
                       + " customers in the campaign's months: a ratio of purchase rates is not estimable")
            else:
                row.update(_fit(panel, [rows], level))
                if not row["own_lift_in_playbook"]:
                    pooled_parts.append(rows)
                    pooled_names.append(str(name))
        if why is not None:
            row["not_estimated"] = why
        by_campaign.append(row)
    pooled, why_pooled = None, None
    if pooled_parts:
        pooled = {**_fit(panel, pooled_parts, level), "campaigns": pooled_names,
                  "customers": int(len(set(np.concatenate([r.key for r in pooled_parts])))),
                  "customer_months": int(sum(r.key.size for r in pooled_parts))}
    else:
        why_pooled = ("no campaign of the contacts table could be estimated" if not any("estimate" in r for r in by_campaign)
                      else "every estimated campaign has its own lift in the playbook, not the market's campaign_lift")
    return {"method": METHOD, "level": level, "campaigns": by_campaign, "pooled": pooled,
            "why_not_pooled": why_pooled}
