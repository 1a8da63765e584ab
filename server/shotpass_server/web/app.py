"""The review pages' ASGI app and the uvicorn server that runs it on a thread of the shotpass server."""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..accounts import PermissionDenied, Unauthenticated
from ..errors import InvalidInput, NotFound, ResourceExhausted, ShotpassError, ShuttingDown
from ..validation import short_message
from .api import ReviewApi
from .auth import WebAccess
from .pages import Pages, error_page, login_redirect
from .proxies import DisplayProxies

log = logging.getLogger("shotpass.web")
STATIC = Path(__file__).parent / "static"
_STATUS = ((Unauthenticated, 401), (PermissionDenied, 403), (NotFound, 404), (InvalidInput, 400),
           (ResourceExhausted, 429), (ShuttingDown, 503))
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def build_app(api: ReviewApi, pages: Pages, access: WebAccess) -> Starlette:
    routes = [
        Route("/", pages.home),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/queue", pages.queue),
        Route("/shots", pages.shots),
        Route("/stats", pages.stats),
        Route("/shots/{project}/{shot}", pages.shot),
        Route("/renders/{render_id}", pages.render),
        Route("/api/session", api.session),
        Route("/api/queue", api.queue),
        Route("/api/queue/events", api.queue_events),
        Route("/api/shots", api.shots),
        Route("/api/shots/{project}/{shot}", api.shot),
        Route("/api/stats", api.stats),
        Route("/api/renders/{render_id}", api.render),
        Route("/api/renders/{render_id}/events", api.render_events),
        Route("/api/renders/{render_id}/diff/{other_id}", api.diff),
        Route("/api/renders/{render_id}/review", api.review, methods=["POST"]),
        Route("/api/renders/{render_id}/cancel", api.cancel, methods=["POST"]),
        Route("/api/renders/{render_id}/suspend", api.suspend, methods=["POST"]),
        Route("/api/renders/{render_id}/resume", api.resume, methods=["POST"]),
        Route("/api/renders/{render_id}/priority", api.priority, methods=["POST"]),
        Route("/api/renders/{render_id}/frames/{frame}/{file}", api.frame_file),
        Route("/api/blobs/{file}", api.blob_file),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]

    async def shotpass_error(request: Request, exc: Exception) -> Response:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
        message = short_message(str(exc))
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": status}, status_code=status)
        if status == 401:
            return login_redirect(request)
        return error_page(status, message)

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("review page %s failed", request.url.path, exc_info=exc)
        message = "internal error; the server log has the details"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message, "status": 500}, status_code=500)
        return error_page(500, message)

    app = Starlette(routes=routes, exception_handlers={ShotpassError: shotpass_error, Exception: internal_error})
    return _Guard(app, lambda: access.single_user)  # type: ignore[return-value]


class _Guard:
    """Security headers on every answer; on a single-user server (no tokens), requests only for an IP address
    or localhost, so a web page cannot reach the open API by pointing a DNS name at this box (DNS rebinding)."""

    def __init__(self, app: Any, single_user: Callable[[], bool]) -> None:
        self.app = app
        self.single_user = single_user

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if self.single_user() and not _local_host(host):
            response = JSONResponse({"error": f"host {host[:100]!r} is not served; use the server's IP address",
                                     "status": 421}, status_code=421)
            await response(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def _local_host(host: str) -> bool:
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0]
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def split_listen(listen: str) -> Tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInput(f"[web] listen {listen!r}: use HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class WebServer:
    """uvicorn on its own thread and event loop inside the shotpass server; stopped with it."""

    def __init__(self, server: Any) -> None:  # app.ShotpassServer (not imported: it imports this lazily)
        cfg = server.cfg
        self.tls = bool(cfg.tls_cert)
        self.stopping = threading.Event()
        self.access = WebAccess(server.accounts, secure_cookies=self.tls)
        index = Path(cfg.data_dir) / "review-proxies.sqlite"
        self.proxies = DisplayProxies(server.blobs, server.manager.colours, index)
        self.api = ReviewApi(server.manager, server.accounts, self.access, self.proxies, self.stopping)
        self.app = build_app(self.api, Pages(self.api, self.access), self.access)
        self._cfg = cfg
        self._uvicorn: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None
        self.host, self.port = "", 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}/"

    def start(self, listen: str) -> None:
        host, port = split_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.create_server((host, port), family=family)
        except OSError as err:
            raise OSError(f"review pages: cannot listen on {listen} ({err.strerror})") from None
        self.host, self.port = host, sock.getsockname()[1]
        cfg = self._cfg
        tls = {}
        if self.tls:  # the gRPC server's certificate; with a client CA, browsers must show a client certificate
            tls = {"ssl_certfile": str(cfg.tls_cert), "ssl_keyfile": str(cfg.tls_key)}
            if cfg.tls_client_ca:
                tls.update(ssl_ca_certs=str(cfg.tls_client_ca), ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_level="warning",
                                timeout_graceful_shutdown=2, **tls)
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._uvicorn.run, kwargs={"sockets": [sock]},
                                        name="shotpass-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15.0
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise OSError(f"review pages did not start on {listen} (see the log above)")
            time.sleep(0.02)
        log.info("review pages on %s", self.url)

    def stop(self) -> None:
        self.stopping.set()  # event streams end at their next look, so uvicorn's graceful stop is quick
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10.0)
        self.proxies.close()
