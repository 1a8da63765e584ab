"""What the ShotPass node does, written against a small host interface (see host.py) instead of `nuke`.

Main-thread work (reading knobs, pointing the internal Read at a version) goes through `self.host`. A
render runs in a worker thread: the local plate render goes frame by frame, each frame one short call on
the main thread (Nuke's UI stays live between frames, the progress task can cancel), then upload, submit,
watch and fetch run in `shotpass_client.background.BackgroundRender`. Every update is posted back to the
main thread and applied to the node found by its stable id (a rename mid-render keeps the result).
Nothing here raises into the host's UI: failures end up on the node's status line.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Tuple

from shotpass_client import ClientError
from shotpass_client.background import (
    DONE,
    FAILED,
    PROGRESS,
    REQUEUE,
    RESUME,
    SUBMITTED,
    SUSPEND,
    UPLOADING,
    WARNING,
    BackgroundRender,
    JobRequest,
    JobUpdate,
    control_render,
    drain_updates,
)
from shotpass_client.client import DEFAULT_ADDRESS
from shotpass_client.colour_names import ColourNameError, server_colour_space
from shotpass_client.connection import Connection
from shotpass_client.farm import render_command, shell_line
from shotpass_client.jobs import RenderSpec, fetch_outputs, handles_around, server_paths
from shotpass_client.naming import (
    default_output_template,
    fill_version,
    has_version_token,
    option_text,
    with_view_token,
)
from shotpass_client.pathmap import PathMap
from shotpass_client.patterns import FramePattern, PatternError, parse_frame_range
from shotpass_client.proto import shotpass_pb2 as pb
from shotpass_client.qc import qc_problems
from shotpass_client.ui_model import (
    find_model,
    model_unavailable,
    option_fields,
    pass_models,
    qc_line,
    render_summary,
    script_project_shot,
    version_label,
)

from .render_job import Cancelled, LocalRender, NodeJob, check_files, renders_of, view_request

STATE_KNOB = "shotpass_state"
ID_KNOB = "shotpass_id"
OPTION_PREFIX = "opt_"
NO_VERSIONS = "(no renders yet)"
# Knobs that "Reuse Settings" copies; options (opt_*) are copied too.
SETTINGS_KNOBS = ("pass", "model", "prompt", "negative_prompt", "strength", "seed", "colour_space",
                  "range_mode", "frames", "context_handles", "channels")
INPUT_RANGE, CUSTOM_RANGE = "input range", "custom"
AUTO_SPACE = "auto"  # the plate's own: a Read's colour space when the server reads its files, else the working space
CONNECT_TIMEOUT = 3.0
ACTIVE = ("queued", "running")


def connection(address: str) -> Connection:
    """The node's server with the studio's token and TLS files: SHOTPASS_TOKEN, SHOTPASS_TLS_CA,
    SHOTPASS_TLS_CERT and SHOTPASS_TLS_KEY, set where Nuke is launched (never stored in the script)."""
    return Connection.resolve(address)


class SetupError(ValueError):
    """Something the user can fix before a render starts (no plate connected, bad frame range)."""


class Controller:
    def __init__(self, host: Any) -> None:
        self.host = host
        self.jobs: Dict[str, NodeJob] = {}  # node id -> its running render
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
        """Write the state and mirror it on the version/rating/pin knobs and the label (knobChanged ignored)."""
        self._quiet += 1
        try:
            self.host.set(node, STATE_KNOB, json.dumps(st, sort_keys=True))
            labels = [version_label(e) for e in reversed(st["versions"])] or [NO_VERSIONS]
            selected = self.selected_entry(st)
            self.host.set_choices(node, "version", labels, version_label(selected) if selected else labels[0])
            latest = selected or (st["versions"][-1] if st["versions"] else None)
            summary = ""
            if latest is not None:
                summary = f"v{int(latest.get('version') or 0):03d} {latest.get('state', '')}"
            if latest is not None and qc_line(latest):
                summary += f" {qc_line(latest)}"  # the label shows QC without opening the node
            self.host.set(node, "shotpass_summary", summary)
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

    def _status_by_id(self, node_id: str, text: str) -> None:
        node = self.host.find_node(node_id)
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
        self.host.set(node, "output", default_output_template(script, shot))
        self.host.set_choices(node, "colour_space", [AUTO_SPACE] + self.host.colour_spaces(), AUTO_SPACE)
        self.save_state(node, self.state(node))
        self.refresh(node)

    def refresh(self, node: Any) -> None:
        """Off the main thread: models and option schemas, this node's render states, and the results of
        renders that finished while Nuke was closed (fetched into the paths recorded when they were sent)."""
        node_id, address = self.host.node_id(node), self.host.get(node, "server")
        project, shot = self.host.get(node, "project"), self.host.get(node, "shot")
        running = self.jobs.get(node_id)
        busy = {running.render_id} if running is not None and running.running else set()
        pending = [renders_of(e) for e in self.state(node)["versions"]
                   if e.get("pattern") and not e.get("fetched") and e["render_id"] not in busy]
        self.status(node, f"connecting to {address} ...")

        def work() -> None:
            try:
                with connection(address).client(CONNECT_TIMEOUT) as client:
                    info = client.server_info()
                    renders = client.list_renders(project=project, shot=shot)
                    self.host.main_thread(self._apply_info, node_id, address, info, renders)
                    for renders_of_version in pending:
                        self._fetch_finished(client, node_id, renders_of_version)
            except ClientError as err:
                self.host.main_thread(self._status_by_id, node_id, f"server: {err}")
            except Exception as err:  # a worker thread must never die into the host
                traceback.print_exc()
                self.host.main_thread(self._status_by_id, node_id, f"server: unexpected {type(err).__name__}: {err}")

        threading.Thread(target=work, name="shotpass-refresh", daemon=True).start()

    def _fetch_finished(self, client: Any, node_id: str, renders: List[Tuple[str, str]]) -> None:
        """Worker: wait for the renders of a version sent earlier (they may still run), fetch, show them."""
        primary, outputs = None, {}
        for render_id, pattern in renders:
            try:
                render = client.get_render(render_id)
                if render.state not in (pb.FINISHED, pb.FAILED, pb.CANCELLED):
                    self.host.main_thread(self._status_by_id, node_id, f"v{render.version:03d} is still rendering "
                                          "on the server: waiting for it")
                    render = client.wait(render_id)
            except ClientError as err:
                self.host.main_thread(self._status_by_id, node_id, f"render {render_id[:8]}: {err}")
                return
            primary = primary or render
            if render.state != pb.FINISHED:
                primary, outputs = render, {}
                break
            frame_pattern = FramePattern.parse(pattern)
            fetched = fetch_outputs(client, render, os.path.dirname(frame_pattern.prefix), frame_pattern)
            outputs = outputs or fetched
        self.host.main_thread(self._apply_fetched, node_id, primary, outputs)

    def _apply_fetched(self, node_id: str, render: Any, outputs: Dict[int, str]) -> None:
        node = self.host.find_node(node_id)
        if node is None:
            return
        st = self.state(node)
        entry = next((e for e in st["versions"] if render.id in (e.get("views") or {}).values()), None) \
            or self.entry(st, render.id)
        summary = render_summary(render)
        entry.update(summary if summary["render_id"] == entry["render_id"] else {"state": summary["state"]})
        if outputs:
            frames = sorted(outputs)
            entry["first"], entry["last"], entry["fetched"] = frames[0], frames[-1], True
            st["selected"] = render.id
            self.save_state(node, st)
            self.show_entry(node, entry)
            self.status(node, f"{version_label(entry)}: fetched {len(frames)} frame(s) that finished meanwhile")
        else:
            entry["fetched"] = True  # nothing to fetch: failed or cancelled while Nuke was closed
            self.save_state(node, st)
            self.status(node, f"v{render.version:03d} ended {entry['state']} while the script was closed")

    def _apply_info(self, node_id: str, address: str, info: Any, renders: List[Any]) -> None:
        node = self.host.find_node(node_id)
        if node is None:
            return
        self.info[address] = info
        passes = [p.name for p in info.passes]
        current = self.host.get(node, "pass")
        self.host.set_choices(node, "pass", passes, current if current in passes else
                              ("stylize" if "stylize" in passes else passes[0] if passes else ""))
        self.update_models(node)
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
        elif knob == "showPanel" and self._server_info(node) is None:
            self.refresh(node)  # a reopened script: lists, states and finished results come back

    def button(self, node: Any, name: str) -> None:
        actions: Dict[str, Callable[[Any], Any]] = {
            "connect": self.refresh,
            "render": self.render,
            "preview": lambda n: self.render(n, preview=True),
            "cancel": self.cancel,
            "edit_render": self.edit_render,
            "reuse_settings": self.reuse_settings,
            "take_out": self.take_out,
            "farm": self.farm,
            "suspend": lambda n: self.control(n, SUSPEND),
            "resume": lambda n: self.control(n, RESUME),
            "requeue": lambda n: self.control(n, REQUEUE),
        }
        actions[name](node)

    # ------------------------------------------------------------------ settings

    def option_values(self, node: Any) -> Dict[str, Any]:
        """The option knobs and strength as typed values (read on the main thread)."""
        values = {k[len(OPTION_PREFIX):]: v for k, v in self.host.option_values(node, OPTION_PREFIX).items()}
        values["strength"] = self.host.get(node, "strength")
        return values

    @staticmethod
    def format_options(info: Any, model_name: str, values: Dict[str, Any]) -> Dict[str, str]:
        """Options as the wire wants them: by the model's schema when known (clamped, only its own options);
        without one (a script reopened, server not asked yet) every saved option knob as it is."""
        model = find_model(info, model_name) if info is not None else None
        if model is None:
            return {k: option_text(v) for k, v in values.items() if k != "strength" and v is not None}
        return {f.name: f.text(values[f.name]) for f in option_fields(model) if values.get(f.name) is not None}

    def spec(self, node: Any) -> RenderSpec:
        model = self.host.get(node, "model") or ""
        return RenderSpec(
            project=self.host.get(node, "project") or "default",
            shot=self.host.get(node, "shot") or "untitled",
            pass_name=self.host.get(node, "pass") or "",
            model=model,
            prompt=self.host.get(node, "prompt") or "",
            negative_prompt=self.host.get(node, "negative_prompt") or "",
            options=self.format_options(self._server_info(node), model, self.option_values(node)),
            seed=int(self.host.get(node, "seed") or 0),
            colour_space=self.host.get(node, "colour_space") or "",
            label=self.host.full_name(node),
        )

    def settings(self, node: Any) -> Dict[str, Any]:
        values = {k: self.host.get(node, k) for k in SETTINGS_KNOBS}
        values.update(self.host.option_values(node, OPTION_PREFIX))
        return values

    def reuse_settings(self, node: Any) -> None:
        targets = [n for n in self.host.selected_shotpass_nodes() if self.host.node_id(n) != self.host.node_id(node)]
        if not targets:
            self.status(node, "reuse settings: select the ShotPass nodes to copy these settings to")
            return
        values = self.settings(node)
        for target in targets:
            for key in ("server",):
                self.host.set(target, key, self.host.get(node, key))
            self.info.setdefault(self.host.get(target, "server"), self._server_info(node))
            for key in ("pass", "model", "colour_space"):
                self.host.set_choices(target, key, self.host.choices(node, key), values[key])
            self.sync_options(target)
            for key, value in values.items():
                if key not in ("pass", "model", "colour_space"):
                    self.host.set(target, key, value)
            self.status(target, f"settings copied from {self.host.full_name(node)}")
        names = ", ".join(self.host.full_name(t) for t in targets)
        self.status(node, f"settings copied to {names}")

    # ------------------------------------------------------------------ render / preview

    def render(self, node: Any, preview: bool = False) -> None:
        node_id = self.host.node_id(node)
        running = self.jobs.get(node_id)
        if running is not None and running.running:
            self.status(node, "a render of this node is still running: cancel it first")
            return
        try:
            job = self._prepare(node, preview)
        except (SetupError, PatternError, OSError, RuntimeError) as err:
            self.status(node, f"cannot {'preview' if preview else 'render'}: {err}")
            return
        with self._lock:
            self.jobs[node_id] = job
        n = len(job.local.writes[0][1]) if job.local.writes else 0
        self.status(node, f"rendering the plate locally: 0/{n} frames" if n else
                    f"{'preview' if preview else 'render'}: sending to {job.request.server} ...")
        job.thread = threading.Thread(target=self._run, args=(job,), name="shotpass-job", daemon=True)
        job.thread.start()

    def _chain_source(self, src: Any) -> Optional[Dict[str, Any]]:
        """A ShotPass node upstream with a finished version: its outputs are our input, by reference."""
        if src is None or not self.host.is_shotpass(src):
            return None
        entry = self.selected_entry(self.state(src))
        if entry is None or entry.get("state") != "finished" or not entry.get("pattern"):
            raise SetupError(f"{self.host.full_name(src)} has no finished version selected: render it first")
        return entry

    def _prepare(self, node: Any, preview: bool) -> NodeJob:
        """Main thread: read every knob, make the temporary Writes; the worker does the rest."""
        spec = self.spec(node)
        if not spec.model and not spec.pass_name:
            raise SetupError("choose a pass and a model (press Connect if the lists are empty)")
        info = self._server_info(node)
        why = model_unavailable(info, spec.model) if info is not None else ""
        if why:
            raise SetupError(f"model {spec.model} is unavailable on this server ({why}): choose another")
        model = find_model(info, spec.model) if info is not None else None
        src = self.host.input_node(node, 0)
        if src is None:
            raise SetupError("connect a plate to the 'plate' input")
        parent = self._chain_source(src)
        frames = self._frames(node, src, parent, preview)
        handles = [] if parent is not None or preview else self._handles(node, src, frames)
        if model is not None and model.needs_mask and self.host.input_node(node, 1) is None:
            raise SetupError(f"{spec.model} needs a mask: connect one to the 'mask' input")
        if model is not None and model.uses_reference and self.host.input_node(node, 2) is None:
            raise SetupError(f"{spec.model} needs a reference: connect one to the 'reference' input")
        template = self.host.get(node, "output") or default_output_template(self.host.script_path(), spec.shot)
        if not has_version_token(template):
            raise SetupError(f"output {template}: put v### in it (the render's version), e.g. .../v###/name.####.exr")
        FramePattern.parse(fill_version(template, 1))  # a frame token is required too

        token = f"{self.host.base_name(node)}_{uuid.uuid4().hex[:8]}"
        out_root = os.path.dirname(os.path.dirname(fill_version(template, 1)))
        work_dir = os.path.join(out_root, ".work", token)
        conn = connection(self.host.get(node, "server"))
        request = JobRequest(server=conn.address, token=conn.token, tls_ca=conn.tls_ca, tls_cert=conn.tls_cert,
                             tls_key=conn.tls_key, spec=spec, out_dir=out_root, preview=preview,
                             output_pattern=template)
        local = LocalRender(work_dir=work_dir)
        channels = (self.host.get(node, "channels") or "all").strip()
        views = self.host.views()
        # Several views (stereo): a file per view (%V) and a render per view, all in one version's folder.
        stereo = len(views) > 1 and parent is None
        name = "{}_%V.####.exr" if stereo else "{}.####.exr"
        roi = self.host.roi(node)
        if roi is not None and (roi[2] <= roi[0] or roi[3] <= roi[1]):
            raise SetupError(f"the roi box {roi} is empty: drag it over the part of the plate to process")
        if roi is not None and parent is not None:
            raise SetupError("an roi needs the plate itself: turn 'use roi' off to edit a render by reference")
        chosen = self.host.get(node, "colour_space") or AUTO_SPACE
        working = self.host.working_space()
        if parent is not None:
            request.parent_render = parent["render_id"]
            request.parent_frames = frames
            host_space = parent.get("colour_space") or working  # the parent's results are in its plate's space
        else:
            read = sorted(frames + handles)
            paths = None if stereo or roi is not None else self._plate_paths(src, read)
            if paths:
                request.plate_paths = {f: p for f, p in paths.items() if f not in handles}
                request.context_paths = {f: p for f, p in paths.items() if f in handles} or None
            if request.plate_paths:  # the server reads the files: they are in the Read's own colour space
                host_space = self.host.read_colour_space(src) or working if chosen == AUTO_SPACE else chosen
            else:
                host_space = working if chosen == AUTO_SPACE else chosen
                half = self.host.is_half(src, frames[0])
                local.writes.append(self._write(src, read, os.path.join(work_dir, name.format("plate")), channels,
                                                views, half, roi, host_space))
        if info is not None:
            try:
                request.spec.colour_space = server_colour_space(host_space, info.colour_spaces)
            except ColourNameError as err:
                raise SetupError(str(err)) from None
        mask = self.host.input_node(node, 1)
        if mask is not None:
            local.writes.append(self._write(mask, frames, os.path.join(work_dir, name.format("mask")), "rgba",
                                            views if stereo else views[:1], False))
        ref = self.host.input_node(node, 2)
        if ref is not None:
            ref_entry = self._chain_source(ref)
            frame = self.host.current_frame()
            if ref_entry is not None:
                ref_frame = frame if ref_entry["first"] <= frame <= ref_entry["last"] else ref_entry["first"]
                request.reference_render = (ref_entry["render_id"], ref_frame)
            else:
                local.writes.append(self._write(ref, [frame], os.path.join(work_dir, "reference.####.exr"), "rgba",
                                                views[:1], False))
        title = f"shotpass {'preview' if preview else 'render'}: {self.host.full_name(node)}"
        return NodeJob(self.host.node_id(node), title, request, local, self.option_values(node), preview,
                       with_view_token(template) if stereo else template, views if stereo else [""],
                       self.host.proxy(), roi=list(roi) if roi is not None else None, colour_space=host_space,
                       handles=handles)

    def _write(self, src: Any, frames: List[int], pattern: str, channels: str, views: List[str],
               half: bool, roi: Optional[Tuple[float, ...]] = None,
               colour_space: Optional[str] = None) -> Tuple[Any, List[int], str]:
        return self.host.make_write(src, pattern, channels, views, half, roi, colour_space), list(frames), pattern

    def _plate_paths(self, src: Any, frames: List[int]) -> Optional[Dict[int, str]]:
        """Path mode: a Read whose files lie under $SHOTPASS_PATH_MAP is read by the server; nothing travels.
        Output frame f of a Read moved by an offset is its file frame f - offset."""
        found = self.host.read_file(src)
        path_map = PathMap.from_env()
        if not found or not path_map:
            return None
        pattern, offset = found
        try:
            files = {f: FramePattern.parse(pattern).path(f - offset) for f in frames}
        except PatternError:  # an un-numbered still: the same file is its one frame
            files = {f: pattern for f in frames[:1]}
        if not all(os.path.isfile(p) for p in files.values()):
            return None
        return server_paths(files, path_map)

    def _handles(self, node: Any, src: Any, frames: List[int]) -> List[int]:
        """The input's frames around the range that a video model reads as context (jobs.handles_around)."""
        count = int(self.host.get(node, "context_handles") or 0)
        if count < 0:
            raise SetupError(f"handles {count}: give 0 or more frames")
        first, last = self.host.input_range(src)
        return handles_around(frames, range(first, last + 1), count)

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

    # ------------------------------------------------------------------ farm and headless

    def render_now(self, node: Any) -> bool:
        """Render on the calling thread (headless: `nuke -t`, no event loop); True when every frame came back."""
        try:
            job = self._prepare(node, preview=False)
        except (SetupError, PatternError, OSError, RuntimeError) as err:
            self.status(node, f"cannot render: {err}")
            return False
        with self._lock:
            self.jobs[job.node_id] = job
        self._run(job)
        return job.finished

    def farm(self, node: Any) -> List[str]:
        """The command lines that render this node without the UI; shown on the node and printed."""
        script = self.host.script_path()
        lines = []
        if not script:
            self.status(node, "farm: save the script first (the farm renders the saved script)")
            return []
        plugin = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        lines.append(shell_line(["nuke", "-t", os.path.join(plugin, "shotpass_render.py"), script,
                                 self.host.full_name(node), "--save"]))
        found = self.host.read_file(self.host.input_node(node, 0)) if self.host.input_node(node, 0) else None
        plain = (found is not None and found[1] == 0 and self.host.roi(node) is None and len(self.host.views()) == 1
                 and (self.host.get(node, "channels") or "all") == "all")
        if plain:  # the plate is files on disk as they are: the CLI can send them itself
            try:
                spec = self.spec(node)
                info = self._server_info(node)
                chosen = self.host.get(node, "colour_space") or AUTO_SPACE
                space = self.host.read_colour_space(self.host.input_node(node, 0)) if chosen == AUTO_SPACE else chosen
                if info is not None and space:
                    spec.colour_space = server_colour_space(space, info.colour_spaces)
                frames = self._frames(node, self.host.input_node(node, 0), None, False)
                template = self.host.get(node, "output") or default_output_template(script, spec.shot)
                out_dir = os.path.dirname(fill_version(template, 0)).replace(os.sep + "v000", os.sep + "farm")
                conn = connection(self.host.get(node, "server"))
                lines.append(shell_line(render_command(spec, found[0], frames, out_dir, conn.address)))
            except (SetupError, PatternError, ColourNameError) as err:
                lines.append(f"# shotpass render: {err}")
        text = "\n".join(lines)
        self.host.set(node, "farm_command", text)
        print(f"shotpass farm commands for {self.host.full_name(node)}:\n{text}")
        self.status(node, "farm: the command lines are in 'farm command' (and printed to the script editor)")
        return lines

    # ------------------------------------------------------------------ the worker

    def _run(self, job: NodeJob) -> None:
        """Worker thread: local plate frames, then the server render, every update handed to the main thread."""
        task = None
        try:
            task = self.host.progress_task(job.title)
            self._render_locally(job, task)
            check_files(job)
            info = self._info_for(job)
            job.request.spec.options = self.format_options(info, job.request.spec.model, job.values)
            job.request.spec.colour_space = server_colour_space(job.colour_space, info.colour_spaces)
            primary, version = "", 0
            for index, view in enumerate(job.views):
                job.background = BackgroundRender(view_request(job, view, version))
                job.background.start()
                meta = {"preview": job.preview, "template": job.template, "view": view, "primary": primary,
                        "last": index == len(job.views) - 1, "proxy": job.proxy, "roi": job.roi,
                        "colour_space": job.colour_space}
                finished, version = self._watch(job, task, meta)
                primary = primary or job.background.render_id
                if not finished:
                    break
            else:
                job.finished = True
        except (ClientError, ColourNameError) as err:
            self.host.main_thread(self._status_by_id, job.node_id, f"failed: {err}")
        except Cancelled:
            self.host.main_thread(self._status_by_id, job.node_id, "cancelled while rendering the plate locally: "
                                  "nothing was sent")
        except Exception as err:  # never raise in a worker thread inside the host
            traceback.print_exc()
            self.host.main_thread(self._status_by_id, job.node_id, f"failed: {type(err).__name__}: {err}")
        finally:
            if task is not None:
                self.host.end_progress_task(task)
            for write, _frames, _pattern in job.local.writes:
                try:
                    self.host.call_main(self.host.delete_write, write)
                except Exception:
                    traceback.print_exc()
            if job.local.work_dir:
                shutil.rmtree(job.local.work_dir, ignore_errors=True)
            with self._lock:
                if self.jobs.get(job.node_id) is job:
                    del self.jobs[job.node_id]

    def _info_for(self, job: NodeJob) -> Any:
        """Worker: the server's models and colour spaces (asked now when the node has not connected yet,
        e.g. right after a script was reopened)."""
        info = self.info.get(job.request.server)
        if info is None:
            conn = Connection(job.request.server, job.request.token, job.request.tls_ca, job.request.tls_cert,
                              job.request.tls_key)
            with conn.client(CONNECT_TIMEOUT) as client:
                info = client.server_info()
            self.info[job.request.server] = info
        return info

    def _render_locally(self, job: NodeJob, task: Any) -> None:
        """Each frame is one short main-thread call: Nuke redraws and the cancel button works in between."""
        total = sum(len(frames) for _w, frames, _p in job.local.writes)
        done = 0
        for write, frames, pattern in job.local.writes:
            what = os.path.basename(pattern).split(".")[0].split("_%V")[0]
            for frame in frames:
                if task.isCancelled() or job.cancelled.is_set():
                    raise Cancelled()
                message = f"rendering the {what} locally: frame {frame} ({done + 1}/{total})"
                task.setMessage(message)
                self.host.main_thread(self._status_by_id, job.node_id, message)
                self.host.call_main(self.host.execute_frame, write, frame)
                done += 1
                task.setProgress(int(30 * done / max(1, total)))  # the local part is the first 30 %

    def _watch(self, job: NodeJob, task: Any, meta: Dict[str, Any]) -> Tuple[bool, int]:
        """Drive one BackgroundRender to its end; (finished, the render's version)."""
        background = job.background
        assert background is not None
        cancelled, last, version = False, "", 0
        share, offset = 70 / len(job.views), 30 + 70 * job.views.index(meta["view"]) / len(job.views)

        def handle(update: JobUpdate) -> None:
            nonlocal last, version
            last = update.kind
            if update.kind == SUBMITTED and update.render is not None:
                version = update.render.version
            if update.kind == PROGRESS and update.frames_done >= 0:
                task.setProgress(int(offset + share * update.fraction))
            if update.message:
                task.setMessage(f"{meta['view']}: {update.message}" if meta["view"] else update.message)
            self.host.main_thread(self._apply_update, job.node_id, update, meta)

        while True:
            alive = background.running
            drain_updates(background.updates, handle)
            if not alive and background.updates.empty():
                break
            if not cancelled and (task.isCancelled() or job.cancelled.is_set()):
                cancelled = True
                background.cancel()
            background.join(0.1)
        return last == DONE, version

    def _apply_update(self, node_id: str, update: JobUpdate, meta: Dict[str, Any]) -> None:
        """Main thread: record an update in the node's state, its status line and (when done) its Read.

        A stereo version is one entry (its first view's render) listing every view's render in "views".
        """
        node = self.host.find_node(node_id)
        if node is None:
            return  # the node was deleted: the render stays on the server (queue panel)
        st = self.state(node)
        if update.kind == UPLOADING:
            self.status(node, update.message)
            return
        view, primary = meta["view"], meta["primary"]
        entry = self.entry(st, primary or update.render_id) if update.render_id else None
        where = f"{view}: " if view else ""
        if entry is not None:
            entry.setdefault("lane", "preview" if meta["preview"] else "render")
            if view:
                entry.setdefault("views", {})[view] = update.render_id
            if update.render is not None:
                summary = render_summary(update.render)
                entry.update(summary if not primary else {"state": summary["state"]})
        if update.kind == SUBMITTED:
            if entry is not None and update.render is not None and not primary:
                # Recorded now so a render that finishes after Nuke closed is fetched to the same place.
                entry["pattern"] = FramePattern.parse(fill_version(meta["template"], update.render.version)).hashes()
                frames = sorted(f.frame for f in update.render.frames)
                if frames:
                    entry["first"], entry["last"] = frames[0], frames[-1]
                entry["bytes_uploaded"] = update.bytes_uploaded
                entry["proxy"] = bool(meta["proxy"])
                entry["roi"] = meta["roi"]
                entry["colour_space"] = meta["colour_space"]
            uploaded = update.bytes_uploaded
            self.status(node, f"{where}{update.message}; {uploaded / 1e6:.1f} MB uploaded" if uploaded else
                        f"{where}{update.message}; nothing to upload")
        elif update.kind == PROGRESS:
            if entry is not None:
                entry["state"] = update.state or "running"
            if update.state:
                self.status(node, f"{where}{update.message}")
            elif update.frames_done >= 0:
                self.status(node, f"{where}rendering: {update.frames_done}/{update.frames_total} frames")
        elif update.kind == WARNING:
            self.status(node, f"{where}warning: {update.message}")
        elif update.kind == DONE and entry is not None:
            frames = sorted(update.outputs)
            if not meta["last"]:
                entry["state"] = "running"  # the other views are still to come
                self.save_state(node, st)
                self.status(node, f"{where}{len(frames)} frame(s) written; next view")
                return
            if not view:
                entry["pattern"] = FramePattern.parse(update.outputs[frames[0]]).hashes()
            entry["first"], entry["last"], entry["fetched"] = frames[0], frames[-1], True
            st["selected"] = entry["render_id"]
            self.save_state(node, st)
            self.show_entry(node, entry)
            views = f" x {len(entry['views'])} views" if entry.get("views") else ""
            problems = qc_problems(entry.get("qc"))  # the version label already carries the flicker figure
            qc = f"; QC: {'; '.join(problems)}" if problems else ""
            self.status(node, f"{version_label(entry)}: {len(frames)} frame(s){views} written{qc}")
            return
        elif update.kind == FAILED:
            if entry is not None:
                entry["fetched"] = True  # nothing will come: a reopen must not wait for it
                if entry.get("state") in ACTIVE:
                    entry["state"] = "failed"
            self.status(node, f"{where}failed: {update.message}")
        self.save_state(node, st)

    # ------------------------------------------------------------------ versions, cancel, edit, review

    def show_entry(self, node: Any, entry: Optional[Dict[str, Any]]) -> None:
        if entry and entry.get("pattern") and entry.get("state") == "finished" and entry.get("fetched", True):
            self.host.show_read(node, entry["pattern"], int(entry["first"]), int(entry["last"]),
                                bool(entry.get("proxy")), entry.get("roi"), entry.get("colour_space") or "")
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

    def take_out(self, node: Any) -> Any:
        """A plain Read of the selected version, for the compositor to use outside the ShotPass node."""
        entry = self.selected_entry(self.state(node))
        if entry is None or entry.get("state") != "finished" or not entry.get("pattern"):
            self.status(node, "take out as Read: select a finished version first")
            return None
        read = self.host.take_out_read(node, entry["pattern"], int(entry["first"]), int(entry["last"]),
                                       f"{self.host.get(node, 'shot')} v{int(entry.get('version') or 0):03d}",
                                       entry.get("colour_space") or "")
        self.status(node, f"{version_label(entry)} taken out as {self.host.base_name(read)}")
        return read

    def current_render(self, node: Any) -> str:
        """The render Suspend/Resume/Requeue act on: this node's running one, else the selected version's."""
        job = self.jobs.get(self.host.node_id(node))
        if job is not None and job.running and job.background is not None and job.background.render_id:
            return job.background.render_id
        entry = self.selected_entry(self.state(node))
        if entry is None and self.state(node)["versions"]:
            entry = self.state(node)["versions"][-1]
        return entry["render_id"] if entry else ""

    def control(self, node: Any, action: str) -> None:
        """Suspend, resume or requeue the node's current render off the main thread. A running job keeps
        watching it; a requeued version that no job watches is waited for and fetched like one sent earlier."""
        render_id = self.current_render(node)
        if not render_id:
            self.status(node, f"{action}: this node has no render yet")
            return
        node_id, address = self.host.node_id(node), self.host.get(node, "server")
        job = self.jobs.get(node_id)
        watched = job is not None and job.running
        self.status(node, f"{action} render {render_id} ...")

        def work() -> None:
            try:
                with connection(address).client(CONNECT_TIMEOUT) as client:
                    render, message = control_render(client, render_id, action)
                    self.host.main_thread(self._apply_control, node_id, render, message)
                    if action == REQUEUE and not watched:
                        st_entry = self.host.call_main(self._entry_by_id, node_id, render_id)
                        if st_entry and st_entry.get("pattern"):
                            self._fetch_finished(client, node_id, renders_of(st_entry))
            except ClientError as err:
                self.host.main_thread(self._status_by_id, node_id, f"{action} failed: {err}")
            except Exception as err:  # a worker thread must never die into the host
                traceback.print_exc()
                self.host.main_thread(self._status_by_id, node_id, f"{action}: unexpected {type(err).__name__}: {err}")

        threading.Thread(target=work, name=f"shotpass-{action}", daemon=True).start()

    def _entry_by_id(self, node_id: str, render_id: str) -> Optional[Dict[str, Any]]:
        node = self.host.find_node(node_id)
        if node is None:
            return None
        return next((dict(e) for e in self.state(node)["versions"] if e["render_id"] == render_id), None)

    def _apply_control(self, node_id: str, render: Any, message: str) -> None:
        node = self.host.find_node(node_id)
        if node is None:
            return
        st = self.state(node)
        entry = next((e for e in st["versions"] if e["render_id"] == render.id), None)
        if entry is not None:
            entry["state"] = render_summary(render)["state"]
            if entry["state"] in ACTIVE + ("suspended",):
                entry["fetched"] = False  # running again: a reopen waits for it and fetches its frames
            self.save_state(node, st)
        self.status(node, message)

    def cancel(self, node: Any) -> None:
        job = self.jobs.get(self.host.node_id(node))
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
        for key in ("server", "project", "shot", "output", "channels"):
            self.host.set(child, key, self.host.get(node, key))
        self.host.set_choices(child, "colour_space", self.host.choices(node, "colour_space"),
                              self.host.get(node, "colour_space"))
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
        node_id, address, rid = self.host.node_id(node), self.host.get(node, "server"), entry["render_id"]

        def work() -> None:
            try:
                with connection(address).client(CONNECT_TIMEOUT) as client:
                    client.review(rid, rating=rating, pinned=pinned)
            except ClientError as err:
                self.host.main_thread(self._status_by_id, node_id, f"review not saved: {err}")

        threading.Thread(target=work, name="shotpass-review", daemon=True).start()

    def open_render(self, render_id: str) -> Any:
        """The ShotPass node holding a render (for the queue panel's 'open in DAG'), selected and centred."""
        for node in self.host.all_shotpass_nodes():
            st = self.state(node)
            if any(e["render_id"] == render_id for e in st["versions"]):
                st["selected"] = render_id
                self.save_state(node, st)
                self.show_entry(node, self.selected_entry(st))
                self.host.reveal(node)
                return node
        return None
