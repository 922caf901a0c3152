"""Metrics for the risk and payment-date models, computed the same way for models and baselines.

Risk (P(late)): ROC-AUC, PR-AUC (average precision), Brier score, log loss, expected calibration
error and a reliability table. Two binnings of the ECE are reported because they answer
different questions:
- `ece` (equal-width): bins [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]; ECE = sum over non-empty bins of
  (n_bin / n) * |mean predicted - observed late rate|. Comparable across models, but a model
  that puts most rows below 0.1 is judged on one bin. `ece_interval` gives its bootstrap interval
  over invoices: on a few thousand invoices the ECE itself moves by several thousandths.
- `ece_mass` (equal-mass): rows sorted by predicted probability and cut into bins of (nearly)
  equal count; same formula. Every bin has enough rows to be trusted.

Payment date (days from t to clearing): MAE and median absolute error of the P50, P10-P90
coverage (share of outcomes with p10 <= y <= p90) and mean interval width, and the pinball
(quantile) loss per quantile: mean of max(q * (y - pred), (q - 1) * (y - pred)).

Only rows whose outcome is known are scored: rows with `censored` True (or a NaN label) are left
out and counted in `n_censored_excluded`. A prediction frame that carries `risk_score` instead of
`p_late` (the rule strategy) is a ranking, not a probability: it gets ROC-AUC and PR-AUC only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

_EPS = 1e-15


def _arrays(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {y.shape} vs {p.shape}")
    if np.isnan(p).any():
        raise ValueError(f"{int(np.isnan(p).sum())} predicted probabilities are NaN")
    return y, p


def _bin_ids(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)
    if strategy == "quantile":
        ids = np.empty(len(p), dtype=int)
        # Stable argsort: ties keep input order, so the binning is deterministic.
        ids[np.argsort(p, kind="stable")] = (np.arange(len(p)) * n_bins) // max(len(p), 1)
        return ids
    raise ValueError(f"ECE strategy must be 'uniform' or 'quantile', got {strategy!r}")


def reliability_table(y, p, n_bins: int = 10, strategy: str = "uniform") -> pd.DataFrame:
    """Per bin: bounds, rows, mean predicted probability, observed rate, gap (observed - mean)."""
    y, p = _arrays(y, p)
    ids = _bin_ids(p, n_bins, strategy)
    frame = pd.DataFrame({"bin": ids, "y": y, "p": p})
    g = frame.groupby("bin")
    table = pd.DataFrame({
        "n": g.size(),
        "mean_predicted": g["p"].mean(),
        "observed_rate": g["y"].mean(),
        "p_min": g["p"].min(),
        "p_max": g["p"].max(),
    }).reindex(range(n_bins))
    table["n"] = table["n"].fillna(0).astype("int64")
    if strategy == "uniform":
        table["lower"] = np.arange(n_bins) / n_bins
        table["upper"] = (np.arange(n_bins) + 1) / n_bins
    else:
        table["lower"], table["upper"] = table["p_min"], table["p_max"]
    table["gap"] = table["observed_rate"] - table["mean_predicted"]
    table = table.rename_axis("bin").reset_index()
    return table[["bin", "lower", "upper", "n", "mean_predicted", "observed_rate", "gap"]]


def expected_calibration_error(y, p, n_bins: int = 10, strategy: str = "uniform") -> float:
    """Row-weighted mean |observed rate - mean predicted| over non-empty bins (see module doc)."""
    table = reliability_table(y, p, n_bins, strategy)
    table = table[table["n"] > 0]
    if table.empty:
        return float("nan")
    return float((table["n"] * table["gap"].abs()).sum() / table["n"].sum())


def ece_interval(y, p, groups, n_bins: int = 10, n_boot: int = 200, level: float = 0.9,
                 seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of the equal-width ECE, resampling groups (invoices), not rows.

    The weekly snapshots of one invoice share its outcome, so resampling rows would treat four
    correlated rows as four draws and give too narrow an interval. A group drawn k times weighs k;
    with every group of one row this is the ordinary row bootstrap.
    """
    y, p = _arrays(y, p)
    codes, uniques = pd.factorize(np.asarray(groups))
    if len(codes) != len(y):
        raise ValueError(f"groups has {len(codes)} entries for {len(y)} rows")
    if not len(y):
        return float("nan"), float("nan")
    bins = _bin_ids(p, n_bins, "uniform")
    diff = p - y
    rng = np.random.default_rng(seed)
    eces = np.empty(n_boot)
    for b in range(n_boot):  # n_boot draws over groups, not a loop over rows
        w = np.bincount(rng.integers(0, len(uniques), len(uniques)), minlength=len(uniques))[codes]
        eces[b] = np.abs(np.bincount(bins, weights=w * diff, minlength=n_bins)).sum() / w.sum()
    tail = (1 - level) / 2
    lo, hi = np.quantile(eces, [tail, 1 - tail])
    return float(lo), float(hi)


