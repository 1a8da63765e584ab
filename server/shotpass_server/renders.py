"""Render lifecycle: validate a submission, resolve chained inputs and references, run chunks, notify watchers."""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from shotpass_client import digests
from shotpass_client.patterns import format_frame_list
from shotpass_client.schedule import MAX_KEYS as MAX_SCHEDULE_KEYS
from shotpass_client.schedule import frame_values, key_count

from . import catalog as cat
from .blobs import BlobStore, StoreFull, check_digest
from .errors import InvalidInput, NotFound, RenderCancelled, ShotpassError, ShuttingDown
from .frame_pipeline import (
    FrameRequest,
    StagedFrame,
    batch_key,
    finish_frame,
    frame_seed,
    prepare_frame,
    process_frame,
    process_frames,
    reference_in_working_space,
    run_clip,
    run_frame,
)
from .frames.colour import ColourSpaces
from .frames.exr import FrameTooLarge, check_output_size
from .frames.header import read_frame_header
from .job_control import JOB_KEY, FrameTimedOut, JobControl, frame_timeout, timed_out
from .metrics import NO_METRICS, NoMetrics
from .passes.base import Anchor, ClipModel, Model, Progress, checkpoint_of, parse_options
from .passes.registry import ModelRegistry
from .path_access import PathAccess
from .pipelined import LoadFailed, run_pipelined
from .prompts import instruction_warning, unused_prompt_warning
from .quotas import Quotas, cap_priority
from .ray_executor import ChunkHooks, RayExecutor, is_slot
from .scheduler import Scheduler
from .temporal.context import CONTEXT_FRAMES, ContextFrames, check_context_frames, clip_around, context_rows
from .temporal.options import noise_frame
from .temporal.plan import SETTINGS_KEY as TEMPORAL_PLAN
from .temporal.propagate import finish_temporal
from .temporal.runner import TemporalRenders, check_vectors

log = logging.getLogger("shotpass.renders")

MAX_FRAMES_PER_RENDER = 100_000
MAX_NAME = 200
MAX_PROMPT = 4000


@dataclass
class FrameSpec:
    frame: int
    digest: str = ""
    path: str = ""
    name: str = ""


@dataclass
class Submission:
    project: str
    shot: str
    lane: str
    settings: Dict[str, Any]  # pass_name, model, prompt, negative_prompt, options, seed, colour_space, view, priority
    frames: List[FrameSpec]
    mask_frames: List[FrameSpec]
    parent: str = ""
    parent_frames: Sequence[int] = ()
    seed_set: bool = False
    reference_digest: str = ""
    reference_render: Optional[Tuple[str, int]] = None
    reference_name: str = ""  # the reference file's name, for messages
    label: str = ""
    owner: str = ""  # the caller's user name ("" on a single-user server): fair share and quotas
    max_priority: Optional[int] = None  # the caller's priority cap (None: not capped)
    job_key: str = ""  # farm tasks of one job: their frames go into one render (job_control.py)
    context_frames: List[FrameSpec] = field(default_factory=list)  # handles: read by video models, never output


