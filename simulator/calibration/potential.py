"""The potential score: how likely a customer is to be active (or to spend a given amount) in
the next months, from its RFM features, validated on a later, held-out window.

Method. A logistic regression of the outcome "at least one purchase in the ``horizon_months``
calendar months after a month end" (``target="active"``), or "spend of at least ``min_spend``
in those months" (``target="spend"``), on the customer's RFM features at that month end
(:func:`~simulator.calibration.segmentation.rfm_arrays`, transformed as listed in
:data:`PREDICTORS`). Fitted by iteratively reweighted least squares (Newton's method) on
standardised predictors with a small ridge penalty (``ridge``, on the slopes only), so that a
predictor constant in the data (say tenure in a one-quarter cohort) does not break the fit.

Validation, out of time. With ``at`` the scoring date and ``H`` the horizon:

* the **training** origin is ``at - 2H`` months: features there, outcome in the following
  ``H`` months;
* the **validation** origin is ``at - H``: the model fitted at the training origin scores the
  customers known there and is checked against what they did in the next ``H`` months (up to
  ``at``): AUC and a calibration table (predicted against observed, by deciles of the score);
* the **scoring** model is then refitted at the validation origin (the latest complete window)
  and scores the customers known at ``at``; the bands are the thirds of those scores.

Every window ends on or before ``at``: nothing after the scoring date is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from simulator.calibration.segmentation import MonthlyPanel, monthly_panel, rfm_arrays
from simulator.calibration.transactions import TransactionLog

__all__ = ["BANDS", "PREDICTORS", "PotentialModel", "PotentialScore", "auc", "calibration_table", "fit_potential",
           "potential_bands"]

#: Predictors, built from the RFM features at a month end.
PREDICTORS: dict[str, str] = {
    "log_recency": "log(1 + months since the last purchase)",
    "recent": "1 if the customer bought in the month, else 0",
    "log_frequency": "log(transactions so far)",
    "log_frequency_12m": "log(1 + transactions in the last 12 months)",
    "log_monetary": "log(1 + mean spend per transaction)",
    "log_tenure": "log(1 + months since the first purchase)",
}

#: Potential bands, lowest first (the engine's codes 0, 1, 2).
BANDS: tuple[str, str, str] = ("low", "medium", "high")


def _design(panel: MonthlyPanel, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictor matrix at the end of month ``t`` and the mask of customers known then."""
    f = rfm_arrays(panel, t)
    known = panel.known(t)
    X = np.column_stack([
        np.log1p(np.maximum(f["recency_months"], 0)),
        (f["recency_months"] == 0).astype(np.float64),
        np.log(np.maximum(f["frequency"], 1)),
        np.log1p(f["frequency_12m"]),
        np.log1p(np.nan_to_num(f["monetary"], nan=0.0)),
        np.log1p(np.maximum(f["tenure_months"], 0)),
    ])
    return X[known], known


def _outcome(panel: MonthlyPanel, t: int, horizon: int, target: str, min_spend: float) -> np.ndarray:
    window = slice(t + 1, t + 1 + horizon)
    if target == "active":
        return (panel.counts[:, window].sum(axis=1) > 0).astype(np.float64)
    return (panel.spend[:, window].sum(axis=1) >= min_spend).astype(np.float64)


