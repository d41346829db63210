"""Logging for every process: readable lines on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from shared.config import Settings

_EXTRA = ("request_id", "namespace", "session", "job_id")
_context: ContextVar[dict[str, Any] | None] = ContextVar("engram_log_context", default=None)


def bind(**values: Any) -> None:
    """Attach values (request_id, namespace, session, job_id) to every log line of this context."""
    _context.set({**(_context.get() or {}), **{k: v for k, v in values.items() if v is not None}})


def clear() -> None:
    _context.set({})


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for key in _EXTRA:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TerminalFormatter(logging.Formatter):
    """Readable lines for people, with the context appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={getattr(record, k)}" for k in _EXTRA if hasattr(record, k))
        return f"{line} [{extra}]" if extra else line


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if getattr(root, "_engram_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if sys.stderr.isatty():
        handler.setFormatter(TerminalFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    root._engram_configured = True  # type: ignore[attr-defined]
