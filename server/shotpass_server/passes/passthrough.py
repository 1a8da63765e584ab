"""The passthrough pass: frames go out as they came in (pipeline and round-trip checks)."""

from __future__ import annotations

from .base import FrameJob, FrameResult, Model, PassContext


class Passthrough(Model):
    name = "passthrough"
    pass_name = "passthrough"
    family = "utility"
    description = "Returns each frame unchanged; for testing the pipeline and for re-wrapping plates."
    licence = "Apache-2.0 (shotpass)"
    working_space = None

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        ctx.progress(0, 1)
        result = FrameResult(rgb=job.rgb, alpha=job.alpha)
        ctx.progress(1, 1)
        return result
