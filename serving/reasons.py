"""SHAP contributions -> the sentences a collector reads ("paid 9 of the last 12 invoices late").

Each feature's sentence is its `FeatureSpec.sentence` template (features.pit.feature_spec), filled with
the value that drove the contribution and the other row values it names, then given an explicit
direction and, when weights are given (serving.explain.probability_weights: the reason's share
of the move from the base rate to the item's ranking probability), its weight in percentage
points: "... (raises the risk, +12.3 points)". Care taken so that a collector never reads a raw
column name, "nan", a snake_case key or a sentence that is wrong for its value:
- a value that is missing (the feature does not apply: no dunning yet, no paid invoice yet)
  gives "<description>: none" (from FeatureSpec.description) instead of a template full of NaN;
  a master-data feature says "not on record for this customer" (an unknown customer has no
  risk category, not the risk category "none"), a history feature "no payment history yet";
- a number whose sign changes the meaning reads right for every value (`_SIGN_RULES`): "due
  date passed 193 days ago", never "-193 days left until the due date"; "pays 3 days before the
  due date on average", never "-3 days after";
- a boolean uses `sentence_false` when False;
- categorical values are shown with spaces for underscores ("key account customer").

Days overdue in the worklist: the re-rank and the page show days overdue as a column, so the
top reasons leave out the due-date features (`COLUMN_FEATURES`: days overdue and days to due,
whose credit serving.reasons merges) and name the other facts behind the rank; their weight is
in the item's full explanation (/explain, the page's waterfall), never hidden.

`top_reasons` picks the k largest absolute contributions per row with numpy and formats only
those: the formatting loop is over the k x n chosen (row, feature) pairs, grouped by feature.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass

import numpy as np
import pandas as pd

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class _Template:
    name: str
    kind: str
    sentence: str
    sentence_false: str | None
    fields: tuple[str, ...]  # placeholders other than {value}, in either sentence
    missing: str
    fields_true: tuple[str, ...] = ()  # those of `sentence`
    fields_false: tuple[str, ...] = ()  # those of `sentence_false`
    signed: bool = False  # its sentence has a number whose sign changes the wording


def _fields(template: str | None) -> set[str]:
    if not template:
        return set()
    return {f for _, f, _, _ in _FORMATTER.parse(template) if f}


def _missing_sentence(description: str, group: str = "") -> str:
    text = re.sub(r"\s*\([^)]*\)", "", description.strip().rstrip("."))
    text = text[:1].lower() + text[1:]
    if group == "master":  # a customer we have no master data on
        text = re.sub(r"\s+at t$", "", text)
        return f"{text}: not on record for this customer"
    if group == "history":
        return f"{text}: no payment history yet"
    return f"{text}: none"


# Numbers whose sign changes the wording: (pattern in a template, wording when the value rounds
# below zero ({n}: its absolute value), wording when it rounds to zero). Group 1 is the field,
# group 2 the decimals; later groups are kept.
_SIGN_RULES: tuple[tuple[re.Pattern, str, str], ...] = tuple(
    (re.compile(p), neg, zero) for p, neg, zero in (
        (r"\{(\w+):\.(\d)f\} days left until the due date", "due date passed {n} days ago",
         "due today"),
        (r"\{(\w+):\.(\d)f\} days after (the|this) due date", r"{n} days before \3 due date",
         r"on \3 due date"),
        (r"\{(\w+):\.(\d)f\} days later than", "{n} days earlier than", "as punctually as"),
        (r"\{(\w+):\.(\d)f\} days later every month", "{n} days earlier every month",
         "no later every month"),
        (r"up to \{(\w+):\.(\d)f\} days late", "every invoice at least {n} days early",
         "every invoice by its due date"),
        (r"\{(\w+):\.(\d)f\} days late on average", "{n} days early on average",
         "on time on average"),
        (r"(?<=late, )\{(\w+):\.(\d)f\} days on average", "{n} days before the due date on average",
         "on the due date on average"),
        (r"cash discount if paid within \{(\w+):\.(\d)f\} days", "no cash discount",
         "no cash discount"),
        (r"cash discount of \{(\w+):\.(\d)f\} % offered", "no cash discount offered",
         "no cash discount offered"),
        (r"promised within \{(\w+):\.(\d)f\} days",
         "promised for a date that passed {n} days ago", "promised for today"),
    ))


def _has_sign_rule(text: str | None) -> bool:
    return bool(text) and any(p.search(text) for p, _, _ in _SIGN_RULES)


def _apply_signs(text: str, values: dict) -> str:
    """The template with each signed number worded for its value (module doc)."""
    for pattern, neg, zero in _SIGN_RULES:
        def repl(m, neg=neg, zero=zero):
            v = values.get(m.group(1))
            if not isinstance(v, (int, float, np.integer, np.floating)) or _is_missing(v):
                return m.group(0)
            digits = int(m.group(2))
            r = round(float(v), digits)
            if r < 0:
                return m.expand(neg.replace("{n}", f"{-float(v):.{digits}f}"))
            if r == 0:
                return m.expand(zero)
            return m.group(0)
        text = pattern.sub(repl, text)
    return text


def compile_templates(specs: dict) -> dict[str, _Template]:
    """Per feature: its templates and the row fields they name (checked against the catalogue)."""
    out = {}
    for name, s in specs.items():
        fields = (_fields(s.sentence) | _fields(s.sentence_false)) - {"value"}
        unknown = fields - set(specs)
        if unknown:
            raise ValueError(f"sentence of feature {name!r} names unknown fields {sorted(unknown)}")
        out[name] = _Template(name, s.kind, s.sentence, s.sentence_false, tuple(sorted(fields)),
                              _missing_sentence(s.description, getattr(s, "group", "")),
                              tuple(sorted(_fields(s.sentence) - {"value"})),
                              tuple(sorted(_fields(s.sentence_false) - {"value"})),
                              _has_sign_rule(s.sentence) or _has_sign_rule(s.sentence_false))
    return out


def _is_missing(v) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and not math.isfinite(v)


def plain_value(v):
    """JSON-friendly value: None for missing, Python scalars, strings as they are."""
    if _is_missing(v):
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    return str(v)


def plain_column(values: np.ndarray) -> list:
    """plain_value of a whole object column from column_values: numbers as floats with None for
    missing; strings (None when missing) and booleans are plain already."""
    first = next((v for v in values if v is not None), None)
    if isinstance(first, float):
        floats = values.astype(np.float64)
        ok = np.isfinite(floats)
        return floats.tolist() if ok.all() else np.where(ok, floats, None).tolist()
    return values.tolist()


def _shown(v, kind: str):
    if isinstance(v, str):
        return v.replace("_", " ")
    if kind == "bool":
        return bool(v)
    return v


def sentence(template: _Template, value, others: dict) -> str:
    """The filled sentence (no direction) for one value and the other named row values."""
    if _is_missing(value):
        return template.missing
    text, used = template.sentence, template.fields_true
    if template.kind == "bool" and not bool(value) and template.sentence_false is not None:
        text, used = template.sentence_false, template.fields_false
    if any(_is_missing(others.get(f)) for f in used):
        return template.missing
    shown = {f: _shown(others[f], "") for f in used}
    if template.signed:
        text = _apply_signs(text, {"value": value, **shown})
    return text.format(value=_shown(value, template.kind), **shown)


def weight_text(weight: float | None) -> str:
    """A weight (probability, 0.123) as percentage points: "+12.3 points"."""
    if weight is None or not math.isfinite(weight):
        return ""
    return f"{weight * 100:+.1f} points"


def with_direction(text: str, contribution: float, weight: float | None = None) -> str:
    text = text[:1].upper() + text[1:]
    w = weight_text(weight)
    return (f"{text} ({'raises' if contribution > 0 else 'lowers'} the risk"
            f"{', ' + w if w else ''})")


def column_values(rows, name: str) -> np.ndarray:
    """A feature column as an object array of Python values (categoricals as strings).

    rows: a DataFrame, or a mapping of column arrays (numpy arrays, strings as object arrays
    with None for missing; Categoricals)."""
    col = rows[name]
    if isinstance(col, pd.Categorical):
        cats = np.append(col.categories.astype("str").to_numpy(dtype=object), None)
        return cats[col.codes]  # code -1 (missing) reads None
    if isinstance(col, np.ndarray):
        if col.dtype == object:
            return col
        if col.dtype == bool:
            return col.astype(object)
        return col.astype(np.float64).astype(object)
    if isinstance(col.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(col.dtype):
        return col.astype("str").to_numpy(dtype=object, na_value=None)
    if pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=object)
    return col.to_numpy(dtype=np.float64, na_value=np.nan).astype(object)


# Features that state one fact in two ways: (before due, once overdue). Both carry SHAP credit, so
# a collector would read "50 days past due" and "-50 days left until the due date" side by side.
# For the sentences their contributions are added up (the total is unchanged) and given to the
# one that reads right for the row: days_overdue once past due, days_to_due before.
LINKED_FEATURES: tuple[tuple[str, str], ...] = (("days_to_due", "days_overdue"),)


def merge_linked(phi: np.ndarray, rows: pd.DataFrame, names: list[str],
                 positions: np.ndarray | None = None) -> np.ndarray:
    """phi with each linked pair's credit moved onto the member that describes the row."""
    index = {n: i for i, n in enumerate(names)}
    out = phi
    for before, after in LINKED_FEATURES:
        if before not in index or after not in index:
            continue
        a, b = index[before], index[after]
        overdue = column_values(rows, after).astype("float64")
        if positions is not None:
            overdue = overdue[positions]
        overdue = np.nan_to_num(overdue) > 0
        if out is phi:
            out = phi.copy()
        total = out[:, a] + out[:, b]
        out[:, a] = np.where(overdue, 0.0, total)
        out[:, b] = np.where(overdue, total, 0.0)
    return out


