"""Staleness of what is served: model age, customer-store age, newest event, request dates.

Pure and light (pandas only), so the service can import it: `/metadata` and the Prometheus
gauges report the same figures `paydelay monitor` judges. Definitions:

- model age: days from the end of the data the model's boosters were fitted on
  (`training_window["fit_end"]`, else the calibration end, else the train end) to `now`.
- data age: days from the end of the model's test window (the newest outcome it was judged on).
- store age: days from the customer-history store's as-of to `now`.
- newest event age: days from the ledger's newest event to `now` (a stalled extract).

`request_ahead_warning` is the other side of the store check: a request whose as-of is more than
`max_days` after the store's as-of is scored with a history that misses everything in between.
"""

from __future__ import annotations

import pandas as pd

_DAY = pd.Timedelta(days=1)


def _ts(value) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if pd.isna(ts):
        return None
    return ts.tz_localize(None) if ts.tzinfo is not None else ts


def model_fit_end(training_window: dict | None) -> pd.Timestamp | None:
    w = training_window or {}
    for key in ("fit_end", "calibration_end", "train_end"):
        ts = _ts(w.get(key))
        if ts is not None:
            return ts
    return None


def days_between(earlier, later) -> float | None:
    a, b = _ts(earlier), _ts(later)
    if a is None or b is None:
        return None
    return float((b - a) / _DAY)


def staleness(training_window: dict | None, store_as_of=None, newest_event=None,
              now=None) -> dict:
    """Ages in days (None where unknown) and the instants they were measured from."""
    now = _ts(now) if now is not None else pd.Timestamp.now("UTC").tz_localize(None)
    fit_end = model_fit_end(training_window)
    test_end = _ts((training_window or {}).get("test_end"))
    return {
        "now": now.isoformat(),
        "model_fit_end": None if fit_end is None else fit_end.isoformat(),
        "model_age_days": days_between(fit_end, now),
        "model_data_end": None if test_end is None else test_end.isoformat(),
        "model_data_age_days": days_between(test_end, now),
        "store_as_of": None if _ts(store_as_of) is None else _ts(store_as_of).isoformat(),
        "store_age_days": days_between(store_as_of, now),
        "newest_event": None if _ts(newest_event) is None else _ts(newest_event).isoformat(),
        "newest_event_age_days": days_between(newest_event, now),
    }


def request_ahead_warning(as_of, store_as_of, max_days: int) -> str | None:
    """A sentence when `as_of` is more than `max_days` after the store's as-of, else None."""
    gap = days_between(store_as_of, as_of)
    if gap is None or gap <= max_days:
        return None
    return (f"as_of is {gap:.0f} days after the customer-history store "
            f"({_ts(store_as_of):%Y-%m-%d}; more than {max_days}): the customer histories "
            "miss every payment since, refresh the store (retrain or re-materialise it)")


__all__ = ["staleness", "request_ahead_warning", "model_fit_end", "days_between"]
