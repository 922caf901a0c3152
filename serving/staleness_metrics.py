"""Staleness of the served model as Prometheus gauges on /metrics, and in /metadata.

The figures are training.core.staleness's (the ones `paydelay monitor` judges): model age (days
since the end of the data its boosters were fitted on), model data age (since its test window
ended) and customer-store age (since the store's as-of), measured against the wall clock when
`update` is called - at load, on every /metadata call and every scoring request - so a scrape
shows the age as of the last request. Gauges are created once per process with
multiprocess_mode "livemostrecent" (BentoML runs prometheus_client in multiprocess mode).
"""

from __future__ import annotations

from training.core.staleness import staleness

_GAUGES: dict | None = None
_FIELDS = {"model_age_days": "paydelay_model_age_days",
           "model_data_age_days": "paydelay_model_data_age_days",
           "store_age_days": "paydelay_store_age_days"}
_DOCS = {"model_age_days": "Days since the end of the data the served model was fitted on",
         "model_data_age_days": "Days since the served model's test window ended",
         "store_age_days": "Days since the customer-history store's as-of"}


def _gauges() -> dict:
    global _GAUGES
    if _GAUGES is None:
        from prometheus_client import Gauge  # noqa: PLC0415

        _GAUGES = {k: Gauge(name, _DOCS[k], multiprocess_mode="livemostrecent")
                   for k, name in _FIELDS.items()}
    return _GAUGES


def model_staleness(model, now=None) -> dict:
    """The served model's staleness (training.core.staleness.staleness), store included."""
    store_as_of = getattr(model.store, "as_of", None)
    return staleness(model.bundle.training_window, store_as_of, None, now)


def update(model, now=None) -> dict:
    """Set the gauges from the served model; returns the figures (for /metadata)."""
    figures = model_staleness(model, now)
    try:
        gauges = _gauges()
        for key in _FIELDS:
            if figures.get(key) is not None:
                gauges[key].set(figures[key])
    except Exception:  # metrics are best effort: never fail a request over a gauge  # noqa: BLE001
        pass
    return figures


__all__ = ["model_staleness", "update"]
