"""The review pages' HTTP API on a real server (gRPC and review pages in one process, loopback ports):
every endpoint, with missing and bad tokens, bad ids, another project's renders and blobs, viewers, CSRF.

alice owns project show-a (v1, and v2 chained from v1); vera is a viewer of show-a; bob owns show-b, where a
slow render runs; admin sees everything.
"""

from __future__ import annotations

import io
import signal
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import pytest
from helpers import serve_process, write_pki
from PIL import Image
from web_fixtures import Http, add_member, add_user, tiny_plate, web_server

from shotpass_client import digests
from shotpass_server.blobs import sha256_hex

SLOW = {"seconds": "4.0"}  # per frame: bob's render is still running while the tests look at it


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    tmp = tmp_path_factory.mktemp("web-api")
    data = tmp / "server-data"
    tokens = {name: add_user(data, name) for name in ("alice", "bob", "vera")}
    tokens["admin"] = add_user(data, "admin", "--admin")
    srv = web_server(data)
    try:
        plate = plate_frames(tiny_plate(tmp / "plate", range(1001, 1004), fps=(25, 1)))
        with Client(srv.address, tokens["alice"]) as alice:
            v1 = submit_render(alice, RenderSpec(project="show-a", shot="sh010", pass_name="passthrough"), plate)
            list(alice.watch(v1.render_id))
            v2 = submit_render(alice, RenderSpec(project="show-a", shot="sh010", model="test-slow-probe",
                                                 options={"seconds": "0"}, label="probe"),
                               parent_render=v1.render_id)
            list(alice.watch(v2.render_id))
        add_member(data, "show-a", "vera", "--role", "viewer")
        with Client(srv.address, tokens["bob"]) as bob:
            slow = submit_render(bob, RenderSpec(project="show-b", shot="sh020", model="test-slow-probe",
                                                 options=SLOW), plate)
        yield {"srv": srv, "tokens": tokens, "data": data, "plate": plate, "v1": v1.render_id,
               "v2": v2.render_id, "bob": slow.render_id, "url": srv.web.url}
    finally:
        srv.stop(grace=0.5, work_grace=0.5)


def user(site: Dict[str, Any], name: str) -> Http:
    client = Http(site["url"], site["tokens"][name])
    client.session()
    return client


def test_no_token_is_401_and_pages_send_the_browser_to_login(site: Dict[str, Any]) -> None:
    anon = Http(site["url"])
    for path in ("/api/session", "/api/queue", "/api/shots", "/api/stats", f"/api/renders/{site['v1']}",
                 f"/api/renders/{site['v1']}/frames/1001/output.jpg", "/api/queue/events"):
        answer = anon.get(path)
        assert answer.status == 401, path
        assert "token" in answer.json()["error"]
    page = anon.get(f"/renders/{site['v1']}")
    assert page.status == 303
    assert page.headers["location"] == f"/login?next=%2Frenders%2F{site['v1']}"
    assert Http(site["url"], "sp_not-a-real-token").get("/api/queue").status == 401


