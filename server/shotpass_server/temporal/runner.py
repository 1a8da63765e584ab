"""What the render manager asks about temporal renders: their plan, each frame's inputs, and the QC at the end."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .. import catalog as cat
from ..blobs import BlobStore
from ..errors import InvalidInput
from ..frames.colour import ColourSpaces
from ..frames.exr import ExrImage
from .frames import Plate, cached_plate
from .noise import NoiseWarp, NoiseWarps
from .options import DEFAULT_STRENGTH, temporal_mode
from .plan import SETTINGS_KEY, TemporalPlan, clip_plan, make_plan
from .propagate import Neighbour, SourceFrame, TemporalInputs
from .qc import QcFrame, render_qc
from .vectors import check_vector_header

log = logging.getLogger("shotpass.temporal")
PLANS_KEPT = 4096
ROWS_KEPT = 16  # renders whose frame lists noise=flow keeps at hand


def check_vectors(image: ExrImage, colour_part: int, options: Mapping[str, Any], name: str, frame: int) -> None:
    """At submit, from the header: a temporal render's motion-vector channels must fit the plate (or be absent,
    unless required)."""
    if "temporal" not in options or temporal_mode(dict(options)) == "off" or options.get("flow_source") == "computed":
        return
    found = check_vector_header(image, colour_part, name, frame)
    if found is None and options.get("flow_source") == "vectors":
        raise InvalidInput(
            f"{name} (frame {frame}): flow_source=vectors but the plate has no motion-vector channels (Vector.X/Y, "
            "backward.u/v or motion.x/y); render them, or use flow_source=auto"
        )


class TemporalRenders:
    def __init__(self, catalog: cat.Catalog, blobs: BlobStore, colours: ColourSpaces) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.colours = colours
        # Plans of renders the scheduler asks about; bounded, since cancelled and failed renders never get a QC.
        self._plans: OrderedDict[str, Optional[TemporalPlan]] = OrderedDict()
        self._lock = threading.Lock()
        self._noise = NoiseWarps()
        self._rows: OrderedDict[str, Dict[int, cat.FrameRow]] = OrderedDict()  # input rows, for noise=flow

    # ------------------------------------------------------------ submit

    def plan_settings(
        self, options: Mapping[str, Any], frames: Mapping[int, cat.FrameRow], project: str, shot: str, model: str,
        clip: bool = False,
    ) -> Optional[Dict[str, Any]]:
        """The plan to store with a new render's settings (None: it runs frame by frame).

        ``clip``: a video model, whose contiguous runs are never cut into ``chunk_frames`` pieces."""
        if clip:
            plan = clip_plan(list(frames))
            return None if plan is None else plan.to_settings()
        if "temporal" not in options:
            return None
        keyframes = temporal_mode(dict(options)) == "keyframes"
        previews = self._approved_previews(project, shot, model, frames) if keyframes else {}
        plan = make_plan(options, list(frames), previews)
        return None if plan is None else plan.to_settings()

    def _approved_previews(
        self, project: str, shot: str, model: str, frames: Mapping[int, cat.FrameRow]
    ) -> Dict[int, str]:
        """{frame: output digest} of the shot's approved previews made with this model from the very same plate
        frame (newest wins): an approval of an older plate version is not this frame's keyframe."""
        found: Dict[int, str] = {}
        for r in reversed(self.catalog.list_renders(project, shot)):  # oldest first: newer approvals overwrite
            if r.lane == "preview" and r.approved and r.settings.get("model") == model:
                # list_renders reads renders without frames; a preview has one frame, read here.
                done = [f for f in self.catalog.frames(r.id) if f.state == cat.F_DONE and f.output_digest]
                if len(done) == 1 and done[0].frame in frames:
                    if frames[done[0].frame].input_digest == done[0].input_digest:
                        found[done[0].frame] = done[0].output_digest
        return found

    # ------------------------------------------------------------ scheduling

    def plan(self, render_id: str) -> Optional[TemporalPlan]:
        with self._lock:
            if render_id in self._plans:
                return self._plans[render_id]
        render = self.catalog.get_render(render_id, with_frames=False)
        plan = None
        if render.settings.get(SETTINGS_KEY):
            plan = TemporalPlan.from_settings(render.settings, [f.frame for f in self.catalog.frames(render_id)])
        with self._lock:
            self._plans[render_id] = plan
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem(last=False)
        return plan

    def next_chunk(
        self, render_id: str, pending: Callable[[], List[int]], reserved: set, limit: int
    ) -> Optional[List[int]]:
        """The scheduler's hook: None for a render that runs frame by frame, else the frames it may start now
        (chosen from all its pending frames: keyframes come first wherever they are in the range)."""
        plan = self.plan(render_id)
        if plan is None:
            return None
        return plan.next_chunk(pending(), reserved, limit)

    def forget(self, render_id: str) -> None:
        with self._lock:
            self._plans.pop(render_id, None)
            self._rows.pop(render_id, None)

    # ------------------------------------------------------------ frames

    def inputs(
        self, render: cat.RenderRow, frame: int, options: Mapping[str, Any]
    ) -> Tuple[Optional[TemporalInputs], Dict[str, str]]:
        """A frame's temporal inputs (None: the model runs on it as it is) and its provenance attributes.

        Read fresh from the catalog: the frames it depends on may have finished in this very chunk.
        """
        plan = self.plan(render.id)
        if plan is None or plan.mode == "clip":
            return None, {}
        rows = {f.frame: f for f in self.catalog.frames(render.id)}
        strength = float(options.get("temporal_strength", DEFAULT_STRENGTH))
        use_vectors = options.get("flow_source") != "computed"
        if plan.mode == "flow":
            prev = plan.previous(frame)
            neighbour = self._neighbour(rows, prev) if prev is not None else None
            note = f"flow strength {strength:g}" + (f" from frame {prev}" if neighbour else " (first frame)")
            return TemporalInputs("flow", strength, use_vectors, previous=neighbour), {"temporal": note}
        if plan.is_keyframe(frame):
            if frame in plan.previews:
                digest = plan.previews[frame]
                return TemporalInputs("preview", preset=self.blobs.get(digest)), {}
            before = plan.previous_keyframe(frame) if plan.refine else None
            if before is None:
                return None, {"temporal": "keyframe"}
            # keyframe_refine=flow: the model's keyframe blended with the previous keyframe carried along the flow
            # through every frame between, exactly as a flow range blends with its previous frame.
            neighbour = self._required(rows, before, frame, "refined")
            path = [self._source(rows[f]) for f in reversed(plan.frames) if before < f < frame]
            inputs = TemporalInputs("flow", strength, use_vectors, previous=neighbour, towards_before=path, rejoin=True)
            return inputs, {"temporal": f"keyframe refined by flow strength {strength:g} from keyframe {before}"}
        before, after = plan.neighbours(frame)
        sides = [None if key is None else self._required(rows, key, frame) for key in (before, after)]
        keys = ", ".join(str(k) for k in (before, after) if k is not None)
        lo, hi = before if before is not None else frame, after if after is not None else frame
        towards_before = [self._source(rows[f]) for f in reversed(plan.frames) if lo < f < frame]
        towards_after = [self._source(rows[f]) for f in plan.frames if frame < f < hi]
        inputs = TemporalInputs("keyframes", strength, use_vectors, before=sides[0], after=sides[1],
                                towards_before=towards_before, towards_after=towards_after)
        return inputs, {"temporal": f"propagated from keyframes {keys}"}

    def _required(self, rows: Mapping[int, cat.FrameRow], key: int, frame: int, how: str = "propagated") -> Neighbour:
        """The keyframe a frame is built from, which must have its output by now."""
        neighbour = self._neighbour(rows, key)
        if neighbour is None:
            raise InvalidInput(
                f"frame {frame} is {how} from keyframe {key}, which has no output "
                f"({rows[key].error or rows[key].state}); fix keyframe {key} and render again"
            )
        return neighbour

    def runs_model(self, render_id: str, frame: int) -> bool:
        """Whether the model renders this frame (what inputs() will say, known from the plan alone): every frame
        of a flow plan and the keyframes without an approved preview; propagated frames are warped outputs."""
        plan = self.plan(render_id)
        if plan is None or plan.mode in ("clip", "flow"):
            return True
        return plan.is_keyframe(frame) and frame not in plan.previews

    def _source(self, row: cat.FrameRow) -> SourceFrame:
        return SourceFrame(row.frame, self.blobs.get(row.input_digest), row.input_name or f"frame {row.frame}",
                           row.input_digest)

    def _neighbour(self, rows: Mapping[int, cat.FrameRow], frame: int) -> Optional[Neighbour]:
        row = rows.get(frame)
        if row is None or row.state != cat.F_DONE or not row.output_digest:
            return None
        return Neighbour(frame, self.blobs.get(row.input_digest), row.input_name or f"frame {frame}",
                         row.input_digest, output=self.blobs.get(row.output_digest), output_digest=row.output_digest)

    # ------------------------------------------------------------ noise

    def noise_warp(self, render: cat.RenderRow, frame: int, seed: Callable[[int], int]) -> NoiseWarp:
        """noise=flow: where frame ``frame``'s starting noise comes from, walked along the source's flow from the
        render's first frame (``seed``: a frame's noise seed). Sources only, so any order gives the same warps."""
        rows = self._frame_rows(render.id)
        settings = render.settings
        use_vectors = dict(settings.get("options", {})).get("flow_source") != "computed"

        def plate(f: int) -> Plate:
            row = rows[f]
            return cached_plate(self.blobs.get(row.input_digest), row.input_name or f"frame {f}", row.input_digest, f,
                                settings.get("view", ""), settings["colour_space"], self.colours, use_vectors)

        return self._noise.warp(f"{render.id}:{use_vectors}", sorted(rows), frame, plate, seed, use_vectors)

    def first_row(self, render_id: str) -> cat.FrameRow:
        """The render's first frame (the anchor of cross-frame attention)."""
        rows = self._frame_rows(render_id)
        return rows[min(rows)]

    def _frame_rows(self, render_id: str) -> Dict[int, cat.FrameRow]:
        """The render's frames by number, read once per render while its frames run (not once per frame); the
        input columns are what is used, and those never change."""
        with self._lock:
            rows = self._rows.get(render_id)
        if rows is None:
            rows = {f.frame: f for f in self.catalog.frames(render_id)}
            with self._lock:
                self._rows[render_id] = rows
                while len(self._rows) > ROWS_KEPT:
                    self._rows.popitem(last=False)
        return rows

    # ------------------------------------------------------------ QC

    def quality_check(self, render_id: str, warn: Callable[[str], None]) -> None:
        """Measure a finished render and store the figures; a failure is a warning, never a failed render."""
        try:
            render = self.catalog.get_render(render_id)
            if render.lane == "preview" or not render.frames:
                return
            options = dict(render.settings.get("options", {}))
            frames = [
                QcFrame(f.frame, self.blobs.get(f.input_digest), f.input_name or f"frame {f.frame}", f.input_digest,
                        self.blobs.get(f.output_digest) if f.output_digest else None)
                for f in render.frames
            ]
            qc = render_qc(frames, render.scale, render.settings.get("view", ""), render.settings["colour_space"],
                           self.colours, vectors=options.get("flow_source") != "computed")
            self.catalog.set_qc(render_id, qc.as_dict())
            for problem in qc.contract_errors[:3]:
                warn(f"QC: {problem}")
        except Exception as err:  # noqa: BLE001 - the render's frames are good; only the figure is missing
            log.warning("render %s: QC failed: %s", render_id, err, extra={"render_id": render_id})
            warn(f"QC could not be computed: {err}")
        finally:
            self.forget(render_id)
