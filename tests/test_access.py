"""Identity and access on a real server over loopback: tokens, project membership, blob reachability, TLS.

One shared server holds alice's finished render in project show-a; bob (project show-b) must not reach
anything of it, carol is added to show-a later, and admin sees everything.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any, Dict, Iterator

import grpc
import pytest
from conftest import BEACHBALL, require_data
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import run_cli, write_pki

PLATE_NAME = "singlepart.####.exr"


def _plate(tmp: Path) -> str:
    require_data()
    plate = tmp / "plate"
    plate.mkdir(exist_ok=True)
    for src in sorted(BEACHBALL.glob("singlepart.*.exr")):
        if not (plate / src.name).exists():
            (plate / src.name).symlink_to(src)
    return str(plate / PLATE_NAME)


def _add_user(data: Path, name: str, *extra: str) -> str:
    """`shotpass users add NAME --json`, returning the token it prints once."""
    from shotpass_server.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["users", "add", name, "--data-dir", str(data), "--json", *extra]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


def _cli(data: Path, *argv: str) -> int:
    from shotpass_server.cli import main

    return main([*argv, "--data-dir", str(data)])


def _denied(call: Any, *args: Any, code: str = "PERMISSION_DENIED", **kwargs: Any) -> str:
    from shotpass_client import ClientError

    with pytest.raises(ClientError) as err:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    assert err.value.code == code, f"{err.value.code}: {err.value}"
    return str(err.value)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dict[str, Any]]:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    tmp = tmp_path_factory.mktemp("access")
    data = tmp / "server-data"
    tokens = {name: _add_user(data, name) for name in ("alice", "bob", "carol")}
    tokens["admin"] = _add_user(data, "admin", "--admin")
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=data, chunk_frames=2))
    srv.start()
    clients = {name: Client(srv.address, token) for name, token in tokens.items()}
    try:
        plate = plate_frames(_plate(tmp))
        alice = clients["alice"]
        sub = submit_render(alice, RenderSpec(project="show-a", shot="sh010", pass_name="passthrough"),
                            {1: plate[1], 2: plate[2]})
        render = alice.wait(sub.render_id)
        assert render.state == pb.FINISHED, render.error
        mine = submit_render(clients["bob"], RenderSpec(project="show-b", shot="sh900", pass_name="passthrough"),
                             {5: plate[5]})
        assert clients["bob"].wait(mine.render_id).state == pb.FINISHED
        yield {"server": srv, "data": data, "tokens": tokens, "clients": clients, "plate": plate,
               "render": render, "bob_render": clients["bob"].get_render(mine.render_id), "tmp": tmp}
    finally:
        for c in clients.values():
            c.close()
        srv.stop(grace=0.5)


def test_first_user_of_a_project_owns_it_and_others_cannot_render_in_it(shared, capsys) -> None:
    from shotpass_client.jobs import RenderSpec, submit_render

    code, listed, _ = run_cli(capsys, ["projects", "list", "--data-dir", str(shared["data"]), "--json"])
    assert code == 0
    assert listed["projects"]["show-a"] == ["alice (owner)"]
    assert listed["projects"]["show-b"] == ["bob (owner)"]
    bob = shared["clients"]["bob"]
    message = _denied(submit_render, bob, RenderSpec(project="show-a", pass_name="passthrough"),
                      {3: shared["plate"][3]})
    assert "show-a" in message


def test_second_user_cannot_get_list_watch_cancel_or_review_anothers_render(shared) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    bob, alice = shared["clients"]["bob"], shared["clients"]["alice"]
    rid = shared["render"].id
    # Another project's render answers exactly like a missing one: its existence and project stay unsaid.
    missing = "r-" + "0" * (len(rid) - 2)
    for call, kwargs in ((bob.get_render, {}), (bob.watch, {}), (bob.cancel, {}),
                         (bob.review, {"rating": 1, "note": "mine now"})):
        theirs = _denied(call, rid, code="NOT_FOUND", **kwargs)
        assert "show-a" not in theirs
        assert theirs.replace(rid, missing) == _denied(call, missing, code="NOT_FOUND", **kwargs)
    listed = {r.id for r in bob.list_renders()}
    assert rid not in listed and shared["bob_render"].id in listed
    _denied(bob.list_renders, "show-a")
    assert _denied(bob.get_render, "r-doesnotexist", code="NOT_FOUND")
    # Nothing changed for the owner.
    after = alice.get_render(rid)
    assert after.state == pb.FINISHED and after.review.note == "" and after.review.rating == 0
    assert rid in {r.id for r in alice.list_renders()}
    assert shared["bob_render"].id not in {r.id for r in alice.list_renders()}


def test_second_user_cannot_fetch_find_or_download_anothers_blobs(shared, capsys, tmp_path) -> None:
    bob, alice = shared["clients"]["bob"], shared["clients"]["alice"]
    render = shared["render"]
    outputs = [f.output_digest for f in render.frames]
    inputs = [f.input_digest for f in render.frames]
    for digest in outputs + inputs:
        _denied(bob.download_bytes, digest)
    # Stored, yet not "present" for bob: FindBlobs leaks nothing about another user's plates...
    assert bob.find_blobs(outputs + inputs) == set()
    assert alice.find_blobs(outputs + inputs) == set(outputs + inputs)
    # ...and a digest nobody stored is refused the same way (no existence oracle).
    _denied(bob.download_bytes, "0" * 64)
    code, _, err = run_cli(capsys, ["fetch", render.id, "--out", str(tmp_path / "x"), "--server",
                                    shared["server"].address, "--token", shared["tokens"]["bob"], "--json"])
    assert code != 0 and f"no render '{render.id}'" in err and "show-a" not in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


def test_second_user_cannot_chain_onto_reference_or_reuse_anothers_work(shared) -> None:
    from shotpass_client.client import frame_inputs
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    bob = shared["clients"]["bob"]
    render = shared["render"]
    spec = RenderSpec(project="show-b", pass_name="passthrough")
    _denied(submit_render, bob, spec, parent_render=render.id, code="NOT_FOUND")
    _denied(submit_render, bob, spec, parent_render=render.id, parent_frames=[1], preview=True, code="NOT_FOUND")
    own = {5: shared["plate"][5]}
    _denied(submit_render, bob, RenderSpec(project="show-b", model="styletransfer-reference"), own,
            reference_render=(render.id, 1), code="NOT_FOUND")
    # Naming alice's digests without ever sending the bytes.
    stolen = pb.SubmitRenderRequest(project="show-b", shot="x", settings=pb.RenderSettings(pass_name="passthrough"),
                                    frames=frame_inputs({1: render.frames[0].input_digest}))
    _denied(bob.submit, stolen)
    stolen_ref = pb.SubmitRenderRequest(project="show-b", shot="x", settings=pb.RenderSettings(pass_name="stylize"),
                                        frames=frame_inputs({5: shared["bob_render"].frames[0].input_digest}))
    stolen_ref.settings.reference.digest = render.frames[0].output_digest
    _denied(bob.submit, stolen_ref)
    stolen_handle = pb.SubmitRenderRequest(project="show-b", shot="x", settings=pb.RenderSettings(pass_name="stylize"),
                                           frames=frame_inputs({5: shared["bob_render"].frames[0].input_digest}),
                                           context_frames=frame_inputs({4: render.frames[1].input_digest}))
    _denied(bob.submit, stolen_handle)  # a handle (context frame) is checked like any input
    # Sending the same bytes proves bob holds them: the store dedupes on disk, and then he may use them.
    digests, sent = bob.upload_files([shared["plate"][1]])
    assert sent > 0
    assert digests[shared["plate"][1]] == render.frames[0].input_digest
    assert bob.find_blobs([render.frames[0].input_digest]) == {render.frames[0].input_digest}
    assert bob.submit(stolen).render.project == "show-b"


def test_a_member_added_later_can_see_fetch_and_chain_until_removed(shared) -> None:
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    carol = shared["clients"]["carol"]
    render = shared["render"]
    digest = render.frames[0].output_digest
    _denied(carol.get_render, render.id, code="NOT_FOUND")
    _denied(carol.download_bytes, digest)
    assert _cli(shared["data"], "projects", "add-member", "show-a", "carol") == 0
    assert carol.get_render(render.id).id == render.id
    assert render.id in {r.id for r in carol.list_renders("show-a")}
    assert len(carol.download_bytes(digest)) > 0
    assert carol.find_blobs([digest]) == {digest}
    chained = submit_render(carol, RenderSpec(project="show-a", pass_name="passthrough"),
                            parent_render=render.id, parent_frames=[1])
    assert carol.wait(chained.render_id).state == pb.FINISHED
    assert _cli(shared["data"], "projects", "remove-member", "show-a", "carol") == 0
    _denied(carol.get_render, render.id, code="NOT_FOUND")
    _denied(carol.download_bytes, digest)


def test_admin_sees_every_project(shared) -> None:
    admin = shared["clients"]["admin"]
    ids = {r.id for r in admin.list_renders()}
    assert {shared["render"].id, shared["bob_render"].id} <= ids
    assert admin.get_render(shared["render"].id).project == "show-a"
    assert len(admin.download_bytes(shared["render"].frames[0].output_digest)) > 0


def test_missing_wrong_and_revoked_tokens_are_refused(shared, capsys) -> None:
    from shotpass_client import Client

    srv, data = shared["server"], shared["data"]
    with Client(srv.address) as anonymous:
        assert "SHOTPASS_TOKEN" in _denied(anonymous.server_info, code="UNAUTHENTICATED")
        _denied(anonymous.list_renders, code="UNAUTHENTICATED")
        _denied(anonymous.get_render, shared["render"].id, code="UNAUTHENTICATED")
    with Client(srv.address, "sp_not-a-real-token") as wrong:
        _denied(wrong.server_info, code="UNAUTHENTICATED")
        _denied(wrong.find_blobs, [shared["render"].frames[0].input_digest], code="UNAUTHENTICATED")
    # Health and reflection stay open: load balancers and grpcurl ask without a token.
    with grpc.insecure_channel(srv.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    token = _add_user(data, "dave")
    with Client(srv.address, token) as dave:
        assert dave.server_info().version
        assert _cli(data, "users", "revoke", "dave") == 0
        _denied(dave.server_info, code="UNAUTHENTICATED")
    code, out, _ = run_cli(capsys, ["users", "token", "dave", "--data-dir", str(data), "--json"])
    assert code == 0 and out["token"] != token
    with Client(srv.address, out["token"]) as dave_again, Client(srv.address, token) as old:
        assert dave_again.server_info().version
        _denied(old.server_info, code="UNAUTHENTICATED")
    code, users, _ = run_cli(capsys, ["users", "list", "--data-dir", str(data), "--json"])
    assert {u["name"]: u["admin"] for u in users["users"]}["admin"] is True
    # Only hashes are stored: no token appears in the data dir.
    raw = b"".join(p.read_bytes() for p in data.glob("catalog.sqlite*"))
    assert shared["tokens"]["alice"].encode() not in raw and out["token"].encode() not in raw


def test_single_user_default_needs_no_token_until_a_user_exists(server, client, beachball) -> None:
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    sub = submit_render(client, RenderSpec(project="any", pass_name="passthrough"), plate_frames(beachball, [1]))
    assert client.wait(sub.render_id).state == pb.FINISHED
    digest = client.get_render(sub.render_id).frames[0].output_digest
    assert client.find_blobs([digest]) == {digest} and client.download_bytes(digest)
    assert _add_user(Path(server.cfg.data_dir), "first")
    _denied(client.get_render, sub.render_id, code="UNAUTHENTICATED")


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    return write_pki(tmp_path_factory.mktemp("pki"))


def _tls_server(tmp: Path, pki: Dict[str, Path], mutual: bool) -> Any:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    config = tmp / "shotpass.toml"
    lines = ["[server]", 'listen = "127.0.0.1:0"', 'data_dir = "data"', "[tls]",
             f'cert = "{pki["server_cert"]}"', f'key = "{pki["server_key"]}"']
    if mutual:
        lines.append(f'client_ca = "{pki["ca_cert"]}"')
    config.write_text("\n".join(lines) + "\n")
    srv = ShotpassServer(load_config(config))
    srv.start()
    return srv


def test_tls_server_talks_to_tls_clients_only(tmp_path, pki, capsys) -> None:
    from shotpass_client import Client, ClientError

    srv = _tls_server(tmp_path, pki, mutual=False)
    try:
        assert srv.tls_mode == "on"
        with Client(srv.address, root_certificates=pki["ca_cert"].read_bytes()) as tls:
            assert tls.server_info().version
        code, out, err = run_cli(capsys, ["renders", "--server", srv.address, "--tls-ca", str(pki["ca_cert"]),
                                          "--json"])
        assert code == 0, err
        assert out == {"renders": []}
        with pytest.raises(ClientError) as plain:
            Client(srv.address, connect_timeout=1.0).server_info()
        assert plain.value.code == "UNAVAILABLE" and "TLS" in str(plain.value)
    finally:
        srv.stop(grace=0.2)


def test_mutual_tls_refuses_a_client_without_a_certificate(tmp_path, pki) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.client import tls_files

    srv = _tls_server(tmp_path, pki, mutual=True)
    try:
        assert srv.tls_mode == "mutual"
        with pytest.raises(ClientError) as refused:
            # The handshake may fail at connect time or (TLS 1.3) at the first call.
            with Client(srv.address, root_certificates=pki["ca_cert"].read_bytes(), connect_timeout=1.0) as c:
                c.server_info()
        assert refused.value.code == "UNAVAILABLE"
        tls = tls_files(str(pki["ca_cert"]), str(pki["client_cert"]), str(pki["client_key"]))
        with Client(srv.address, **tls) as good:  # type: ignore[arg-type]
            assert good.server_info().version
    finally:
        srv.stop(grace=0.2)


def test_find_blobs_does_the_same_work_for_anothers_blob_as_for_one_never_stored(shared) -> None:
    """No timing oracle: the same statements and store calls answer both, so both take the same time."""
    srv, bob = shared["server"], shared["clients"]["bob"]
    theirs = shared["render"].frames[0].output_digest  # alice's, stored
    never = "e" * 64
    store = srv.blobs
    work: list = []
    originals = {name: getattr(store, name) for name in ("has", "touch", "partial_size", "size", "path", "get")}

    def recording(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            work.append(("store", name))
            return originals[name](*args, **kwargs)
        return call

    def work_for(digest: str) -> list:
        work.clear()
        srv.accounts._db.set_trace_callback(lambda sql: work.append(("sql", sql.replace(digest, "DIGEST"))))
        for name in originals:
            setattr(store, name, recording(name))
        try:
            assert bob.find_blobs([digest]) == set()
        finally:
            srv.accounts._db.set_trace_callback(None)
            for name in originals:
                delattr(store, name)  # back to the class's methods
        return list(work)

    assert store.has(theirs) and not store.has(never)
    stored_work, never_work = work_for(theirs), work_for(never)
    assert any(kind == "sql" for kind, _ in stored_work)
    assert stored_work == never_work


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    """A server whose `gated` model holds every frame until the test lets it go: renders stay RUNNING."""
    import threading

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig
    from shotpass_server.passes.passthrough import Passthrough
    from shotpass_server.passes.registry import ModelRegistry, starter_models

    gate = threading.Event()

    class Gated(Passthrough):
        name = "gated"
        pass_name = "gated"

        def process(self, job: Any, ctx: Any) -> Any:
            while not gate.wait(0.05):
                ctx.progress(0, 1)  # sees cancellation
            return super().process(job, ctx)

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d"),
                         registry=ModelRegistry([*starter_models(), Gated()]))
    tokens = {name: srv.accounts.add_user(name) for name in ("alice", "bob")}
    srv.start()
    try:
        yield {"server": srv, "tokens": tokens}
    finally:
        gate.set()
        srv.stop(grace=0.5)


def test_revoking_a_token_or_a_membership_ends_open_watch_streams(gated) -> None:
    import threading

    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv, tokens = gated["server"], gated["tokens"]
    plate = {1: str(BEACHBALL / "singlepart.0001.exr")}
    with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
        render_id = submit_render(alice, RenderSpec(project="show", model="gated"), plate).render_id
        srv.accounts.add_member("show", "bob")
        ended: Dict[str, Any] = {}
        started = {name: threading.Event() for name in ("alice", "bob")}

        def watch(name: str, client: Any) -> None:
            try:
                for event in client.watch(render_id):
                    if event.kind == pb.RenderEvent.STARTED:
                        started[name].set()
                ended[name] = "stream ended normally"
            except ClientError as err:
                ended[name] = err

        threads = [threading.Thread(target=watch, args=(n, c), daemon=True) for n, c in (("alice", alice),
                                                                                         ("bob", bob))]
        for t in threads:
            t.start()
        assert all(e.wait(30) for e in started.values()), "the render never started"
        assert alice.get_render(render_id).state == pb.RUNNING
        srv.accounts.revoke("alice")
        srv.accounts.remove_member("show", "bob")
        for t in threads:
            t.join(timeout=15)  # a guard against a hang, not a performance bound
        assert not any(t.is_alive() for t in threads), "a stream stayed open after its caller lost access"
        assert isinstance(ended["alice"], ClientError) and ended["alice"].code == "UNAUTHENTICATED", ended
        assert isinstance(ended["bob"], ClientError) and ended["bob"].code == "NOT_FOUND", ended


def test_users_add_stores_the_max_priority_it_was_given(capsys, tmp_path) -> None:
    data = str(tmp_path / "data")
    code, _, err = run_cli(capsys, ["users", "add", "erin", "--max-priority", "5", "--data-dir", data, "--json"])
    assert code == 0, err
    code, _, err = run_cli(capsys, ["users", "add", "fred", "--data-dir", data, "--json"])
    assert code == 0, err
    code, out, _ = run_cli(capsys, ["users", "list", "--data-dir", data, "--json"])
    assert {u["name"]: u["max_priority"] for u in out["users"]} == {"erin": 5, "fred": 0}
