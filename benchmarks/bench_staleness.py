"""Staleness measured: train at a cut-off, score the following 12 months weekly, plot ROC-AUC and
ECE of the late-payment risk against model age.

    .venv/bin/python benchmarks/bench_staleness.py [--quick] [--out DIR]

Two ledgers:
- simulated (config defaults but 300 customers / 10,000 invoices over 30 months, seed 42; the
  --quick run: 120 / 3,600 over 26 months): trained on the events up to month 14, scored weekly
  for the 12 months after it, outcomes read at the end of the ledger;
- the IBM accounts-receivable sample (data/external/ibm_ar; every invoice settled): trained on
  the events up to 2012-12-31, scored weekly through 2013.

Each scoring date is the open book of that day, built point in time (training.batch_score
.score_frame, what `paydelay score` writes); its outcomes and maturity rules are the monitor's
(training.monitor.with_outcomes: only items whose late flag is decided at the ledger end). Dates
are pooled by month of model age (months since the training cut-off). Output: staleness.json
(per month: rows, ROC-AUC, ECE, late rate, mean P(late)) and staleness.png, in --out
(default data/processed/bench_staleness). The default retrain cadence and the model-age limit
of features/config/monitoring.py are read off this curve (README, "The running loop").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from features import paths  # noqa: E402
from features.config import PaydelayConfig  # noqa: E402
from features.pit.build import build_training_set  # noqa: E402
from training.batch_score import score_frame  # noqa: E402
from training.metrics import risk_metrics  # noqa: E402
from training.monitor import with_outcomes  # noqa: E402
from training.pipeline import train  # noqa: E402

_DAY = pd.Timedelta(days=1)


def curve(name: str, events: pd.DataFrame, master: pd.DataFrame, cfg: PaydelayConfig,
          cutoff: pd.Timestamp, months: int = 12, caveats=()) -> dict:
    t0 = time.perf_counter()
    rows = build_training_set(events, master, cfg.features, cfg.seed, cutoff)
    result = train(rows, cfg, cfg.seed, register=False, with_report=False, caveats=caveats)
    bundle = result.bundle
    train_s = time.perf_counter() - t0
    end = pd.Timestamp(events["event_time"].max())
    dates = pd.date_range(cutoff, cutoff + pd.DateOffset(months=months), freq="7D")
    frames = [score_frame(events, master, bundle, d).assign(as_of=d) for d in dates]
    history = pd.concat([f for f in frames if len(f)], ignore_index=True)
    scored = with_outcomes(history, events, bundle, end)
    scored["age_month"] = np.floor((scored["as_of"] - cutoff) / _DAY / 30.44).astype(int) + 1
    per_month = []
    for month, f in scored.groupby("age_month"):
        used = f["risk_used"].to_numpy(dtype=bool)
        y = f["target_late"].to_numpy(dtype="float64")[used]
        p = f["p_late"].to_numpy(dtype="float64")[used]
        m = risk_metrics(y, p, cfg.evaluation.ece_bins) if used.any() else {}
        per_month.append({"age_month": int(month), "rows": int(used.sum()),
                          "decided_share": float(used.mean()),
                          "roc_auc": m.get("roc_auc"), "ece": m.get("ece"),
                          "late_rate": m.get("late_rate"),
                          "mean_p_late": float(p.mean()) if used.any() else None})
    holdout = bundle.metrics.get("risk", {})
    return {"ledger": name, "cutoff": str(cutoff), "fit_end": bundle.training_window.get(
        "fit_end"), "train_seconds": round(train_s, 1),
        "holdout": {k: holdout.get(k) for k in ("roc_auc", "ece", "ece_lo", "ece_hi", "n")},
        "per_month": per_month}


def plot(curves: list[dict], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    a1, a2 = fig.subplots(1, 2)
    for c in curves:
        pm = pd.DataFrame(c["per_month"])
        line = a1.plot(pm["age_month"], pm["roc_auc"], marker="o", label=c["ledger"])[0]
        a1.axhline(c["holdout"]["roc_auc"], color=line.get_color(), ls=":", lw=1)
        a2.plot(pm["age_month"], pm["ece"], marker="o", color=line.get_color(),
                label=c["ledger"])
        a2.axhline(c["holdout"]["ece"], color=line.get_color(), ls=":", lw=1)
    a1.set(title="ROC-AUC vs model age (dotted: holdout)", xlabel="months since cut-off")
    a2.set(title="ECE vs model age (dotted: holdout)", xlabel="months since cut-off")
    a1.legend()
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small simulated world only")
    ap.add_argument("--no-ibm", action="store_true")
    ap.add_argument("--out", type=Path, default=paths.PROCESSED / "bench_staleness")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    from features.simulate.ledger import simulate_ledger

    base = PaydelayConfig()
    size = ({"n_customers": 120, "n_invoices": 3600, "months": 26} if args.quick
            else {"n_customers": 300, "n_invoices": 10_000, "months": 30})
    cfg = PaydelayConfig.model_validate({**base.model_dump(), "simulator": {
        **base.simulator.model_dump(), **size, "oracle_mc_draws": 4}})
    sim = simulate_ledger(cfg.simulator, cfg.seed)
    cutoff = pd.Timestamp(cfg.simulator.start) + pd.DateOffset(months=14)
    curves = [curve("simulated", sim.events, sim.master, cfg, cutoff)]
    if not args.no_ibm and not args.quick:
        from features.ingest.ibm import load_ibm_ar

        ibm = load_ibm_ar()
        curves.append(curve("IBM sample", ibm.events, ibm.master, base,
                            pd.Timestamp("2012-12-31"), caveats=ibm.caveats))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "staleness.json").write_text(json.dumps(curves, indent=1, default=str))
    plot(curves, args.out / "staleness.png")
    for c in curves:
        print(f"\n{c['ledger']}: cut-off {c['cutoff'][:10]}, holdout ROC-AUC "
              f"{c['holdout']['roc_auc']:.3f} ECE {c['holdout']['ece']:.3f}")
        print(pd.DataFrame(c["per_month"]).to_string(index=False, float_format="%.3f"))
    print(f"\nwrote {args.out / 'staleness.json'} and {args.out / 'staleness.png'}")


if __name__ == "__main__":
    main()
