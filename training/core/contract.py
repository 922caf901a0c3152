"""`ModelContract`: what a model reads and what its outputs mean, derived once from the config.

Every fact that must be the same when a model is trained, scored, served and described lives
here, and nowhere else: the feature names, kinds and monotone signs and the feature-set version
(from features.pit.feature_spec for the config's windows, grace days and cold-start threshold),
the FeatureConfig the rows were built with, the delay buckets (from the bucket edges and grace
days) and which of them count as "very late" (the expected amount at risk; `very_late_days` is
the very-late model's threshold, the first very-late bucket's lower edge), the payment-date
anchor feature (resolved against the feature names), the risk-class cut-offs and the SAP-style
rule strategy served beside the model. `ModelContract.from_config(config)` derives it; the model
bundle stores it (JSON) and training, scoring, serving and the API read that stored copy, so a
model trained with non-default grace days, windows or bucket edges is scored and served with
them whatever the serving process's own config says.

What the model *learned* (category values, calibrator knots, conformal shifts, boosters) is not
contract: it is in the bundle beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from features.config import PaydelayConfig
from features.config.features import FeatureConfig
from features.config.rules import RuleStrategyConfig
from features.pit.feature_spec import FeatureSpec, feature_set_version, feature_specs

RISK_CLASSES: tuple[str, ...] = ("low", "medium", "high", "very_high")
BUCKET_PREFIX = "p_bucket_"


@dataclass(frozen=True)
class FeatureSet:
    """The columns the models read, in order: which are categorical / boolean (the rest are
    numeric), the monotone sign of each, and the feature-set version the rows must carry."""

    names: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    boolean: tuple[str, ...] = ()
    monotone: dict[str, int] = field(default_factory=dict)
    version: str = "unversioned"

    def __post_init__(self) -> None:
        unknown = (set(self.categorical) | set(self.boolean)) - set(self.names)
        if unknown:
            raise ValueError(f"features {sorted(unknown)} are not in the feature list")
        if len(set(self.names)) != len(self.names):
            raise ValueError("duplicate feature names")

    @classmethod
    def from_specs(cls, specs: tuple[FeatureSpec, ...], version: str) -> FeatureSet:
        return cls(names=tuple(s.name for s in specs),
                   categorical=tuple(s.name for s in specs if s.kind == "categorical"),
                   boolean=tuple(s.name for s in specs if s.kind == "bool"),
                   monotone={s.name: int(s.monotone) for s in specs}, version=version)

    def kind(self, name: str) -> str:
        """categorical | bool | numeric (the catalogue's kinds)."""
        if name in self.categorical:
            return "categorical"
        return "bool" if name in self.boolean else "numeric"

    def monotone_vector(self) -> list[int]:
        # Categorical features never carry a constraint (LightGBM 4.7 aborts the process).
        return [0 if n in self.categorical else int(self.monotone.get(n, 0)) for n in self.names]

    def to_dict(self) -> dict:
        return {"names": list(self.names), "categorical": list(self.categorical),
                "boolean": list(self.boolean), "monotone": dict(self.monotone),
                "version": self.version}

    @classmethod
    def from_dict(cls, d: dict) -> FeatureSet:
        return cls(tuple(d["names"]), tuple(d["categorical"]), tuple(d["boolean"]),
                   {k: int(v) for k, v in d["monotone"].items()}, d["version"])


@dataclass(frozen=True)
class DelayBucket:
    """One delay bucket: `index` 0 is on time (up to the grace days late), k >= 1 covers
    from_days..to_days days late (to_days None: no upper bound, written-off items included),
    as features.pit.labels assigns label_delay_bucket."""

    index: int
    label: str
    from_days: int | None
    to_days: int | None

    @property
    def column(self) -> str:
        """The scoring output column of its probability."""
        return f"{BUCKET_PREFIX}{self.index}"

    def to_dict(self) -> dict:
        return {"index": self.index, "label": self.label, "from_days": self.from_days,
                "to_days": self.to_days}


def delay_buckets(bucket_edges: tuple[int, ...], grace_days: int) -> tuple[DelayBucket, ...]:
    """The buckets of features.pit.labels: bucket 1 starts after the grace days (a row is late
    only then), bucket k >= 2 after edge k - 1, the last one is open-ended."""
    edges = tuple(int(e) for e in bucket_edges)
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or edges[0] < 0:
        raise ValueError(f"bucket_edges must be non-negative and strictly increasing, got "
                         f"{bucket_edges}")
    on_time = "on time" if grace_days == 0 else f"on time or up to {grace_days} days late"
    out = [DelayBucket(0, on_time, None, int(grace_days))]
    for k in range(1, len(edges) + 1):
        lower = grace_days if k == 1 else max(edges[k - 1], grace_days)
        if k == len(edges):
            out.append(DelayBucket(k, f"more than {lower} days late or written off",
                                   lower + 1, None))
            continue
        if edges[k] <= lower:
            raise ValueError(f"delay bucket {k} is empty: grace_days {grace_days} reaches the "
                             f"bucket edge {edges[k]} (bucket_edges {edges})")
        out.append(DelayBucket(k, f"{lower + 1}-{edges[k]} days late", lower + 1, edges[k]))
    return tuple(out)


def very_late_buckets(bucket_edges: tuple[int, ...], late_days: int) -> list[int]:
    """Delay buckets k >= 1 (k covers edges[k-1] < days late <= edges[k]) beyond late_days."""
    return [k for k in range(1, len(bucket_edges) + 1) if bucket_edges[k - 1] >= late_days]


def very_late_threshold(bucket_edges: tuple[int, ...], grace_days: int,
                        very_late: tuple[int, ...] | list[int]) -> int:
    """Days late beyond which an item is "very late": the lower edge of the first very-late
    bucket (at least the grace days), so P(very late) and the very-late buckets are one event:
    paid more than this many days after the net due date, or written off."""
    edges = tuple(int(e) for e in bucket_edges)
    return max(edges[min(very_late) - 1], int(grace_days))


def very_late_label(days: int) -> str:
    """The collector-language name of P(very late)."""
    return f"chance of paying more than {days} days late or not at all"


def resolve_anchor(anchor: str | None, feature_names) -> str | None:
    """The configured payment-date anchor feature if the model reads it, else None."""
    return anchor if anchor in tuple(feature_names) else None


@dataclass(frozen=True)
class ModelContract:
    features: FeatureSet
    feature_config: FeatureConfig  # how the rows were built (grace, edges, windows, cold start)
    # Buckets whose probabilities sum to P(very late): expected_amount_at_risk's definition.
    very_late: tuple[int, ...]
    late_days: int  # evaluation.backtest_late_days, which chose `very_late`
    payment_anchor: str | None  # feature added to the due date in payment-date offsets
    risk_class_cutoffs: tuple[float, ...]
    rule_strategy: RuleStrategyConfig
    buckets: tuple[DelayBucket, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fc = self.feature_config
        object.__setattr__(self, "buckets", delay_buckets(fc.bucket_edges, fc.grace_days))
        n_late = len(fc.bucket_edges)
        if not self.very_late or any(not 1 <= k <= n_late for k in self.very_late):
            raise ValueError(f"very-late buckets {self.very_late} must be among 1..{n_late}")
        if self.payment_anchor is not None and self.payment_anchor not in self.features.names:
            raise ValueError(f"payment anchor {self.payment_anchor!r} is not a model feature")
        cut = tuple(self.risk_class_cutoffs)
        if list(cut) != sorted(cut) or len(cut) != len(RISK_CLASSES) - 1:
            raise ValueError(f"risk_class_cutoffs must be {len(RISK_CLASSES) - 1} increasing "
                             f"values, got {cut}")

    @classmethod
    def from_config(cls, config: PaydelayConfig,
                    features: FeatureSet | None = None) -> ModelContract:
        """The contract of a model trained with `config`. `features` replaces the catalogue's
        feature set (tests on hand-made rows); everything else comes from the config."""
        fc = config.features
        if features is None:
            features = FeatureSet.from_specs(feature_specs(fc), feature_set_version(fc))
        late_days = int(config.evaluation.backtest_late_days)
        # No bucket starts beyond late_days: the last bucket (written-off items) is very late.
        very_late = (tuple(very_late_buckets(tuple(fc.bucket_edges), late_days))
                     or (len(fc.bucket_edges),))
        return cls(features=features, feature_config=fc, very_late=very_late,
                   late_days=late_days,
                   payment_anchor=resolve_anchor(config.training.payment_anchor, features.names),
                   risk_class_cutoffs=tuple(config.training.risk_class_cutoffs),
                   rule_strategy=config.rule_strategy)

    # --- derived facts ------------------------------------------------------------------------
    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.features.names

    @property
    def feature_set_version(self) -> str:
        return self.features.version

    @property
    def grace_days(self) -> int:
        return int(self.feature_config.grace_days)

    @property
    def bucket_edges(self) -> tuple[int, ...]:
        return tuple(int(e) for e in self.feature_config.bucket_edges)

    @property
    def very_late_days(self) -> int:
        """The very-late model's threshold: paid more than this many days late, or written off
        (the first very-late bucket's lower edge; 30 with the defaults)."""
        return very_late_threshold(self.bucket_edges, self.grace_days, self.very_late)

    @property
    def very_late_label(self) -> str:
        """p_very_late in collector language ("chance of paying more than 30 days late or not
        at all")."""
        return very_late_label(self.very_late_days)

    @property
    def n_late_buckets(self) -> int:
        """Classes of the bucket booster (the late buckets 1..n)."""
        return len(self.feature_config.bucket_edges)

    @property
    def bucket_columns(self) -> tuple[str, ...]:
        return tuple(b.column for b in self.buckets)

    def specs(self) -> tuple[FeatureSpec, ...]:
        """The catalogue entries (sentences, descriptions) for the rows' feature config."""
        return feature_specs(self.feature_config)

    # --- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "features": self.features.to_dict(),
            "feature_config": self.feature_config.model_dump(mode="json"),
            "very_late_buckets": list(self.very_late), "late_days": self.late_days,
            "payment_anchor": self.payment_anchor,
            "risk_class_cutoffs": list(self.risk_class_cutoffs),
            "rule_strategy": self.rule_strategy.model_dump(mode="json"),
            # derived from feature_config; written for readers of bundle.json, not read back
            "delay_buckets": [b.to_dict() for b in self.buckets],
            "very_late_days": self.very_late_days,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelContract:
        return cls(features=FeatureSet.from_dict(d["features"]),
                   feature_config=FeatureConfig.model_validate(d["feature_config"]),
                   very_late=tuple(int(k) for k in d["very_late_buckets"]),
                   late_days=int(d["late_days"]), payment_anchor=d["payment_anchor"],
                   risk_class_cutoffs=tuple(float(c) for c in d["risk_class_cutoffs"]),
                   rule_strategy=RuleStrategyConfig.model_validate(d["rule_strategy"]))


__all__ = ["ModelContract", "FeatureSet", "DelayBucket", "RISK_CLASSES", "delay_buckets",
           "very_late_buckets", "very_late_threshold", "very_late_label", "resolve_anchor"]
