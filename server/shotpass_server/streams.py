"""Long calls (watches, uploads, downloads, previews) get their own bounded share of the RPC threads.

The gRPC server runs every call on one thread pool. A watch holds its thread for as long as the render
runs, so without a bound a few dozen idle watchers take every thread and health checks, GetServerInfo
and submits queue behind them. The pool is sized `max_open_streams + rpc_threads`; long calls past
`max_open_streams` (server-wide) or `max_streams_per_user` are answered RESOURCE_EXHAUSTED at once, so
`rpc_threads` threads always stay free for short calls.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Dict, Iterator

from .errors import ResourceExhausted

DEFAULT_MAX_OPEN_STREAMS = 256
DEFAULT_MAX_STREAMS_PER_USER = 64
DEFAULT_RPC_THREADS = 32  # kept free for short calls, whatever the streams do


class StreamLimiter:
    def __init__(self, max_open: int, per_user: int) -> None:
        self.max_open = max_open
        self.per_user = per_user
        self._lock = threading.Lock()
        self._open = 0
        self._by_user: Dict[str, int] = {}

    @contextlib.contextmanager
    def hold(self, user: str, what: str) -> Iterator[None]:
        """One long call of `user` (a user name, or the client's host on a single-user server)."""
        with self._lock:
            mine = self._by_user.get(user, 0)
            if mine >= self.per_user:
                raise ResourceExhausted(
                    f"{what}: {user} already has {mine} open streams (watches, uploads, downloads, previews), "
                    f"the most one user may hold ([server] max_streams_per_user = {self.per_user}); close "
                    "some (each attached `shotpass render` holds one) or ask the server's admin to raise it"
                )
            if self._open >= self.max_open:
                raise ResourceExhausted(
                    f"{what}: the server already serves {self._open} open streams, its limit ([server] "
                    "max_open_streams); try again shortly"
                )
            self._open += 1
            self._by_user[user] = mine + 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1
                left = self._by_user[user] - 1
                if left:
                    self._by_user[user] = left
                else:
                    del self._by_user[user]

    def open_streams(self) -> int:
        with self._lock:
            return self._open
