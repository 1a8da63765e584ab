"""The Nuke plugin against the real server in-process, with a small faithful fake `nuke` (tests/fake_nuke)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import channels

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "nuke"
FAKE = Path(__file__).resolve().parent / "fake_nuke"
for p in (str(FAKE), str(PLUGIN)):
    if p not in sys.path:
        sys.path.insert(0, p)

import nuke  # noqa: E402  (the fake)

from shotpass_nuke import host  # noqa: E402


@pytest.fixture
def nk(tmp_path, monkeypatch, server):
    nuke.reset()
    script = tmp_path / "proj" / "sh010_comp_v002.nk"
    script.parent.mkdir()
    nuke.root()["name"].setValue(str(script))
    nuke.root()["OCIO_config"].setValue("aces_1.2")  # a studio's ACES config; nuke-default is tested on its own
    nuke.root()["workingSpaceLUT"].setValue("ACES - ACEScg")
    monkeypatch.setenv("SHOTPASS_SERVER", server.address)
    monkeypatch.setenv("SHOTPASS_OUTPUT", str(tmp_path / "out"))
    monkeypatch.delenv("SHOTPASS_PROJECT", raising=False)
    yield nuke
    for job in list(host.CONTROLLER.jobs.values()):
        job.cancel()
        deadline = time.monotonic() + 10
        while job.running and time.monotonic() < deadline:
            nuke.pump()  # a job may wait on a main-thread call (a frame, deleting its Write)
            job.join(0.05)
    violations = list(nuke.thread_violations)
    nuke.reset()
    assert violations == [], "nodes or knobs were touched off the main thread"


def pump_until(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nuke.pump()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def status(node):
    return node["status"].value()


def state(node):
    return json.loads(node["shotpass_state"].value())


def plate_read(beachball, first=1, last=8):
    read = nuke.nodes.Read(file=beachball, first=first, last=last, origfirst=first, origlast=last)
    read.setSelected(True)
    return read


def connected_node():
    node = host.create_node()
    pump_until(lambda: status(node).startswith(("connected", "server:")))
    nuke.pump()
    assert status(node).startswith("connected"), status(node)
    return node


def run(node, button):
    """Press a button and let the render finish (the monitor thread posts its last update before it leaves)."""
    node[button].execute()
    pump_until(lambda: not host.CONTROLLER.jobs)
    nuke.pump()


def test_render_frames_1_to_8_points_the_read_at_aligned_outputs(nk, beachball):
    read = plate_read(beachball)
    node = connected_node()
    assert node.input(0) is read
    assert (node["project"].value(), node["shot"].value(), node["colour_space"].value()) == (
        "proj", "sh010_comp", "auto")
    assert "ACES - ACEScg" in node["colour_space"].values()
    assert {"passthrough", "stylize", "upscale", "inpaint"} <= set(node["pass"].values())
    node.ui_set("pass", "passthrough")
    assert node["model"].value() == "passthrough"

    run(node, "render")
    assert "8 frame(s) written" in status(node), status(node)
    inner = node.node("shotpass_read")
    pattern = inner["file"].value()
    assert pattern.endswith("sh010_comp.####.exr")
    assert [inner[k].value() for k in ("first", "last", "origfirst", "origlast")] == [1, 8, 1, 8]
    assert node.node("shotpass_switch")["which"].value() == 1
    src = [channels(beachball.replace("####", f"{f:04d}"))["R"] for f in range(1, 9)]
    for f in range(1, 9):
        out = channels(pattern.replace("####", f"{f:04d}"))["R"]
        assert np.array_equal(out, src[f - 1]), f"frame {f} is not the plate's frame {f}"
        assert not np.array_equal(out, src[f % 8]), "frames are not distinct: alignment is untested"
    entry = state(node)["versions"][0]
    assert entry["state"] == "finished" and entry["version"] == 1 and (entry["first"], entry["last"]) == (1, 8)
    assert inner["colorspace"].value() == "ACES - ACEScg" and inner["raw"].value() is False
    assert node["version"].value().startswith("v001 render finished")
    assert not nuke.allNodes("Write"), "the temporary Write was not removed"
    assert nuke.executed == [("Write1", f, f, ("main",)) for f in range(1, 9)], "one frame per main-thread call"
    task = nuke.ProgressTask.instances[-1]
    assert task.history[-1] == 100 and any(0 < p < 100 for p in task.history)
    assert not (Path(os.environ["SHOTPASS_OUTPUT"]) / ".work").exists() or not any(
        (Path(os.environ["SHOTPASS_OUTPUT"]) / ".work").iterdir())


def test_preview_frame_renders_the_current_frame_on_the_preview_lane(nk, beachball, client):
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    nuke.frame(5)
    run(node, "preview")
    assert "1 frame(s) written" in status(node), status(node)
    inner = node.node("shotpass_read")
    assert [inner[k].value() for k in ("first", "last")] == [5, 5]
    out = channels(inner["file"].value().replace("####", "0005"))["R"]
    assert np.array_equal(out, channels(beachball.replace("####", "0005"))["R"])
    entry = state(node)["versions"][0]
    assert entry["lane"] == "preview"
    assert client.get_render(entry["render_id"]).lane == "preview"
    assert nuke.executed == [("Write1", 5, 5, ("main",))]


def test_handles_are_rendered_from_the_input_and_sent_as_context_not_as_frames(nk, beachball, client):
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node["range_mode"].setValue("custom")
    node["frames"].setValue("3-5")
    node["context_handles"].setValue(3)  # the input has 1-8: two before, three after
    run(node, "render")
    assert "3 frame(s) written" in status(node), status(node)
    write = nuke.executed[-1][0]  # the plate Write renders the handles too
    assert sorted(f for e in nuke.executed if e[0] == write for f in range(e[1], e[2] + 1)) == list(range(1, 9))
    render = client.get_render(state(node)["versions"][0]["render_id"])
    assert sorted(f.frame for f in render.frames) == [3, 4, 5]
    # The server got the five handles (a frame-by-frame pass says it reads none of them).
    assert any("the 5 handle frame(s) sent were not used" in w for w in render.warnings), list(render.warnings)
    inner = node.node("shotpass_read")
    assert [inner[k].value() for k in ("first", "last")] == [3, 5]


def test_edit_this_render_chains_by_reference_and_uploads_nothing(nk, beachball, client):
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node["range_mode"].setValue("custom")
    node["frames"].setValue("2-4")
    run(node, "render")
    parent_id = state(node)["versions"][0]["render_id"]
    executed_before = list(nuke.executed)

    node["edit_render"].execute()
    child = next(n for n in nuke.allNodes("Group") if n is not node)
    assert child.input(0) is node and "by reference" in status(child)
    pump_until(lambda: status(child).startswith("connected"))
    child.ui_set("pass", "passthrough")
    run(child, "render")
    assert "3 frame(s) written" in status(child), status(child)
    assert state(node)["versions"][0]["bytes_uploaded"] > 0
    assert state(child)["versions"][0]["bytes_uploaded"] == 0
    assert nuke.executed == executed_before, "Edit this Render rendered its input again"
    inner = child.node("shotpass_read")
    assert [inner[k].value() for k in ("first", "last")] == [2, 4]
    child_id = state(child)["versions"][0]["render_id"]
    render = client.get_render(child_id)
    assert render.parent_render == parent_id and sorted(f.frame for f in render.frames) == [2, 3, 4]


def test_reuse_settings_copies_to_selected_shotpass_nodes(nk, beachball):
    plate_read(beachball)
    a = connected_node()
    a.ui_set("pass", "stylize")
    a.ui_set("model", "styletransfer-preset")
    a["opt_style"].setValue("7")
    a["opt_preserve_colour"].setValue(True)
    a["prompt"].setValue("a watercolour beach ball")
    a["seed"].setValue(42)
    a["strength"].setValue(0.25)
    b = connected_node()
    b.ui_set("pass", "upscale")
    assert b.knob("opt_style") is None
    for n in nuke.allNodes():
        n.setSelected(n is b or n is a)
    a["reuse_settings"].execute()
    assert "copied to" in status(a)
    for knob in ("pass", "model", "opt_style", "opt_preserve_colour", "prompt", "seed", "strength"):
        assert b[knob].value() == a[knob].value(), knob
    spec = host.CONTROLLER.spec(b)
    assert spec.options["style"] == "7" and spec.options["preserve_colour"] == "true"
    assert spec.options["strength"] == "0.25" and spec.seed == 42


def test_cancel_from_the_progress_task_cancels_the_render(nk, beachball, client):
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "stylize")
    node["render"].execute()
    # The first 30 % are the local plate render; past them the server renders.
    pump_until(lambda: nuke.ProgressTask.instances and nuke.ProgressTask.instances[-1].progress > 30)
    nuke.ProgressTask.instances[-1].cancel()
    pump_until(lambda: not host.CONTROLLER.jobs)
    nuke.pump()
    assert status(node).startswith("failed") and "cancelled" in status(node), status(node)
    entry = state(node)["versions"][0]
    assert entry["state"] == "cancelled"
    assert 1 <= client.get_render(entry["render_id"]).frames_done < 8
    assert node.node("shotpass_switch")["which"].value() == 0, "a cancelled render must not become the output"


def test_the_plate_renders_frame_by_frame_between_ui_events_and_cancels_locally(nk, beachball, client):
    """Each plate frame is its own main-thread call (Nuke's UI runs in between); cancel stops before upload."""
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node["render"].execute()
    assert nuke.executed == [], "the button must return before the plate is rendered"
    nuke.pump()  # one event-loop turn: one frame
    pump_until(lambda: len(nuke.executed) >= 1)
    task = nuke.ProgressTask.instances[-1]
    assert "rendering the plate locally: frame 1 (1/8)" in task.messages
    assert status(node).startswith("rendering the plate locally: frame")
    task.cancel()
    pump_until(lambda: not host.CONTROLLER.jobs)
    nuke.pump()
    assert len(nuke.executed) < 8
    assert status(node) == "cancelled while rendering the plate locally: nothing was sent"
    assert client.list_renders(project="proj") == []
    assert not nuke.allNodes("Write"), "the temporary Write was not removed"


def test_server_down_gives_one_clear_message_on_the_node(nk, beachball, server, monkeypatch):
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    server.stop(grace=0)
    for _ in range(2):  # an impatient user: each press gives one message, never a dialog or a traceback storm
        run(node, "render")
        assert status(node).startswith("failed: cannot reach a shotpass server at"), status(node)
    assert nuke.messages == []
    monkeypatch.setenv("SHOTPASS_SERVER", "127.0.0.1:9")
    fresh = host.create_node()
    pump_until(lambda: status(fresh).startswith("server:"))
    assert "cannot reach a shotpass server at 127.0.0.1:9" in status(fresh)
    run(fresh, "render")
    assert status(fresh).startswith("cannot render: choose a pass"), status(fresh)


def test_queue_panel_lists_renders_and_opens_them_in_the_dag(nk, beachball, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_API", "pyside6")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from qtpy import QtWidgets

    from shotpass_nuke import panel
    from shotpass_nuke.panel import COLUMNS

    plate_read(beachball, 1, 2)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    nuke.frame(2)
    run(node, "preview")

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    host.install_menu()
    assert nuke.menu("Nodes").findItem("shotpass").findItem("ShotPass")
    widget = panel.QueuePanel(server=node["server"].value(), project="proj")
    widget.refresh_now()
    assert widget.table.rowCount() == 2
    states = {widget.table.item(r, 3).text() for r in range(2)}
    assert states == {"finished"}
    assert {widget.table.item(r, 2).text() for r in range(2)} == {"render", "preview"}
    widget.resize(1000, 260)
    widget.show()
    app.processEvents()
    shot = tmp_path / "shotpass-queue.png"
    assert widget.grab().save(str(shot)) and shot.stat().st_size > 5000
    if os.environ.get("SHOTPASS_SCREENSHOT"):
        widget.grab().save(os.environ["SHOTPASS_SCREENSHOT"])

    # A refresh in the background reads the server and project fields on the main thread only.
    import threading

    on_main, text = [], widget.server.text
    widget.server.text = lambda: (on_main.append(threading.current_thread() is threading.main_thread()), text())[1]
    widget.refresh()
    deadline = time.monotonic() + 30
    while widget._busy and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert not widget._busy and on_main and all(on_main)
    row = next(r for r in range(2) if widget.table.item(r, 2).text() == "render")
    widget.table.selectRow(row)
    other = nuke.nodes.NoOp()
    other.setSelected(True)
    assert widget.open_selected() is node and nuke.shown == [node]
    assert node.isSelected() and not other.isSelected(), "Open in DAG selects the node alone"
    assert nuke.zoomed == [(1, (node.xpos() + node.screenWidth() / 2, node.ypos() + node.screenHeight() / 2))]
    assert node["version"].value().startswith("v001 render")
    assert node.node("shotpass_read")["last"].value() == 2
    assert widget.table.item(row, COLUMNS.index("qc")).text().startswith("flicker "), "the 2-frame render's QC"
    # Job control from the queue: a finished render has nothing to requeue, and says so.
    widget.control_selected("requeue")
    deadline = time.monotonic() + 30
    while "no failed or cancelled frames" not in widget.status.text() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    assert "no failed or cancelled frames to requeue" in widget.status.text(), widget.status.text()
    # A render submitted meanwhile takes the top row; the selection stays on the render it was, so "Cancel
    # selected" never lands on another one.
    selected = widget.selected_ids()
    assert len(selected) == 1
    run(node, "render")
    widget.refresh_now()
    assert widget.table.rowCount() == 3
    assert widget.selected_ids() == selected, "the selection follows its render, not its row"
    widget.hide()
    widget.deleteLater()


def test_only_the_adapter_imports_nuke():
    importers = []
    for path in (p for p in PLUGIN.rglob("*.py") if "vendor" not in p.relative_to(PLUGIN).parts):
        for stmt in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else (
                [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("nuke", "nukescripts") for n in names):
                importers.append(path.relative_to(PLUGIN).as_posix())
    assert sorted(set(importers)) == ["shotpass_nuke/host.py"]


def test_init_and_menu_never_stop_nuke_from_starting(tmp_path):
    """Without nuke (or with a broken install) init.py/menu.py print a traceback and return."""
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]); runpy.run_path(sys.argv[2]); "
            "import shotpass_client, shotpass_nuke.bootstrap as b; print('ok', b.vendor_tag())")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code, str(PLUGIN / "init.py"), str(PLUGIN / "menu.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "shotpass: menu setup failed" in done.stdout and "No module named 'nuke'" in done.stderr
    from shotpass_nuke import bootstrap

    assert done.stdout.strip().endswith(f"ok {bootstrap.vendor_tag()}")


def test_bootstrap_picks_the_vendor_folder_of_the_running_python(tmp_path):
    from shotpass_nuke import bootstrap

    for tag in ("cp39-linux_x86_64", "cp311-linux_x86_64", "cp311-win_amd64"):
        (tmp_path / "nuke" / "vendor" / tag).mkdir(parents=True)
    assert bootstrap.vendor_tag((3, 9), bootstrap.platform_name("Linux", "x86_64")) == "cp39-linux_x86_64"
    assert bootstrap.platform_name("Darwin", "arm64") == "macosx_arm64"
    assert bootstrap.platform_name("Windows", "AMD64") == "win_amd64"
    paths = bootstrap.candidate_paths(str(tmp_path / "nuke"), "cp311-win_amd64")
    assert paths == [str(tmp_path / "nuke" / "vendor" / "cp311-win_amd64")]
    import vendor_wheels
    cmd = vendor_wheels.pip_command("3.10", "linux_x86_64", "/tmp/x")
    assert cmd[cmd.index("--python-version") + 1] == "3.10" and "--only-binary=:all:" in cmd
    assert "manylinux2014_x86_64" in cmd and "protobuf==5.29.6" in cmd


def test_path_mode_sends_a_mapped_read_as_paths_without_rendering_or_uploading(nk, beachball, tmp_path, monkeypatch):
    from conftest import BEACHBALL

    from shotpass_client import Client
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[BEACHBALL]))
    srv.start()
    try:
        monkeypatch.setenv("SHOTPASS_SERVER", srv.address)
        # The artist's mount of the plate folder maps to the server's own path for it.
        monkeypatch.setenv("SHOTPASS_PATH_MAP", f"{Path(beachball).parent}={BEACHBALL}")
        plate_read(beachball, 3, 5)
        node = connected_node()
        node.ui_set("pass", "passthrough")
        run(node, "render")
        assert "3 frame(s) written" in status(node), status(node)
        assert nuke.executed == [], "path mode must not render the plate through a temporary Write"
        entry = state(node)["versions"][0]
        with Client(srv.address) as client:
            render = client.get_render(entry["render_id"])
        assert [f.frame for f in render.frames] == [3, 4, 5]
        assert [f.input_name for f in render.frames] == [f"singlepart.{f:04d}.exr" for f in (3, 4, 5)]
        pattern = node.node("shotpass_read")["file"].value()
        for f in (3, 4, 5):
            out = channels(pattern.replace("####", f"{f:04d}"))["R"]
            assert np.array_equal(out, channels(beachball.replace("####", f"{f:04d}"))["R"])
    finally:
        srv.stop(0.5)


