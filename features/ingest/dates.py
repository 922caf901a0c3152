"""Date formats of an extract: one per column, given or detected, never guessed silently.

Real extracts mix formats (a posting date `31.01.2024` beside a due date `20240229`), so a format
is chosen per date column:

- given: `"%d.%m.%Y"` means every date column; `"net_due_date=%Y%m%d"` one column (our name or any
  accepted spelling: `NetDueDate`, `FAEDT`); the column's own format wins over the bare one;
- detected otherwise: ISO 8601 (basic `20240131` included) when every value parses as such, else
  the one format of DETECTABLE_FORMATS that parses the most values. When two formats parse as many
  values and read some of them differently (`03/04/2024`: 3 April or 4 March?), detection refuses
  with AmbiguousDatesError naming the column, a row and the `--date-format` to pass.

Values no chosen format can read are not guessed either: validation quarantines their rows
(bad_event_time / bad_value, naming the column and the value).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from features import schema
from features.ingest.io import EVENT_ALIASES, MASTER_ALIASES, EventLogError, _key

EVERY_COLUMN = "*"  # key of the format that applies to every date column
ISO = "ISO8601"
_DAYS = ("%d.%m.%Y", "%d/%m/%Y", "%m/%d/%Y", "%d-%m-%Y", "%Y/%m/%d", "%d.%m.%y", "%m/%d/%y")
_TIMES = ("", " %H:%M", " %H:%M:%S")
DETECTABLE_FORMATS: tuple[str, ...] = tuple(d + t for d in _DAYS for t in _TIMES)
DATE_COLUMNS: frozenset[str] = frozenset(
    c.name for c in (*schema.EVENT_COLUMNS, *schema.MASTER_COLUMNS) if c.kind == "datetime")


class AmbiguousDatesError(EventLogError):
    """A date column two formats read differently: the user must say which one is meant."""


def parse_date_formats(given: str | Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """{column: format} from `--date-format` values ('FMT' or 'column=FMT'); EVERY_COLUMN holds a
    bare format. Column names may be any accepted spelling; an unknown or non-date column raises."""
    if given is None:
        return {}
    if isinstance(given, Mapping):
        items = list(given.items())
    else:
        items = []
        for text in [given] if isinstance(given, str) else list(given):
            column, sep, fmt = str(text).partition("=")
            items.append((column.strip(), fmt) if sep and "%" not in column
                         else (EVERY_COLUMN, str(text)))
    out: dict[str, str] = {}
    for column, fmt in items:
        if column != EVERY_COLUMN:
            name = EVENT_ALIASES.get(_key(column)) or MASTER_ALIASES.get(_key(column))
            if name not in DATE_COLUMNS:
                raise EventLogError(f"--date-format {column}={fmt}: {column!r} is not a date "
                                    f"column (date columns: {', '.join(sorted(DATE_COLUMNS))})")
            column = name
        if "%" not in fmt and fmt != ISO:
            raise EventLogError(f"--date-format {column}={fmt}: not a strftime format "
                                "(e.g. %d.%m.%Y)")
        out[column] = fmt
    return out


def format_of(formats: Mapping[str, str], column: str) -> str | None:
    """The format given for a column (its own, else the bare one); None: detect it."""
    return formats.get(column, formats.get(EVERY_COLUMN))


def _parse(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values, format=fmt, errors="coerce", utc=True).dt.tz_localize(None)


def detect_format(text: pd.Series, column: str, source: object = "event log") -> str:
    """The format of a text date column (see module docstring); text is stripped, missing = NA."""
    present = text.dropna()
    values = pd.Series(present.unique())
    if values.empty:
        return ISO
    iso_ok = int(_parse(values, ISO).notna().sum())
    if iso_ok == len(values):
        return ISO
    parsed = {fmt: _parse(values, fmt) for fmt in DETECTABLE_FORMATS}
    counts = {fmt: int(p.notna().sum()) for fmt, p in parsed.items()}
    best = max(counts.values())
    if best <= iso_ok:
        return ISO
    winners = [fmt for fmt, n in counts.items() if n == best]
    first = parsed[winners[0]]
    for other in winners[1:]:
        differ = (first != parsed[other]).to_numpy() & first.notna().to_numpy()
        if differ.any():
            value = values.iloc[int(np.flatnonzero(differ)[0])]
            row = int(np.flatnonzero(text.eq(value).fillna(False).to_numpy())[0])
            raise AmbiguousDatesError(
                f"{source}: column {column!r} is ambiguous: row {row} (line {row + 2} of a CSV "
                f"with a header) has {value!r}, which reads as {first[differ].iloc[0].date()} "
                f"with {winners[0]} and {parsed[other][differ].iloc[0].date()} with {other}; "
                f"pass --date-format {column}={winners[0]} (or the other one)")
    return winners[0]


def parse_dates(text: pd.Series, column: str, fmt: str | None, source: object = "event log"
                ) -> pd.Series:
    """Naive datetime64[us] of a stripped text column (NaT where missing or unparseable)."""
    fmt = fmt or detect_format(text, column, source)
    return _parse(text, fmt).astype("datetime64[us]")


__all__ = ["AmbiguousDatesError", "DETECTABLE_FORMATS", "EVERY_COLUMN", "ISO", "DATE_COLUMNS",
           "parse_date_formats", "format_of", "detect_format", "parse_dates"]
