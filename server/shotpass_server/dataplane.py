"""The data plane: blob bytes over plain HTTP(S) beside gRPC, for transfers at wire speed.

  PUT /v1/blobs/DIGEST   body: the blob (Content-Length required); verified against DIGEST while it is written
  GET /v1/blobs/DIGEST   the blob, read and sent in cache-sized blocks through one reused buffer (blockio.py)

The same bearer token as the gRPC calls (`Authorization: Bearer TOKEN`), the same access rules (a download
needs the blob to be reachable by the caller, as DownloadBlob; an upload is recorded as the caller's, as
UploadBlobs) and the same store writer: a body whose bytes do not hash to DIGEST is never stored. A PUT cut
short leaves the caller's partial upload, which a gRPC UploadBlobs resumes (FindBlobs reports it).
The port is advertised in ServerInfo.data_plane_port; clients fall back to gRPC when it is absent or fails.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from shotpass_client.blockio import BLOCK_BYTES, send_file

from .accounts import PermissionDenied, Unauthenticated
from .blobs import MAX_BLOB_BYTES, StoreFull, check_digest
from .errors import InvalidInput, NotFound, ShotpassError, ShuttingDown
from .service import ShotPassService, upload_owner

log = logging.getLogger("shotpass.dataplane")

PREFIX = "/v1/blobs/"
_STATUS = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (StoreFull, 507),
    (ShuttingDown, 503),
    (InvalidInput, 400),
)


def http_status(exc: ShotpassError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


class DataPlane:
    """An HTTP(S) server on its own port, in the server's process, serving the service's store."""

    def __init__(self, service: ShotPassService, ssl_context: Optional[ssl.SSLContext] = None) -> None:
        self.service = service
        self.ssl_context = ssl_context
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self, listen: str) -> int:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        handler = type("Handler", (_Handler,), {"plane": self})
        server = _Server((host, int(port)), handler)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="shotpass-dataplane", daemon=True)
        self._thread.start()
        return int(server.server_address[1])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else 0

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A failed TLS handshake or a peer gone mid-request: one line, not a traceback on stderr.
        log.info("data plane connection from %s failed: %s", client_address[0], sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    plane: DataPlane
    protocol_version = "HTTP/1.1"  # keep-alive: a client sends a shot's frames over one connection
    server_version = "shotpass-dataplane"
    timeout = 120  # seconds a connection may sit idle or stall mid-body before it is closed
    disable_nagle_algorithm = True  # headers then the body: Nagle would hold the body for a delayed ACK

    def setup(self) -> None:
        # TLS handshakes happen here, on the connection's own thread: a slow or hostile client cannot hold
        # up the accept loop, and the idle timeout covers the handshake too.
        self.request.settimeout(self.timeout)
        if self.plane.ssl_context is not None:
            self.request = self.plane.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, socket.timeout, ssl.SSLError) as err:  # a failed handshake or a dropped peer
            log.info("data plane connection from %s ended: %s", self.client_address[0], err)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.client_address[0], *args)

    # ------------------------------------------------------------ requests

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        self._guarded(self._put)

    def do_GET(self) -> None:  # noqa: N802
        self._guarded(self._get)

    def _put(self) -> None:
        service = self.plane.service
        caller = self._caller()
        digest = self._digest()
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise InvalidInput("a blob upload needs a Content-Length header (the blob's size in bytes)")
        size = int(length)
        if size > MAX_BLOB_BYTES:
            self.close_connection = True
            raise InvalidInput(f"blob size {size} is outside 0..{MAX_BLOB_BYTES}")
        present = service.reachable_blob(caller, digest)
        writer = service.m.blobs.writer(digest, size, upload_owner(caller))
        try:
            buf = bytearray(min(BLOCK_BYTES, max(size, 1)))
            view = memoryview(buf)
            while writer.received < size:
                n = self.rfile.readinto(view[: min(len(buf), size - writer.received)])
                if not n:
                    self.close_connection = True
                    raise InvalidInput(
                        f"blob {digest[:12]} ended after {writer.received} of {size} bytes; the upload was cut, "
                        "send it again"
                    )
                writer.write(writer.received, view[:n])
            writer.commit()  # verifies the digest; only then is the blob visible
        finally:
            writer.suspend()  # no-op after commit; keeps a cut upload for a gRPC resume
        if service.accounts:
            service.accounts.record_upload(caller, digest)
        self._moved = size
        self._answer(201, {"digest": digest, "size": size, "already_present": present})

    def _get(self) -> None:
        service = self.plane.service
        caller = self._caller()
        digest = self._digest()
        if service.accounts:
            service.accounts.check_blob(caller, digest)
        path = service.m.blobs.path(digest)
        try:
            fh = path.open("rb", buffering=0)
        except FileNotFoundError:
            raise NotFound(f"blob {digest[:12]} is not stored on this server") from None
        with fh:
            size = _size(fh)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.flush()
            sent = send_file(self.connection, fh, size)  # a stored blob is verified: no hash on the way out
            self._moved = sent
            if sent != size:
                self.close_connection = True
                log.warning("blob %s: sent %d of %d bytes (the file changed?)", digest[:12], sent, size)

    # ------------------------------------------------------------ helpers

    def _caller(self) -> Any:
        service = self.plane.service
        if service.starting():
            raise ShuttingDown("the server is starting; try again in a moment")
        return service.caller_of((("authorization", self.headers.get("Authorization", "")),))

    def _digest(self) -> str:
        path = self.path.split("?", 1)[0]
        if not path.startswith(PREFIX):
            raise NotFound(f"no such endpoint {path[:80]!r}; blobs are at {PREFIX}DIGEST")
        return check_digest(path[len(PREFIX):])

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_response(self, code: int, message: Optional[str] = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _guarded(self, handle: Any) -> None:
        self._status, self._moved = 0, 0
        try:
            handle()
        except ShotpassError as exc:
            self._refuse(http_status(exc), str(exc))
        except (ConnectionError, socket.timeout, ssl.SSLError) as err:
            self.close_connection = True
            log.info("data plane: %s %s cut by the client: %s", self.command, self.path[:80], err)
        except Exception as exc:
            log.exception("data plane %s %s failed", self.command, self.path[:80])
            self._refuse(500, f"internal error: {exc}")
        self.plane.service.m.metrics.data_plane_request(self.command, self._status, self._moved)

    def _refuse(self, status: int, message: str) -> None:
        if self.headers.get("Content-Length", "0") != "0" and self.command == "PUT":
            self.close_connection = True  # the unread body must not be taken for the next request
        try:
            self._answer(status, {"error": message})
        except OSError:
            self.close_connection = True


def _size(fh: Any) -> int:
    return os.fstat(fh.fileno()).st_size


def listen_address(setting: str, grpc_listen: str) -> Optional[str]:
    """HOST:PORT to bind for `[server] data_plane`: "auto" is the gRPC host on a free port; "off" or "" none."""
    value = (setting or "").strip()
    if value in ("", "off"):
        return None
    if value == "auto":
        return grpc_listen.rsplit(":", 1)[0] + ":0"
    return value