def test_tls_from_the_environment_reaches_a_mutual_tls_server(nk, beachball, tmp_path, monkeypatch):
    from helpers import write_pki

    from shotpass_client import Client
    from shotpass_client.client import tls_files
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    pki = write_pki(tmp_path / "pki")
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "tls-data", tls_cert=pki["server_cert"],
                                      tls_key=pki["server_key"], tls_client_ca=pki["ca_cert"]))
    srv.start()
    try:
        monkeypatch.setenv("SHOTPASS_SERVER", srv.address)
        read = plate_read(beachball, 1, 2)
        # Without certificates the node reports the failure on its status line.
        plain = host.create_node()
        pump_until(lambda: status(plain).startswith("server:"))
        assert "cannot reach a shotpass server" in status(plain)
        nuke.delete(plain)
        read.setSelected(True)
        for var, key in (("SHOTPASS_TLS_CA", "ca_cert"), ("SHOTPASS_TLS_CERT", "client_cert"),
                         ("SHOTPASS_TLS_KEY", "client_key")):
            monkeypatch.setenv(var, str(pki[key]))
        node = connected_node()
        assert f"connected to {srv.address} (mutual TLS)" in status(node), status(node)
        node.ui_set("pass", "passthrough")
        run(node, "render")  # the background job connects with the same TLS files
        assert "2 frame(s) written" in status(node), status(node)
        rid = state(node)["versions"][0]["render_id"]
        with Client(srv.address, **tls_files(str(pki["ca_cert"]), str(pki["client_cert"]),
                                             str(pki["client_key"]))) as client:  # type: ignore[arg-type]
            assert client.get_render(rid).frames_done == 2
        monkeypatch.setenv("SHOTPASS_TLS_KEY", str(tmp_path / "missing.key"))
        node["connect"].execute()
        pump_until(lambda: status(node).startswith("server:"))
        assert "missing.key" in status(node), status(node)
    finally:
        srv.stop(0.5)


