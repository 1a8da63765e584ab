"""The ``temporal`` render options every per-frame model publishes (stylize, inpaint, upscale).

Clip models (video diffusion) see their frames together and have their own temporal layers; utility
models (the passthrough) have nothing to keep steady. Defaults: ``flow`` for stylize, whose per-frame output boils
(10-18x the footage's own flicker on real plates); ``off`` for inpaint and upscale, which follow the plate
closely already, so blending would only soften detail (``flow`` is there when a fill crawls).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from ..passes.base import ClipModel, Model, Option

MODES = ("off", "flow", "keyframes")
FLOW_SOURCES = ("auto", "vectors", "computed")
KEYFRAME_REFINES = ("off", "flow")
DEFAULT_MODE = {"stylize": "flow"}
# Where the motion is trusted, 0.92 of each frame is the previous output carried along it: the model's own
# frame-to-frame boil drops ~10x, and the 0.08 keeps it following changes in the plate within a few frames.
DEFAULT_STRENGTH = 0.92


def temporal_options(pass_name: str) -> List[Option]:
    return [
        Option("temporal", "choice", DEFAULT_MODE.get(pass_name, "off"),
               "Temporal consistency over a frame range: off = each frame on its own; flow = each output blended "
               "with the previous output warped along the plate's motion (uncovered content from the current "
               "frame); keyframes = the model runs on keyframes only, frames between are warped from both "
               "neighbouring keyframes", choices=MODES),
        Option("temporal_strength", "float", DEFAULT_STRENGTH,
               "flow: weight of the warped previous output where the motion is trusted (0 = off, 1 = hold)",
               minimum=0.0, maximum=1.0),
        Option("keyframe_every", "int", 8,
               "keyframes: a keyframe every N frames of the range (the first and the last frame always are)",
               minimum=1, maximum=100),
        Option("keyframes", "string", "",
               "keyframes: explicit keyframe numbers (e.g. 1001,1010,1020-1040x10) instead of every N; "
               "approved previews of the shot made with this model are keyframes too", ),
        Option("keyframe_refine", "choice", "off",
               "keyframes: off = every keyframe exactly as the model made it; flow = each keyframe after the first "
               "is blended with the previous keyframe carried along the plate's motion (temporal_strength), so "
               "neighbouring keyframes agree and the frames between flicker far less; keyframes then run one "
               "after another and only the first is exactly the model's", choices=KEYFRAME_REFINES),
        Option("flow_source", "choice", "auto",
               "Motion between frames: auto = the plate's motion-vector channels (Blender Vector, Nuke "
               "backward.u/v, motion.x/y) when present, else computed from the plate (OpenCV DIS); "
               "vectors = require channels; computed = always from the pixels", choices=FLOW_SOURCES),
    ]


TEMPORAL_NAMES = frozenset(o.name for o in temporal_options(""))


def supports_temporal(model: Model) -> bool:
    """Image models that run frame by frame; utility models (passthrough, pipeline checks) have nothing to steady."""
    return not isinstance(model, ClipModel) and model.family != "utility"


NOISE_MODES = ("per-frame", "fixed")  # what every diffusion model takes; models that warp noise add "flow"
NOISE_HELP = {
    "per-frame": "per-frame = fixed by (seed, frame number), new on every frame",
    "fixed": "fixed = the same noise on every frame, seeded once per render (steadier texture on a steady plate; "
             "on a moving camera it stays put on screen while the image moves)",
    "flow": "flow = each frame's noise carried from the previous frame along the plate's motion (flow_source), "
            "fresh where content is uncovered: the texture moves with the picture",
}
DIFFUSION_FAMILIES = ("descriptive", "instruction")


def noise_option(modes: Sequence[str]) -> Option:
    return Option("noise", "choice", "per-frame",
                  "Starting noise of a diffusion model: " + "; ".join(NOISE_HELP[m] for m in modes), choices=modes)


def add_temporal_options(model: Model) -> None:
    """Give a per-frame model the temporal options (once; models registered twice are refused anyway)."""
    if not supports_temporal(model) or any(o.name in TEMPORAL_NAMES for o in model.options):
        return
    modes = tuple(getattr(model, "noise_modes", NOISE_MODES))
    extra = [noise_option(modes)] if model.family in DIFFUSION_FAMILIES else []
    model.options = [*model.options, *temporal_options(model.pass_name), *extra]  # type: ignore[misc]


def noise_frame(options: Dict[str, Any], frame: int) -> int:
    """The frame number a frame's noise seed is made from: its own, or 0 for every frame with noise=fixed."""
    return 0 if options.get("noise") == "fixed" else frame


def temporal_mode(options: Dict[str, Any]) -> str:
    return str(options.get("temporal", "off"))
