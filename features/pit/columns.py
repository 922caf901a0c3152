"""Columns: the one form in which the point-in-time feature functions take and return data.

`Columns` maps a column name to one array per column, all of the same length:

- numbers and flags as numpy arrays (float64, int64, bool);
- instants as numpy datetime64[us] (NaT for missing);
- strings as numpy object arrays of str with None for missing, or as pd.Categorical where the
  producer already holds codes (the replayed log's ids and posting attributes, the master as of
  t, the customer store): a categorical feature reads either through `as_categorical`.

Every feature function (item state, invoice, history and master features) works on this form
only. Frames exist only at the edges: the batch builder assembles its training frame from
columns at its end, a caller holding an item-state frame turns it into columns first
(`columns_of`) and may want the features back as a frame (`frame_of`). A serving request is
parsed straight into columns.

Why arrays and not frames: on a request's few hundred rows, selecting and converting a frame's
column costs tens of microseconds, ~150 times per feature set, which was most of a request; and
on a million-row build a frame's consolidations and copies cost as much as the features.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pandas as pd

Column = np.ndarray | pd.Categorical
Columns = Mapping[str, Column]
# One instant (naive), and what an edge may give for "t": one instant for every row, or one per row.
Instant = datetime | pd.Timestamp | np.datetime64 | str
TimeLike = Instant | np.ndarray | pd.Series | pd.Index

DAY_US = 86_400_000_000
NAT = np.iinfo(np.int64).min  # int64 view of NaT
_US = "datetime64[us]"


def to_us(when: Instant) -> int:
    """One instant as int64 microseconds since the epoch (naive)."""
    return int(pd.Timestamp(when).as_unit("us").asm8.view(np.int64))


def instants(when: TimeLike, n: int) -> np.ndarray:
    """`when` as n instants (datetime64[us]): one instant broadcast, or one per row checked."""
    if np.ndim(when) == 0:
        return np.full(n, to_us(when), dtype=np.int64).view(_US)
    if isinstance(when, np.ndarray) and when.dtype == _US:
        t = when
    else:
        t = np.asarray(pd.Series(when).to_numpy(dtype=_US))
    if len(t) != n:
        raise ValueError(f"{len(t)} times for {n} rows")
    return t


def us_of(t: np.ndarray) -> np.ndarray:
    """datetime64[us] instants as int64 microseconds (NaT -> NAT), without a copy."""
    return np.asarray(t, dtype=_US).view(np.int64)


def n_rows(data: pd.DataFrame | Columns) -> int:
    """Rows of a frame, or of columns (0 when there are none)."""
    if isinstance(data, pd.DataFrame):
        return len(data)
    return len(next(iter(data.values()), ()))


def column_array(data: pd.DataFrame | Columns, name: str,
                 dtype: np.dtype | type | str | None = None) -> np.ndarray:
    """Column `name` of a frame or of columns as a numpy array of dtype (no copy when it
    already is one). For the edges that accept both (request checks, re-ranking); the feature
    functions read Columns only."""
    col = data[name]
    if isinstance(col, np.ndarray):
        return col if dtype is None else col.astype(dtype, copy=False)
    return col.to_numpy(dtype=dtype)


def as_categorical(values: Column) -> pd.Categorical:
    """A string column (object array with None for missing, or a Categorical) as a Categorical
    of sorted str categories; free when it already is one."""
    if isinstance(values, pd.Categorical):
        return values
    # What pd.Categorical(values) builds (sorted categories, code -1 for missing), without its
    # dtype inference: half the time on a million rows, a third on a request's few hundred.
    values = np.asarray(values, dtype=object)
    codes, uniques = pd.factorize(values, sort=True)
    if not len(uniques):  # keep pd.Categorical's own dtype for an all-missing column
        return pd.Categorical(values)
    return pd.Categorical.from_codes(
        codes, dtype=pd.CategoricalDtype(pd.Index(uniques, dtype="str")), validate=False)


def _column_of(series: pd.Series) -> Column:
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return series.array
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        return series.to_numpy(dtype=object, na_value=None)
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise ValueError(f"column {series.name!r} must be naive datetimes (no timezone)")
    if pd.api.types.is_datetime64_dtype(dtype):
        return series.to_numpy(dtype=_US)
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):  # nullable numbers and flags
        if series.hasnans:
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        return series.to_numpy(dtype=dtype.numpy_dtype)
    return series.to_numpy()


def columns_of(frame: pd.DataFrame) -> dict[str, Column]:
    """The batch edge: a frame's columns in the Columns form (module docstring)."""
    return {str(name): _column_of(frame[name]) for name in frame.columns}


def frame_of(columns: Columns, index: pd.Index | None = None) -> pd.DataFrame:
    """The frame edge: a frame of columns (string arrays become pandas' str dtype). The numbers
    are copied into consolidated blocks, so that row selections on the frame stay fast; the
    batch builder, which must not copy, assembles its own frame (build.step_rows)."""
    data = {name: (pd.Series(values, dtype="str", index=index)
                   if isinstance(values, np.ndarray) and values.dtype == object else values)
            for name, values in columns.items()}
    return pd.DataFrame(data, index=index)


def take(columns: Columns, rows: slice | np.ndarray) -> dict[str, Column]:
    """The given rows of every column (a slice gives views)."""
    return {name: values[rows] for name, values in columns.items()}


__all__ = ["Column", "Columns", "Instant", "TimeLike", "DAY_US", "NAT", "to_us", "instants", "us_of",
           "n_rows", "column_array", "as_categorical", "columns_of", "frame_of", "take"]
