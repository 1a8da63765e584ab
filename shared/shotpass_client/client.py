"""A thin, typed wrapper over the shotpass gRPC contract: blobs in chunks, renders, events."""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import time
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import grpc

from .proto import shotpass_pb2 as pb
from .proto import shotpass_pb2_grpc as pb_grpc

CHUNK_BYTES = 1 << 20  # 1 MiB: well under gRPC's 4 MiB default message limit
MAX_MESSAGE_BYTES = 8 << 20
DEFAULT_ADDRESS = os.environ.get("SHOTPASS_SERVER", "localhost:50051")
FINAL_STATES = (pb.FINISHED, pb.FAILED, pb.CANCELLED)


def current_umask() -> int:
    """The process umask: read from /proc where it is there, else set and restored at once."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class ClientError(Exception):
    """A server answer or a connection problem, with a message a user can act on."""

    def __init__(self, message: str, code: str = "UNKNOWN") -> None:
        super().__init__(message)
        self.code = code


def tls_files(
    ca: Optional[str] = None, cert: Optional[str] = None, key: Optional[str] = None
) -> Dict[str, Optional[bytes]]:
    """Client keyword arguments for TLS from PEM file paths (None stays None), e.g. Client(addr, **tls_files(ca))."""

    def read(path: Optional[str], what: str) -> Optional[bytes]:
        if not path:
            return None
        try:
            with open(path, "rb") as fh:
                return fh.read()
        except OSError as err:
            raise ClientError(f"cannot read the TLS {what} {path}: {err.strerror}", "INVALID_ARGUMENT") from None

    if bool(cert) != bool(key):
        raise ClientError("a client certificate needs its key, and the key its certificate", "INVALID_ARGUMENT")
    return {
        "root_certificates": read(ca, "CA certificate"),
        "certificate_chain": read(cert, "client certificate"),
        "private_key": read(key, "client key"),
    }


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def state_name(state: int) -> str:
    return pb.RenderState.Name(state)


class Client:
    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: Optional[str] = None,
        connect_timeout: float = 5.0,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
    ) -> None:
        """tls=True (or any certificate given) connects with TLS: root_certificates (PEM) is the CA that
        signed the server's certificate (None: the system's roots); certificate_chain/private_key (PEM) are
        this client's own, for servers that demand mutual TLS."""
        self.address = address
        self._metadata: Tuple[Tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        self.tls = bool(tls or root_certificates or certificate_chain)
        if self.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.ShotPassStub(self._channel)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            self._channel.close()
            raise ClientError(
                f"cannot reach a shotpass server at {address}: is it running? "
                "(start one with: shotpass serve --listen HOST:PORT --data-dir DIR)"
                + ("" if self.tls else "; if it uses TLS, pass --tls-ca CA.pem or set SHOTPASS_TLS_CA"),
                "UNAVAILABLE",
            ) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- info

    def server_info(self) -> pb.ServerInfo:
        return self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())

    def list_models(self, pass_name: str = "") -> List[pb.ModelInfo]:
        return list(self._call(self._stub.ListModels, pb.ListModelsRequest(pass_name=pass_name)).models)

    def reload_models(self) -> List[pb.ModelInfo]:
        """Admin only: the server re-reads and re-probes its model registry; returns the new list."""
        return list(self._call(self._stub.ReloadModels, pb.ReloadModelsRequest()).models)

    # ----------------------------------------------------------------- blobs

    def find_blobs(self, digests: Iterable[str]) -> set:
        return self.find_blobs_detail(digests)[0]

    def find_blobs_detail(self, digests: Iterable[str]) -> Tuple[set, Dict[str, int]]:
        """(digests the server has, {digest: bytes the server holds of this caller's cut upload of it})."""
        answer = self._call(self._stub.FindBlobs, pb.FindBlobsRequest(digests=sorted(set(digests))))
        return set(answer.present), {p.digest: p.bytes_stored for p in answer.partial}

    def upload_files(
        self, paths: Iterable[str], on_bytes: Optional[Callable[[int], None]] = None
    ) -> Tuple[Dict[str, str], int]:
        """Upload what the server lacks, resuming cut uploads where the server says. Returns ({path: digest},
        bytes sent)."""
        digests = {path: file_digest(path) for path in paths}
        sources: Dict[str, _Source] = {}
        for path, digest in digests.items():
            sources.setdefault(digest, _Source(os.path.getsize(path), functools.partial(_file_blocks, path)))
        return digests, self._upload(sources, on_bytes)

    def upload_bytes(self, data: bytes, on_bytes: Optional[Callable[[int], None]] = None) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._upload({digest: _Source(len(data), functools.partial(_memory_blocks, data))}, on_bytes)
        return digest

    def _upload(self, sources: Dict[str, _Source], on_bytes: Optional[Callable[[int], None]]) -> int:
        """Send the blobs the server lacks in one stream; a blob it holds a first part of starts there."""
        present, resume = self.find_blobs_detail(sources)
        todo = {d: s for d, s in sources.items() if d not in present}
        if not todo:
            return 0
        resume = {d: n for d, n in resume.items() if d in todo and 0 < n < todo[d].size}
        try:
            return self._send(todo, resume, on_bytes)
        except ClientError as err:
            if not resume or err.code != "INVALID_ARGUMENT":
                raise
        # The server no longer holds what it reported (its partial expired meanwhile): send them whole.
        present, _ = self.find_blobs_detail(todo)
        return self._send({d: s for d, s in todo.items() if d not in present}, {}, on_bytes)

    def _send(
        self, todo: Dict[str, _Source], resume: Dict[str, int], on_bytes: Optional[Callable[[int], None]]
    ) -> int:
        if not todo:
            return 0

        def chunks() -> Iterator[pb.UploadChunk]:
            for digest, source in todo.items():
                offset = start = resume.get(digest, 0)
                for data in source.blocks(start):
                    yield pb.UploadChunk(digest=digest, total_size=source.size, offset=offset, data=data)
                    offset += len(data)
                    if on_bytes:
                        on_bytes(len(data))
                if offset == start == 0:  # an empty blob still needs one chunk to exist
                    yield pb.UploadChunk(digest=digest, total_size=source.size, offset=0, data=b"")

        return self._call(self._stub.UploadBlobs, chunks()).bytes_received

    def download(self, digest: str, dest: str) -> int:
        """Write a blob to dest atomically (a partial file is never left under dest's name)."""
        directory = os.path.dirname(os.path.abspath(dest))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".shotpass-", suffix=".part")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs are shared like any file the user writes
        h = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in self._stream(self._stub.DownloadBlob, pb.DownloadBlobRequest(digest=digest)):
                    fh.write(chunk.data)
                    h.update(chunk.data)
                    size += len(chunk.data)
            if h.hexdigest() != digest:
                raise ClientError(f"download of {digest[:12]} was corrupted; fetch it again", "DATA_LOSS")
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size

    def download_bytes(self, digest: str) -> bytes:
        return b"".join(c.data for c in self._stream(self._stub.DownloadBlob, pb.DownloadBlobRequest(digest=digest)))

    # ----------------------------------------------------------------- renders

    def submit(self, request: pb.SubmitRenderRequest) -> pb.SubmitRenderResponse:
        return self._call(self._stub.SubmitRender, request)

    def preview(self, request: pb.SubmitRenderRequest, timeout_seconds: float = 0) -> pb.PreviewFrameResponse:
        return self._call(
            self._stub.PreviewFrame, pb.PreviewFrameRequest(render=request, timeout_seconds=timeout_seconds)
        )

    def get_render(self, render_id: str) -> pb.Render:
        return self._call(self._stub.GetRender, pb.GetRenderRequest(render_id=render_id))

    def list_renders(self, project: str = "", shot: str = "", limit: int = 0) -> List[pb.Render]:
        req = pb.ListRendersRequest(project=project, shot=shot, limit=limit)
        return list(self._call(self._stub.ListRenders, req).renders)

    def cancel(self, render_id: str) -> pb.Render:
        return self._call(self._stub.CancelRender, pb.CancelRenderRequest(render_id=render_id))

    def review(
        self,
        render_id: str,
        rating: Optional[int] = None,
        pinned: Optional[bool] = None,
        note: Optional[str] = None,
        approved: Optional[bool] = None,
    ) -> pb.Render:
        req = pb.ReviewRenderRequest(render_id=render_id)
        for name, value in (("rating", rating), ("pinned", pinned), ("note", note), ("approved", approved)):
            if value is not None:
                setattr(req, name, value)
        return self._call(self._stub.ReviewRender, req)

    def watch(self, render_id: str, after_sequence: int = 0) -> Iterator[pb.RenderEvent]:
        """Events until the render ends; reconnects from the last sequence if the stream drops."""
        last = after_sequence
        retries = 0
        while True:
            try:
                for event in self._stub.WatchRender(
                    pb.WatchRenderRequest(render_id=render_id, after_sequence=last), metadata=self._metadata
                ):
                    last = event.sequence
                    retries = 0
                    yield event
                # The server ends the stream right after FINISHED; reading to its end (rather than dropping
                # it) lets the call close as OK instead of CANCELLED in the server's metrics.
                return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.UNAVAILABLE and retries < 30:
                    retries += 1
                    time.sleep(min(2.0, 0.1 * retries))
                    continue
                raise _client_error(err) from None

    def wait(self, render_id: str, on_event: Optional[Callable[[pb.RenderEvent], None]] = None) -> pb.Render:
        for event in self.watch(render_id):
            if on_event:
                on_event(event)
        return self.get_render(render_id)

    # ----------------------------------------------------------------- plumbing

    def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise _client_error(err) from None

    def _stream(self, method, request):  # type: ignore[no-untyped-def]
        try:
            yield from method(request, metadata=self._metadata)
        except grpc.RpcError as err:
            raise _client_error(err) from None


