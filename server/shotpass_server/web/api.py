"""The review pages' JSON API and event streams, on the server's own RenderManager, catalog, blob store and
Accounts: the same data and the same access rules as the gRPC service (service.py), nothing kept apart."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, AsyncIterator, Dict, List, Optional, Set

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shotpass_client.proto import shotpass_pb2 as pb

from .. import catalog as cat
from ..accounts import Accounts, Caller, Unauthenticated
from ..blobs import check_digest
from ..errors import InvalidInput, NotFound, ShotpassError
from ..renders import RenderManager
from ..validation import check_frame, check_render_id, check_review
from . import views
from .auth import WebAccess
from .proxies import DisplayProxies

POLL_S = 0.25  # how often event streams look for new events in the catalog
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream
RECHECK_S = 5.0  # an open queue stream re-reads the caller's token and projects this often
MAX_BODY = 64 * 1024
FRAME_KINDS = {"output", "source"}
WRITE_ROLES = ("admin", "owner", "member")


class ReviewApi:
    def __init__(self, manager: RenderManager, accounts: Optional[Accounts], access: WebAccess,
                 proxies: DisplayProxies, stopping: threading.Event) -> None:
        self.m = manager
        self.catalog = manager.catalog
        self.accounts = accounts
        self.access = access
        self.proxies = proxies
        self.stopping = stopping

    # ------------------------------------------------------------ access (the gRPC service's checks)

    def check_render(self, caller: Caller, render_id: str, write: bool = False) -> cat.RenderRow:
        check_render_id("render id", render_id)
        if self.accounts is not None:
            self.accounts.check_render(caller, render_id, write)
        return self.catalog.get_render(render_id)

    def check_project(self, caller: Caller, project: str) -> None:
        if self.accounts is not None:
            self.accounts.check_project(caller, project)

    def visible(self, caller: Caller) -> Optional[List[str]]:
        return self.accounts.visible_projects(caller) if self.accounts is not None else None

    def may_change(self, caller: Caller, project: str) -> bool:
        return self.accounts is None or self.accounts.role(caller, project) in WRITE_ROLES

    # ------------------------------------------------------------ reads (sync: Starlette runs them in its threadpool)

    def session(self, request: Request) -> Response:
        caller = self.access.caller(request)
        csrf, nonce = self.access.csrf_token(request)
        response = JSONResponse({
            "user": caller.name,
            "admin": caller.admin,
            "single_user": self.access.single_user,
            "projects": self.visible(caller),
            "csrf_token": csrf,
            "views": self.proxies.views(),
            "features": {"cancel": True, "suspend": True, "resume": True, "reorder": True},
        })
        self.access.set_nonce(response, nonce)
        return response

    def queue(self, request: Request) -> Response:
        caller = self.access.caller(request)
        visible = self.visible(caller)
        lanes: Dict[str, Dict[str, List[Dict[str, Any]]]] = {}
        for lane in ("preview", "render"):
            lanes[lane] = {"running": [], "waiting": []}
        for render_id in self.catalog.render_ids_in_state(cat.QUEUED, cat.RUNNING, cat.SUSPENDED):
            try:
                r = self.catalog.get_render(render_id)
            except NotFound:
                continue  # deleted meanwhile
            if visible is not None and r.project not in visible:
                continue
            entry = views.queue_entry(r, self.m.scheduler.position(r.id), self.may_change(caller, r.project))
            lane = lanes.setdefault(r.lane, {"running": [], "waiting": []})
            lane["running" if r.state == cat.RUNNING else "waiting"].append(entry)
        depth = self.m.scheduler.queue_depth()
        return JSONResponse({
            "lanes": [{"name": name, "depth": depth.get(name, 0), **entries} for name, entries in lanes.items()],
            "devices": list(self.m.scheduler.devices),
        })

    def shots(self, request: Request) -> Response:
        caller = self.access.caller(request)
        return JSONResponse({"shots": self.catalog.shots(self.visible(caller))})

    def shot(self, request: Request) -> Response:
        caller = self.access.caller(request)
        project, shot = request.path_params["project"], request.path_params["shot"]
        self.check_project(caller, project)
        renders = self.catalog.list_renders(project, shot, limit=1000, projects=self.visible(caller))
        if not renders:
            raise NotFound(f"no shot {shot!r} in project {project!r} on this server")
        may_change = self.may_change(caller, project)
        versions = [views.render_json(r, may_change, frames=False) for r in sorted(renders, key=lambda r: r.version)]
        for version, r in zip(versions, sorted(renders, key=lambda r: r.version)):
            version["thumb_frame"] = self.catalog.first_done_frame(r.id)
        return JSONResponse({"project": project, "shot": shot, "versions": versions,
                             "lineage": views.lineage(renders), "may_change": may_change})

    def render(self, request: Request) -> Response:
        caller = self.access.caller(request)
        r = self.check_render(caller, request.path_params["render_id"])
        out = views.render_json(r, self.may_change(caller, r.project))
        out["fps"] = self._fps(r)
        siblings = self.catalog.list_renders(r.project, r.shot, limit=1000)
        out["siblings"] = [{"id": s.id, "version": s.version, "state": s.state, "label": s.label}
                           for s in sorted(siblings, key=lambda s: s.version)]
        return JSONResponse(out)

    def diff(self, request: Request) -> Response:
        caller = self.access.caller(request)
        a = self.check_render(caller, request.path_params["render_id"])
        b = self.check_render(caller, request.path_params["other_id"])
        return JSONResponse({"a": {"id": a.id, "version": a.version, "shot": a.shot},
                             "b": {"id": b.id, "version": b.version, "shot": b.shot},
                             "changes": views.settings_diff(a, b)})

    def stats(self, request: Request) -> Response:
        caller = self.access.caller(request)
        return JSONResponse(views.stats(self.catalog.device_seconds(self.visible(caller))))

    def frame_file(self, request: Request) -> Response:
        """A frame of a render: its EXR as stored (output or source), or a display-referred JPEG proxy of it."""
        caller = self.access.caller(request)
        r = self.check_render(caller, request.path_params["render_id"])
        frame = _int("frame", request.path_params["frame"])
        check_frame("frame", frame)
        kind, _, ext = request.path_params["file"].partition(".")
        if kind not in FRAME_KINDS or ext not in ("jpg", "exr"):
            raise NotFound(f"no file {request.path_params['file']!r}: use output.jpg, output.exr, source.jpg "
                           "or source.exr")
        row = next((f for f in r.frames if f.frame == frame), None)
        if row is None:
            raise NotFound(f"render {r.id} has no frame {frame}")
        digest = row.output_digest if kind == "output" else row.input_digest
        if not digest:
            raise NotFound(f"frame {frame} of render {r.id} has no output yet (it is {row.state})")
        name = f"{r.shot}_v{r.version:03d}.{frame:04d}.exr" if kind == "output" else (
            row.input_name or f"{r.shot}_source.{frame:04d}.exr").rsplit("/", 1)[-1]
        if ext == "exr":
            return _exr(self.m.blobs.get(digest), name)
        q = request.query_params
        jpeg = self.proxies.proxy(digest, f"frame {frame} ({name})", str(r.settings.get("colour_space", "")),
                                  q.get("display", ""), q.get("view", ""), q.get("size", "full"))
        return _jpeg(jpeg)

    def blob_file(self, request: Request) -> Response:
        """A blob by digest (the gRPC DownloadBlob's rule: only blobs of the caller's projects or uploads)."""
        caller = self.access.caller(request)
        digest, _, ext = request.path_params["file"].partition(".")
        check_digest(digest)
        if self.accounts is not None:
            self.accounts.check_blob(caller, digest)
        if ext == "exr":
            return _exr(self.m.blobs.get(digest), f"{digest[:12]}.exr")
        if ext != "jpg":
            raise NotFound("use DIGEST.exr for the file as stored or DIGEST.jpg for a display proxy")
        q = request.query_params
        return _jpeg(self.proxies.proxy(digest, f"blob {digest[:12]}", q.get("colour_space", ""),
                                        q.get("display", ""), q.get("view", ""), q.get("size", "thumb")))

    # ------------------------------------------------------------ actions (POST, CSRF-checked)

    async def review(self, request: Request) -> Response:
        body = await _json_body(request)
        return await run_in_threadpool(self._review, request, body)

    def _review(self, request: Request, body: Dict[str, Any]) -> Response:
        caller = self.access.caller(request)
        self.access.check_csrf(request)
        render_id = request.path_params["render_id"]
        # The gRPC request message, so ReviewRender's own validation applies unchanged.
        message = pb.ReviewRenderRequest(render_id=render_id)
        try:
            if "rating" in body:
                message.rating = _int("rating", body["rating"])
            for key in ("pinned", "approved"):
                if key in body:
                    if not isinstance(body[key], bool):
                        raise InvalidInput(f"{key} must be true or false")
                    setattr(message, key, body[key])
            if "note" in body:
                if not isinstance(body["note"], str):
                    raise InvalidInput("note must be text")
                message.note = body["note"]
        except ValueError as err:  # out of the field's range
            raise InvalidInput(f"review: {err}") from None
        unknown = set(body) - {"rating", "pinned", "approved", "note"}
        if unknown:
            raise InvalidInput(f"unknown review field(s) {', '.join(sorted(unknown))}: use rating, pinned, note, "
                               "approved")
        check_review(message)
        self.check_render(caller, render_id, write=True)
        self.catalog.review(
            render_id,
            rating=message.rating if message.HasField("rating") else None,
            pinned=int(message.pinned) if message.HasField("pinned") else None,
            note=message.note if message.HasField("note") else None,
            approved=int(message.approved) if message.HasField("approved") else None,
        )
        r = self.catalog.get_render(render_id)
        return JSONResponse(views.render_json(r, True, frames=False))

    async def cancel(self, request: Request) -> Response:
        return await run_in_threadpool(self._cancel, request)

    def _cancel(self, request: Request) -> Response:
        caller = self.access.caller(request)
        self.access.check_csrf(request)
        render_id = request.path_params["render_id"]
        self.check_render(caller, render_id, write=True)
        self.m.scheduler.cancel(render_id)  # as CancelRender: cooperative, finished frames are kept
        return JSONResponse(views.render_json(self.catalog.get_render(render_id), True, frames=False))

    async def suspend(self, request: Request) -> Response:
        return await run_in_threadpool(self._job_control, request, "suspend")

    async def resume(self, request: Request) -> Response:
        return await run_in_threadpool(self._job_control, request, "resume")

    def _job_control(self, request: Request, action: str) -> Response:
        """As SuspendRender / ResumeRender: the same checks (members, not viewers) and the same job control."""
        caller = self.access.caller(request)
        self.access.check_csrf(request)
        render_id = request.path_params["render_id"]
        self.check_render(caller, render_id, write=True)
        getattr(self.m.jobs, action)(render_id)
        return JSONResponse(views.render_json(self.catalog.get_render(render_id), True, frames=False))

    async def priority(self, request: Request) -> Response:
        body = await _json_body(request)
        return await run_in_threadpool(self._priority, request, body)

    def _priority(self, request: Request, body: Dict[str, Any]) -> Response:
        """As SetRenderPriority: the same checks (members, not viewers; the caller's priority cap) and job control."""
        caller = self.access.caller(request)
        self.access.check_csrf(request)
        render_id = request.path_params["render_id"]
        unknown = set(body) - {"priority"}
        if unknown or "priority" not in body:
            raise InvalidInput('reorder: send {"priority": N} (higher starts first)')
        priority = _int("priority", body["priority"])
        self.check_render(caller, render_id, write=True)
        self.m.jobs.set_priority(render_id, priority, caller.max_priority)
        return JSONResponse(views.render_json(self.catalog.get_render(render_id), True, frames=False))

    # ------------------------------------------------------------ live events (the catalog's, as WatchRender's)

    async def render_events(self, request: Request) -> Response:
        caller = await run_in_threadpool(self.access.caller, request)
        render_id = request.path_params["render_id"]
        await run_in_threadpool(self.check_render, caller, render_id)
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
        return _sse(self._render_stream(render_id, max(0, _int("after", after))))

    async def _render_stream(self, render_id: str, after: int) -> AsyncIterator[str]:
        state = {"last": after, "ended": False, "done": False}
        quiet = 0.0
        while not self.stopping.is_set() and not state["done"]:
            # The catalog is read on a worker thread: a busy database never stalls the event loop.
            chunk = await run_in_threadpool(self._render_poll, render_id, state)
            if chunk:
                yield chunk
            quiet = 0.0 if chunk else quiet + POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keepalive\n\n"
            if not state["done"]:
                await asyncio.sleep(POLL_S)

    def _render_poll(self, render_id: str, state: Dict[str, Any]) -> str:
        """New events of one render as SSE text; sets state["done"] once the render's stream is complete."""
        out = []
        batch = self.catalog.events_after(render_id, state["last"])
        for event in batch:
            state["last"] = event.seq
            out.append(_event(event.kind, views.event_json(event), event.seq))
            if event.kind == "FINISHED":
                state["done"] = True
                return "".join(out)
        if not batch:
            if state["ended"]:  # final, and one more look found nothing: the stream is complete
                state["done"] = True
            state["ended"] = self.catalog.get_render(render_id, with_frames=False).state in cat.FINAL_STATES
        return "".join(out)

    async def queue_events(self, request: Request) -> Response:
        caller = await run_in_threadpool(self.access.caller, request)
        return _sse(self._queue_stream(request, caller))

    async def _queue_stream(self, request: Request, caller: Caller) -> AsyncIterator[str]:
        """Events of every waiting or running render the caller may see; `queue` when that set changes."""
        state: Dict[str, Any] = {"caller": caller, "visible": self.visible(caller), "last": {}, "projects": {},
                                 "first": True, "checked": 0.0, "done": False}
        quiet = 0.0
        while not self.stopping.is_set() and not state["done"]:
            chunk = await run_in_threadpool(self._queue_poll, request, state)
            if chunk:
                yield chunk
            quiet = 0.0 if chunk else quiet + POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keepalive\n\n"
            if not state["done"]:
                await asyncio.sleep(POLL_S)

    def _queue_poll(self, request: Request, state: Dict[str, Any]) -> str:
        state["checked"] += POLL_S
        if state["checked"] >= RECHECK_S:  # a revoked token or a removed membership ends what the stream shows
            state["checked"] = 0.0
            try:
                state["caller"] = self.access.caller(request)
            except Unauthenticated:
                state["done"] = True
                return _event("logged_out", {"message": "the session ended; log in again"})
            state["visible"] = self.visible(state["caller"])
        visible, last, projects = state["visible"], state["last"], state["projects"]
        active: Set[str] = set(self.catalog.render_ids_in_state(cat.QUEUED, cat.RUNNING))
        out: List[str] = []
        changed = False
        for render_id in sorted(active | set(last)):
            if render_id not in projects:
                try:
                    projects[render_id] = self.catalog.get_render(render_id, with_frames=False).project
                except NotFound:
                    continue
            if visible is not None and projects[render_id] not in visible:
                last.pop(render_id, None)
                continue
            if render_id not in last:  # new to this stream: the page's snapshot has its past
                events = self.catalog.events_after(render_id, 0)
                last[render_id] = events[-1].seq if events else 0
                changed = True
                continue
            for event in self.catalog.events_after(render_id, last[render_id]):
                last[render_id] = event.seq
                out.append(_event(event.kind, views.event_json(event, projects[render_id])))
            if render_id not in active:
                del last[render_id]
                changed = True
        if changed and not state["first"]:
            out.append(_event("queue", {"message": "renders started, finished or were added"}))
        state["first"] = False
        return "".join(out)

    # ------------------------------------------------------------ helpers

    def _fps(self, r: cat.RenderRow) -> float:
        """The shot's frame rate from its plate's framesPerSecond attribute; 24 when the plate has none."""
        source = next((f.input_digest for f in r.frames if f.input_digest), "")
        if source:
            try:
                return _fps_of(self.m.blobs.path(source))
            except (OSError, ShotpassError, ValueError, TypeError, ZeroDivisionError):
                pass
        return 24.0


def _fps_of(path: Any) -> float:
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as f:
        value = f.parts[0].header.get("framesPerSecond")
    if value is None:
        return 24.0
    num, den = (value.numerator, value.denominator) if hasattr(value, "numerator") else value
    fps = float(num) / float(den)
    return fps if 1.0 <= fps <= 240.0 else 24.0


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} {str(value)[:40]!r} is not a whole number") from None


async def _json_body(request: Request) -> Dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidInput(f"request body of {len(raw)} bytes; at most {MAX_BODY} are read")
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def _exr(data: bytes, name: str) -> Response:
    return Response(data, media_type="image/x-exr",
                    headers={"Content-Disposition": f'attachment; filename="{_safe_name(name)}"',
                             "Cache-Control": "private, max-age=3600"})


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:200] or "frame.exr"


def _event(kind: str, data: Dict[str, Any], seq: Optional[int] = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


def _sse(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
