"""Logged exceptions keep their frames but lose every value the client sent."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving import logging_safety

SENTINEL = "SENTINEL-7f3a"


class _Item(BaseModel):
    customer_id: str = Field(max_length=5)
    amount: float = Field(gt=0)


class _StrictItem(_Item):
    model_config = ConfigDict(extra="forbid")


@pytest.fixture()
def captured():
    logging_safety.install()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
            self.format(record)  # what a real handler would write

    logger = logging.getLogger("paydelay.test.scrub")
    handler = Keep()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)


def _log_exception(exc: Exception) -> None:
    try:
        raise exc
    except Exception:
        logging.getLogger("paydelay.test.scrub").exception("Exception on /score [POST]")


def test_a_refused_request_is_one_warning_line_without_values_or_paths(captured):
    """BentoML logs every 400 at ERROR with a traceback: it becomes one WARNING line naming
    the count and kinds of problems, not the values nor the field paths (an unknown field's
    name is the client's data)."""
    with pytest.raises(ValidationError) as err:
        _StrictItem.model_validate({"customer_id": SENTINEL, "amount": -1234.5, SENTINEL: 1})
    assert SENTINEL in str(err.value)  # pydantic's own text would leak it
    _log_exception(err.value)
    record = captured[-1]
    text = logging.Formatter().format(record)
    assert SENTINEL not in text and "1234.5" not in text
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert "Traceback" not in text and "\n" not in text
    assert text == ("request refused (400) on /score [POST]: 3 invalid field(s) "
                    "(extra_forbidden, greater_than, string_too_long)")


def test_other_validation_errors_keep_frames_but_no_values_nor_unknown_names(captured):
    with pytest.raises(ValidationError) as err:
        _StrictItem.model_validate({"customer_id": SENTINEL, "amount": -1234.5, SENTINEL: 1})
    try:
        raise err.value
    except ValidationError:
        logging.getLogger("paydelay.test.scrub").exception("scoring failed")
    text = logging.Formatter().format(captured[-1])
    assert SENTINEL not in text and "1234.5" not in text
    assert "customer_id: string_too_long" in text and "amount: greater_than" in text
    assert "<unknown field>: extra_forbidden" in text
    assert "test_logging_safety.py" in text  # the frames are still there
    assert captured[-1].levelno == logging.ERROR


def test_the_access_log_does_not_write_the_clients_content_type(captured):
    access = logging.getLogger("bentoml.access")
    level = access.level
    access.setLevel(logging.INFO)
    for handler in logging.getLogger("paydelay.test.scrub").handlers:
        access.addHandler(handler)
    try:
        for ctype, shown in ((f"application/x-{SENTINEL}; a=b,c", "other"),
                             ("application/json; charset=utf-8", "application/json")):
            access.info("%s (%s) (%s) %.3fms", "127.0.0.1:1",
                        f"scheme=http,method=POST,path=/score,type={ctype},length=2",
                        "status=415,type=application/json,length=10", 1.0)
            text = captured[-1].getMessage()
            assert SENTINEL not in text
            assert f"path=/score,type={shown},length=2" in text
    finally:
        access.setLevel(level)
        for handler in logging.getLogger("paydelay.test.scrub").handlers:
            access.removeHandler(handler)


def test_any_exception_message_is_withheld_with_its_cause(captured):
    try:
        try:
            raise KeyError(SENTINEL)
        except KeyError as inner:
            raise RuntimeError(f"customer {SENTINEL} failed") from inner
    except RuntimeError as exc:
        _log_exception(exc)
    text = logging.Formatter().format(captured[-1])
    assert SENTINEL not in text
    assert "RuntimeError (message withheld" in text and "KeyError (message withheld" in text


def test_plain_records_are_untouched_and_install_is_idempotent(captured):
    logging_safety.install()
    factory = logging.getLogRecordFactory()
    logging_safety.install()
    assert logging.getLogRecordFactory() is factory
    logging.getLogger("paydelay.test.scrub").info("model %s loaded", "v3")
    assert captured[-1].getMessage() == "model v3 loaded"
