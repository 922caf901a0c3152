"""`paydelay monitor`: is the served model still right? From the scoring history and the ledger
as it is now.

Inputs: the dated prediction tables written by training.batch_score (the scoring history), the
ledger now (events, master), the model bundle that scored them (its training report's holdout
figures are in `bundle.metrics`), optionally the customer store's as-of.

1. Realised quality with delayed labels. Each past scoring row (invoice, as-of) gets its outcome
   as known now (features.pit.labels.labels_at, observed up to `now`) and the maturity rules of
   training (training.splits.add_targets, the same code as the training holdout): the late flag
   counts once it is decided - cleared, or still open past due + grace (late whatever happens);
   an item not yet decided is left out, never counted as on time. Rows are chosen on their dates
   only, so a partly matured date is a fair sample. Per date and pooled over the latest
   `realised_pool_dates` dates: ROC-AUC (invoice-bootstrap interval), ECE (training.metrics
   .ece_interval), payment MAE on rows watched for the payment horizon, P10-P90 coverage where
   decidable; per slice (segment, company code, new vs known customer, amount band).
2. Estimated quality before the labels arrive (confidence-based performance estimation, as
   NannyML's CBPE): with calibrated probabilities, the expected confusion counts at every
   threshold are sums of p and 1 - p, which give the expected ROC curve and its AUC; the ECE a
   calibrated model would show on that many rows (Monte Carlo of labels drawn from p) is the
   noise floor a realised ECE is read against. It assumes calibration holds under the shift: a
   segment turning late is invisible to it until the labels come (the drift checks see it).
3. Drift, by the population stability index (PSI = sum (c - r) ln(c / r) over bins): per feature
   and of the predictions, current = the rows of the latest `drift_window_dates` scoring dates,
   reference = the open items on weekly dates of the model's holdout window, rebuilt from the
   ledger point in time (named in the report); the ledger's own mix (segment, terms, company
   code, amount band) from the invoices posted in the reference window against those posted in
   the current one. Numeric bins are the reference's deciles, missing values a bin of their own.
4. Staleness (training.core.staleness): model age, store age, newest event, last scoring date.

Every threshold is in features.config.monitoring.MonitoringConfig. `MonitorReport.alarms` lists
the crossed ones, each one line; `exit_reason()` is the line a scheduler shows. `write_report`
writes report.html (plots embedded) and the tables as CSV/JSON; `log_report` logs them to the
MLflow experiment `paydelay-monitoring`.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.config import PaydelayConfig
from features.config.evaluation import EvaluationConfig
from features.config.monitoring import MonitoringConfig
from features.config.training import TrainingConfig
from features.pit.build import build_scoring_set
from features.pit.labels import labels_at
from training.batch_score import read_predictions, scoring_dates
from training.core.bundle import ModelBundle, json_safe
from training.core.scoring import score
from training.core.staleness import staleness
from training.metrics import ece_interval, risk_metrics
from training.payment_date import censored_coverage
from training.slices import slice_values
from training.splits import add_targets

_DAY = pd.Timedelta(days=1)
PREDICTION_DRIFT = ("p_late", "days_to_clear_p50")


# ------------------------------------------------------------------ history -----------------
def load_history(scores: str | Path, until=None) -> pd.DataFrame:
    """Every prediction table in the folder `scores` (up to `until`), one frame, oldest first."""
    frames = []
    for d in scoring_dates(scores):
        if until is not None and d > pd.Timestamp(until):
            continue
        df = read_predictions(Path(scores) / f"predictions_{d:%Y-%m-%d}.parquet")
        df["as_of"] = pd.Timestamp(d)
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"no prediction tables (predictions_*.parquet) in {scores}: run "
                                "`paydelay score` first")
    out = pd.concat(frames, ignore_index=True)
    out.attrs["scoring"] = frames[-1].attrs.get("scoring", {})
    return out


# ------------------------------------------------------------------ realised ----------------
def _monitor_config(bundle: ModelBundle) -> PaydelayConfig:
    """The model's own feature settings and payment horizon, with scoring rows ("now") used."""
    horizon = ((bundle.config or {}).get("training") or {}).get("payment_horizon_days", 120)
    return PaydelayConfig(features=bundle.contract.feature_config,
                          training=TrainingConfig(snapshot_kinds=("now",),
                                                  payment_horizon_days=int(horizon)))


def with_outcomes(history: pd.DataFrame, events: pd.DataFrame, bundle: ModelBundle,
                  now) -> pd.DataFrame:
    """The history with labels as known at `now` and the maturity targets of training."""
    now = pd.Timestamp(now)
    snaps = pd.DataFrame({"invoice_id": history["invoice_id"].astype(str),
                          "snapshot_time": pd.to_datetime(history["snapshot_time"])})
    labels = labels_at(events, snaps, bundle.contract.feature_config, now)
    frame = history.reset_index(drop=True).copy()
    for col in labels.columns:
        frame[col] = labels[col].to_numpy()
    frame["snapshot_kind"] = "now"
    return add_targets(frame, now, _monitor_config(bundle))


