"""`score(bundle, rows)`: every model output of the row contract, from a loaded bundle.

Pure: no I/O, no global state, nothing learned at scoring time. Training evaluation, batch scoring
and the serving endpoints all call this module, so what was measured is what is served. Every
fact it needs (features, delay buckets, very-late buckets, payment anchor, risk-class cut-offs)
comes from the bundle's contract (training.core.contract), never from a config.

Definitions (the one place they are written down), for a contract with delay buckets 0..n
(n = len(bucket_edges); the defaults give 0 on time, 1-30, 31-60, 61-90, > 90 days late):
- p_late: calibrated P(cleared after net due date + grace days, or written off).
- p_very_late: calibrated P(cleared more than contract.very_late_days after the net due date,
  or written off) from the dedicated very-late booster (bundle.very_late), clipped to p_late
  (the event is a part of "late"); in collector language the contract's very_late_label,
  "chance of paying more than 30 days late or not at all". Without a very-late booster
  (too little history) it is the sum of the very-late buckets.
- p_bucket_0 = 1 - p_late; p_bucket_k = p_late * P(bucket k | late), k = 1..n (rows sum to 1),
  then rescaled so that the very-late buckets sum to p_very_late: each very-late bucket keeps
  its share of the very-late mass, each other late bucket its share of p_late - p_very_late
  (rows still sum to 1; with every late bucket very late, p_very_late is p_late).
- risk_class: low | medium | high | very_high by the contract's risk_class_cutoffs on p_late.
- days_to_clear_p10/p50/p90: quantiles of days from the snapshot t to clearing, non-crossing.
- pay_date_pXX: the calendar day of t + days_to_clear_pXX (time of day dropped).
- expected_amount_at_risk = open_amount * p_very_late (= open_amount * the sum of the
  contract's very-late buckets, those starting at or beyond evaluation.backtest_late_days: more
  than 30 days late or written off with the defaults, p_bucket_2 + p_bucket_3 + p_bucket_4). Not
  open_amount * p_late: on a collections worklist every item is already overdue, so its p_late
  is ~1 and that product would just rank by amount; what a collector can still change is
  whether the money arrives much later or never.
Unseen categorical values are scored as missing; their counts per feature are in
`result.attrs["unseen_categories"]`. Rows carrying a `feature_set_version` other than the
model's are refused (the features would not mean what the model learned).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.core.bundle import ModelBundle
from training.core.calibration import apply_calibrator
from training.core.contract import RISK_CLASSES, ModelContract
from training.core.payment import QUANTILE_KEYS, payment_offset, predict_relative, to_days


def output_columns(contract: ModelContract) -> tuple[str, ...]:
    """The columns `score` returns for a model of this contract, in order."""
    return ("p_late", "p_very_late", *contract.bucket_columns, "risk_class",
            *[f"days_to_clear_{k}" for k in QUANTILE_KEYS],
            *[f"pay_date_{k}" for k in QUANTILE_KEYS], "expected_amount_at_risk")


def score(bundle: ModelBundle, rows: pd.DataFrame) -> pd.DataFrame:
    """Model outputs for each row, indexed like `rows` (join them back with rows.join)."""
    check_rows(bundle.contract, rows)
    X, unseen = bundle.matrix.build(rows)
    bucket_q = bundle.bucket.predict(X) if bundle.bucket is not None else None
    vl_raw = bundle.very_late.predict(X) if bundle.very_late is not None else None
    out = compose(bundle, rows, bundle.risk.predict(X), bucket_q,
                  predict_relative(bundle.quantiles, X), vl_raw)
    out.attrs["unseen_categories"] = unseen
    return out


def check_rows(contract: ModelContract, rows: pd.DataFrame) -> None:
    """Refuse rows that lack the key columns or were built with another feature set."""
    for col in ("snapshot_time", "net_due_date", "open_amount"):
        if col not in rows.columns:
            raise ValueError(f"rows lack column {col!r}, needed for payment dates / amount at "
                             "risk")
    check_version(contract, rows)


def check_version(contract: ModelContract, rows: pd.DataFrame) -> None:
    """Refuse rows whose feature_set_version column names another feature set."""
    if "feature_set_version" in rows.columns:
        versions = set(rows["feature_set_version"].dropna().astype(str).unique())
        if versions - {contract.feature_set_version}:
            raise ValueError(f"rows were built with feature set {sorted(versions)} but the model "
                             f"expects {contract.feature_set_version!r}: rebuild the rows or "
                             "retrain the model")


def bucket_probabilities(p_late: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Columns p_bucket_0..n: 1 - p_late, then p_late split by the late-bucket shares q (rows)."""
    q = np.asarray(q, dtype="float64")
    q = q / q.sum(axis=1, keepdims=True)
    return np.column_stack([1.0 - p_late, p_late[:, None] * q])