def auc(score: np.ndarray, outcome: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes."""
    score = np.asarray(score, dtype=np.float64)
    y = np.asarray(outcome).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def calibration_table(predicted: np.ndarray, outcome: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Predicted against observed by quantile bins of the prediction (deciles by default).

    Columns ``bin`` (1 = lowest scores), ``customers``, ``predicted`` (mean probability),
    ``observed`` (share with the outcome), ``low``/``high`` (the bin's score range).
    Bins with tied scores are merged, so there may be fewer than ``bins``.
    """
    p = np.asarray(predicted, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    ranks = pd.Series(p).rank(method="first").to_numpy()
    codes = pd.qcut(ranks, bins, labels=False, duplicates="drop")
    frame = pd.DataFrame({"bin": codes + 1, "p": p, "y": y})
    out = frame.groupby("bin").agg(customers=("p", "size"), predicted=("p", "mean"), observed=("y", "mean"),
                                   low=("p", "min"), high=("p", "max")).reset_index()
    return out


def _fit_logistic(X: np.ndarray, y: np.ndarray, ridge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IRLS on standardised columns; returns (beta with intercept first, mean, scale)."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    Z = np.column_stack([np.ones(len(X)), (X - mean) / scale])
    k = Z.shape[1]
    penalty = np.full(k, ridge * max(len(X), 1))
    penalty[0] = 0.0
    base = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    beta = np.zeros(k)
    beta[0] = np.log(base / (1 - base))
    for _ in range(100):
        eta = np.clip(Z @ beta, -35, 35)
        p = 1 / (1 + np.exp(-eta))
        w = p * (1 - p)
        grad = Z.T @ (y - p) - penalty * beta
        H = (Z * w[:, None]).T @ Z + np.diag(penalty) + 1e-9 * np.eye(k)
        step = np.linalg.solve(H, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta, mean, scale


@dataclass(frozen=True)
class PotentialModel:
    """A fitted logistic potential score.

    Attributes
    ----------
    coefficients : dict
        Predictor -> slope on the standardised predictor, plus ``intercept``.
    mean, scale : numpy.ndarray
        Standardisation of each predictor (order of :data:`PREDICTORS`).
    origin : pandas.Period
        Month whose end the features were taken at.
    horizon_months : int
    target : {"active", "spend"}
    min_spend : float
    """

    beta: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    origin: pd.Period
    horizon_months: int
    target: str
    min_spend: float
    customers: int
    base_rate: float

    @property
    def coefficients(self) -> dict[str, float]:
        out = {"intercept": float(self.beta[0])}
        out.update({name: float(b) for name, b in zip(PREDICTORS, self.beta[1:])})
        return out

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.mean) / self.scale
        eta = np.clip(self.beta[0] + Z @ self.beta[1:], -35, 35)
        return 1 / (1 + np.exp(-eta))

    def predict(self, panel: MonthlyPanel, t: int) -> pd.Series:
        """Probability of the outcome for each customer known at the end of month ``t``."""
        X, known = _design(panel, t)
        return pd.Series(self.predict_matrix(X), index=pd.Index(panel.customers[known], name="customer_id"),
                         name="potential")


@dataclass(frozen=True)
class PotentialScore:
    """A validated potential score and the scores of the customers at the scoring date.

    Attributes
    ----------
    model : PotentialModel
        The scoring model (fitted at the validation origin).
    validated : PotentialModel
        The model fitted at the training origin and checked on the validation window.
    auc : float
        AUC of ``validated`` on the validation window (held out: later than its training data).
    calibration : pandas.DataFrame
        Calibration table of ``validated`` on the validation window (:func:`calibration_table`).
    scores : pandas.Series
        Probability for each customer known at the scoring date (index ``customer_id``).
    bands : pandas.Series
        ``low`` / ``medium`` / ``high``: thirds of ``scores``.
    cuts : tuple of float
        Score thresholds between low/medium and medium/high.
    at : pandas.Period
        Scoring month.
    training_auc : float
        AUC of ``validated`` on its own training window (in-sample, for comparison).
    """

    model: PotentialModel
    validated: PotentialModel
    auc: float
    calibration: pd.DataFrame
    scores: pd.Series
    bands: pd.Series
    cuts: tuple[float, float]
    at: pd.Period
    training_auc: float
    validation_base_rate: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable summary."""
        return {
            "target": self.model.target,
            "min_spend": self.model.min_spend,
            "horizon_months": self.model.horizon_months,
            "scoring_month": str(self.at),
            "training_origin": str(self.validated.origin),
            "validation_origin": str(self.model.origin),
            "validation_auc": self.auc,
            "training_auc": self.training_auc,
            "validation_base_rate": self.validation_base_rate,
            "coefficients": self.model.coefficients,
            "band_cuts": list(self.cuts),
            "calibration": self.calibration.to_dict(orient="records"),
            "notes": list(self.notes),
        }


def potential_bands(scores: pd.Series | np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    """Band of each score: ``low`` below ``cuts[0]``, ``high`` from ``cuts[1]``, else ``medium``."""
    s = np.asarray(scores, dtype=np.float64)
    code = np.searchsorted(np.asarray(cuts), s, side="right")
    return np.array(BANDS, dtype=object)[code]


def _fit_at(panel: MonthlyPanel, t: int, horizon: int, target: str, min_spend: float, ridge: float) -> tuple[PotentialModel, np.ndarray, np.ndarray]:
    X, known = _design(panel, t)
    y = _outcome(panel, t, horizon, target, min_spend)[known]
    beta, mean, scale = _fit_logistic(X, y, ridge)
    model = PotentialModel(beta, mean, scale, panel.months[t], horizon, target, min_spend, int(known.sum()), float(y.mean()))
    return model, X, y


def fit_potential(
    data: TransactionLog | pd.DataFrame | MonthlyPanel,
    at: str | pd.Timestamp | None = None,
    *,
    horizon_months: int = 3,
    target: Literal["active", "spend"] = "active",
    min_spend: float = 0.0,
    ridge: float = 1e-4,
    bins: int = 10,
) -> PotentialScore:
    """Fit, validate out of time, and apply the potential score.

    Parameters
    ----------
    data : TransactionLog, DataFrame or MonthlyPanel
        The log (only transactions up to ``at`` are used).
    at : date-like, optional
        Scoring date: features at the end of its month. Default: the panel's last month.
    horizon_months : int
        ``H``: months ahead the outcome looks.
    target : {"active", "spend"}
        Outcome: any purchase in the window, or spend of at least ``min_spend`` in it.
    min_spend : float
        Spend threshold for ``target="spend"``.
    ridge : float
        Ridge penalty on the standardised slopes, per customer.
    bins : int
        Bins of the calibration table.

    Raises
    ------
    ValueError
        The log is too short: the training origin ``at - 2H`` must be on or after its first
        month.
    """
    if horizon_months < 1:
        raise ValueError(f"horizon_months must be at least 1, not {horizon_months}")
    if target not in ("active", "spend"):
        raise ValueError(f"target must be 'active' or 'spend', not {target!r}")
    if target == "spend" and not min_spend > 0:
        raise ValueError("target='spend' needs min_spend > 0")
    if isinstance(data, MonthlyPanel):
        panel = data
        t_at = panel.n_months - 1 if at is None else panel.month_index(at)
        panel = panel.truncate(t_at) if t_at < panel.n_months - 1 else panel
    else:
        end = None if at is None else pd.Timestamp(at).to_period("M").end_time.normalize()
        panel = monthly_panel(data, end)
        t_at = panel.n_months - 1
    t_val = t_at - horizon_months
    t_fit = t_val - horizon_months
    if t_fit < 0:
        raise ValueError(f"the log is too short for a {horizon_months}-month potential score validated out of time: "
                         f"it needs {2 * horizon_months} months before the scoring month {panel.months[t_at]} "
                         f"(it starts {panel.months[0]})")
    notes: list[str] = []
    validated, X_fit, y_fit = _fit_at(panel, t_fit, horizon_months, target, min_spend, ridge)
    X_val, known_val = _design(panel, t_val)
    y_val = _outcome(panel, t_val, horizon_months, target, min_spend)[known_val]
    p_val = validated.predict_matrix(X_val)
    table = calibration_table(p_val, y_val, bins)
    model, _, _ = _fit_at(panel, t_val, horizon_months, target, min_spend, ridge)
    scores = model.predict(panel, t_at)
    cuts = tuple(float(c) for c in np.quantile(scores.to_numpy(), [1 / 3, 2 / 3])) if len(scores) else (0.0, 0.0)
    if cuts[0] == cuts[1]:
        notes.append("the lower and upper thirds of the scores coincide (many tied scores): the medium band is empty")
    bands = pd.Series(potential_bands(scores, cuts), index=scores.index, name="band")
    return PotentialScore(model=model, validated=validated, auc=auc(p_val, y_val), calibration=table, scores=scores,
                          bands=bands, cuts=cuts, at=panel.months[t_at], training_auc=auc(validated.predict_matrix(X_fit), y_fit),
                          validation_base_rate=float(y_val.mean()) if len(y_val) else float("nan"), notes=notes)