def test_login_sets_a_strict_httponly_cookie_and_needs_the_csrf_token(site: Dict[str, Any]) -> None:
    browser = Http(site["url"])
    form = browser.get("/login?next=/shots")
    assert form.status == 200 and 'name="token"' in form.text
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert browser.post_form("/login", {"token": site["tokens"]["alice"]}).status == 403  # no CSRF token
    bad = browser.post_form("/login", {"token": "sp_wrong", "csrf_token": csrf, "next": "/shots"})
    assert bad.status == 401 and "not valid" in bad.text
    ok = browser.post_form("/login", {"token": site["tokens"]["alice"], "csrf_token": csrf,
                                      "next": "https://elsewhere.example/"})
    assert ok.status == 303 and ok.headers["location"] == "/queue"  # never an open redirect
    cookie = next(c for c in ok.cookies if c.startswith("shotpass_session="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert browser.session()["user"] == "alice"
    assert browser.get("/queue").status == 200
    # Logging out needs the CSRF token as well, and ends the session.
    assert browser.post_form("/logout", {}).status == 403
    out = browser.post_form("/logout", {"csrf_token": browser.csrf})
    assert out.status == 303 and "shotpass_session" not in browser.cookies
    assert browser.get("/api/session").status == 401


def test_session_answers_who_and_what_the_server_offers(site: Dict[str, Any]) -> None:
    alice = user(site, "alice")
    data = alice.session()
    assert (data["user"], data["admin"], data["single_user"], data["projects"]) == ("alice", False, False, ["show-a"])
    assert data["features"] == {"cancel": True, "suspend": True, "resume": True, "reorder": True}
    assert {"display": "sRGB - Display", "view": "ACES 2.0 - SDR 100 nits (Rec.709)"} == data["views"][0]
    assert user(site, "admin").session()["projects"] is None


def test_queue_shows_only_the_callers_projects_with_per_frame_state(site: Dict[str, Any]) -> None:
    def queued(name: str) -> Dict[str, Any]:
        answer = user(site, name).get("/api/queue")
        assert answer.status == 200
        return {r["id"]: r for lane in answer.json()["lanes"] for r in lane["running"] + lane["waiting"]}

    assert site["bob"] not in queued("alice")
    mine = queued("bob")[site["bob"]]
    assert (mine["user"], mine["project"], mine["lane"], mine["may_change"]) == ("bob", "show-b", "render", True)
    assert [f["frame"] for f in mine["frames"]] == [1001, 1002, 1003]
    assert queued("admin")[site["bob"]]["user"] == "bob"


def test_shots_and_a_shot_with_lineage(site: Dict[str, Any]) -> None:
    alice = user(site, "alice")
    shots = alice.get("/api/shots").json()["shots"]
    assert [(s["project"], s["shot"], s["renders"]) for s in shots] == [("show-a", "sh010", 2)]
    shot = alice.get("/api/shots/show-a/sh010").json()
    assert [v["version"] for v in shot["versions"]] == [1, 2]
    assert shot["lineage"][0]["id"] == site["v1"] and shot["lineage"][0]["children"][0]["id"] == site["v2"]
    assert shot["versions"][0]["thumb_frame"] == 1001
    assert alice.get("/api/shots/show-b/sh020").status == 403
    assert alice.get("/api/shots/show-a/no-such-shot").status == 404
    assert user(site, "vera").get("/api/shots/show-a/sh010").json()["may_change"] is False


def test_render_detail_bad_ids_and_foreign_renders(site: Dict[str, Any]) -> None:
    alice = user(site, "alice")
    r = alice.get(f"/api/renders/{site['v1']}").json()
    assert (r["state"], r["fps"], r["frames_done"], r["frames_total"]) == ("FINISHED", 25.0, 3, 3)
    assert r["qc"]["flicker_ratio"] == pytest.approx(1.0)  # the server's QC: a passthrough is as steady as the plate
    assert r["qc"]["nonfinite_outputs"] == 0 and r["qc"]["contract_errors"] == []
    assert [s["id"] for s in r["siblings"]] == [site["v1"], site["v2"]]
    assert r["frames"][0]["source"] and r["frames"][0]["output"]
    assert alice.get("/api/renders/%2E%2E%20x").status == 400
    assert alice.get("/api/renders/" + "r" * 65).status == 400
    assert alice.get("/api/renders/r-000000000000").status == 404
    assert alice.get(f"/api/renders/{site['bob']}").status == 404  # as a missing one
    assert alice.get(f"/renders/{site['bob']}").status == 404  # the page too
    assert alice.get(f"/renders/{site['v1']}").status == 200


def test_settings_diff_between_versions(site: Dict[str, Any]) -> None:
    alice = user(site, "alice")
    diff = alice.get(f"/api/renders/{site['v1']}/diff/{site['v2']}").json()
    changes = {c["key"]: (c["a"], c["b"]) for c in diff["changes"]}
    assert changes["model"] == ("passthrough", "test-slow-probe")
    assert changes["parent"] == ("", site["v1"])
    assert changes["options.seconds"] == (None, "0")
    assert alice.get(f"/api/renders/{site['v1']}/diff/{site['bob']}").status == 404
    assert alice.get(f"/api/renders/{site['v1']}/diff/no%20pe").status == 400


def test_review_needs_csrf_membership_and_a_member_role(site: Dict[str, Any]) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render

    alice = user(site, "alice")
    path = f"/api/renders/{site['v1']}/review"
    assert alice.post(path, {"approved": True}, csrf="").status == 403
    assert alice.post(path, {"approved": True}, csrf="f" * 64).status == 403
    done = alice.post(path, {"approved": True, "rating": 4, "pinned": True, "note": "client likes it"})
    assert done.status == 200, done.text
    stored = site["srv"].catalog.get_render(site["v1"])
    assert (stored.approved, stored.rating, stored.pinned, stored.note) == (True, 4, True, "client likes it")
    assert alice.post(path, {"rating": 9}).status == 400
    assert alice.post(path, {"approved": "yes"}).status == 400
    assert alice.post(path, {"colour": 1}).status == 400
    assert alice.request("POST", path, body=b"{not json", headers={"X-CSRF-Token": alice.csrf}).status == 400
    assert alice.post(f"/api/renders/{site['bob']}/review", {"approved": True}).status == 404
    assert alice.post("/api/renders/r-000000000000/review", {"approved": True}).status == 404
    # A viewer reads but does not review, here and over gRPC alike.
    vera = user(site, "vera")
    assert vera.get(f"/api/renders/{site['v1']}").json()["may_change"] is False
    refused = vera.post(path, {"approved": False})
    assert refused.status == 403 and "only view" in refused.json()["error"]
    with Client(site["srv"].address, site["tokens"]["vera"]) as grpc_vera:
        with pytest.raises(ClientError) as err:
            grpc_vera.review(site["v1"], approved=False)
        assert err.value.code == "PERMISSION_DENIED"
        with pytest.raises(ClientError) as err:
            submit_render(grpc_vera, RenderSpec(project="show-a", shot="sh010", pass_name="passthrough"),
                          site["plate"])
        assert err.value.code == "PERMISSION_DENIED" and "only view" in str(err.value)
    assert site["srv"].catalog.get_render(site["v1"]).approved is True


def test_frames_as_display_proxies_and_as_stored_exrs(site: Dict[str, Any]) -> None:
    alice = user(site, "alice")
    base = f"/api/renders/{site['v1']}/frames/1001"
    thumb = alice.get(f"{base}/output.jpg?size=thumb")
    assert thumb.status == 200 and thumb.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.body))
    assert image.size == (64, 36)  # the tiny plate's display window, smaller than a thumbnail
    # The proxy is the display/view transform of the EXR's pixels, as OCIO computes it (JPEG's error aside).
    expected = _display_referred(Path(site["plate"][1001]), "sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")
    got = np.asarray(image.convert("RGB"), dtype=np.float32)
    assert np.abs(got - expected).mean() < 2.0 and np.abs(got - expected).max() < 24
    raw = alice.get(f"{base}/output.exr?display=x")
    assert raw.body[:4] == b"\x76\x2f\x31\x01" and "attachment" in raw.headers["content-disposition"]
    output = alice.get(f"/api/renders/{site['v1']}").json()["frames"][0]["output"]
    assert digests.of_bytes(raw.body, digests.algorithm_of(output)) == output
    source = alice.get(f"{base}/source.exr")
    assert source.body == Path(site["plate"][1001]).read_bytes()  # the plate as uploaded, byte for byte
    # Another view makes another proxy (and it is kept: the second ask is served from the store).
    raw_view = alice.get(f"{base}/output.jpg?size=thumb&display=sRGB%20-%20Display&view=Raw")
    assert raw_view.status == 200 and raw_view.body != thumb.body
    expected_raw = _display_referred(Path(site["plate"][1001]), "sRGB - Display", "Raw")
    got_raw = np.asarray(Image.open(io.BytesIO(raw_view.body)).convert("RGB"), dtype=np.float32)
    assert np.abs(got_raw - expected_raw).mean() < 2.0
    assert alice.get(f"{base}/output.jpg?size=thumb&display=sRGB%20-%20Display&view=Raw").body == raw_view.body
    assert alice.get(f"{base}/output.jpg?view=Nope").status == 400
    assert alice.get(f"{base}/output.jpg?size=huge").status == 400
    assert alice.get(f"{base}/output.png").status == 404
    assert alice.get(f"/api/renders/{site['v1']}/frames/99/output.jpg").status == 404
    assert alice.get(f"/api/renders/{site['v1']}/frames/x/output.jpg").status == 400
    assert alice.get(f"/api/renders/{site['bob']}/frames/1001/source.jpg").status == 404
    assert alice.get(f"/api/renders/{site['bob']}/frames/1001/source.exr").status == 404