def test_connection_settings_take_explicit_values_then_the_environment(tmp_path):
    from shotpass_client import ClientError
    from shotpass_client.connection import Connection

    env = {"SHOTPASS_SERVER": "gpu01:50051", "SHOTPASS_TOKEN": "t-env", "SHOTPASS_TLS_CA": "/env/ca.pem"}
    conn = Connection.resolve(" ", None, "", env=env)
    assert (conn.address, conn.token, conn.tls_ca, conn.tls_cert, conn.tls) == (
        "gpu01:50051", "t-env", "/env/ca.pem", None, True)
    mine = Connection.resolve("gpu02:1", "t-mine", "/my/ca.pem", "/my/c.pem", "/my/c.key", env=env)
    assert (mine.address, mine.token, mine.tls_ca, mine.tls_cert, mine.tls_key) == (
        "gpu02:1", "t-mine", "/my/ca.pem", "/my/c.pem", "/my/c.key")
    assert mine.describe() == "gpu02:1 (mutual TLS)" and "t-mine" not in mine.describe()
    assert Connection.resolve(env={}).address == "localhost:50051" and not Connection.resolve(env={}).tls
    with pytest.raises(ClientError, match="needs its key"):
        Connection.resolve("127.0.0.1:9", tls_cert=str(tmp_path / "c.pem"), env={}).client(0.1)


