"""SAP table extracts (BKPF, BSID/BSAD, MHND, dispute/promise/contact tables, CDHDR/CDPOS,
KNA1/KNB1/KNKK) to the event log and master history, through the same validation and quarantine
as `ingest`.

`convert_sap_extracts(folder, config)` reads a folder of extracts named after their tables
(BKPF.csv, BSAD.parquet, ...; CSV or Parquet, SAP field names as exported) and returns a
`SapResult`: the validated events (calculated activities derived, customer attributes as of each
event), the master history, the quarantine of extract rows (table, row, column, reason), the
validation's quarantine of events, a reconciliation per table and what each missing optional
table means. `write_sap_ledger` writes the ledger folder the rest of the pipeline reads.

Which field becomes what is data, in `features.ingest.sap_mapping` (rendered as
docs/sap_extracts.md); the settings (document types, reason codes, statuses) are
`features.config.sap.SapConfig`. Everything here is vectorised pandas: no loop runs per row.

Rows are numbered from 1 (the first data row under the header) in every message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import schema
from features.config.sap import SapConfig
from features.ingest import sap_mapping as M
from features.ingest.derive import add_calculated_activities
from features.ingest.io import write_table
from features.ingest.ledger_files import write_ledger_dir
from features.ingest.validate import validate_event_log, validate_master

A = schema.Activity
SUFFIXES = (".csv", ".txt", ".parquet", ".pq")
ISSUE_COLUMNS = ("table", "row", "column", "reason", "reason_text", "key")
_SEP = "|"


class SapExtractError(ValueError):
    """An extract that cannot be used at all: a missing required table or key column."""


@dataclass
class SapResult:
    events: pd.DataFrame
    master: pd.DataFrame
    quarantine: pd.DataFrame  # extract rows: table, row, column, reason, reason_text, key
    event_quarantine: pd.DataFrame  # events the validation quarantined (source_table/row kept)
    reconciliation: pd.DataFrame  # per table: rows in, mapped, ignored, quarantined, events
    missing_tables: list[tuple[str, str]] = field(default_factory=list)  # (table, meaning)
    notes: list[str] = field(default_factory=list)
    last_refresh: pd.Timestamp = field(default=pd.NaT)
    source_system: str = "SAP"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step


# --- reading ----------------------------------------------------------------------------------
def find_extracts(folder: str | Path) -> tuple[dict[str, Path], list[str]]:
    """Table name -> file in `folder` (by file name, case-insensitive, table aliases accepted),
    and the files that are no known table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SapExtractError(f"{folder}: no such folder of SAP extracts")
    names = {t.name: t.name for t in M.TABLES} | {a: t.name for t in M.TABLES for a in t.aliases}
    found: dict[str, Path] = {}
    unknown = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in SUFFIXES:
            continue
        table = names.get(path.stem.upper())
        if table is None:
            unknown.append(path.name)
        elif table in found:
            raise SapExtractError(f"{folder}: two extracts of {table}: {found[table].name} and "
                                  f"{path.name}; keep one")
        else:
            found[table] = path
    missing = [t for t in M.REQUIRED_TABLES if t not in found]
    if missing:
        raise SapExtractError(
            f"{folder}: required table(s) {', '.join(missing)} not found (files named "
            f"<TABLE>.csv or <TABLE>.parquet); found {sorted(p.name for p in found.values())}")
    return found, unknown


def _sniff(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_extract(path: str | Path, table: str) -> pd.DataFrame:
    """One extract as text columns under their SAP field names (aliases resolved); raises
    SapExtractError naming the table and column when a key column is missing."""
    path = Path(path)
    spec = M.TABLES_BY_NAME[table]
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""],
                              sep=_sniff(path), encoding="utf-8-sig")
    except Exception as exc:  # parser, decoding and Arrow errors all mean "cannot read"
        raise SapExtractError(f"{table} ({path.name}): cannot be read "
                              f"({type(exc).__name__}: {exc})") from exc
    rename = {c: str(c).strip().upper() for c in raw.columns}
    raw = raw.rename(columns=rename)
    for f in spec.fields:
        for alias in f.aliases:
            if alias in raw.columns and f.name not in raw.columns:
                raw = raw.rename(columns={alias: f.name})
    missing = [c for c in spec.required_fields if c not in raw.columns]
    if missing:
        what = "; ".join(f"{c} ({spec.field(c).maps_to})" for c in missing)
        raise SapExtractError(
            f"{table} ({path.name}), header row: missing key column(s) {what}; found "
            f"{list(raw.columns)}")
    raw.attrs["path"] = str(path)
    return raw


# --- parsing ----------------------------------------------------------------------------------
def _as_text(s: pd.Series) -> pd.Series:
    """Text with surrounding spaces removed; empty text is missing."""
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    if not pd.api.types.is_string_dtype(s) or s.dtype == object:
        s = s.astype("str")
    arr = pc.utf8_trim_whitespace(pa.array(s.array))
    arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, arr.type), arr)
    return pd.Series(arr, dtype="str", index=s.index)


def _pad(s: pd.Series, width: int | None) -> pd.Series:
    if not width:
        return s
    short = s.str.len().lt(width).fillna(False)
    if not short.any():
        return s
    digits = short & s.str.isdigit().fillna(False)
    return s.where(~digits, s.str.zfill(width))


