"""The host-agnostic background render: worker thread + queue, drained on the caller's thread."""

from __future__ import annotations

import os

from shotpass_client.background import DONE, FAILED, PROGRESS, SUBMITTED, BackgroundRender, JobRequest, drain_updates
from shotpass_client.jobs import RenderSpec, plate_frames


def _drain_all(job: BackgroundRender) -> list:
    seen: list = []
    job.join(120)
    drain_updates(job.updates, seen.append)
    return seen


def test_background_render_reports_progress_and_writes_aligned_outputs(server, beachball, tmp_path):
    plate = plate_frames(beachball, [2, 3, 4])
    job = BackgroundRender(JobRequest(server.address, RenderSpec(pass_name="passthrough"), str(tmp_path / "o"),
                                      plate=plate)).start()
    updates = _drain_all(job)
    kinds = [u.kind for u in updates]
    assert kinds[0] == "uploading" and SUBMITTED in kinds and kinds[-1] == DONE
    assert [u.frames_done for u in updates if u.kind == PROGRESS and u.frames_done >= 0] == [1, 2, 3]
    done = updates[-1]
    assert sorted(done.outputs) == [2, 3, 4]
    assert os.path.basename(done.outputs[3]) == "singlepart.0003.exr"
    assert done.bytes_uploaded > 0


def test_background_render_reports_a_down_server_as_one_failure(tmp_path):
    job = BackgroundRender(JobRequest("127.0.0.1:9", RenderSpec(pass_name="passthrough"), str(tmp_path))).start()
    updates = _drain_all(job)
    assert [u.kind for u in updates] == [FAILED]
    assert "cannot reach a shotpass server at 127.0.0.1:9" in updates[0].message


def test_background_render_cancel_reports_failed_with_frames_kept(server, beachball, tmp_path):
    job = BackgroundRender(JobRequest(server.address, RenderSpec(pass_name="stylize"), str(tmp_path / "o"),
                                      plate=plate_frames(beachball))).start()
    seen: list = []
    while job.running and not any(u.kind == PROGRESS and u.frames_done > 0 for u in seen):
        drain_updates(job.updates, seen.append)
        job.join(0.05)
    job.cancel()
    seen += _drain_all(job)
    assert seen[-1].kind == FAILED and "cancelled" in seen[-1].message
    assert 1 <= seen[-1].frames_done < 8
    assert not (tmp_path / "o").exists()
