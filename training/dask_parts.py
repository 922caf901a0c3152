"""What a Dask worker runs on one part of the rows or of the ledger (training.distributed
orchestrates): pure functions of one pandas frame or one part file, returning a frame or a few
counts. They import only the point-in-time, splitting, sampling and scoring code - never the
trainer's tracking, tuning or plotting packages - so a worker starts them without importing
MLflow or Optuna.

- windows: `extent` (first snapshot, data end), `part_plan` (the sample plan's counts),
  `sample_part` (the part's fit-window rows kept under the plan, weighted, float32 features as
  training.rows holds them), `window` (training.splits.relabel);
- boosters' rows: `design_part` (model matrix, target, weight of the rows a Design uses),
  `predicted` / `predicted_days` (a fold model's out-of-time predictions), `categories_seen`,
  `bucket_counts`;
- scoring: `score_test_part` (the test window relabelled at the test end and scored by
  training.core.scoring.score, the headline columns kept), `score_ledger_part` (the open items
  of a ledger part as of a date, training.batch_score.score_frame, written as a part file).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.config import PaydelayConfig
from features.engine.partitions import part_name, read_part
from features.ingest.ledger_files import EVENTS, MASTER
from features.pit.build import scoring_reconciliation
from training import sampling
from training.batch_score import score_frame, write_scored
from training.core.bundle import ModelBundle
from training.core.contract import ModelContract
from training.core.matrix import MatrixBuilder, matrix_frame
from training.core.payment import payment_offset, predict_relative, to_days
from training.core.scoring import score
from training.rows import compact_schema
from training.splits import Cutoffs, data_end, relabel

_DAY = pd.Timedelta(days=1)
TARGET, WEIGHT_COLUMN = "_target", "_weight"  # of a booster's design frame
# What the headline (training.pipeline.headline_metrics) reads of the test rows and the scores.
HEADLINE_ROWS = ("invoice_id", "snapshot_time", "snapshot_kind", "risk_used", "target_late",
                 "very_late_used", "target_very_late", "payment_used", "target_days_to_clear",
                 "label_days_to_clear", "label_written_off")
HEADLINE_SCORES = ("p_late", "p_very_late", "days_to_clear_p10", "days_to_clear_p50",
                   "days_to_clear_p90")


def extent(path: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    rows = pd.read_parquet(path, columns=["snapshot_time", "outcome_time", "observed_days"])
    return rows["snapshot_time"].min(), data_end(rows)


def part_plan(path: str, calibration_end: pd.Timestamp, config: PaydelayConfig,
               seed: int) -> sampling.SamplePlan:
    keys = pd.read_parquet(path, columns=["invoice_id", "snapshot_kind", "snapshot_time"])
    unbounded = config.training.model_copy(update={"sampling": config.training.sampling
                                                   .model_copy(update={"max_rows": None})})
    return sampling.plan(keys, calibration_end, config.model_copy(update={"training": unbounded}),
                         seed)


def sample_part(path: str, plan: sampling.SamplePlan, config: PaydelayConfig) -> pd.DataFrame:
    """The part's rows of the fit windows (up to the calibration end) under the plan, each with
    its weight (1 when nothing is sampled), the float features as float32 (as the in-process
    reader, training.rows, holds them)."""
    table = pq.read_table(path)
    names = set(ModelContract.from_config(config).features.names)
    table = table.cast(compact_schema(table.schema, names))
    end = pa.scalar(pd.Timestamp(plan.calibration_end), type=table.schema.field(
        "snapshot_time").type)
    rows = table.filter(pc.less_equal(table["snapshot_time"], end)).to_pandas()
    keep, weight = sampling.keep_mask(rows, plan, config)
    rows = rows.loc[keep].reset_index(drop=True)
    rows[sampling.WEIGHT] = weight
    return rows


def window(part: pd.DataFrame, lo, hi, label_end, config: PaydelayConfig) -> pd.DataFrame:
    return relabel(part, lo, hi, label_end, config).reset_index(drop=True)


@dataclass(frozen=True)
class Design:
    """Which rows a booster learns from and what it learns: rows where `used` is true, the
    target column (minus the payment offset for the quantiles, minus 1 for the buckets)."""

    used: str
    target: str
    relative_to_offset: bool = False
    shift: float = 0.0

RISK = Design("risk_used", "target_late")
VERY_LATE = Design("very_late_used", "target_very_late")
PAYMENT = Design("payment_used", "target_days_to_clear", relative_to_offset=True)
BUCKET = Design("bucket_used", "target_bucket", shift=-1.0)


def design_size(design: pd.DataFrame) -> tuple[int, float]:
    return len(design), float(design[WEIGHT_COLUMN].sum())


def design_part(frame: pd.DataFrame, design: Design, builder: MatrixBuilder,
                 anchor: str | None) -> pd.DataFrame:
    rows = frame.loc[frame[design.used].to_numpy(dtype=bool)]
    X = matrix_frame(builder.build(rows)[0], builder.features)
    y = rows[design.target].to_numpy(dtype="float64") + design.shift
    if design.relative_to_offset:
        y = y - payment_offset(rows, anchor)
    return X.assign(**{TARGET: y, WEIGHT_COLUMN: rows[sampling.WEIGHT].to_numpy(dtype="float64")
                       if sampling.WEIGHT in rows else np.ones(len(rows))})


def predicted(frame: pd.DataFrame, design: Design, builder: MatrixBuilder, booster: lgb.Booster,
               n_rounds: int) -> pd.DataFrame:
    rows = frame.loc[frame[design.used].to_numpy(dtype=bool)]
    raw = booster.predict(builder.build(rows)[0], num_iteration=n_rounds)
    return pd.DataFrame({"raw": raw, "y": rows[design.target].to_numpy(dtype="float64"),
                         "w": rows[sampling.WEIGHT].to_numpy(dtype="float64")})


def predicted_days(frame: pd.DataFrame, builder: MatrixBuilder, quantiles: dict,
                    anchor: str | None, kinds: tuple[str, ...], cal_end: pd.Timestamp
                    ) -> pd.DataFrame:
    cc = frame.loc[frame["snapshot_kind"].astype(str).isin(kinds).to_numpy()]
    days = to_days(predict_relative(quantiles, builder.build(cc)[0]), payment_offset(cc, anchor))
    return pd.DataFrame({"d10": days[:, 0], "d50": days[:, 1], "d90": days[:, 2],
                         "known": cc["label_days_to_clear"].where(~cc["label_written_off"])
                         .to_numpy(dtype="float64"),
                         "window": ((cal_end - cc["snapshot_time"]) / _DAY).to_numpy("float64"),
                         "w": cc[sampling.WEIGHT].to_numpy(dtype="float64")})


def categories_seen(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, set[str]]:
    return {n: set(frame[n].dropna().astype(str).unique().tolist()) for n in names}


def bucket_counts(frame: pd.DataFrame, n: int) -> np.ndarray:
    rows = frame.loc[frame["bucket_used"].to_numpy(dtype=bool)]
    k = rows["target_bucket"].to_numpy(dtype="float64").astype(int) - 1
    return np.bincount(k, weights=rows[sampling.WEIGHT].to_numpy(dtype="float64"), minlength=n)


def score_test_part(path: str, cut: Cutoffs, config: PaydelayConfig, bundle: ModelBundle
                 ) -> pd.DataFrame:
    rows = pd.read_parquet(path)
    test = relabel(rows, cut.calibration_end, cut.test_end, cut.test_end, config)
    test = test.loc[test["snapshot_kind"].astype(str).isin(config.training.snapshot_kinds)
                    .to_numpy()].reset_index(drop=True)
    pred = score(bundle, test)
    out = test[list(HEADLINE_ROWS)].join(pred[list(HEADLINE_SCORES)])
    out.attrs["unseen_categories"] = pred.attrs.get("unseen_categories", {})
    return out


def invoice_ids(path: str) -> np.ndarray:
    return pd.read_parquet(path, columns=["invoice_id"])["invoice_id"].astype(str).unique()


def score_ledger_part(ledger: str, k: int, bundle: ModelBundle, as_of: pd.Timestamp, out: str,
                meta: dict) -> dict | None:
    events = read_part(ledger, EVENTS, k)
    if events is None or events.empty:
        return None
    master = read_part(ledger, MASTER, k)
    pred = score_frame(events, master, bundle, as_of)
    if len(pred):
        write_scored(pred, Path(out) / part_name(k), {**meta, "part": k, "n_items": len(pred)})
    known = events["event_time"] <= as_of
    seen = events.loc[known, ["invoice_id", "activity", "event_time"]]
    digest = hashlib.sha256(pd.util.hash_pandas_object(
        seen.astype({"invoice_id": "str", "activity": "str"}), index=False).to_numpy()
        .tobytes()).hexdigest()
    columns = [c for c in ("invoice_id", "customer_id", "company_code", "customer_segment",
                           "collector", "open_amount", "net_due_date", "days_overdue",
                           "dunning_level", "p_late", "p_very_late", "risk_class",
                           "pay_date_p50", "expected_amount_at_risk") if c in pred.columns]
    return {"items": pred[columns], "n_events": int(len(seen)),
            "n_invoices": int(seen["invoice_id"].nunique()),
            "last_event": seen["event_time"].max() if len(seen) else None, "hash": digest,
            "reconciliation": scoring_reconciliation(events, bundle.contract.feature_config,
                                                     pred, as_of)}


__all__ = ["Design", "RISK", "VERY_LATE", "PAYMENT", "BUCKET", "TARGET", "WEIGHT_COLUMN",
           "HEADLINE_ROWS", "HEADLINE_SCORES", "extent", "part_plan", "sample_part", "window",
           "fit_counts", "design_part", "design_size", "predicted", "predicted_days",
           "categories_seen", "bucket_counts", "score_test_part", "invoice_ids",
           "score_ledger_part"]
