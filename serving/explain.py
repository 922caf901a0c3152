"""SHAP contributions of the ranking model for scored rows, and their weights in probability
points. Pure Python over a ServingModel.

The model explained is the one whose output orders the worklist: the very-late model
(bundle.ranking_booster; training.core.scoring: expected amount at risk = open amount x
P(paid more than 30 days late or not at all)), for overdue and not-yet-due items alike. (A
bundle without one explains the risk model, whose buckets then give P(very late).)
Contributions are exact TreeSHAP of that raw booster, in log-odds, with the base value (the
model's expected log-odds) last - the layout of `booster.predict(X, pred_contrib=True)` - so
base value + contributions = the booster's raw log-odds exactly. The tabulated explainer
(serving.treeshap) computes them; when a model is too deep for its tables, LightGBM's
pred_contrib is used instead.

Weights (`probability_weights`): what a collector reads beside each reason, like the quality
value SAP gives each influencing parameter. The calibrated probability p is a monotone function
g of the raw log-odds z (calibrator after the sigmoid, clipped to P(late)); the move from the
base rate p0 = g(base value) to p is shared among the features in proportion to their log-odds
contributions: weight_j = phi_j * (p - p0) / (z - z0). The weights add up to p - p0 exactly, carry
the sign of their contribution (g is non-decreasing), and two items' weight sums order them as
their probabilities do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.model import ServingModel
from training.core.calibration import apply_calibrator


def risk_inputs(model: ServingModel, rows: pd.DataFrame) -> np.ndarray:
    """The float matrix the boosters see (the bundle's model matrix, training.core.matrix):
    categoricals as training category codes (unseen and missing -> NaN), booleans 0/1, numbers
    as float64."""
    return model.bundle.matrix.build(rows)[0]


def contributions(model: ServingModel, X: np.ndarray, exact: bool = True) -> np.ndarray:
    """(n, n_features + 1) SHAP values of the ranking model in log-odds, last column the base
    value.

    exact=False (the re-rank's reasons) may use float32 tables: ~1e-6 relative agreement."""
    if model.explainer is not None:
        return model.explainer.shap_values(X, exact=exact)
    return np.asarray(model.bundle.ranking_booster.predict(X, pred_contrib=True),
                      dtype=np.float64)


def ranking_probability(model: ServingModel, log_odds: np.ndarray) -> np.ndarray:
    """The calibrated probability of the ranking model at raw log-odds (no P(late) clip)."""
    z = np.asarray(log_odds, dtype=np.float64)
    return np.clip(apply_calibrator(model.bundle.ranking_calibrator, 1.0 / (1.0 + np.exp(-z))),
                   0.0, 1.0)


def base_probability(model: ServingModel, base_value: float) -> float:
    """The base rate the weights start from: the ranking probability at the base value."""
    return float(ranking_probability(model, np.array([base_value]))[0])


def probability_weights(model: ServingModel, phi: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(n, n_features) weights in probability (0.12 = 12 points) of the contributions `phi`
    ((n, n_features + 1), base value last) for rows whose shown ranking probability is `p`
    (module doc): each row's weights add up to p - p0."""
    phi = np.asarray(phi, dtype=np.float64)
    base = phi[:, -1]
    dz = phi[:, :-1].sum(axis=1)
    p0 = ranking_probability(model, base)
    h = 1e-4  # items at the base value: the slope of g there
    slope_at_base = (ranking_probability(model, base + h)
                     - ranking_probability(model, base - h)) / (2 * h)
    small = np.abs(dz) < 1e-9
    slope = np.where(small, slope_at_base,
                     (np.asarray(p, dtype=np.float64) - p0) / np.where(small, 1.0, dz))
    return phi[:, :-1] * slope[:, None]


def contribution_frame(model: ServingModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Contributions per feature (columns = feature names) and `base_value`, rows' index."""
    phi = contributions(model, risk_inputs(model, rows))
    names = list(model.feature_names)
    out = pd.DataFrame(phi[:, :-1], columns=names, index=rows.index)
    out["base_value"] = phi[:, -1]
    return out


__all__ = ["risk_inputs", "contributions", "contribution_frame", "probability_weights",
           "ranking_probability", "base_probability"]
