"""Monitoring settings: the weekly scoring cadence, label maturity, drift and quality thresholds,
staleness limits and the stricter promotion gate (`paydelay score`, `paydelay monitor`).

The defaults come from measurements: benchmarks/bench_staleness.py (ROC-AUC and ECE against
model age on the simulator and the IBM sample) for the ages, and the calm / drifted simulated
worlds of tests/training/test_monitor.py for the quality and drift limits: each limit sits above
the largest value seen over ten calm worlds of 120 customers (a small ledger: its figures swing
more than a large one's; a large ledger may tighten them), so calm is quiet, and the test
states which injected drifts are then caught and after how many weeks.
"""

from __future__ import annotations

from pydantic import Field

from features.config.base import Section


class MonitoringConfig(Section):
    # --- batch scoring -------------------------------------------------------------------------
    cadence_days: int = Field(7, ge=1)  # weekly re-scoring (Business Central does the same)
    worklist_top: int | None = None  # rows per collector worklist (None: every open item)
    scoring_experiment: str = "paydelay-scoring"
    monitoring_experiment: str = "paydelay-monitoring"

    # --- realised quality (delayed labels) -----------------------------------------------------
    # A scoring date's late flags are judged only on items whose flag is decided by now (cleared,
    # or still open past due + grace); its payment dates only once every item had this long.
    min_rows_realised: int = Field(50, ge=1)  # fewer decided rows: the date is not judged
    max_auc_drop: float = Field(0.06, ge=0)  # realised ROC-AUC below holdout - this: alarm
    max_ece: float = Field(0.20, gt=0)  # realised ECE above this (and its interval too): alarm
    max_mae_ratio: float = Field(1.5, gt=0)  # realised payment MAE / holdout MAE above: alarm
    min_coverage: float = Field(0.60, ge=0, le=1)  # realised P10-P90 coverage below: alarm
    # Pool this many consecutive matured scoring dates before judging (one week of a small
    # ledger is a few hundred correlated rows: too noisy to alarm on).
    realised_pool_dates: int = Field(4, ge=1)
    min_decided_share: float = Field(0.9, gt=0, le=1)  # a date is judged once this share decided
    max_calibration_gap: float = Field(0.15, gt=0)  # |observed late rate - mean P(late)|
    max_slice_gap: float = Field(0.20, gt=0)  # the same per slice value with min_rows_slice rows
    min_rows_slice: int = Field(100, ge=1)
    # ... and this many customers: a slice of ten key accounts is ten draws, whatever its rows
    min_slice_customers: int = Field(20, ge=1)

    # --- estimated quality (before labels) -----------------------------------------------------
    estimate_draws: int = Field(200, ge=10)  # Monte Carlo draws of labels from the probabilities
    max_estimated_auc_drop: float = Field(0.10, ge=0)

    # --- drift ---------------------------------------------------------------------------------
    psi_bins: int = Field(10, ge=2)
    feature_psi_alert: float = Field(0.25, gt=0)  # the usual "major shift" line of PSI
    prediction_psi_alert: float = Field(0.45, gt=0)
    prediction_drift_alarmed: tuple[str, ...] = ("p_late",)  # days_to_clear_p50: reported
    # Share of the watched features above feature_psi_alert that raises the alarm: single
    # customer-history features of a small ledger swing past 0.25 on calm weeks (a few hundred
    # customers carry them), a real shift moves many at once.
    feature_drift_share: float = Field(0.50, gt=0, le=1)
    mix_psi_alert: float = Field(0.20, gt=0)  # segment, terms, amount band, company code
    drift_window_dates: int = Field(4, ge=1)  # latest scoring dates pooled as "current"
    min_rows_drift: int = Field(200, ge=10)
    # Features that move with the calendar or with time itself in any healthy ledger: reported,
    # never alarmed on ("prefix*" matches every feature starting with prefix).
    drift_exempt: tuple[str, ...] = (
        "due_month", "due_weekday", "hist_customer_tenure_days", "hist_n_invoices",
        "hist_n_cleared", "hist_n_cleared_late", "hist_n_written_off", "hist_written_off_amount",
        "hist_month_n_cleared", "hist_season_n_cleared", "hist_same_segment_n_cleared",
        "hist_n_cleared_365d", "hist_n_cleared_late_365d",
        # seasonal histories read the calendar month of the due date
        "hist_month_*", "hist_season_*",
    )
    mix_columns: tuple[str, ...] = ("customer_segment", "payment_terms", "company_code",
                                    "amount_band")

    # --- staleness -----------------------------------------------------------------------------
    max_model_age_days: int = Field(180, ge=1)  # bench_staleness: ECE leaves its band after ~6 mo
    max_store_age_days: int = Field(14, ge=1)  # customer-history store older than 2 cadences
    max_event_age_days: int = Field(10, ge=1)  # newest ledger event: a stalled extract
    # A request whose as-of date is this far past the store's as-of is warned about (the store's
    # history would miss everything in between).
    max_request_ahead_days: int = Field(14, ge=0)
    retrain_every_days: int = Field(90, ge=7)  # default retrain cadence (bench_staleness)

    # --- the stricter promotion gate (training.gate) -------------------------------------------
    baseline_auc_margin: float = Field(0.0, ge=0)  # must beat the best baseline by this
    slice_auc_floor: float = Field(0.65, ge=0, le=1)  # every declared slice at least this
    slice_ece_ceiling: float = Field(0.20, gt=0)
    slice_columns: tuple[str, ...] = ("customer_segment", "company_code", "customer_history",
                                      "amount_band")
    min_slice_rows_gate: int = Field(50, ge=1)  # smaller slices are reported, not judged
    canary_rows: int = Field(200, ge=1)
