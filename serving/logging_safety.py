"""Keep client data (customer ids, names, amounts) out of the server's logs.

BentoML answers an invalid request with a 400 whose body omits the input, but it also logs the
exception with its traceback, and a pydantic ValidationError's text repeats every offending
`input_value`. Any exception message may likewise quote a value. `install()` swaps in a log-record
factory for the whole process that rewrites every record carrying an exception: the traceback's
frames (file, line, function) are kept for debugging, the exception's message is replaced by its
type and, for validation errors, by the failing field paths and error types only.

A record factory (rather than a handler filter) is used because BentoML configures its own
handlers in each worker after our module is imported; the factory runs whatever the handlers.
"""

from __future__ import annotations

import logging
import traceback

from pydantic import ValidationError

_INSTALLED_ATTR = "_paydelay_scrubbing"


def describe_exception(exc: BaseException) -> str:
    """Type, and for pydantic validation errors the field paths and error types: no values."""
    name = type(exc).__name__
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<body>'}: {e['type']}"
                 for e in exc.errors(include_input=False, include_url=False,
                                     include_context=False)[:20]]
        return f"{name} ({exc.error_count()} errors): " + "; ".join(parts)
    return f"{name} (message withheld: it may quote request data)"


def scrubbed_traceback(exc_info) -> str:
    """The traceback's frames without any exception message, chained causes included."""
    _, exc, tb = exc_info
    lines: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = traceback.extract_tb(tb if tb is not None else exc.__traceback__)
        block = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames]
        lines[:0] = ["Traceback (most recent call last):", *block, describe_exception(exc)]
        nxt = exc.__cause__ or exc.__context__
        if nxt is not None:
            lines[:0] = ["(caused by, scrubbed)"]
        exc, tb = nxt, None
    return "\n".join(lines)


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace a record's exception by its scrubbed traceback (in place)."""
    if record.exc_info and record.exc_info[1] is not None:
        text = scrubbed_traceback(record.exc_info)
        record.msg = f"{record.getMessage()}\n{text}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
    return record


def install() -> None:
    """Scrub exceptions from every log record of this process (idempotent)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, _INSTALLED_ATTR, False):
        return

    def scrubbing_factory(*args, **kwargs):
        return scrub_record(factory(*args, **kwargs))

    setattr(scrubbing_factory, _INSTALLED_ATTR, True)
    logging.setLogRecordFactory(scrubbing_factory)
