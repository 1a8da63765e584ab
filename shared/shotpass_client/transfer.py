"""Blob bytes over the server's data plane (HTTP(S) beside gRPC), with the standard library only.

The server advertises the port in GetServerInfo; `Client` uses it for uploads and downloads and falls back
to gRPC when it is absent or fails at the transport level (a refused connection, a reset, a 5xx). Answers
that gRPC would give alike (no token, another project's blob, a corrupted upload, a full store) are raised
as the same ClientError codes instead.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
from typing import Callable, List, Optional

from . import digests
from .blockio import BLOCK_BYTES, send_file

TIMEOUT_S = 60.0  # a stalled transfer
CONNECT_TIMEOUT_S = 3.0
_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
          507: "RESOURCE_EXHAUSTED"}


class TransportFailed(Exception):
    """The data plane could not carry the bytes (not an answer about them): use gRPC instead."""


class Refused(Exception):
    """The data plane answered with a refusal gRPC would give too; `code` is the gRPC status name."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class DataPlane:
    def __init__(
        self,
        host: str,
        port: int,
        token: Optional[str] = None,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
    ) -> None:
        self.host, self.port = host.strip("[]"), port
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._context: Optional[ssl.SSLContext] = None
        if tls:
            self._context = ssl.create_default_context(cadata=root_certificates.decode() if root_certificates else None)
            if certificate_chain and private_key:
                paths = _pem_files(certificate_chain, private_key)
                try:
                    self._context.load_cert_chain(*paths)
                finally:
                    for path in paths:
                        os.unlink(path)
        self._local = threading.local()  # one keep-alive connection per thread

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # A short connect timeout: a firewalled port must not hold an upload long before gRPC takes over.
            if self._context is not None:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=CONNECT_TIMEOUT_S,
                                                   context=self._context)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT_S)
            conn.connect()
            conn.sock.settimeout(TIMEOUT_S)
            # Headers, then the body: with Nagle on, the body's first bytes would wait for a delayed ACK (40 ms).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def upload_file(self, digest: str, path: str, size: int, on_bytes: Optional[Callable[[int], None]]) -> None:
        with open(path, "rb", buffering=0) as fh:
            self._put(digest, size, lambda sock: _send_whole_file(sock, fh, size, on_bytes))

    def upload_bytes(self, digest: str, data: bytes, on_bytes: Optional[Callable[[int], None]]) -> None:
        def send(sock) -> None:  # type: ignore[no-untyped-def]
            view = memoryview(data)
            for offset in range(0, len(data), BLOCK_BYTES):
                sock.sendall(view[offset: offset + BLOCK_BYTES])
                if on_bytes:
                    on_bytes(min(BLOCK_BYTES, len(data) - offset))

        self._put(digest, len(data), send)

    def _put(self, digest: str, size: int, send_body: Callable) -> None:  # type: ignore[type-arg]
        try:
            conn = self._connection()
            conn.putrequest("PUT", f"/v1/blobs/{digest}", skip_accept_encoding=True)
            for key, value in {**self._headers, "Content-Length": str(size),
                               "Content-Type": "application/octet-stream"}.items():
                conn.putheader(key, value)
            conn.endheaders()
            send_body(conn.sock)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._drop()
            raise TransportFailed(f"data plane upload of {digest[:12]} failed: {err}") from None
        self._check(response.status, body)

    def download_to(self, digest: str, fh, on_bytes: Optional[Callable[[int], None]] = None) -> int:  # type: ignore[no-untyped-def]
        """Write the blob to an open file, verifying it against its digest; returns its size."""
        h = digests.hasher_for(digest)
        try:
            conn = self._connection()
            conn.request("GET", f"/v1/blobs/{digest}", headers=self._headers)
            response = conn.getresponse()
            if response.status != 200:
                body = response.read()
                self._check(response.status, body)
            remaining = int(response.getheader("Content-Length", "-1"))
            size = 0
            buf = bytearray(BLOCK_BYTES)
            view = memoryview(buf)
            while remaining != 0:
                n = response.readinto(view[: BLOCK_BYTES if remaining < 0 else min(BLOCK_BYTES, remaining)])
                if not n:
                    break
                fh.write(view[:n])
                h.update(view[:n])
                size += n
                remaining -= n
                if on_bytes:
                    on_bytes(n)
        except (OSError, http.client.HTTPException) as err:
            self._drop()
            raise TransportFailed(f"data plane download of {digest[:12]} failed: {err}") from None
        if remaining > 0:
            self._drop()
            raise TransportFailed(f"data plane download of {digest[:12]} ended early")
        if h.digest() != digest:
            raise Refused(f"download of {digest[:12]} was corrupted; fetch it again", "DATA_LOSS")
        return size

    def _check(self, status: int, body: bytes) -> None:
        if status < 300:
            return
        try:
            message = json.loads(body).get("error", "")
        except ValueError:
            message = body[:200].decode(errors="replace")
        if status in _CODES:
            raise Refused(message or f"HTTP {status}", _CODES[status])
        self._drop()
        raise TransportFailed(f"data plane answered HTTP {status}: {message}")


def _send_whole_file(sock, fh, size: int, on_bytes: Optional[Callable[[int], None]]) -> None:  # type: ignore[no-untyped-def]
    if send_file(sock, fh, size, on_bytes) != size:
        raise ConnectionError("the file ended before its size")


def _pem_files(cert: bytes, key: bytes) -> List[str]:
    """ssl loads a client certificate only from files: private temporary ones, removed once loaded."""
    paths: List[str] = []
    for data in (cert, key):
        fd, path = tempfile.mkstemp(prefix="shotpass-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        paths.append(path)
    return paths
