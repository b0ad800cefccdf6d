"""Structured logging to stderr: one line per event, as logfmt ("text") or JSON ("json").

Every line has the time (UTC, milliseconds), the level, the component (logger
name) and the message. An event about one session or one order carries the IDs
as fields, passed with ``extra``::

    log.warning("order rejected", extra={"session": "CLIENT44", "cl_ord_id": "A1", "order_id": "NONE"})

    ts=2024-05-02T07:30:01.123Z level=warning logger=fixgw.engine msg="order rejected" session=CLIENT44 cl_ord_id=A1 order_id=NONE
    {"ts": "2024-05-02T07:30:01.123Z", "level": "warning", "logger": "fixgw.engine", "msg": "order rejected", "session": "CLIENT44", ...}

``fields(...)`` builds such an ``extra`` and leaves out the IDs that are None.
Field names in use: session, cl_ord_id, orig_cl_ord_id, order_id, venue,
exec_id, operator, reason. An exception's traceback goes in the field ``exc``.

Both formats mask Password (554) and the other secret FIX tags (fixspecs/redact.py)
in the message, the fields and tracebacks.
"""
from __future__ import annotations

import json
import logging
import sys
import time

from fixspecs.redact import redact

FORMATS = ("text", "json")

# attributes every LogRecord has; anything else on a record came from ``extra``
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def fields(**ids) -> dict:
    """An ``extra`` dict with the IDs that are set (None values are left out)."""
    return {k: v for k, v in ids.items() if v is not None}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


def _exc_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return record.exc_text or None


class LogfmtFormatter(logging.Formatter):
    """``key=value`` pairs; values with spaces, quotes, '=' or newlines are double-quoted and escaped."""

    @staticmethod
    def quote(value) -> str:
        text = str(value)
        if text and not any(c in text for c in ' "=\\\n\r\t'):
            return text
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace(
            "\r", "\\r").replace("\t", "\\t") + '"'

    def format(self, record: logging.LogRecord) -> str:
        q = self.quote
        parts = [f"ts={_timestamp(record)}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={q(redact(record.getMessage()))}"]
        parts += [f"{k}={q(redact(str(v)))}" for k, v in _extras(record).items()]
        exc = _exc_text(self, record)
        if exc:
            parts.append(f"exc={q(redact(exc))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name,
               "msg": redact(record.getMessage())}
        out.update({k: redact(v) if isinstance(v, str) else v for k, v in _extras(record).items()})
        exc = _exc_text(self, record)
        if exc:
            out["exc"] = redact(exc)
        return json.dumps(out, default=str)


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return LogfmtFormatter()
    raise ValueError(f"unknown log format {fmt!r} (use {' or '.join(FORMATS)})")


class LibraryInfoAtDebug(logging.Filter):
    """Libraries' INFO lines at debug: Alembic's (its plugins' set-up, "Context impl ...", each migration
    step) filled a screen at every start before the gateway's first line, which says the schema revision
    itself, once; APScheduler's ("Adding job tentatively", "Added job", "Scheduler started") repeat what
    fixgw.schedule says of each job. Shown (as level=debug) only when the log level is DEBUG."""

    LOGGERS = ("alembic", "apscheduler")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.name.split(".", 1)[0] in self.LOGGERS:
            if not logging.getLogger().isEnabledFor(logging.DEBUG):
                return False
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    handler.addFilter(LibraryInfoAtDebug())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
