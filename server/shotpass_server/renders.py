"""Render lifecycle: validate a submission, resolve chained inputs and references, run chunks, notify watchers."""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from shotpass_client import digests
from shotpass_client.patterns import format_frame_list

from . import catalog as cat
from .blobs import BlobStore, StoreFull, check_digest
from .errors import InvalidInput, NotFound, RenderCancelled, ShotpassError, ShuttingDown
from .frame_pipeline import (
    FrameRequest,
    StagedFrame,
    finish_frame,
    frame_seed,
    prepare_frame,
    process_frame,
    reference_in_working_space,
    run_clip,
    run_frame,
)
from .frames.colour import ColourSpaces
from .frames.exr import check_output_size, decode_exr, select_colour
from .metrics import NO_METRICS, NoMetrics
from .passes.base import ClipModel, Model, parse_options
from .passes.registry import ModelRegistry
from .path_access import PathAccess
from .pipelined import LoadFailed, run_pipelined
from .prompts import instruction_warning, unused_prompt_warning
from .quotas import Quotas, cap_priority
from .ray_executor import ChunkHooks, RayExecutor, is_slot
from .scheduler import Scheduler

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
    label: str = ""
    owner: str = ""  # the caller's user name ("" on a single-user server): fair share and quotas
    max_priority: Optional[int] = None  # the caller's priority cap (None: not capped)


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
        self.blobs = blobs
        self.registry = registry
        self.colours = colours
        self.paths = PathAccess(path_roots, project_roots)
        self.path_roots = self.paths.roots
        self._cv = threading.Condition()
        self._generation = 0
        self._references: OrderedDict[str, np.ndarray] = OrderedDict()
        self.scheduler = Scheduler(catalog, self._run_chunk, devices, chunk_frames, on_event=self._notify)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    # ------------------------------------------------------------ submit

    def submit(self, sub: Submission) -> Tuple[str, List[str]]:
        if self.scheduler.stopping:
            raise ShuttingDown("the server is shutting down and takes no new work; submit again once it is back")
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
        _check_name("project", sub.project)
        _check_name("shot", sub.shot)
        if len(settings.get("prompt", "")) > MAX_PROMPT or len(settings.get("negative_prompt", "")) > MAX_PROMPT:
            raise InvalidInput(f"prompts are limited to {MAX_PROMPT} characters")

        # Shared with other submits, exclusive to blob GC: no blob this render names is deleted between
        # checking that it exists and recording the render that uses it (`shotpass gc` included).
        with self.blobs.gc_lock(exclusive=False):
            frames = self._input_frames(sub)
            masks = self._mask_frames(sub, frames, model)
            view = settings.get("view", "")
            sizes = {f: self._validate_input(row, view, model, options) for f, row in frames.items()}
            if model.needs_uniform_size:
                _check_uniform(sizes, frames, model)
            reference = self._reference_digest(sub, model)

            warnings = [
                w
                for w in (
                    instruction_warning(settings.get("prompt", ""), model.family, model.name),
                    unused_prompt_warning(settings.get("prompt", ""), model.uses_prompt, model.name),
                    capped,
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
                self.quotas.check(self.catalog, sub.owner, sub.lane, len(rows))
                render_id = self.catalog.create_render(
                    sub.project, sub.shot, sub.lane, settings, rows, sub.parent or None, sub.label[:MAX_NAME],
                    reference, model.scale, warnings, owner=sub.owner,
                )
        for w in warnings:
            self.catalog.add_event(render_id, "WARNING", {"message": w})
        self.scheduler.enqueue(render_id)
        return render_id, warnings

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

    def _mask_frames(self, sub: Submission, frames: Dict[int, cat.FrameRow], model: Model) -> Dict[int, str]:
        masks: Dict[int, str] = {}
        for spec in sub.mask_frames:
            if spec.frame not in frames:
                raise InvalidInput(f"mask frame {spec.frame} ({spec.name}) has no plate frame {spec.frame}")
            masks[spec.frame] = self._stored(spec, sub.project, output_algorithm(sub.settings))
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
        self, row: cat.FrameRow, view: str, model: Model, options: Optional[Dict[str, Any]] = None
    ) -> Tuple[int, int]:
        """Refuse unusable frames at submit time, naming the file and frame, before anything is queued.

        Returns the size (width, height) of the pixels the pass would see.
        """
        name = row.input_name or f"frame {row.frame}"
        try:
            image = decode_exr(self.blobs.get(row.input_digest), name)
            if model.pass_name == "passthrough":
                return (0, 0)
            plane = select_colour(image, view or None)
            check_output_size(plane.rgb.shape[1], plane.rgb.shape[0], model.scale, name)
        except ShotpassError as err:
            raise InvalidInput(f"frame {row.frame}: {err}") from None
        model.validate_plate(image, plane, options or {}, name, row.frame)
        return plane.rgb.shape[1], plane.rgb.shape[0]

    def _reference_digest(self, sub: Submission, model: Model) -> str:
        if sub.reference_digest:
            if not self.blobs.has(sub.reference_digest):
                raise NotFound(f"reference {sub.reference_digest[:12]} was not uploaded; upload it first")
            return sub.reference_digest
        if sub.reference_render:
            render_id, frame = sub.reference_render
            return self._render_output(render_id, frame)
        if model.uses_reference or model.accepts_reference:
            approved = [r for r in self.catalog.list_renders(sub.project, sub.shot) if r.approved and r.frames_done]
            if approved:
                return next(f.output_digest for f in approved[0].frames if f.output_digest)
        return ""

    def _render_output(self, render_id: str, frame: int) -> str:
        render = self.catalog.get_render(render_id)
        done = [f for f in render.frames if f.output_digest]
        if frame == 0 and len(render.frames) == 1 and done:
            return done[0].output_digest
        for f in done:
            if f.frame == frame:
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
            self._generation += 1
            self._cv.notify_all()

    def add_event(self, render_id: str, kind: str, body: Dict[str, Any]) -> None:
        self.catalog.add_event(render_id, kind, body)
        self._notify(render_id)

    def events(self, render_id: str, after: int, active: Any = lambda: True) -> Iterator[cat.EventRow]:
        self.catalog.get_render(render_id, with_frames=False)  # NOT_FOUND early
        last = after
        ended = False
        while active():
            with self._cv:
                generation = self._generation
            batch = self.catalog.events_after(render_id, last)
            for event in batch:
                last = event.seq
                yield event
                if event.kind == "FINISHED":
                    return
            if not batch:
                # Asked for events after the final one, a watcher would wait forever: once the render is
                # final and one more (short) wait brings nothing, the stream ends.
                if ended:
                    return
                ended = self.catalog.get_render(render_id, with_frames=False).state in cat.FINAL_STATES
                with self._cv:
                    if self._generation == generation:
                        self._cv.wait(0.2 if ended else 1.0)

    # ------------------------------------------------------------ work

    def _run_chunk(self, render_id: str, chunk: List[int], device: str, scheduler: Scheduler) -> None:
        render = self.catalog.get_render(render_id)
        settings = render.settings
        model = self.registry.get(settings["model"])
        options = parse_options(model.options, dict(settings.get("options", {})), model.name)
        rows = {f.frame: f for f in render.frames}
        wants_reference = model.uses_reference or model.accepts_reference
        reference = self._reference_rgb(render, model) if render.reference_digest and wants_reference else None
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
            if scheduler.is_cancelled(render_id):
                return
            row = rows[frame]
            if row.state != cat.F_PENDING:
                continue  # finished before a restart: never recomputed
            self.catalog.frame_started(render_id, frame)
            started = time.perf_counter()
            progress = self._progress(render_id, frame, scheduler)

            request = self._request(render, rows[frame], options, reference, device)
            try:
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
            self._frame_finished(render_id, frame, out, time.perf_counter() - started, len(rows), device,
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
        frame N+1 is read and decoded, and frame N-1 encoded and stored, while the model runs on frame N."""
        render_id, rows = render.id, {f.frame: f for f in render.frames}
        algorithm = output_algorithm(render.settings)
        pending = [f for f in chunk if rows[f].state == cat.F_PENDING]  # finished before a restart: kept
        started: Dict[int, float] = {}

        def load(frame: int) -> StagedFrame:
            request = self._request(render, rows[frame], options, reference, device)
            return prepare_frame(request, model, self.colours, self._progress(render_id, frame, scheduler))

        def compute(frame: int, staged: Any) -> Optional[Tuple[StagedFrame, Any]]:
            self.catalog.frame_started(render_id, frame)
            started[frame] = time.perf_counter()
            try:
                if isinstance(staged, LoadFailed):
                    raise staged.error
                return staged, process_frame(staged, model)
            except RenderCancelled:
                self.catalog.reset_frame(render_id, frame)
                raise
            except Exception as err:
                self._frame_error(render_id, frame, err, started[frame], model)
                return None

        def store(frame: int, computed: Tuple[StagedFrame, Any]) -> None:
            try:
                out = finish_frame(computed[0], computed[1], model, self.colours)
            except Exception as err:
                self._frame_error(render_id, frame, err, started[frame], model)
                return
            self._frame_finished(render_id, frame, out, time.perf_counter() - started[frame], len(rows), device,
                                 algorithm)

        try:
            run_pipelined(pending, load, compute, store, self.pipeline_depth, lambda: scheduler.is_cancelled(render_id))
        except RenderCancelled:
            return

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
        self, render: cat.RenderRow, row: cat.FrameRow, options: Dict[str, Any], reference: Any, device: str
    ) -> FrameRequest:
        settings = render.settings
        return FrameRequest(
            render_id=render.id,
            frame=row.frame,
            data=self.blobs.get(row.input_digest),
            source_name=row.input_name or f"frame {row.frame}",
            source_digest=row.input_digest,
            seed=frame_seed(int(settings.get("seed", 0)), row.frame),
            options=options,
            colour_space=settings["colour_space"],
            view=settings.get("view", ""),
            prompt=settings.get("prompt", ""),
            negative_prompt=settings.get("negative_prompt", ""),
            mask=self.blobs.get(row.mask_digest) if row.mask_digest else None,
            mask_name=f"mask of frame {row.frame}",
            reference_rgb=reference,
            device=device,
        )

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
        if not frames or scheduler.is_cancelled(render.id):
            return
        for frame in frames:
            self.catalog.frame_started(render.id, frame)
        started = time.perf_counter()
        requests = [self._request(render, rows[f], options, reference, device) for f in frames]
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
            self._frame_finished(render.id, frame, out, seconds, len(rows), device, output_algorithm(render.settings))

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
        if not frames or scheduler.is_cancelled(render.id):
            return
        requests = [self._request(render, rows[f], options, reference, device) for f in frames]
        total = len(rows)

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
        self.executor.run_chunk(device, model.name, requests, hooks)

    def _frame_finished(
        self, render_id: str, frame: int, out: bytes, seconds: float, total: int, device: str = "",
        algorithm: str = digests.SHA256,
    ) -> None:
        """Store the output, then record and announce it: a frame is done only once its blob is stored."""
        try:
            digest = self.blobs.put(out, algorithm)
        except StoreFull as err:  # the output cannot be kept: the frame fails with the reason, the server stays up
            self._frame_failed(render_id, frame, f"frame {frame}: {err}", time.perf_counter() - seconds)
            return
        self.catalog.frame_done(render_id, frame, digest, len(out), seconds)
        self.metrics.frame_finished(render_id, frame, seconds)
        done = sum(1 for f in self.catalog.frames(render_id) if f.state == cat.F_DONE)
        self.add_event(
            render_id,
            "FRAME_DONE",
            {"frame": frame, "digest": digest, "frames_done": done, "frames_total": total, "device": device},
        )

    def _progress(self, render_id: str, frame: int, scheduler: Scheduler) -> Any:
        """A model's step callback: sees cancellation, and reports steps at most 5 times a second."""
        last = [0.0]

        def progress(step: int, total: int) -> None:
            scheduler.check_cancel(render_id)
            now = time.perf_counter()
            if step >= total or now - last[0] > 0.2:
                last[0] = now
                self.add_event(render_id, "STEP", {"frame": frame, "step": step, "total_steps": total})

        return self.metrics.timed_steps(render_id, progress)

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
