"""Temporal renders on the Ray executor: in order, one frame at a time per actor, the same frames as locally."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator

import numpy as np
import pytest
from test_temporal import _pixels, _plate


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()


def _server(data: Path, **settings: object) -> object:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=data, chunk_frames=2, **settings))
    srv.start()
    return srv


def _render(srv: object, plate: str, options: Dict[str, str]) -> Dict[int, np.ndarray]:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    with Client(srv.address) as client:  # type: ignore[attr-defined]
        sub = submit_render(client, RenderSpec(pass_name="stylize", options=options, seed=3), plate_frames(plate))
    final = srv.manager.wait_final(sub.render_id, 120)  # type: ignore[attr-defined]
    assert final.state == "FINISHED", final.error
    assert final.qc and final.qc["flicker_ratio"] > 0
    return _pixels(srv, sub.render_id)


@pytest.mark.parametrize("options", [{"temporal": "flow"}, {"temporal": "keyframes", "keyframe_every": "3"},
                                     {"temporal": "keyframes", "keyframe_every": "3", "keyframe_refine": "flow"}])
def test_temporal_renders_on_ray_workers_match_the_local_executor(ray_cluster, tmp_path, options):
    plate = _plate(tmp_path / "p", range(1, 8))
    ray = _server(tmp_path / "ray", executor="ray", ray_address="local", ray_workers=2)
    try:
        remote = _render(ray, plate, options)
        devices = {e.body["device"] for e in ray.catalog.events_after(  # type: ignore[attr-defined]
            ray.catalog.list_renders()[0].id, 0) if e.kind == "FRAME_DONE"}  # type: ignore[attr-defined]
        assert devices and all(d.startswith("ray:") for d in devices)
    finally:
        ray.stop(grace=0.5)  # type: ignore[attr-defined]
    local = _server(tmp_path / "local")
    try:
        expected = _render(local, plate, options)
    finally:
        local.stop(grace=0.5)  # type: ignore[attr-defined]
    assert sorted(remote) == sorted(expected) == list(range(1, 8))
    for f in expected:
        assert np.array_equal(remote[f], expected[f]), f
