"""Errors a user can act on. Each maps to one gRPC status code in the service layer."""

from __future__ import annotations


class ShotpassError(Exception):
    """Base class: the message is shown to the user as it is."""


class InvalidInput(ShotpassError):
    """Bad request or bad file (gRPC INVALID_ARGUMENT). Name the file and frame in the message."""


class NotFound(ShotpassError):
    """Unknown render, blob, model or pass (gRPC NOT_FOUND)."""


class RenderCancelled(ShotpassError):
    """Raised inside a running pass when its render was cancelled (gRPC CANCELLED)."""


class ResourceExhausted(ShotpassError):
    """A limit of the server is reached: queue, quota, store (gRPC RESOURCE_EXHAUSTED). Say which and what to do."""


class QueueFull(ResourceExhausted):
    """The server's render queue, or a user's quota, is at its bound: try again later."""


class ShuttingDown(ShotpassError):
    """The server is stopping and takes no new work (gRPC UNAVAILABLE: clients retry against the next start)."""


class ModelUnavailable(ShotpassError):
    """A model's files or runtime are missing (gRPC FAILED_PRECONDITION)."""


class CatalogUnavailable(ShotpassError):
    """The catalog cannot write (disk full, I/O error): nothing new is recorded until it can (gRPC UNAVAILABLE).
    Workers wait and resume by themselves; health says NOT_SERVING meanwhile."""