def _client_error(err: grpc.RpcError) -> ClientError:
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"the shotpass server is unreachable ({details}); is it running?"
    return ClientError(details or str(code), code.name if code else "UNKNOWN")


def frame_inputs(digests: Mapping[int, str], names: Optional[Mapping[int, str]] = None) -> List[pb.FrameInput]:
    names = names or {}
    return [pb.FrameInput(frame=f, digest=d, name=names.get(f, "")) for f, d in sorted(digests.items())]


def outputs_by_frame(render: pb.Render) -> Dict[int, str]:
    return {f.frame: f.output_digest for f in render.frames if f.output_digest}


def missing_frames(wanted: Sequence[int], available: Iterable[int]) -> List[int]:
    have = set(available)
    return [f for f in wanted if f not in have]


class _Source(NamedTuple):
    """One blob to upload: its size, and its bytes from an offset on in chunk-sized blocks."""

    size: int
    blocks: Callable[[int], Iterator[bytes]]


def _file_blocks(path: str, start: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        yield from iter(lambda: fh.read(CHUNK_BYTES), b"")


def _memory_blocks(data: bytes, start: int) -> Iterator[bytes]:
    for offset in range(start, len(data), CHUNK_BYTES):
        yield data[offset: offset + CHUNK_BYTES]
