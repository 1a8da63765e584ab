"""A thin, typed wrapper over the shotpass gRPC contract: blobs in chunks, renders, events."""

from __future__ import annotations

import functools
import io
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import grpc

from . import digests
from .proto import shotpass_pb2 as pb
from .proto import shotpass_pb2_grpc as pb_grpc
from .rawchunks import Chunk, decoder, encode_chunk, passthrough
from .transfer import DataPlane, Refused, TransportFailed

# Chunks of 4 MiB, every server's limit (Limits.max_chunk_bytes): a quarter of the messages (and per-message
# costs) of 1 MiB chunks, still well inside the 8 MiB message limit both sides set.
CHUNK_BYTES = 4 << 20
MAX_MESSAGE_BYTES = 8 << 20
MAX_REQUEST_BYTES = 16 << 20  # what a server takes: a submit of 100 000 frames is about 10 MB
FIND_BATCH = 10_000  # digests per FindBlobs call
PARALLEL_UPLOADS = 3  # blobs in flight at once on the data plane
DEFAULT_ADDRESS = os.environ.get("SHOTPASS_SERVER", "localhost:50051")
FINAL_STATES = (pb.FINISHED, pb.FAILED, pb.CANCELLED)
RECONNECT_S = 180.0  # how long a watch (or a read) keeps trying while the server restarts
# A server that dies mid-stream often shows as UNKNOWN/INTERNAL rather than UNAVAILABLE, with these words.
_RESET_WORDS = ("stream removed", "connection reset", "rst_stream", "socket closed", "goaway", "broken pipe",
                "connection refused", "failed to connect", "end of tcp stream", "transport closing")


def is_transient(err: grpc.RpcError) -> bool:
    """The server is restarting or the connection dropped (retry), as opposed to an answer (do not)."""
    code = err.code() if hasattr(err, "code") else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    details = (err.details() if hasattr(err, "details") else str(err)) or ""
    return code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and any(
        word in details.lower() for word in _RESET_WORDS
    )


class _Reconnect:
    """Bounded retries with a growing pause and a message for the user while waiting."""

    def __init__(self, what: str, report: Optional[Callable[[str], None]]) -> None:
        self.what = what
        self.report = report
        self.first = 0.0
        self.tries = 0

    def reset(self) -> None:
        self.first, self.tries = 0.0, 0

    def wait_or_raise(self, err: grpc.RpcError) -> None:
        now = time.monotonic()
        if not self.tries:
            self.first = now
        waited = now - self.first
        if not is_transient(err) or waited > RECONNECT_S:
            raise _client_error(err) from None
        self.tries += 1
        if self.report and (self.tries == 1 or self.tries % 10 == 0):
            details = (err.details() if hasattr(err, "details") else "") or str(err.code())
            self.report(f"lost the server while {self.what} ({details.strip()[:120]}); reconnecting "
                        f"({waited:.0f} s so far, giving up after {RECONNECT_S:.0f} s)")
        time.sleep(min(2.0, 0.1 * self.tries))


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


