"""SHAP contributions of the risk model for scored rows. Pure Python over a ServingModel.

Contributions are exact TreeSHAP of the raw risk booster, in log-odds, with the base value (the
model's expected log-odds) last - the layout of `booster.predict(X, pred_contrib=True)`. They
explain the booster's score before calibration; calibration is monotone, so a contribution that
raises the raw score raises P(late) too. The tabulated explainer (serving.treeshap) computes them;
when a model is too deep for its tables, LightGBM's pred_contrib is used instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.model import ServingModel


def risk_inputs(model: ServingModel, rows: pd.DataFrame) -> np.ndarray:
    """The float matrix the risk booster sees (the bundle's model matrix, training.core.matrix):
    categoricals as training category codes (unseen and missing -> NaN), booleans 0/1, numbers
    as float64."""
    return model.bundle.matrix.build(rows)[0]


def contributions(model: ServingModel, X: np.ndarray, exact: bool = True) -> np.ndarray:
    """(n, n_features + 1) SHAP values in log-odds, last column the base value.

    exact=False (the re-rank's reasons) may use float32 tables: ~1e-6 relative agreement."""
    if model.explainer is not None:
        return model.explainer.shap_values(X, exact=exact)
    return np.asarray(model.bundle.risk.predict(X, pred_contrib=True), dtype=np.float64)


def contribution_frame(model: ServingModel, rows: pd.DataFrame) -> pd.DataFrame:
    """Contributions per feature (columns = feature names) and `base_value`, rows' index."""
    phi = contributions(model, risk_inputs(model, rows))
    names = list(model.feature_names)
    out = pd.DataFrame(phi[:, :-1], columns=names, index=rows.index)
    out["base_value"] = phi[:, -1]
    return out


__all__ = ["risk_inputs", "contributions", "contribution_frame"]
