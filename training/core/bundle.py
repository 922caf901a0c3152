"""`ModelBundle`: everything scoring needs, saved and loaded without pickle.

A bundle is a folder: each LightGBM booster as LightGBM's own model text (`risk.txt`,
`bucket.txt`, `payment_p10.txt` ...) and `bundle.json` with the rest - calibrator knots,
conformal shifts, training categories per categorical feature, feature names and
FEATURE_SET_VERSION, the config and seed used, the training window and headline metrics.
Loading a folder cannot execute code: it parses text and JSON only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from training.payment_date import QUANTILE_KEYS
from training.risk import FeatureSet

BUNDLE_FORMAT = 1
META_FILE = "bundle.json"
RISK_FILE = "risk.txt"
BUCKET_FILE = "bucket.txt"


def _payment_file(key: str) -> str:
    return f"payment_{key}.txt"


@dataclass
class ModelBundle:
    feature_set: FeatureSet
    categories: dict[str, list[str]]
    risk: lgb.Booster
    calibrator: dict
    bucket: lgb.Booster | None
    bucket_prior: list[float]
    quantiles: dict[str, lgb.Booster]
    quantile_shift: dict | None
    risk_class_cutoffs: tuple[float, ...]
    seed: int
    config: dict = field(default_factory=dict)  # PaydelayConfig.model_dump(mode="json")
    training_window: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # where it was loaded from (not saved)

    @property
    def feature_set_version(self) -> str:
        return self.feature_set.version

    def meta(self) -> dict:
        return json_safe({
            "format": BUNDLE_FORMAT,
            "feature_set": self.feature_set.as_dict(),
            "categories": self.categories,
            "calibrator": self.calibrator,
            "bucket_prior": self.bucket_prior,
            "has_bucket_model": self.bucket is not None,
            "quantile_shift": self.quantile_shift,
            "risk_class_cutoffs": list(self.risk_class_cutoffs),
            "seed": self.seed,
            "config": self.config,
            "training_window": self.training_window,
            "metrics": self.metrics,
        })

    def save(self, directory: str | Path) -> list[Path]:
        """Write the folder; returns the files written (risk model first)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files = [d / RISK_FILE]
        self.risk.save_model(files[0])
        if self.bucket is not None:
            files.append(d / BUCKET_FILE)
            self.bucket.save_model(files[-1])
        for key in QUANTILE_KEYS:
            files.append(d / _payment_file(key))
            self.quantiles[key].save_model(files[-1])
        files.append(d / META_FILE)
        files[-1].write_text(json.dumps(self.meta(), indent=1, sort_keys=True))
        return files

    @classmethod
    def load(cls, directory: str | Path, risk_model_path: str | Path | None = None) -> ModelBundle:
        """Read a folder written by `save`; `risk_model_path` overrides where the risk booster is
        (MLflow keeps it as the logged model's own `model.lgb`)."""
        d = Path(directory)
        meta_path = d / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: not a model bundle folder")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"bundle format {meta.get('format')} is not {BUNDLE_FORMAT}")
        risk = lgb.Booster(model_file=str(risk_model_path or d / RISK_FILE))
        bucket = lgb.Booster(model_file=str(d / BUCKET_FILE)) if meta["has_bucket_model"] else None
        quantiles = {k: lgb.Booster(model_file=str(d / _payment_file(k))) for k in QUANTILE_KEYS}
        return cls(
            feature_set=FeatureSet.from_dict(meta["feature_set"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            risk=risk, calibrator=meta["calibrator"], bucket=bucket,
            bucket_prior=list(meta["bucket_prior"]), quantiles=quantiles,
            quantile_shift=meta["quantile_shift"],
            risk_class_cutoffs=tuple(meta["risk_class_cutoffs"]), seed=int(meta["seed"]),
            config=meta["config"], training_window=meta["training_window"],
            metrics=meta["metrics"],
        )


def json_safe(obj):
    """NaN/inf become null (strict JSON); numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
