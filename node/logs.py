"""Structured logs: one JSON object per line (default) or readable text.

Every record carries the node's institution, and consensus records the
node's height and view at the moment of logging. Secrets are never passed
to the logger (keys are logged only as public keys, passphrases never).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

Context = Callable[[], dict[str, Any]]


class _ContextFilter(logging.Filter):
    def __init__(self, institution: str, context: Context | None) -> None:
        super().__init__()
        self.institution = institution
        self.context = context

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.institution
        extra = self.context() if self.context is not None else {}
        record.height = extra.get("height")
        record.view = extra.get("view")
        return True


class _MalformedRequestFilter(logging.Filter):
    """The HTTP server logs each request it cannot parse (a bad request line, a header
    over 8 KiB, broken framing) at ERROR with a traceback, so any client could fill
    the operator's log with them. Such a request is the client's mistake: it becomes
    one INFO line, shown only where INFO is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg = "refused a malformed HTTP request from %s: %s"
        record.args = (remote, " ".join(str(exc.message).split())[:200])  # one line, bounded
        record.exc_info, record.exc_text = None, None
        return logging.getLogger().isEnabledFor(logging.INFO)


_filters: list[_ContextFilter] = []


def set_context(context: Context) -> None:
    """Where consensus lines get the node's height and view (set once the node is built)."""
    for log_filter in _filters:
        log_filter.context = context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "node": getattr(record, "node", None),
            "message": record.getMessage(),
        }
        if record.name == "notarychain.consensus":
            entry["height"] = getattr(record, "height", None)
            entry["view"] = getattr(record, "view", None)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(node)s h=%(height)s v=%(view)s %(name)s: %(message)s"


def configure(institution: str, format_name: str, level: str, context: Context | None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    log_filter = _ContextFilter(institution, context)
    _filters[:] = [log_filter]
    handler.addFilter(log_filter)
    handler.setFormatter(
        JsonFormatter() if format_name == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    server.filters[:] = [f for f in server.filters if not isinstance(f, _MalformedRequestFilter)]
    server.addFilter(_MalformedRequestFilter())