# Features the worklist shows as their own column: left out of the top reasons (module doc).
COLUMN_FEATURES: tuple[str, ...] = ("days_overdue", "days_to_due")


def top_reasons(phi: np.ndarray, rows: pd.DataFrame, names: list[str],
                templates: dict[str, _Template], k: int = 3,
                positions: np.ndarray | None = None, weights: np.ndarray | None = None,
                leave_out: tuple[str, ...] = ()) -> list[list[dict]]:
    """The k largest |contribution| per row (non-zero only), as Reason dicts, largest first.

    phi: (n, len(names)) contributions aligned with `names`; row r of phi explains row
    positions[r] of `rows` (default: row r). weights: the same shape, each contribution's
    weight in probability (serving.explain.probability_weights; linked features merged like
    phi): each Reason gets "weight" and its sentence the percentage points. leave_out: features
    never chosen (COLUMN_FEATURES where the worklist shows them as columns).
    """
    n, m = phi.shape
    k = min(k, m)
    if n == 0 or k == 0:
        return [[] for _ in range(n)]
    phi = merge_linked(phi, rows, names, positions)
    if weights is not None:
        weights = merge_linked(np.asarray(weights, dtype=np.float64), rows, names, positions)
    mag = np.abs(phi)
    out_cols = [i for i, name in enumerate(names) if name in set(leave_out)]
    if out_cols:
        mag = mag.copy()
        mag[:, out_cols] = -1.0
        phi = phi.copy()
        phi[:, out_cols] = 0.0  # never shown: a zero contribution is dropped below
    top = np.argpartition(-mag, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(mag, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)  # (n, k) feature positions, largest first
    chosen = np.take_along_axis(phi, top, axis=1)
    chosen_w = (np.take_along_axis(weights, top, axis=1) if weights is not None
                else np.full(top.shape, np.nan))
    cache: dict[str, np.ndarray] = {}

    def values(name: str) -> np.ndarray:
        if name not in cache:
            vals = column_values(rows, name)
            cache[name] = vals if positions is None else vals[positions]
        return cache[name]

    sentences = np.empty((n, k), dtype=object)
    shown = np.empty((n, k), dtype=object)
    raises = chosen > 0
    for j in np.unique(top).tolist():  # one feature at a time, over the rows that chose it
        name = names[j]
        tpl = templates[name]
        rr, cc = np.nonzero(top == j)
        vals = values(name)[rr].tolist()
        others = [values(f)[rr].tolist() for f in tpl.fields]
        memo: dict = {}  # worklists repeat values (categories, whole days): format each once
        texts = []
        for w, key in zip(chosen_w[rr, cc].tolist(), zip(vals, raises[rr, cc].tolist(), *others)):
            text = memo.get(key)
            if text is None:
                raw = sentence(tpl, key[0], dict(zip(tpl.fields, key[2:])))
                text = f"{raw[:1].upper()}{raw[1:]} ({'raises' if key[1] else 'lowers'} the risk"
                memo[key] = text
            wt = weight_text(w)
            texts.append(f"{text}, {wt})" if wt else f"{text})")
        sentences[rr, cc] = np.array(texts, dtype=object)
        shown[rr, cc] = np.array(plain_column(values(name)), dtype=object)[rr]
    directions = np.where(raises, "raises", "lowers").tolist()
    features = np.array(names, dtype=object)[top].tolist()
    if weights is None:
        rows_out = zip(features, shown.tolist(), chosen.tolist(), directions, sentences.tolist())
        return [[{"feature": f, "value": v, "contribution": c, "direction": d, "sentence": t}
                 for f, v, c, d, t in zip(*row) if c != 0.0]  # one small list per row
                for row in rows_out]
    rows_out = zip(features, shown.tolist(), chosen.tolist(), directions, sentences.tolist(),
                   chosen_w.tolist())
    return [[{"feature": f, "value": v, "contribution": c, "direction": d, "sentence": t,
              "weight": w}
             for f, v, c, d, t, w in zip(*row) if c != 0.0]  # one small list of reasons per row
            for row in rows_out]


def all_contributions(phi_row: np.ndarray, row: pd.DataFrame, names: list[str],
                      templates: dict[str, _Template],
                      weights_row: np.ndarray | None = None) -> list[dict]:
    """Every feature's contribution for one row, largest |contribution| first, with sentences
    (and, given weights_row, each one's weight in probability and in the sentence)."""
    out = []
    for j in np.argsort(-np.abs(phi_row), kind="stable"):  # one row: a loop over features
        name = names[int(j)]
        tpl = templates[name]
        value = column_values(row, name)[0]
        others = {f: column_values(row, f)[0] for f in tpl.fields}
        contrib = float(phi_row[j])
        weight = None if weights_row is None else float(weights_row[j])
        text = sentence(tpl, value, others)
        record = {"feature": name, "value": plain_value(value), "contribution": contrib,
                  "sentence": with_direction(text, contrib, weight) if contrib != 0 else
                  text[:1].upper() + text[1:] + " (no effect)"}
        if weights_row is not None:
            record["weight"] = weight
        out.append(record)
    return out


__all__ = ["compile_templates", "sentence", "with_direction", "weight_text", "top_reasons",
           "all_contributions", "plain_value", "column_values", "COLUMN_FEATURES"]
