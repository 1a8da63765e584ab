"""`shotpass batch | conform | farm | stats`: a sequence from an edit, back into the edit, on a farm."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Filled in with the pipeline commands."""
