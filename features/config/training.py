"""Training settings: LightGBM parameters per model, tuning, promotion gate, time cut-offs."""

from __future__ import annotations

from pydantic import Field

from features.config.base import Section


class LgbParams(Section):
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


class TuningConfig(Section):
    enabled: bool = False
    n_trials: int = Field(20, ge=1)
    timeout_s: float = Field(900.0, gt=0)  # per model (risk, then payment date)
    validation_fraction: float = Field(0.25, gt=0, lt=1)  # latest part of the train slice


class PromotionConfig(Section):
    """A new model takes @champion only if, on the same holdout, it loses at most max_auc_drop of
    ROC-AUC and lowers the Brier score by more than min_brier_gain; otherwise @challenger."""

    max_auc_drop: float = Field(0.002, ge=0)
    min_brier_gain: float = Field(0.0, ge=0)


class SamplingConfig(Section):
    """The training stage's row budget (training.sampling). When the rows the models learn from
    (snapshots of `training.snapshot_kinds` up to the calibration end) outnumber `max_rows`,
    every row of the `keep_kinds` (the posting rows: the question a collector asks first) is
    kept, and the later snapshots are sampled by invoice - all of an invoice's later snapshots
    or none, with one seeded probability p for every invoice - and carry the weight 1/p in
    every fit, the calibrator, the out-of-time choice of rounds and the conformal shift, so the
    fitted probabilities and quantiles stay those of the full table. The test window is never
    sampled: the headline figures use every row. None: no budget."""

    max_rows: int | None = Field(1_200_000, ge=1)
    keep_kinds: tuple[str, ...] = ("posting",)
    # At most this share of the budget for the posting rows: a ledger whose posting rows alone
    # would take more (about 1.2M invoices in the fit windows) has its invoices sampled too
    # (posting rows weighted 1/r; training.sampling), instead of keeping one invoice's later
    # snapshots at a weight of millions.
    max_kept_share: float = Field(0.8, gt=0, lt=1)
    # The payment-date quantile boosters cost about ten times a binary booster per row
    # (LightGBM sets each quantile leaf to a percentile of the leaf's rows, a sort, weighted
    # sorts slower still): above this many rows they learn from every row of a seeded share q
    # of the invoices - the same invoice draw as above, q <= p, so the rows are a plain random
    # sample of invoices and are fitted unweighted. None: every payment row.
    payment_max_rows: int | None = Field(400_000, ge=1)


class TrainingConfig(Section):
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
    # LightGBM threads. None: from the machine (the cores this process may use) for a fit of at
    # least `threads_from_rows` rows, 1 below it: on small fits OpenMP threads cost more than
    # they bring (measured 13x slower with 2 threads on 2 busy cores in the test suite), on a
    # million rows they halve the wall time. A model is reproducible to the last digit for a
    # given seed and thread count (deterministic=True, force_row_wise).
    num_threads: int | None = Field(None, ge=1)
    threads_from_rows: int = Field(250_000, ge=1)
    sampling: SamplingConfig = SamplingConfig()
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