# ---------------------------------------------------------------- the fake is strict where Nuke is


def test_fake_nuke_is_strict_where_nuke_is(nk, beachball, tmp_path):
    import threading

    read = plate_read(beachball)
    group = nuke.createNode("Group", inpanel=False)
    assert group.inputs() == 0 and group.input(0) is None, "an empty Group has no input to connect"
    assert group.setInput(0, read) is False and group.input(0) is None
    with group:
        nuke.nodes.Input(name="in")
    assert group.setInput(0, read) is True and group.input(0) is read

    # A Group's knob scripts run inside it: the DAG's selection is only seen under `with nuke.root():`.
    seen = {}
    group.addKnob(nuke.PyScript_Knob("probe", "probe", "import __main__\n__main__.SEEN = ("
                                     "len(nuke.selectedNodes()), nuke.thisGroup().name())"))
    import __main__

    read.setSelected(True)
    group["probe"].execute()
    seen["inside"] = __main__.SEEN
    assert seen["inside"] == (0, group.name())

    errors = []

    def worker():
        try:
            read["file"].value()
        except RuntimeError as err:
            errors.append(str(err))

    t = threading.Thread(target=worker, name="probe-thread")
    t.start()
    t.join()
    assert errors and "main thread" in errors[0]
    assert nuke.thread_violations == ["Knob.value from thread probe-thread"] or \
        nuke.thread_violations[0].endswith("from thread probe-thread")
    nuke.thread_violations.clear()


def test_fake_execute_writes_what_the_write_knobs_say(nk, beachball, tmp_path):
    from helpers import header

    read = plate_read(beachball, 1, 2)
    write = nuke.nodes.Write(file=str(tmp_path / "w" / "out.####.exr"), file_type="exr")
    write.setInput(0, read)
    (tmp_path / "w").mkdir()
    src = channels(beachball.replace("####", "0001"))

    write["channels"].setValue("all")
    nuke.execute(write, 1, 1)  # the default datatype is 16 bit half, like Nuke's EXR writer
    out = channels(str(tmp_path / "w" / "out.0001.exr"))
    assert set(out) == set(src) and out["R"].dtype == np.float16 and np.array_equal(out["Z"], src["Z"])

    write["datatype"].setValue("32 bit float")
    write["channels"].setValue("rgba")
    nuke.execute(write, 1, 1)
    out = channels(str(tmp_path / "w" / "out.0001.exr"))
    assert sorted(out) == ["A", "B", "G", "R"] and out["G"].dtype == np.float32
    assert np.array_equal(out["G"], src["G"].astype(np.float32))

    write["channels"].setValue("disparityL")
    nuke.execute(write, 1, 1)
    assert sorted(channels(str(tmp_path / "w" / "out.0001.exr"))) == ["disparityL.x", "disparityL.y"]

    nuke.root()["views"].setValue("left right")
    write["channels"].setValue("rgb")
    write["file"].setValue(str(tmp_path / "w" / "st_%V.####.exr"))
    nuke.execute(write, 2, 2)
    assert (tmp_path / "w" / "st_left.0002.exr").is_file() and (tmp_path / "w" / "st_right.0002.exr").is_file()

    nuke.root()["views"].setValue("main")
    nuke.root()["proxy"].setValue(True)
    with pytest.raises(RuntimeError, match="proxy filename not set"):
        nuke.execute(write, 1, 1)
    write["proxy"].setValue(str(tmp_path / "w" / "px.####.exr"))
    nuke.execute(write, 1, 1)
    (x0, y0), (x1, y1) = header(str(tmp_path / "w" / "px.0001.exr"))["dataWindow"]
    (a0, b0), (a1, b1) = header(beachball.replace("####", "0001"))["dataWindow"]
    assert (x1 - x0 + 1, y1 - y0 + 1) == ((a1 - a0 + 1) // 2, (b1 - b0 + 1) // 2)


# ---------------------------------------------------------------- behaves like a Nuke node


def test_menu_creation_connects_the_selected_node_and_builds_inputs_inside(nk, beachball):
    host.install_menu()
    read = plate_read(beachball)
    exec(nuke.menu("Nodes").findItem("shotpass").findItem("ShotPass"), {})  # what the menu entry runs
    node = next(n for n in nuke.allNodes("Group"))
    assert node.input(0) is read and node.maxInputs() == 3
    assert [n.name() for n in node.nodes() if n.Class() == "Input"] == ["plate", "mask", "reference"]
    assert any(n.Class() == "Output" for n in node.nodes())
    pump_until(lambda: status(node).startswith("connected"))
    # Every knob the plugin adds explains itself; the node has help text (the "?" of its panel).
    bare = [name for name, k in node.knobs().items() if getattr(k, "_user", False) and not k.tooltip()]
    assert bare == []
    assert "output template" in node["help"].value()
    undoable = {k for n, k in nuke.undo_stack if n == node.name()}
    assert undoable == set(), f"knobs the plugin set entered the undo stack: {undoable}"


def test_settings_are_saved_with_the_script_and_sent_after_reopen(nk, beachball, client, tmp_path):
    host.install_menu()
    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "stylize")
    node.ui_set("model", "styletransfer-preset")
    node.ui_set("opt_style", "7")
    node.ui_set("opt_preserve_colour", True)
    node.ui_set("seed", 42)
    node.ui_set("strength", 0.25)
    node.ui_set("range_mode", "custom")
    node.ui_set("frames", "3")
    assert {k for n, k in nuke.undo_stack} >= {"opt_style", "seed", "strength"}, "user edits are undoable"
    script = nuke.root().name()
    nuke.scriptSave(script)

    nuke.scriptClose()
    host.CONTROLLER.info.clear()  # a new Nuke session: nothing of the server is known yet
    nuke.scriptOpen(script)
    node = nuke.toNode("ShotPass1")
    assert (node["pass"].value(), node["model"].value(), node["opt_style"].value()) == (
        "stylize", "styletransfer-preset", "7")
    spec = host.CONTROLLER.spec(node)  # before the server answered: the saved knobs are what is sent
    assert spec.options["style"] == "7" and spec.options["preserve_colour"] == "true" and spec.seed == 42
    pump_until(lambda: status(node).startswith("connected"))  # onScriptLoad reconnected the node
    run(node, "render")
    assert "1 frame(s) written" in status(node), status(node)
    sent = client.get_render(state(node)["versions"][0]["render_id"]).settings
    assert (sent.options["style"], sent.options["preserve_colour"], sent.seed) == ("7", "true", 42)
    assert float(sent.options["strength"]) == 0.25


