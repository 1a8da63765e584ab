"""Bounds on the work a server accepts: the global queue bound, per-user quotas and the per-user priority cap.

All counts come from the catalog (renders waiting or running), so they hold across restarts. Previews are
exempt: one frame each, on their own lane, never kept waiting behind a full queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from . import catalog as cat
from .errors import QueueFull


@dataclass
class Quotas:
    max_queued: int = 1000  # [server] max_queued_renders: renders waiting or running on the server
    max_queued_per_user: int = 0  # [server] max_queued_per_user (0: no quota)
    max_frames_per_user: int = 0  # [server] max_frames_per_user: unfinished frames of a user's renders (0: none)

    def check(self, catalog: cat.Catalog, owner: str, lane: str, frames: int) -> None:
        """QueueFull (RESOURCE_EXHAUSTED) when a new render of `frames` frames by `owner` would pass a limit."""
        if lane == "preview":
            return
        waiting = len(catalog.render_ids_in_state(cat.QUEUED, cat.RUNNING))
        if waiting >= self.max_queued:
            raise QueueFull(
                f"the render queue is full ({waiting} renders waiting or running, the limit is "
                f"{self.max_queued}); submit again later, or ask the server's admin to raise "
                "[server] max_queued_renders"
            )
        if not self.max_queued_per_user and not self.max_frames_per_user:
            return
        who = f"user {owner}" if owner else "this server's single user"
        renders, pending = catalog.owner_load(owner)
        if self.max_queued_per_user and renders >= self.max_queued_per_user:
            raise QueueFull(
                f"{who} has {renders} renders waiting or running, the quota is {self.max_queued_per_user} "
                "([server] max_queued_per_user); wait for one to finish or cancel one (shotpass cancel RENDER)"
            )
        if self.max_frames_per_user and pending + frames > self.max_frames_per_user:
            raise QueueFull(
                f"{who} has {pending} frames waiting or running and this render adds {frames}; the quota is "
                f"{self.max_frames_per_user} frames ([server] max_frames_per_user); render fewer frames (--frames) "
                "or wait for running renders to finish"
            )


def cap_priority(settings: Dict[str, Any], owner: str, cap: Optional[int]) -> str:
    """Lower a requested priority to the user's cap (None: no cap); returns a warning, or '' if nothing changed."""
    asked = int(settings.get("priority", 0))
    if cap is None or asked <= cap:
        return ""
    settings["priority"] = cap
    return (
        f"priority {asked} lowered to {cap}, the most {owner or 'this user'} may ask for "
        f"(the server's admin sets it: shotpass users set {owner or 'NAME'} --max-priority N)"
    )
