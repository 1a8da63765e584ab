"""Server log output: plain text for people, or one JSON object per line for log collectors.

Records about a render carry its id (`extra={"render_id": ...}`), so a collector can follow one render
across RPCs, workers and frames.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any, Dict

from .errors import InvalidInput

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Fields copied from a record when a caller set them through `extra`.
EXTRA_FIELDS = ("render_id", "frame", "seconds", "method", "code")


class JsonFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, message, then render_id and the other known extras when set."""

    def format(self, record: logging.LogRecord) -> str:
        entry: Dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in EXTRA_FIELDS:
            value = getattr(record, key, None)
            if value not in (None, ""):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with `[render r-...]` added when the record is about a render."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        render_id = getattr(record, "render_id", "")
        return f"{line} [render {render_id}]" if render_id else line


def configure(fmt: str, level: int = logging.INFO) -> None:
    """Point the root logger's handlers (stderr by default) at the chosen format."""
    if fmt not in FORMATS:
        raise InvalidInput(f"log format {fmt!r}: use one of {', '.join(FORMATS)} ([server] log_format or "
                           "--log-format)")
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(level)