def file_digest(path: str, algorithm: str = digests.SHA256) -> str:
    return digests.of_file(path, algorithm)


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
        # Told, while a watch or a read waits for a restarting server, what is going on (hosts show it).
        self.on_reconnect: Optional[Callable[[str], None]] = None
        self._info: Optional[pb.ServerInfo] = None
        self._data_plane: Optional[DataPlane] = None
        self._data_plane_args = dict(token=token, root_certificates=root_certificates,
                                     certificate_chain=certificate_chain, private_key=private_key)
        self.use_data_plane = True  # False: every byte over gRPC
        self._metadata: Tuple[Tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
            # A watch on a server whose box vanished (no reset ever arrives) notices within a minute.
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 20_000),
        ]
        self.tls = bool(tls or root_certificates or certificate_chain)
        if self.tls:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.ShotPassStub(self._channel)
        # UploadBlobs with chunks encoded by hand (rawchunks.py): no protobuf copies of the blob's bytes.
        self._raw_upload = self._channel.stream_unary(
            "/shotpass.v1.ShotPass/UploadBlobs",
            request_serializer=passthrough(pb.UploadChunk.SerializeToString),
            response_deserializer=pb.UploadBlobsResponse.FromString,
        )
        # DownloadBlob with chunks read by hand: the data is a view into the received message, not two copies.
        self._raw_download = self._channel.unary_stream(
            "/shotpass.v1.ShotPass/DownloadBlob",
            request_serializer=pb.DownloadBlobRequest.SerializeToString,
            response_deserializer=decoder(_parsed_chunk),
        )
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
        self._info = self._call(self._stub.GetServerInfo, pb.GetServerInfoRequest())
        return self._info

    def _server(self) -> pb.ServerInfo:
        return self._info if self._info is not None else self.server_info()

    @property
    def digest_algorithm(self) -> str:
        """The fastest digest both sides compute: blake3 where the server offers it and `blake3` is installed."""
        return digests.choose(self._server().digest_algorithms)

    def data_plane(self) -> Optional[DataPlane]:
        """The server's data plane, if it has one and it has not failed this client yet."""
        if not self.use_data_plane:
            return None
        if self._data_plane is None:
            info = self._server()
            if not info.data_plane_port:
                self.use_data_plane = False
                return None
            host = self.address.rsplit(":", 1)[0] if ":" in self.address else self.address
            self._data_plane = DataPlane(host, info.data_plane_port, tls=info.data_plane_tls or self.tls,
                                         **self._data_plane_args)  # type: ignore[arg-type]
        return self._data_plane

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
        wanted = sorted(set(digests))
        present: set = set()
        partial: Dict[str, int] = {}
        for start in range(0, len(wanted), FIND_BATCH) or [0]:
            answer = self._call(self._stub.FindBlobs, pb.FindBlobsRequest(digests=wanted[start:start + FIND_BATCH]))
            present.update(answer.present)
            partial.update((p.digest, p.bytes_stored) for p in answer.partial)
        return present, partial

    def upload_files(
        self, paths: Iterable[str], on_bytes: Optional[Callable[[int], None]] = None
    ) -> Tuple[Dict[str, str], int]:
        """Upload what the server lacks, resuming cut uploads where the server says. Returns ({path: digest},
        bytes sent)."""
        algorithm = self.digest_algorithm
        by_path = {path: file_digest(path, algorithm) for path in paths}
        sources: Dict[str, _Source] = {}
        for path, digest in by_path.items():
            sources.setdefault(
                digest, _Source(os.path.getsize(path), functools.partial(_file_blocks, path), path=path)
            )
        return by_path, self._upload(sources, on_bytes)

    def upload_bytes(self, data: bytes, on_bytes: Optional[Callable[[int], None]] = None) -> str:
        digest = digests.of_bytes(data, self.digest_algorithm)
        self._upload({digest: _Source(len(data), functools.partial(_memory_blocks, data), data=data)}, on_bytes)
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
        had_plane = self.data_plane() is not None
        sent = self._send_data_plane(todo, resume, on_bytes)
        todo = {d: s for d, s in todo.items() if d not in sent}
        if not todo:
            return sum(sent.values())
        if had_plane and not self.use_data_plane:  # it failed mid-blob: resume what the server kept of it
            _, held = self.find_blobs_detail(todo)
            resume = {**{d: n for d, n in held.items() if d in todo and 0 < n < todo[d].size}, **resume}
        return sum(sent.values()) + self._send_grpc(todo, resume, on_bytes)

    def _send_data_plane(
        self, todo: Dict[str, _Source], resume: Dict[str, int], on_bytes: Optional[Callable[[int], None]]
    ) -> Dict[str, int]:
        """Whole blobs over the data plane ({digest: bytes} of those sent); a cut upload resumes over gRPC.

        A few blobs travel at once, each on its own connection: while the server writes and fsyncs one,
        the next one's bytes are already on the wire."""
        plane = self.data_plane()
        work = [(d, s) for d, s in todo.items() if d not in resume]
        if plane is None or not work:
            return {}
        lock = threading.Lock()

        def counted(n: int) -> None:
            with lock:  # one progress callback at a time, as with one stream
                on_bytes(n)  # type: ignore[misc]

        def send(item: Tuple[str, _Source]) -> Tuple[str, int]:
            digest, source = item
            progress = counted if on_bytes else None
            if source.path is not None:
                plane.upload_file(digest, source.path, source.size, progress)  # type: ignore[union-attr]
            else:
                plane.upload_bytes(digest, source.data or b"", progress)  # type: ignore[union-attr]
            return digest, source.size

        sent: Dict[str, int] = {}
        refused: Optional[Refused] = None
        with ThreadPoolExecutor(max_workers=min(PARALLEL_UPLOADS, len(work))) as pool:
            for future in [pool.submit(send, item) for item in work]:
                try:
                    digest, size = future.result()
                    sent[digest] = size
                except TransportFailed:
                    self.use_data_plane = False  # gRPC from here on (resuming what arrived)
                except Refused as err:
                    refused = refused or err
        if refused is not None:
            raise ClientError(str(refused), refused.code)
        return sent

    def _send_grpc(
        self, todo: Dict[str, _Source], resume: Dict[str, int], on_bytes: Optional[Callable[[int], None]]
    ) -> int:

        def chunks() -> Iterator[bytes]:
            for digest, source in todo.items():
                offset = start = resume.get(digest, 0)
                for data in source.blocks(start):
                    yield encode_chunk(digest, source.size, offset, data)  # an UploadChunk, one copy of data
                    offset += len(data)
                    if on_bytes:
                        on_bytes(len(data))
                if offset == start == 0:  # an empty blob still needs one chunk to exist
                    yield encode_chunk(digest, source.size, 0, b"")

        return self._call(self._raw_upload, chunks()).bytes_received

    def download(self, digest: str, dest: str) -> int:
        """Write a blob to dest atomically (a partial file is never left under dest's name)."""
        directory = os.path.dirname(os.path.abspath(dest))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".shotpass-", suffix=".part")
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; outputs are shared like any file the user writes
        try:
            with os.fdopen(fd, "wb") as fh:
                size = self._download_to(digest, fh)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size

    def download_bytes(self, digest: str) -> bytes:
        buffer = io.BytesIO()
        self._download_to(digest, buffer)
        return buffer.getvalue()

    def _download_to(self, digest: str, fh) -> int:  # type: ignore[no-untyped-def]
        """The blob into an open file, verified against its digest: over the data plane, else gRPC."""
        try:
            digests.hasher_for(digest)  # a malformed digest is refused before any transfer
        except ValueError as err:
            raise ClientError(f"cannot verify blob {digest[:40]}: {err}", "INVALID_ARGUMENT") from None
        plane = self.data_plane()
        if plane is not None:
            try:
                return plane.download_to(digest, fh)
            except TransportFailed:
                self.use_data_plane = False
                fh.seek(0)
                fh.truncate()
            except Refused as err:
                raise ClientError(str(err), err.code) from None
        retry = _Reconnect(f"downloading {digest[:12]}", self.on_reconnect)
        while True:  # a download cut by a server restart starts over
            fh.seek(0)
            fh.truncate()
            h, size = digests.hasher_for(digest), 0
            try:
                for chunk in self._raw_download(pb.DownloadBlobRequest(digest=digest), metadata=self._metadata):
                    fh.write(chunk.data)
                    h.update(chunk.data)
                    size += len(chunk.data)
                break
            except grpc.RpcError as err:
                retry.wait_or_raise(err)
        if h.digest() != digest:
            raise ClientError(f"download of {digest[:12]} was corrupted; fetch it again", "DATA_LOSS")
        return size

    # ----------------------------------------------------------------- renders

    def submit(self, request: pb.SubmitRenderRequest) -> pb.SubmitRenderResponse:
        return self._call(self._stub.SubmitRender, self._with_algorithm(request))

    def _with_algorithm(self, request: pb.SubmitRenderRequest) -> pb.SubmitRenderRequest:
        """Outputs named in the fastest digest both sides compute (sha256, left unset, for older servers)."""
        if not request.digest_algorithm and self.digest_algorithm != digests.SHA256:
            request.digest_algorithm = self.digest_algorithm
        return request

    def preview(self, request: pb.SubmitRenderRequest, timeout_seconds: float = 0) -> pb.PreviewFrameResponse:
        request = self._with_algorithm(request)
        return self._call(
            self._stub.PreviewFrame, pb.PreviewFrameRequest(render=request, timeout_seconds=timeout_seconds)
        )

    def get_render(self, render_id: str) -> pb.Render:
        """The render with every frame: the server sends frames in pages, followed here. A read: retried
        while the server restarts."""
        render = self._read(self._stub.GetRender, pb.GetRenderRequest(render_id=render_id))
        while render.next_frame_page_token:
            page = self._read(self._stub.GetRender, pb.GetRenderRequest(
                render_id=render_id, frame_page_token=render.next_frame_page_token))
            render.frames.extend(page.frames)
            render.next_frame_page_token = page.next_frame_page_token
        return render

    def render_state(self, render_id: str) -> pb.Render:
        """The render's state and counters without its frames (at most one): cheap to poll at any size."""
        return self._read(self._stub.GetRender, pb.GetRenderRequest(render_id=render_id, frame_page_size=1))

    def list_renders(self, project: str = "", shot: str = "", limit: int = 0) -> List[pb.Render]:
        """Newest first, without frames (frames_done/frames_total only): get_render gives a render's frames."""
        req = pb.ListRendersRequest(project=project, shot=shot, limit=limit)
        return list(self._call(self._stub.ListRenders, req).renders)

    def cancel(self, render_id: str) -> pb.Render:
        return self._call(self._stub.CancelRender, pb.CancelRenderRequest(render_id=render_id))

    # ----------------------------------------------------------------- job control and cost

    def suspend(self, render_id: str) -> pb.Render:
        """No more frames of the render start (a running one finishes); it waits SUSPENDED until resumed."""
        return self._call(self._stub.SuspendRender, pb.SuspendRenderRequest(render_id=render_id))

    def resume(self, render_id: str) -> pb.Render:
        return self._call(self._stub.ResumeRender, pb.ResumeRenderRequest(render_id=render_id))

    def requeue(self, render_id: str, frame_timeout: Optional[float] = None) -> pb.Render:
        """Failed and cancelled frames run again (finished ones are kept); frame_timeout replaces the render's."""
        req = pb.RequeueRenderRequest(render_id=render_id)
        if frame_timeout is not None:
            req.frame_timeout_seconds = frame_timeout
        return self._call(self._stub.RequeueRender, req)

    def set_priority(self, render_id: str, priority: int) -> pb.Render:
        """Reorder: the render's next frames start by this priority (higher first among one user's renders)."""
        return self._call(self._stub.SetRenderPriority, pb.SetRenderPriorityRequest(render_id=render_id,
                                                                                   priority=priority))

    def stats(self, project: str = "", shot: str = "") -> List[pb.ShotStats]:
        """Renders, frames and device-seconds per shot of the projects this caller may see."""
        return list(self._call(self._stub.GetStats, pb.GetStatsRequest(project=project, shot=shot)).shots)

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
        """Events until the render ends; if the stream drops (the server restarts, the connection resets) it
        reconnects from the last sequence, for up to RECONNECT_S, telling `on_reconnect` meanwhile."""
        last = after_sequence
        retry = _Reconnect(f"watching render {render_id}", self.on_reconnect)
        while True:
            call = self._stub.WatchRender(
                pb.WatchRenderRequest(render_id=render_id, after_sequence=last), metadata=self._metadata
            )
            try:
                for event in call:
                    last = event.sequence
                    retry.reset()
                    yield event
                # The server ends the stream right after FINISHED; reading to its end (rather than dropping
                # it) lets the call close as OK instead of CANCELLED in the server's metrics.
                return
            except grpc.RpcError as err:
                retry.wait_or_raise(err)
            finally:
                call.cancel()  # a watch closed early frees its stream on the server now, not at garbage collection

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

    def _read(self, method, request):  # type: ignore[no-untyped-def]
        """A call that changes nothing: retried like a watch while the server restarts."""
        retry = _Reconnect(f"reading {type(request).__name__.replace('Request', '')}", self.on_reconnect)
        while True:
            try:
                return method(request, metadata=self._metadata)
            except grpc.RpcError as err:
                retry.wait_or_raise(err)

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
    """One blob to upload: its size, its bytes from an offset on in chunk-sized blocks, and its file or bytes."""

    size: int
    blocks: Callable[[int], Iterator[bytes]]
    path: Optional[str] = None
    data: Optional[bytes] = None


def _parsed_chunk(message: bytes) -> Chunk:
    """A chunk protobuf had to parse (an encoding decode_chunk does not read), in the same shape."""
    chunk = pb.BlobChunk.FromString(message)
    return Chunk(chunk.digest, chunk.total_size, chunk.offset, memoryview(chunk.data))


def _file_blocks(path: str, start: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        yield from iter(lambda: fh.read(CHUNK_BYTES), b"")


def _memory_blocks(data: bytes, start: int) -> Iterator[bytes]:
    for offset in range(start, len(data), CHUNK_BYTES):
        yield data[offset: offset + CHUNK_BYTES]