def test_a_rename_mid_render_keeps_the_result(nk, beachball):
    plate_read(beachball, 1, 3)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node["render"].execute()
    node.setName("Hero")  # before the first plate frame: every update of this render comes later
    pump_until(lambda: state(node)["versions"])  # submitted
    node.setName("HeroGrade")
    pump_until(lambda: not host.CONTROLLER.jobs)
    nuke.pump()
    assert nuke.toNode("HeroGrade") is node and "3 frame(s) written" in status(node), status(node)
    assert node.node("shotpass_switch")["which"].value() == 1


def test_a_render_finished_while_nuke_was_closed_is_fetched_on_reopen(nk, beachball):
    host.install_menu()
    plate_read(beachball, 1, 2)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node["render"].execute()
    pump_until(lambda: state(node)["versions"] and state(node)["versions"][0].get("pattern"))
    script = nuke.root().name()
    nuke.scriptSave(script)  # the artist saves and quits while the server renders
    pattern = state(node)["versions"][0]["pattern"]
    nuke.scriptClose()
    pump_until(lambda: not host.CONTROLLER.jobs)
    for f in (1, 2):  # Nuke quit before the download: nothing of the result is on disk
        Path(pattern.replace("####", f"{f:04d}")).unlink(missing_ok=True)
    host.CONTROLLER.info.clear()

    nuke.scriptOpen(script)
    node = nuke.toNode("ShotPass1")
    pump_until(lambda: "finished meanwhile" in status(node))
    assert [Path(pattern.replace("####", f"{f:04d}")).is_file() for f in (1, 2)] == [True, True]
    assert node.node("shotpass_read")["file"].value() == pattern
    assert node.node("shotpass_switch")["which"].value() == 1
    assert state(node)["versions"][0]["state"] == "finished"


# ---------------------------------------------------------------- keeps the plate whole


def float_plate(beachball, tmp_path, frames=(1, 2)):
    """The Beachball frames stored as 32-bit float (every channel), as a float plate would come from a render."""
    import OpenEXR

    folder = tmp_path / "float"
    folder.mkdir()
    for f in frames:
        src = beachball.replace("####", f"{f:04d}")
        with OpenEXR.File(src, separate_channels=True) as exr:
            head = exr.parts[0].header
            pixels = {k: np.array(v.pixels).astype(np.float32) for k, v in exr.parts[0].channels.items()}
            keep = {k: head[k] for k in ("dataWindow", "displayWindow", "pixelAspectRatio")}
        OpenEXR.File({**keep, "compression": OpenEXR.ZIP_COMPRESSION}, pixels).write(
            str(folder / f"float.{f:04d}.exr"))
    return str(folder / "float.####.exr")


def test_a_half_plate_travels_as_half_with_every_channel(nk, beachball):
    plate_read(beachball, 1, 2)
    node = connected_node()
    assert node["channels"].value() == "all"
    node.ui_set("pass", "passthrough")
    run(node, "render")
    pattern = node.node("shotpass_read")["file"].value()
    for f in (1, 2):
        src, out = channels(beachball.replace("####", f"{f:04d}")), channels(pattern.replace("####", f"{f:04d}"))
        assert set(out) == set(src) and {"Z", "disparityL.x"} <= set(out), "Z and AOVs must travel"
        for name in src:
            assert out[name].dtype == np.float16 and np.array_equal(out[name], src[name]), name


def test_a_float_plate_stays_float_bit_for_bit(nk, beachball, tmp_path):
    plate = float_plate(beachball, tmp_path)
    plate_read(plate, 1, 2)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    pattern = node.node("shotpass_read")["file"].value()
    for f in (1, 2):
        src, out = channels(plate.replace("####", f"{f:04d}")), channels(pattern.replace("####", f"{f:04d}"))
        assert set(out) == set(src)
        for name in src:
            assert out[name].dtype == np.float32 and np.array_equal(out[name], src[name]), name


def test_the_channels_knob_picks_what_is_sent(nk, beachball):
    plate_read(beachball, 1, 1)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node.ui_set("channels", "rgba")
    run(node, "render")
    out = channels(node.node("shotpass_read")["file"].value().replace("####", "0001"))
    assert sorted(out) == ["A", "B", "G", "R"]


def test_outputs_follow_the_output_template_and_versions(nk, beachball, tmp_path, monkeypatch):
    plate_read(beachball, 1, 2)
    node = connected_node()
    out = os.environ["SHOTPASS_OUTPUT"]
    assert node["output"].value() == os.path.join(out, "sh010_comp", "v###", "sh010_comp.####.exr")
    node.ui_set("pass", "passthrough")
    run(node, "render")
    assert node.node("shotpass_read")["file"].value() == os.path.join(out, "sh010_comp", "v001",
                                                                      "sh010_comp.####.exr")
    monkeypatch.setenv("SHOT_ROOT", str(tmp_path / "shots"))
    node.ui_set("output", "$SHOT_ROOT/sh010/comp/shotpass_v###/sh010_fx_v###.####.exr")
    run(node, "render")
    expected = str(tmp_path / "shots" / "sh010" / "comp" / "shotpass_v002" / "sh010_fx_v002.####.exr")
    assert node.node("shotpass_read")["file"].value() == expected
    assert Path(expected.replace("####", "0002")).is_file()
    node.ui_set("output", str(tmp_path / "flat.####.exr"))
    node["render"].execute()
    assert status(node).startswith("cannot render: output") and "v###" in status(node)


def test_take_out_as_read_gives_a_plain_read_of_the_version(nk, beachball):
    plate_read(beachball, 1, 2)
    node = connected_node()
    node["take_out"].execute()
    assert "select a finished version" in status(node)
    node.ui_set("pass", "passthrough")
    run(node, "render")
    node["take_out"].execute()
    reads = [n for n in nuke.allNodes("Read") if n.name() != "Read1"]
    assert len(reads) == 1, "one Read, at the script's level (outside the ShotPass group)"
    read = reads[0]
    assert read["file"].value() == node.node("shotpass_read")["file"].value()
    assert [read[k].value() for k in ("first", "last", "origfirst", "origlast")] == [1, 2, 1, 2]
    assert read["raw"].value() is False and read["colorspace"].value() == "ACES - ACEScg"
    assert "v001" in read["label"].value()
    assert "taken out as" in status(node)


