"""Progress on stderr without third-party packages: farm nodes and workstations get the client with grpcio only.

A terminal gets one line redrawn in place; a log file (not a terminal) gets a line at most every few seconds.
"""

from __future__ import annotations

import sys
import time
from typing import Dict, List, Optional, TextIO

LOG_EVERY_S = 5.0


class Bar:
    """One progress line: `desc: n/total unit  postfix`."""

    def __init__(self, total: int, desc: str = "", unit: str = "", stream: Optional[TextIO] = None) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.n = 0
        self.postfix = ""
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last = 0.0
        self._drawn = False

    def update(self, n: int) -> None:
        self.n += n
        self.refresh()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self.refresh()

    def line(self) -> str:
        if self.unit == "B":
            count = f"{_human(self.n)}B/{_human(self.total)}B"
        else:
            count = f"{self.n}/{self.total}" + (f" {self.unit}s" if self.unit else "")
        return f"{self.desc}: {count}" + (f"  {self.postfix}" if self.postfix else "")

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            self._stream.write("\r\x1b[2K" + self.line())
            self._drawn = True
        elif force or now - self._last >= LOG_EVERY_S:
            self._stream.write(self.line() + "\n")
            self._last = now
        self._stream.flush()

    def write(self, message: str) -> None:
        """A message above the progress line."""
        if self._tty and self._drawn:
            self._stream.write("\r\x1b[2K")
        self._stream.write(message + "\n")
        if self._tty:
            self._stream.write(self.line())
        self._stream.flush()

    def close(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[2K" + self.line() + "\n")
        else:
            self.refresh(force=True)
        self._stream.flush()


class Board:
    """One line per key (a shot), redrawn together on a terminal; on a log, changed lines every few seconds."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._lines: Dict[str, str] = {}
        self._printed: Dict[str, str] = {}
        self._drawn = 0
        self._last = 0.0

    def set(self, key: str, text: str) -> None:
        self._lines[key] = text

    def draw(self, force: bool = False) -> None:
        if self._tty:
            if self._drawn:
                self._stream.write(f"\x1b[{self._drawn}F")
            lines: List[str] = list(self._lines.values())
            for text in lines:
                self._stream.write("\x1b[2K" + text + "\n")
            self._drawn = len(lines)
        elif force or time.monotonic() - self._last >= LOG_EVERY_S:
            for key, text in self._lines.items():
                if self._printed.get(key) != text:
                    self._stream.write(text + "\n")
                    self._printed[key] = text
            self._last = time.monotonic()
        self._stream.flush()


def _human(n: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(n) < 1000:
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}"
        n /= 1000
    return f"{n:.1f}T"
