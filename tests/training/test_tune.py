"""Tuning optimises the problem the product model solves (same relative payment target)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from model_rows import small_config

from training.core.contract import FeatureSet, ModelContract
from training.tune import relative_days


def _rows() -> pd.DataFrame:
    t = pd.Timestamp("2024-03-01")
    return pd.DataFrame({
        "snapshot_time": [t, t, t],
        "net_due_date": [t + pd.Timedelta(days=30), t - pd.Timedelta(days=5), t],
        "target_days_to_clear": [40.0, 12.0, 3.0],
        "hist_ewm_days_late": [7.5, np.nan, -2.0],
    })


def test_payment_trials_learn_days_relative_to_due_date_plus_anchor():
    cfg = small_config(payment_anchor="hist_ewm_days_late")
    with_anchor = ModelContract.from_config(cfg, FeatureSet(names=("hist_ewm_days_late",)))
    # 40 - 30 - 7.5; 12 + 5 - 0 (a missing anchor counts as 0); 3 - 0 + 2
    np.testing.assert_allclose(relative_days(_rows(), with_anchor), [2.5, 17.0, 5.0])


def test_without_the_anchor_feature_trials_use_the_due_date_alone():
    cfg = small_config(payment_anchor="hist_ewm_days_late")
    without = ModelContract.from_config(cfg, FeatureSet(names=("days_to_due",)))
    np.testing.assert_allclose(relative_days(_rows(), without), [10.0, 17.0, 3.0])