def auc_interval(y, p, groups, n_boot: int = 200, level: float = 0.9,
                 seed: int = 0) -> tuple[float, float]:
    """Bootstrap interval of ROC-AUC resampling groups (invoices), as ece_interval does."""
    y = np.asarray(y, dtype="float64")
    p = np.asarray(p, dtype="float64")
    codes, uniques = pd.factorize(np.asarray(groups))
    if len(y) == 0 or y.min() == y.max():
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, len(uniques), len(uniques)),
                        minlength=len(uniques))[codes]
        yw = y[w > 0]
        if yw.min() == yw.max():
            continue
        aucs.append(roc_auc_score(y, p, sample_weight=w))
    if not aucs:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    lo, hi = np.quantile(aucs, [tail, 1 - tail])
    return float(lo), float(hi)


def _quality(frame: pd.DataFrame, now: pd.Timestamp, n_bins: int, horizon: float,
             seed: int, intervals: bool = True) -> dict:
    """Realised figures of one set of scored rows (targets already added)."""
    used = frame["risk_used"].to_numpy(dtype=bool)
    y = frame["target_late"].to_numpy(dtype="float64")[used]
    p = frame["p_late"].to_numpy(dtype="float64")[used]
    out: dict = {"n_rows": int(len(frame)), "n_decided": int(used.sum())}
    if used.any():
        m = risk_metrics(y, p, n_bins)
        out.update({k: m[k] for k in ("late_rate", "roc_auc", "brier", "ece")})
        out["mean_p_late"] = float(p.mean())
        out["calibration_gap"] = out["late_rate"] - out["mean_p_late"]
        if intervals:
            g = frame["invoice_id"].to_numpy()[used]
            out["ece_lo"], out["ece_hi"] = ece_interval(y, p, g, n_bins, seed=seed)
            out["auc_lo"], out["auc_hi"] = auc_interval(y, p, g, seed=seed)
    pay = frame["payment_used"].to_numpy(dtype=bool)
    out["n_payment"] = int(pay.sum())
    if pay.any():
        p50 = np.minimum(frame["days_to_clear_p50"].to_numpy(dtype="float64"), horizon)
        target = frame["target_days_to_clear"].to_numpy(dtype="float64")
        out["mae_days"] = float(np.mean(np.abs(p50[pay] - target[pay])))
    window = ((now - pd.to_datetime(frame["snapshot_time"])) / _DAY).to_numpy(dtype="float64")
    cleared = frame["label_days_to_clear"].where(~frame["label_written_off"].astype(bool))
    # only rows watched for the whole payment horizon: a recent date's decidable rows are the
    # ones with short intervals, whose coverage is not the model's
    cov = censored_coverage(frame["days_to_clear_p10"].to_numpy()[pay],
                            frame["days_to_clear_p90"].to_numpy()[pay],
                            cleared.to_numpy(dtype="float64")[pay], window[pay])
    out["coverage_p10_p90"], out["n_coverage"] = cov["coverage_p10_p90"], cov["n_coverage"]
    return out


# ------------------------------------------------------------------ estimated ---------------
def expected_auc(p) -> float:
    """CBPE's expected ROC-AUC of calibrated probabilities: at each threshold the expected true
    positives are sum(p) and false positives sum(1 - p) over the rows at or above it."""
    p = np.sort(np.asarray(p, dtype="float64"))[::-1]
    if len(p) < 2:
        return float("nan")
    # group ties so a threshold takes all rows of one value at once (trapezoid over ties)
    values, starts = np.unique(-p, return_index=True)
    tp = np.add.reduceat(p, starts)
    fp = np.add.reduceat(1 - p, starts)
    P, N = tp.sum(), fp.sum()
    if P <= 0 or N <= 0:
        return float("nan")
    tpr = np.concatenate([[0.0], np.cumsum(tp) / P])
    fpr = np.concatenate([[0.0], np.cumsum(fp) / N])
    return float(np.trapezoid(tpr, fpr))


