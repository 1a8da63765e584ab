"""The gRPC servicer: wire messages <-> domain calls, errors -> status codes. No logic of its own."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import grpc
from google.protobuf.message import DecodeError, Message

from shotpass_client import digests
from shotpass_client.proto import shotpass_pb2 as pb
from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc
from shotpass_client.rawchunks import decoder, encode_chunk, passthrough
from shotpass_client.schedule import as_settings

from . import __version__
from . import catalog as cat
from .accounts import LOCAL, Accounts, Caller, PermissionDenied, Unauthenticated
from .blobs import MAX_BLOB_BYTES, BlobWriter, check_digest
from .catalog_jobs import FRAME_TIMEOUT, JOB_KEY
from .errors import (
    CatalogUnavailable,
    InvalidInput,
    ModelUnavailable,
    NotFound,
    RenderCancelled,
    ResourceExhausted,
    ShotpassError,
    ShuttingDown,
)
from .job_control import check_frame_timeout
from .passes.base import ClipModel, Model, Option
from .renders import MAX_FRAMES_PER_RENDER, FrameSpec, RenderManager, Submission
from .streams import DEFAULT_MAX_OPEN_STREAMS, DEFAULT_MAX_STREAMS_PER_USER, StreamLimiter
from .validation import (
    FRAME_PAGE,
    MAX_NAME,
    check_find_blobs,
    check_frame_page,
    check_list,
    check_preview,
    check_render_id,
    check_review,
    check_submit,
    check_text,
    check_upload_chunk,
    check_watch,
    short_message,
    undecodable_field,
)
from .validation import check_digest as check_digest_field

log = logging.getLogger("shotpass.service")
Ctx = grpc.ServicerContext

CHUNK_BYTES = 4 << 20  # DownloadBlob's chunks: the largest every client accepts (8 MiB messages)
MAX_CHUNK_BYTES = 4 << 20
# Requests may be larger than replies: a submit of 100 000 frames (digest and file name each) is about 10 MB.
MAX_REQUEST_BYTES = 16 << 20
PREVIEW_TIMEOUT = 600.0
STREAM_RECHECK_S = 1.0  # how often an open WatchRender re-checks its caller's token and access


class PreviewTimedOut(ShotpassError):
    """A preview that did not finish within its wait (gRPC DEADLINE_EXCEEDED)."""


_CODES = {
    PreviewTimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    RenderCancelled: grpc.StatusCode.CANCELLED,
    ModelUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    CatalogUnavailable: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
_OPTION_TYPES = {
    "string": pb.OptionSpec.STRING,
    "int": pb.OptionSpec.INT,
    "float": pb.OptionSpec.FLOAT,
    "bool": pb.OptionSpec.BOOL,
    "choice": pb.OptionSpec.CHOICE,
}


def _status(exc: ShotpassError) -> grpc.StatusCode:
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


class Undecodable:
    """A request protobuf refused to parse (a text field that is not UTF-8, say): answered INVALID_ARGUMENT
    naming the field, where gRPC would answer INTERNAL."""

    def __init__(self, descriptor: Any, data: bytes) -> None:
        self.descriptor = descriptor
        self.data = data

    def error(self) -> InvalidInput:
        field = undecodable_field(self.descriptor, self.data)
        if field:
            return InvalidInput(f"{field} is not valid UTF-8 text; send text fields (names, paths, prompts) as UTF-8")
        return InvalidInput(f"the request is not a valid {self.descriptor.full_name} message; is the client current?")


def _decoded(request: Any) -> Any:
    """The request, or its stream with each message checked as it comes; raises for an undecodable one."""
    if isinstance(request, Undecodable):
        raise request.error()
    if isinstance(request, Message):
        return request

    def checked() -> Iterator[Any]:
        for item in request:
            if isinstance(item, Undecodable):
                raise item.error()
            yield item

    return checked()


def add_to_server(servicer: ShotPassService, server: grpc.Server) -> None:
    """The generated `add_ShotPassServicer_to_server`, with request parsing that hands an undecodable message
    to the method (which answers INVALID_ARGUMENT) instead of failing the call as INTERNAL."""
    service = pb.DESCRIPTOR.services_by_name["ShotPass"]
    captured: Dict[str, Any] = {}

    class Capture:
        def add_generic_rpc_handlers(self, handlers: Any) -> None:
            pass

        def add_registered_method_handlers(self, name: str, handlers: Dict[str, Any]) -> None:
            captured.update(name=name, handlers=handlers)

    pb_grpc.add_ShotPassServicer_to_server(servicer, Capture())
    if "handlers" not in captured:  # stubs from a generator that registers no method table: plain parsing
        pb_grpc.add_ShotPassServicer_to_server(servicer, server)
        return

    def lenient(parse: Callable[[bytes], Any], descriptor: Any) -> Callable[[bytes], Any]:
        def deserialize(data: bytes) -> Any:
            try:
                return parse(data)
            except DecodeError:
                return Undecodable(descriptor, data)

        return deserialize

    handlers = {
        name: handler._replace(
            request_deserializer=lenient(handler.request_deserializer, service.methods_by_name[name].input_type)
        )
        for name, handler in captured["handlers"].items()
    }
    # DownloadBlob yields chunks it encoded itself (rawchunks.py): the blob's bytes are copied once, not thrice.
    download = handlers["DownloadBlob"]
    handlers["DownloadBlob"] = download._replace(response_serializer=passthrough(download.response_serializer))
    servicer.raw_chunks = True
    # UploadBlobs reads each chunk's header by hand and its data as a view into the received message.
    upload = handlers["UploadBlobs"]
    handlers["UploadBlobs"] = upload._replace(request_deserializer=decoder(upload.request_deserializer))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(captured["name"], handlers),))
    server.add_registered_method_handlers(captured["name"], handlers)


def rpc(method: Callable, long: bool = False) -> Callable:
    """Authenticate the caller and pass them on; turn domain errors into gRPC statuses with the user-facing
    message; never let a bug kill the server. Every ShotPass RPC goes through here (or rpc_stream), so no
    method can forget the token check; health and reflection are other services and stay open.
    ``long``: the call may hold its thread for minutes (an upload, a preview): it counts as an open stream."""

    @functools.wraps(method)
    def wrapper(self: ShotPassService, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            caller = self.caller(context)
            request = _decoded(request)
            if not long:
                return method(self, request, context, caller)
            with self.streams.hold(_stream_owner(caller, context), method.__name__):
                return method(self, request, context, caller)
        except ShotpassError as exc:
            context.abort(_status(exc), short_message(str(exc)))
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, short_message(f"internal error in {method.__name__}: {exc}"))

    return wrapper


def long_rpc(method: Callable) -> Callable:
    return rpc(method, long=True)


def rpc_stream(method: Callable) -> Callable:
    """As rpc, for server streams: each counts as an open stream (streams.py) until it ends."""

    @functools.wraps(method)
    def wrapper(self: ShotPassService, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            caller = self.caller(context)
            with self.streams.hold(_stream_owner(caller, context), method.__name__):
                yield from method(self, _decoded(request), context, caller)
        except ShotpassError as exc:
            context.abort(_status(exc), short_message(str(exc)))
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, short_message(f"internal error in {method.__name__}: {exc}"))

    return wrapper


def _stream_owner(caller: Caller, context: grpc.ServicerContext) -> str:
    """Whose share of the open streams a call uses: the user, or on a single-user server the client's host."""
    if caller.user_id is not None:
        return f"user {caller.name}"
    peer = context.peer() or "unknown"  # ipv4:10.0.0.5:52114, ipv6:[::1]:52114, unix:...
    return "host " + (peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer)