def _display_referred(path: Path, display: str, view: str) -> np.ndarray:
    """8-bit display values of a (scene-linear ACEScg) EXR through OCIO's display/view transform."""
    import OpenEXR
    import PyOpenColorIO as ocio

    with OpenEXR.File(str(path), separate_channels=True) as f:
        channels = f.parts[0].channels
        rgb = np.ascontiguousarray(np.stack([channels[c].pixels for c in "RGB"], -1), dtype=np.float32)
    config = ocio.Config.CreateFromFile("ocio://cg-config-latest")
    transform = ocio.DisplayViewTransform(src="ACEScg", display=display, view=view)
    config.getProcessor(transform).getDefaultCPUProcessor().applyRGB(rgb)
    return np.clip(np.rint(rgb * 255.0), 0, 255)


def test_blobs_by_digest_follow_the_download_rule(site: Dict[str, Any]) -> None:
    alice, admin = user(site, "alice"), user(site, "admin")
    mine = alice.get(f"/api/renders/{site['v1']}").json()["frames"][1]["output"]
    assert digests.algorithm_of(mine) == digests.BLAKE3  # outputs named in the client's digest: served by it too
    assert alice.get(f"/api/blobs/{mine}.jpg").status == 200
    assert alice.get(f"/api/blobs/{mine}.exr").status == 200
    bobs = admin.get(f"/api/renders/{site['bob']}").json()["frames"][0]["source"]
    # bob's plate has the same bytes as alice's (one tiny plate): a digest alice reaches is hers to see.
    assert alice.get(f"/api/blobs/{bobs}.jpg").status == 200
    secret = sha256_hex(b"not in any of alice's projects")
    assert alice.get(f"/api/blobs/{secret}.jpg").status == 403  # the same answer whether stored or not
    assert admin.get(f"/api/blobs/{secret}.jpg").status == 404
    assert alice.get(f"/api/blobs/{digests.of_bytes(b'not hers', digests.BLAKE3)}.exr").status == 403
    assert alice.get("/api/blobs/abc.jpg").status == 400
    assert alice.get(f"/api/blobs/{mine}.png").status == 404


