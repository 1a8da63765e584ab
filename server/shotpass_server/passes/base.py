"""What every pass model implements, and the option schema it publishes.

A model sees colour as float32 RGB in its own working space (``working_space``; None means the plate's
own values, untouched). The frame pipeline decodes the EXR, converts colour, calls ``process`` and
writes the result back in the plate's space, precision and windows, so models never touch files.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Hashable, List, Optional, Sequence

import numpy as np

from ..errors import InvalidInput

# The working space of image models: sRGB-encoded Rec.709 primaries, display-referred [0, 1].
SRGB_ENCODED = "sRGB Encoded Rec.709 (sRGB)"


@dataclass(frozen=True)
class Option:
    """One option of a model, published to clients as an OptionSpec."""

    name: str
    type: str  # "string" | "int" | "float" | "bool" | "choice"
    default: Any
    description: str
    choices: Sequence[str] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    # Meaning the type cannot say (a style blend, say): raises InvalidInput naming the option, value and
    # what is allowed. Run by parse, so a value the model cannot take is refused at submit, not on every frame.
    check: Optional[Callable[[Any], Any]] = field(default=None, compare=False, repr=False)

    def parse(self, text: str) -> Any:
        """Turn the text a client sent into a typed value, or raise InvalidInput saying what is allowed."""
        try:
            if self.type == "int":
                value: Any = int(text)
            elif self.type == "float":
                value = float(text)
            elif self.type == "bool":
                low = text.strip().lower()
                if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(text)
                value = low in ("1", "true", "yes", "on")
            else:
                value = text
        except ValueError:
            raise InvalidInput(f"option {self.name}={text!r}: expected {self.type}") from None
        if self.type == "choice" and value not in self.choices:
            raise InvalidInput(f"option {self.name}={text!r}: choose one of {', '.join(self.choices)}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not np.isfinite(value):
                raise InvalidInput(f"option {self.name}={text!r}: must be a finite number")
            if self.minimum is not None and value < self.minimum:
                raise InvalidInput(f"option {self.name}={text!r}: must be at least {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise InvalidInput(f"option {self.name}={text!r}: must be at most {self.maximum:g}")
        if self.check is not None:
            self.check(value)
        return value


def parse_options(options: Sequence[Option], given: Dict[str, str], model: str) -> Dict[str, Any]:
    """Validate a client's options against a model's schema; unknown keys are an error."""
    known = {o.name: o for o in options}
    unknown = sorted(set(given) - set(known))
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"model {model} has no option {', '.join(unknown)} (its options: {allowed})")
    values = {o.name: o.default for o in options}
    for key, text in given.items():
        values[key] = known[key].parse(text)
    return values


ProgressFn = Callable[[int, int], None]


def _no_check() -> None:
    return None


class Progress:
    """A model's progress hook: call it with (step, total) after each step. ``checkpoint()``, between the parts
    of one long step (a VAE's tiles), only asks whether the frame is still wanted: it reports nothing. Both
    raise RenderCancelled (or FrameTimedOut) when the frame must stop."""

    def __init__(self, report: ProgressFn, checkpoint: Callable[[], None] = _no_check) -> None:
        self.report = report
        self.checkpoint = checkpoint

    def __call__(self, step: int, total: int) -> None:
        self.report(step, total)


def checkpoint_of(progress: ProgressFn) -> Callable[[], None]:
    """The progress hook's checkpoint, or one that checks nothing for a plain step callback."""
    return progress.checkpoint if isinstance(progress, Progress) else _no_check


@dataclass
class FrameJob:
    """One frame handed to a model. Arrays are C-contiguous float32."""

    frame: int
    rgb: np.ndarray  # H x W x 3, in the model's working space
    alpha: Optional[np.ndarray]  # H x W, or None
    mask: Optional[np.ndarray] = None  # H x W in [0, 1]; 1 = to be filled (inpaint)
    depth: Optional[np.ndarray] = None  # H x W: the plate's own Z channel, for models with uses_depth


@dataclass
class Anchor:
    """The frame a diffusion model's frames attend to (the render's first): its plate and its noise seed."""

    frame: int
    rgb: np.ndarray  # H x W x 3 in the model's working space
    seed: int


@dataclass
class PassContext:
    """Render-wide settings and hooks for a model call."""

    options: Dict[str, Any]
    seed: int  # already combined with the frame number: fixes this frame's noise
    prompt: str = ""
    negative_prompt: str = ""
    reference_rgb: Optional[np.ndarray] = None  # H x W x 3 in the model's working space
    device: str = "cpu"
    # Called after each step; raises RenderCancelled when the render was cancelled.
    progress: ProgressFn = field(default=lambda step, total: None)
    # Called between the parts of a long step (VAE tiles): raises as progress does, reports nothing.
    checkpoint: Callable[[], None] = field(default=_no_check)
    # noise=flow: where each latent cell takes its starting noise from (temporal/noise.py); None: from ``seed``.
    noise: Optional[Any] = None
    anchor: Optional[Anchor] = None  # cross_frame=first: the frame this one attends to (diffusion/cross_frame.py)


@dataclass
class FrameResult:
    rgb: np.ndarray  # (H*scale) x (W*scale) x 3 float32, in the model's working space
    alpha: Optional[np.ndarray] = None  # same size, or None to let the pipeline resize the input alpha
    # Models that keep unmasked pixels: the region they actually filled (1 = filled) when it is not the
    # job's mask (a grown mask); everything outside it is copied back from the plate bit for bit.
    filled: Optional[np.ndarray] = None


class Model(ABC):
    """A loaded-on-demand model behind one pass. Subclasses fill the class attributes."""

    name: ClassVar[str]
    pass_name: ClassVar[str]
    family: ClassVar[str]  # "starter" | "classical" | "utility" | "descriptive" | "instruction"
    description: ClassVar[str]
    licence: ClassVar[str] = ""
    scale: ClassVar[int] = 1
    needs_mask: ClassVar[bool] = False
    uses_reference: ClassVar[bool] = False  # needs a reference frame (submit fails without one)
    accepts_reference: ClassVar[bool] = False  # uses the shot's reference when there is one
    uses_depth: ClassVar[bool] = False  # wants the plate's Z channel in FrameJob.depth when it has one
    uses_prompt: ClassVar[bool] = False
    working_space: ClassVar[Optional[str]] = SRGB_ENCODED
    # Pixels where the mask is 0 are copied back from the plate bit for bit (inpaint).
    keeps_unmasked: ClassVar[bool] = False
    # Sees the plate as one clip (e.g. video diffusion): every frame must have the same size.
    needs_uniform_size: ClassVar[bool] = False
    options: ClassVar[List[Option]] = []

    @property
    def frame_contract(self) -> str:
        size = "same size" if self.scale == 1 else f"{self.scale}x size (both windows x{self.scale})"
        return f"one output frame per input frame number, {size}"

    def validate_plate(self, colour: Any, options: Dict[str, Any], name: str, frame: int) -> None:
        """Refuse at submit a frame this model cannot render with these options (raise InvalidInput naming
        ``name`` and ``frame``). ``colour`` is the frames.header.ColourInfo of the plate: its header only
        (part, channels with their types and sampling, size), never pixels."""
        return None  # most models take any frame that decodes

    @abstractmethod
    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        """Run the model on one frame; call ctx.progress(step, total) between steps."""

    # Batching across frames: a worker hands process_batch up to batch_size() consecutive frames whose
    # batch_key() is equal. A model that batches returns, for each frame, its unbatched result (up to the
    # runtime's floating-point differences between batch sizes); by default every frame runs alone.

    def batch_size(self, options: Dict[str, Any], device: str) -> int:
        """How many frames of a render with these options may go to process_batch at once (1: no batching)."""
        return 1

    def batch_key(self, job: FrameJob, ctx: PassContext) -> Optional[Hashable]:
        """Frames may share a batch only when their keys are equal; None: this frame runs alone."""
        return None

    def process_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        """Several frames at once; one result per job, in order. Each ctx reports and cancels its own frame."""
        return [self.process(job, ctx) for job, ctx in zip(jobs, ctxs)]


class ClipModel(Model):
    """A model that sees several consecutive frames together (video diffusion with temporal layers).

    The render hands it each chunk of contiguous pending frames at once (the server's ``chunk_frames``);
    it still returns exactly one result per job, in order, so N frames in = N frames out by number.
    Each context carries that frame's own seed; ``ctxs[0].progress`` reports the clip's steps.
    """

    @abstractmethod
    def process_clip(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        """Run the model on consecutive frames; one FrameResult per job, in order."""

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        return self.process_clip([job], [ctx])[0]


def configured_threads() -> int:
    """CPU threads per model runtime from SHOTPASS_THREADS (0: the runtime's own default)."""
    text = os.environ.get("SHOTPASS_THREADS", "").strip()
    try:
        return max(0, int(text)) if text else 0
    except ValueError:
        return 0
