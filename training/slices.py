"""Metrics per slice of the holdout: segment, company code, risk category, amount band, history.

A model can win on average and lose where it matters (new customers, the largest amounts), so
every scorer is evaluated on the same slices with `training.metrics.evaluate_predictions`.
Slice dimensions (`EvaluationConfig.slice_columns`) are row columns, plus two derived ones:
- `amount_band`: `amount_band_column` (default open_amount) cut at `amount_band_edges`
  into labelled bands "<1k", "1k-10k", ... ; every band is listed, even an empty one.
- `customer_history`: "new" for a cold-start customer (the builder's `cold_start` flag: fewer
  than `cold_start_min_cleared` paid invoices known at t; else hist_n_cleared == 0), "known"
  otherwise.
Slices with fewer than `min_slice_rows` known-outcome rows are kept but flagged `small_sample`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.config.evaluation import EvaluationConfig
from training.metrics import evaluate_predictions, risk_mask

DERIVED_SLICES = ("amount_band", "customer_history")


def _fmt_amount(x: float) -> str:
    for div, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def amount_band_labels(edges: tuple[float, ...]) -> list[str]:
    """Labels of the bands cut at `edges`: "<e0", "e0-e1", ..., ">=eN"."""
    edges = tuple(sorted(edges))
    labels = [f"<{_fmt_amount(edges[0])}"]
    labels += [f"{_fmt_amount(a)}-{_fmt_amount(b)}" for a, b in zip(edges[:-1], edges[1:])]
    labels.append(f">={_fmt_amount(edges[-1])}")
    return labels


def amount_band(amount: pd.Series, edges: tuple[float, ...]) -> pd.Series:
    """Categorical band of each amount (left-closed bands); NaN amounts stay missing."""
    if not edges:
        raise ValueError("amount_band_edges must hold at least one edge")
    edges = tuple(sorted(edges))
    labels = amount_band_labels(edges)
    values = amount.astype("float64").to_numpy()
    codes = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="right")
    codes = np.where(np.isnan(values), -1, codes)
    return pd.Series(pd.Categorical.from_codes(codes, categories=labels), index=amount.index)


def customer_history(rows: pd.DataFrame) -> pd.Series:
    """'new' (cold start at t) or 'known'."""
    if "cold_start" in rows:
        new = rows["cold_start"].fillna(True).astype(bool)
    elif "hist_n_cleared" in rows:
        new = rows["hist_n_cleared"].fillna(0).astype("float64") == 0
    else:
        raise KeyError("slice customer_history needs column cold_start or hist_n_cleared")
    return pd.Series(pd.Categorical(np.where(new, "new", "known"), categories=["new", "known"]),
                     index=rows.index)


def slice_values(rows: pd.DataFrame, column: str, cfg: EvaluationConfig) -> pd.Series:
    """The slice label of every row for one slice dimension."""
    if column == "amount_band":
        if cfg.amount_band_column not in rows:
            raise KeyError(f"slice amount_band needs column {cfg.amount_band_column!r}")
        return amount_band(rows[cfg.amount_band_column], cfg.amount_band_edges)
    if column == "customer_history":
        return customer_history(rows)
    if column not in rows:
        raise KeyError(f"slice column {column!r} is absent from the rows")
    return rows[column]


def _categories(values: pd.Series, derived: bool) -> list:
    """Observed values in a stable order; every category of a derived slice (even empty)."""
    if derived:
        return list(values.cat.categories)
    return sorted(values.dropna().unique().tolist(), key=str)


def slice_metrics(rows: pd.DataFrame, predictions: dict[str, pd.DataFrame],
                  cfg: EvaluationConfig | None = None,
                  slice_columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Long table: one row per (slice, value, scorer) with n, censored count and the metrics."""
    cfg = cfg or EvaluationConfig()
    columns = tuple(slice_columns) if slice_columns is not None else cfg.slice_columns
    known = risk_mask(rows)
    records = []
    for column in columns:  # a handful of slice dimensions
        values = slice_values(rows, column, cfg)
        for value in _categories(values, column in DERIVED_SLICES):
            sel = (values == value).fillna(False).to_numpy(dtype=bool)
            sub = rows.loc[sel]
            n_known = int((sel & known).sum())
            for name, pred in predictions.items():
                rec = {"slice": column, "value": str(value), "scorer": name}
                rec |= evaluate_predictions(
                    sub, pred.loc[sel], n_bins=cfg.ece_bins, quantiles=cfg.quantiles,
                    exclude_written_off=cfg.date_metrics_exclude_written_off, name=name)
                rec["small_sample"] = n_known < cfg.min_slice_rows
                records.append(rec)
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table
    first = ["slice", "value", "scorer", "n_rows", "n", "n_censored_excluded", "small_sample"]
    return table[[c for c in first if c in table] + [c for c in table if c not in first]]
