"""Evaluation plots saved as PNG: reliability diagram, feature importance, SHAP beeswarm.

Figures are built with matplotlib's object API on an Agg canvas (no pyplot, no global backend
switch), so plotting is safe in tests, servers and MLflow runs alike. Each function saves to
the given path and returns it.

SHAP values are exact TreeSHAP from LightGBM itself (`booster.predict(X, pred_contrib=True)`,
identical to shap.TreeExplainer, last column = base value, in log-odds), on a seeded sample of
at most `max_rows` rows because TreeSHAP costs far more than prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.metrics import reliability_table


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def reliability_diagram(y, p_by_scorer: dict[str, np.ndarray] | np.ndarray, path: str | Path,
                        n_bins: int = 10, strategy: str = "uniform",
                        title: str = "Reliability of P(late)") -> Path:
    """Observed late rate against mean predicted probability per bin, one line per scorer."""
    if not isinstance(p_by_scorer, dict):
        p_by_scorer = {"model": p_by_scorer}
    fig = Figure(figsize=(6, 6.5))
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for name, p in p_by_scorer.items():
        table = reliability_table(y, p, n_bins, strategy)
        table = table[table["n"] > 0]
        ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", label=name)
        hist.hist(np.asarray(p, dtype="float64"), bins=n_bins, range=(0, 1), alpha=0.5,
                  label=name)
    ax.set_ylabel("observed late rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    hist.set_xlabel("predicted P(late)")
    hist.set_ylabel("rows")
    return _save(fig, path)


def _booster(model):
    return getattr(model, "booster_", model)


def feature_importance_plot(model, path: str | Path, importance_type: str = "gain",
                            top_n: int = 20, title: str | None = None) -> Path:
    """Horizontal bars of the top features by LightGBM importance (gain or split)."""
    booster = _booster(model)
    imp = pd.Series(booster.feature_importance(importance_type=importance_type),
                    index=booster.feature_name()).sort_values(ascending=False).head(top_n)
    fig = Figure(figsize=(7, 0.3 * len(imp) + 1.2))
    ax = fig.subplots()
    ax.barh(imp.index[::-1], imp.to_numpy()[::-1], color="#3b6ea8")
    ax.set_xlabel(f"importance ({importance_type})")
    ax.set_title(title or f"Top {len(imp)} features")
    return _save(fig, path)


def shap_values(model, X: pd.DataFrame, max_rows: int = 2000,
                seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact TreeSHAP (log-odds) on a seeded sample: (contributions, sampled X); no base column."""
    booster = _booster(model)
    if len(X) > max_rows:
        rng = np.random.default_rng(seed)
        X = X.iloc[np.sort(rng.choice(len(X), size=max_rows, replace=False))]
    contrib = np.asarray(booster.predict(X, pred_contrib=True))
    n_features = len(booster.feature_name())
    if contrib.shape[1] != n_features + 1:
        raise ValueError(f"pred_contrib gave {contrib.shape[1]} columns for {n_features} features;"
                         " only single-output (binary / regression) boosters are supported")
    return pd.DataFrame(contrib[:, :-1], columns=booster.feature_name(), index=X.index), X


def shap_beeswarm(model, X: pd.DataFrame, path: str | Path, max_rows: int = 2000,
                  top_n: int = 15, seed: int = 0, title: str = "SHAP values (log-odds)") -> Path:
    """Beeswarm: per top feature, each row's SHAP value, coloured by the feature's value."""
    shap, Xs = shap_values(model, X, max_rows, seed)
    order = shap.abs().mean().sort_values(ascending=False).head(top_n).index
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(8, 0.4 * len(order) + 1.5))
    ax = fig.subplots()
    scatter = None
    for i, feat in enumerate(order[::-1]):  # one strip per plotted feature
        values = Xs[feat]
        if isinstance(values.dtype, pd.CategoricalDtype):
            colour = values.cat.codes.astype("float64").where(values.cat.codes >= 0)
        else:
            colour = pd.to_numeric(values, errors="coerce").astype("float64")
        lo, hi = colour.quantile(0.05), colour.quantile(0.95)
        scaled = ((colour - lo) / (hi - lo)).clip(0, 1) if hi > lo else colour * 0 + 0.5
        jitter = rng.normal(0, 0.08, len(shap))
        scatter = ax.scatter(shap[feat].to_numpy(), i + jitter, c=scaled.to_numpy(), s=6,
                             cmap="coolwarm", vmin=0, vmax=1, alpha=0.7, linewidths=0,
                             plotnonfinite=True)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(list(order[::-1]))
    ax.set_xlabel("SHAP value (impact on log-odds of paying late)")
    ax.set_title(title)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=ax, ticks=[0, 1], fraction=0.03)
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("feature value")
    return _save(fig, path)
