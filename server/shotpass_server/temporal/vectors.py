"""Motion-vector channels a renderer wrote into the plate, turned into backward flow in array coordinates.

Flow here is always in pixels of the EXR's data window, x to the right and y *down* (array rows), and
"backward" means: for each pixel of this frame, the offset to where that point was in the previous frame.

Accepted layers (the first one found wins, in this order; a layer prefix such as ``ViewLayer.`` is allowed):

- Blender ``Vector`` pass (``Vector.X/Y/Z/W``, or ``ViewLayer.Vector.X``...): X,Y is the offset from this
  frame to where the point was in the previous frame, Z,W the offset to where it will be in the next, in
  pixels with y up (Blender's image origin is bottom-left). Backward flow = (+X, -Y). Measured on Cycles
  and EEVEE renders of a moving object (bpy 5.0, 5.3): a cube moving right and down on screen has X < 0,
  Y > 0.
- Nuke ``backward.u/v``: the offset from this frame to the previous one, in pixels, y up. Backward flow =
  (u, -v). (``forward.u/v`` alone points the other way and is not used: a backward field is needed.)
- ``motion.x/y`` (also ``motion.u/v``): the motion from the previous frame to this one, in pixels, y up.
  Backward flow = (-x, +y).

Vectors describe one frame step, so they serve pairs of consecutive frame numbers only; other pairs use
flow computed from the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInput
from ..frames.exr import ColourPlane, ExrImage, box

# (layer suffix, x channel, y channel, sign of x, sign of y) giving backward flow in array coordinates.
LAYERS: Sequence[Tuple[str, str, str, float, float]] = (
    ("Vector", "X", "Y", 1.0, -1.0),
    ("backward", "u", "v", 1.0, -1.0),
    ("motion", "x", "y", -1.0, 1.0),
    ("motion", "u", "v", -1.0, 1.0),
)


@dataclass
class MotionVectors:
    backward: np.ndarray  # H x W x 2 float32 on the colour plane's data window
    layer: str  # the channel names used, e.g. "ViewLayer.Vector.X/Y"


def find_motion_vectors(image: ExrImage, plane: ColourPlane, name: str, frame: int) -> Optional[MotionVectors]:
    """The plate's backward motion vectors, or None when it has none; a layer of the wrong size is an error."""
    order = [plane.part_index] + [i for i in range(len(image.parts)) if i != plane.part_index]
    for index in order:
        part = image.parts[index]
        for suffix, cx, cy, sx, sy in LAYERS:
            for channel in part.channels:
                if not (channel == f"{suffix}.{cx}" or channel.endswith(f".{suffix}.{cx}")):
                    continue
                prefix = channel[: -len(cx)]
                other = prefix + cy
                if other not in part.channels:
                    continue
                x, y = part.channels[channel], part.channels[other]
                layer = f"{prefix}{cx}/{cy}"
                expected = plane.rgb.shape[:2]
                window = box(part.header, "dataWindow")
                if x.shape != expected or y.shape != expected or window != plane.data_window:
                    raise InvalidInput(
                        f"{name} (frame {frame}): motion-vector channels {layer} are {x.shape[1]}x{x.shape[0]} "
                        f"(data window {window}) but the colour is {expected[1]}x{expected[0]} (data window "
                        f"{plane.data_window}); write the vectors on the colour's data window, unsubsampled, "
                        "or render with --option flow_source=computed"
                    )
                flow = np.stack([sx * x.astype(np.float32), sy * y.astype(np.float32)], axis=-1)
                if not np.isfinite(flow).all():
                    raise InvalidInput(
                        f"{name} (frame {frame}): motion-vector channels {layer} hold NaN or Inf; fix the "
                        "render or use --option flow_source=computed"
                    )
                return MotionVectors(np.ascontiguousarray(flow), layer)
    return None


def check_vector_header(image: ExrImage, colour_part: int, name: str, frame: int) -> Optional[str]:
    """At submit, from the header alone (no pixels): the layer `find_motion_vectors` will use, or None; a layer
    that is subsampled or sits on another data window than the colour is refused now, naming file and frame."""
    colour_window = box(image.parts[colour_part].header, "dataWindow")
    order = [colour_part] + [i for i in range(len(image.parts)) if i != colour_part]
    for index in order:
        part = image.parts[index]
        for suffix, cx, cy, _, _ in LAYERS:
            for channel in part.channels:
                if not (channel == f"{suffix}.{cx}" or channel.endswith(f".{suffix}.{cx}")):
                    continue
                other = channel[: -len(cx)] + cy
                if other not in part.channels:
                    continue
                layer = f"{channel[: -len(cx)]}{cx}/{cy}"
                window = box(part.header, "dataWindow")
                subsampled = any(part.sampling.get(c, (1, 1, False))[:2] != (1, 1) for c in (channel, other))
                if subsampled or window != colour_window:
                    where = "subsampled" if subsampled else f"{_size(window)} on data window {window}"
                    raise InvalidInput(
                        f"{name} (frame {frame}): motion-vector channels {layer} are {where} but the colour is "
                        f"{_size(colour_window)} on data window {colour_window}; write the vectors on the colour's "
                        "data window, unsubsampled, or render with --option flow_source=computed"
                    )
                return layer
    return None


def _size(window: Tuple[int, int, int, int]) -> str:
    """A data window's size as the messages write it (width x height)."""
    return f"{window[2] - window[0] + 1}x{window[3] - window[1] + 1}"