def brier_score(y, p) -> float:
    y, p = _arrays(y, p)
    return float(np.mean((p - y) ** 2)) if len(y) else float("nan")


def log_loss(y, p) -> float:
    """Mean negative log-likelihood, probabilities clipped to [1e-15, 1 - 1e-15]."""
    y, p = _arrays(y, p)
    if not len(y):
        return float("nan")
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ranking_metrics(y, score) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision); NaN when only one class is present."""
    y, s = _arrays(y, score)
    one_class = len(y) == 0 or y.min() == y.max()
    return {
        "roc_auc": float("nan") if one_class else float(roc_auc_score(y, s)),
        "pr_auc": float("nan") if one_class else float(average_precision_score(y, s)),
    }


def risk_metrics(y, p, n_bins: int = 10) -> dict[str, float]:
    """Every risk metric of a calibrated probability against 0/1 labels."""
    y, p = _arrays(y, p)
    if len(y) and ((p < 0) | (p > 1)).any():
        raise ValueError("p_late must lie in [0, 1]")
    out = {"n": int(len(y)), "n_late": int(y.sum()),
           "late_rate": float(y.mean()) if len(y) else float("nan")}
    out |= ranking_metrics(y, p)
    out |= {
        "brier": brier_score(y, p),
        "log_loss": log_loss(y, p),
        "ece": expected_calibration_error(y, p, n_bins, "uniform") if len(y) else float("nan"),
        "ece_mass": expected_calibration_error(y, p, n_bins, "quantile") if len(y)
        else float("nan"),
    }
    return out


def pinball_loss(y, pred, q: float) -> float:
    """Mean quantile loss of `pred` as the q-quantile of y."""
    y, pred = _arrays(y, pred)
    if not 0 < q < 1:
        raise ValueError(f"quantile must be in (0, 1), got {q}")
    diff = y - pred
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff))) if len(y) else float("nan")


def interval_coverage(y, lower, upper) -> float:
    """Share of outcomes inside [lower, upper] (bounds included)."""
    y, lower = _arrays(y, lower)
    _, upper = _arrays(y, upper)
    if (lower > upper).any():
        raise ValueError(f"{int((lower > upper).sum())} intervals have lower > upper")
    return float(np.mean((y >= lower) & (y <= upper))) if len(y) else float("nan")


def _qcol(q: float) -> str:
    return f"days_to_clear_p{round(q * 100):d}"


def payment_date_metrics(days, pred: pd.DataFrame,
                         quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)) -> dict[str, float]:
    """MAE / median AE of the P50, P10-P90 coverage and width, pinball loss per quantile present.

    `pred` holds days_to_clear_p10/p50/p90 (p50 at least); missing quantiles give NaN.
    """
    y = np.asarray(days, dtype="float64")
    nan = float("nan")
    out: dict[str, float] = {"n_date": int(len(y))}
    p50 = pred.get("days_to_clear_p50")
    if p50 is None:
        return out | {"mae_days": nan, "median_ae_days": nan, "coverage_p10_p90": nan,
                      "interval_width_days": nan}
    err = np.abs(y - p50.to_numpy(dtype="float64"))
    out["mae_days"] = float(err.mean()) if len(y) else nan
    out["median_ae_days"] = float(np.median(err)) if len(y) else nan
    if {"days_to_clear_p10", "days_to_clear_p90"} <= set(pred.columns):
        lo = pred["days_to_clear_p10"].to_numpy(dtype="float64")
        hi = pred["days_to_clear_p90"].to_numpy(dtype="float64")
        out["coverage_p10_p90"] = interval_coverage(y, lo, hi)
        out["interval_width_days"] = float(np.mean(hi - lo)) if len(y) else nan
    else:
        out["coverage_p10_p90"] = out["interval_width_days"] = nan
    for q in quantiles:
        col = _qcol(q)
        out[f"pinball_p{round(q * 100):d}"] = (
            pinball_loss(y, pred[col].to_numpy(dtype="float64"), q) if col in pred else nan)
    return out


def risk_mask(rows: pd.DataFrame) -> np.ndarray:
    """Rows whose late/not-late outcome is known."""
    known = rows["label_late"].notna().to_numpy()
    if "censored" in rows:
        known = known & ~rows["censored"].fillna(True).to_numpy(dtype=bool)
    return known


def date_mask(rows: pd.DataFrame, exclude_written_off: bool = True) -> np.ndarray:
    """Rows whose days-to-clear is known (and, by default, ended in a payment, not a loss)."""
    known = rows["label_days_to_clear"].notna().to_numpy()
    if "censored" in rows:
        known = known & ~rows["censored"].fillna(True).to_numpy(dtype=bool)
    if exclude_written_off and "label_written_off" in rows:
        known = known & ~rows["label_written_off"].fillna(False).to_numpy(dtype=bool)
    return known


def _check_aligned(rows: pd.DataFrame, pred: pd.DataFrame, name: str) -> None:
    if len(pred) != len(rows) or not pred.index.equals(rows.index):
        raise ValueError(f"predictions {name!r} are not aligned with the rows "
                         f"({len(pred)} vs {len(rows)} rows, or a different index)")


def evaluate_predictions(rows: pd.DataFrame, pred: pd.DataFrame, *, n_bins: int = 10,
                         quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
                         exclude_written_off: bool = True, name: str = "model") -> dict:
    """Risk and payment-date metrics of one prediction frame on the known-outcome rows.

    `pred` is index-aligned with `rows` and holds p_late (or risk_score for a pure ranking)
    and/or days_to_clear_p50 (p10/p90 optional).
    """
    _check_aligned(rows, pred, name)
    nan = float("nan")
    out: dict = {"n_rows": int(len(rows))}
    m = risk_mask(rows)
    out["n_censored_excluded"] = int((~m).sum())
    y = rows["label_late"].to_numpy(dtype="float64")[m]
    if "p_late" in pred:
        out |= risk_metrics(y, pred["p_late"].to_numpy(dtype="float64")[m], n_bins)
    elif "risk_score" in pred:
        out |= {"n": int(m.sum()), "n_late": int(y.sum()),
                "late_rate": float(y.mean()) if len(y) else nan}
        out |= ranking_metrics(y, pred["risk_score"].to_numpy(dtype="float64")[m])
        out |= {"brier": nan, "log_loss": nan, "ece": nan, "ece_mass": nan}
    dm = date_mask(rows, exclude_written_off)
    out["n_date_excluded"] = int((~dm).sum())
    if "days_to_clear_p50" in pred:
        days = rows["label_days_to_clear"].to_numpy(dtype="float64")[dm]
        out |= payment_date_metrics(days, pred.loc[dm], quantiles)
    return out