def expected_ece(p, n_bins: int = 10, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of labels drawn from p itself: what a perfectly calibrated model shows on this
    many rows (the noise floor of the realised ECE)."""
    p = np.asarray(p, dtype="float64")
    if not len(p):
        return float("nan")
    rng = np.random.default_rng(seed)
    bins = np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)  # metrics' uniform bins
    onehot = np.zeros((len(p), n_bins))
    onehot[np.arange(len(p)), bins] = 1.0
    y = (rng.random((draws, len(p))) < p).astype("float64")
    gaps = np.abs((p - y) @ onehot).sum(axis=1) / len(p)  # per draw: sum_bins |sum(p - y)| / n
    return float(gaps.mean())


# ------------------------------------------------------------------ drift -------------------
def psi(reference, current, bins: int = 10, categorical: bool = False,
        floor: float = 1e-4) -> float:
    """Population stability index of `current` against `reference` (module doc)."""
    ref = pd.Series(reference)
    cur = pd.Series(current)
    if categorical or ref.dtype == object or isinstance(ref.dtype, pd.CategoricalDtype) \
            or ref.dtype == bool or pd.api.types.is_string_dtype(ref.dtype):
        r = ref.astype("str").where(ref.notna(), "<missing>")
        c = cur.astype("str").where(cur.notna(), "<missing>")
        cats = sorted(set(r) | set(c))
        rp = r.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
        cp = c.value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    else:
        rv = ref.astype("float64").to_numpy()
        cv = cur.astype("float64").to_numpy()
        finite = rv[np.isfinite(rv)]
        edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) \
            if len(finite) else np.array([])

        def hist(v: np.ndarray) -> np.ndarray:
            ok = np.isfinite(v)
            counts = np.bincount(np.searchsorted(edges, v[ok], side="right"),
                                 minlength=len(edges) + 1).astype("float64")
            counts = np.append(counts, (~ok).sum())
            return counts / max(len(v), 1)

        rp, cp = hist(rv), hist(cv)
    rp, cp = np.maximum(rp, floor), np.maximum(cp, floor)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def reference_rows(events: pd.DataFrame, master: pd.DataFrame | None, bundle: ModelBundle,
                   cadence_days: int = 7, max_dates: int = 13) -> tuple[pd.DataFrame, str]:
    """Open items on weekly dates of the model's holdout window, scored; and their name."""
    w = bundle.training_window or {}
    lo = pd.Timestamp(w.get("calibration_end")) if w.get("calibration_end") else None
    hi = pd.Timestamp(w.get("test_end")) if w.get("test_end") else None
    if lo is None or hi is None:
        return pd.DataFrame(), "none (the model records no holdout window)"
    dates = list(pd.date_range(lo + cadence_days * _DAY, hi, freq=f"{cadence_days}D"))
    if len(dates) > max_dates:
        dates = dates[-max_dates:]
    frames = []
    for d in dates:
        rows = build_scoring_set(events, master, bundle.contract.feature_config, d)
        if len(rows):
            frames.append(rows.join(score(bundle, rows)).copy().assign(as_of=d))
    if not frames:
        return pd.DataFrame(), f"none (no open item in the holdout window {lo:%Y-%m-%d}..)"
    ref = pd.concat(frames, ignore_index=True)
    name = (f"open items on {len(frames)} weekly dates {dates[0]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d} "
            f"of the model's holdout window ({len(ref)} rows, rebuilt point in time)")
    return ref, name


def _posted(events: pd.DataFrame, lo: pd.Timestamp, hi: pd.Timestamp,
            eval_cfg: EvaluationConfig) -> pd.DataFrame:
    posted = events[(events["activity"].astype(str) == "invoice_posted")
                    & (events["event_time"] > lo) & (events["event_time"] <= hi)]
    posted = posted.drop_duplicates("invoice_id").copy()
    posted["open_amount"] = posted["amount"]
    posted["amount_band"] = slice_values(posted, "amount_band", eval_cfg).astype(str)
    return posted


def exempt(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a feature is exempt from drift alarms ("prefix*" patterns match prefixes)."""
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in patterns)


def drift_tables(reference: pd.DataFrame, current: pd.DataFrame, bundle: ModelBundle,
                 cfg: MonitoringConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSI per feature and per prediction column: (features, predictions)."""
    feats = bundle.contract.features
    # one row per invoice (its latest week): an item open for six weeks is one draw, not six
    reference = reference.drop_duplicates("invoice_id", keep="last")
    current = current.drop_duplicates("invoice_id", keep="last")
    rec = []
    for name in feats.names:
        if name not in reference or name not in current:
            continue
        value = psi(reference[name], current[name], cfg.psi_bins,
                    categorical=feats.kind(name) != "numeric")
        rec.append({"feature": name, "kind": feats.kind(name), "psi": value,
                    "alarmed": not exempt(name, cfg.drift_exempt)})
    ftab = pd.DataFrame(rec).sort_values("psi", ascending=False, ignore_index=True)
    ptab = pd.DataFrame([{"output": c, "psi": psi(reference[c], current[c], cfg.psi_bins),
                          "reference_mean": float(reference[c].mean()),
                          "current_mean": float(current[c].mean())}
                         for c in PREDICTION_DRIFT if c in reference and c in current])
    return ftab, ptab


def mix_table(events: pd.DataFrame, ref_window: tuple, cur_window: tuple,
              cfg: MonitoringConfig, eval_cfg: EvaluationConfig) -> pd.DataFrame:
    ref = _posted(events, *ref_window, eval_cfg)
    cur = _posted(events, *cur_window, eval_cfg)
    rec = []
    for col in cfg.mix_columns:
        if col not in ref or col not in cur or ref.empty or cur.empty:
            continue
        r = ref[col].astype(str).value_counts(normalize=True)
        c = cur[col].astype(str).value_counts(normalize=True)
        moved = (c.reindex(r.index.union(c.index), fill_value=0)
                 - r.reindex(r.index.union(c.index), fill_value=0))
        top = moved.abs().idxmax()
        rec.append({"column": col, "psi": psi(ref[col], cur[col], categorical=True),
                    "n_reference": len(ref), "n_current": len(cur),
                    "largest_move": f"{top}: {r.get(top, 0):.1%} -> {c.get(top, 0):.1%}"})
    return pd.DataFrame(rec)


# ------------------------------------------------------------------ the report --------------
@dataclass
class Alarm:
    rule: str
    message: str

    def line(self) -> str:
        return f"{self.rule}: {self.message}"


@dataclass
class MonitorReport:
    now: pd.Timestamp
    model: dict
    holdout: dict
    realised: pd.DataFrame  # one row per scoring date
    pooled: dict  # the latest pooled matured window
    slices: pd.DataFrame
    drift_features: pd.DataFrame
    drift_predictions: pd.DataFrame
    mix: pd.DataFrame
    staleness: dict
    reference: str
    current: str
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.alarms

    def exit_reason(self) -> str:
        if self.ok:
            return "ok: no monitoring threshold crossed"
        more = f" (+{len(self.alarms) - 1} more)" if len(self.alarms) > 1 else ""
        return f"ALARM {self.alarms[0].line()}{more}"

    def figures(self) -> dict:
        """Headline figures as one flat dict (MLflow metrics, the CLI table)."""
        out = {f"realised.{k}": v for k, v in self.pooled.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        out |= {f"holdout.{k}": v for k, v in self.holdout.items() if isinstance(v, float)}
        if not self.realised.empty:
            last = self.realised.iloc[-1]
            out["estimated.roc_auc_latest"] = float(last["est_roc_auc"])
            out["estimated.roc_auc_raw_latest"] = float(last["est_roc_auc_raw"])
        if not self.drift_features.empty:
            al = self.drift_features[self.drift_features["alarmed"]]
            out["drift.max_feature_psi"] = float(al["psi"].max()) if len(al) else 0.0
        for _, r in self.drift_predictions.iterrows():
            out[f"drift.psi_{r['output']}"] = float(r["psi"])
        for _, r in self.mix.iterrows():
            out[f"drift.mix_psi_{r['column']}"] = float(r["psi"])
        out |= {f"staleness.{k}": v for k, v in self.staleness.items()
                if isinstance(v, float)}
        out["alarms"] = len(self.alarms)
        return out

    def to_dict(self) -> dict:
        return json_safe({
            "now": self.now.isoformat(), "model": self.model, "holdout": self.holdout,
            "pooled": self.pooled, "staleness": self.staleness, "reference": self.reference,
            "current": self.current, "alarms": [a.line() for a in self.alarms],
            "realised": json.loads(self.realised.to_json(orient="records", date_format="iso")),
        })


def _holdout(bundle: ModelBundle) -> dict:
    m = bundle.metrics or {}
    risk, pay, cov = m.get("risk", {}), m.get("payment", {}), m.get("interval", {})
    return {k: float(v) for k, v in {
        "roc_auc": risk.get("roc_auc"), "ece": risk.get("ece"), "ece_lo": risk.get("ece_lo"),
        "ece_hi": risk.get("ece_hi"), "brier": risk.get("brier"),
        "mae_days": pay.get("mae_days"), "coverage_p10_p90": cov.get("coverage_p10_p90"),
    }.items() if v is not None}


def _slices(frame: pd.DataFrame, cfg: MonitoringConfig, eval_cfg: EvaluationConfig,
            n_bins: int) -> pd.DataFrame:
    used = frame["risk_used"].to_numpy(dtype=bool)
    rec = []
    for col in cfg.slice_columns:
        try:
            values = slice_values(frame, col, eval_cfg).astype("str")
        except KeyError:
            continue
        for value in sorted(values[used].dropna().unique()):
            sel = used & (values == value).to_numpy()
            n_customers = int(frame.loc[sel, "customer_id"].nunique())
            m = risk_metrics(frame["target_late"].to_numpy(dtype="float64")[sel],
                             frame["p_late"].to_numpy(dtype="float64")[sel], n_bins)
            mean_p = float(frame["p_late"].to_numpy(dtype="float64")[sel].mean())
            rec.append({"slice": col, "value": value, "n": int(sel.sum()),
                        "late_rate": m["late_rate"], "mean_p_late": mean_p,
                        "calibration_gap": m["late_rate"] - mean_p,
                        "roc_auc": m["roc_auc"], "ece": m["ece"],
                        "customers": n_customers,
                        "small_sample": int(sel.sum()) < cfg.min_rows_slice
                        or n_customers < cfg.min_slice_customers})
    return pd.DataFrame(rec)


def _span(dates) -> str:
    dates = sorted(dates)
    return f"{dates[0]:%Y-%m-%d}..{dates[-1]:%Y-%m-%d}" if len(dates) else "-"


def run_monitor(history: pd.DataFrame, events: pd.DataFrame, master: pd.DataFrame | None,
                bundle: ModelBundle, now=None, *, config: MonitoringConfig | None = None,
                evaluation: EvaluationConfig | None = None, store_as_of=None,
                seed: int = 0, reference: tuple[pd.DataFrame, str] | None = None
                ) -> MonitorReport:
    """Every check of the module doc on one scoring history; thresholds from `config`.

    now: the instant the outcomes are read at (default: the newest event of the ledger).
    reference: (rows, name) to compare against instead of the holdout window's open items.
    """
    cfg = config or MonitoringConfig()
    ev_cfg = evaluation or EvaluationConfig()
    n_bins = ev_cfg.ece_bins
    newest = pd.Timestamp(events["event_time"].max())
    now = pd.Timestamp(now) if now is not None else newest
    history = history[pd.to_datetime(history["as_of"]) <= now]
    horizon = float(_monitor_config(bundle).training.payment_horizon_days)
    frame = with_outcomes(history, events, bundle, now)
    dates = sorted(pd.to_datetime(frame["as_of"]).unique())

    # drift reference first: its matured labels measure the estimate's own bias
    ref, ref_name = reference if reference is not None else reference_rows(
        events, master, bundle, cfg.cadence_days)
    bias, bias_note = 0.0, "none (no matured reference rows)"
    if not ref.empty:
        ref_out = with_outcomes(ref, events, bundle, now)
        u = ref_out["risk_used"].to_numpy(dtype=bool)
        y_ref = ref_out["target_late"].to_numpy(dtype="float64")[u]
        if u.sum() >= cfg.min_rows_realised and 0 < y_ref.mean() < 1:
            real = roc_auc_score(y_ref, ref_out["p_late"].to_numpy(dtype="float64")[u])
            bias = float(real - expected_auc(ref_out["p_late"].to_numpy(dtype="float64")))
            bias_note = (f"{bias:+.3f}: realised {real:.3f} - expected ROC-AUC on the drift "
                         "reference rows")

    # 1 + 2: realised and estimated, per scoring date
    per_date = []
    for d in dates:
        f = frame[pd.to_datetime(frame["as_of"]) == d]
        rec = {"as_of": pd.Timestamp(d), **_quality(f, now, n_bins, horizon, seed, False)}
        p_all = f["p_late"].to_numpy(dtype="float64")
        rec["est_roc_auc_raw"] = expected_auc(p_all)
        rec["est_roc_auc"] = rec["est_roc_auc_raw"] + bias
        rec["est_mean_p_late"] = float(p_all.mean()) if len(p_all) else float("nan")
        used = f["risk_used"].to_numpy(dtype=bool)
        rec["calibrated_ece_floor"] = expected_ece(p_all[used], n_bins,
                                                   min(cfg.estimate_draws, 100), seed)
        per_date.append(rec)
    realised = pd.DataFrame(per_date)
    realised["decided_share"] = realised["n_decided"] / realised["n_rows"].clip(lower=1)
    # judged only once nearly every item's flag is decided: a partly matured date holds only
    # the items due soonest, another population than the holdout's
    judged = realised[(realised["n_decided"] >= cfg.min_rows_realised)
                      & (realised["decided_share"] >= cfg.min_decided_share)] \
        if len(realised) else realised
    pool_dates = list(judged["as_of"].iloc[-cfg.realised_pool_dates:]) if len(judged) else []
    pooled_rows = frame[pd.to_datetime(frame["as_of"]).isin(pool_dates)]
    pooled = {"dates": _span(pool_dates), "n_dates": len(pool_dates),
              "estimate_bias_correction": bias_note}
    if len(pool_dates):
        pooled |= _quality(pooled_rows, now, n_bins, horizon, seed, True)
        p_used = pooled_rows.loc[pooled_rows["risk_used"], "p_late"].to_numpy(dtype="float64")
        pooled["calibrated_ece_floor"] = expected_ece(p_used, n_bins, cfg.estimate_draws, seed)
    slices = _slices(pooled_rows, cfg, ev_cfg, n_bins) if len(pool_dates) else pd.DataFrame()

    # 3: drift
    cur_dates = dates[-cfg.drift_window_dates:]
    current = frame[pd.to_datetime(frame["as_of"]).isin(cur_dates)]
    if ref.empty:  # fall back to the first scoring dates of the history
        first = dates[:cfg.drift_window_dates]
        ref = frame[pd.to_datetime(frame["as_of"]).isin(first)]
        ref_name = f"the first {len(first)} scoring dates {_span(first)} ({len(ref)} rows)"
    cur_name = f"the latest {len(cur_dates)} scoring dates {_span(cur_dates)} ({len(current)} rows)"
    ftab, ptab = drift_tables(ref, current, bundle, cfg)
    ref_dates = pd.to_datetime(ref["as_of"]) if "as_of" in ref else pd.Series(dtype="M8[ns]")
    ref_window = (ref_dates.min() - cfg.cadence_days * _DAY, ref_dates.max())
    cur_window = (pd.Timestamp(cur_dates[0]) - cfg.cadence_days * _DAY, pd.Timestamp(cur_dates[-1]))
    mix = mix_table(events, ref_window, cur_window, cfg, ev_cfg)

    # 4: staleness
    stale = staleness(bundle.training_window, store_as_of, newest, now)
    stale["last_scoring"] = pd.Timestamp(dates[-1]).isoformat() if dates else None
    stale["last_scoring_age_days"] = float((now - pd.Timestamp(dates[-1])) / _DAY) if dates \
        else None

    holdout = _holdout(bundle)
    report = MonitorReport(now, dict(bundle.source or {}), holdout, realised, pooled, slices,
                           ftab, ptab, mix, stale, ref_name, cur_name)
    report.alarms = check_thresholds(report, cfg, len(ref), len(current))
    return report


def check_thresholds(r: MonitorReport, cfg: MonitoringConfig, n_ref: int = 10**9,
                     n_cur: int = 10**9) -> list[Alarm]:
    """The crossed thresholds, each as one line naming the figure, its limit and its window."""
    alarms: list[Alarm] = []
    p, h = r.pooled, r.holdout
    win = f"scoring dates {p.get('dates')}"
    if p.get("n_decided", 0) >= cfg.min_rows_realised:
        if "roc_auc" in h and np.isfinite(p.get("roc_auc", np.nan)):
            limit = h["roc_auc"] - cfg.max_auc_drop
            # the whole bootstrap interval must lie below the limit: a few hundred rows are noisy
            if p["roc_auc"] < limit and p.get("auc_hi", p["roc_auc"]) < limit:
                alarms.append(Alarm("realised_roc_auc", f"realised ROC-AUC {p['roc_auc']:.3f} "
                                    f"(90% interval to {p['auc_hi']:.3f}) < holdout "
                                    f"{h['roc_auc']:.3f} - {cfg.max_auc_drop} on {win}"))
        if p.get("ece", 0) > cfg.max_ece and p.get("ece_lo", p.get("ece", 0)) > cfg.max_ece:
            alarms.append(Alarm("realised_ece", f"realised ECE {p['ece']:.3f} (90% interval "
                                f"from {p['ece_lo']:.3f}) > {cfg.max_ece} on {win}"))
        gap = p.get("calibration_gap", 0.0)
        if abs(gap) > cfg.max_calibration_gap:
            alarms.append(Alarm("realised_calibration", f"observed late rate "
                                f"{p['late_rate']:.2f} vs mean P(late) {p['mean_p_late']:.2f} "
                                f"(gap {gap:+.2f}, limit {cfg.max_calibration_gap}) on {win}"))
    sl = r.slices
    if len(sl):
        bad = sl[(~sl["small_sample"]) & (sl["calibration_gap"].abs() > cfg.max_slice_gap)]
        for _, row in bad.iterrows():
            alarms.append(Alarm("slice_calibration", f"{row['slice']}={row['value']}: observed "
                                f"late rate {row['late_rate']:.2f} vs mean P(late) "
                                f"{row['mean_p_late']:.2f} (gap {row['calibration_gap']:+.2f}, "
                                f"limit {cfg.max_slice_gap}, n={row['n']}) on {win}"))
    if p.get("n_payment", 0) >= cfg.min_rows_realised and "mae_days" in h \
            and p.get("mae_days", 0) > cfg.max_mae_ratio * h["mae_days"]:
        alarms.append(Alarm("realised_mae", f"payment-date MAE {p['mae_days']:.1f} d > "
                            f"{cfg.max_mae_ratio} x holdout {h['mae_days']:.1f} d on {win}"))
    if p.get("n_coverage", 0) >= cfg.min_rows_realised \
            and p.get("coverage_p10_p90", 1.0) < cfg.min_coverage:
        alarms.append(Alarm("realised_coverage", f"P10-P90 coverage "
                            f"{p['coverage_p10_p90']:.2f} < {cfg.min_coverage} on {win}"))
    if len(r.realised) and "roc_auc" in h:
        est = float(r.realised["est_roc_auc"].iloc[-1])
        if np.isfinite(est) and est < h["roc_auc"] - cfg.max_estimated_auc_drop:
            alarms.append(Alarm("estimated_roc_auc", f"estimated ROC-AUC {est:.3f} (before "
                                f"labels) < holdout {h['roc_auc']:.3f} - "
                                f"{cfg.max_estimated_auc_drop}"))
    if min(n_ref, n_cur) >= cfg.min_rows_drift:
        ft = r.drift_features
        watched = ft[ft["alarmed"]] if len(ft) else ft
        hot = watched[watched["psi"] > cfg.feature_psi_alert] if len(ft) else ft
        share = len(hot) / max(len(watched), 1)
        if share > cfg.feature_drift_share:
            names = ", ".join(f"{f} {v:.2f}" for f, v in zip(hot["feature"][:5], hot["psi"][:5]))
            alarms.append(Alarm("feature_drift", f"{len(hot)} of {len(watched)} features "
                                f"({share:.0%} > {cfg.feature_drift_share:.0%}) with PSI > "
                                f"{cfg.feature_psi_alert}, e.g. {names} ({r.current} vs "
                                f"{r.reference})"))
        for _, row in r.drift_predictions.iterrows():
            if row["output"] in cfg.prediction_drift_alarmed \
                    and row["psi"] > cfg.prediction_psi_alert:
                alarms.append(Alarm("prediction_drift", f"PSI of {row['output']} "
                                    f"{row['psi']:.2f} > {cfg.prediction_psi_alert} (mean "
                                    f"{row['reference_mean']:.3g} -> {row['current_mean']:.3g})"))
    for _, row in r.mix.iterrows():
        if row["psi"] > cfg.mix_psi_alert and min(row["n_reference"], row["n_current"]) >= 30:
            alarms.append(Alarm("mix_drift", f"ledger mix of {row['column']} PSI "
                                f"{row['psi']:.2f} > {cfg.mix_psi_alert} ({row['largest_move']})"))
    s = r.staleness
    for key, limit, rule in (("model_age_days", cfg.max_model_age_days, "model_age"),
                             ("store_age_days", cfg.max_store_age_days, "store_age"),
                             ("newest_event_age_days", cfg.max_event_age_days, "event_age"),
                             ("last_scoring_age_days", 2 * cfg.cadence_days, "scoring_age")):
        v = s.get(key)
        if v is not None and v > limit:
            alarms.append(Alarm(rule, f"{key.replace('_', ' ')} {v:.0f} > {limit}"))
    return alarms


# ------------------------------------------------------------------ output ------------------
def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def plots(report: MonitorReport) -> dict[str, str]:
    """Base64 PNGs: realised vs holdout vs estimated over scoring dates, PSI, staleness."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    out = {}
    r, h = report.realised, report.holdout
    if len(r):
        fig = Figure(figsize=(9, 3.6))
        a1, a2 = fig.subplots(1, 2)
        a1.plot(r["as_of"], r["roc_auc"], marker="o", label="realised")
        a1.plot(r["as_of"], r["est_roc_auc"], ls="--", label="estimated (CBPE)")
        if "roc_auc" in h:
            a1.axhline(h["roc_auc"], color="grey", lw=1, label="holdout")
        a1.set_title("ROC-AUC per scoring date")
        a1.legend(fontsize=7)
        a2.plot(r["as_of"], r["ece"], marker="o", label="realised")
        a2.plot(r["as_of"], r["calibrated_ece_floor"], ls="--", label="calibrated noise floor")
        if "ece" in h:
            a2.axhline(h["ece"], color="grey", lw=1, label="holdout")
        a2.set_title("ECE per scoring date")
        a2.legend(fontsize=7)
        for ax in (a1, a2):
            ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        out["quality"] = _png(fig)
    ft = report.drift_features
    if len(ft):
        top = ft.head(15)[::-1]
        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        ax.barh(top["feature"], top["psi"],
                color=["tab:red" if a else "tab:grey" for a in top["alarmed"]])
        ax.set_title("PSI per feature (grey: exempt, calendar / time-growing)")
        ax.tick_params(axis="y", labelsize=7)
        out["drift"] = _png(fig)
    return out


def _f4(v) -> str:
    return f"{v:.4f}"


def to_html(report: MonitorReport) -> str:
    imgs = plots(report)
    parts = [f"<html><head><meta charset='utf-8'><title>paydelay monitor {report.now:%Y-%m-%d}"
             "</title></head><body style='font-family:sans-serif'>",
             f"<h1>paydelay monitor, {report.now:%Y-%m-%d %H:%M}</h1>",
             f"<p><b>{report.exit_reason()}</b></p>"]
    if report.alarms:
        parts.append("<ul>" + "".join(f"<li>{a.line()}</li>" for a in report.alarms) + "</ul>")
    parts.append(f"<p>Model: {report.model}</p><p>Drift reference: {report.reference}<br>"
                 f"Drift current: {report.current}</p>")
    figs = pd.DataFrame([report.figures()]).T.rename(columns={0: "value"})
    parts += ["<h2>Figures</h2>", figs.to_html(float_format=_f4)]
    for key, title in (("quality", "Quality"), ("drift", "Drift")):
        if key in imgs:
            parts.append(f"<h2>{title}</h2><img src='data:image/png;base64,{imgs[key]}'>")
    for title, df in (("Realised and estimated quality per scoring date", report.realised),
                      ("Slices (pooled window)", report.slices),
                      ("Feature drift", report.drift_features),
                      ("Prediction drift", report.drift_predictions),
                      ("Ledger mix", report.mix),
                      ("Staleness", pd.DataFrame([report.staleness]).T)):
        parts += [f"<h2>{title}</h2>", df.to_html(float_format=_f4) if len(df) else "-"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: MonitorReport, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.html", out / "monitor.json", out / "realised.csv",
             out / "slices.csv", out / "drift_features.csv", out / "drift_predictions.csv",
             out / "mix.csv"]
    files[0].write_text(to_html(report))
    files[1].write_text(json.dumps(report.to_dict(), indent=1))
    report.realised.to_csv(files[2], index=False)
    report.slices.to_csv(files[3], index=False)
    report.drift_features.to_csv(files[4], index=False)
    report.drift_predictions.to_csv(files[5], index=False)
    report.mix.to_csv(files[6], index=False)
    return files


def log_report(report: MonitorReport, out_dir: str | Path, tracking_uri: str | None = None,
               config: MonitoringConfig | None = None) -> str:
    """Write the report and log it (figures as metrics, alarms as tags) to MLflow."""
    import mlflow  # noqa: PLC0415

    from training import registry  # noqa: PLC0415

    cfg = config or MonitoringConfig()
    files = write_report(report, out_dir)
    with registry.run(cfg.monitoring_experiment, f"monitor-{report.now:%Y-%m-%d}",
                      tracking_uri) as active:
        registry.log_metrics(report.figures())
        mlflow.set_tags({"status": "ok" if report.ok else "alarm",
                         "exit_reason": report.exit_reason()[:5000],
                         "model_version": str(report.model.get("version")),
                         "registered_model": str(report.model.get("registered_model"))})
        for f in files:
            mlflow.log_artifact(str(f), artifact_path="monitor")
        return active.info.run_id


__all__ = ["Alarm", "MonitorReport", "run_monitor", "check_thresholds", "load_history",
           "with_outcomes", "expected_auc", "expected_ece", "psi", "auc_interval",
           "reference_rows", "write_report", "log_report", "to_html"]


def monitor_ledger_dir(ledger_dir: str | Path, *, scores: str | Path | None = None,
                       now=None, ledger: str | None = None, out_dir: str | Path | None = None,
                       config=None, tracking_uri: str | None = None,
                       log: bool = True) -> tuple[MonitorReport, Path]:
    """What `paydelay monitor` does: the scoring history of the ledger, the model version that
    wrote its latest table (its training figures are the reference), that version's customer
    store, every check, the report written (and logged to MLflow unless log=False)."""
    from features.ingest.ledger_files import read_ledger_dir  # noqa: PLC0415
    from training import registry  # noqa: PLC0415
    from training.batch_score import scores_dir  # noqa: PLC0415

    cfg = config or PaydelayConfig()
    mon = getattr(cfg, "monitoring", None) or MonitoringConfig()
    files = read_ledger_dir(ledger_dir)
    name = ledger or Path(ledger_dir).resolve().name
    folder = Path(scores) if scores else scores_dir(name)
    history = load_history(folder, now)
    meta = history.attrs.get("scoring", {})
    version = meta.get("model_version") or cfg.serving.model_ref
    bundle = registry.load_bundle(version, cfg.training.registered_model_name, tracking_uri,
                                  ledger=name)
    run_id = (bundle.source or {}).get("run_id")
    # training must not import serving: the store's as-of is read from its JSON artifact here
    store_as_of = _store_as_of(run_id, tracking_uri) if run_id else None
    report = run_monitor(history, files.events, files.master, bundle, now, config=mon,
                         evaluation=cfg.evaluation, store_as_of=store_as_of, seed=cfg.seed)
    out = Path(out_dir) if out_dir else folder.parent / "monitor" / f"{report.now:%Y-%m-%d}"
    if log:
        log_report(report, out, tracking_uri, mon)
    else:
        write_report(report, out)
    return report, out


def _store_as_of(run_id: str, tracking_uri: str | None):
    """The as-of of the customer store logged with a training run (customer_store/store.json),
    None when the run logged none. The run is read from the store training.registry resolves
    (tracking_uri, else the environment), through that store's own client."""
    from training import registry  # noqa: PLC0415

    client = registry.configure(tracking_uri)
    try:
        local = client.download_artifacts(run_id, "customer_store/store.json")
    except Exception:  # no store logged with this run
        return None
    return json.loads(Path(local).read_text()).get("as_of")
