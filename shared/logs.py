"""Logging for every process: readable lines on a terminal, JSON lines otherwise."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

from shared.config import Settings

_EXTRA = ("request_id", "namespace", "session", "job_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
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


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if getattr(root, "_engram_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    root._engram_configured = True  # type: ignore[attr-defined]
