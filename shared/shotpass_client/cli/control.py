"""`shotpass suspend | resume | requeue`: job control a farm user expects."""

from __future__ import annotations

from typing import Any


def add_commands(sub: Any) -> None:
    """Filled in with the job-control RPCs."""
