"""Customer master data as of t: risk category, credit limit, segment, collector, credit use.

A row at t reads the master version with the latest valid_from <= t (valid_to is not needed:
the next version takes over). Several versions with the same valid_from: the last one in the
table wins. Before a customer's first version every attribute is unknown (missing), never
borrowed from a later version. Without a master table, versions are rebuilt from the attributes
the events carry, each in force from the instant the event is known.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.pit.columns import (Column, Columns, TimeLike, as_categorical, frame_of, instants,
                                  us_of)
from features.pit.item_state import Queries, StepIndex

MASTER_ATTRIBUTES: tuple[str, ...] = ("risk_category", "credit_limit", "customer_segment",
                                      "collector")
MASTER_FEATURE_COLUMNS: tuple[str, ...] = MASTER_ATTRIBUTES + ("credit_used_ratio",)
_STRING_ATTRIBUTES = ("risk_category", "customer_segment", "collector")


def _validate(master: pd.DataFrame) -> pd.DataFrame:
    for col in ("customer_id", "valid_from"):
        if col not in master.columns:
            raise ValueError(f"customer master has no column {col!r}")
    if master["customer_id"].isna().any():
        row = master.index[master["customer_id"].isna().to_numpy()][0]
        raise ValueError(f"customer master: customer_id is missing at row {row!r}")
    if master["valid_from"].isna().any():
        row = master.index[master["valid_from"].isna().to_numpy()][0]
        raise ValueError(f"customer master: valid_from is missing at row {row!r}")
    if not pd.api.types.is_datetime64_dtype(master["valid_from"].dtype):
        raise ValueError(f"customer master: valid_from must be datetime64, got "
                         f"{master['valid_from'].dtype}")
    return master


def master_from_events(events: pd.DataFrame) -> pd.DataFrame:
    """Master versions from the attributes events carry, valid from the instant each is known.

    A blank attribute on an event means "not carried": the customer's previous value stays.
    """
    attrs = [c for c in MASTER_ATTRIBUTES if c in events.columns]
    known = events["event_time"].to_numpy(dtype="datetime64[us]")
    if "recorded_time" in events.columns and events["recorded_time"].notna().any():
        rec = events["recorded_time"].to_numpy(dtype="datetime64[us]")
        known = np.where(np.isnat(rec), known, np.maximum(known, rec))
    frame = pd.DataFrame({"customer_id": events["customer_id"].astype("str").to_numpy(),
                          "valid_from": known, "_pos": np.arange(len(events))})
    for col in attrs:
        frame[col] = events[col].to_numpy()
    if attrs:
        frame = frame[events[attrs].notna().any(axis=1).to_numpy()]
    frame = frame.sort_values(["customer_id", "valid_from", "_pos"], kind="stable")
    if attrs:
        frame[attrs] = frame.groupby("customer_id", sort=False)[attrs].ffill()
    out = frame.drop(columns="_pos").reset_index(drop=True)
    for col in MASTER_ATTRIBUTES:
        if col not in out.columns:
            out[col] = np.nan
    return out


def master_asof(master: pd.DataFrame, customer_ids: Sequence[str] | np.ndarray | pd.Series,
                times: TimeLike) -> pd.DataFrame:
    """MASTER_ATTRIBUTES of each (customer, t) from the version in force at t, as a frame (for
    callers holding ids and times; the builder reads master_asof_codes).

    String attributes come back as `category` (missing before the first version).
    """
    ids = pd.Series(customer_ids, dtype="str").reset_index(drop=True)
    universe, codes = np.unique(ids.fillna("").to_numpy(dtype=object), return_inverse=True)
    return frame_of(master_asof_codes(master, universe, codes,
                                      us_of(instants(times, len(ids)))))


def master_asof_codes(master: pd.DataFrame, universe: np.ndarray, codes: np.ndarray,
                      t: np.ndarray) -> dict[str, Column]:
    """MASTER_ATTRIBUTES for customers given as codes into `universe` (ids), t as int64 us;
    string attributes as Categoricals."""
    master = _validate(master)
    m_codes = pd.Index(universe).get_indexer(
        master["customer_id"].astype("str").to_numpy(dtype=object, na_value=None))
    valid = master["valid_from"].to_numpy(dtype="datetime64[us]").view(np.int64)
    mine = m_codes >= 0  # versions of customers nobody asks about are not needed
    index = StepIndex(m_codes[mine], valid[mine])
    queries = Queries(np.asarray(codes, dtype=np.int64), t)
    hi = index.right(queries)
    found = hi > index.first(queries)
    rows = np.flatnonzero(mine)
    rows = index.take(rows)[np.maximum(hi - 1, 0)] if len(rows) else np.zeros(len(hi), np.int64)
    out: dict[str, Column] = {}
    for col in MASTER_ATTRIBUTES:
        if col in _STRING_ATTRIBUTES:
            if col in master.columns:
                cat = pd.Categorical(master[col].astype("str").to_numpy(dtype=object,
                                                                         na_value=None))
                picked = np.where(found, cat.codes[rows], -1) if len(cat) else np.full(len(hi), -1)
                out[col] = pd.Categorical.from_codes(picked, categories=cat.categories)
            else:
                out[col] = pd.Categorical.from_codes(np.full(len(hi), -1), categories=[])
        else:
            values = (master[col].to_numpy(dtype=np.float64, na_value=np.nan)
                      if col in master.columns else np.full(max(len(master), 1), np.nan))
            out[col] = np.where(found, values[rows] if len(values) else np.nan, np.nan)
    return out


def master_features(attrs: Columns, customer_open_amount: np.ndarray) -> dict[str, Column]:
    """Master features from MASTER_ATTRIBUTES (strings as Categoricals or object arrays):
    attributes as categories, credit_limit, and credit_used_ratio.

    credit_used_ratio = the customer's open amount at t (all its open invoices, this one
    included) / credit limit; NaN without a positive credit limit.
    """
    limit = np.asarray(attrs["credit_limit"], dtype=np.float64)
    has = limit > 0
    used = np.asarray(customer_open_amount, dtype=np.float64)
    return {
        "risk_category": as_categorical(attrs["risk_category"]),
        "credit_limit": limit,
        "credit_used_ratio": np.where(has, used / np.where(has, limit, 1.0), np.nan),
        "customer_segment": as_categorical(attrs["customer_segment"]),
        "collector": as_categorical(attrs["collector"]),
    }


__all__ = ["master_asof", "master_asof_codes", "master_features", "master_from_events",
           "MASTER_ATTRIBUTES", "MASTER_FEATURE_COLUMNS"]