def test_the_label_shows_version_and_state(nk, beachball):
    plate_read(beachball, 1, 1)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    assert nuke._evaluate_tcl(node["label"].value(), node) == "passthrough\nv001 finished"
    # Only the user's own edit is undoable: status, versions, state and lists the plugin set are not.
    mine = {(n, knob) for n, knob in nuke.undo_stack if n.split(".")[0] == node.name()}
    assert mine == {(node.name(), "pass")}


def test_a_stereo_script_renders_both_views_into_one_version(nk, beachball, tmp_path, client):
    from conftest import BEACHBALL

    for view, shift in (("left", 0), ("right", 1)):  # the right eye sees the next Beachball frame
        folder = tmp_path / "stereo" / view
        folder.mkdir(parents=True)
        for f in (1, 2):
            (folder / f"plate.{f:04d}.exr").symlink_to(BEACHBALL / f"singlepart.{f + shift:04d}.exr")
    nuke.root()["views"].setValue("left right")
    plate_read(str(tmp_path / "stereo" / "%V" / "plate.####.exr"), 1, 2)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    assert "2 frame(s) x 2 views written" in status(node), status(node)
    assert nuke.executed == [("Write1", f, f, ("left", "right")) for f in (1, 2)]
    pattern = node.node("shotpass_read")["file"].value()
    assert pattern.endswith(os.path.join("v001", "sh010_comp_%V.####.exr")), pattern
    for view, shift in (("left", 0), ("right", 1)):
        for f in (1, 2):
            out = channels(pattern.replace("%V", view).replace("####", f"{f:04d}"))
            src = channels(str(BEACHBALL / f"singlepart.{f + shift:04d}.exr"))
            assert set(out) == set(src) and np.array_equal(out["R"], src["R"]), (view, f)
    entry = state(node)["versions"][0]
    assert sorted(entry["views"]) == ["left", "right"] and entry["state"] == "finished"
    labels = {client.get_render(rid).label for rid in entry["views"].values()}
    assert labels == {"ShotPass1 (left)", "ShotPass1 (right)"}


def test_proxy_mode_renders_at_proxy_size_and_comes_back_as_the_proxy(nk, beachball):
    from helpers import windows

    nuke.root()["proxy"].setValue(True)
    plate_read(beachball, 1, 1)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    inner = node.node("shotpass_read")
    pattern = inner["file"].value()
    assert inner["proxy"].value() == pattern and state(node)["versions"][0]["proxy"] is True
    (x0, y0, x1, y1), _display, _par = windows(pattern.replace("####", "0001"))
    (a0, b0, a1, b1), _d, _p = windows(beachball.replace("####", "0001"))
    assert (x1 - x0 + 1, y1 - y0 + 1) == ((a1 - a0 + 1) // 2, (b1 - b0 + 1) // 2)


def test_an_roi_processes_only_its_box_and_the_plate_passes_through_outside(nk, beachball, tmp_path):
    from helpers import windows

    plate_read(beachball, 1, 1)
    node = connected_node()
    node.ui_set("pass", "stylize")
    node.ui_set("model", "styletransfer-preset")
    node.ui_set("use_roi", True)
    node.ui_set("roi", [900, 600, 1100, 760])  # Nuke's pixels: y up; the display is 2048x1556
    run(node, "render")
    assert "1 frame(s) written" in status(node), status(node)
    assert not nuke.allNodes("Crop") and not nuke.allNodes("Write"), "temporary nodes were left behind"
    result = node.node("shotpass_read")["file"].value().replace("####", "0001")
    assert windows(result)[0] == (900, 1556 - 760, 1099, 1555 - 600), "only the box was sent and processed"

    write = nuke.nodes.Write(file=str(tmp_path / "comp.####.exr"), file_type="exr", channels="all")
    write["datatype"].setValue("32 bit float")
    write.setInput(0, node)
    nuke.execute(write, 1, 1)  # what the node shows downstream
    comp, plate, res = (channels(p) for p in (str(tmp_path / "comp.0001.exr"), beachball.replace("####", "0001"),
                                              result))
    plate_window = windows(beachball.replace("####", "0001"))[0]
    assert windows(str(tmp_path / "comp.0001.exr"))[0] == plate_window, "the plate's bbox is kept"
    x0, y0 = plate_window[:2]
    box = (slice(796 - y0, 955 - y0 + 1), slice(900 - x0, 1099 - x0 + 1))
    for name in ("R", "G", "B"):
        expected = plate[name].astype(np.float32)
        assert not np.array_equal(res[name].astype(np.float32), expected[box]), "the pass changed nothing"
        expected[box] = res[name]
        assert np.array_equal(comp[name], expected), f"{name}: outside the box the plate must pass untouched"
    assert np.array_equal(comp["Z"], plate["Z"].astype(np.float32))


# ---------------------------------------------------------------- colour, file names, frame ranges


def test_colour_names_map_to_the_servers_config():
    from shotpass_client.colour_names import ColourNameError, server_colour_space
    from shotpass_server.frames.colour import ColourSpaces

    spaces = ColourSpaces().names()
    assert server_colour_space("linear", spaces) == "Linear Rec.709 (sRGB)", "nuke-default linear is Rec.709"
    assert server_colour_space("default (linear)", spaces) == "Linear Rec.709 (sRGB)"
    assert server_colour_space("sRGB", spaces) == "sRGB Encoded Rec.709 (sRGB)"
    assert server_colour_space("ACES - ACEScg", spaces) == "ACEScg"
    assert server_colour_space("Utility - sRGB - Texture", spaces) == "sRGB Encoded Rec.709 (sRGB)"
    assert server_colour_space("Linear Rec.2020", spaces) == "Linear Rec.2020"
    with pytest.raises(ColourNameError, match="'Cineon' has no equivalent"):
        server_colour_space("Cineon", spaces)


def test_nuke_default_linear_is_sent_as_rec709_linear_and_the_result_read_uses_it(nk, beachball, client):
    nuke.root()["OCIO_config"].setValue("nuke-default")
    nuke.root()["workingSpaceLUT"].setValue("linear")
    plate_read(beachball, 1, 1)
    node = connected_node()
    assert node["colour_space"].values()[:3] == ["auto", "linear", "sRGB"], "the menu is the script's config"
    node.ui_set("pass", "passthrough")
    run(node, "render")
    rid = state(node)["versions"][0]["render_id"]
    assert client.get_render(rid).settings.colour_space == "Linear Rec.709 (sRGB)"
    inner = node.node("shotpass_read")
    assert inner["colorspace"].value() == "linear" and inner["raw"].value() is False
    node.ui_set("colour_space", "Cineon")
    node["render"].execute()
    assert status(node).startswith("cannot render: colour space 'Cineon' has no equivalent"), status(node)


def test_path_mode_sends_the_reads_own_colour_space_evaluated_path_and_offset(nk, beachball, tmp_path, monkeypatch,
                                                                             client):
    from conftest import BEACHBALL

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[BEACHBALL]))
    srv.start()
    try:
        monkeypatch.setenv("SHOTPASS_SERVER", srv.address)
        monkeypatch.setenv("SHOTPASS_PATH_MAP", f"{Path(beachball).parent}={BEACHBALL}")
        monkeypatch.setenv("PLATES", str(Path(beachball).parent))
        read = plate_read("[getenv PLATES]/singlepart.####.exr", 1, 3)
        read["frame_mode"].setValue("offset")
        read["frame"].setValue("1000")  # the plate's file frames 1-3 are the comp's frames 1001-1003
        read["colorspace"].setValue("Utility - sRGB - Texture")
        node = connected_node()
        node.ui_set("pass", "passthrough")
        run(node, "render")
        assert "3 frame(s) written" in status(node), status(node)
        assert nuke.executed == [], "path mode renders nothing locally"
        from shotpass_client import Client

        with Client(srv.address) as c:
            render = c.get_render(state(node)["versions"][0]["render_id"])
        assert render.settings.colour_space == "sRGB Encoded Rec.709 (sRGB)"
        assert [(f.frame, f.input_name) for f in render.frames] == [
            (1000 + f, f"singlepart.{f:04d}.exr") for f in (1, 2, 3)]
        inner = node.node("shotpass_read")
        assert inner["colorspace"].value() == "Utility - sRGB - Texture"
        pattern = inner["file"].value()
        for f in (1, 2, 3):
            out = channels(pattern.replace("####", f"{1000 + f:04d}"))["R"]
            assert np.array_equal(out, channels(beachball.replace("####", f"{f:04d}"))["R"])
    finally:
        srv.stop(0.5)


