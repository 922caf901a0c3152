"""`ModelBundle`: everything scoring needs, saved and loaded without pickle.

A bundle is a folder: each LightGBM booster as LightGBM's own model text (`risk.txt`,
`very_late.txt`, `bucket.txt`, `payment_p10.txt` ...) and `bundle.json` with the rest - the model contract
(training.core.contract: features, feature-set version, feature config, delay buckets, payment
anchor, risk-class cut-offs, rule strategy), what was learned besides the boosters (training
categories per categorical feature, calibrator, bucket prior, conformal shift, the risk
booster's out-of-time number of rounds), the config and seed used, the training window and the
headline metrics. Loading a folder cannot execute code: it parses text and JSON only.

Format 3 adds the very-late model (the worklist's ranking model: P(paid more than the
contract's very_late_days late, or written off), its booster and calibrator); format 2 bundles
(without it) and format 1 bundles (no contract) are refused: retrain.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb

from training.core.calibration import Calibrator
from training.core.contract import ModelContract
from training.core.matrix import MatrixBuilder
from training.core.payment import QUANTILE_KEYS, ConformalShift

BUNDLE_FORMAT = 3
META_FILE = "bundle.json"
RISK_FILE = "risk.txt"
BUCKET_FILE = "bucket.txt"
VERY_LATE_FILE = "very_late.txt"


def _payment_file(key: str) -> str:
    return f"payment_{key}.txt"


@dataclass
class ModelBundle:
    contract: ModelContract
    categories: dict[str, list[str]]
    risk: lgb.Booster
    calibrator: Calibrator
    bucket: lgb.Booster | None
    bucket_prior: list[float]
    quantiles: dict[str, lgb.Booster]
    conformal: ConformalShift
    seed: int
    risk_rounds: int | None = None  # boosting rounds chosen on the out-of-time folds
    config: dict = field(default_factory=dict)  # PaydelayConfig.model_dump(mode="json")
    training_window: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # The ledger the model learned from (training.core.ledger.fingerprint): name, data window,
    # invoices, feature-set version, hash. Empty for bundles saved before ledgers had names.
    ledger: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)  # where it was loaded from (not saved)
    # The very-late model: P(paid more than contract.very_late_days late, or written off), the
    # probability that orders the worklist (expected amount at risk = open amount x it) and
    # that the reasons explain. None (too little history for it; hand-built bundles): scoring
    # reads P(very late) from the delay buckets and reasons explain the risk model.
    very_late: lgb.Booster | None = None
    very_late_calibrator: Calibrator | None = None
    very_late_rounds: int | None = None
    _matrix: MatrixBuilder | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def feature_set_version(self) -> str:
        return self.contract.feature_set_version

    @property
    def ranking_booster(self) -> lgb.Booster:
        """The booster whose output orders the worklist (the very-late model when there is one,
        else the risk model): the one the reasons explain."""
        return self.very_late if self.very_late is not None else self.risk

    @property
    def ranking_calibrator(self) -> Calibrator:
        return (self.very_late_calibrator if self.very_late is not None
                and self.very_late_calibrator is not None else self.calibrator)

    @property
    def matrix(self) -> MatrixBuilder:
        """The model-matrix builder of this bundle (made once: it caches category look-ups)."""
        if self._matrix is None:
            self._matrix = MatrixBuilder(self.contract.features, self.categories)
        return self._matrix

    def meta(self) -> dict:
        return json_safe({
            "format": BUNDLE_FORMAT,
            "contract": self.contract.to_dict(),
            "categories": self.categories,
            "calibrator": self.calibrator.to_dict(),
            "bucket_prior": self.bucket_prior,
            "has_bucket_model": self.bucket is not None,
            "has_very_late_model": self.very_late is not None,
            "very_late_calibrator": (None if self.very_late_calibrator is None
                                     else self.very_late_calibrator.to_dict()),
            "very_late_rounds": self.very_late_rounds,
            "conformal": self.conformal.to_dict(),
            "risk_rounds": self.risk_rounds,
            "seed": self.seed,
            "config": self.config,
            "training_window": self.training_window,
            "metrics": self.metrics,
            "ledger": self.ledger,
        })

    def save(self, directory: str | Path) -> list[Path]:
        """Write the folder; returns the files written (risk model first)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files = [d / RISK_FILE]
        self.risk.save_model(files[0])
        if self.very_late is not None:
            files.append(d / VERY_LATE_FILE)
            self.very_late.save_model(files[-1])
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
            raise ValueError(f"bundle format {meta.get('format')} is not {BUNDLE_FORMAT}: "
                             "retrain the model with this version of the code")
        risk = lgb.Booster(model_file=str(risk_model_path or d / RISK_FILE))
        bucket = lgb.Booster(model_file=str(d / BUCKET_FILE)) if meta["has_bucket_model"] else None
        very_late = (lgb.Booster(model_file=str(d / VERY_LATE_FILE))
                     if meta["has_very_late_model"] else None)
        vl_cal = meta.get("very_late_calibrator")
        quantiles = {k: lgb.Booster(model_file=str(d / _payment_file(k))) for k in QUANTILE_KEYS}
        return cls(
            contract=ModelContract.from_dict(meta["contract"]),
            categories={k: list(v) for k, v in meta["categories"].items()},
            risk=risk, calibrator=Calibrator.from_dict(meta["calibrator"]), bucket=bucket,
            bucket_prior=list(meta["bucket_prior"]), quantiles=quantiles,
            conformal=ConformalShift.from_dict(meta["conformal"]),
            seed=int(meta["seed"]), risk_rounds=meta.get("risk_rounds"),
            config=meta["config"], training_window=meta["training_window"],
            metrics=meta["metrics"], ledger=dict(meta.get("ledger") or {}),
            very_late=very_late,
            very_late_calibrator=None if vl_cal is None else Calibrator.from_dict(vl_cal),
            very_late_rounds=meta.get("very_late_rounds"),
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
