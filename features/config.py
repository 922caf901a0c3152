"""One typed configuration for every stage, loaded explicitly from TOML (no import-time reads).

Each stage takes its own section as an argument; the seed lives at the top and is passed down
explicitly, so a run is reproduced by its config file alone.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SimulatorConfig(_Section):
    n_customers: int = Field(600, ge=1)
    n_invoices: int = Field(20_000, ge=1)
    start: str = "2023-01-01"  # first posting date
    months: int = Field(30, ge=1)  # posting window length; the log ends at start + months
    company_codes: tuple[str, ...] = ("1000", "2000", "3000")
    n_collectors: int = Field(6, ge=1)
    # Causal knob: how much a collector contact pulls the payment earlier, in days, for customers
    # who respond to contact (their responsiveness is latent, between 0 and 1).
    contact_effect_days: float = Field(8.0, ge=0)
    contact_rate: float = Field(0.35, ge=0, le=1)  # share of overdue invoices a collector calls
    # Days overdue at which the weekly dunning run raises an item to levels 1, 2, 3 and 4.
    dunning_days: tuple[int, int, int, int] = (1, 15, 30, 45)
    # Fresh paths per invoice behind truth.oracle_expected_delay_days (seeded Monte Carlo).
    oracle_mc_draws: int = Field(32, ge=1)


class FeatureConfig(_Section):
    grid_days: int = Field(7, ge=1)  # snapshot every N days while the invoice is open
    max_snapshots_per_invoice: int = Field(6, ge=1)  # cap so long-open invoices do not dominate
    grace_days: int = Field(0, ge=0)  # cleared up to N days after due still counts as on time
    bucket_edges: tuple[int, ...] = (0, 30, 60, 90)  # days late: on time | 1-30 | 31-60 | ...
    history_windows_days: tuple[int, ...] = (90, 365)
    # A customer with fewer settled (cleared) invoices known at t than this is a cold start.
    cold_start_min_cleared: int = Field(3, ge=1)


class PaydelayConfig(_Section):
    seed: int = 42
    simulator: SimulatorConfig = SimulatorConfig()
    features: FeatureConfig = FeatureConfig()
    evaluation: EvaluationConfig = Field(default_factory=lambda: EvaluationConfig())
    rule_strategy: RuleStrategyConfig = Field(default_factory=lambda: RuleStrategyConfig())
    training: "TrainingConfig" = Field(default_factory=lambda: TrainingConfig())
    serving: "ServingConfig" = Field(default_factory=lambda: ServingConfig())


def load_config(path: str | Path | None = None) -> PaydelayConfig:
    """Read a TOML file into the typed config; None gives the defaults."""
    if path is None:
        return PaydelayConfig()
    with open(path, "rb") as fh:
        return PaydelayConfig.model_validate(tomllib.load(fh))


# --- Training (engineer A) ------------------------------------------------------------------------
class LgbParams(_Section):
    """LightGBM hyper-parameters of one model (Optuna tunes these when tuning is on)."""

    n_estimators: int = Field(400, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(31, ge=2)
    max_depth: int = -1
    min_child_samples: int = Field(40, ge=1)
    feature_fraction: float = Field(0.9, gt=0, le=1)
    bagging_fraction: float = Field(0.9, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    min_split_gain: float = Field(0.0, ge=0)
    cat_smooth: float = Field(10.0, ge=0)


class TuningConfig(_Section):
    enabled: bool = False
    n_trials: int = Field(20, ge=1)
    timeout_s: float = Field(900.0, gt=0)  # per model (risk, then payment date)
    validation_fraction: float = Field(0.25, gt=0, lt=1)  # latest part of the train slice


class PromotionConfig(_Section):
    """A new model takes @champion only if, on the same holdout, it loses at most max_auc_drop of
    ROC-AUC and lowers the Brier score by more than min_brier_gain; otherwise @challenger."""

    max_auc_drop: float = Field(0.002, ge=0)
    min_brier_gain: float = Field(0.0, ge=0)


class TrainingConfig(_Section):
    # Time cut-offs: instants ("YYYY-MM-DD" = its 00:00), each window is (previous end, end]; dates
    # win over fractions of the span from the first snapshot to the end of observation.
    train_end: str | None = None
    calibration_end: str | None = None
    test_end: str | None = None  # default: the last snapshot / outcome in the data
    train_fraction: float = Field(0.6, gt=0, lt=1)
    calibration_fraction: float = Field(0.2, gt=0, lt=1)
    snapshot_kinds: tuple[str, ...] = ("posting", "grid")  # rows the models learn from
    # Payment-date model learns only from rows observed for this long before its cut-off.
    payment_horizon_days: int = Field(120, ge=1)
    min_cleared_invoices: int = Field(200, ge=1)  # min-data gate on the train slice
    min_late_invoices: int = Field(30, ge=1)
    # "none" keeps the booster's own probabilities (for comparison; see the training report)
    calibration_method: str = Field("isotonic", pattern="^(isotonic|platt|none)$")
    conformal: bool = True  # correct P10/P90 on the calibration slice
    risk_class_cutoffs: tuple[float, float, float] = (0.2, 0.5, 0.8)  # low|medium|high|very_high
    # 1 by default: on a small shared machine LightGBM's OpenMP threads spin when oversubscribed
    # (measured 13x slower with 2 threads on 2 busy cores). Results are reproducible per value.
    num_threads: int = Field(1, ge=1)
    # Shallow risk and bucket boosters: on the default simulated ledger and the IBM sample they
    # rank and calibrate as well as 400 unlimited-depth trees (benchmarks/model_targets.py:
    # ROC-AUC / oracle 0.976 vs 0.978, IBM AUC 0.913 vs 0.911), and depth 4 is what lets the
    # service tabulate exact TreeSHAP and explain a 500-item worklist in milliseconds.
    risk: LgbParams = LgbParams(n_estimators=100, learning_rate=0.1, num_leaves=15, max_depth=4)
    bucket: LgbParams = LgbParams(n_estimators=60, learning_rate=0.1, num_leaves=7)
    payment: LgbParams = LgbParams(n_estimators=300)
    # P10 / P90 boosters (None: as `payment`). The conformal shift sets the interval's coverage
    # on later slices whatever their size, and the payment date shown is the P50's, so the tails
    # can be small; at scoring every tree costs the same, and 2 x 300 deep trees were half of a
    # 500-item re-rank's time (benchmarks/bench_serving.py).
    payment_tails: LgbParams | None = LgbParams(n_estimators=100, learning_rate=0.1,
                                                num_leaves=15, max_depth=5)
    tuning: TuningConfig = TuningConfig()
    promotion: PromotionConfig = PromotionConfig()
    registered_model_name: str = "paydelay"
    experiment_name: str = "paydelay-training"
    # Model-targets work (training/pipeline.py): the final boosters are refitted on train +
    # calibration (labels as known at calibration_end); the calibrator and conformal shift are
    # fitted on out-of-time predictions of `calibration_folds` consecutive slices as long as the
    # calibration slice, ending at calibration_end, each predicted by a model fitted on the rows
    # before it (2 folds of the default 6-month slice: a full year, every season once).
    refit_on_calibration: bool = True
    calibration_folds: int = Field(2, ge=1)
    # Payment-date boosters learn days relative to due date + this feature (the customer's recent
    # habit; NaN counts 0), so a customer paying later than anything seen in training is followed.
    # None: the due date alone. A name the feature set lacks also means None.
    payment_anchor: str | None = "hist_ewm_days_late"


# --- Evaluation and the SAP-style rule strategy (training engineer B: training/report.py,
# training/rules.py). Defined after PaydelayConfig, which refers to them through default factories
# so that pydantic resolves the names on first use.
class EvaluationConfig(_Section):
    ece_bins: int = Field(10, ge=2)  # expected calibration error / reliability table bins
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # pinball loss for days_to_clear_p{10,50,90}
    # Days to clear of a written-off invoice is days to the write-off, not to a payment: the
    # payment-date metrics leave those rows out (and count them) unless told otherwise.
    date_metrics_exclude_written_off: bool = True
    amount_band_column: str = "open_amount"
    amount_band_edges: tuple[float, ...] = (1_000.0, 10_000.0, 100_000.0)
    slice_columns: tuple[str, ...] = (
        "customer_segment", "company_code", "risk_category", "amount_band", "customer_history",
    )
    min_slice_rows: int = Field(30, ge=1)  # smaller slices are flagged small_sample
    backtest_period: Literal["day", "week"] = "week"  # snapshots grouped into one worklist
    # Collector capacity K per worklist. Weekly worklists built from training rows hold only the
    # items with a snapshot that week (about 20 to 50 on the default simulation), hence small K.
    backtest_capacities: tuple[int, ...] = (5, 10, 20)
    backtest_late_days: int = Field(30, ge=0)  # "at risk" = paid more than N days late or lost
    headline_capacity: int | None = 10  # K quoted in the headline; None/absent = the first K
    # Baselines: P(late) of the pay-on-due-date baseline for items not yet past due + grace, and
    # the P(late) every baseline gives an item already past due + grace at t (its label is then
    # known to be late, so a baseline that ignored it would be a straw man).
    due_date_p_late: float = Field(0.02, gt=0, lt=1)
    determined_late_p: float = Field(0.999, gt=0, lt=1)
    add_min_invoices: int = Field(1, ge=1)  # paid invoices needed before ADD trusts a customer


class BasicRuleConfig(_Section):
    """One condition on an open item or its customer (SAP: basic rule)."""

    name: str
    field: str  # a row column, or a derived one (see training.rules.DERIVED_FIELDS)
    op: Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in", "is_true", "is_false"]
    value: float | str | tuple[str, ...] | None = None
    description: str = ""


class CollectionRuleConfig(_Section):
    """Basic rules that must all hold, worth `points` (SAP: collection rule in a strategy)."""

    name: str
    basic_rules: tuple[str, ...] = Field(min_length=1)
    points: float = Field(ge=0)
    # A collection rule (earlier in the strategy) or a basic rule that must hold for this rule to
    # be valuated at all (SAP: prerequisite of a rule in the strategy).
    prerequisite: str | None = None
    description: str = ""


class PriorityConfig(_Section):
    name: str
    min_percent: float = Field(ge=0, le=100)


def _default_basic_rules() -> tuple[BasicRuleConfig, ...]:
    b = BasicRuleConfig
    return (
        b(name="B01", field="days_overdue", op=">", value=0, description="item is overdue"),
        b(name="B02", field="days_overdue", op=">", value=30,
          description="item more than 30 days overdue"),
        b(name="B03", field="open_amount", op=">", value=10_000,
          description="open amount of the item above 10,000"),
        b(name="B04", field="customer_overdue_amount", op=">", value=50_000,
          description="customer's overdue amount above 50,000"),
        b(name="B05", field="risk_category", op="in", value=("D04", "E05"),
          description="customer in a high risk category"),
        b(name="B06", field="dunning_level", op=">=", value=3,
          description="item at dunning level 3 or more"),
        b(name="B07", field="n_promises_broken", op=">=", value=1,
          description="a promise to pay on the item was broken"),
        b(name="B08", field="dispute_open", op="is_false", description="no open dispute"),
        b(name="B09", field="hist_n_cleared", op=">=", value=3,
          description="customer has at least 3 paid invoices"),
        b(name="B10", field="hist_late_ratio", op=">", value=0.5,
          description="customer paid more than half of its invoices late"),
    )


def _default_collection_rules() -> tuple[CollectionRuleConfig, ...]:
    c = CollectionRuleConfig
    return (
        c(name="R01", basic_rules=("B01",), points=10, description="Item overdue"),
        c(name="R02", basic_rules=("B02",), points=15, description="Item > 30 days overdue"),
        c(name="R03", basic_rules=("B04",), points=20,
          description="Customer owes > 50,000 overdue"),
        c(name="R04", basic_rules=("B05",), points=15, description="High risk category"),
        c(name="R05", basic_rules=("B07",), points=15, description="Broken promise to pay"),
        c(name="R06", basic_rules=("B06", "B08"), points=10,
          description="Dunning level >= 3 and not in dispute"),
        c(name="R07", basic_rules=("B10",), points=10, prerequisite="B09",
          description="Habitual late payer (only judged with >= 3 paid invoices)"),
        c(name="R08", basic_rules=("B03",), points=5, prerequisite="R01",
          description="Large item (only when overdue)"),
    )


class RuleStrategyConfig(_Section):
    """SAP-style collection strategy (seed 002); see training/rules.py for the default's story."""

    name: str = "PD_DEFAULT"
    basic_rules: tuple[BasicRuleConfig, ...] = Field(default_factory=_default_basic_rules)
    collection_rules: tuple[CollectionRuleConfig, ...] = Field(
        default_factory=_default_collection_rules)
    # Percentage of the maximum attainable points from which a priority applies (highest first).
    priorities: tuple[PriorityConfig, ...] = (
        PriorityConfig(name="very_high", min_percent=80),
        PriorityConfig(name="high", min_percent=60),
        PriorityConfig(name="medium", min_percent=30),
        PriorityConfig(name="low", min_percent=0),
    )
    max_points: float | None = Field(None, gt=0)  # None = sum of all collection rules' points
    # Rows sharing these keys are one customer's worklist at one time (customer-level fields).
    customer_group_keys: tuple[str, ...] = ("customer_id", "snapshot_time")


# --- Serving (serving engineer: serving/*). Read by the BentoML service at start-up; the model
# reference and the token may be overridden by environment variables (see serving/service.py).
class ServingConfig(_Section):
    model_ref: str = "champion"  # registry alias ("champion", "challenger") or version number
    max_items: int = Field(1_000, ge=1)  # worklist / score request size limit (413 above it)
    max_body_bytes: int = Field(4_000_000, ge=1_000)  # request body limit, checked before parsing
    n_reasons: int = Field(3, ge=1, le=10)  # reasons per invoice on /rerank
    token_env: str = "PAYDELAY_API_TOKEN"  # env var holding the optional bearer token
    max_amount: float = Field(1e12, gt=0)  # larger amounts are refused as absurd
    min_date: str = "1990-01-01"  # dates outside [min_date, max_date] are refused
    max_date: str = "2100-12-31"
    # A company code or payment-terms key the model never saw is accepted and flagged
    # (in the item's `warnings`) unless this is True, then refused with a 422.
    refuse_unknown_categories: bool = False