def test_blob_of_another_project_is_refused(site: Dict[str, Any], tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    other = plate_frames(tiny_plate(tmp_path / "other", range(1, 2), size=(32, 20)))
    with Client(site["srv"].address, site["tokens"]["bob"]) as bob:
        sub = submit_render(bob, RenderSpec(project="show-b", shot="sh030", pass_name="passthrough"), other)
        list(bob.watch(sub.render_id))
        digest = bob.get_render(sub.render_id).frames[0].output_digest
    alice = user(site, "alice")
    assert alice.get(f"/api/blobs/{digest}.jpg").status == 403
    assert alice.get(f"/api/blobs/{digest}.exr").status == 403
    assert user(site, "bob").get(f"/api/blobs/{digest}.jpg").status == 200


def test_stats_count_device_time_of_visible_projects_only(site: Dict[str, Any]) -> None:
    alice = user(site, "alice").get("/api/stats").json()
    assert [p["name"] for p in alice["by_project"]] == ["show-a"]
    assert [u["name"] for u in alice["by_user"]] == ["alice"]
    assert alice["by_shot"][0] == {**alice["by_shot"][0], "name": "show-a/sh010", "renders": 2, "frames": 6}
    admin = user(site, "admin").get("/api/stats").json()
    assert {p["name"] for p in admin["by_project"]} >= {"show-a", "show-b"}


def test_render_events_are_the_watch_events(site: Dict[str, Any]) -> None:
    from shotpass_client import Client

    alice = user(site, "alice")
    with alice.stream(f"/api/renders/{site['v1']}/events") as next_event:
        events = []
        while (event := next_event()) is not None:
            events.append(event)
    with Client(site["srv"].address, site["tokens"]["alice"]) as grpc_alice:
        watched = list(grpc_alice.watch(site["v1"]))
    assert [(d["seq"], kind) for kind, d in events] == [
        (e.sequence, e.Kind.Name(e.kind)) for e in watched]
    assert events[-1][0] == "FINISHED"
    with alice.stream(f"/api/renders/{site['v1']}/events?after={watched[-2].sequence}") as next_event:
        assert next_event()[0] == "FINISHED"
    assert alice.get(f"/api/renders/{site['bob']}/events").status == 404
    assert alice.get("/api/renders/r-000000000000/events").status == 404


def test_queue_events_stream_live_progress_of_visible_renders_only(site: Dict[str, Any]) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    bob, alice = user(site, "bob"), user(site, "alice")
    with bob.stream("/api/queue/events", timeout=10) as bob_next, alice.stream("/api/queue/events") as alice_next:
        time.sleep(0.5)  # both streams have taken their first look at the queue
        with Client(site["srv"].address, site["tokens"]["bob"]) as bob_grpc:
            sub = submit_render(bob_grpc, RenderSpec(project="show-b", shot="sh050", model="test-slow-probe",
                                                     options={"seconds": "0.8"}, priority=5), site["plate"])
        kinds, steps = [], []
        deadline = time.monotonic() + 60
        while len(steps) < 3 and time.monotonic() < deadline:
            kind, data = bob_next()
            kinds.append(kind)
            if kind == "STEP" and data["render_id"] == sub.render_id:
                steps.append((data["frame"], data["step"]))
        assert "queue" in kinds  # the page is told to fetch the new render
        assert len(steps) == 3 and len(set(steps)) == 3, steps  # progress moved
        # alice's stream says nothing of bob's renders: only keepalives, so it times out.
        with pytest.raises(TimeoutError):
            print(alice_next())
    user(site, "bob").post(f"/api/renders/{sub.render_id}/cancel")


def test_cancel_from_the_page(site: Dict[str, Any], tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    with Client(site["srv"].address, site["tokens"]["bob"]) as bob_grpc:
        sub = submit_render(bob_grpc, RenderSpec(project="show-b", shot="sh040", model="test-slow-probe",
                                                 options={"seconds": "5"}, priority=-5), site["plate"])
    path = f"/api/renders/{sub.render_id}/cancel"
    assert user(site, "alice").post(path).status == 404
    bob = user(site, "bob")
    assert bob.post(path, csrf="").status == 403
    answer = bob.post(path)
    assert answer.status == 200, answer.text
    deadline = time.monotonic() + 30
    while site["srv"].catalog.get_render(sub.render_id).state != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert site["srv"].catalog.get_render(sub.render_id).state == "CANCELLED"
    assert bob.post("/api/renders/bad%20id/cancel").status == 400


def test_suspend_and_resume_from_the_queue(site: Dict[str, Any]) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    with Client(site["srv"].address, site["tokens"]["bob"]) as bob_grpc:
        sub = submit_render(bob_grpc, RenderSpec(project="show-b", shot="sh060", model="test-slow-probe",
                                                 options={"seconds": "0.2"}, priority=-5), site["plate"])
    catalog = site["srv"].catalog
    bob = user(site, "bob")
    for action in ("suspend", "resume"):
        path = f"/api/renders/{sub.render_id}/{action}"
        assert user(site, "alice").post(path).status == 404  # another project's render: as a missing one
        assert bob.post(path, csrf="").status == 403
    assert bob.post(f"/api/renders/{sub.render_id}/suspend").status == 200
    deadline = time.monotonic() + 60
    while catalog.get_render(sub.render_id, with_frames=False).state != "SUSPENDED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert catalog.get_render(sub.render_id, with_frames=False).state == "SUSPENDED"
    queued = [r for lane in bob.get("/api/queue").json()["lanes"] for r in lane["waiting"]]
    assert [r["state"] for r in queued if r["id"] == sub.render_id] == ["SUSPENDED"]  # still on the queue page
    assert bob.post(f"/api/renders/{sub.render_id}/resume").status == 200
    while catalog.get_render(sub.render_id, with_frames=False).state != "FINISHED" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert catalog.get_render(sub.render_id, with_frames=False).state == "FINISHED"


def test_reorder_waiting_renders_from_the_queue(site: Dict[str, Any]) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    fast = {"seconds": "0"}
    with Client(site["srv"].address, site["tokens"]["bob"]) as bob_grpc:
        blocker = submit_render(bob_grpc, RenderSpec(project="show-b", shot="sh070", model="test-slow-probe",
                                                     options={"seconds": "3"}), site["plate"])
        first, later = (submit_render(bob_grpc, RenderSpec(project="show-b", shot=shot, model="test-slow-probe",
                                                           options=fast, priority=-5), site["plate"])
                        for shot in ("sh071", "sh072"))
    bob = user(site, "bob")

    def waiting_order() -> list:
        lanes = bob.get("/api/queue").json()["lanes"]
        rows = [r for lane in lanes for r in lane["waiting"] if r["id"] in (first.render_id, later.render_id)]
        return [r["id"] for r in sorted(rows, key=lambda r: r["position"])]

    path = f"/api/renders/{later.render_id}/priority"
    assert waiting_order() == [first.render_id, later.render_id]
    assert user(site, "alice").post(path, {"priority": -1}).status == 404  # another project's: as a missing one
    assert bob.post(path, {"priority": -1}, csrf="").status == 403
    assert user(site, "vera").post(f"/api/renders/{site['v1']}/priority", {"priority": 0}).status == 403  # viewer
    above = bob.post(path, {"priority": 1})  # bob's max priority is 0
    assert above.status == 403 and "max-priority" in above.json()["error"], above.text
    assert bob.post(path, {"priority": "high"}).status == 400
    assert bob.post(path, {}).status == 400
    assert bob.post("/api/renders/bad%20id/priority", {"priority": 0}).status == 400
    assert waiting_order() == [first.render_id, later.render_id], "a refused reorder moved the render"
    answer = bob.post(path, {"priority": -1})
    assert answer.status == 200, answer.text
    assert answer.json()["settings"]["priority"] == -1
    assert waiting_order() == [later.render_id, first.render_id]
    # An admin may go above the owner's cap.
    assert user(site, "admin").post(f"/api/renders/{first.render_id}/priority", {"priority": 3}).status == 200
    assert waiting_order() == [first.render_id, later.render_id]
    assert bob.post(f"/api/renders/{blocker.render_id}/cancel").status == 200
    catalog = site["srv"].catalog
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and catalog.get_render(later.render_id, with_frames=False).state != "FINISHED":
        time.sleep(0.1)
    a, b = (catalog.get_render(r.render_id, with_frames=False) for r in (first, later))
    assert a.state == b.state == "FINISHED" and a.started_at < b.started_at


def test_a_revoked_token_ends_its_browser_session(tmp_path: Path) -> None:
    from shotpass_server.cli import main

    data = tmp_path / "d"
    token = add_user(data, "dora")
    srv = web_server(data)
    try:
        dora = Http(srv.web.url, token)
        assert dora.get("/api/session").status == 200
        assert main(["users", "revoke", "dora", "--data-dir", str(data)]) == 0
        assert dora.get("/api/session").status == 401
    finally:
        srv.stop(grace=0.5)


def test_single_user_server_is_open_like_grpc_but_still_checks_csrf(tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    srv = web_server(tmp_path / "d")
    try:
        with Client(srv.address) as client:
            sub = submit_render(client, RenderSpec(pass_name="passthrough"),
                                plate_frames(tiny_plate(tmp_path / "p", range(1, 3))))
            list(client.watch(sub.render_id))
        browser = Http(srv.web.url)
        assert browser.get("/login").status == 303  # nobody to log in as
        assert browser.get("/api/queue").status == 200
        path = f"/api/renders/{sub.render_id}/review"
        assert browser.post(path, {"approved": True}).status == 403  # no CSRF token
        data = browser.session()
        assert data["single_user"] is True and "shotpass_nonce" in browser.cookies
        assert browser.post(path, {"approved": True}).status == 200
        assert Http(srv.web.url).post(path, {"approved": True}, csrf=data["csrf_token"]).status == 403  # no nonce
        # No token guards this server: only requests for an IP address or localhost (no DNS rebinding).
        rebinding = browser.get("/api/queue", headers={"Host": "attacker.example:8080"})
        assert rebinding.status == 421
        assert browser.get("/api/queue", headers={"Host": "localhost:8080"}).status == 200
        page = browser.get("/queue")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        # Stopping the server ends open event streams rather than waiting on them.
        with browser.stream("/api/queue/events") as _:
            started = time.monotonic()
            srv.stop(grace=0.5)
            assert time.monotonic() - started < 8
    finally:
        srv.stop(grace=0.5)


def test_serve_web_flag_and_config(tmp_path: Path) -> None:
    from shotpass_server.config import load_config

    config = tmp_path / "server.toml"
    config.write_text('[web]\nlisten = "127.0.0.1:8089"\n')
    assert load_config(config).web_listen == "127.0.0.1:8089"
    log = tmp_path / "serve.log"
    proc, _ = serve_process(tmp_path / "d", log, "--web", "127.0.0.1:0")
    try:
        line = proc.stdout.readline()
        assert line.startswith("shotpass: review pages on http://127.0.0.1:"), line
        url = line.split(" on ")[1].strip()
        assert Http(url).get("/api/queue").status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_with_tls_the_pages_use_the_servers_certificate_and_secure_cookies(tmp_path: Path) -> None:
    import ssl

    pki = write_pki(tmp_path / "pki")
    data = tmp_path / "d"
    token = add_user(data, "tess")
    srv = web_server(data, tls_cert=pki["server_cert"], tls_key=pki["server_key"])
    try:
        assert srv.web.url.startswith("https://127.0.0.1:")
        browser = Http(srv.web.url, tls=ssl.create_default_context(cafile=str(pki["ca_cert"])))
        form = browser.get("/login")
        csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
        assert any("Secure" in c for c in form.cookies)
        ok = browser.post_form("/login", {"token": token, "csrf_token": csrf})
        assert ok.status == 303
        assert all(part in next(c for c in ok.cookies if c.startswith("shotpass_session=")) for part in
                   ("Secure", "HttpOnly"))
        assert browser.session()["user"] == "tess"
        with pytest.raises(ssl.SSLError):  # a client that does not trust the server's CA gets nothing
            Http(srv.web.url, tls=ssl.create_default_context()).get("/login")
    finally:
        srv.stop(grace=0.5)
    # Mutual TLS: the pages, like the gRPC port, answer only browsers that show a certificate the CA signed.
    srv = web_server(tmp_path / "d2", tls_cert=pki["server_cert"], tls_key=pki["server_key"],
                     tls_client_ca=pki["ca_cert"])
    try:
        anonymous = ssl.create_default_context(cafile=str(pki["ca_cert"]))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            Http(srv.web.url, tls=anonymous).get("/api/queue")
        known = ssl.create_default_context(cafile=str(pki["ca_cert"]))
        known.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
        assert Http(srv.web.url, tls=known).get("/api/queue").status == 200
    finally:
        srv.stop(grace=0.5)


def test_a_taken_review_port_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d",
                                          web_listen=f"127.0.0.1:{port}"))
        with pytest.raises(OSError, match=f"review pages: cannot listen on 127.0.0.1:{port}"):
            srv.start()
    with pytest.raises(Exception, match="use HOST:PORT"):
        ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "e", web_listen="8080")).start()


def test_projects_list_names_the_viewers(site: Dict[str, Any], capsys: pytest.CaptureFixture) -> None:
    from helpers import run_cli

    code, listed, _ = run_cli(capsys, ["projects", "list", "--data-dir", str(site["data"]), "--json"])
    assert code == 0 and listed["projects"]["show-a"] == ["alice (owner)", "vera (viewer)"]
    with pytest.raises(SystemExit):  # argparse names the roles there are
        run_cli(capsys, ["projects", "add-member", "show-a", "vera", "--role", "boss", "--data-dir", str(site["data"])])
    assert "choose from 'member', 'viewer', 'owner'" in capsys.readouterr().err