class RenderManager:
    metrics: NoMetrics = NO_METRICS  # the server attaches its metrics.Metrics
    executor: Optional[RayExecutor] = None  # the server attaches its Ray executor (--executor ray)
    # Frames decoded ahead of / encoded behind the model ([server] pipeline_depth); 0: one frame at a time.
    pipeline_depth: int = 2

    def __init__(
        self,
        catalog: cat.Catalog,
        blobs: BlobStore,
        registry: ModelRegistry,
        colours: ColourSpaces,
        devices: List[str],
        chunk_frames: int = 4,
        path_roots: Sequence[Path] = (),
        max_queued: int = 1000,
        quotas: Optional[Quotas] = None,
        project_roots: Optional[Mapping[str, Sequence[Path]]] = None,
    ) -> None:
        self.catalog = catalog
        self.quotas = quotas or Quotas(max_queued=max_queued)
        self._quota_lock = threading.Lock()  # quota check + create_render: concurrent submits cannot both fit
        self._accepting = True  # cleared under _quota_lock when a drain starts: no render is created after it
        self.blobs = blobs
        self.registry = registry
        self.colours = colours
        self.paths = PathAccess(path_roots, project_roots)
        self.path_roots = self.paths.roots
        self._cv = threading.Condition()  # previews waiting for their render to end
        # Watchers wait on their own render's condition: an event wakes that render's watchers only, so a
        # long render's frames cost the same with 0 or 200 watchers of other renders.
        self._watched: Dict[str, _Watched] = {}
        self._references: OrderedDict[str, np.ndarray] = OrderedDict()
        self.scheduler = Scheduler(catalog, self._run_chunk, devices, chunk_frames, on_event=self._notify)
        self.jobs = JobControl(self)
        # Temporal renders (temporal/): frame order, each frame's neighbours, and the QC before FINISHED.
        self.temporal = TemporalRenders(catalog, blobs, colours)
        self.scheduler.plan_chunk = self.temporal.next_chunk
        self.scheduler.before_finish = self._quality_check

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    # ------------------------------------------------------------ submit

    def stop_accepting(self) -> None:
        """A drain starts: submits still being checked are refused before they create a render."""
        with self._quota_lock:
            self._accepting = False

    def _check_accepting(self) -> None:
        if not self._accepting or self.scheduler.stopping:
            raise ShuttingDown("the server is shutting down and takes no new work; submit again once it is back")

    def submit(self, sub: Submission) -> Tuple[str, List[str]]:
        self._check_accepting()
        # Cheap refusal before anything is read; checked again, exactly, right before the render is created.
        self.quotas.check(self.catalog, sub.owner, sub.lane, len(sub.frames) or len(sub.parent_frames))
        model, options = self._model_and_options(sub.settings)  # validated here, parsed again per chunk
        settings = dict(sub.settings)
        capped = cap_priority(settings, sub.owner, sub.max_priority)
        settings["model"] = model.name
        settings["pass_name"] = model.pass_name
        settings["colour_space"] = self.colours.check(settings.get("colour_space") or self.colours.scene_linear)
        if not sub.seed_set:
            settings["seed"] = random.randrange(1, 2**31)
        if sub.job_key:
            _check_name("job key", sub.job_key)
            settings[JOB_KEY] = sub.job_key
        _check_name("project", sub.project)
        _check_name("shot", sub.shot)
        if len(settings.get("prompt", "")) > MAX_PROMPT or len(settings.get("negative_prompt", "")) > MAX_PROMPT:
            raise InvalidInput(f"prompts are limited to {MAX_PROMPT} characters")
        self._check_schedule(settings, model)

        # Shared with other submits, exclusive to blob GC: no blob this render names is deleted between
        # checking that it exists and recording the render that uses it (`shotpass gc` included).
        with self.blobs.gc_lock(exclusive=False):
            frames = self._input_frames(sub)
            masks = self._mask_frames(sub, frames, model)
            view = settings.get("view", "")
            sizes = {f: self._validate_input(row, view, model, options, has_mask=bool(masks))
                     for f, row in frames.items()}
            context, context_warning = self._context_frames(sub, frames, model, view, options)
            sizes.update(context.sizes)
            if model.needs_uniform_size:
                _check_uniform(sizes, {**frames, **context.rows}, model)
            if context.rows:
                settings[CONTEXT_FRAMES] = context.to_settings()
            reference = self._reference_digest(sub, model)
            plan = self.temporal.plan_settings(options, frames, sub.project, sub.shot, model.name,
                                               clip=isinstance(model, ClipModel))
            if plan:
                settings[TEMPORAL_PLAN] = plan

            warnings = [
                w
                for w in (
                    instruction_warning(settings.get("prompt", ""), model.family, model.name),
                    unused_prompt_warning(settings.get("prompt", ""), model.uses_prompt, model.name),
                    capped,
                    context_warning,
                )
                if w
            ]
            if model.uses_reference and not reference:
                raise InvalidInput(
                    f"model {model.name} needs a reference frame: pass one (--reference FILE), or approve a preview "
                    f"of shot {sub.shot} (shotpass review RENDER --approve) to use it as the shot's reference"
                )
            rows = []
            for f in sorted(frames):
                row = frames[f]
                if f in masks:
                    row.mask_digest = masks[f]
                rows.append(row)
            with self._quota_lock:
                self._check_accepting()  # checked again: a drain may have started while the frames were read
                self.quotas.check(self.catalog, sub.owner, sub.lane, len(rows))

                def create() -> str:
                    return self.catalog.create_render(
                        sub.project, sub.shot, sub.lane, settings, rows, sub.parent or None, sub.label[:MAX_NAME],
                        reference, model.scale, warnings, owner=sub.owner,
                    )

                if sub.job_key and sub.lane == "render":
                    render_id, notes = self.jobs.submit_to_job(
                        sub.job_key, sub.project, sub.shot, settings, sub.seed_set, rows, create
                    )
                    warnings = warnings + notes
                else:
                    render_id = create()
        for w in warnings:
            self.catalog.add_event(render_id, "WARNING", {"message": w})
        # A farm retry whose frames are all done leaves its job's finished render as it is (not run again).
        if self.catalog.get_render(render_id, with_frames=False).state not in cat.FINAL_STATES:
            self.scheduler.enqueue(render_id)
        return render_id, warnings

    def _check_schedule(self, settings: Dict[str, Any], model: Model) -> None:
        """Per-frame prompts and options are checked like the constant ones, each key on its own."""
        prompts, options = settings.get("prompt_by_frame") or {}, settings.get("options_by_frame") or {}
        if key_count(prompts, options) > MAX_SCHEDULE_KEYS:
            raise InvalidInput(f"a render's per-frame values are limited to {MAX_SCHEDULE_KEYS} keys")
        for frame, text in prompts.items():
            if len(text) > MAX_PROMPT:
                raise InvalidInput(f"prompt of frame {frame}: prompts are limited to {MAX_PROMPT} characters")
        constant = dict(settings.get("options", {}))
        for name, keys in options.items():
            for frame, value in keys.items():
                try:
                    parse_options(model.options, {**constant, name: value}, model.name)
                except InvalidInput as err:
                    raise InvalidInput(f"option {name} at frame {frame}: {err}") from None

    def _model_and_options(self, settings: Dict[str, Any]) -> Tuple[Model, Dict[str, Any]]:
        pass_name = settings.get("pass_name", "")
        name = settings.get("model", "")
        if not pass_name and not name:
            raise InvalidInput(f"choose a pass ({', '.join(self.registry.passes())}) or a model (see: shotpass models)")
        model = self.registry.get(name) if name else self.registry.default_for(pass_name)
        if pass_name and model.pass_name != pass_name:
            raise InvalidInput(f"model {model.name} runs the {model.pass_name} pass, not {pass_name}")
        return model, parse_options(model.options, dict(settings.get("options", {})), model.name)

    def _input_frames(self, sub: Submission) -> Dict[int, cat.FrameRow]:
        if sub.frames and sub.parent:
            raise InvalidInput("give either input frames or a parent render, not both")
        if sub.parent:
            parent = self.catalog.get_render(sub.parent)
            done = {f.frame: f for f in parent.frames if f.state == cat.F_DONE}
            wanted = list(sub.parent_frames) or sorted(f.frame for f in parent.frames)
            missing = [f for f in wanted if f not in done]
            if missing:
                raise InvalidInput(
                    f"parent render {parent.id} has no finished output for frame(s) {_frames(missing)} "
                    f"(it is {parent.state}); wait for it or chain onto finished frames only"
                )
            return {
                f: cat.FrameRow(frame=f, input_digest=done[f].output_digest, input_name=done[f].input_name)
                for f in wanted
            }
        if not sub.frames:
            raise InvalidInput("a render needs input frames or a parent render")
        if len(sub.frames) > MAX_FRAMES_PER_RENDER:
            raise InvalidInput(f"at most {MAX_FRAMES_PER_RENDER} frames per render")
        out: Dict[int, cat.FrameRow] = {}
        for spec in sub.frames:
            if spec.frame in out:
                raise InvalidInput(f"frame {spec.frame} is listed twice ({out[spec.frame].input_name} and {spec.name})")
            digest = self._stored(spec, sub.project, output_algorithm(sub.settings))
            out[spec.frame] = cat.FrameRow(frame=spec.frame, input_digest=digest, input_name=spec.name)
        return out

    def _context_frames(
        self, sub: Submission, frames: Dict[int, cat.FrameRow], model: Model, view: str, options: Dict[str, Any]
    ) -> Tuple[ContextFrames, str]:
        """The handles a video model reads around the render's frames, stored and checked like plate frames.

        Returns them (empty for a model that runs frame by frame) and a warning when they were given but unused."""
        if not sub.context_frames:
            return ContextFrames(), ""
        if sub.parent:
            raise InvalidInput("context frames (handles) come with input frames, not with a parent render; send the "
                               "parent's outputs as input frames to read handles around them")
        if not isinstance(model, ClipModel):
            return ContextFrames(), (f"model {model.name} renders frame by frame and reads no context frames: the "
                                     f"{len(sub.context_frames)} handle frame(s) sent were not used")
        specs = check_context_frames(sub.context_frames, frames)
        context = ContextFrames()
        for spec in specs:
            row = cat.FrameRow(frame=spec.frame, input_digest=self._stored(spec, sub.project,
                                                                           output_algorithm(sub.settings)),
                               input_name=spec.name)
            context.rows[spec.frame] = row
            context.sizes[spec.frame] = self._validate_input(row, view, model, options)
        return context, ""

    def _mask_frames(self, sub: Submission, frames: Dict[int, cat.FrameRow], model: Model) -> Dict[int, str]:
        masks: Dict[int, str] = {}
        for spec in sub.mask_frames:
            if spec.frame not in frames:
                raise InvalidInput(f"mask frame {spec.frame} ({spec.name}) has no plate frame {spec.frame}")
            masks[spec.frame] = self._stored(spec, sub.project, output_algorithm(sub.settings))
            self._validate_mask(masks[spec.frame], f"mask {spec.name or 'file'} (frame {spec.frame})")
        if masks:
            missing = [f for f in frames if f not in masks]
            if missing:
                raise InvalidInput(f"the mask plate lacks frame(s) {_frames(missing)} of the plate")
        return masks

    def _stored(self, spec: FrameSpec, project: str, algorithm: str = digests.SHA256) -> str:
        label = spec.name or f"frame {spec.frame}"
        if spec.path:
            return self.blobs.put(self._read_path(spec.path, spec.frame, project), algorithm)
        try:
            check_digest(spec.digest)
        except InvalidInput as err:
            raise InvalidInput(f"{label} (frame {spec.frame}): {err}") from None
        if not self.blobs.has(spec.digest):
            raise NotFound(
                f"{label} (frame {spec.frame}) was not uploaded (digest {spec.digest[:12]}); upload it first"
            )
        return spec.digest

    def _read_path(self, path: str, frame: int, project: str) -> bytes:
        return self.paths.read(path, frame, project)  # global roots plus the project's own (path_access.py)

    def _validate_input(
        self, row: cat.FrameRow, view: str, model: Model, options: Optional[Dict[str, Any]] = None,
        has_mask: bool = True,
    ) -> Tuple[int, int]:
        """Refuse unusable frames at submit time, naming the file and frame, before anything is queued.

        ``has_mask``: a mask plate comes with the render; without one, a model that fills a mask takes the plate's
        alpha, so a plate without alpha is refused here rather than as a failed version of the shot.
        Returns the size (width, height) of the pixels the pass would see.
        """
        name = row.input_name or f"frame {row.frame}"
        try:
            # The header only: decoding every frame here cost memory per submit (frames/header.py).
            header = read_frame_header(self.blobs.get(row.input_digest), name)
            if model.pass_name == "passthrough":
                return (0, 0)
            colour = header.colour(view or None)
            check_output_size(colour.width, colour.height, model.scale, name)
        except FrameTooLarge as err:
            raise FrameTooLarge(f"frame {row.frame}: {err}") from None
        except ShotpassError as err:
            raise InvalidInput(f"frame {row.frame}: {err}") from None
        if model.needs_mask and not has_mask and colour.prefix + "A" not in colour.channel_names:
            raise InvalidInput(
                f"frame {row.frame}: {name}: {model.name} fills a mask, and the plate has no alpha "
                f"(channels {', '.join(colour.channel_names)}) and no mask plate came with it; give a mask plate "
                "(--mask) or a plate with an alpha channel"
            )
        model.validate_plate(colour, options or {}, name, row.frame)
        check_vectors(header.image, colour.part_index, options or {}, name, row.frame)
        return colour.width, colour.height

    def _validate_aux(self, digest: str, label: str, view: str) -> None:
        """A mask or reference file passes the same header checks as a plate; errors name it."""
        try:
            read_frame_header(self.blobs.get(digest), label).colour(view or None)
        except FrameTooLarge:
            raise
        except ShotpassError as err:
            raise InvalidInput(str(err)) from None

    def _validate_mask(self, digest: str, label: str) -> None:
        """A mask file passes a plate's header checks and has what read_mask takes (an alpha, alpha-only
        included; RGB or Y; or exactly one channel), from its header alone: nothing is decoded at submit."""
        try:
            header = read_frame_header(self.blobs.get(digest), label)
        except FrameTooLarge:
            raise
        except ShotpassError as err:
            raise InvalidInput(str(err)) from None
        if any(n == "A" or n.endswith(".A") for part in header.image.parts for n in part.channels):
            return
        try:
            header.colour(None)
            return
        except ShotpassError:
            pass
        first = header.image.parts[0].channels
        if len(first) != 1:
            raise InvalidInput(f"{label}: a mask plate needs an alpha (A), RGB or Y channel, or exactly one "
                               f"channel; it has {', '.join(sorted(first)) or 'none'}")

    def _reference_digest(self, sub: Submission, model: Model) -> str:
        if sub.reference_digest:
            if not self.blobs.has(sub.reference_digest):
                raise NotFound(f"reference {sub.reference_digest[:12]} was not uploaded; upload it first")
            label = f"reference {sub.reference_name or sub.reference_digest[:12]}"
            self._validate_aux(sub.reference_digest, label, sub.settings.get("view", ""))
            return sub.reference_digest
        if sub.reference_render:
            render_id, frame = sub.reference_render
            return self._render_output(render_id, frame)
        if model.uses_reference or model.accepts_reference:
            approved = [r for r in self.catalog.list_renders(sub.project, sub.shot) if r.approved and r.frames_done]
            if approved:
                return self.catalog.first_output(approved[0].id)
        return ""

    def _render_output(self, render_id: str, frame: int) -> str:
        render = self.catalog.get_render(render_id, with_frames=False)
        if frame == 0 and render.frames_total == 1 and self.catalog.first_output(render_id):
            return self.catalog.first_output(render_id)
        for f in self.catalog.frames_numbered(render_id, [frame]):
            if f.output_digest:
                return f.output_digest
        raise InvalidInput(f"render {render_id} has no finished output for frame {frame}")

    # ------------------------------------------------------------ preview

    def wait_final(self, render_id: str, timeout: float) -> cat.RenderRow:
        deadline = time.monotonic() + timeout
        while True:
            render = self.catalog.get_render(render_id)
            if render.state in cat.FINAL_STATES or time.monotonic() >= deadline:
                return render
            with self._cv:
                self._cv.wait(min(0.5, max(0.0, deadline - time.monotonic())))

    # ------------------------------------------------------------ events

    def _notify(self, render_id: str) -> None:
        with self._cv:
            watched = self._watched.get(render_id)
            if watched is not None:
                watched.generation += 1
                watched.changed.notify_all()
            self._cv.notify_all()

    def wake_watchers(self) -> None:
        """Waiting watchers look again now (one of them left: its loop ends without waiting out its timeout)."""
        with self._cv:
            for watched in self._watched.values():
                watched.changed.notify_all()

    def add_event(self, render_id: str, kind: str, body: Dict[str, Any]) -> None:
        self.catalog.add_event(render_id, kind, body)
        self._notify(render_id)

    def events(self, render_id: str, after: int, active: Any = lambda: True) -> Iterator[cat.EventRow]:
        self.catalog.get_render(render_id, with_frames=False)  # NOT_FOUND early
        with self._cv:
            watched = self._watched.setdefault(render_id, _Watched(threading.Condition(self._cv)))
            watched.watchers += 1
        try:
            yield from self._events(render_id, after, active, watched)
        finally:
            with self._cv:
                watched.watchers -= 1
                if not watched.watchers:
                    del self._watched[render_id]

    def _events(self, render_id: str, after: int, active: Any, watched: _Watched) -> Iterator[cat.EventRow]:
        last = after
        ended = False
        while active():
            with self._cv:
                generation = watched.generation
            batch = self.catalog.events_after(render_id, last)
            for event in batch:
                last = event.seq
                yield event
                # A requeued render (job control, or a farm task adding frames) runs again after a FINISHED:
                # the stream ends at one only while the render is still final.
                if event.kind == "FINISHED" and self.catalog.get_render(render_id, with_frames=False).state in (
                    cat.FINAL_STATES
                ):
                    return
            if not batch:
                # Asked for events after the final one, a watcher would wait forever: once the render is
                # final and one more (short) wait brings nothing, the stream ends.
                if ended:
                    return
                ended = self.catalog.get_render(render_id, with_frames=False).state in cat.FINAL_STATES
                with self._cv:
                    if watched.generation == generation and active():
                        # 1 s: a stream re-checks its caller (a revoked token ends it) at least that often.
                        watched.changed.wait(0.2 if ended else 1.0)

    # ------------------------------------------------------------ work

    def _run_chunk(self, render_id: str, chunk: List[int], device: str, scheduler: Scheduler) -> None:
        # Only the chunk's own frames are read: per-frame cost must not grow with the render's size.
        render = self.catalog.get_render(render_id, with_frames=False)
        render.frames = self.catalog.frames_numbered(render_id, chunk)
        settings = render.settings
        model = self.registry.get(settings["model"])
        options = parse_options(model.options, dict(settings.get("options", {})), model.name)
        rows = {f.frame: f for f in render.frames}
        wants_reference = model.uses_reference or model.accepts_reference
        try:
            reference = self._reference_rgb(render, model) if render.reference_digest and wants_reference else None
        except ShotpassError as err:  # checked at submit; a damaged blob still fails its frames clearly
            for frame in chunk:
                self._frame_failed(render_id, frame, f"reference frame: {err}", time.perf_counter())
            return
        if self.executor is not None and is_slot(device):
            self._run_remote(render, chunk, model, options, reference, device, scheduler)
            return
        if isinstance(model, ClipModel):
            self._run_clip(render, chunk, model, options, reference, device, scheduler)
            return
        if self.pipeline_depth > 0:
            self._run_pipelined(render, chunk, model, options, reference, device, scheduler)
            return
        for frame in chunk:
            if scheduler.should_stop(render_id):
                return
            row = rows[frame]
            if row.state != cat.F_PENDING:
                continue  # finished before a restart: never recomputed
            self.catalog.frame_started(render_id, frame)
            started = time.perf_counter()
            progress = self._progress(render_id, frame, scheduler, frame_timeout(settings))
            try:
                request = self._request(render, rows[frame], options, reference, device)
                out = run_frame(request, model, self.colours, progress)
            except RenderCancelled:
                self.catalog.reset_frame(render_id, frame)
                return
            except ShotpassError as err:
                self._frame_failed(render_id, frame, str(err), started)
                continue
            except Exception as err:  # a model bug must not take the server down
                log.error("render %s frame %s:\n%s", render_id, frame, traceback.format_exc(),
                          extra={"render_id": render_id, "frame": frame})
                self._frame_failed(render_id, frame, f"internal error in {model.name}: {err}", started)
                continue
            self._frame_finished(render_id, frame, out, time.perf_counter() - started, render.frames_total, device,
                                 output_algorithm(settings))

    def _run_pipelined(
        self,
        render: cat.RenderRow,
        chunk: List[int],
        model: Model,
        options: Dict[str, Any],
        reference: Any,
        device: str,
        scheduler: Scheduler,
    ) -> None:
        """The chunk's frames as _run_chunk runs them one by one, with the codec overlapped (pipelined.py):
        frame N+1 is read and decoded, and frame N-1 encoded and stored, while the model runs on frame N.
        A model that batches gets up to its batch size of consecutive frames with equal batch keys at once.

        A temporal frame's model part needs nothing of its neighbours, so it is loaded ahead and batched like any
        other; its blend with (or propagation from) the neighbours' *stored* outputs runs in the store stage,
        which takes the frames in plan order, each after the frames before it are stored: the same inputs, the
        same bits as one frame at a time."""
        render_id, rows = render.id, {f.frame: f for f in render.frames}
        algorithm = output_algorithm(render.settings)
        pending = [f for f in chunk if rows[f].state == cat.F_PENDING]  # finished before a restart: kept
        started: Dict[int, float] = {}
        timeout = frame_timeout(render.settings)
        temporal = self.temporal.plan(render_id) is not None
        # The step callback (cancel, frame timeout) is made when the model starts on the frame, not when it was
        # loaded ahead, so a frame's timeout counts its own time only, as one at a time.
        progress_of: Dict[int, Any] = {}

        def load(frame: int) -> StagedFrame:
            request = self._request(render, rows[frame], options, reference, device, neighbours=not temporal)
            late = Progress(lambda step, total: progress_of[frame](step, total),
                            lambda: checkpoint_of(progress_of[frame])())
            return prepare_frame(request, model, self.colours, late)

        def runs_model(frame: int) -> bool:
            return not temporal or self.temporal.runs_model(render_id, frame)

        def compute(frames: List[int], staged: List[Any]) -> List[Optional[Tuple[StagedFrame, Any]]]:
            for frame in frames:
                self.catalog.frame_started(render_id, frame)
                started[frame] = time.perf_counter()
                progress_of[frame] = self._progress(render_id, frame, scheduler, timeout)
            try:
                if len(frames) > 1:
                    try:
                        return list(zip(staged, process_frames(staged, model, self.colours)))
                    except (RenderCancelled, FrameTimedOut):
                        raise  # the batch's frames started together: a timeout is every one's
                    except Exception as err:  # noqa: BLE001 - each frame again alone, to fail (or not) by itself
                        log.warning("render %s frames %s: the batch failed (%s); running them one by one",
                                    render_id, frames, err, extra={"render_id": render_id})
                return [self._compute_one(render_id, frame, item, model, started, runs_model(frame))
                        for frame, item in zip(frames, staged)]
            except RenderCancelled:
                for frame in frames:
                    self.catalog.reset_frame(render_id, frame)
                raise
            except FrameTimedOut as err:
                for frame in frames:
                    self._frame_error(render_id, frame, err, started[frame], model)
                return [None] * len(frames)

        def store(frame: int, computed: Tuple[StagedFrame, Any]) -> None:
            staged, result = computed
            try:
                if temporal:
                    out = self._finish_temporal(render, staged, result, model)
                else:
                    out = finish_frame(staged, result, model, self.colours)
            except Exception as err:
                self._frame_error(render_id, frame, err, started[frame], model)
                return
            progress_of.pop(frame, None)
            self._frame_finished(render_id, frame, out, time.perf_counter() - started[frame], render.frames_total,
                                 device, algorithm)

        def key(frame: int, staged: StagedFrame) -> Any:
            return batch_key(staged, model) if runs_model(frame) else None

        try:
            run_pipelined(pending, load, compute, store, self.pipeline_depth, lambda: scheduler.should_stop(render_id),
                          batch=model.batch_size(options, device), batch_key=key)
        except RenderCancelled:
            return

    def _compute_one(
        self, render_id: str, frame: int, staged: Any, model: Model, started: Dict[int, float], runs_model: bool
    ) -> Optional[Tuple[StagedFrame, Any]]:
        """One frame through the model; a failure is recorded (None), a cancel goes on up."""
        try:
            if isinstance(staged, LoadFailed):
                raise staged.error
            if not runs_model:  # made from its neighbours' stored outputs in the store stage
                staged.progress(0, 1)  # sees a cancel here, where a model step would
                return staged, None
            return staged, process_frame(staged, model, self.colours)
        except RenderCancelled:
            raise
        except Exception as err:
            self._frame_error(render_id, frame, err, started[frame], model)
            return None

    def _finish_temporal(self, render: cat.RenderRow, staged: StagedFrame, result: Any, model: Model) -> bytes:
        """A temporal frame after its model part: its neighbours' stored outputs are read now (the frames before
        it in the plan are stored), then blended or propagated as run_temporal does one frame at a time."""
        inputs, provenance = self.temporal.inputs(render, staged.req.frame, staged.req.options)
        staged.req.temporal, staged.req.provenance = inputs, provenance
        if inputs is None:  # a keyframe the model rendered: a plain frame
            return finish_frame(staged, result, model, self.colours)
        assert staged.prepared is not None
        return finish_temporal(staged.prepared, result, model, self.colours, lambda step, total: None)

    def _frame_error(self, render_id: str, frame: int, err: Exception, started: float, model: Model) -> None:
        """A frame failed: a ShotpassError says why to the user; anything else is a model bug, logged in full."""
        if isinstance(err, ShotpassError):
            self._frame_failed(render_id, frame, str(err), started)
            return
        log.error("render %s frame %s:\n%s", render_id, frame,
                  "".join(traceback.format_exception(type(err), err, err.__traceback__)),
                  extra={"render_id": render_id, "frame": frame})
        self._frame_failed(render_id, frame, f"internal error in {model.name}: {err}", started)

    def _request(
        self, render: cat.RenderRow, row: cat.FrameRow, options: Dict[str, Any], reference: Any, device: str,
        neighbours: bool = True,
    ) -> FrameRequest:
        """``neighbours=False``: without a temporal frame's inputs (the pipelined worker reads them later)."""
        settings = render.settings
        # The one place a frame's own values are resolved: a schedule (animated prompt/options) wins.
        prompt, overrides = frame_values(settings, row.frame)
        if overrides:
            options = self._model_and_options({**settings, "options": {**settings.get("options", {}), **overrides}})[1]
        temporal, provenance = self.temporal.inputs(render, row.frame, options) if neighbours else (None, {})
        noise = None
        if options.get("noise") == "flow":
            noise = self.temporal.noise_warp(render, row.frame, lambda f: frame_seed(int(settings.get("seed", 0)), f))
        anchor = self._anchor(render, row.frame, options) if options.get("cross_frame", "off") != "off" else None
        return FrameRequest(
            render_id=render.id,
            frame=row.frame,
            data=self.blobs.get(row.input_digest),
            source_name=row.input_name or f"frame {row.frame}",
            source_digest=row.input_digest,
            seed=frame_seed(int(settings.get("seed", 0)), noise_frame(options, row.frame)),
            options=options,
            colour_space=settings["colour_space"],
            view=settings.get("view", ""),
            prompt=prompt,
            negative_prompt=settings.get("negative_prompt", ""),
            mask=self.blobs.get(row.mask_digest) if row.mask_digest else None,
            mask_name=f"mask of frame {row.frame}",
            reference_rgb=reference,
            device=device,
            temporal=temporal,
            provenance=provenance,
            noise=noise,
            anchor=anchor,
        )

    def _anchor(self, render: cat.RenderRow, frame: int, options: Dict[str, Any]) -> Optional[Anchor]:
        """cross_frame=first: the render's first frame, in the model's working space, with its noise seed. The
        first frame itself renders on its own (beside itself it would denoise the same)."""
        first = self.temporal.first_row(render.id)
        if first.frame == frame:
            return None
        model = self.registry.get(render.settings["model"])
        settings = render.settings
        key = f"anchor:{first.input_digest}:{model.name}:{settings['colour_space']}:{settings.get('view', '')}"
        if key not in self._references:
            self._references[key] = reference_in_working_space(
                self.blobs.get(first.input_digest), first.input_name or f"frame {first.frame}",
                render.settings.get("view", ""), model, render.settings["colour_space"], self.colours,
            )
            while len(self._references) > 8:
                self._references.popitem(last=False)
        seed = frame_seed(int(render.settings.get("seed", 0)), noise_frame(options, first.frame))
        return Anchor(first.frame, self._references[key], seed)

    def _run_clip(
        self,
        render: cat.RenderRow,
        chunk: List[int],
        model: ClipModel,
        options: Dict[str, Any],
        reference: Any,
        device: str,
        scheduler: Scheduler,
    ) -> None:
        """A clip model gets the chunk's pending frames together; each frame still finishes (or fails) by number."""
        rows = {f.frame: f for f in render.frames}
        frames = [f for f in chunk if rows[f].state == cat.F_PENDING]
        if not frames or scheduler.should_stop(render.id):
            return
        for frame in frames:
            self.catalog.frame_started(render.id, frame)
        started = time.perf_counter()
        try:
            requests = self._clip_requests(render, frames, options, reference, device)
        except ShotpassError as err:  # a handle's blob is unreadable: the clip cannot be the one it must be
            for frame in frames:
                self._frame_failed(render.id, frame, str(err), started)
            return
        try:
            outs = run_clip(requests, model, self.colours, self._progress(render.id, frames[0], scheduler))
        except RenderCancelled:
            for frame in frames:
                self.catalog.reset_frame(render.id, frame)
            return
        except Exception as err:  # a model bug must not take the server down
            if not isinstance(err, ShotpassError):
                log.error("render %s frames %s:\n%s", render.id, frames, traceback.format_exc(),
                          extra={"render_id": render.id})
            message = str(err) if isinstance(err, ShotpassError) else f"internal error in {model.name}: {err}"
            for frame in frames:
                self._frame_failed(render.id, frame, message, started)
            return
        seconds = (time.perf_counter() - started) / len(frames)
        for frame, out in zip(frames, outs):
            self._frame_finished(render.id, frame, out, seconds, render.frames_total, device,
                                 output_algorithm(render.settings))

    def _clip_requests(
        self, render: cat.RenderRow, frames: List[int], options: Dict[str, Any], reference: Any, device: str
    ) -> List[FrameRequest]:
        """The clip a video model runs for these frames: them, plus every neighbouring frame it can read (the
        render's handles and its other frames, finished or not), as context requests whose outputs are dropped.
        A pickup with handles, and a resumed render, so run the same clip and windows as the whole range."""
        handles = context_rows(render.settings)
        own = {f.frame: f for f in self.catalog.frames(render.id)}
        readable = {**handles, **own}
        clip = clip_around(frames, readable)
        wanted = set(frames)
        note = {"temporal": f"clip {_frames(clip)}"}
        requests = []
        for f in clip:
            request = self._request(render, readable[f], options, reference, device)
            requests.append(replace(request, provenance=note) if f in wanted else replace(request, context=True))
        return requests

    def _run_remote(
        self,
        render: cat.RenderRow,
        chunk: List[int],
        model: Model,
        options: Dict[str, Any],
        reference: Any,
        device: str,
        scheduler: Scheduler,
    ) -> None:
        """The chunk's pending frames go to a Ray actor as one job; its reports land here as local ones do."""
        assert self.executor is not None
        rows = {f.frame: f for f in render.frames}
        frames = [f for f in chunk if rows[f].state == cat.F_PENDING]
        if not frames or scheduler.should_stop(render.id):
            return
        total = render.frames_total

        def started(started_frames: List[int]) -> None:
            for frame in started_frames:
                self.catalog.frame_started(render.id, frame)

        hooks = ChunkHooks(
            started=started,
            finished=lambda frame, out, seconds: self._frame_finished(
                render.id, frame, out, seconds, total, device, output_algorithm(render.settings)
            ),
            failed=lambda frame, message, seconds: self._frame_failed(
                render.id, frame, message, time.perf_counter() - seconds
            ),
            requeued=lambda frame: self.catalog.reset_frame(render.id, frame),
            warning=lambda message: self.add_event(render.id, "WARNING", {"message": message}),
            cancelled=lambda: scheduler.is_cancelled(render.id),
            # Sampled by the executor (at most every POLL_SECONDS), so the step histogram is left to local frames.
            step=lambda frame, step, steps: self.add_event(
                render.id, "STEP", {"frame": frame, "step": step, "total_steps": steps}
            ),
        )
        plan = self.temporal.plan(render.id)
        if plan is None or plan.mode == "clip":
            try:  # a video model's clip reads its handles even when it is one frame (no plan)
                requests = (self._clip_requests(render, frames, options, reference, device)
                            if isinstance(model, ClipModel)
                            else [self._request(render, rows[f], options, reference, device) for f in frames])
            except ShotpassError as err:
                for frame in frames:
                    self._frame_failed(render.id, frame, str(err), time.perf_counter())
                return
            self.executor.run_chunk(device, model.name, requests, hooks)
            return
        # A temporal frame carries its neighbours' stored outputs: each request is built once the one before it
        # is stored, so the actor gets one frame at a time, in the plan's order.
        for frame in frames:
            if scheduler.should_stop(render.id):
                return
            try:
                request = self._request(render, rows[frame], options, reference, device)
            except ShotpassError as err:
                self._frame_failed(render.id, frame, str(err), time.perf_counter())
                continue
            self.executor.run_chunk(device, model.name, [request], hooks)

    def _quality_check(self, render_id: str) -> None:
        self.temporal.quality_check(render_id, lambda m: self.add_event(render_id, "WARNING", {"message": m}))

    def _frame_finished(
        self, render_id: str, frame: int, out: bytes, seconds: float, total: int, device: str = "",
        algorithm: str = digests.SHA256,
    ) -> None:
        """Store the output, then record and announce it: a frame is done only once its blob is stored."""
        late = timed_out(frame, seconds, frame_timeout(self.catalog.get_render(render_id, with_frames=False).settings))
        if late:  # a frame past its timeout fails, even when it did finish (a model that reports no steps)
            self._frame_failed(render_id, frame, late, time.perf_counter() - seconds)
            return
        try:
            digest = self.blobs.put(out, algorithm)
        except StoreFull as err:  # the output cannot be kept: the frame fails with the reason, the server stays up
            self._frame_failed(render_id, frame, f"frame {frame}: {err}", time.perf_counter() - seconds)
            return
        done = self.catalog.frame_done(render_id, frame, digest, len(out), seconds)
        self.metrics.frame_finished(render_id, frame, seconds)
        self.add_event(
            render_id,
            "FRAME_DONE",
            {"frame": frame, "digest": digest, "frames_done": done, "frames_total": total, "device": device},
        )

    def _progress(self, render_id: str, frame: int, scheduler: Scheduler, timeout: float = 0.0) -> Any:
        """A model's step callback: sees cancellation and the frame timeout, and reports steps at most 5 times a
        second."""
        last = [0.0]
        started = time.perf_counter()

        def check() -> float:
            scheduler.check_cancel(render_id)
            now = time.perf_counter()
            late = timed_out(frame, now - started, timeout)
            if late:
                raise FrameTimedOut(late)
            return now

        def progress(step: int, total: int) -> None:
            now = check()
            if step >= total or now - last[0] > 0.2:
                last[0] = now
                self.add_event(render_id, "STEP", {"frame": frame, "step": step, "total_steps": total})

        return Progress(self.metrics.timed_steps(render_id, progress), check)

    def _frame_failed(self, render_id: str, frame: int, message: str, started: float) -> None:
        self.catalog.frame_failed(render_id, frame, message, time.perf_counter() - started)
        self.add_event(render_id, "FRAME_FAILED", {"frame": frame, "message": message})
        self.metrics.frame_failed(render_id, frame, message)

    def _reference_rgb(self, render: cat.RenderRow, model: Model) -> np.ndarray:
        key = f"{render.reference_digest}:{model.name}:{render.settings['colour_space']}"
        if key not in self._references:
            self._references[key] = reference_in_working_space(
                self.blobs.get(render.reference_digest),
                "reference frame",
                render.settings.get("view", ""),
                model,
                render.settings["colour_space"],
                self.colours,
            )
            while len(self._references) > 8:
                self._references.popitem(last=False)
        return self._references[key]


