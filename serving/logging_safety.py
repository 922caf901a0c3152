"""Keep client data (customer ids, names, amounts) out of the server's logs.

BentoML answers an invalid request with a 400 whose body omits the input, but it also logs the
exception with its traceback, and a pydantic ValidationError's text repeats every offending
`input_value`. Any exception message may likewise quote a value. `install()` swaps in a log-record
factory for the whole process that rewrites every record carrying an exception: the traceback's
frames (file, line, function) are kept for debugging, the exception's message is replaced by its
type and, for validation errors, by the failing field paths and error types only.

Client errors are not server errors: a record whose exception is a request that failed
validation (a pydantic ValidationError, which BentoML logs at ERROR with its traceback for every
400) becomes one WARNING line without a traceback, naming the error types and count only (not
the field paths: an unknown field's name is the client's data).

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
        parts = [f"{'.'.join(str(p) for p in _known_loc(e)) or '<body>'}: {e['type']}"
                 for e in exc.errors(include_input=False, include_url=False,
                                     include_context=False)[:20]]
        return f"{name} ({exc.error_count()} errors): " + "; ".join(parts)
    return f"{name} (message withheld: it may quote request data)"


def _known_loc(error: dict) -> tuple:
    """An error's location without a field name the client made up (extra_forbidden)."""
    loc = tuple(error.get("loc", ()))
    return loc[:-1] + ("<unknown field>",) if error.get("type") == "extra_forbidden" else loc


def client_error_summary(exc: ValidationError) -> str:
    """Count and kinds of a request's validation errors: no paths, no values."""
    kinds = sorted({e["type"] for e in exc.errors(include_input=False, include_url=False,
                                                  include_context=False)})
    return f"{exc.error_count()} invalid field(s) ({', '.join(kinds[:10])})"


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


_SHOWN_TYPES = frozenset({"", "application/json"})


def _scrub_access(record: logging.LogRecord) -> None:
    """BentoML's access log writes the request's Content-Type, which is the client's text:
    keep it only when it is one the API knows (else "other")."""
    args = record.args
    if not (isinstance(args, tuple) and len(args) == 4 and isinstance(args[1], str)):
        return
    head, sep, rest = args[1].partition(",type=")
    if not sep:
        return
    if ",length=" in rest:
        ctype, _, length = rest.rpartition(",length=")
        tail = f",length={length}"
    else:
        ctype, tail = rest, ""
    media = ctype.split(";")[0].strip().lower()
    shown = media if media in _SHOWN_TYPES else "other"
    record.args = (args[0], f"{head},type={shown}{tail}", *args[2:])


def scrub_record(record: logging.LogRecord) -> logging.LogRecord:
    """Replace a record's exception by its scrubbed traceback (in place); one WARNING line for
    a request refused with 400; no client content type in the access log."""
    if record.name == "bentoml.access":
        _scrub_access(record)
    if record.exc_info and isinstance(record.exc_info[1], ValidationError) \
            and record.getMessage().startswith("Exception on "):
        # BentoML's log of a request it answered 400: a client error, one line
        where = record.getMessage()[len("Exception on "):]
        record.msg = f"request refused (400) on {where}: " + client_error_summary(
            record.exc_info[1])
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    elif record.exc_info and record.exc_info[1] is not None:
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
