"""Video pickups with handles on the Ray executor: the actor reads the handles, reports only the frames asked,
and gives the frames the local executor gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import pytest
import tiny_pipelines
from test_temporal import _plate, _rgb


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def _server(root: Path, data: str, **settings: Any) -> Any:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    cfg = load_config(root / "shotpass.toml")
    cfg.listen, cfg.data_dir, cfg.chunk_frames = "127.0.0.1:0", root / data, 2
    for key, value in settings.items():
        setattr(cfg, key, value)
    srv = ShotpassServer(cfg)
    srv.start()
    return srv


def _pickup(srv: Any, plate: str, frames: list, handles: int, out: Path) -> Dict[int, np.ndarray]:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, fetch_outputs, handle_frames, plate_frames, submit_render

    spec = RenderSpec(model="tiny-animatediff", prompt="a painted landscape", seed=9,
                      options={"steps": "2", "strength": "0.5"})
    with Client(srv.address) as client:
        sub = submit_render(client, spec, plate_frames(plate, frames), context=handle_frames(plate, frames, handles))
        final = srv.manager.wait_final(sub.render_id, 180)
        assert final.state == "FINISHED", final.error
        assert sorted(f.frame for f in final.frames) == frames
        outputs = fetch_outputs(client, client.get_render(sub.render_id), str(out))
    return {f: _rgb(p) for f, p in outputs.items()}


def test_a_pickup_on_ray_reads_its_handles_like_the_local_executor(ray_cluster, tmp_path):
    root = tmp_path / "models"
    tiny_pipelines.save_animatediff(root / "animatediff")
    (root / "shotpass.toml").write_text(
        '[models.tiny-animatediff]\nkind = "animatediff-v2v"\npath = "animatediff"\ncontext_size = 2\n'
        'context_overlap = 1\n'
    )
    plate = _plate(tmp_path / "p", range(1, 7), h=32, w=48)
    ray = _server(root, "ray", executor="ray", ray_address="local", ray_workers=1)
    try:
        remote = _pickup(ray, plate, [3, 4], 2, tmp_path / "ray-out")
        bare = _pickup(ray, plate, [3, 4], 0, tmp_path / "ray-bare")
        render = ray.catalog.list_renders()[-1]
        devices = {e.body["device"] for e in ray.catalog.events_after(render.id, 0) if e.kind == "FRAME_DONE"}
        assert devices and all(d.startswith("ray:") for d in devices)
    finally:
        ray.stop(grace=0.5)
    local = _server(root, "local")
    try:
        expected = _pickup(local, plate, [3, 4], 2, tmp_path / "local-out")
    finally:
        local.stop(grace=0.5)
    for f in (3, 4):
        assert np.abs(remote[f] - expected[f]).max() < 1e-3, f  # another process: threads may differ (~1e-5)
        assert np.abs(remote[f] - bare[f]).max() > 1e-3, f  # the handles were read on the actor