def test_a_read_frame_offset_is_respected_when_the_plate_is_rendered(nk, beachball):
    read = plate_read(beachball, 1, 2)
    read["frame_mode"].setValue("start at")
    read["frame"].setValue("1001")
    node = connected_node()
    node.ui_set("pass", "passthrough")
    run(node, "render")
    inner = node.node("shotpass_read")
    assert [inner[k].value() for k in ("first", "last")] == [1001, 1002]
    for f in (1, 2):
        out = channels(inner["file"].value().replace("####", f"{1000 + f:04d}"))["R"]
        assert np.array_equal(out, channels(beachball.replace("####", f"{f:04d}"))["R"])


@pytest.mark.parametrize("path_mode", [False, True])
def test_an_unnumbered_still_renders_as_one_frame(nk, beachball, tmp_path, monkeypatch, path_mode):
    import shutil

    from conftest import BEACHBALL

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    stills = tmp_path / "stills"
    stills.mkdir()
    still = stills / "still.exr"  # a file the server may read in path mode (its root), named without a number
    shutil.copy(BEACHBALL / "singlepart.0004.exr", still)
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[stills]))
    srv.start()
    try:
        monkeypatch.setenv("SHOTPASS_SERVER", srv.address)
        if path_mode:
            monkeypatch.setenv("SHOTPASS_PATH_MAP", f"{stills}={stills}")
        plate_read(str(still), 1, 1)
        node = connected_node()
        node.ui_set("pass", "passthrough")
        run(node, "render")
        assert "1 frame(s) written" in status(node), status(node)
        assert (nuke.executed == []) == path_mode
        out = channels(node.node("shotpass_read")["file"].value().replace("####", "0001"))["R"]
        assert np.array_equal(out, channels(str(still))["R"])
    finally:
        srv.stop(0.5)


# ---------------------------------------------------------------- farm


