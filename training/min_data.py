"""The min-data gate: how much history a model needs, read from counts so that the in-process
trainer (training.pipeline, on frames) and the Dask trainer (training.distributed, on counts
summed over partitions - invoices never span partitions, so they add up) apply one rule.

- `fit_counts(frame)`: what the gate and the fold check read of a fit window.
- `check(train, calibration, test, cutoffs, config)`: refuse to train on too little history,
  naming the counts and the thresholds (InsufficientDataError).
- `fold_usable(fit, predict, config)`: an out-of-time fold is worth a model with the gate's
  minimum data and both outcomes on each side.
"""

from __future__ import annotations

import pandas as pd

from features.config import PaydelayConfig


class InsufficientDataError(ValueError):
    """Too few cleared or late invoices in the training slice to fit a model worth serving."""


def fit_counts(frame: pd.DataFrame) -> dict:
    """Cleared and late invoices, the outcomes present and the rows each model may use."""
    risk = frame["risk_used"].to_numpy(dtype=bool)
    vl = frame["very_late_used"].to_numpy(dtype=bool)
    return {
        "cleared_invoices": int(frame.loc[~frame["censored"] & ~frame["label_written_off"],
                                          "invoice_id"].nunique()),
        "late_invoices": int(frame.loc[risk & (frame["target_late"] == 1), "invoice_id"]
                             .nunique()),
        "risk_classes": set(frame.loc[risk, "target_late"].unique().tolist()),
        "very_late_classes": set(frame.loc[vl, "target_very_late"].unique().tolist()),
        "payment_rows": int(frame["payment_used"].sum()), "risk_rows": int(risk.sum()),
    }


def check(train: dict, calibration: dict, test: dict | None, cutoffs,
          config: PaydelayConfig) -> dict[str, int]:
    """The gate on the train slice's counts (and a decided late flag in the calibration and,
    when given, the test window); returns the two counts it judged."""
    tc = config.training
    problems = []
    if train["cleared_invoices"] < tc.min_cleared_invoices:
        problems.append(f"{train['cleared_invoices']} cleared invoices "
                        f"(minimum training.min_cleared_invoices = {tc.min_cleared_invoices})")
    if train["late_invoices"] < tc.min_late_invoices:
        problems.append(f"{train['late_invoices']} late invoices with a decided outcome "
                        f"(minimum training.min_late_invoices = {tc.min_late_invoices})")
    for name, counts in (("calibration", calibration), ("test", test)):
        if counts is not None and counts["risk_rows"] == 0:
            problems.append(f"no {name} rows with a decided late flag")
    if problems:
        raise InsufficientDataError(
            f"not enough history to train: the train slice (snapshots {cutoffs.start} to "
            f"{cutoffs.train_end}) has " + "; ".join(problems)
            + ". Use a longer ledger, move training.train_end later, or lower the thresholds.")
    return {"cleared_invoices": train["cleared_invoices"],
            "late_invoices": train["late_invoices"]}


def fold_usable(fit: dict, predict: dict, config: PaydelayConfig) -> bool:
    """A fold model is worth fitting with the gate's minimum data and both classes each side."""
    tc = config.training
    return (fit["cleared_invoices"] >= tc.min_cleared_invoices
            and fit["late_invoices"] >= tc.min_late_invoices
            and len(fit["risk_classes"]) == 2 and len(predict["risk_classes"]) == 2
            and fit["payment_rows"] > 0)


__all__ = ["InsufficientDataError", "check", "fit_counts", "fold_usable"]
