"""Logged exceptions keep their frames but lose every value the client sent."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel, Field, ValidationError

from serving import logging_safety

SENTINEL = "SENTINEL-7f3a"


class _Item(BaseModel):
    customer_id: str = Field(max_length=5)
    amount: float = Field(gt=0)


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


def test_validation_errors_are_logged_without_input_values(captured):
    with pytest.raises(ValidationError) as err:
        _Item.model_validate({"customer_id": SENTINEL, "amount": -1234.5})
    assert SENTINEL in str(err.value)  # pydantic's own text would leak it
    _log_exception(err.value)
    text = logging.Formatter().format(captured[-1])
    assert SENTINEL not in text and "1234.5" not in text
    assert "customer_id: string_too_long" in text and "amount: greater_than" in text
    assert "test_logging_safety.py" in text  # the frames are still there
    assert captured[-1].exc_info is None


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