def _parse_date(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.astype("datetime64[us]"), pd.Series(False, index=s.index)
    t = _as_text(s)
    missing = t.isna() | t.eq("00000000")
    out = _strptime(t.where(~missing), "%Y%m%d")
    retry = out.isna() & ~missing
    if retry.any():
        out[retry] = pd.to_datetime(t[retry], format="ISO8601", errors="coerce")
    return out.astype("datetime64[us]"), out.isna() & ~missing


def _to_float(t: pd.Series) -> pd.Series:
    """Text to numbers by Arrow's cast (C++); if any value is not a plain number, pandas'
    to_numeric marks just those as missing."""
    try:
        arr = pc.cast(pa.array(t.array), pa.float64())
        return pd.Series(arr.to_numpy(zero_copy_only=False), index=t.index)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(t, errors="coerce").astype("float64")


def _strptime(t: pd.Series, fmt: str) -> pd.Series:
    """Arrow's strptime (C++, no Python objects); unparseable text becomes NaT. YYYYMMDD of
    eight digits is read by integer arithmetic, as Arrow reads it (a day past the month's end
    runs into the next month, like Arrow's: 20230230 is 2023-03-02)."""
    arr = pa.array(t.astype("str").array)
    out = None
    if fmt == "%Y%m%d":
        eight = pc.and_(pc.equal(pc.binary_length(arr), 8), pc.ascii_is_decimal(arr)).fill_null(
            False).to_numpy(zero_copy_only=False)
        v = pc.cast(pc.if_else(pa.array(eight), arr, "0"), pa.int64()).fill_null(0).to_numpy(
            zero_copy_only=False)
        y, m, d = v // 10000, v // 100 % 100, v % 100
        ok = eight & (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31)
        month = np.where(ok, (y - 1970) * 12 + (m - 1), 0).astype("M8[M]")
        out = (month.astype("M8[D]") + np.where(ok, d - 1, 0).astype("m8[D]")).astype("M8[us]")
        out[~ok] = np.datetime64("NaT")
        rest = ~eight & pc.is_valid(arr).to_numpy(zero_copy_only=False)
        if rest.any():
            out[rest] = pc.strptime(pc.filter(arr, pa.array(rest)), format=fmt, unit="us",
                                    error_is_null=True).to_numpy(zero_copy_only=False)
    if out is None:
        out = pc.strptime(arr, format=fmt, unit="us", error_is_null=True).to_numpy(
            zero_copy_only=False)
    return pd.Series(out, index=t.index).astype("datetime64[us]")


def _parse_time(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    t = _as_text(s)
    missing = t.isna()
    if t.str.contains(":", regex=False).fillna(False).any():
        t = t.str.replace(":", "", regex=False)
    n = _to_float(t).to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        h, m, sec = n // 10000, n // 100 % 100, n % 100
        ok = (n >= 0) & (h < 24) & (m < 60) & (sec < 60) & (n % 1 == 0)
    seconds = np.where(ok, h * 3600 + m * 60 + sec, 0).astype(np.int64)
    us = np.where(ok, seconds * 1_000_000, np.iinfo(np.int64).min).view("m8[us]")
    return pd.Series(us, index=s.index), pd.Series(~ok, index=s.index) & ~missing


def _parse_timestamp(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.astype("datetime64[us]"), pd.Series(False, index=s.index)
    t = _as_text(s)
    missing = t.isna() | t.str.fullmatch(r"0+(\.0*)?").fillna(False)
    out = _strptime(t.str.slice(0, 14).where(~missing), "%Y%m%d%H%M%S")
    retry = out.isna() & ~missing
    if retry.any():
        out[retry] = pd.to_datetime(t[retry], format="ISO8601", errors="coerce")
    return out.astype("datetime64[us]"), out.isna() & ~missing


def _parse_number(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        return s.astype("float64"), pd.Series(False, index=s.index)
    t = _as_text(s)
    missing = t.isna()
    n = _to_float(t)
    retry = n.isna() & ~missing
    if retry.any():  # SAP's trailing minus: 100.00-
        r = t[retry]
        n[retry] = pd.to_numeric(r.str.rstrip("-"), errors="coerce").where(r.str.endswith("-")) \
            * -1
    return n.astype("float64"), n.isna() & ~missing


def parse_table(raw: pd.DataFrame, table: str,
                missing_reason: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed table (only the mapping's fields; `_row` numbers the rows from 1, `_bad` marks the
    quarantined ones) and the issues: one row per quarantined row, its first problem."""
    spec = M.TABLES_BY_NAME[table]
    n = len(raw)
    out: dict[str, pd.Series] = {"_row": pd.Series(np.arange(1, n + 1), index=raw.index)}
    reason = np.full(n, None, dtype=object)
    column = np.full(n, None, dtype=object)
    text = np.full(n, None, dtype=object)

    def flag(mask, col: str, code: str, message) -> None:
        """message(rows): the texts of the hit rows (1-based numbers), built only for them."""
        hit = np.asarray(mask, dtype=bool) & pd.isna(reason)
        if not hit.any():
            return
        reason[hit] = code
        column[hit] = col
        text[hit] = message(np.flatnonzero(hit))

    for f in spec.fields:
        if f.name not in raw.columns:
            continue
        s = raw[f.name]
        if f.kind in ("id", "text", "currency"):
            v = _as_text(s)
            out[f.name] = _pad(v, f.width) if f.kind == "id" else v
            continue
        if f.kind == "date":
            out[f.name], bad = _parse_date(s)
            what = "a date (YYYYMMDD)"
        elif f.kind == "time":
            out[f.name], bad = _parse_time(s)
            what = "a time (HHMMSS)"
        elif f.kind == "timestamp":
            out[f.name], bad = _parse_timestamp(s)
            what = "a timestamp (YYYYMMDDHHMMSS)"
        else:
            out[f.name], bad = _parse_number(s)
            if f.kind == "int":
                bad = bad | (out[f.name].notna() & out[f.name].mod(1).ne(0))
            what = "a number ('.' as decimal separator)" if f.kind == "amount" else "a whole number"
        if bad.any():
            flag(bad, f.name, "bad_value", lambda idx, s=s, f=f, what=what: np.array(
                [f"{table} row {i + 1}, column {f.name}: '{v}' is not {what}"
                 for i, v in zip(idx, _as_text(s.iloc[idx]).fillna(""))], dtype=object))
    frame = pd.DataFrame(out)
    for f in spec.fields:
        if f.required and f.name in frame:
            code = (missing_reason or {}).get(f.name, "missing_key")
            flag(frame[f.name].isna(), f.name, code, lambda idx, f=f: np.array(
                [f"{table} row {i + 1}, column {f.name}: empty ({f.maps_to})" for i in idx],
                dtype=object))
    frame["_bad"] = ~pd.isna(reason)
    issues = _issues(frame, table, reason, column, text)
    return frame, issues


def _key_text(frame: pd.DataFrame, table: str) -> pd.Series:
    spec = M.TABLES_BY_NAME[table]
    keys = [f.name for f in spec.fields if f.required and f.kind == "id" and f.name in frame]
    out = pd.Series("", index=frame.index, dtype="str")
    for k in keys:
        out = out + k + "=" + frame[k].fillna("").astype("str") + " "
    return out.str.strip()


def _issues(frame: pd.DataFrame, table: str, reason, column, text) -> pd.DataFrame:
    hit = ~pd.isna(np.asarray(reason, dtype=object))
    sub = frame[hit]
    return pd.DataFrame({"table": table, "row": sub["_row"].to_numpy(),
                         "column": np.asarray(column, dtype=object)[hit],
                         "reason": np.asarray(reason, dtype=object)[hit],
                         "reason_text": np.asarray(text, dtype=object)[hit],
                         "key": _key_text(sub, table).to_numpy()},
                        columns=list(ISSUE_COLUMNS))


class _Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps: dict[str, float] = {}

    def mark(self, step: str) -> dict[str, float]:
        now = time.perf_counter()
        self.steps[step] = round(now - self.start, 3)
        self.start = now
        return self.steps


class _Ledger:
    """Extract rows, their quarantine and what became of the rest, for the reconciliation."""

    def __init__(self) -> None:
        self.frames: dict[str, pd.DataFrame] = {}
        self.issues: list[pd.DataFrame] = []
        self.ignored: dict[str, pd.Series] = {}  # table -> reason per ignored row (by _row)

    def add(self, table: str, frame: pd.DataFrame, issues: pd.DataFrame) -> None:
        self.frames[table] = frame
        self.issues.append(issues)

    def quarantine(self, table: str, mask, column: str, code: str, message) -> None:
        """Quarantine rows of `table` that are still good (mask aligned with the frame)."""
        frame = self.frames[table]
        hit = np.asarray(mask, dtype=bool) & ~frame["_bad"].to_numpy()
        if not hit.any():
            return
        sub = frame[hit]
        if callable(message):
            message = message(sub)
        msg = (np.asarray(message, dtype=object) if isinstance(message, (np.ndarray, pd.Series))
               else np.full(len(sub), message, dtype=object))
        self.issues.append(pd.DataFrame({
            "table": table, "row": sub["_row"].to_numpy(), "column": column, "reason": code,
            "reason_text": msg, "key": _key_text(sub, table).to_numpy()},
            columns=list(ISSUE_COLUMNS)))
        frame.loc[hit, "_bad"] = True

    def ignore(self, table: str, mask, why: str) -> None:
        frame = self.frames[table]
        hit = np.asarray(mask, dtype=bool) & ~frame["_bad"].to_numpy()
        rows = pd.Series(why, index=frame.loc[hit, "_row"].to_numpy(), dtype="str")
        prev = self.ignored.get(table)
        self.ignored[table] = rows if prev is None else pd.concat(
            [prev, rows[~rows.index.isin(prev.index)]])

    def good(self, table: str) -> pd.DataFrame:
        frame = self.frames.get(table)
        if frame is None:
            return pd.DataFrame()
        return frame[~frame["_bad"].to_numpy()]


def _messages(table: str, rows: pd.Series, column: str, template: str, **values) -> np.ndarray:
    """f"{table} row {r}, column {column}: " + template.format(**row values), vectorised."""
    out = (table + " row " + rows.astype("str") + ", column " + column + ": ").to_numpy(
        dtype=object)
    parts = template.split("{")
    msg = pd.Series(parts[0], index=rows.index, dtype="str")
    for part in parts[1:]:
        name, rest = part.split("}", 1)
        msg = msg + pd.Series(values[name], index=rows.index).astype("str").fillna("") + rest
    return out + msg.to_numpy(dtype=object)


def _key(*cols: pd.Series) -> pd.Series:
    out = cols[0].fillna("").astype("str")
    for c in cols[1:]:
        out = out + _SEP + c.fillna("").astype("str")
    return out


def _year(t: pd.Series) -> pd.Series:
    """The year of each date as text (Arrow: no Python objects)."""
    year = pc.cast(pc.year(pa.array(t.to_numpy(), type=pa.timestamp("us"))), pa.string())
    return pd.Series(year, dtype="str", index=t.index)


def _arrow(values) -> pa.Array:
    """Text keys as an Arrow array (no copy for pandas' Arrow-backed strings)."""
    values = pd.Series(values) if not isinstance(values, (pd.Series, pd.Index)) else values
    if not pd.api.types.is_string_dtype(values.dtype) or values.dtype == object:
        values = values.astype("str")
    return pa.array(values.array)


def _is_int(values) -> bool:
    return pd.api.types.is_integer_dtype(getattr(values, "dtype", None))


def _isin(values: pd.Series, candidates) -> pd.Series:
    """values.isin(candidates) for text keys, by Arrow's hash join (pandas' isin on Arrow strings
    goes through Python objects: 30 times slower on a million keys)."""
    if isinstance(candidates, set):
        candidates = pd.Series(sorted(candidates), dtype="str")
    if len(values) == 0:
        return pd.Series(False, index=values.index)
    if _is_int(values) and _is_int(candidates):  # integer key codes (_DocKeys)
        hit = pd.Series(np.asarray(values)).isin(np.asarray(candidates)).to_numpy()
        return pd.Series(hit, index=values.index)
    hit = pc.is_in(_arrow(values), value_set=pc.unique(_arrow(candidates)).drop_null())
    return pd.Series(hit.fill_null(False).to_numpy(zero_copy_only=False), index=values.index)


def _positions(keys: pd.Series, index) -> np.ndarray:
    """Position of each key in a unique text index (-1 where absent). The hash table is built
    on the smaller side: a few thousand dispute keys against millions of items probe the items
    through a small table instead of hashing the items for each lookup."""
    if len(keys) == 0 or len(index) == 0:
        return np.full(len(keys), -1)
    if _is_int(keys) and _is_int(index):  # integer key codes (_DocKeys): pandas' int64 hash
        index = index if isinstance(index, pd.Index) else pd.Index(np.asarray(index))
        return index.get_indexer(np.asarray(keys))
    k, t = _arrow(keys), _arrow(pd.Series(index))
    if len(t) <= 4 * len(k):
        return np.asarray(pc.index_in(k, value_set=t).fill_null(-1).to_numpy(
            zero_copy_only=False))
    uniq = pc.unique(k).drop_null()
    hit = np.asarray(pc.index_in(t, value_set=uniq).fill_null(-1).to_numpy(
        zero_copy_only=False))
    row_of = np.full(len(uniq), -1)
    found = np.flatnonzero(hit >= 0)
    row_of[hit[found]] = found
    at = np.asarray(pc.index_in(k, value_set=uniq).fill_null(-1).to_numpy(zero_copy_only=False))
    return np.where(at >= 0, row_of[np.maximum(at, 0)], -1)


class _Vocab:
    """Integer code per distinct text value, the same in every table and step (0: missing)."""

    def __init__(self, first: int = 1) -> None:
        self.first = first
        self.values = pa.array([], pa.large_string())

    def codes(self, arr: pa.Array) -> np.ndarray:
        if len(arr) == 0:
            return np.zeros(0, dtype=np.int64)
        at = pc.index_in(arr, value_set=self.values)
        new = pc.filter(arr, pc.and_(pc.is_null(at), pc.is_valid(arr)))
        if len(new):
            self.values = pa.concat_arrays([self.values, pc.unique(new)])
            at = pc.index_in(arr, value_set=self.values)
        out = np.asarray(at.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        return np.where(out >= 0, out + self.first, 0)


_NUMBER_BITS = 37  # document number codes: 0 missing, 10**10..1.1e11 digits, above: other text
_DIGITS = 10


class _DocKeys:
    """SAP document keys (BUKRS, BELNR[, GJAHR[, BUZEI]]) as int64 codes that are equal exactly
    when the text keys are (a missing part counts as empty, like in `_key`), so that documents and
    items join by integer hash instead of by `BUKRS|BELNR|GJAHR` text. Document numbers of up to
    ten digits are their own code (length and value: leading zeros kept apart); other numbers,
    and company code, year and line item, get codes from vocabularies shared by every table. A
    key without year (company code and number) never equals one with a year, even an empty one.
    """

    _ABSENT = 1  # part not in the key at all (a missing one is 0)

    def __init__(self) -> None:
        self.bukrs, self.year, self.item = _Vocab(2), _Vocab(2), _Vocab(2)
        self.numbers = _Vocab(11 * 10 ** _DIGITS)
        self.prefixes = pd.Index([], dtype="int64")

    @staticmethod
    def _text(s) -> pa.Array:
        arr = pc.cast(_arrow(s), pa.large_string())
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.large_string()), arr)

    def _number(self, s) -> np.ndarray:
        arr = self._text(s)
        length = pc.binary_length(arr)
        digits = pc.and_(pc.ascii_is_decimal(arr), pc.less_equal(length, _DIGITS)).fill_null(
            False)
        value = pc.cast(pc.if_else(digits, arr, "0"), pa.int64()).fill_null(0).to_numpy(
            zero_copy_only=False)
        size = length.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        out = np.where(digits.to_numpy(zero_copy_only=False), size * 10 ** _DIGITS + value, 0)
        other = ~digits.to_numpy(zero_copy_only=False) & pc.is_valid(arr).to_numpy(
            zero_copy_only=False)
        if other.any():
            out[other] = self.numbers.codes(pc.filter(arr, pa.array(other)))
        return out

    def code(self, bukrs, belnr, gjahr=None, buzei=None) -> np.ndarray:
        n = len(belnr)
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        parts = [self.bukrs.codes(self._text(bukrs)),
                 self.year.codes(self._text(gjahr)) if gjahr is not None
                 else np.full(n, self._ABSENT, dtype=np.int64),
                 self.item.codes(self._text(buzei)) if buzei is not None
                 else np.full(n, self._ABSENT, dtype=np.int64)]
        raw = (parts[0] << 42) | (parts[1] << 21) | parts[2]
        at = self.prefixes.get_indexer(raw)
        if (at < 0).any():
            self.prefixes = self.prefixes.append(pd.Index(np.unique(raw[at < 0])))
            at = self.prefixes.get_indexer(raw)
        return (at.astype(np.int64) << _NUMBER_BITS) | self._number(belnr)


def lookup(keys: pd.Series, table: pd.Series) -> pd.Series:
    """table[key] for each key (missing where absent); `table` has a unique text index."""
    if len(keys) == 0 or len(table) == 0:
        return pd.Series(table.array.take(np.full(len(keys), -1), allow_fill=True),
                         index=keys.index)
    return pd.Series(table.array.take(_positions(keys, table.index), allow_fill=True),
                     index=keys.index)


# --- conversion -------------------------------------------------------------------------------
def _doc_classes(config: SapConfig) -> dict[str, str]:
    lists = (("invoice", config.invoice_document_types),
             ("credit_memo", config.credit_memo_document_types),
             ("payment", config.payment_document_types),
             ("clearing", config.clearing_document_types),
             ("write_off", config.write_off_document_types))
    classes: dict[str, str] = {}
    for name, types in lists:
        for t in types:
            if t in classes:
                raise SapExtractError(f"sap config: document type {t!r} is both {classes[t]} "
                                      f"and {name}")
            classes[t] = name
    return classes


def _case_id(config: SapConfig, bukrs: pd.Series, belnr: pd.Series, gjahr: pd.Series
             ) -> pd.Series:
    if config.invoice_id == "BELNR":
        return belnr
    if config.invoice_id == "BUKRS-BELNR":
        return bukrs + "-" + belnr
    return bukrs + "-" + belnr + "-" + gjahr


def convert_sap_extracts(folder: str | Path, config: SapConfig | None = None) -> SapResult:
    """Read a folder of SAP extracts and return the validated event log, master and reports."""
    config = config or SapConfig()
    classes = _doc_classes(config)
    clock = _Clock()
    files, unknown_files = find_extracts(folder)
    L = _Ledger()
    notes: list[str] = []
    if unknown_files:
        notes.append(f"files that are no known table, not read: {', '.join(unknown_files)}")
    missing_tables = [(t.name, t.if_missing) for t in M.TABLES
                      if not t.required and t.name not in files and t.name != "MHNK"]
    for table, path in files.items():
        override = ({"AUGBL": "missing_clearing_date", "AUGDT": "missing_clearing_date"}
                    if table == "BSAD" else None)
        frame, issues = parse_table(read_extract(path, table), table, override)
        L.add(table, frame, issues)

    clock.mark("read")
    # Extract time and source system.
    ext = L.good("EXTRACT")
    if config.extract_time is not None:
        last_refresh = pd.Timestamp(config.extract_time)
    elif len(ext):
        last_refresh = ext["DATUM"].iloc[0] + (ext["UZEIT"].fillna(pd.Timedelta(0)).iloc[0]
                                               if "UZEIT" in ext else pd.Timedelta(0))
    else:
        last_refresh = pd.NaT
    source_system = (config.source_system
                     or (ext["LOGSYS"].iloc[0] if len(ext) and "LOGSYS" in ext
                         and pd.notna(ext["LOGSYS"].iloc[0]) else None) or "SAP")

    # Company code currencies.
    currency = dict(config.company_currencies)
    t001 = L.good("T001")
    if len(t001):
        currency.update(dict(zip(t001["BUKRS"], t001["WAERS"])))

    # --- BKPF: the documents -------------------------------------------------------------------
    keys = _DocKeys()
    bkpf = L.frames["BKPF"]
    bkpf["_doc"] = keys.code(bkpf["BUKRS"], bkpf["BELNR"], bkpf["GJAHR"])
    dup_doc = bkpf["_doc"].duplicated().to_numpy()
    L.quarantine("BKPF", dup_doc & ~bkpf["_bad"].to_numpy(), "BELNR", "duplicate_key",
                 "second BKPF row of the same document (BUKRS, BELNR, GJAHR)")
    bkpf["_class"] = bkpf["BLART"].map(classes)
    unknown = bkpf["_class"].isna() & bkpf["BLART"].notna()
    if unknown.any():
        lists = (f"invoice {', '.join(config.invoice_document_types)}; credit memo "
                 f"{', '.join(config.credit_memo_document_types)}; payment "
                 f"{', '.join(config.payment_document_types)}; clearing "
                 f"{', '.join(config.clearing_document_types)}; write-off "
                 f"{', '.join(config.write_off_document_types) or '-'}")
        L.quarantine("BKPF", unknown, "BLART", "unknown_document_type",
                     lambda sub: _messages("BKPF", sub["_row"], "BLART",
                               "document type '{t}' is in none of the configured lists ("
                               + lists.replace("{", "(").replace("}", ")")
                               + "); add it to the sap settings", t=bkpf["BLART"]))
    if "HWAER" in bkpf and currency:
        expected = bkpf["BUKRS"].map(currency)
        wrong = expected.notna() & bkpf["HWAER"].notna() & expected.ne(bkpf["HWAER"])
        L.quarantine("BKPF", wrong.fillna(False), "HWAER", "currency_mismatch",
                     lambda sub: _messages("BKPF", sub["_row"], "HWAER",
                               "local currency '{c}' but company code {b} books in {e}",
                               c=bkpf["HWAER"], b=bkpf["BUKRS"], e=expected))
    tod = bkpf["CPUTM"] if "CPUTM" in bkpf else pd.Series(pd.NaT, index=bkpf.index,
                                                          dtype="timedelta64[us]")
    cpudt = bkpf["CPUDT"] if "CPUDT" in bkpf else pd.Series(pd.NaT, index=bkpf.index,
                                                            dtype="datetime64[us]")
    entered = cpudt + tod.fillna(pd.Timedelta(0))
    same_day = cpudt.eq(bkpf["BUDAT"]) & tod.notna() & config.time_of_day_from_entry
    bkpf["_time"] = bkpf["BUDAT"] + tod.where(same_day, pd.Timedelta(0)).fillna(pd.Timedelta(0))
    bkpf["_recorded"] = entered.where(cpudt.notna(), bkpf["_time"])
    if "HWAER" not in bkpf:
        bkpf["HWAER"] = bkpf["BUKRS"].map(currency) if currency else np.nan

    clock.mark("bkpf")
    # --- BSID/BSAD: the customer items ---------------------------------------------------------
    for t in ("BSID", "BSAD"):
        f = L.frames[t]
        f["_item"] = keys.code(f["BUKRS"], f["BELNR"], f["GJAHR"], f["BUZEI"])
        L.quarantine(t, f["_item"].duplicated(), "BUZEI", "duplicate_key",
                     "second row of the same item (BUKRS, BELNR, GJAHR, BUZEI)")
        bad_sign = ~f["SHKZG"].isin(["S", "H"]) & f["SHKZG"].notna()
        L.quarantine(t, bad_sign, "SHKZG", "bad_value",
                     lambda sub: _messages(t, sub["_row"], "SHKZG",
                                           "'{v}' is neither S nor H", v=f["SHKZG"]))
    bsid, bsad = L.frames["BSID"], L.frames["BSAD"]
    L.quarantine("BSID", _isin(bsid["_item"], bsad.loc[~bsad["_bad"], "_item"]), "BELNR",
                 "open_and_cleared",
                 "item is in BSAD too (cleared): BSID and BSAD were extracted at different times")
    good_docs = bkpf.loc[~bkpf["_bad"]].set_index("_doc")
    all_docs = bkpf[~dup_doc].set_index("_doc")
    for t in ("BSID", "BSAD"):
        f = L.frames[t]
        f["_doc"] = keys.code(f["BUKRS"], f["BELNR"], f["GJAHR"])
        pos = _positions(f["_doc"], all_docs.index)
        f["_hpos"] = pos
        L.quarantine(t, pos < 0, "BELNR", "no_header",
                     lambda sub: _messages(t, sub["_row"], "BELNR", "document {b} {y} of company "
                                           "code {c} is not in BKPF", b=f["BELNR"], y=f["GJAHR"],
                                           c=f["BUKRS"]))
        hdr_bad = np.where(pos >= 0, all_docs["_bad"].to_numpy()[pos], False)
        hdr_row = pd.Series(all_docs["_row"].to_numpy()[pos], index=f.index)
        L.quarantine(t, hdr_bad, "BELNR", "header_quarantined",
                     lambda sub: _messages(t, sub["_row"], "BELNR", "its document header (BKPF "
                                           "row {r}) is quarantined", r=hdr_row))
    items = []
    for t in ("BSID", "BSAD"):
        f = L.frames[t]
        g = f.loc[~f["_bad"].to_numpy(), [c for c in f.columns if c not in ("_bad", "ZLSPR")]]
        g["_table"] = pd.Categorical.from_codes(np.full(len(g), _TABLE_NAMES.index(t)),
                                                categories=_TABLE_NAMES)
        g["_open"] = t == "BSID"
        items.append(g)
    items = pd.concat(items, ignore_index=True)
    for col, kind in (("AUGBL", "str"), ("AUGDT", "datetime64[us]"), ("REBZG", "str"),
                      ("REBZJ", "str"), ("RSTGR", "str"), ("NETDT", "datetime64[us]"),
                      ("ZFBDT", "datetime64[us]"), ("ZTERM", "str"), ("ZBD1T", "float64"),
                      ("ZBD2T", "float64"), ("ZBD3T", "float64"), ("MANST", "float64"),
                      ("MADAT", "datetime64[us]"), ("AUGGJ", "str")):
        if col not in items:
            items[col] = pd.Series(pd.NA if kind == "str" else None, index=items.index,
                                   dtype=kind)
    pos = items["_hpos"].to_numpy()  # their headers are good: the others were quarantined
    for col, src in (("_class", "_class"), ("_time", "_time"), ("_recorded", "_recorded"),
                     ("_user", "USNAM"), ("_blart", "BLART"), ("_hwaer", "HWAER")):
        items[col] = (all_docs[src].array.take(pos, allow_fill=True) if src in all_docs
                      else None)
    items["_signed"] = np.where(items["SHKZG"].eq("H"), -items["DMBTR"], items["DMBTR"])

    # Net due date: NETDT/FAEDT, else ZFBDT + ZBD3T / ZBD2T / ZBD1T days, else + ZTERM net days.
    days = items["ZBD3T"].where(items["ZBD3T"].gt(0)).fillna(
        items["ZBD2T"].where(items["ZBD2T"].gt(0))).fillna(items["ZBD1T"])
    terms_days = items["ZTERM"].map(_terms_net_days(items["ZTERM"]))
    days = days.fillna(terms_days)
    items["_due"] = items["NETDT"].fillna(items["ZFBDT"] + pd.to_timedelta(days, unit="D"))
    # The clearing document's key (its year: AUGGJ, else the year of the clearing date).
    items["_aug"] = keys.code(items["BUKRS"], items["AUGBL"],
                              items["AUGGJ"].fillna(_year(items["AUGDT"])))

    clock.mark("items")
    # --- cases: each item's invoice --------------------------------------------------------------
    is_inv = items["_class"].eq("invoice")
    items["_case"] = _case_id(config, items["BUKRS"], items["BELNR"], items["GJAHR"]).where(
        is_inv)
    has_ref = items["REBZG"].notna() & ~is_inv
    ref = items.loc[has_ref, ["BUKRS", "REBZG", "REBZJ", "_doc"]]
    # A reference without year (REBZJ) matches the document number in any year.
    ref_key = pd.Series(np.where(ref["REBZJ"].notna(),
                                 keys.code(ref["BUKRS"], ref["REBZG"], ref["REBZJ"]),
                                 keys.code(ref["BUKRS"], ref["REBZG"])), index=ref.index)
    items["_short"] = keys.code(items["BUKRS"], items["BELNR"])
    case = pd.Series(pd.NA, index=ref.index, dtype="str")
    invoices_known = items.loc[is_inv, ["_doc", "_short", "_case"]]
    known = invoices_known
    for _ in range(8):  # residual items of residual items: follow the chain
        todo = case.isna().to_numpy()
        if not todo.any():
            break
        table = pd.concat([known.drop_duplicates("_doc").set_index("_doc")["_case"],
                           known.drop_duplicates("_short", keep="last").set_index("_short")[
                               "_case"]])
        found = lookup(ref_key[todo], table[~table.index.duplicated()]).dropna()
        if found.empty:
            break
        case = case.fillna(found.reindex(case.index))
        # The documents just resolved can be referenced in turn (a residual of a residual).
        known = pd.DataFrame({"_doc": ref.loc[found.index, "_doc"],
                              "_short": items.loc[found.index, "_short"], "_case": found})
    items["_case"] = items["_case"].fillna(case.reindex(items.index))
    # Items without a reference: the invoice of the items cleared with them, when only one.
    if (items["_case"].isna() & items["AUGBL"].notna()).any():
        clearing = items["_aug"]
        cleared_cases = pd.DataFrame({"c": clearing, "case": items["_case"]})[
            items["_case"].notna() & items["AUGBL"].notna()].drop_duplicates()
        unique = cleared_cases.drop_duplicates("c", keep=False).set_index("c")["case"]
        by_clearing = lookup(clearing, unique).where(items["AUGBL"].notna())
        items["_case"] = items["_case"].fillna(by_clearing.where(~is_inv))
    lost = items["_case"].isna()
    if lost.any():
        for t in ("BSID", "BSAD"):
            f = L.frames[t]
            rows = set(items.loc[lost & items["_table"].eq(t), "_row"])
            known_ref = items.loc[lost & items["_table"].eq(t) & items["REBZG"].notna(), "_row"]
            mask = f["_row"].isin(list(rows))
            ref_unknown = f["_row"].isin(set(known_ref))
            L.quarantine(t, mask & ref_unknown, "REBZG", "unknown_invoice",
                         lambda sub: _messages(
                             t, sub["_row"], "REBZG", "references document {r} {y}, which is no "
                             "invoice in BKPF/BSID/BSAD", r=f["REBZG"],
                             y=f["REBZJ"] if "REBZJ" in f else ""))
            L.quarantine(t, mask & ~ref_unknown, "REBZG", "unassigned_item",
                         lambda sub: _messages(
                             t, sub["_row"], "REBZG", "{k} item of document {b} references no "
                             "invoice and its clearing identifies none (cash on account)",
                             k=f["SHKZG"], b=f["BELNR"]))
        items = items[~lost].reset_index(drop=True)
    # Each invoice as a number (`_cid`) from here on; its text (the case id) goes on the events.
    items["_cid"], case_names = pd.factorize(items["_case"])

    clock.mark("cases")
    # One invoice per invoice document; its first customer item gives the due date and terms.
    is_inv = items["_class"].eq("invoice").to_numpy()
    cid = items["_cid"].to_numpy()
    posting = ["_case", "_cid", "_class", "_time", "KUNNR", "_user", "_blart", "_recorded",
               "_table", "_row"]
    rows = np.flatnonzero(is_inv)
    inv = _first_rows(items, rows, cid[rows], "_signed", posting + [
        "_due", "ZTERM", "BUKRS", "_hwaer"]).set_index("_case")
    inv_of_cid = np.full(len(case_names), -1)
    inv_of_cid[inv["_cid"].to_numpy()] = np.arange(len(inv))
    parts: list[pd.DataFrame] = []
    parts.append(_events(A.INVOICE_POSTED, inv.index.to_series(), inv["_time"], cid=inv["_cid"],
                         customer=inv["KUNNR"], amount=inv["_sum"].round(2),
                         user=inv["_user"], document_type=inv["_blart"],
                         recorded=inv["_recorded"], table=inv["_table"], row=inv["_row"],
                         net_due_date=inv["_due"], payment_terms=inv["ZTERM"],
                         company_code=inv["BUKRS"]))
    inv = pd.DataFrame({"customer": inv["KUNNR"], "company": inv["BUKRS"], "due": inv["_due"],
                        "terms": inv["ZTERM"], "hwaer": inv["_hwaer"]})

    # Postings of credit memos and payments: one event per document and invoice.
    doc = items["_doc"].to_numpy()
    rows = np.flatnonzero(~is_inv)
    docs = _first_rows(items, rows, _pair(doc[rows], cid[rows]), "_signed", posting)
    for cls, activity in (("credit_memo", A.CREDIT_MEMO_POSTED),
                          ("payment", A.INCOMING_PAYMENT_POSTED)):
        d = docs[docs["_class"].eq(cls).to_numpy()]
        parts.append(_events(activity, d["_case"], d["_time"], cid=d["_cid"],
                             customer=d["KUNNR"],
                             amount=(-d["_sum"]).round(2), user=d["_user"],
                             document_type=d["_blart"], recorded=d["_recorded"],
                             table=d["_table"], row=d["_row"]))
    rows = np.flatnonzero((items["SHKZG"].eq("S") & items["_class"].isin(
        ["payment", "clearing", "write_off"])).to_numpy())
    res = _first_rows(items, rows, _pair(doc[rows], cid[rows]), "DMBTR", posting)
    res = res.rename(columns={"_sum": "amount", "_time": "time", "_recorded": "recorded",
                              "_user": "user", "_blart": "blart", "KUNNR": "customer",
                              "_table": "table", "_row": "row"})
    parts.append(_events(A.RESIDUAL_ITEM_CREATED, res["_case"], res["time"], cid=res["_cid"],
                         customer=res["customer"], amount=res["amount"].round(2),
                         user=res["user"], document_type=res["blart"], recorded=res["recorded"],
                         table=res["table"], row=res["row"]))

    clock.mark("postings")
    # --- clearing: invoice cleared / written off -------------------------------------------------
    parts.append(_terminal_events(items, L, good_docs, config, keys))

    clock.mark("clearing")
    # --- dunning --------------------------------------------------------------------------------
    cases = _CaseIndex(items, keys)
    run_time = pd.to_timedelta(config.dunning_run_time)
    if "MHND" in L.frames:
        frame = L.frames["MHND"]
        case = _find_case(frame, "MHND", L, cases, by_item=True)
        good = ~frame["_bad"].to_numpy()
        d = frame[good]
        level = d["MAHNN"] if "MAHNN" in d else pd.Series(np.nan, index=d.index)
        if "MAHNS" in d:
            level = level.fillna(d["MAHNS"])
        parts.append(_events(A.DUNNING_RUN, case[good], d["LAUFD"] + run_time,
                             dunning_level=level, user=config.dunning_user, table="MHND",
                             row=d["_row"]))
    else:
        dunned = items[items["MADAT"].notna()]
        if len(dunned):
            notes.append("MHND not exported: one dunning_run per item at its last dunning date "
                         "(BSID/BSAD-MADAT, level MANST); earlier runs are unknown")
        parts.append(_events(A.DUNNING_RUN, dunned["_case"], dunned["MADAT"] + run_time,
                             dunning_level=dunned["MANST"], user=config.dunning_user,
                             table=dunned["_table"], row=dunned["_row"]))
    if "MHNK" in L.frames:
        L.ignore("MHNK", np.ones(len(L.frames["MHNK"]), bool),
                 "dunning notice header: the items are read from MHND")

    clock.mark("dunning")
    # --- disputes, promises, contacts ------------------------------------------------------------
    local_currency = inv["hwaer"]
    disputes = _disputes(L, config, cases, local_currency, notes)
    if disputes is not None:
        parts.append(_events(A.DISPUTE_CASE_CREATED, disputes["_case"], disputes["time"],
                             amount=disputes["amount"], user=disputes["user"],
                             dispute_case_id=disputes["dispute_id"], table=disputes["_table"],
                             row=disputes["_row"]))
    if "UDM_P2P_ATTR" in L.frames:
        case = _find_case(L.frames["UDM_P2P_ATTR"], "UDM_P2P_ATTR", L, cases)
        _check_currency(L, "UDM_P2P_ATTR", "PROMISED_CURR", case, local_currency)
        p2p = L.good("UDM_P2P_ATTR")
        c = case[~L.frames["UDM_P2P_ATTR"]["_bad"].to_numpy()]
        parts.append(_events(A.PROMISE_TO_PAY_CREATED, c, p2p["CREATE_TIME"],
                             amount=p2p.get("PROMISED_AMT"), promised_date=p2p["PROMISE_DATE"],
                             user=p2p.get("CREATED_BY"), table="UDM_P2P_ATTR", row=p2p["_row"]))
    if "UDM_CONTACT" in L.frames:
        case = _find_case(L.frames["UDM_CONTACT"], "UDM_CONTACT", L, cases)
        con = L.good("UDM_CONTACT")
        c = case[~L.frames["UDM_CONTACT"]["_bad"].to_numpy()]
        parts.append(_events(A.COLLECTION_CONTACT, c, con["CREATE_TIME"],
                             user=con.get("CREATED_BY"), table="UDM_CONTACT", row=con["_row"]))

    clock.mark("fscm")
    # --- change documents: payment blocks, dispute resolutions, master history -------------------
    changes = _change_documents(L)
    if changes is not None:
        blocks = changes[changes["_kind"].eq("block")]
        if len(blocks):
            key = blocks["TABKEY"].str.slice(M.CLIENT_WIDTH)
            widths = np.cumsum([0] + [w for _, w in M.BSEG_TABKEY])
            f = {name: key.str.slice(widths[i], widths[i + 1])
                 for i, (name, _) in enumerate(M.BSEG_TABKEY)}
            case = cases.find(f["BUKRS"], f["BELNR"], f["GJAHR"], f["BUZEI"])
            unknown_item = case.isna()
            _quarantine_changes(L, blocks[unknown_item], "TABKEY", "unknown_invoice",
                                "payment block change of item {k}, which is no item of an "
                                "invoice in BSID/BSAD")
            b = blocks[~unknown_item]
            parts.append(_events(A.PAYMENT_BLOCK_SET, case[~unknown_item], b["_time"],
                                 payment_block=b["VALUE_NEW"].fillna(""), user=b["USERNAME"],
                                 table="CDPOS", row=b["_row"]))
        status = changes[changes["_kind"].eq("status")]
        if len(status) and disputes is not None:
            guid = status["OBJECTID"]
            dispute = disputes.drop_duplicates("CASE_GUID").set_index("CASE_GUID")
            case = lookup(guid, dispute["_case"])
            resolved = (status["VALUE_NEW"].isin(config.dispute_resolved_statuses)
                        & ~status["VALUE_OLD"].isin(config.dispute_resolved_statuses))
            _quarantine_changes(L, status[case.isna()], "OBJECTID", "unknown_invoice",
                                "status change of case {k}, which is no exported dispute case")
            L.ignore("CDPOS", L.frames["CDPOS"]["_row"].isin(
                status.loc[case.notna() & ~resolved, "_row"]),
                "dispute status change not into a resolved status")
            r = status[case.notna() & resolved]
            parts.append(_events(A.DISPUTE_CASE_RESOLVED, case[case.notna() & resolved],
                                 r["_time"], user=r["USERNAME"],
                                 dispute_case_id=lookup(r["OBJECTID"], dispute["dispute_id"]),
                                 table="CDPOS", row=r["_row"]))
        elif len(status):
            L.ignore("CDPOS", L.frames["CDPOS"]["_row"].isin(status["_row"]),
                     "dispute status change, but no dispute case tables exported")

    clock.mark("changes")
    # --- assemble, validate, derive -------------------------------------------------------------
    raw = pd.concat([p for p in parts if len(p)], ignore_index=True)
    raw = _invoice_attributes(raw, inv, inv_of_cid)
    if pd.isna(last_refresh):
        last_refresh = raw["event_time"].max()
        notes.append(f"no EXTRACT table and no sap.extract_time: the extract's time is taken "
                     f"as the latest event, {last_refresh}")
    raw["source_system"] = source_system
    raw["last_refresh"] = pd.Timestamp(last_refresh).as_unit("us")
    raw = _dispute_ids(raw)
    # Lineage travels through the validation as one number (table * 1e9 + row): cheap to carry.
    raw = raw[list(schema.EVENT_COLUMN_NAMES) + ["_src"]]
    clock.mark("assemble")
    result = validate_event_log(raw)
    clock.mark("validate")
    lineage = _lineage(result.events.pop("_src"))
    event_quarantine = pd.concat([result.quarantine.drop(columns="_src"),
                                  _lineage(result.quarantine["_src"])], axis=1)
    master, master_notes = _master(L, config, result.events, changes)
    notes += master_notes
    clock.mark("master")
    events = _derive(result.events, last_refresh, config.promise_tolerance_days)
    clock.mark("derive")
    events = _attach_master(events, master)
    clock.mark("attach")
    quarantine = pd.concat([i for i in L.issues if len(i)] or
                           [pd.DataFrame(columns=list(ISSUE_COLUMNS))], ignore_index=True)
    quarantine = quarantine.assign(_t=quarantine["table"].map(
        {t: i for i, t in enumerate(_TABLE_NAMES)})).sort_values(
        ["_t", "row"], kind="stable").drop(columns="_t").reset_index(drop=True)
    recon = _reconciliation(L, lineage, len(events) - len(lineage), event_quarantine,
                            quarantine)
    return SapResult(events=events, master=master, quarantine=quarantine,
                     event_quarantine=event_quarantine, reconciliation=recon,
                     missing_tables=missing_tables, notes=notes,
                     last_refresh=pd.Timestamp(last_refresh), source_system=source_system,
                     timings=clock.mark("report"))


_TABLE_NAMES = tuple(M.TABLES_BY_NAME)
_ROWS = 1e9


def _lineage(src: pd.Series) -> pd.DataFrame:
    """source_table, source_row back from the lineage number."""
    table = np.floor(src.to_numpy(dtype=float) / _ROWS)
    names = np.array(_TABLE_NAMES + ("",), dtype=object)[
        np.where(np.isnan(table), len(_TABLE_NAMES), table).astype(int)]
    return pd.DataFrame({"source_table": pd.Series(names, dtype="str").replace("", np.nan),
                         "source_row": pd.array(np.round(src.to_numpy(dtype=float)
                                                         - table * _ROWS), dtype="Int64")},
                        index=src.index)


def _codes(keys: pd.Series) -> np.ndarray:
    """Integer code per distinct text key (Arrow's dictionary encoding)."""
    return np.asarray(pd.factorize(keys)[0], dtype=np.int64)


def _pair(codes, other) -> np.ndarray:
    """One integer per distinct pair of values."""
    a, b = _codes(codes), _codes(other)
    return a * (int(b.max(initial=0)) + 2) + (b + 1)


def _first_rows(frame: pd.DataFrame, rows: np.ndarray, keys, values: str,
                columns: list[str]) -> pd.DataFrame:
    """Of the frame's `rows` (positions), the first row of each key (in frame order): its
    `columns`, and `_sum`, the total of the `values` column per key."""
    codes = _codes(keys)  # numbered in order of first appearance
    seen = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, codes[1:] > seen[:-1]]) if len(codes) else codes
    v = frame[values].to_numpy(dtype=float)[rows]
    total = np.bincount(codes, weights=np.where(np.isnan(v), 0, v))
    at = rows[first]
    out = pd.DataFrame({c: frame[c].take(at).reset_index(drop=True) for c in columns})
    out["_sum"] = total[codes[first]]
    return out


def _terms_net_days(terms: pd.Series) -> dict:
    out = {}
    for code in terms.dropna().unique():  # a handful of keys, not a loop over rows
        parsed = schema.parse_payment_terms(code)
        out[code] = parsed.net_days if parsed is not None else np.nan
    return out


def _repeat(value, n: int) -> pd.Series:
    if isinstance(value, str):  # Arrow repeats text without a Python list
        return pd.Series(pa.repeat(value, n), dtype="str")
    return pd.Series([value] * n)


def _events(activity: A, case: pd.Series, time: pd.Series, *, table, row, cid=None,
            **values) -> pd.DataFrame:
    """A block of raw events of one activity (values: event-log columns, or `user`,
    `recorded`, `customer`; `cid`: the invoice's number in the items, where known)."""
    n = len(case)
    rename = {"user": "user_name", "recorded": "recorded_time", "customer": "customer_id"}

    def column(v):
        if isinstance(v, pd.Series):
            return v.reset_index(drop=True)
        if isinstance(v, np.ndarray):
            return pd.Series(v)
        return _repeat(v, n)

    frame = {"event_time": column(time).astype("datetime64[us]"),
             "activity": _repeat(activity.value, n),
             "invoice_id": column(case).astype("str"),
             "_cid": pd.Series(np.full(n, -1) if cid is None else np.asarray(cid, np.int64))}
    for k, v in values.items():
        if v is not None:
            frame[rename.get(k, k)] = column(v)
    if isinstance(table, pd.Series):
        number = pd.Categorical(table, categories=_TABLE_NAMES).codes.astype(float)
    else:
        number = np.full(n, float(_TABLE_NAMES.index(table)))
    frame["_src"] = pd.Series(number * _ROWS + column(row).to_numpy(dtype=float))
    out = pd.DataFrame(frame)
    if "recorded_time" not in out:
        out["recorded_time"] = out["event_time"]
    return out


def _terminal_events(items: pd.DataFrame, L: _Ledger, docs: pd.DataFrame,
                     config: SapConfig, keys: _DocKeys) -> pd.DataFrame:
    """The last clearing of each invoice whose debit items are all cleared (`docs`: the good
    BKPF rows by document key; `_aug` the clearing document's key, `_cid` the invoice)."""
    debit = items["SHKZG"].eq("S").to_numpy()
    cid = items["_cid"].to_numpy()
    open_cases = np.zeros(int(cid.max(initial=-1)) + 1, dtype=bool)
    open_cases[cid[debit & items["_open"].to_numpy()]] = True
    closed = items[["KUNNR", "AUGBL", "AUGDT", "_aug", "_cid", "_case", "_table", "_row"]][
        debit & ~open_cases[cid]]
    if closed.empty:
        return pd.DataFrame()
    f_key = closed["_aug"]
    f_pos = _positions(f_key, docs.index)
    # Each invoice's last clearing: by clearing date, then the clearing document's time (missing
    # first), ties in item order. NaT is the smallest int64: a stable lexsort puts it first.
    f_time = np.asarray(docs["_time"].array.take(f_pos, allow_fill=True), dtype="M8[us]")
    order = np.lexsort((f_time.view("i8"),
                        closed["AUGDT"].to_numpy(dtype="M8[us]").view("i8")))
    last = order[~pd.Series(closed["_cid"].to_numpy()[order]).duplicated(keep="last").to_numpy()]
    final = closed.iloc[last].reset_index(drop=True)
    f_doc = f_key.iloc[last].reset_index(drop=True)
    f_pos = f_pos[last]
    case = final["_case"]

    def doc_column(name: str) -> pd.Series:
        return pd.Series(docs[name].array.take(f_pos, allow_fill=True))

    # Write-off: the clearing document's type, or a write-off reason on any of its lines.
    codes = list(config.write_off_reason_codes)
    wo_docs = items.loc[items["RSTGR"].isin(codes).to_numpy(), "_doc"]
    bseg = L.good("BSEG")
    if len(bseg):
        wo_docs = pd.concat([wo_docs, pd.Series(keys.code(bseg["BUKRS"], bseg["BELNR"],
                                                          bseg["GJAHR"]))[
            bseg["RSTGR"].isin(codes).to_numpy()]])
    written_off = (doc_column("_class").eq("write_off").fillna(False) | _isin(f_doc, wo_docs)
                   ).to_numpy()
    # Amounts: what the final clearing settled, from the items it cleared.
    cleared = items["AUGBL"].notna().to_numpy()
    aug_doc = items["_aug"].to_numpy()[cleared]
    final_of_cid = np.full(len(open_cases), -1)
    final_of_cid[final["_cid"].to_numpy()] = np.arange(len(final))
    case_pos = final_of_cid[cid[cleared]]
    by_final = (case_pos >= 0) & (aug_doc == f_doc.to_numpy()[case_pos])
    by_f = pd.DataFrame({"pos": case_pos[by_final],
                         "signed": items["_signed"].to_numpy()[cleared][by_final],
                         "cls": items["_class"].to_numpy()[cleared][by_final],
                         "own": (items["_doc"].to_numpy()[cleared] == aug_doc)[by_final]})
    n = len(final)

    def total(mask) -> np.ndarray:
        sub = by_f[mask]
        return np.bincount(sub["pos"], weights=sub["signed"], minlength=n)

    has_payment = np.bincount(by_f.loc[by_f["cls"].eq("payment"), "pos"], minlength=n) > 0
    cleared_amount = -np.where(has_payment, total(by_f["cls"].eq("payment")),
                               total(by_f["cls"].eq("credit_memo")))
    lost = total(~by_f["own"])
    time = doc_column("_time").fillna(final["AUGDT"])
    recorded = doc_column("_recorded").fillna(time)
    user = doc_column("USNAM") if "USNAM" in docs else None
    wo = written_off
    out = [
        _events(A.INVOICE_CLEARED, case[~wo], time[~wo], cid=final["_cid"][~wo],
                amount=pd.Series(cleared_amount[~wo]).round(2),
                clearing_document=final["AUGBL"][~wo], user=None if user is None else user[~wo],
                recorded=recorded[~wo], customer=final["KUNNR"][~wo],
                table=final["_table"][~wo], row=final["_row"][~wo]),
        _events(A.INVOICE_WRITTEN_OFF, case[wo], time[wo], cid=final["_cid"][wo],
                amount=pd.Series(lost[wo]).round(2),
                clearing_document=final["AUGBL"][wo], is_written_off=True,
                document_type=doc_column("BLART")[wo],
                user=None if user is None else user[wo], recorded=recorded[wo],
                customer=final["KUNNR"][wo], table=final["_table"][wo], row=final["_row"][wo]),
    ]
    return pd.concat(out, ignore_index=True)


class _CaseIndex:
    """Item key, document key and (company code, document number) -> invoice, built on use."""

    def __init__(self, items: pd.DataFrame, keys: _DocKeys) -> None:
        self.items, self.keys = items, keys
        self.tables: dict[str, pd.Series] = {}

    def table(self, column: str) -> pd.Series:
        if column not in self.tables:
            keep = "last" if column == "_short" else "first"  # the latest year of a number
            t = pd.Series(self.items["_case"].array, index=self.items[column].to_numpy())
            self.tables[column] = t[~t.index.duplicated(keep=keep)]
        return self.tables[column]

    def find(self, bukrs: pd.Series, belnr: pd.Series, gjahr: pd.Series | None = None,
             buzei: pd.Series | None = None) -> pd.Series:
        """Invoice of each row: by item, else by document, else by document number in any
        year; each step only for the rows still unresolved."""
        case = pd.Series(pd.NA, index=belnr.index, dtype="str")
        code = self.keys.code
        steps = []
        if buzei is not None and gjahr is not None:
            steps.append(("_item", lambda m: code(bukrs[m], belnr[m], gjahr[m], buzei[m])))
        if gjahr is not None:
            steps.append(("_doc", lambda m: code(bukrs[m], belnr[m], gjahr[m])))
        steps.append(("_short", lambda m: code(bukrs[m], belnr[m])))
        for column, keys in steps:
            todo = case.isna().to_numpy()
            if not todo.any():
                break
            found = lookup(pd.Series(keys(todo), index=case.index[todo]), self.table(column))
            case = case.fillna(found.reindex(case.index))
        return case


def _find_case(frame: pd.DataFrame, table: str, L: _Ledger, cases: _CaseIndex,
               by_item: bool = False) -> pd.Series:
    """The invoice of each row of an FSCM / dunning table (by item, else document key);
    rows that match none are quarantined "unknown_invoice"."""
    bukrs = frame["BUKRS"] if "BUKRS" in frame else frame.get("FIN_BUKRS")
    gjahr = frame["GJAHR"] if "GJAHR" in frame else None
    buzei = frame["BUZEI"] if by_item and "BUZEI" in frame else None
    case = cases.find(bukrs, frame["BELNR"], gjahr, buzei)
    L.quarantine(table, case.isna(), "BELNR", "unknown_invoice",
                 lambda sub: _messages(table, sub["_row"], "BELNR", "document {b} of company "
                                       "code {c} is no invoice item in BKPF/BSID/BSAD",
                                       b=frame["BELNR"], c=bukrs))
    return case


def _check_currency(L: _Ledger, table: str, column: str, case: pd.Series,
                    local_currency: pd.Series) -> None:
    frame = L.frames[table]
    if column not in frame:
        return
    expected = lookup(case, local_currency)
    wrong = frame[column].notna() & expected.notna() & frame[column].ne(expected)
    L.quarantine(table, wrong.fillna(False), column, "currency_mismatch",
                 lambda sub: _messages(table, sub["_row"], column, "amount in '{c}' but "
                                       "invoice {i} is booked in {e}", c=frame[column], i=case,
                                       e=expected))


def _disputes(L: _Ledger, config: SapConfig, cases: "_CaseIndex", local_currency,
              notes: list[str]) -> pd.DataFrame | None:
    sc, ud = L.frames.get("SCMG_T_CASE_ATTR"), L.frames.get("UDM_CASE_ATTR00")
    if ud is None:
        if sc is not None:
            L.ignore("SCMG_T_CASE_ATTR", np.ones(len(sc), bool),
                     "case without its invoice: UDM_CASE_ATTR00 is not exported")
            notes.append("SCMG_T_CASE_ATTR without UDM_CASE_ATTR00: the cases' invoices are "
                         "unknown, no dispute events")
        return None
    if sc is not None:
        attrs = sc[~sc["_bad"]].drop_duplicates("CASE_GUID").set_index("CASE_GUID")
        for col, src in (("CREATE_TIME", "CREATE_TIME"), ("CREATED_BY", "CREATED_BY"),
                         ("EXT_KEY", "EXT_KEY")):
            if src in attrs:
                value = lookup(ud["CASE_GUID"], attrs[src])
                ud[col] = value.fillna(ud[col]) if col in ud else value
        no_header = ~_isin(ud["CASE_GUID"], attrs.index)
        L.quarantine("UDM_CASE_ATTR00", no_header & ud.get(
            "CREATE_TIME", pd.Series(pd.NaT, index=ud.index)).isna(), "CASE_GUID",
            "unknown_invoice", "case not in SCMG_T_CASE_ATTR and no CREATE_TIME of its own")
        used = _isin(sc["CASE_GUID"], ud.loc[~ud["_bad"], "CASE_GUID"])
        L.ignore("SCMG_T_CASE_ATTR", ~used, "case without a row in UDM_CASE_ATTR00 (not a "
                 "dispute case, or its invoice is not exported)")
    if "CREATE_TIME" not in ud:
        raise SapExtractError("UDM_CASE_ATTR00, header row: missing column CREATE_TIME (export "
                              "SCMG_T_CASE_ATTR with it, or add CREATE_TIME)")
    L.quarantine("UDM_CASE_ATTR00", ud["CREATE_TIME"].isna(), "CREATE_TIME", "missing_key",
                 "dispute case without a creation time")
    case = _find_case(ud, "UDM_CASE_ATTR00", L, cases)
    _check_currency(L, "UDM_CASE_ATTR00", "FIN_DISPUTE_CURR", case, local_currency)
    good = ~ud["_bad"].to_numpy()
    d = ud[good]
    dispute_id = d["EXT_KEY"].fillna(d["CASE_GUID"]) if "EXT_KEY" in d else d["CASE_GUID"]
    return pd.DataFrame({"CASE_GUID": d["CASE_GUID"], "_case": case[good],
                         "time": d["CREATE_TIME"], "amount": d.get("FIN_DISPUTED_AMT"),
                         "user": d.get("CREATED_BY"), "dispute_id": dispute_id,
                         "_table": "UDM_CASE_ATTR00", "_row": d["_row"]})


def _change_documents(L: _Ledger) -> pd.DataFrame | None:
    pos, hdr = L.frames.get("CDPOS"), L.frames.get("CDHDR")
    if pos is None:
        if hdr is not None:
            L.ignore("CDHDR", np.ones(len(hdr), bool), "CDPOS not exported: changes unknown")
        return None
    pos["_hkey"] = _key(pos["OBJECTCLAS"], pos["OBJECTID"], pos["CHANGENR"])
    if hdr is None:
        L.quarantine("CDPOS", np.ones(len(pos), bool), "CHANGENR", "no_change_header",
                     "CDHDR not exported: the change has no time")
        return None
    hdr["_hkey"] = _key(hdr["OBJECTCLAS"], hdr["OBJECTID"], hdr["CHANGENR"])
    L.quarantine("CDHDR", hdr["_hkey"].duplicated(), "CHANGENR", "duplicate_key",
                 "second CDHDR row of the same change")
    h = L.good("CDHDR").set_index("_hkey")
    L.quarantine("CDPOS", ~_isin(pos["_hkey"], h.index), "CHANGENR", "no_change_header",
                 lambda sub: _messages("CDPOS", sub["_row"], "CHANGENR", "change {c} of {o} "
                                       "has no CDHDR row", c=pos["CHANGENR"],
                                       o=pos["OBJECTID"]))
    utime = h["UTIME"].fillna(pd.Timedelta(0)) if "UTIME" in h else pd.Timedelta(0)
    h_time = h["UDATE"] + utime
    p = L.good("CDPOS").copy()
    p["_time"] = lookup(p["_hkey"], h_time)
    p["USERNAME"] = lookup(p["_hkey"], h["USERNAME"]) if "USERNAME" in h else None
    for col in ("VALUE_NEW", "VALUE_OLD"):
        if col not in p:
            p[col] = pd.Series(pd.NA, index=p.index, dtype="str")
    field = _key(p["TABNAME"], p["FNAME"])
    kinds = {_SEP.join(M.PAYMENT_BLOCK_CHANGE): "block"}
    kinds |= {t + _SEP + M.DISPUTE_STATUS_FIELD: "status" for t in M.DISPUTE_STATUS_TABLES}
    kinds |= {t + _SEP + f: "master" for t, f in M.MASTER_CHANGE_FIELDS}
    p["_kind"] = field.map(kinds)
    L.ignore("CDPOS", L.frames["CDPOS"]["_row"].isin(p.loc[p["_kind"].isna(), "_row"]),
             "a table / field the mapping does not read")
    used = p.loc[p["_kind"].notna(), "_hkey"]
    L.ignore("CDHDR", ~_isin(L.frames["CDHDR"]["_hkey"], used),
             "no CDPOS row of a field the mapping reads")
    return p[p["_kind"].notna()]


def _quarantine_changes(L: _Ledger, rows: pd.DataFrame, column: str, code: str,
                        template: str) -> None:
    if rows.empty:
        return
    frame = L.frames["CDPOS"]
    mask = frame["_row"].isin(rows["_row"])
    key = frame["TABKEY"] if column == "TABKEY" else frame["OBJECTID"]
    L.quarantine("CDPOS", mask, column, code,
                 lambda sub: _messages("CDPOS", sub["_row"], column, template, k=key))


def _invoice_attributes(raw: pd.DataFrame, inv: pd.DataFrame, inv_of_cid: np.ndarray
                        ) -> pd.DataFrame:
    """Every event carries its invoice's company code, net due date and payment terms (and its
    customer when the source row names none). Events of the items find their invoice by number
    (`_cid`), the others by case id."""
    cid = raw["_cid"].to_numpy()
    known = cid >= 0
    pos = np.full(len(raw), -1)
    pos[known] = inv_of_cid[cid[known]]
    if not known.all():
        pos[~known] = _positions(raw.loc[~known, "invoice_id"], inv.index)
    for col, src in (("company_code", "company"), ("net_due_date", "due"),
                     ("payment_terms", "terms"), ("customer_id", "customer")):
        value = pd.Series(inv[src].array.take(pos, allow_fill=True), index=raw.index)
        raw[col] = raw[col].fillna(value) if col in raw else value
    dtypes = {"datetime": "datetime64[us]", "float": "float64", "int": "float64",
              "bool": "bool", "string": "str"}
    for spec in schema.EVENT_COLUMNS:
        if spec.name not in raw:
            raw[spec.name] = pd.Series(False if spec.kind == "bool" else None, index=raw.index,
                                       dtype=dtypes[spec.kind])
        elif spec.kind == "bool":
            raw[spec.name] = raw[spec.name].fillna(False).astype(bool)
        elif raw[spec.name].dtype != dtypes[spec.kind]:
            raw[spec.name] = raw[spec.name].astype(dtypes[spec.kind])
    return raw


def _dispute_ids(raw: pd.DataFrame) -> pd.DataFrame:
    """Credit memos and payment block changes carry the invoice's latest dispute created at or
    before them (the case they settle or that the block is for)."""
    created = raw[raw["activity"].eq(A.DISPUTE_CASE_CREATED.value)][
        ["invoice_id", "event_time", "dispute_case_id"]].dropna()
    target = raw["activity"].isin([A.CREDIT_MEMO_POSTED.value, A.PAYMENT_BLOCK_SET.value]) \
        & raw["dispute_case_id"].isna()
    if created.empty or not target.any():
        return raw
    left = raw.loc[target, ["invoice_id", "event_time"]].assign(_pos=np.flatnonzero(target))
    left = left.sort_values("event_time", kind="stable")
    right = created.sort_values("event_time", kind="stable").rename(
        columns={"dispute_case_id": "_dispute"})
    merged = pd.merge_asof(left, right, on="event_time", by="invoice_id", direction="backward")
    have = raw["dispute_case_id"].notna().to_numpy()  # few: no object array of the whole column
    ids = np.full(len(raw), np.nan, dtype=object)
    ids[have] = raw["dispute_case_id"][have].to_numpy(dtype=object)
    ids[merged["_pos"].to_numpy()] = merged["_dispute"].to_numpy()
    raw["dispute_case_id"] = ids
    return raw


def _derive(events: pd.DataFrame, as_of, tolerance_days: int) -> pd.DataFrame:
    """Calculated activities by the pipeline's rules; a promise counts as broken only
    `tolerance_days` after the promised date (the promised dates are shifted for the rule and
    shifted back)."""
    if not tolerance_days:
        return add_calculated_activities(events, as_of)
    shift = pd.Timedelta(days=tolerance_days)
    out = add_calculated_activities(events.assign(promised_date=events["promised_date"] + shift),
                                    as_of)
    out["promised_date"] = out["promised_date"] - shift
    return out


# --- master -----------------------------------------------------------------------------------
_MASTER_ATTRS = ("risk_category", "credit_limit", "customer_segment", "collector",
                 "payment_terms")


def _master(L: _Ledger, config: SapConfig, events: pd.DataFrame,
            changes: pd.DataFrame | None) -> tuple[pd.DataFrame, list[str]]:
    notes: list[str] = []
    kna1, knb1, knkk = L.good("KNA1"), L.good("KNB1"), L.good("KNKK")
    if not (len(kna1) or len(knb1) or len(knkk)):
        from features.ingest.derive import master_from_events
        notes.append("no KNA1/KNB1/KNKK: the master holds only each customer's latest payment "
                     "terms (from its invoices); no risk category, credit limit, segment or "
                     "collector")
        return master_from_events(events), notes
    first_event = events.groupby("customer_id")["event_time"].min()
    customers = pd.Index(sorted(set(first_event.index) | set(kna1.get("KUNNR", []))
                                | set(knb1.get("KUNNR", [])) | set(knkk.get("KUNNR", []))))
    snap = pd.DataFrame(index=customers)
    start = first_event.reindex(customers)
    if len(kna1):
        k = kna1.drop_duplicates("KUNNR").set_index("KUNNR")
        if "KTOKD" in k:
            snap["customer_segment"] = k["KTOKD"]
        if "ERDAT" in k:
            start = pd.concat([start, k["ERDAT"].reindex(customers)], axis=1).min(axis=1)
    if len(knb1):
        k = knb1.sort_values(["KUNNR", "BUKRS"]).drop_duplicates("KUNNR").set_index("KUNNR")
        if knb1.groupby("KUNNR")[[c for c in ("SACHP", "ZTERM") if c in knb1]].nunique().gt(
                1).any().any():
            notes.append("KNB1: some customers have different collectors or payment terms per "
                         "company code; the first company code's values are used")
        for col, src in (("collector", "SACHP"), ("payment_terms", "ZTERM")):
            if src in k:
                snap[col] = k[src]
    if len(knkk):
        k = knkk
        if config.credit_control_area is not None and "KKBER" in k:
            k = k[k["KKBER"].eq(config.credit_control_area)]
        k = k.sort_values([c for c in ("KUNNR", "KKBER") if c in k]).drop_duplicates(
            "KUNNR").set_index("KUNNR")
        for col, src in (("risk_category", "CTLPC"), ("credit_limit", "KLIMK")):
            if src in k:
                snap[col] = k[src]
    for col in _MASTER_ATTRS:
        if col not in snap:
            snap[col] = np.nan
    snap["credit_limit"] = pd.to_numeric(snap["credit_limit"], errors="coerce")
    start = start.reindex(customers)

    ch = None if changes is None else changes[changes["_kind"].eq("master")].copy()
    if ch is not None and len(ch):
        ch["customer_id"] = ch["TABKEY"].str.slice(M.CLIENT_WIDTH, M.CLIENT_WIDTH + 10)
        ch["column"] = _key(ch["TABNAME"], ch["FNAME"]).map(
            {t + _SEP + f: c for (t, f), c in M.MASTER_CHANGE_FIELDS.items()})
        if config.credit_control_area is not None:
            area = ch["TABKEY"].str.slice(M.CLIENT_WIDTH + 10, M.CLIENT_WIDTH + 14)
            ch = ch[~ch["TABNAME"].eq("KNKK") | area.eq(config.credit_control_area)]
        ch = ch[_isin(ch["customer_id"], customers)].sort_values("_time", kind="stable")
        L.ignore("CDPOS", L.frames["CDPOS"]["_row"].isin(
            changes.loc[changes["_kind"].eq("master"), "_row"]) & ~L.frames["CDPOS"]["_row"]
            .isin(ch["_row"]), "master change of a customer / credit area not read")
    else:
        ch = pd.DataFrame(columns=["customer_id", "_time", "column", "VALUE_NEW", "VALUE_OLD"])
    bounds = pd.concat([
        pd.DataFrame({"customer_id": customers, "valid_from": start.to_numpy()}),
        ch[["customer_id", "_time"]].rename(columns={"_time": "valid_from"})],
        ignore_index=True).dropna()
    bounds["valid_from"] = bounds["valid_from"].astype("datetime64[us]")
    first_start = lookup(bounds["customer_id"], start.astype("datetime64[us]"))
    bounds = bounds[bounds["valid_from"].ge(first_start)].drop_duplicates()
    bounds = bounds.sort_values("valid_from", kind="stable").reset_index(drop=True)
    master = bounds.copy()
    for col in _MASTER_ATTRS:
        c = ch[ch["column"].eq(col)][["customer_id", "_time", "VALUE_NEW", "VALUE_OLD"]]
        value = lookup(master["customer_id"], snap[col].astype("object"))
        if len(c):
            c = c.rename(columns={"_time": "valid_from"}).astype({"valid_from": "datetime64[us]"})
            back = pd.merge_asof(master, c.drop(columns="VALUE_OLD"), on="valid_from",
                                 by="customer_id", direction="backward")["VALUE_NEW"]
            fwd = pd.merge_asof(master, c.drop(columns="VALUE_NEW"), on="valid_from",
                                by="customer_id", direction="forward",
                                allow_exact_matches=False)["VALUE_OLD"]
            seen_change = pd.merge_asof(master, c[["customer_id", "valid_from"]].assign(
                _x=1), on="valid_from", by="customer_id", direction="backward")["_x"].notna()
            has_later = pd.merge_asof(master, c[["customer_id", "valid_from"]].assign(_y=1),
                                      on="valid_from", by="customer_id", direction="forward",
                                      allow_exact_matches=False)["_y"].notna()
            value = pd.Series(np.where(seen_change, back,
                                       np.where(has_later, fwd, value)), index=master.index)
        master[col] = value.replace("", np.nan)
    master["customer_segment"] = master["customer_segment"].map(
        lambda s: config.account_group_segments.get(s, s) if isinstance(s, str) else s)
    master["credit_limit"] = _parse_number(master["credit_limit"].astype("object"))[0]
    master = master.sort_values(["customer_id", "valid_from"], kind="stable")
    attrs = list(_MASTER_ATTRS)
    prev = master.groupby("customer_id", sort=False)[attrs].shift()
    same = (master[attrs].eq(prev) | (master[attrs].isna() & prev.isna())).all(axis=1)
    new_customer = master["customer_id"].ne(master["customer_id"].shift())
    master = master[~same | new_customer]
    master = master.assign(valid_to=pd.NaT)[list(schema.MASTER_COLUMN_NAMES)]
    master = master.astype({"valid_to": "datetime64[us]"})
    clean, bad = validate_master(master)
    if len(bad):
        notes.append(f"{len(bad)} master versions could not be read: {bad['reason'].unique()}")
    return clean, notes


def _attach_master(events: pd.DataFrame, master: pd.DataFrame) -> pd.DataFrame:
    """Risk category, credit limit, segment and collector as of each event, from the master."""
    attrs = ["risk_category", "credit_limit", "customer_segment", "collector"]
    if master.empty:
        return events
    codes = _codes(pd.concat([events["customer_id"], master["customer_id"]],
                             ignore_index=True))
    left = pd.DataFrame({"event_time": events["event_time"].to_numpy(),
                         "_c": codes[:len(events)], "_pos": np.arange(len(events))})
    left = left.sort_values("event_time", kind="stable")
    right = pd.DataFrame({"event_time": master["valid_from"].to_numpy().astype(
        left["event_time"].dtype), "_c": codes[len(events):],
        "_m": np.arange(len(master))}).sort_values("event_time", kind="stable")
    merged = pd.merge_asof(left, right, on="event_time", by="_c", direction="backward")
    version = np.full(len(events), -1)
    version[merged["_pos"].to_numpy()] = merged["_m"].fillna(-1).to_numpy(dtype=np.int64)
    out = events.copy()
    for col in attrs:
        out[col] = pd.Series(master[col].array.take(version, allow_fill=True),
                             index=events.index).astype(events[col].dtype)
    return out


# --- reports ----------------------------------------------------------------------------------
def _reconciliation(L: _Ledger, lineage: pd.DataFrame, derived: int,
                    event_quarantine: pd.DataFrame, quarantine: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for table in M.TABLES_BY_NAME:
        frame = L.frames.get(table)
        if frame is None:
            continue
        n = len(frame)
        q = quarantine[quarantine["table"].eq(table)]
        ign = L.ignored.get(table, pd.Series(dtype="str"))
        ign = ign[~ign.index.isin(q["row"])]
        reasons = q["reason"].value_counts()
        rows.append({
            "table": table, "rows_in": n, "quarantined": int(len(q)), "ignored": int(len(ign)),
            "mapped": n - int(len(q)) - int(len(ign)),
            "events_out": int(lineage["source_table"].eq(table).sum()),
            "events_quarantined": int(event_quarantine["source_table"].eq(table).sum())
            if "source_table" in event_quarantine else 0,
            "quarantine_reasons": ", ".join(f"{k} {v}" for k, v in reasons.items()),
            "ignored_reasons": ", ".join(f"{k} {v}" for k, v in ign.value_counts().items()),
        })
    rows.append({"table": "(derived)", "rows_in": 0, "quarantined": 0, "ignored": 0,
                 "mapped": 0, "events_out": int(derived), "events_quarantined": 0,
                 "quarantine_reasons": "", "ignored_reasons": "due_date_passed, "
                 "promise_to_pay_broken (features.ingest.derive)"})
    return pd.DataFrame(rows)


def summary_text(result: SapResult) -> str:
    """The run's summary as Markdown: reconciliation, missing tables and notes."""
    lines = [f"# SAP extract conversion ({result.source_system}, extract of "
             f"{result.last_refresh})", "",
             f"{len(result.events):,} events of {result.events['invoice_id'].nunique():,} "
             f"invoices, {len(result.master):,} master versions; {len(result.quarantine):,} "
             f"extract rows and {len(result.event_quarantine):,} events quarantined.", "",
             "## Reconciliation (every row: mapped, ignored or quarantined)", "",
             result.reconciliation.to_markdown(index=False) if _has_tabulate()
             else result.reconciliation.to_string(index=False), ""]
    if result.missing_tables:
        lines += ["## Tables not in the extract, and what that means", ""]
        lines += [f"- {t}: {why}" for t, why in result.missing_tables] + [""]
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


SAP_QUARANTINE, EVENT_QUARANTINE = "sap_quarantine.csv", "quarantine.csv"
RECONCILIATION, SUMMARY = "sap_reconciliation.csv", "sap_summary.md"


def write_sap_ledger(result: SapResult, out: str | Path) -> Path:
    """The ledger folder (events, master) plus the extract quarantine, the event quarantine,
    the reconciliation and the summary."""
    out = write_ledger_dir(out, result.events, result.master)
    write_table(result.quarantine, out / SAP_QUARANTINE)
    write_table(result.event_quarantine, out / EVENT_QUARANTINE)
    write_table(result.reconciliation, out / RECONCILIATION)
    (out / SUMMARY).write_text(summary_text(result), encoding="utf-8")
    return out


def run_sap(extracts: str | Path, out: str | Path, config: SapConfig | None = None) -> SapResult:
    """`paydelay sap`: convert a folder of extracts and write the ledger folder."""
    result = convert_sap_extracts(extracts, config)
    write_sap_ledger(result, out)
    return result


__all__ = ["SapExtractError", "SapResult", "convert_sap_extracts", "find_extracts",
           "read_extract", "parse_table", "write_sap_ledger", "run_sap", "summary_text"]