def test_nuke_t_renders_a_saved_script_headless_with_progress_on_stdout(nk, beachball, server):
    plate_read(beachball, 1, 8)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    node.ui_set("range_mode", "custom")
    node.ui_set("frames", "2-3")
    script = nuke.root().name()
    nuke.scriptSave(script)
    # `nuke -t shotpass_render.py script.nk ShotPass1 --save`: Nuke's Python with the script's plugin path.
    env = {**os.environ, "PYTHONPATH": str(FAKE), "SHOTPASS_SERVER": server.address}
    done = subprocess.run([sys.executable, str(PLUGIN / "shotpass_render.py"), script, "ShotPass1", "--save"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any("rendering the plate locally: frame 2 (1/2)" in line for line in lines), done.stdout
    assert any("rendering: 2/2 frames" in line for line in lines), done.stdout
    assert any(line.endswith("2 frame(s) written") for line in lines), done.stdout
    nuke.scriptOpen(script)  # saved back: the node lists its new version
    node = nuke.toNode("ShotPass1")
    entry = state(node)["versions"][0]
    assert entry["state"] == "finished" and (entry["first"], entry["last"]) == (2, 3)
    for f in (2, 3):
        out = channels(entry["pattern"].replace("####", f"{f:04d}"))["R"]
        assert np.array_equal(out, channels(beachball.replace("####", f"{f:04d}"))["R"])
    bad = subprocess.run([sys.executable, str(PLUGIN / "shotpass_render.py"), script, "NoSuchNode"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "no ShotPass node NoSuchNode" in bad.stdout


def test_the_farm_command_is_a_working_shotpass_render_line(nk, beachball, capsys):
    import shlex

    from helpers import run_cli

    plate_read(beachball, 1, 8)
    node = connected_node()
    node.ui_set("pass", "stylize")
    node.ui_set("model", "styletransfer-preset")
    node.ui_set("opt_style", "3")
    node.ui_set("range_mode", "custom")
    node.ui_set("frames", "4")
    node["farm"].execute()
    lines = node["farm_command"].value().splitlines()
    assert lines[0].startswith("nuke -t ") and "shotpass_render.py" in lines[0] and "ShotPass1 --save" in lines[0]
    argv = shlex.split(lines[1])
    assert argv[:2] == ["shotpass", "render"] and "style=3" in argv and "--colour-space" in argv
    capsys.readouterr()
    code, payload, err = run_cli(capsys, argv[1:] + ["--json"])
    assert code == 0, err
    out_dir = Path(argv[argv.index("--out") + 1])
    assert out_dir.name == "farm" and (out_dir / "singlepart.0004.exr").is_file()


def test_a_pasted_copy_gets_its_own_id_and_results_go_to_the_node_that_rendered(nk, beachball):
    plate_read(beachball, 1, 2)
    node = connected_node()
    node.ui_set("pass", "passthrough")
    for n in nuke.allNodes():
        n.setSelected(n is node)
    nuke.nodeCopy("%clipboard%")
    copy = nuke.nodePaste("%clipboard%")
    assert copy is not node and copy.name() == "ShotPass2"
    assert copy["shotpass_id"].value() and copy["shotpass_id"].value() != node["shotpass_id"].value()
    copy.setInput(0, node.input(0))
    run(copy, "render")
    assert "2 frame(s) written" in status(copy), status(copy)
    assert state(copy)["versions"] and not state(node)["versions"], "the result went to the wrong node"


def test_a_render_still_running_at_reopen_is_waited_for_then_shown(nk, beachball, client):
    from shotpass_client.jobs import RenderSpec, submit_render

    host.install_menu()
    plate_read(beachball, 1, 4)
    node = connected_node()
    # What a node saved mid-render holds: the render's id and where its frames go (submitted here directly,
    # so no job of this Nuke session is watching it).
    submitted = submit_render(client, RenderSpec(project="proj", shot="sh010_comp", pass_name="stylize",
                                                 model="styletransfer-preset", seed=1),
                              {f: beachball.replace("####", f"{f:04d}") for f in range(1, 5)})
    pattern = os.path.join(os.environ["SHOTPASS_OUTPUT"], "sh010_comp", "v001", "sh010_comp.####.exr")
    node["shotpass_state"].setValue(json.dumps({"selected": "", "versions": [
        {"render_id": submitted.render_id, "version": 1, "state": "queued", "pattern": pattern,
         "first": 1, "last": 4, "lane": "render"}]}))
    script = nuke.root().name()
    nuke.scriptSave(script)
    nuke.scriptClose()
    host.CONTROLLER.info.clear()
    nuke.scriptOpen(script)
    node = nuke.toNode("ShotPass1")
    pump_until(lambda: "finished meanwhile" in status(node), timeout=180)
    from shotpass_client.proto import shotpass_pb2 as pb

    assert client.get_render(submitted.render_id).state == pb.FINISHED
    assert [Path(pattern.replace("####", f"{f:04d}")).is_file() for f in range(1, 5)] == [True] * 4
    assert node.node("shotpass_read")["file"].value() == pattern
    assert state(node)["versions"][0]["state"] == "finished"


def test_suspend_and_resume_the_nodes_running_render_then_it_finishes(nk, beachball, client):
    from shotpass_client.proto import shotpass_pb2 as pb

    plate_read(beachball)
    node = connected_node()
    node.ui_set("pass", "stylize")
    node["render"].execute()
    pump_until(lambda: nuke.ProgressTask.instances and nuke.ProgressTask.instances[-1].progress > 30)
    node["suspend"].execute()
    pump_until(lambda: "suspended" in status(node))
    render_id = state(node)["versions"][0]["render_id"]
    pump_until(lambda: client.render_state(render_id).state == pb.SUSPENDED)  # the running frame finished
    pump_until(lambda: state(node)["versions"][0]["state"] == "suspended")  # the watch shows it on the node
    assert "suspended" in status(node) and "suspended" in node["shotpass_summary"].value()
    held = client.render_state(render_id).frames_done
    assert held < 8, "the render finished before it was suspended: nothing was tested"
    time.sleep(1.0)
    assert client.render_state(render_id).frames_done == held, "a suspended render started frames"
    assert host.CONTROLLER.jobs, "the node's job stops watching a suspended render"
    node["resume"].execute()
    pump_until(lambda: not host.CONTROLLER.jobs, timeout=180)
    nuke.pump()
    assert "8 frame(s) written" in status(node), status(node)
    assert client.get_render(render_id).state == pb.FINISHED and state(node)["versions"][0]["state"] == "finished"


def test_requeue_failed_frames_of_the_selected_version_fetches_them_and_shows_qc(nk, beachball, client):
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    plate_read(beachball, 1, 3)
    node = connected_node()
    # A version whose frames all ran past a (too short) per-frame timeout.
    submitted = submit_render(client, RenderSpec(project="proj", shot="sh010_comp", pass_name="stylize",
                                                 model="styletransfer-preset", seed=1, frame_timeout=0.000001),
                              {f: beachball.replace("####", f"{f:04d}") for f in range(1, 4)})
    assert client.wait(submitted.render_id).state == pb.FAILED
    pattern = os.path.join(os.environ["SHOTPASS_OUTPUT"], "sh010_comp", "v001", "sh010_comp.####.exr")
    node["shotpass_state"].setValue(json.dumps({"selected": submitted.render_id, "versions": [
        {"render_id": submitted.render_id, "version": 1, "state": "failed", "pattern": pattern,
         "first": 1, "last": 3, "lane": "render", "fetched": True}]}))
    node["requeue"].execute()
    pump_until(lambda: "requeued; frame timeout lifted" in status(node) or "failed" in status(node))
    assert "frames 1, 2, 3 requeued" in status(node), status(node)
    pump_until(lambda: "finished meanwhile" in status(node), timeout=180)
    assert [Path(pattern.replace("####", f"{f:04d}")).is_file() for f in range(1, 4)] == [True] * 3
    assert node.node("shotpass_read")["file"].value() == pattern
    entry = state(node)["versions"][0]
    assert entry["state"] == "finished" and entry["qc"]["flicker_ratio"] > 0
    assert node["shotpass_summary"].value().startswith("v001 finished QC flicker "), node["shotpass_summary"].value()
    assert "flicker" in node["version"].value()


def test_unavailable_models_are_marked_and_refused(nk, beachball, server):
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.ui_model import UNAVAILABLE_MARK

    plate_read(beachball, 1, 1)
    node = connected_node()
    info = pb.ServerInfo()
    info.CopyFrom(host.CONTROLLER.info[server.address])
    broken = next(m for m in info.models if m.name == "styletransfer-preset")
    broken.unavailable = "weights missing: run shotpass-server fetch-models"
    host.CONTROLLER.info[server.address] = info  # what a server with missing weights lists
    node.ui_set("pass", "stylize")
    menu = node["model"].values()
    assert "styletransfer-preset" + UNAVAILABLE_MARK == menu[-1] and "styletransfer-preset" not in menu
    assert node["model"].value() != menu[-1], "an unavailable model was offered as the default"
    node.ui_set("model", menu[-1])
    node["render"].execute()
    nuke.pump()
    assert "unavailable on this server (weights missing" in status(node), status(node)
    assert not host.CONTROLLER.jobs
