"""Reasons: every feature's sentence formats on realistic rows and never shows a column name."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features import schema
from features.pit.feature_spec import FEATURES, FEATURES_BY_NAME
from features.pit.item_state import ITEM_STATE_COLUMNS
from serving.reasons import compile_templates, sentence, top_reasons, with_direction

COLUMN_NAMES = ({f.name for f in FEATURES} | set(ITEM_STATE_COLUMNS)
                | set(schema.EVENT_COLUMN_NAMES) | set(schema.ROW_KEY_COLUMNS)
                | set(schema.LABEL_COLUMNS))
SNAKE = re.compile(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b")


@pytest.fixture(scope="module")
def templates():
    return compile_templates({f.name: f for f in FEATURES})


def _check(text: str) -> None:
    assert text and "{" not in text and "}" not in text
    assert "nan" not in text.lower().split() and "None" not in text
    # every underscore-style column name is snake_case, so this catches all of them (and any
    # raw category key such as key_account)
    assert not SNAKE.search(text), f"snake_case name in {text!r}"


def _row_dicts(rows: pd.DataFrame, templates) -> list[dict]:
    from serving.reasons import column_values

    cols = {name: column_values(rows, name) for name in templates}
    return [{k: v[i] for k, v in cols.items()} for i in range(len(rows))]


def test_snake_check_recognises_every_underscored_column_name():
    assert all(SNAKE.search(f"see {c} here") for c in COLUMN_NAMES if "_" in c)


def test_every_feature_sentence_formats_on_realistic_rows(world, templates):
    rows = world.rows.sample(250, random_state=3)
    # a realistic spread: rows with and without dunning, disputes, promises, history
    for row in _row_dicts(rows, templates):
        for name, tpl in templates.items():
            others = {f: row[f] for f in tpl.fields}
            text = sentence(tpl, row[name], others)  # no KeyError, no ValueError
            _check(text)
            _check(with_direction(text, 0.3))


def test_booleans_use_their_false_sentence_and_missing_values_say_none(templates):
    assert sentence(templates["dispute_open"], True, {}) == "invoice is in dispute"
    assert sentence(templates["dispute_open"], False, {}) == "no open dispute"
    text = sentence(templates["days_since_last_dunning"], np.nan, {})
    assert text == "days since the last dunning run: none"
    # a template naming another feature that is missing falls back as well
    tpl = templates["hist_late_ratio"]
    assert sentence(tpl, 0.5, {f: np.nan for f in tpl.fields}).endswith(": no payment history yet")


def test_sentences_carry_the_values_that_drove_them(templates):
    tpl = templates["hist_late_ratio"]
    text = sentence(tpl, 0.75, {"hist_n_cleared_late": 9.0, "hist_n_cleared": 12.0,
                                "hist_avg_days_late": 23.2})
    assert text == "paid 9 of the last 12 invoices late, 23 days on average"
    assert with_direction("x", -0.1) == "X (lowers the risk)"
    assert with_direction(text, 0.4).endswith("(raises the risk)")
    seg = sentence(templates["customer_segment"], "key_account", {})
    assert seg == "key account customer"


def test_top_reasons_are_the_largest_absolute_contributions(templates):
    names = ["days_overdue", "dispute_open", "amount", "n_contacts"]
    rows = pd.DataFrame({"days_overdue": [12.0, 0.0], "dispute_open": [True, False],
                         "amount": [1500.0, 80.0], "n_contacts": [2.0, 0.0]})
    phi = np.array([[0.9, -1.2, 0.05, 0.3],
                    [0.0, 0.0, -0.4, 0.0]])
    out = top_reasons(phi, rows, names, templates, k=3)
    assert [r["feature"] for r in out[0]] == ["dispute_open", "days_overdue", "n_contacts"]
    assert out[0][0]["direction"] == "lowers"
    assert out[0][0]["sentence"] == "Invoice is in dispute (lowers the risk)"
    assert out[0][1]["sentence"] == "12 days past due (raises the risk)"
    assert out[0][1]["value"] == 12.0
    # zero contributions are no reason: the second row has a single one
    assert [r["feature"] for r in out[1]] == ["amount"]
    assert out[1][0]["sentence"] == "Invoice of 80.00 (lowers the risk)"


def test_templates_naming_unknown_fields_are_rejected():
    spec = FEATURES_BY_NAME["amount"]
    bad = type(spec)(**{**spec.__dict__, "sentence": "{value} and {no_such_feature}"})
    with pytest.raises(ValueError, match="no_such_feature"):
        compile_templates({"amount": bad})


def test_each_sentence_is_filled_with_a_real_value_somewhere(world, templates):
    """Not only the "none" fallback: every template formats a real value on some row."""
    rows = world.rows
    filled = set()
    for name, tpl in templates.items():
        vals = rows[name]
        present = vals.notna()
        for f in tpl.fields:
            present &= rows[f].notna()
        if present.any():
            i = int(np.flatnonzero(present.to_numpy())[0])
            row = _row_dicts(rows.iloc[[i]], templates)[0]
            text = sentence(tpl, row[name], {f: row[f] for f in tpl.fields})
            assert text != tpl.missing
            _check(text)
            filled.add(name)
    assert set(templates) - filled == set()


def test_linked_due_date_features_give_one_reason_with_their_summed_credit():
    """days_to_due and days_overdue are one fact: one sentence, the right one, total unchanged."""
    import numpy as np
    import pandas as pd

    from serving.reasons import merge_linked

    names = ["days_to_due", "days_overdue", "amount"]
    rows = pd.DataFrame({"days_to_due": [-50.0, 12.0], "days_overdue": [50.0, 0.0],
                         "amount": [1.0, 1.0]})
    phi = np.array([[1.1, 1.2, 0.3], [-0.4, 0.1, 0.3]])
    merged = merge_linked(phi, rows, names)
    np.testing.assert_allclose(merged, [[0.0, 2.3, 0.3], [-0.3, 0.0, 0.3]])
    np.testing.assert_allclose(merged.sum(axis=1), phi.sum(axis=1))
    assert phi[0, 0] == 1.1  # the caller's contributions are not modified


# --- sentences read right for every value ---------------------------------------------------
@pytest.mark.parametrize("name, value, others, expected", [
    ("days_to_due", -193.0, {}, "due date passed 193 days ago"),
    ("days_to_due", 0.2, {}, "due today"),
    ("days_to_due", 12.0, {}, "12 days left until the due date"),
    ("hist_avg_days_late", -3.4, {}, "pays 3 days before the due date on average"),
    ("hist_avg_days_late", 0.3, {}, "pays on the due date on average"),
    ("hist_avg_days_late", 23.0, {}, "pays 23 days after the due date on average"),
    ("hist_max_days_late", -3.0, {}, "paid every invoice at least 3 days early"),
    ("hist_late_ratio", 0.3, {"hist_n_cleared_late": 3.0, "hist_n_cleared": 10.0,
                              "hist_avg_days_late": -4.0},
     "paid 3 of the last 10 invoices late, 4 days before the due date on average"),
    ("hist_days_late_slope", -0.5, {}, "pays 0.5 days earlier every month lately"),
    ("hist_days_late_trend_at_due", -7.0, {}, "at its recent trend, would pay 7 days before "
                                              "this due date"),
    ("days_to_promised_date", -2.0, {}, "payment promised for a date that passed 2 days ago"),
    ("terms_discount_days", 0.0, {}, "no cash discount"),
    ("risk_category", None, {}, "customer credit risk category: not on record for this "
                                "customer"),
    ("hist_avg_days_late", np.nan, {}, "mean days between due date and payment: no payment "
                                       "history yet"),
])
def test_sentences_read_right_whatever_the_sign_or_a_missing_value(templates, name, value,
                                                                   others, expected):
    assert sentence(templates[name], value, others) == expected


def test_no_sentence_shows_a_negative_count_of_days(world, templates):
    rows = world.rows.sample(400, random_state=5)
    for row in _row_dicts(rows, templates):
        for name, tpl in templates.items():
            text = sentence(tpl, row[name], {f: row[f] for f in tpl.fields})
            assert not re.search(r"-\d+(\.\d+)? days", text), text
            assert ": none" not in text or tpl.name not in {"risk_category", "credit_limit"}


def test_reasons_carry_weights_and_leave_out_the_columns(templates):
    names = ["days_overdue", "days_to_due", "dispute_open", "amount"]
    rows = pd.DataFrame({"days_overdue": [40.0], "days_to_due": [-40.0],
                         "dispute_open": [True], "amount": [100.0]})
    phi = np.array([[2.0, 0.5, 0.4, -0.1]])
    weights = phi * 0.1
    got = top_reasons(phi, rows, names, templates, k=3, weights=weights,
                      leave_out=("days_overdue", "days_to_due"))[0]
    assert [r["feature"] for r in got] == ["dispute_open", "amount"]
    assert got[0]["weight"] == pytest.approx(0.04)
    assert got[0]["sentence"] == "Invoice is in dispute (raises the risk, +4.0 points)"
    assert got[1]["sentence"].endswith("(lowers the risk, -1.0 points)")
