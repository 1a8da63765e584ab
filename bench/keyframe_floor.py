"""How low `keyframes` flicker can go while keyframes stay the model's own, estimated from a per-frame render.

Two keyframes a and b are independent model runs. Follow a pixel along the motion from a to b: the frames
between must get from keyframe a's value to keyframe b's, so the warping errors of the b - a frame pairs on
the way add up to at least their difference (the triangle inequality), however the frames between are made.
The keyframes' disagreement D(a, b) is measured as the flicker QC measures (temporal/qc.py): keyframe a's
output carried onto frame b along the chained source flow, mean absolute difference to keyframe b's output
over the pixels the chained flow trusts (both keyframes see them), display-referred and clipped. The QC
averages each pair over the pixels *its* flow trusts, more of them (some only one keyframe sees, which
cost no transition), so the floor counts D's sum over the chain-trusted pixels divided by the number of
pixels the QC measures on frame b. Spread over the range's pairs, it gives the flicker ratio no propagation
can beat with those keyframes, in the QC's units: ``(sum of that over the segments / pairs + EPSILON) /
(source error + EPSILON)``. It is an estimate, not an exact bound: the trusted pixels move along the range.

Also estimated: the best keyframes the model could be given at the same spacing, chosen (dynamic programming
over every frame's per-frame output) for the least total disagreement, gaps at most ``every``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from shotpass_server.frame_pipeline import to_canvas
from shotpass_server.frames.colour import ColourSpaces
from shotpass_server.frames.exr import Box, decode_exr, select_colour
from shotpass_server.temporal.flow import chain_flow, pair_flow, warp
from shotpass_server.temporal.frames import Plate, display_referred, load_plate
from shotpass_server.temporal.qc import EPSILON


@dataclass
class Floor:
    every: int
    keyframes: List[int]
    disagreement: float  # mean D(a, b) of neighbouring keyframes over the source error (x the footage's own step)
    floor: float  # the flicker ratio no propagation between these keyframes can go below (QC units)
    best_keyframes: List[int]
    best_floor: float


def keyframe_floor(srv: object, render_id: str, every: int) -> Floor:
    """The floor of a `keyframes` render every ``every`` frames, from the per-frame render ``render_id``."""
    row = srv.catalog.get_render(render_id)  # type: ignore[attr-defined]
    colours = ColourSpaces()
    space, view = row.settings["colour_space"], row.settings.get("view", "")
    plates: Dict[int, Plate] = {}
    outputs: Dict[int, Tuple[Box, np.ndarray]] = {}
    for f in row.frames:
        source = srv.blobs.get(f.input_digest)  # type: ignore[attr-defined]
        plates[f.frame] = load_plate(source, f.input_name, f.input_digest, f.frame, view, space, colours)
        plane = select_colour(decode_exr(srv.blobs.get(f.output_digest), f"output {f.frame}"), None)  # type: ignore[attr-defined]
        outputs[f.frame] = (plane.data_window, np.clip(display_referred(plane, space, colours), 0.0, 1.0))
    frames = sorted(plates)
    source_error = float(row.qc["source_error"])
    cache: Dict[Tuple[int, int], Tuple[float, float]] = {}

    def measure(a: int, b: int) -> Tuple[float, float]:
        """(D(a, b), its sum over the chain-trusted pixels / the pixels the QC measures on frame b)."""
        if (a, b) not in cache:
            flow = chain_flow([plates[f] for f in frames if a <= f <= b][::-1])
            out_a = to_canvas(outputs[a][1], outputs[a][0], flow.canvas, 0.0)
            out_b = to_canvas(outputs[b][1], outputs[b][0], flow.canvas, 0.0)
            diff = float((np.abs(out_b - warp(out_a, flow.backward)).mean(axis=-1) * flow.valid).sum())
            measured = float(pair_flow(plates[frames[frames.index(b) - 1]], plates[b]).valid.sum())
            weight = float(flow.valid.sum())
            cache[(a, b)] = (diff / weight if weight else 0.0, diff / measured if measured else 0.0)
        return cache[(a, b)]

    def floor_of(keys: Sequence[int]) -> float:
        total = sum(measure(a, b)[1] for a, b in zip(keys, keys[1:]))
        return (total / (len(frames) - 1) + EPSILON) / (source_error + EPSILON)

    keys = sorted(set(frames[::every]) | {frames[-1]})
    mean_d = float(np.mean([measure(a, b)[0] for a, b in zip(keys, keys[1:])])) / source_error
    best = _least_disagreement(frames, every, lambda a, b: measure(a, b)[1])
    return Floor(every, keys, mean_d, floor_of(keys), best, floor_of(best))


def _least_disagreement(frames: Sequence[int], every: int, disagreement: Callable[[int, int], float]) -> List[int]:
    """Keyframes from the first frame to the last, gaps at most ``every``, with the least summed disagreement."""
    cost = [0.0] + [float("inf")] * (len(frames) - 1)
    came = [0] * len(frames)
    for j in range(1, len(frames)):
        for i in range(max(0, j - every), j):
            c = cost[i] + disagreement(frames[i], frames[j])
            if c < cost[j]:
                cost[j], came[j] = c, i
    keys, j = [frames[-1]], len(frames) - 1
    while j > 0:
        j = came[j]
        keys.append(frames[j])
    return keys[::-1]
