"""What the ShotPass node does, written against a small host interface (see host.py) instead of `nuke`.

Main-thread work (reading knobs, rendering the node's inputs to EXR files, pointing the internal Read at
a version) goes through `self.host`; server work runs in `shotpass_client.background.BackgroundRender`,
watched by a monitor thread that drives a progress task and posts every update back to the main thread.
Nothing here raises into the host's UI: failures end up on the node's status line.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from shotpass_client import ClientError
from shotpass_client.background import (
    DONE,
    FAILED,
    PROGRESS,
    SUBMITTED,
    UPLOADING,
    WARNING,
    BackgroundRender,
    JobRequest,
    JobUpdate,
    drain_updates,
)
from shotpass_client.client import DEFAULT_ADDRESS
from shotpass_client.connection import Connection
from shotpass_client.jobs import RenderSpec, server_paths
from shotpass_client.pathmap import PathMap
from shotpass_client.patterns import FramePattern, PatternError, parse_frame_range
from shotpass_client.ui_model import (
    default_output_dir,
    find_model,
    match_colour_space,
    option_fields,
    pass_models,
    render_summary,
    script_project_shot,
    version_label,
)

STATE_KNOB = "shotpass_state"
OPTION_PREFIX = "opt_"
NO_VERSIONS = "(no renders yet)"
# Knobs that "Reuse Settings" copies; options (opt_*) are copied too.
SETTINGS_KNOBS = ("pass", "model", "prompt", "negative_prompt", "strength", "seed", "colour_space",
                  "range_mode", "frames")
INPUT_RANGE, CUSTOM_RANGE = "input range", "custom"
CONNECT_TIMEOUT = 3.0


def connection(address: str) -> Connection:
    """The node's server with the studio's token and TLS files: SHOTPASS_TOKEN, SHOTPASS_TLS_CA,
    SHOTPASS_TLS_CERT and SHOTPASS_TLS_KEY, set where Nuke is launched (never stored in the script)."""
    return Connection.resolve(address)


class SetupError(ValueError):
    """Something the user can fix before a render starts (no plate connected, bad frame range)."""


class Controller:
    def __init__(self, host: Any) -> None:
        self.host = host
        self.jobs: Dict[str, BackgroundRender] = {}
        self.info: Dict[str, Any] = {}  # server address -> pb.ServerInfo
        self._lock = threading.Lock()
        self._quiet = 0  # >0 while the controller itself sets knobs: their knobChanged is not a user edit

    # ------------------------------------------------------------------ state (hidden JSON knob)

    def state(self, node: Any) -> Dict[str, Any]:
        try:
            st = json.loads(self.host.get(node, STATE_KNOB) or "{}")
        except ValueError:
            st = {}
        st.setdefault("versions", [])
        st.setdefault("selected", "")
        return st

    def save_state(self, node: Any, st: Dict[str, Any]) -> None:
        """Write the state and mirror it on the version/rating/pin knobs (their knobChanged is ignored)."""
        self._quiet += 1
        try:
            self.host.set(node, STATE_KNOB, json.dumps(st, sort_keys=True))
            labels = [version_label(e) for e in reversed(st["versions"])] or [NO_VERSIONS]
            selected = self.selected_entry(st)
            self.host.set_choices(node, "version", labels, version_label(selected) if selected else labels[0])
            if selected:
                self.host.set(node, "rating", int(selected.get("rating") or 0))
                self.host.set(node, "pinned", bool(selected.get("pinned")))
        finally:
            self._quiet -= 1

    @staticmethod
    def selected_entry(st: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        for entry in st["versions"]:
            if entry["render_id"] == st.get("selected"):
                return entry
        return None

    @staticmethod
    def entry(st: Dict[str, Any], render_id: str) -> Dict[str, Any]:
        for e in st["versions"]:
            if e["render_id"] == render_id:
                return e
        e = {"render_id": render_id, "state": "queued", "version": 0}
        st["versions"].append(e)
        return e

    def status(self, node: Any, text: str) -> None:
        self.host.set(node, "status", text)

    def _status_by_name(self, name: str, text: str) -> None:
        node = self.host.find_node(name)
        if node is not None:
            self.status(node, text)

    # ------------------------------------------------------------------ creation and server info

    def on_create(self, node: Any) -> None:
        """Fill defaults from the environment and the script, then ask the server for its models."""
        script = self.host.script_path()
        project, shot = script_project_shot(script)
        self.host.set(node, "server", os.environ.get("SHOTPASS_SERVER", DEFAULT_ADDRESS))
        self.host.set(node, "project", project)
        self.host.set(node, "shot", shot)
        self.host.set(node, "output_dir", default_output_dir(script))
        self.host.set(node, "colour_space", self.host.working_space())
        self.save_state(node, self.state(node))
        self.refresh(node)

    def refresh(self, node: Any) -> None:
        """Fetch models and option schemas and this node's render states, off the main thread."""
        name, address = self.host.full_name(node), self.host.get(node, "server")
        project, shot = self.host.get(node, "project"), self.host.get(node, "shot")
        self.status(node, f"connecting to {address} ...")

        def work() -> None:
            try:
                with connection(address).client(CONNECT_TIMEOUT) as client:
                    info = client.server_info()
                    renders = client.list_renders(project=project, shot=shot)
                self.host.main_thread(self._apply_info, name, address, info, renders)
            except ClientError as err:
                self.host.main_thread(self._status_by_name, name, f"server: {err}")
            except Exception as err:  # a worker thread must never die into the host
                self.host.main_thread(self._status_by_name, name, f"server: unexpected {type(err).__name__}: {err}")

        threading.Thread(target=work, name="shotpass-refresh", daemon=True).start()

    def _apply_info(self, name: str, address: str, info: Any, renders: List[Any]) -> None:
        node = self.host.find_node(name)
        if node is None:
            return
        self.info[address] = info
        passes = [p.name for p in info.passes]
        current = self.host.get(node, "pass")
        self.host.set_choices(node, "pass", passes, current if current in passes else
                              ("stylize" if "stylize" in passes else passes[0] if passes else ""))
        self.update_models(node)
        space = match_colour_space(self.host.get(node, "colour_space"), list(info.colour_spaces),
                                   info.default_colour_space)
        self.host.set(node, "colour_space", space)
        st = self.state(node)
        by_id = {r.id: r for r in renders}
        for e in st["versions"]:
            if e["render_id"] in by_id:
                e.update(render_summary(by_id[e["render_id"]]))
        self.save_state(node, st)
        self.status(node, f"connected to {connection(address).describe()}: server {info.version}, "
                          f"{len(info.models)} models")

    def _server_info(self, node: Any) -> Any:
        return self.info.get(self.host.get(node, "server"))

    def update_models(self, node: Any) -> None:
        info = self._server_info(node)
        if info is None:
            return
        models, default = pass_models(info, self.host.get(node, "pass"))
        current = self.host.get(node, "model")
        self.host.set_choices(node, "model", models, current if current in models else default)
        self.sync_options(node)

    def sync_options(self, node: Any) -> None:
        info = self._server_info(node)
        model = find_model(info, self.host.get(node, "model")) if info is not None else None
        if model is None:
            return
        self.host.sync_option_knobs(node, OPTION_PREFIX, option_fields(model, skip=("strength",)))
        self.host.enable(node, "strength", any(o.name == "strength" for o in model.options))
        self.host.enable(node, "prompt", model.uses_prompt)
        self.host.enable(node, "negative_prompt", model.uses_prompt)

    # ------------------------------------------------------------------ callbacks

    def knob_changed(self, node: Any, knob: str) -> None:
        if self._quiet:
            return
        if knob == "server":
            self.refresh(node)
        elif knob == "pass":
            self.update_models(node)
        elif knob == "model":
            self.sync_options(node)
        elif knob == "version":
            self.select_version(node, self.host.get(node, "version"))
        elif knob in ("rating", "pinned"):
            self.review(node)

    def button(self, node: Any, name: str) -> None:
        actions: Dict[str, Callable[[Any], None]] = {
            "connect": self.refresh,
            "render": self.render,
            "preview": lambda n: self.render(n, preview=True),
            "cancel": self.cancel,
            "edit_render": self.edit_render,
            "reuse_settings": self.reuse_settings,
        }
        actions[name](node)

    # ------------------------------------------------------------------ settings

    def spec(self, node: Any) -> RenderSpec:
        options: Dict[str, str] = {}
        model = find_model(self._server_info(node), self.host.get(node, "model")) if self._server_info(node) else None
        if model is not None:
            for field in option_fields(model):
                if field.name == "strength":
                    options["strength"] = field.text(self.host.get(node, "strength"))
                else:
                    value = self.host.get(node, OPTION_PREFIX + field.name)
                    if value is not None:
                        options[field.name] = field.text(value)
        return RenderSpec(
            project=self.host.get(node, "project") or "default",
            shot=self.host.get(node, "shot") or "untitled",
            pass_name=self.host.get(node, "pass") or "",
            model=self.host.get(node, "model") or "",
            prompt=self.host.get(node, "prompt") or "",
            negative_prompt=self.host.get(node, "negative_prompt") or "",
            options=options,
            seed=int(self.host.get(node, "seed") or 0),
            colour_space=self.host.get(node, "colour_space") or "",
            label=self.host.full_name(node),
        )

    def settings(self, node: Any) -> Dict[str, Any]:
        values = {k: self.host.get(node, k) for k in SETTINGS_KNOBS}
        values.update(self.host.option_values(node, OPTION_PREFIX))
        return values

    def reuse_settings(self, node: Any) -> None:
        targets = [n for n in self.host.selected_shotpass_nodes()
                   if self.host.full_name(n) != self.host.full_name(node)]
        if not targets:
            self.status(node, "reuse settings: select the ShotPass nodes to copy these settings to")
            return
        values = self.settings(node)
        for target in targets:
            for key in ("server", "output_dir"):
                self.host.set(target, key, self.host.get(node, key))
            self.info.setdefault(self.host.get(target, "server"), self._server_info(node))
            self.host.set_choices(target, "pass", self.host.choices(node, "pass"), values["pass"])
            self.host.set_choices(target, "model", self.host.choices(node, "model"), values["model"])
            self.sync_options(target)
            for key, value in values.items():
                if key not in ("pass", "model"):
                    self.host.set(target, key, value)
            self.status(target, f"settings copied from {self.host.full_name(node)}")
        names = ", ".join(self.host.full_name(t) for t in targets)
        self.status(node, f"settings copied to {names}")

    # ------------------------------------------------------------------ render / preview

    def render(self, node: Any, preview: bool = False) -> None:
        name = self.host.full_name(node)
        running = self.jobs.get(name)
        if running is not None and running.running:
            self.status(node, "a render of this node is still running: cancel it first")
            return
        try:
            request, work_dir = self._prepare(node, preview)
        except (SetupError, PatternError, OSError, RuntimeError) as err:
            self.status(node, f"cannot {'preview' if preview else 'render'}: {err}")
            return
        job = BackgroundRender(request)
        with self._lock:
            self.jobs[name] = job
        what = "preview" if preview else "render"
        self.status(node, f"{what}: sending to {request.server} ...")
        job.start()
        threading.Thread(target=self._monitor, args=(name, job, work_dir, preview), name="shotpass-monitor",
                         daemon=True).start()

    def _chain_source(self, src: Any) -> Optional[Dict[str, Any]]:
        """A ShotPass node upstream with a finished version: its outputs are our input, by reference."""
        if src is None or not self.host.is_shotpass(src):
            return None
        entry = self.selected_entry(self.state(src))
        if entry is None or entry.get("state") != "finished" or not entry.get("pattern"):
            raise SetupError(f"{self.host.full_name(src)} has no finished version selected: render it first")
        return entry

    def _prepare(self, node: Any, preview: bool) -> Tuple[JobRequest, str]:
        spec = self.spec(node)
        if not spec.model and not spec.pass_name:
            raise SetupError("choose a pass and a model (press Connect if the lists are empty)")
        model = find_model(self._server_info(node), spec.model) if self._server_info(node) else None
        src = self.host.input_node(node, 0)
        if src is None:
            raise SetupError("connect a plate to the 'plate' input")
        parent = self._chain_source(src)
        frames = self._frames(node, src, parent, preview)
        if model is not None and model.needs_mask and self.host.input_node(node, 1) is None:
            raise SetupError(f"{spec.model} needs a mask: connect one to the 'mask' input")
        if model is not None and model.uses_reference and self.host.input_node(node, 2) is None:
            raise SetupError(f"{spec.model} needs a reference: connect one to the 'reference' input")

        token = f"{self.host.base_name(node)}_{time.strftime('%Y%m%d-%H%M%S')}_{uuid.uuid4().hex[:6]}"
        out_root = self.host.get(node, "output_dir") or default_output_dir(self.host.script_path())
        render_dir = os.path.join(out_root, spec.project, spec.shot, token)
        work_dir = os.path.join(out_root, ".work", token)
        conn = connection(self.host.get(node, "server"))
        request = JobRequest(
            server=conn.address,
            token=conn.token,
            tls_ca=conn.tls_ca,
            tls_cert=conn.tls_cert,
            tls_key=conn.tls_key,
            spec=spec,
            out_dir=render_dir,
            preview=preview,
            output_pattern=os.path.join(render_dir, f"{spec.shot}.####.exr"),
        )
        if parent is not None:
            request.parent_render = parent["render_id"]
            request.parent_frames = frames
        else:
            request.plate_paths = self._plate_paths(src, frames)
            if not request.plate_paths:
                request.plate = self.host.render_to_files(src, frames, os.path.join(work_dir, "plate.####.exr"))
        mask = self.host.input_node(node, 1)
        if mask is not None:
            request.mask = self.host.render_to_files(mask, frames, os.path.join(work_dir, "mask.####.exr"))
        ref = self.host.input_node(node, 2)
        if ref is not None:
            ref_entry = self._chain_source(ref)
            frame = self.host.current_frame()
            if ref_entry is not None:
                ref_frame = frame if ref_entry["first"] <= frame <= ref_entry["last"] else ref_entry["first"]
                request.reference_render = (ref_entry["render_id"], ref_frame)
            else:
                path = os.path.join(work_dir, "reference.####.exr")
                request.reference_file = self.host.render_to_files(ref, [frame], path)[frame]
        return request, work_dir

    def _plate_paths(self, src: Any, frames: List[int]) -> Optional[Dict[int, str]]:
        """Path mode: a Read whose files lie under $SHOTPASS_PATH_MAP is read by the server; nothing travels."""
        pattern = self.host.read_file(src)
        path_map = PathMap.from_env()
        if not pattern or not path_map:
            return None
        files = {f: FramePattern.parse(pattern).path(f) for f in frames}
        if not all(os.path.isfile(p) for p in files.values()):
            return None
        return server_paths(files, path_map)

    def _frames(self, node: Any, src: Any, parent: Optional[Dict[str, Any]], preview: bool) -> List[int]:
        if parent is not None:
            available = range(int(parent["first"]), int(parent["last"]) + 1)
        else:
            first, last = self.host.input_range(src)
            available = range(first, last + 1)
        if preview:
            frame = self.host.current_frame()
            if frame not in available:
                raise SetupError(f"frame {frame} is outside the input's range {available[0]}-{available[-1]}")
            return [frame]
        if self.host.get(node, "range_mode") == CUSTOM_RANGE:
            return parse_frame_range(self.host.get(node, "frames") or "")
        return list(available)

    def _monitor(self, name: str, job: BackgroundRender, work_dir: str, preview: bool) -> None:
        """Worker thread: progress task, cancel from the task, every update handed to the main thread."""
        task = None
        try:
            task = self.host.progress_task(f"shotpass {'preview' if preview else 'render'}: {name}")
            cancelled = False

            def handle(update: JobUpdate) -> None:
                if update.kind == PROGRESS and update.frames_done >= 0:
                    task.setProgress(int(100 * update.fraction))
                if update.message:
                    task.setMessage(update.message)
                self.host.main_thread(self._apply_update, name, update, preview)

            while True:
                alive = job.running
                drain_updates(job.updates, handle)
                if not alive and job.updates.empty():
                    break
                if not cancelled and task.isCancelled():
                    cancelled = True
                    job.cancel()
                job.join(0.1)
        except Exception as err:  # never raise in a worker thread inside the host
            traceback.print_exc()
            self.host.main_thread(self._status_by_name, name, f"shotpass: unexpected {type(err).__name__}: {err}")
        finally:
            if task is not None:
                self.host.end_progress_task(task)
            shutil.rmtree(work_dir, ignore_errors=True)
            with self._lock:
                if self.jobs.get(name) is job:
                    del self.jobs[name]

    def _apply_update(self, name: str, update: JobUpdate, preview: bool) -> None:
        """Main thread: record an update in the node's state, its status line and (when done) its Read."""
        node = self.host.find_node(name)
        if node is None:
            return
        st = self.state(node)
        if update.kind == UPLOADING:
            self.status(node, update.message)
            return
        entry = self.entry(st, update.render_id) if update.render_id else None
        if entry is not None:
            entry.setdefault("lane", "preview" if preview else "render")
        if update.render is not None and entry is not None:
            entry.update(render_summary(update.render))
        if update.kind == SUBMITTED:
            uploaded = update.bytes_uploaded
            if entry is not None:
                entry["bytes_uploaded"] = uploaded
            self.status(node, f"{update.message}; {uploaded / 1e6:.1f} MB uploaded" if uploaded else
                        f"{update.message}; nothing to upload")
        elif update.kind == PROGRESS:
            if entry is not None:
                entry["state"] = "running"
            if update.frames_done >= 0:
                self.status(node, f"rendering: {update.frames_done}/{update.frames_total} frames")
        elif update.kind == WARNING:
            self.status(node, f"warning: {update.message}")
        elif update.kind == DONE and entry is not None:
            frames = sorted(update.outputs)
            entry["pattern"] = FramePattern.parse(update.outputs[frames[0]]).hashes()
            entry["first"], entry["last"] = frames[0], frames[-1]
            st["selected"] = entry["render_id"]
            self.save_state(node, st)
            self.show_entry(node, entry)
            self.status(node, f"{version_label(entry)}: {len(frames)} frame(s) written")
            return
        elif update.kind == FAILED:
            if entry is not None and entry.get("state") in ("queued", "running"):
                entry["state"] = "failed"
            self.status(node, f"failed: {update.message}")
        self.save_state(node, st)

    # ------------------------------------------------------------------ versions, cancel, edit, review

    def show_entry(self, node: Any, entry: Optional[Dict[str, Any]]) -> None:
        if entry and entry.get("pattern") and entry.get("state") == "finished":
            self.host.show_read(node, entry["pattern"], int(entry["first"]), int(entry["last"]))
        else:
            self.host.show_input(node)

    def select_version(self, node: Any, label: str) -> None:
        st = self.state(node)
        for e in st["versions"]:
            if version_label(e) == label:
                st["selected"] = e["render_id"]
                self.save_state(node, st)
                self.show_entry(node, e)
                return

    def cancel(self, node: Any) -> None:
        job = self.jobs.get(self.host.full_name(node))
        if job is None or not job.running:
            self.status(node, "nothing to cancel: no render of this node is running")
            return
        self.status(node, "cancelling ...")
        threading.Thread(target=job.cancel, name="shotpass-cancel", daemon=True).start()

    def edit_render(self, node: Any) -> Any:
        entry = self.selected_entry(self.state(node))
        if entry is None or entry.get("state") != "finished":
            self.status(node, "edit this render: select a finished version first")
            return None
        child = self.host.create_shotpass_after(node)
        for key in ("server", "project", "shot", "output_dir", "colour_space"):
            self.host.set(child, key, self.host.get(node, key))
        source = f"{self.host.full_name(node)} {version_label(entry)}"
        self.status(child, f"input: {source} (by reference, nothing uploaded)")
        self.status(node, f"{self.host.full_name(child)} edits this render")
        return child

    def review(self, node: Any) -> None:
        st = self.state(node)
        entry = self.selected_entry(st)
        if entry is None:
            return
        rating, pinned = int(self.host.get(node, "rating") or 0), bool(self.host.get(node, "pinned"))
        if rating == int(entry.get("rating") or 0) and pinned == bool(entry.get("pinned")):
            return
        entry["rating"], entry["pinned"] = rating, pinned
        self.save_state(node, st)
        name, address, rid = self.host.full_name(node), self.host.get(node, "server"), entry["render_id"]

        def work() -> None:
            try:
                with connection(address).client(CONNECT_TIMEOUT) as client:
                    client.review(rid, rating=rating, pinned=pinned)
            except ClientError as err:
                self.host.main_thread(self._status_by_name, name, f"review not saved: {err}")

        threading.Thread(target=work, name="shotpass-review", daemon=True).start()

    def open_render(self, render_id: str) -> Any:
        """The ShotPass node holding a render (for the queue panel's 'open in DAG'), selected."""
        for node in self.host.all_shotpass_nodes():
            st = self.state(node)
            if any(e["render_id"] == render_id for e in st["versions"]):
                st["selected"] = render_id
                self.save_state(node, st)
                self.show_entry(node, self.selected_entry(st))
                self.host.reveal(node)
                return node
        return None
