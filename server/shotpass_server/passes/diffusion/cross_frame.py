"""Cross-frame (reference-frame) attention for img2img: ``cross_frame=first``.

A frame is denoised in one batch beside the render's first frame, its anchor, which starts every time from its
own latents and its own noise, so every frame of the render sees the same anchor at every step. In each
self-attention layer of the UNet a frame's keys and values are the anchor's tokens followed by its own
(the cross-frame attention of Text2Video-Zero, keeping the frame's own tokens): shapes and textures the anchor
settles on are there for every frame to take up, which steadies a restyle across a shot. The anchor's own row
attends to its tokens twice over, which leaves the attention unchanged: it denoises as it would alone.

Imported when a render asks for it (it needs torch and diffusers at import).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from diffusers.models.attention_processor import AttnProcessor2_0

ROWS_PER_FRAME = 2  # the batch holds (anchor, frame) pairs: one pair, or two with classifier-free guidance


class AnchorAttention(AttnProcessor2_0):
    """Self-attention whose keys and values hold the anchor's tokens (the first row of each pair) before the row's
    own; cross-attention (to the prompt) is left as it is."""

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: Any = None,
                 *args: Any, **kwargs: Any) -> torch.Tensor:
        if encoder_hidden_states is None and hidden_states.ndim == 3:
            rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
            anchors = hidden_states[rows - rows % ROWS_PER_FRAME]
            encoder_hidden_states = torch.cat([anchors, hidden_states], dim=1)
        return super().__call__(attn, hidden_states, encoder_hidden_states, *args, **kwargs)


@contextmanager
def anchored(unet: Any) -> Iterator[None]:
    """For one pipeline call, the UNet's self-attention layers (``attn1``) attend to the anchor too; their own
    processors come back afterwards (the pipeline is cached and serves other renders)."""
    before = dict(unet.attn_processors)
    unet.set_attn_processor({name: AnchorAttention() if name.endswith("attn1.processor") else proc
                             for name, proc in before.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(before)
