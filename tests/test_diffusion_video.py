"""Diffusion video (tiny random-weight pipelines through the production path): AnimateDiff pickups that read
handles and cut back into the full render, and consistent noise across frames for img2img."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tiny_pipelines
import torch  # installed by `make test` (the diffusion extra)
from helpers import run_cli
from test_temporal import _plate, _rgb

FAST = ["--option", "steps=2", "--option", "strength=0.5"]


@pytest.fixture(scope="module")
def vserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    root = tmp_path_factory.mktemp("models")
    tiny_pipelines.save_animatediff(root / "animatediff")
    tiny_pipelines.save_img2img(root / "sd15")
    (root / "shotpass.toml").write_text(
        '[models.tiny-animatediff]\nkind = "animatediff-v2v"\npath = "animatediff"\nsteps = 2\nstrength = 0.5\n'
        'context_size = 2\ncontext_overlap = 1\n\n'
        '[models.tiny-sd15]\nkind = "sd15-img2img"\npath = "sd15"\nsteps = 2\nstrength = 0.5\n'
    )
    torch.set_num_threads(2)  # results differ by ~1e-5 between thread counts
    cfg = load_config(root / "shotpass.toml")
    # Chunks of 2 frames: a video model's clip must not be cut by them.
    cfg.listen, cfg.data_dir, cfg.chunk_frames = "127.0.0.1:0", root / "server-data", 2
    srv = ShotpassServer(cfg)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(grace=0.5)


def _render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> dict:
    code, payload, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json",
                                          "--seed", "9", "--prompt", "a painted landscape", *FAST, *extra])
    assert code == 0, err
    return payload


# ------------------------------------------------------------------ pickups with handles


def test_a_pickup_with_handles_gives_the_full_renders_frames_and_without_them_it_pops(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 9), h=32, w=48)
    video = ["--model", "tiny-animatediff"]
    full = _render(capsys, vserver, plate, tmp_path / "full", *video)
    pickup = _render(capsys, vserver, plate, tmp_path / "pickup", *video, "--frames", "3-6", "--context-handles", "2")
    bare = _render(capsys, vserver, plate, tmp_path / "bare", *video, "--frames", "3-6")

    assert sorted(int(f) for f in pickup["outputs"]) == [3, 4, 5, 6]  # N out = the frames asked, handles not output
    assert sorted(f.name for f in (tmp_path / "pickup").iterdir()) == [f"plate.{f:04d}.exr" for f in range(3, 7)]
    render = vserver.catalog.get_render(pickup["render"])
    assert [f.frame for f in render.frames] == [3, 4, 5, 6] and render.frames_total == 4
    for f in range(3, 7):  # same clip, same windows, same seeds: the pickup cuts back in bit for bit
        assert np.array_equal(_rgb(full["outputs"][str(f)]), _rgb(pickup["outputs"][str(f)])), f
    # Without handles the clip starts at frame 3, so its windows and neighbours differ: the handles were read.
    assert not np.array_equal(_rgb(full["outputs"]["3"]), _rgb(bare["outputs"]["3"]))
    assert not np.array_equal(_rgb(full["outputs"]["6"]), _rgb(bare["outputs"]["6"]))
    # The handles' blobs are the render's: blob GC keeps them while the render exists.
    handles = render.settings["context_frames"]
    assert [h["frame"] for h in handles] == [1, 2, 7, 8]
    assert {h["digest"] for h in handles} <= vserver.catalog.referenced_digests()


def test_handles_stop_at_the_plates_ends_and_a_still_has_none(tmp_path):
    from shotpass_client.jobs import PlateError, handle_frames

    plate = _plate(tmp_path / "p", range(1, 9), h=8, w=8)
    assert sorted(handle_frames(plate, [3, 4, 5, 6], 4)) == [1, 2, 7, 8]
    assert sorted(handle_frames(plate, [1, 2], 2)) == [3, 4]
    assert handle_frames(plate, [3, 4], 0) == {}
    with pytest.raises(PlateError, match="0 or more"):
        handle_frames(plate, [3], -1)
    (tmp_path / "p" / "plate.0002.exr").unlink()  # a hole ends the head handles there
    assert sorted(handle_frames(plate, [4, 5], 3)) == [3, 6, 7, 8]


def test_handles_that_are_not_next_to_the_range_overlap_it_or_repeat_are_refused():
    from shotpass_server.errors import InvalidInput
    from shotpass_server.renders import FrameSpec
    from shotpass_server.temporal.context import MAX_CONTEXT_FRAMES, check_context_frames, clip_around

    frames = {3, 4, 5, 6}
    ok = check_context_frames([FrameSpec(8, name="p.8"), FrameSpec(1, name="p.1"), FrameSpec(2, name="p.2"),
                               FrameSpec(7, name="p.7")], frames)
    assert [s.frame for s in ok] == [1, 2, 7, 8]
    with pytest.raises(InvalidInput, match=r"context frame\(s\) 9-10 are not next to the frames to render \(3-6\)"):
        check_context_frames([FrameSpec(9), FrameSpec(10)], frames)
    with pytest.raises(InvalidInput, match="context frame 4 .* is also a frame to render"):
        check_context_frames([FrameSpec(4, name="p.4")], frames)
    with pytest.raises(InvalidInput, match="context frame 2 is listed twice"):
        check_context_frames([FrameSpec(2), FrameSpec(2)], frames)
    with pytest.raises(InvalidInput, match=f"at most {MAX_CONTEXT_FRAMES}"):
        check_context_frames([FrameSpec(-f) for f in range(MAX_CONTEXT_FRAMES + 1)], frames)
    # A clip reaches across every readable neighbour (handles, the render's finished frames), never past a hole.
    assert clip_around([5, 6], {1, 2, 4, 5, 6, 7, 9}) == [4, 5, 6, 7]


def test_a_per_frame_model_warns_that_it_reads_no_handles(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 5), h=32, w=48)
    out = _render(capsys, vserver, plate, tmp_path / "o", "--model", "tiny-sd15", "--option", "temporal=off",
                  "--frames", "2-3", "--context-handles", "1")
    assert sorted(int(f) for f in out["outputs"]) == [2, 3]
    assert any("reads no context frames" in w for w in out["warnings"]), out["warnings"]
    assert "context_frames" not in vserver.catalog.get_render(out["render"]).settings