@dataclass
class _Watched:
    """The watchers of one render: woken by that render's events only."""

    changed: threading.Condition
    watchers: int = 0
    generation: int = 0


def output_algorithm(settings: Dict[str, Any]) -> str:
    """The digest algorithm a render's outputs are named in: what its client asked for (older renders: sha256)."""
    algorithm = settings.get("digest_algorithm", digests.SHA256)
    return algorithm if algorithm in digests.available() else digests.SHA256


def _check_uniform(sizes: Dict[int, Tuple[int, int]], frames: Dict[int, cat.FrameRow], model: Model) -> None:
    """Models that see the plate as one clip (video models) need one frame size throughout."""
    first = min(sizes)
    for frame in sorted(sizes):
        if sizes[frame] != sizes[first]:
            (w, h), (w0, h0) = sizes[frame], sizes[first]
            raise InvalidInput(
                f"{frames[frame].input_name or 'frame'} (frame {frame}) is {w}x{h} but frame {first} is {w0}x{h0}; "
                f"model {model.name} needs one size for the whole plate: reformat the plate (or its data window)"
            )


def _check_name(kind: str, value: str) -> None:
    if not value or len(value) > MAX_NAME or any(c in value for c in "\x00\n\r/\\"):
        raise InvalidInput(f"{kind} name {value!r}: 1-{MAX_NAME} characters, no slashes or line breaks")


def _frames(frames: Sequence[int]) -> str:
    return format_frame_list(frames)