class ShotPassService(pb_grpc.ShotPassServicer):
    def __init__(
        self,
        manager: RenderManager,
        devices: list,
        accounts: Optional[Accounts] = None,
        streams: Optional[StreamLimiter] = None,
        reload_models: Optional[Callable[[], Any]] = None,
    ) -> None:
        self.m = manager
        self.devices = devices
        self.accounts = accounts
        self.streams = streams or StreamLimiter(DEFAULT_MAX_OPEN_STREAMS, DEFAULT_MAX_STREAMS_PER_USER)
        self.reload_models = reload_models
        self.data_plane_info: Dict[str, Any] = {}  # ServerInfo fields of the data plane, set when it listens
        self.starting: Callable[[], bool] = lambda: False  # the app's readiness, for calls outside gRPC
        self.raw_chunks = False  # set by add_to_server when DownloadBlob may yield pre-encoded chunks

    def caller_of(self, metadata: Any) -> Caller:
        """The caller a request's metadata (an `authorization` entry) names; raises Unauthenticated."""
        return self.accounts.caller(metadata) if self.accounts else LOCAL

    def caller(self, context: grpc.ServicerContext) -> Caller:
        return self.caller_of(context.invocation_metadata())

    def _check_render(self, caller: Caller, render_id: str, write: bool = False) -> None:
        if self.accounts:
            self.accounts.check_render(caller, render_id, write)

    def _may_reach(self, caller: Caller, digest: str) -> bool:
        return self.accounts.may_reach(caller, digest) if self.accounts else True

    def reachable_blob(self, caller: Caller, digest: str) -> bool:
        """Stored and the caller's to use. Both checks always run, in this order: another user's blob and a
        digest nobody stored cost the same work, so the answer's timing tells nothing either."""
        reachable = self._may_reach(caller, digest)
        stored = self.m.blobs.has(digest)
        return reachable and stored

    def _still_watching(self, context: grpc.ServicerContext, render_id: str) -> Callable[[], bool]:
        """`is_active` for a long stream that also re-checks the caller's token and access about every second:
        a revoked token (UNAUTHENTICATED) or a removal from the project (NOT_FOUND) ends open streams too."""
        if self.accounts is None:
            return context.is_active
        checked = [time.monotonic()]

        def active() -> bool:
            if not context.is_active():
                return False
            if time.monotonic() - checked[0] >= STREAM_RECHECK_S:
                checked[0] = time.monotonic()
                self._check_render(self.caller(context), render_id)  # raises: the stream ends with its status
            return True

        return active

    def _submit(self, caller: Caller, sub: Submission) -> Tuple[str, List[str]]:
        """Check that everything the submission names is the caller's, then submit (claiming a new project)."""
        sub.owner, sub.max_priority = caller.name, caller.max_priority  # fair share, quotas, priority cap
        acc = self.accounts
        if acc is None or caller.user_id is None:
            return self.m.submit(sub)
        if sub.parent:
            acc.check_render(caller, sub.parent)
        if sub.reference_render:
            acc.check_render(caller, sub.reference_render[0])
        for spec in [*sub.frames, *sub.mask_frames, *sub.context_frames]:
            if spec.digest:
                acc.check_blob(caller, spec.digest, spec.name or f"frame {spec.frame}")
        if sub.reference_digest:
            acc.check_blob(caller, sub.reference_digest, "reference")
        # Path reads are tied to this membership: a render reads only its own project's roots (path_access.py).
        claimed = acc.claim_project(caller, sub.project, configured=self.m.paths.configured(sub.project))
        try:
            return self.m.submit(sub)
        except BaseException:
            if claimed:
                acc.release(caller, sub.project)
            raise

    # ------------------------------------------------------------ info

    @rpc
    def GetServerInfo(self, request: pb.GetServerInfoRequest, context: Ctx, caller: Caller) -> pb.ServerInfo:
        reg = self.m.registry
        passes = []
        for pass_name in reg.passes():
            models = reg.for_pass(pass_name)
            passes.append(
                pb.PassInfo(
                    name=pass_name,
                    description=models[0].description if models else "",
                    models=[m.name for m in models],
                    default_model=reg.default_for(pass_name).name,
                )
            )
        return pb.ServerInfo(
            version=__version__,
            devices=self.devices,
            passes=passes,
            models=[model_info(m) for m in reg.all()],
            limits=pb.Limits(
                max_chunk_bytes=MAX_CHUNK_BYTES,
                max_message_bytes=MAX_REQUEST_BYTES,
                max_frames_per_render=MAX_FRAMES_PER_RENDER,
                max_blob_bytes=MAX_BLOB_BYTES,
            ),
            colour_config=self.m.colours.config_name,
            default_colour_space=self.m.colours.scene_linear,
            colour_spaces=self.m.colours.names(),
            digest_algorithms=digests.available(),
            **self.data_plane_info,
        )

    @rpc
    def ListModels(self, request: pb.ListModelsRequest, context: Ctx, caller: Caller) -> pb.ListModelsResponse:
        check_text("pass_name", request.pass_name, MAX_NAME)
        reg = self.m.registry
        models = reg.for_pass(request.pass_name) if request.pass_name else reg.all()
        if request.pass_name and not models:
            raise NotFound(f"no pass {request.pass_name!r}; passes: {', '.join(reg.passes())}")
        return pb.ListModelsResponse(models=[model_info(m) for m in models])

    @rpc
    def ReloadModels(self, request: pb.ReloadModelsRequest, context: Ctx, caller: Caller) -> pb.ListModelsResponse:
        if not caller.admin:
            raise PermissionDenied(f"user {caller.name} is not an admin: only the server's admin reloads the models")
        if self.reload_models is None:
            raise InvalidInput("this server cannot reload its models")
        registry = self.reload_models()
        return pb.ListModelsResponse(models=[model_info(m) for m in registry.all()])

    # ------------------------------------------------------------ blobs

    @rpc
    def FindBlobs(self, request: pb.FindBlobsRequest, context: Ctx, caller: Caller) -> pb.FindBlobsResponse:
        check_find_blobs(request)
        present, missing, partial = [], [], []
        for digest in request.digests:
            check_digest(digest)
            # Only blobs the caller may reach are "present": the store dedupes on disk, but never tells one
            # user about another's plates; a caller who lacks one uploads it, proving they hold the bytes.
            # touch: a blob a client was just told about is about to be used, so blob GC leaves it alone.
            stored = self.reachable_blob(caller, digest) and self.m.blobs.touch(digest)
            (present if stored else missing).append(digest)
            held = 0 if stored else self.m.blobs.partial_size(upload_owner(caller), digest)
            if held:
                partial.append(pb.PartialBlob(digest=digest, bytes_stored=held))
        return pb.FindBlobsResponse(present=present, missing=missing, partial=partial)

    @long_rpc
    def UploadBlobs(
        self, request_iterator: Iterator[pb.UploadChunk], context: Ctx, caller: Caller
    ) -> pb.UploadBlobsResponse:
        receipts: Dict[str, pb.BlobReceipt] = {}
        writer: Optional[BlobWriter] = None
        received = 0
        try:
            for chunk in request_iterator:
                check_upload_chunk(chunk, writer, MAX_CHUNK_BYTES, MAX_BLOB_BYTES)
                if writer is None:
                    if not 0 <= chunk.total_size <= MAX_BLOB_BYTES:
                        raise InvalidInput(f"blob size {chunk.total_size} is outside 0..{MAX_BLOB_BYTES}")
                    present = self.reachable_blob(caller, chunk.digest)
                    # A first chunk at offset > 0 resumes the caller's cut upload of this blob (see FindBlobs).
                    writer = self.m.blobs.writer(chunk.digest, chunk.total_size, upload_owner(caller), chunk.offset)
                elif chunk.digest != writer.digest:
                    raise InvalidInput(_cut(writer))
                writer.write(chunk.offset, chunk.data)
                received += len(chunk.data)
                if writer.complete:
                    writer.commit()  # verifies the digest; only then is the blob visible
                    if self.accounts:
                        self.accounts.record_upload(caller, writer.digest)
                    receipts[writer.digest] = pb.BlobReceipt(
                        digest=writer.digest, size=writer.total_size, already_present=present
                    )
                    writer = None
            if writer is not None:
                raise InvalidInput(_cut(writer))
        except grpc.RpcError:
            # The client went away mid-stream (cancelled, disconnected): nobody reads an answer, and what
            # arrived stays as a partial upload that the client resumes.
            log.info("upload cut by the client after %d bytes%s", received,
                     f"; kept {writer.received} bytes of blob {writer.digest[:12]}" if writer else "")
        finally:
            if writer is not None:
                writer.suspend()  # keeps the bytes so far, never visible, for a resume
        return pb.UploadBlobsResponse(blobs=list(receipts.values()), bytes_received=received)

    @rpc_stream
    def DownloadBlob(self, request: pb.DownloadBlobRequest, context: Ctx, caller: Caller) -> Iterator[pb.BlobChunk]:
        check_digest_field("digest", request.digest)
        if self.accounts:
            self.accounts.check_blob(caller, request.digest)
        size = self.m.blobs.size(request.digest)
        for offset, data in self.m.blobs.iter_chunks(request.digest, CHUNK_BYTES):
            if self.raw_chunks:
                yield encode_chunk(request.digest, size, offset, data)  # type: ignore[misc]
            else:
                yield pb.BlobChunk(digest=request.digest, total_size=size, offset=offset, data=data)
        if size == 0:
            yield pb.BlobChunk(digest=request.digest, total_size=0, offset=0, data=b"")

    # ------------------------------------------------------------ renders

    @rpc
    def SubmitRender(self, request: pb.SubmitRenderRequest, context: Ctx, caller: Caller) -> pb.SubmitRenderResponse:
        check_submit(request)
        check_text("job_key", request.job_key, MAX_NAME)
        render_id, warnings = self._submit(caller, submission(request, "render"))
        return pb.SubmitRenderResponse(
            render_id=render_id, warnings=warnings, render=self._render_page(render_id)
        )

    @long_rpc
    def PreviewFrame(self, request: pb.PreviewFrameRequest, context: Ctx, caller: Caller) -> pb.PreviewFrameResponse:
        check_preview(request)
        sub = submission(request.render, "preview")
        count = len(sub.frames) or len(sub.parent_frames)
        if count != 1:
            raise InvalidInput(f"a preview renders exactly one frame; {count or 'none'} given")
        render_id, warnings = self._submit(caller, sub)
        render = self.m.wait_final(render_id, request.timeout_seconds or PREVIEW_TIMEOUT)
        if render.state != cat.FINISHED:
            if render.state not in cat.FINAL_STATES:
                self.m.scheduler.cancel(render_id)
                raise PreviewTimedOut(f"preview {render_id} did not finish in time; it was cancelled")
            raise InvalidInput(f"preview {render_id} {render.state.lower()}: {render.error}")
        frame = render.frames[0]
        return pb.PreviewFrameResponse(
            render_id=render_id,
            frame=frame.frame,
            output_digest=frame.output_digest,
            warnings=warnings,
            render=render_message(render),
        )

    @rpc_stream
    def WatchRender(self, request: pb.WatchRenderRequest, context: Ctx, caller: Caller) -> Iterator[pb.RenderEvent]:
        check_watch(request)
        self._check_render(caller, request.render_id)
        context.add_callback(self.m.wake_watchers)  # a watcher that leaves frees its stream at once
        active = self._still_watching(context, request.render_id)
        for event in self.m.events(request.render_id, request.after_sequence, active):
            yield event_message(event)

    @rpc
    def GetRender(self, request: pb.GetRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        check_render_id("render_id", request.render_id)
        after = check_frame_page(request)
        self._check_render(caller, request.render_id)
        return self._render_page(request.render_id, request.frame_page_size or FRAME_PAGE, after)

    def _render_page(self, render_id: str, size: int = FRAME_PAGE, after: Optional[int] = None) -> pb.Render:
        """The render with one page of its frames: a reply stays under the message limit at any render size."""
        render = self.m.catalog.get_render(render_id, frames_after=after, frame_limit=size + 1)
        more = len(render.frames) > size
        render.frames = render.frames[:size]
        message = render_message(render)
        if more:
            message.next_frame_page_token = str(render.frames[-1].frame)
        return message

    @rpc
    def ListRenders(self, request: pb.ListRendersRequest, context: Ctx, caller: Caller) -> pb.ListRendersResponse:
        check_list(request)
        limit = request.limit or 200
        projects = self.accounts.visible_projects(caller) if self.accounts else None
        if projects is not None and request.project:
            self.accounts.check_project(caller, request.project)  # type: ignore[union-attr]
        # Without frames (a listing of long renders would exceed any message limit): GetRender pages them.
        rows = self.m.catalog.list_renders(request.project, request.shot, limit, projects)
        return pb.ListRendersResponse(renders=[render_message(r) for r in rows])

    @rpc
    def CancelRender(self, request: pb.CancelRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        check_render_id("render_id", request.render_id)
        self._check_render(caller, request.render_id, write=True)
        self.m.scheduler.cancel(request.render_id)
        return self._render_page(request.render_id)

    # ------------------------------------------------------------ job control and cost

    def _hold(self, render_id: str, caller: Caller, action: Callable[[str], None]) -> pb.Render:
        """Suspend or resume: members only (not viewers); another project's render is NOT_FOUND."""
        check_render_id("render_id", render_id)
        self._check_render(caller, render_id, write=True)
        action(render_id)
        return self._render_page(render_id)

    @rpc
    def SuspendRender(self, request: pb.SuspendRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        return self._hold(request.render_id, caller, self.m.jobs.suspend)

    @rpc
    def ResumeRender(self, request: pb.ResumeRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        return self._hold(request.render_id, caller, self.m.jobs.resume)

    @rpc
    def RequeueRender(self, request: pb.RequeueRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        check_render_id("render_id", request.render_id)
        timeout = request.frame_timeout_seconds if request.HasField("frame_timeout_seconds") else None
        if timeout is not None:
            check_frame_timeout(timeout)
        self._check_render(caller, request.render_id, write=True)
        self.m.jobs.requeue(request.render_id, timeout)
        return self._render_page(request.render_id)

    @rpc
    def SetRenderPriority(self, request: pb.SetRenderPriorityRequest, context: Ctx, caller: Caller) -> pb.Render:
        check_render_id("render_id", request.render_id)
        self._check_render(caller, request.render_id, write=True)
        self.m.jobs.set_priority(request.render_id, request.priority, caller.max_priority)
        return self._render_page(request.render_id)

    @rpc
    def GetStats(self, request: pb.GetStatsRequest, context: Ctx, caller: Caller) -> pb.StatsResponse:
        check_text("project", request.project, MAX_NAME)
        check_text("shot", request.shot, MAX_NAME)
        projects = self.accounts.visible_projects(caller) if self.accounts else None
        if projects is not None and request.project:
            self.accounts.check_project(caller, request.project)  # type: ignore[union-attr]
        rows = self.m.catalog.shot_stats(request.project, request.shot, projects)
        return pb.StatsResponse(shots=[pb.ShotStats(**row) for row in rows])

    @rpc
    def ReviewRender(self, request: pb.ReviewRenderRequest, context: Ctx, caller: Caller) -> pb.Render:
        check_review(request)
        self._check_render(caller, request.render_id, write=True)
        self.m.catalog.review(
            request.render_id,
            rating=request.rating if request.HasField("rating") else None,
            pinned=int(request.pinned) if request.HasField("pinned") else None,
            note=request.note if request.HasField("note") else None,
            approved=int(request.approved) if request.HasField("approved") else None,
        )
        return self._render_page(request.render_id)


# ---------------------------------------------------------------- conversions


def _cut(writer: BlobWriter) -> str:
    kept = "the server keeps them: upload it again and it resumes" if writer.resumable else "send it again"
    return (
        f"blob {writer.digest[:12]} ended after {writer.received} of {writer.total_size} bytes; "
        f"the upload was cut, {kept}"
    )


def upload_owner(caller: Caller) -> str:
    """Whose partial uploads these are: a cut upload resumes only for the caller who sent its bytes."""
    return "local" if caller.user_id is None else f"user-{caller.user_id}"


def submission(request: pb.SubmitRenderRequest, lane: str) -> Submission:
    s = request.settings
    check_frame_timeout(s.frame_timeout_seconds, "settings.frame_timeout_seconds")
    ref = s.reference
    which = ref.WhichOneof("source")
    return Submission(
        project=request.project or "default",
        shot=request.shot or "shot",
        lane=lane,
        settings={
            "pass_name": s.pass_name,
            "model": s.model,
            "prompt": s.prompt,
            "negative_prompt": s.negative_prompt,
            "options": dict(s.options),
            "seed": s.seed,
            "colour_space": s.colour_space,
            "view": s.view,
            "priority": s.priority,
            **({FRAME_TIMEOUT: s.frame_timeout_seconds} if s.frame_timeout_seconds else {}),
            **as_settings(dict(s.prompt_by_frame), {k: dict(v.values) for k, v in s.options_by_frame.items()}),
            "digest_algorithm": request.digest_algorithm or digests.SHA256,
        },
        frames=[_frame_spec(f) for f in request.frames],
        mask_frames=[_frame_spec(f) for f in request.mask_frames],
        context_frames=[_frame_spec(f) for f in request.context_frames],
        parent=request.parent_render,
        parent_frames=list(request.parent_frames),
        seed_set=request.seed_set,
        reference_digest=ref.digest if which == "digest" else "",
        reference_render=(ref.render_frame.render_id, ref.render_frame.frame) if which == "render_frame" else None,
        reference_name=ref.name,
        label=request.label,
        job_key=request.job_key,
    )


def _frame_spec(f: pb.FrameInput) -> FrameSpec:
    which = f.WhichOneof("source")
    return FrameSpec(
        frame=f.frame,
        digest=f.digest if which == "digest" else "",
        path=f.path if which == "path" else "",
        name=f.name,
    )


def model_info(m: Model) -> pb.ModelInfo:
    return pb.ModelInfo(
        name=m.name,
        pass_name=m.pass_name,
        family=m.family,
        description=m.description,
        scale=m.scale,
        needs_mask=m.needs_mask,
        uses_reference=m.uses_reference,
        uses_prompt=m.uses_prompt,
        working_space=m.working_space or "",
        frame_contract=m.frame_contract,
        licence=m.licence,
        options=[option_spec(o) for o in m.options],
        unavailable=getattr(m, "unavailable", ""),
        reads_context_frames=isinstance(m, ClipModel),
    )


def option_spec(o: Option) -> pb.OptionSpec:
    spec = pb.OptionSpec(
        name=o.name,
        type=_OPTION_TYPES[o.type],
        description=o.description,
        default_value=str(o.default).lower() if isinstance(o.default, bool) else str(o.default),
        choices=list(o.choices),
    )
    if o.minimum is not None:
        spec.minimum = o.minimum
    if o.maximum is not None:
        spec.maximum = o.maximum
    return spec


def render_message(r: cat.RenderRow) -> pb.Render:
    s = r.settings
    settings = pb.RenderSettings(
        pass_name=s.get("pass_name", ""),
        model=s.get("model", ""),
        prompt=s.get("prompt", ""),
        negative_prompt=s.get("negative_prompt", ""),
        options=s.get("options", {}),
        seed=int(s.get("seed", 0)),
        colour_space=s.get("colour_space", ""),
        view=s.get("view", ""),
        priority=int(s.get("priority", 0)),
        frame_timeout_seconds=float(s.get(FRAME_TIMEOUT, 0) or 0),
    )
    for frame, text in (s.get("prompt_by_frame") or {}).items():
        settings.prompt_by_frame[int(frame)] = text
    for name, keys in (s.get("options_by_frame") or {}).items():
        for frame, value in keys.items():
            settings.options_by_frame[name].values[int(frame)] = value
    if r.reference_digest:
        settings.reference.digest = r.reference_digest
    return pb.Render(
        id=r.id,
        project=r.project,
        shot=r.shot,
        version=r.version,
        lane=r.lane,
        state=pb.RenderState.Value(r.state),
        settings=settings,
        parent_render=r.parent or "",
        frames=[
            pb.FrameRecord(
                frame=f.frame,
                input_digest=f.input_digest,
                input_name=f.input_name,
                mask_digest=f.mask_digest,
                output_digest=f.output_digest,
                state=pb.FrameState.Value(f.state),
                error=f.error,
                compute_seconds=f.compute_seconds,
                attempts=f.attempts,
                output_size=f.output_size,
            )
            for f in r.frames
        ],
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        compute_seconds=r.compute_seconds,
        device=r.device,
        review=pb.Review(rating=r.rating, pinned=r.pinned, note=r.note, approved=r.approved),
        error=r.error,
        warnings=r.warnings,
        frames_done=r.frames_done,
        frames_total=r.frames_total,
        label=r.label,
        reference_digest=r.reference_digest,
        scale=r.scale,
        children=r.children,
        owner=r.owner,
        job_key=s.get(JOB_KEY, ""),
        qc=qc_message(r.qc),
    )


def qc_message(qc: Optional[Dict[str, Any]]) -> Optional[pb.RenderQc]:
    """A render's stored QC (temporal/qc.py RenderQc.as_dict()) on the wire; None until measured."""
    if qc is None:
        return None

    def pair(p: Dict[str, Any]) -> pb.FramePairQc:
        return pb.FramePairQc(frame_a=p["frame_a"], frame_b=p["frame_b"], source_error=p["source_error"],
                              output_error=p["output_error"], ratio=p["ratio"], trusted=p["trusted"])

    return pb.RenderQc(
        flicker_ratio=qc.get("flicker_ratio", 0.0),
        source_error=qc.get("source_error", 0.0),
        output_error=qc.get("output_error", 0.0),
        pairs=[pair(p) for p in qc.get("pairs", [])],
        worst_pairs=[pair(p) for p in qc.get("worst_pairs", [])],
        nonfinite_outputs=qc.get("nonfinite_outputs", 0),
        nonfinite_sources=qc.get("nonfinite_sources", 0),
        contract_errors=qc.get("contract_errors", []),
        flow_source=qc.get("flow_source", ""),
        seconds=qc.get("seconds", 0.0),
    )


def event_message(e: cat.EventRow) -> pb.RenderEvent:
    b = e.body
    return pb.RenderEvent(
        render_id=e.render_id,
        sequence=e.seq,
        time=e.time,
        kind=pb.RenderEvent.Kind.Value(e.kind),
        frame=int(b.get("frame", 0)),
        digest=b.get("digest", ""),
        step=int(b.get("step", 0)),
        total_steps=int(b.get("total_steps", 0)),
        position=int(b.get("position", 0)),
        message=b.get("message", ""),
        state=pb.RenderState.Value(b["state"]) if "state" in b else pb.RENDER_STATE_UNSPECIFIED,
        frames_done=int(b.get("frames_done", 0)),
        frames_total=int(b.get("frames_total", 0)),
    )
