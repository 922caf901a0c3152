"""Staleness of the served model as Prometheus gauges on /metrics, and in /metadata.

The figures are training.core.staleness's (the ones `paydelay monitor` judges): model age (days
since the end of the data its boosters were fitted on), model data age (since its test window
ended) and customer-store age (since the store's as-of), measured against the wall clock when
`update` is called - at load and on every /metadata call - and, on the scoring path, at most once
a minute (`refresh`): the ages are in days, so a minute's lag changes nothing a scrape shows, and
a request does not pay for the date arithmetic. Gauges are created once per process with
multiprocess_mode "livemostrecent" (BentoML runs prometheus_client in multiprocess mode).
"""

from __future__ import annotations

import time

from training.core.staleness import staleness

REFRESH_EVERY_S = 60.0
_GAUGES: dict | None = None
_LAST_REFRESH = float("-inf")  # time.monotonic() of the last update
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


def refresh(model) -> None:
    """`update`, unless the gauges were set less than REFRESH_EVERY_S ago (the scoring path)."""
    if time.monotonic() - _LAST_REFRESH >= REFRESH_EVERY_S:
        update(model)


def update(model, now=None) -> dict:
    """Set the gauges from the served model; returns the figures (for /metadata)."""
    global _LAST_REFRESH
    _LAST_REFRESH = time.monotonic()
    figures = model_staleness(model, now)
    try:
        gauges = _gauges()
        for key in _FIELDS:
            if figures.get(key) is not None:
                gauges[key].set(figures[key])
    except Exception:  # metrics are best effort: never fail a request over a gauge  # noqa: BLE001
        pass
    return figures


__all__ = ["model_staleness", "refresh", "update"]
