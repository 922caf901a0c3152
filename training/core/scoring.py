"""`score(bundle, rows)`: every model output of the row contract, from a loaded bundle.

Pure: no I/O, no global state, nothing learned at scoring time. Training evaluation, batch scoring
and the serving endpoints all call this one function, so what was measured is what is served.

Definitions (the one place they are written down):
- p_late: calibrated P(cleared after net due date + grace days, or written off).
- p_bucket_0 = 1 - p_late; p_bucket_k = p_late * P(bucket k | late), k = 1..4 (rows sum to 1).
- risk_class: low | medium | high | very_high by `training.risk_class_cutoffs` on p_late.
- days_to_clear_p10/p50/p90: quantiles of days from the snapshot t to clearing, non-crossing.
- pay_date_pXX: the calendar day of t + days_to_clear_pXX (time of day dropped).
- expected_amount_at_risk = open_amount * P(paid more than the second bucket edge late, i.e. more
  than 30 days with the default edges, or written off) = open_amount * (p_bucket_2 + ... +
  p_bucket_4). Not open_amount * p_late: on a collections worklist every item is already overdue,
  so its p_late is ~1 and that product would just rank by amount; what a collector can still
  change is whether the money arrives much later or never.
Unseen categorical values are scored as missing; their counts per feature are in
`result.attrs["unseen_categories"]`. Rows carrying a `feature_set_version` other than the
model's are refused (the features would not mean what the model learned).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.core.bundle import ModelBundle
from training.payment_date import QUANTILE_KEYS, payment_offset, predict_relative, to_days
from training.risk import apply_calibrator, bucket_probabilities, feature_matrix, risk_class

N_BUCKETS = 5
OUTPUT_COLUMNS: tuple[str, ...] = (
    "p_late", *[f"p_bucket_{k}" for k in range(N_BUCKETS)], "risk_class",
    *[f"days_to_clear_{k}" for k in QUANTILE_KEYS], *[f"pay_date_{k}" for k in QUANTILE_KEYS],
    "expected_amount_at_risk",
)


def score(bundle: ModelBundle, rows: pd.DataFrame) -> pd.DataFrame:
    """Model outputs for each row, indexed like `rows` (join them back with rows.join)."""
    check_rows(bundle, rows)
    X, unseen = feature_matrix(rows, bundle.feature_set, bundle.categories)
    bucket_q = bundle.bucket.predict(X) if bundle.bucket is not None else None
    out = compose(bundle, rows, bundle.risk.predict(X), bucket_q,
                  predict_relative(bundle.quantiles, X))
    out.attrs["unseen_categories"] = unseen
    return out


def check_rows(bundle: ModelBundle, rows: pd.DataFrame) -> None:
    """Refuse rows that lack the key columns or were built with another feature set."""
    for col in ("snapshot_time", "net_due_date", "open_amount"):
        if col not in rows.columns:
            raise ValueError(f"rows lack column {col!r}, needed for payment dates / amount at "
                             "risk")
    if "feature_set_version" in rows.columns:
        versions = set(rows["feature_set_version"].dropna().astype(str).unique())
        if versions - {bundle.feature_set_version}:
            raise ValueError(f"rows were built with feature set {sorted(versions)} but the model "
                             f"expects {bundle.feature_set_version!r}: rebuild the rows or "
                             "retrain the model")


def compose(bundle: ModelBundle, rows: pd.DataFrame, raw: np.ndarray,
            bucket_q: np.ndarray | None, relative: np.ndarray) -> pd.DataFrame:
    """The output columns from the boosters' raw predictions (module doc for the definitions).

    raw: risk booster probabilities; bucket_q: bucket booster shares (None: the bundle's prior);
    relative: sorted P10/P50/P90 days relative to the due date (payment_date.predict_relative).
    A frame over `compose_columns`, which serving calls on its arrays directly, so the
    definitions live in one place.
    """
    cols = compose_columns(
        bundle, pd.to_datetime(rows["snapshot_time"]).to_numpy(),
        payment_offset(rows, bundle.quantile_shift),
        rows["open_amount"].astype("float64").to_numpy(), raw, bucket_q, relative)
    cols["risk_class"] = pd.Series(cols["risk_class"], index=rows.index, dtype="str")
    return pd.DataFrame(cols, index=rows.index)


def compose_columns(bundle: ModelBundle, snapshot_time: np.ndarray, offset: np.ndarray,
                    open_amount: np.ndarray, raw: np.ndarray, bucket_q: np.ndarray | None,
                    relative: np.ndarray) -> dict[str, np.ndarray]:
    """compose's outputs as arrays (risk_class: an object array of str), from the rows'
    snapshot times (datetime64), payment-date offsets (payment_date.payment_offset with the
    bundle's quantile_shift) and open amounts."""
    n = len(raw)
    p_late = np.clip(apply_calibrator(bundle.calibrator, raw), 0.0, 1.0)
    if bucket_q is None:
        bucket_q = np.tile(np.asarray(bundle.bucket_prior, dtype="float64"), (n, 1))
    buckets = bucket_probabilities(p_late, np.asarray(bucket_q).reshape(n, -1))
    days = to_days(relative, offset, bundle.quantile_shift)

    cols: dict[str, np.ndarray] = {"p_late": p_late}
    for k in range(buckets.shape[1]):
        cols[f"p_bucket_{k}"] = buckets[:, k]
    cols["risk_class"] = risk_class(p_late, bundle.risk_class_cutoffs)
    for j, key in enumerate(QUANTILE_KEYS):
        cols[f"days_to_clear_{key}"] = days[:, j]
    t = np.asarray(snapshot_time).astype("datetime64[ns]")
    for j, key in enumerate(QUANTILE_KEYS):
        # t + days, the time of day dropped (numpy: a fifth of pandas' cost on a request)
        when = t + pd.to_timedelta(days[:, j], unit="D").to_numpy()
        cols[f"pay_date_{key}"] = when.astype("datetime64[D]").astype("datetime64[ns]")
    very_late = buckets[:, 2:].sum(axis=1)
    cols["expected_amount_at_risk"] = np.asarray(open_amount, dtype="float64") * very_late
    return cols
