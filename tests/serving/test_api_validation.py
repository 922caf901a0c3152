"""Request models and the deliberate handling of bad or unknown input (400 / 413 / 422 / flag)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
import pytest
from pydantic import ValidationError

from features.config.serving import ServingConfig
from features.pit.item_state import ITEM_STATE_COLUMNS
from serving.api_models import ApiModels, item_description
from serving.handlers import Refused, handle_score
from serving.validation import check_items, items_frame

SENTINEL = "SENTINEL-7f3a"


@pytest.fixture(scope="module")
def body(open_state, world, make_payload):
    return make_payload(open_state.head(3), world.last_refresh)


def _with(body: dict, i: int = 0, **fields) -> str:
    b = json.loads(json.dumps(body))
    b["items"][i].update(fields)
    return json.dumps(b)


def _errors(api, text: str) -> list[dict]:
    with pytest.raises(ValidationError) as err:
        api.ScoreRequest.model_validate_json(text)
    return err.value.errors(include_input=False)


def test_request_model_covers_every_item_state_column(api):
    fields = api.OpenItem.model_fields
    assert set(fields) == set(ITEM_STATE_COLUMNS)
    for name in ITEM_STATE_COLUMNS:
        assert fields[name].description.startswith(item_description(name))
        assert "_" not in fields[name].description.split("(")[0] or name in fields[name].description
    required = {n for n, f in fields.items() if f.is_required()}
    assert required == {"invoice_id", "customer_id", "company_code", "amount", "open_amount",
                        "posting_time", "net_due_date"}
    schema = api.RerankRequest.model_json_schema()
    assert "capacity" in schema["properties"] and "items" in schema["required"]


def test_a_valid_request_round_trips_to_the_item_state(api, body, open_state):
    req = api.ScoreRequest.model_validate_json(json.dumps(body))
    frame = items_frame(req.items, ITEM_STATE_COLUMNS)
    expected = open_state.head(3).reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected[list(ITEM_STATE_COLUMNS)], check_dtype=True)


@pytest.mark.parametrize("field, value, kind", [
    ("amount", "NaN", "finite_number"),
    ("open_amount", "Infinity", "finite_number"),
    ("amount", -5.0, "greater_than"),
    ("open_amount", -0.01, "greater_than_equal"),
    ("amount", 2e12, "less_than_equal"),
    ("posting_time", "1985-03-01T00:00:00", "datetime_format"),
    ("net_due_date", "2150-01-01", "datetime_format"),
    ("net_due_date", "2023-02-29", "datetime_format"),  # not a calendar date
    ("posting_time", 1700000000, "datetime_type"),  # epoch: told to send ISO 8601
    ("posting_time", "1700000000", "datetime_format"),
    ("dunning_level", -1, "greater_than_equal"),
    ("n_contacts", 1.5, "int_type"),
    ("customer_id", "", "string_too_short"),
    ("customer_id", None, "string_type"),
    ("promise_open", "maybe", "bool_type"),
    # strict types: no coercion of booleans or strings into numbers or flags
    ("amount", True, "float_type"),
    ("amount", "3", "float_type"),
    ("n_contacts", "3", "int_type"),
    ("n_contacts", True, "int_type"),
    ("promise_open", "yes", "bool_type"),
    ("promise_open", 1, "bool_type"),
])
def test_malformed_values_are_refused_naming_the_field(api, body, field, value, kind):
    text = _with(body, 1, **{field: value}).replace('"NaN"', "NaN").replace('"Infinity"',
                                                                              "Infinity")
    errors = _errors(api, text)
    assert [(e["loc"], e["type"]) for e in errors] == [(("items", 1, field), kind)]


def test_unknown_fields_missing_fields_and_empty_lists_are_refused(api, body):
    assert _errors(api, _with(body, 0, customer_name=SENTINEL))[0]["type"] == "extra_forbidden"
    b = json.loads(json.dumps(body))
    del b["items"][2]["net_due_date"]
    assert _errors(api, json.dumps(b))[0]["loc"] == ("items", 2, "net_due_date")
    assert _errors(api, json.dumps({"items": []}))[0]["type"] == "too_short"
    # nothing the client sent is echoed by the error details
    errors = _errors(api, _with(body, 0, customer_id=SENTINEL * 20))
    assert SENTINEL not in json.dumps(errors, default=str)


def _checked(world, api, body_text, as_of=None, **kw):
    req = api.ScoreRequest.model_validate_json(body_text)
    state = items_frame(req.items, ITEM_STATE_COLUMNS)
    return check_items(state, as_of or req.as_of, world.bundle.categories, **kw)


@pytest.mark.parametrize("fields, loc_field, kind", [
    ({"net_due_date": "2020-01-01"}, "net_due_date", "date_order"),
    ({"open_amount": 1e9}, "open_amount", "amount_order"),
    ({"posting_time": "2099-01-01T00:00:00", "net_due_date": "2099-03-01"}, "posting_time",
     "after_as_of"),
    ({"last_contact_time": "2099-01-01T00:00:00"}, "last_contact_time", "after_as_of"),
    ({"dunning_level": 3, "max_dunning_level": 1}, "max_dunning_level", "dunning_order"),
])
def test_impossible_items_are_refused_with_a_problem(world, api, body, fields, loc_field, kind):
    checked = _checked(world, api, _with(body, 2, **fields))
    assert [(p.loc, p.type) for p in checked.problems] == [(("items", 2, loc_field), kind)]
    assert all(SENTINEL not in p.msg for p in checked.problems)


def test_duplicate_invoice_ids_are_refused(world, api, body):
    first = body["items"][0]["invoice_id"]
    checked = _checked(world, api, _with(body, 2, invoice_id=first))
    assert [(p.loc, p.type) for p in checked.problems] == [(("items", 2, "invoice_id"),
                                                            "duplicate")]


def test_derived_defaults_fill_dunning_counts(world, api, body):
    b = json.loads(_with(body, 0, dunning_level=2))
    del b["items"][0]["max_dunning_level"], b["items"][0]["n_dunning_runs"]
    req = api.ScoreRequest.model_validate_json(json.dumps(b))
    frame = items_frame(req.items, ITEM_STATE_COLUMNS)
    assert frame.loc[0, "max_dunning_level"] == 2 and frame.loc[0, "n_dunning_runs"] == 2


def test_unknown_categories_are_flagged_or_refused_by_config(world, api, body):
    text = _with(body, 1, company_code="9999", payment_terms="XQ77")
    checked = _checked(world, api, text)
    assert checked.problems == []
    assert checked.warnings[0] == [] and len(checked.warnings[1]) == 3
    assert any("company code not seen" in w for w in checked.warnings[1])
    assert any("payment terms unknown" in w for w in checked.warnings[1])
    strict = _checked(world, api, text, refuse_unknown_categories=True)
    assert {(p.loc[-1], p.type) for p in strict.problems} == {("company_code", "unknown"),
                                                             ("payment_terms", "unknown")}


def test_parseable_new_terms_are_only_flagged_as_unseen(world, api, body):
    checked = _checked(world, api, _with(body, 0, payment_terms="NT90"))
    assert checked.warnings[0] == ["payment terms not seen in training: scored as missing"]


def test_scoring_before_the_history_snapshot_is_flagged(world, api, body):
    earlier = world.last_refresh - pd.Timedelta(days=400)
    checked = _checked(world, api, _with(body, 0, posting_time="2000-01-01T00:00:00",
                                         net_due_date="2000-02-01"), as_of=earlier,
                       history_as_of=world.store.as_of)
    assert any("before the customer history snapshot" in w for w in checked.warnings[0])
    same = _checked(world, api, json.dumps(body), history_as_of=world.store.as_of)
    assert not any("snapshot" in w for ws in same.warnings for w in ws)


def test_too_many_items_get_413(world, api, body):
    from serving.model import from_bundle

    config = world.config.model_copy(update={"serving": ServingConfig(max_items=2)})
    small = from_bundle(world.bundle, world.store, config, explainer=False)
    req = api.ScoreRequest.model_validate_json(json.dumps(body))
    with pytest.raises(Refused) as err:
        handle_score(small, req.as_of, req.items)
    assert err.value.status == 413 and "limit of 2" in err.value.error


def test_bounds_come_from_the_serving_config():
    api = ApiModels(ServingConfig(max_amount=1000.0, min_date="2000-01-01"))
    item = {"invoice_id": "1", "customer_id": "C", "company_code": "1000", "amount": 1500.0,
            "open_amount": 10.0, "posting_time": "2024-01-01", "net_due_date": "2024-02-01"}
    with pytest.raises(ValidationError, match="less than or equal to 1000"):
        api.OpenItem.model_validate(item)
    ok = api.OpenItem.model_validate({**item, "amount": 900.0})
    assert ok.posting_time == datetime(2024, 1, 1) and ok.document_type == "RV"


@pytest.mark.parametrize("text, expected", [
    ("2023-05-01T10:00:00+02:00", datetime(2023, 5, 1, 10)),  # offset dropped: wall clock
    ("2023-05-01T10:00:00Z", datetime(2023, 5, 1, 10)),
    ("2023-05-01t10:00:00.5z", datetime(2023, 5, 1, 10, 0, 0, 500000)),
    ("2023-05-01 10:00", datetime(2023, 5, 1, 10)),
    ("2024-02-29", datetime(2024, 2, 29)),
    ("2100-12-31T23:59:59", datetime(2100, 12, 31, 23, 59, 59)),
])
def test_dates_with_offsets_and_date_only_are_accepted(api, body, text, expected):
    req = api.ScoreRequest.model_validate_json(_with(body, 1, net_due_date=text))
    assert req.items[1].net_due_date == expected


def test_integral_floats_are_integers_as_json_schema_says(api, body):
    req = api.ScoreRequest.model_validate_json(_with(body, 0, n_contacts=3.0))
    assert req.items[0].n_contacts == 3 and isinstance(req.items[0].n_contacts, int)


def test_the_published_date_pattern_is_exactly_what_the_parser_accepts():
    """Every string the schema's pattern allows parses (a fuzzer generates from it), and what
    it refuses is refused."""
    import re

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from serving.api_models import date_pattern

    cfg = ServingConfig()
    api = ApiModels(cfg)
    pattern = date_pattern(cfg.min_date, cfg.max_date)
    assert "?P<" not in pattern  # ECMA 262: no Python group names in the published one

    @settings(max_examples=300, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.from_regex(pattern) | st.text(max_size=30))
    def check(text):
        ok = re.search(pattern, text) is not None
        try:
            api.ScoreRequest.model_validate({"as_of": text, "items": []})
        except ValidationError as err:
            refused = any(e["loc"] == ("as_of",) for e in err.errors())
        assert refused is not ok, text

    check()


def test_parts_of_the_invoice_amount_cannot_exceed_it(world, api, body):
    for field in ("paid_amount", "disputed_amount", "credit_memo_amount", "promise_amount"):
        amount = body["items"][0]["amount"]
        checked = _checked(world, api, _with(body, 0, **{field: amount * 50 + 10}))
        assert [(p.loc, p.type) for p in checked.problems] == [
            (("items", 0, field), "amount_order")], field