def rescale_very_late(buckets: np.ndarray, p_very_late: np.ndarray,
                      very_late: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Bucket probabilities whose very-late columns sum to p_very_late (module doc), and
    p_very_late itself (clipped to p_late = 1 - column 0; equal to it when every late bucket is
    very late)."""
    p_late = 1.0 - buckets[:, 0]
    vl = np.zeros(buckets.shape[1], dtype=bool)
    vl[list(very_late)] = True
    other = ~vl
    other[0] = False
    if not other.any():
        return buckets, p_late
    p_vl = np.clip(np.asarray(p_very_late, dtype="float64"), 0.0, p_late)
    out = buckets.copy()
    late = buckets[:, 1:].sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(late > 0, buckets / np.where(late > 0, late, 1.0), 0.0)
        vl_share = share[:, vl].sum(axis=1, keepdims=True)
        other_share = share[:, other].sum(axis=1, keepdims=True)
        out[:, vl] = p_vl[:, None] * np.where(vl_share > 0, share[:, vl] / vl_share,
                                              1.0 / vl.sum())
        out[:, other] = (p_late - p_vl)[:, None] * np.where(
            other_share > 0, share[:, other] / other_share, 1.0 / other.sum())
    return out, p_vl


def risk_class(p_late: np.ndarray, cutoffs: tuple[float, ...]) -> np.ndarray:
    """low | medium | high | very_high by the p_late cut-offs (a cut-off is inclusive of the
    higher class)."""
    if list(cutoffs) != sorted(cutoffs) or len(cutoffs) != len(RISK_CLASSES) - 1:
        raise ValueError(f"risk_class_cutoffs must be {len(RISK_CLASSES) - 1} increasing values, "
                         f"got {cutoffs}")
    idx = np.searchsorted(np.asarray(cutoffs, dtype="float64"), p_late, side="right")
    return np.asarray(RISK_CLASSES, dtype=object)[idx]


def compose(bundle: ModelBundle, rows: pd.DataFrame, raw: np.ndarray,
            bucket_q: np.ndarray | None, relative: np.ndarray,
            very_late_raw: np.ndarray | None = None) -> pd.DataFrame:
    """The output columns from the boosters' raw predictions (module doc for the definitions).

    raw: risk booster probabilities; bucket_q: bucket booster shares (None: the bundle's prior);
    relative: sorted P10/P50/P90 days relative to the offset (core.payment.predict_relative);
    very_late_raw: the very-late booster's probabilities (None: the bundle has none).
    A frame over `compose_columns`, which serving calls on its arrays directly, so the
    definitions live in one place.
    """
    cols = compose_columns(
        bundle, pd.to_datetime(rows["snapshot_time"]).to_numpy(),
        payment_offset(rows, bundle.contract.payment_anchor),
        rows["open_amount"].astype("float64").to_numpy(), raw, bucket_q, relative,
        very_late_raw)
    cols["risk_class"] = pd.Series(cols["risk_class"], index=rows.index, dtype="str")
    return pd.DataFrame(cols, index=rows.index)


def compose_columns(bundle: ModelBundle, snapshot_time: np.ndarray, offset: np.ndarray,
                    open_amount: np.ndarray, raw: np.ndarray, bucket_q: np.ndarray | None,
                    relative: np.ndarray, very_late_raw: np.ndarray | None = None
                    ) -> dict[str, np.ndarray]:
    """compose's outputs as arrays (risk_class: an object array of str), from the rows'
    snapshot times (datetime64), payment-date offsets (core.payment.payment_offset with the
    contract's anchor) and open amounts."""
    contract = bundle.contract
    n = len(raw)
    p_late = np.clip(apply_calibrator(bundle.calibrator, raw), 0.0, 1.0)
    if bucket_q is None:
        bucket_q = np.tile(np.asarray(bundle.bucket_prior, dtype="float64"), (n, 1))
    buckets = bucket_probabilities(p_late, np.asarray(bucket_q).reshape(n, -1))
    if buckets.shape[1] != len(contract.buckets):
        raise ValueError(f"the bucket model gives {buckets.shape[1]} buckets, the contract has "
                         f"{len(contract.buckets)}")
    if bundle.very_late is not None and very_late_raw is not None:
        p_vl = np.clip(apply_calibrator(bundle.ranking_calibrator, very_late_raw), 0.0, 1.0)
        buckets, p_vl = rescale_very_late(buckets, p_vl, contract.very_late)
    else:
        p_vl = buckets[:, list(contract.very_late)].sum(axis=1)
    days = to_days(relative, offset, bundle.conformal)

    cols: dict[str, np.ndarray] = {"p_late": p_late, "p_very_late": p_vl}
    for k, column in enumerate(contract.bucket_columns):
        cols[column] = buckets[:, k]
    cols["risk_class"] = risk_class(p_late, contract.risk_class_cutoffs)
    for j, key in enumerate(QUANTILE_KEYS):
        cols[f"days_to_clear_{key}"] = days[:, j]
    t = np.asarray(snapshot_time).astype("datetime64[ns]")
    for j, key in enumerate(QUANTILE_KEYS):
        # t + days, the time of day dropped (numpy: a fifth of pandas' cost on a request)
        when = t + pd.to_timedelta(days[:, j], unit="D").to_numpy()
        cols[f"pay_date_{key}"] = when.astype("datetime64[D]").astype("datetime64[ns]")
    cols["expected_amount_at_risk"] = np.asarray(open_amount, dtype="float64") * p_vl
    return cols
