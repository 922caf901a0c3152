"""The canary of the promotion gate: the candidate loaded the way the service loads it, scoring a
sample, before any alias moves.

Decision: the canary lives on the serving side (training never imports serving: import-linter
layers serving > training > features) and goes through both halves of what serving does with a
new model: the bundle is saved and re-loaded from its folder (the format the registry and a
Bento carry, read without pickle), wrapped by `serving.model.from_bundle` (the TreeSHAP
tabulation and the customer store included), and a seeded sample of rows is scored by
`serving.predict.score_rows` - the batch path of the service - with reasons computed for a few
rows. The result must be finite, P(late) in [0, 1], P10 <= P50 <= P90, and equal (to 1e-6) to
the inference core's `training.core.scoring.score` on the candidate as trained: a bundle that
loses a booster or its calibrator on the round trip, or that the serving wrapper cannot explain,
fails here instead of in production. training.gate.canary_passed reads the result.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd

from features.config import PaydelayConfig
from serving.model import from_bundle
from serving.predict import score_rows
from serving.store import CustomerStore
from training.core.bundle import ModelBundle
from training.core.scoring import score

_CHECKED = ("p_late", "days_to_clear_p10", "days_to_clear_p50", "days_to_clear_p90",
            "expected_amount_at_risk")


def run_canary(bundle: ModelBundle, rows: pd.DataFrame, config: PaydelayConfig | None = None,
               store: CustomerStore | None = None, n_rows: int = 200, seed: int = 0) -> dict:
    """{"ok": bool, "detail": one line, "rows": n, "seconds": s} (module doc)."""
    config = config or PaydelayConfig()
    if rows.empty:
        return {"ok": False, "detail": "no rows to score", "rows": 0, "seconds": 0.0}
    sample = rows.sample(min(n_rows, len(rows)), random_state=seed)
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bundle.save(tmp)
            loaded = ModelBundle.load(tmp)
        loaded.source = dict(bundle.source or {})
        model = from_bundle(loaded, store, config)
        served, _ = score_rows(model, sample)
    except Exception as exc:  # the point of a canary: any failure is a refusal, said in one line
        return {"ok": False, "detail": f"the serving path failed: {type(exc).__name__}: {exc}",
                "rows": len(sample), "seconds": time.perf_counter() - t0}
    seconds = time.perf_counter() - t0
    expected = score(bundle, sample)
    problems = []
    for col in _CHECKED:
        if col not in served:
            problems.append(f"{col} missing")
            continue
        v = served[col].to_numpy(dtype="float64")
        if not np.isfinite(v).all():
            problems.append(f"{col}: {int((~np.isfinite(v)).sum())} non-finite")
        diff = np.nanmax(np.abs(v - expected[col].to_numpy(dtype="float64"))) if len(v) else 0
        if diff > 1e-6:
            problems.append(f"{col} differs from the inference core by {diff:.3g}")
    p = served["p_late"].to_numpy(dtype="float64") if "p_late" in served else np.array([])
    if ((p < 0) | (p > 1)).any():
        problems.append("P(late) outside [0, 1]")
    if {"days_to_clear_p10", "days_to_clear_p50", "days_to_clear_p90"} <= set(served):
        q = served[["days_to_clear_p10", "days_to_clear_p50", "days_to_clear_p90"]].to_numpy()
        if (np.diff(q, axis=1) < -1e-9).any():
            problems.append("payment-date quantiles cross")
    ok = not problems
    detail = (f"{len(sample)} rows scored through the serving path in {seconds:.2f} s, equal to "
              "the inference core" if ok else "; ".join(problems))
    return {"ok": ok, "detail": detail, "rows": len(sample), "seconds": seconds}


__all__ = ["run_canary"]
