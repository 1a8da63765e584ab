"""The one module that imports `nuke`: the ShotPass Group node, its knobs, and Nuke's threading/execute API.

Everything the node *does* lives in controller.py (plain Python); this adapter only translates between
Nuke's objects and the controller's small host interface, and turns every callback error into a status
line and a printed traceback, never into an exception dialog.

Nuke rules kept here: node and knob access on the main thread only (workers post through
executeInMainThread); a Group's knob scripts run inside the group, so anything that looks at the DAG
(selection, lookup by id, creation next to the node) does it under `with nuke.root():`; an empty Group
has no inputs until its Input nodes exist; knobs the plugin itself sets stay out of the undo stack.
"""

from __future__ import annotations

import os
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import nuke
import nukescripts

from shotpass_client.ui_model import BOOL, CHOICE, FLOAT, INT, OptionField

from .controller import CUSTOM_RANGE, ID_KNOB, INPUT_RANGE, NO_VERSIONS, STATE_KNOB, Controller

READ, SWITCH = "shotpass_read", "shotpass_switch"
ROI_MASK, ROI_MIX, ROI_CROP = "shotpass_roi_mask", "shotpass_roi_mix", "shotpass_roi_crop"
SHOW_INPUT, SHOW_RESULT, SHOW_RESULT_IN_ROI = 0, 1, 2
PANEL_ID = "io.shotpass.queue"
HALF = "16-bit half float"


def _cmd(action: str) -> str:
    return f"import shotpass_nuke.host\nshotpass_nuke.host.button({action!r})"


KNOB_CHANGED = "import shotpass_nuke.host\nshotpass_nuke.host.knob_changed()"
ON_CREATE = "import shotpass_nuke.host\nshotpass_nuke.host.node_created()"
HELP = """ShotPass sends its 'plate' input to a shotpass server (stylize, inpaint, upscale passes) and shows the
result, frame for frame, as its output.

Connect loads the server's passes and models. Preview Frame renders the current frame on the server's
priority lane; Render renders the frame range. The plate is rendered locally frame by frame (cancel it in
the progress bar), uploaded (only what the server lacks), and the result comes back as EXRs named by the
output template (v### = the render's version). 'version' picks which render the node shows; 'Take out as
Read' gives a plain Read of it. Settings are knobs: they are saved with the script and sent again after a
reopen. A render that finishes while Nuke is closed is fetched when the script is opened again.
'roi' processes only a box of the plate: outside it the plate passes through untouched.
Environment: SHOTPASS_SERVER, SHOTPASS_TOKEN, SHOTPASS_TLS_CA/CERT/KEY, SHOTPASS_OUTPUT, SHOTPASS_PATH_MAP."""


class _NoUndo:
    """Knob changes the plugin makes (status, versions, lists) must not fill the user's undo history.
    Nuke's disable/enable do not nest: an inner block leaves undo as the outer one set it."""

    def __enter__(self) -> None:
        self._was_disabled = nuke.Undo.disabled()
        if not self._was_disabled:
            nuke.Undo.disable()

    def __exit__(self, *exc: object) -> None:
        if not self._was_disabled:
            nuke.Undo.enable()


class HeadlessTask:
    """A progress task for `nuke -t`: progress and messages as lines on stdout (no UI, nothing to cancel)."""

    def __init__(self, title: str) -> None:
        self.title, self._last = title, -1

    def setProgress(self, percent: int) -> None:  # noqa: N802 - nuke.ProgressTask's API
        if int(percent) != self._last:
            self._last = int(percent)
            print(f"shotpass: {self.title}: {self._last}%", flush=True)

    def setMessage(self, text: str) -> None:  # noqa: N802
        print(f"shotpass: {self.title}: {text}", flush=True)

    def isCancelled(self) -> bool:  # noqa: N802
        return False


class NukeHost:
    """The controller's view of Nuke. Everything here runs on Nuke's main thread except main_thread,
    call_main and the progress-task methods, which workers use. Headless (`nuke -t`) there is no event
    loop: the controller then runs on the main thread and posted calls run at once."""

    headless = False

    def __init__(self) -> None:
        self._write_views: Dict[str, List[str]] = {}  # temporary Write -> the views it renders

    # ----------------------------------------------------------- knobs

    def get(self, node: Any, name: str) -> Any:
        knob = node.knob(name)
        return knob.value() if knob is not None else None

    def set(self, node: Any, name: str, value: Any) -> None:
        knob = node.knob(name)
        if knob is None:
            return
        if self.headless and name == "status":
            print(f"shotpass: {node.fullName()}: {value}", flush=True)
        if isinstance(knob, nuke.Enumeration_Knob) and str(value) not in knob.values():
            return
        with _NoUndo():
            knob.setValue(value)

    def choices(self, node: Any, name: str) -> List[str]:
        return list(node[name].values())

    def set_choices(self, node: Any, name: str, values: Sequence[str], current: str) -> None:
        knob = node[name]
        with _NoUndo():
            knob.setValues(list(values))
            if current in values:
                knob.setValue(current)

    def enable(self, node: Any, name: str, on: bool) -> None:
        node[name].setEnabled(bool(on))

    def option_values(self, node: Any, prefix: str) -> Dict[str, Any]:
        return {name: knob.value() for name, knob in node.knobs().items() if name.startswith(prefix)}

    def sync_option_knobs(self, node: Any, prefix: str, fields: List[OptionField]) -> None:
        """Replace the pass-option knobs with the model's schema, keeping values of options that stay."""
        old = {name: knob for name, knob in node.knobs().items() if name.startswith(prefix)}
        kept = {name[len(prefix):]: knob.value() for name, knob in old.items()}
        with _NoUndo():
            for knob in old.values():
                node.removeKnob(knob)
            for field in fields:
                name, label = prefix + field.name, field.label or field.name
                if field.kind == BOOL:
                    knob = nuke.Boolean_Knob(name, label)
                elif field.kind == INT:
                    knob = nuke.Int_Knob(name, label)
                elif field.kind == FLOAT:
                    knob = nuke.Double_Knob(name, label)
                elif field.kind == CHOICE:
                    knob = nuke.Enumeration_Knob(name, label, list(field.choices))
                else:
                    knob = nuke.String_Knob(name, label)
                if field.kind in (INT, FLOAT) and field.minimum is not None and field.maximum is not None:
                    knob.setRange(field.minimum, field.maximum)
                knob.setFlag(nuke.STARTLINE)
                knob.setTooltip(field.description or f"{field.name} (an option of this model)")
                node.addKnob(knob)
                value = kept.get(field.name, field.default)
                try:
                    knob.setValue(value)
                except (TypeError, ValueError):
                    knob.setValue(field.default)

    # ----------------------------------------------------------- nodes

    def node_id(self, node: Any) -> str:
        knob = node.knob(ID_KNOB)
        if knob is None:  # a node made before ids existed: give it one now
            knob = _knob(node, nuke.String_Knob(ID_KNOB, ID_KNOB), "this node's stable id")
            knob.setFlag(nuke.INVISIBLE | nuke.NO_UNDO)
        if not knob.value():
            with _NoUndo():
                knob.setValue(uuid.uuid4().hex)
        return str(knob.value())

    def renew_id_if_copied(self, node: Any) -> bool:
        """onCreate (paste, duplicate, script load): a copy of a ShotPass node carries its original's id;
        the copy gets its own, or results would go to whichever of the two is found first."""
        mine = self.node_id(node)
        if any(other is not node and self.node_id(other) == mine for other in self.all_shotpass_nodes()):
            with _NoUndo():
                node[ID_KNOB].setValue(uuid.uuid4().hex)
            return True
        return False

    def find_node(self, node_id: str) -> Any:
        """The ShotPass node with this id, wherever it is and whatever it is called now (renames are fine)."""
        for node in self.all_shotpass_nodes():
            if self.node_id(node) == node_id:
                return node
        return None

    def full_name(self, node: Any) -> str:
        return node.fullName()

    def base_name(self, node: Any) -> str:
        return node.name()

    def is_shotpass(self, node: Any) -> bool:
        return node is not None and node.Class() == "Group" and node.knob(STATE_KNOB) is not None

    def input_node(self, node: Any, index: int) -> Any:
        return node.input(index)

    def input_range(self, node: Any) -> Tuple[int, int]:
        return int(node.firstFrame()), int(node.lastFrame())

    def read_file(self, node: Any) -> Optional[Tuple[str, int]]:
        """A Read's file pattern with its TCL/environment expressions evaluated (frame token kept), and the
        offset between the frames it outputs and its file frames."""
        if node.Class() != "Read":
            return None
        pattern = nuke.filename(node)
        offset = int(node.firstFrame()) - int(node["first"].value())
        return (pattern, offset) if pattern else None

    def read_colour_space(self, node: Any) -> Optional[str]:
        """The colour space a Read says its files are in ("default" resolved as Nuke does: the working space
        for float files), or None for anything but a Read."""
        if node.Class() != "Read":
            return None
        value = str(node["colorspace"].value())
        if value.startswith("default"):
            inner = value[value.find("(") + 1:value.rfind(")")] if "(" in value else ""
            return inner or self.working_space()
        return value

    def colour_spaces(self) -> List[str]:
        """The colour spaces of the script's OCIO config."""
        try:
            return [v for v in nuke.root()["workingSpaceLUT"].values() if not v.startswith("default")]
        except Exception:
            pass
        try:
            import PyOpenColorIO  # Nuke ships it; its current config is the script's

            return list(PyOpenColorIO.GetCurrentConfig().getColorSpaceNames())
        except Exception:
            return [self.working_space()] if self.working_space() else []

    def selected_shotpass_nodes(self) -> List[Any]:
        with nuke.root():
            return [n for n in nuke.selectedNodes() if self.is_shotpass(n)]

    def all_shotpass_nodes(self) -> List[Any]:
        with nuke.root():
            return [n for n in nuke.allNodes("Group", recurseGroups=True) if self.is_shotpass(n)]

    def reveal(self, node: Any) -> None:
        """Open in DAG: the node alone selected, the DAG centred on it, its panel open."""
        with nuke.root():
            for other in nuke.allNodes(recurseGroups=True):
                if other.isSelected():
                    other.setSelected(False)
        node.setSelected(True)
        nuke.zoom(1, [node.xpos() + node.screenWidth() / 2, node.ypos() + node.screenHeight() / 2])
        nuke.show(node)

    def _context(self, node: Any) -> Any:
        """The group a node sits in (the root for top-level nodes): temporary nodes are made beside it."""
        full = node.fullName()
        if "." not in full:
            return nuke.root()
        with nuke.root():
            return nuke.toNode(full.rsplit(".", 1)[0])

    # ----------------------------------------------------------- the local plate render

    def is_half(self, src: Any, frame: int) -> bool:
        """Whether src's file data is 16-bit half (then the temporary Write keeps half, else 32-bit float)."""
        try:
            return str(src.metadata("input/bitsperchannel", frame) or "") == HALF
        except Exception:  # no metadata (a generator upstream): Nuke works in float
            return False

    def views(self) -> List[str]:
        return list(nuke.views())

    def proxy(self) -> bool:
        return bool(nuke.root()["proxy"].value())

    def roi(self, node: Any) -> Optional[Tuple[float, float, float, float]]:
        """The node's region of interest (x, y, r, t in Nuke's pixel coordinates) when 'use roi' is on."""
        if not node["use_roi"].value():
            return None
        knob = node["roi"]
        return float(knob.x()), float(knob.y()), float(knob.r()), float(knob.t())

    def make_write(self, src: Any, pattern: str, channels: str, views: Sequence[str], half: bool,
                   roi: Optional[Sequence[float]] = None, colour_space: Optional[str] = None) -> Any:
        """A temporary Write after src, writing what the controller asks for (in proxy mode: the same path).
        With an ROI a Crop comes first: only the box's pixels are written and sent."""
        os.makedirs(os.path.dirname(pattern), exist_ok=True)
        with self._context(src):
            if roi is not None:
                crop = nuke.nodes.Crop(name=ROI_CROP)
                crop["box"].setValue(list(roi))
                crop["reformat"].setValue(False)
                crop.setInput(0, src)
                src = crop
            write = nuke.nodes.Write(file=pattern, proxy=pattern, file_type="exr")
            write["datatype"].setValue("16 bit half" if half else "32 bit float")
            write["channels"].setValue(channels or "all")
            write["views"].setValue(" ".join(views))
            self._write_views[write.fullName()] = list(views)
            if colour_space and colour_space != self.working_space():
                write["colorspace"].setValue(colour_space)  # the plate is sent in the space the user picked
            else:
                write["raw"].setValue(True)  # the working space's values as they are: the server is told so
            write.setInput(0, src)
        return write

    def execute_frame(self, write: Any, frame: int) -> None:
        nuke.execute(write, frame, frame, 1, views=self._write_views.get(write.fullName()) or None)

    def delete_write(self, write: Any) -> None:
        """Remove a temporary Write and the ROI Crop made for it."""
        self._write_views.pop(write.fullName(), None)
        crop = write.input(0)
        nuke.delete(write)
        if crop is not None and crop.Class() == "Crop" and crop.name().startswith(ROI_CROP):
            nuke.delete(crop)

    # ----------------------------------------------------------- results

    def show_read(self, node: Any, pattern: str, first: int, last: int, proxy: bool = False,
                  roi: Optional[Sequence[float]] = None, colour_space: str = "") -> None:
        """Point the node's Read at a version; one rendered in proxy mode is the Read's proxy file too, so
        Nuke does not shrink it a second time. A version of an ROI is keyed over the plate inside its box:
        outside it the plate passes through untouched and the plate's bbox is kept."""
        read = node.node(READ)
        with _NoUndo():
            if roi is not None:
                node.node(ROI_MASK)["area"].setValue(list(roi))
            read["file"].setValue(pattern)
            read["proxy"].setValue(pattern if proxy else "")
            for name, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
                read[name].setValue(value)
            _set_colour(read, colour_space or self.working_space())
            if read.knob("reload") is not None:
                read["reload"].execute()
            node.node(SWITCH)["which"].setValue(SHOW_RESULT if roi is None else SHOW_RESULT_IN_ROI)

    def show_input(self, node: Any) -> None:
        with _NoUndo():
            node.node(SWITCH)["which"].setValue(SHOW_INPUT)

    def take_out_read(self, node: Any, pattern: str, first: int, last: int, label: str,
                      colour_space: str = "") -> Any:
        """A plain Read of a version beside the node (the compositor's own, outside the group)."""
        with self._context(node):
            read = nuke.nodes.Read(file=pattern, first=first, last=last, origfirst=first, origlast=last)
            _set_colour(read, colour_space or self.working_space())
            read["label"].setValue(label)
            read.setXYpos(node.xpos() + 150, node.ypos())
        return read

    def create_shotpass_after(self, node: Any) -> Any:
        with self._context(node):
            child = build_node(nuke.nodes.Group())
            child.setInput(0, node)
            child.setXYpos(node.xpos(), node.ypos() + 120)
        CONTROLLER.on_create(child)
        return child

    # ----------------------------------------------------------- script

    def script_path(self) -> str:
        name = nuke.root().name()
        return "" if name in ("Root", "") else name

    def working_space(self) -> str:
        knob = nuke.root().knob("workingSpaceLUT")
        return str(knob.value()) if knob is not None else ""

    def current_frame(self) -> int:
        return int(nuke.frame())

    # ----------------------------------------------------------- threads (any thread)

    def main_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.headless:
            _guarded(fn, *args)
            return
        nuke.executeInMainThread(_guarded, args=(fn,) + args)

    def call_main(self, fn: Callable[..., Any], *args: Any) -> Any:
        """From a worker: run fn on the main thread, wait, return its result or raise its error here."""
        if self.headless:
            return fn(*args)
        box = nuke.executeInMainThreadWithResult(_captured, args=(fn,) + args)
        ok, value = box
        if not ok:
            raise value
        return value

    def progress_task(self, title: str) -> Any:
        return HeadlessTask(title) if self.headless else nuke.ProgressTask(title)

    def end_progress_task(self, task: Any) -> None:
        task.setProgress(100)


def _set_colour(read: Any, colour_space: str) -> None:
    """A Read of results: they are in the plate's colour space, so the Read converts from it as from any plate."""
    read["raw"].setValue(False)
    try:
        read["colorspace"].setValue(colour_space)
    except (ValueError, TypeError):  # not a name of this script's config: leave Nuke's default
        traceback.print_exc()


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    """Main-thread calls posted by workers: an error is printed, never raised into Nuke."""
    try:
        fn(*args)
    except Exception:
        traceback.print_exc()


def _captured(fn: Callable[..., Any], *args: Any) -> Tuple[bool, Any]:
    try:
        return True, fn(*args)
    except Exception as err:
        return False, err


HOST = NukeHost()
CONTROLLER = Controller(HOST)


def _knob(node: Any, knob: Any, tooltip: str, newline: bool = True) -> Any:
    if not newline:
        knob.clearFlag(nuke.STARTLINE)
    knob.setTooltip(tooltip)
    node.addKnob(knob)
    return knob


def build_node(node: Any) -> Any:
    """Turn an empty Group into a ShotPass node: inputs plate/mask/reference, a Read of the version, knobs.

    Its defaults are part of creating the node (one undo step in Nuke), not edits of their own.
    """
    with _NoUndo():
        return _build(node)


def _build(node: Any) -> Any:
    node.setName("ShotPass1", uncollide=True)
    with node:
        plate = nuke.nodes.Input(name="plate")
        nuke.nodes.Input(name="mask")
        nuke.nodes.Input(name="reference")
        read = nuke.nodes.Read(name=READ)
        read["on_error"].setValue("black")
        mask = nuke.nodes.Rectangle(name=ROI_MASK)
        mix = nuke.nodes.Keymix(name=ROI_MIX)  # inputs: B (plate), A (result), mask
        mix["bbox"].setValue("B side")
        for index, upstream in enumerate((plate, read, mask)):
            mix.setInput(index, upstream)
        switch = nuke.nodes.Switch(name=SWITCH)
        for index, upstream in enumerate((plate, read, mix)):
            switch.setInput(index, upstream)
        nuke.nodes.Output().setInput(0, switch)

    def add(knob: Any, tooltip: str, newline: bool = True) -> Any:
        return _knob(node, knob, tooltip, newline)

    add(nuke.Tab_Knob("shotpass_tab", "ShotPass"), "the shotpass settings of this node")
    add(nuke.String_Knob("server", "server"), "host:port of the shotpass server (default $SHOTPASS_SERVER)")
    add(nuke.PyScript_Knob("connect", "Connect", _cmd("connect")),
        "load passes and models, and fetch this node's renders that finished meanwhile", newline=False)
    add(nuke.String_Knob("project", "project"), "the server project (default $SHOTPASS_PROJECT, else the "
        "script's folder)")
    add(nuke.String_Knob("shot", "shot"), "the shot on the server (default: the script name without _v###)",
        newline=False)
    add(nuke.Enumeration_Knob("pass", "pass", []), "what the server does: stylize, inpaint, upscale ...")
    add(nuke.Enumeration_Knob("model", "model", []), "the model of this pass (the server's list)", newline=False)
    add(nuke.Multiline_Eval_String_Knob("prompt", "prompt"),
        "describe the result (not an instruction); diffusion models only")
    add(nuke.Multiline_Eval_String_Knob("negative_prompt", "negative prompt"), "what the result must not show")
    strength = add(nuke.Double_Knob("strength", "strength"), "how far the result may move from the plate (0-1)")
    strength.setRange(0.0, 1.0)
    strength.setValue(1.0)
    add(nuke.Int_Knob("seed", "seed"), "the render's seed: the same seed gives the same frames", newline=False)\
        .setValue(1)
    add(nuke.Enumeration_Knob("range_mode", "frame range", [INPUT_RANGE, CUSTOM_RANGE]),
        "the plate's own frame range, or the custom frames on the right")
    add(nuke.String_Knob("frames", "frames"), "custom range, e.g. 1001-1100 or 1001-1100x2", newline=False)
    add(nuke.Int_Knob("context_handles", "handles"), "video models: frames of the input before and after the range "
        "that the model reads as context but does not render, so a pickup cuts back into the full render",
        newline=False)
    add(nuke.Enumeration_Knob("colour_space", "plate colour space", []),
        "colour space of the plate's pixels, as the server's colour config names it")
    add(nuke.String_Knob("channels", "channels"),
        "channels sent to the server: all (default: Z, motion and AOVs travel too), rgba, rgb or a layer name")\
        .setValue("all")
    add(nuke.Boolean_Knob("use_roi", "use roi"), "process only the box below; outside it the plate passes "
        "through untouched (its bbox is kept)")
    add(nuke.BBox_Knob("roi", "roi"), "the box to process (x, y, r, t in pixels)", newline=False)
    add(nuke.File_Knob("output", "output"),
        "where results are written, like a Write's file: v### becomes the render's version, #### the frame")
    add(nuke.Text_Knob("actions", ""), "render this node, or work with its versions")
    add(nuke.PyScript_Knob("preview", "Preview Frame", _cmd("preview")), "render the current frame on the "
        "server's priority lane")
    add(nuke.PyScript_Knob("render", "Render", _cmd("render")), "render the frame range", newline=False)
    add(nuke.PyScript_Knob("cancel", "Cancel", _cmd("cancel")), "cancel this node's running render",
        newline=False)
    add(nuke.PyScript_Knob("suspend", "Suspend", _cmd("suspend")), "start no more frames of this node's render "
        "(the running one finishes) until Resume", newline=False)
    add(nuke.PyScript_Knob("resume", "Resume", _cmd("resume")), "go on with the suspended render", newline=False)
    add(nuke.PyScript_Knob("requeue", "Requeue Failed", _cmd("requeue")), "render the failed and cancelled frames "
        "of the selected version again (finished frames are kept); they come back into the same version",
        newline=False)
    add(nuke.PyScript_Knob("edit_render", "Edit this Render", _cmd("edit_render")),
        "a new ShotPass node that works on this version's result (by reference: nothing uploaded again)",
        newline=False)
    add(nuke.PyScript_Knob("reuse_settings", "Reuse Settings", _cmd("reuse_settings")),
        "copy these settings to the selected ShotPass nodes", newline=False)
    add(nuke.PyScript_Knob("farm", "Farm Command", _cmd("farm")),
        "the command lines that render this node on a farm or in a terminal (nuke -t, shotpass render)",
        newline=False)
    add(nuke.Enumeration_Knob("version", "version", [NO_VERSIONS]), "which of this node's renders it shows")
    add(nuke.PyScript_Knob("take_out", "Take out as Read", _cmd("take_out")),
        "a plain Read of the selected version beside this node", newline=False)
    rating = add(nuke.Int_Knob("rating", "rating"), "your rating of this version (0-5), saved on the server")
    rating.setRange(0, 5)
    add(nuke.Boolean_Knob("pinned", "pin"), "keep this version (pinned renders are never cleaned up)",
        newline=False)
    status = add(nuke.Text_Knob("status", "status", ""), "what the node is doing, or what went wrong")
    farm = add(nuke.Multiline_Eval_String_Knob("farm_command", "farm command"),
               "filled by Farm Command: copy a line into a farm job or a terminal")
    summary = add(nuke.String_Knob("shotpass_summary", "summary"), "version and state, shown in the label")
    state = add(nuke.String_Knob(STATE_KNOB, STATE_KNOB), "this node's renders (saved with the script)")
    ident = add(nuke.String_Knob(ID_KNOB, ID_KNOB), "this node's stable id: renders find it even after a rename")
    for knob in (status, summary, state, ident, farm):
        knob.setFlag(nuke.NO_UNDO)
    for knob in (summary, state, ident):
        knob.setFlag(nuke.INVISIBLE)
    ident.setValue(uuid.uuid4().hex)
    add(nuke.Tab_Knob("options_tab", "Pass options"), "the options of the chosen model")
    node["knobChanged"].setValue(KNOB_CHANGED)
    node["onCreate"].setValue(ON_CREATE)
    node["label"].setValue("[value model]\n[value shotpass_summary]")
    node["help"].setValue(HELP)
    return node


# ------------------------------------------------------------------ entry points (menu, knob scripts)


def create_node() -> Any:
    """Menu entry: a ShotPass node after the selected node, filled from the script and the server.

    createNode cannot connect an empty Group (it has no inputs yet), so the selection is taken first and
    connected once the Input nodes exist.
    """
    try:
        selected = nuke.selectedNodes()
        upstream = selected[-1] if selected else None
        node = build_node(nuke.createNode("Group", inpanel=False))
        if upstream is not None:
            node.setInput(0, upstream)
            node.setXYpos(upstream.xpos(), upstream.ypos() + 100)
        CONTROLLER.on_create(node)
        return node
    except Exception:
        traceback.print_exc()
        return None


def button(action: str) -> None:
    node = nuke.thisNode()
    with nuke.root():  # knob scripts run inside the group: the controller looks at the whole script
        _safe(node, CONTROLLER.button, node, action)


def node_created() -> None:
    node = nuke.thisNode()
    with nuke.root():
        _safe(node, HOST.renew_id_if_copied, node)


def knob_changed() -> None:
    node, knob = nuke.thisNode(), nuke.thisKnob()
    with nuke.root():
        _safe(node, CONTROLLER.knob_changed, node, knob.name())


def render_script(script: str, names: Sequence[str] = (), save: bool = False) -> int:
    """shotpass_render.py under `nuke -t`: open the script, then render_headless."""
    nuke.scriptOpen(script)
    return render_headless(names, save)


def render_headless(names: Sequence[str] = (), save: bool = False) -> int:
    """`nuke -t shotpass_render.py script.nk [ShotPass1 ...]`: render the named ShotPass nodes (all when none
    are named) one after the other on this thread, progress on stdout; 0 when every render came back."""
    HOST.headless = True
    try:
        with nuke.root():
            nodes = [nuke.toNode(n) for n in names] if names else HOST.all_shotpass_nodes()
        missing = [n for n, node in zip(names, nodes) if node is None or not HOST.is_shotpass(node)]
        if missing or not nodes:
            print(f"shotpass: no ShotPass node {', '.join(missing) or 'in this script'}", flush=True)
            return 2
        ok = all([CONTROLLER.render_now(node) for node in nodes])
        if save:
            nuke.scriptSave()
        return 0 if ok else 1
    finally:
        HOST.headless = False


def script_loaded() -> None:
    """onScriptLoad: reconnect every ShotPass node and fetch renders that finished while Nuke was closed."""
    try:
        for node in HOST.all_shotpass_nodes():
            _safe(node, CONTROLLER.refresh, node)
    except Exception:
        traceback.print_exc()


def _safe(node: Any, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as err:
        traceback.print_exc()
        try:
            HOST.set(node, "status", f"shotpass error: {type(err).__name__}: {err}")
        except Exception:
            pass
        return None


def open_render_in_dag(render_id: str) -> Any:
    return CONTROLLER.open_render(render_id)


def panel_defaults() -> Tuple[str, str]:
    """(server, project) for the queue panel: the selected ShotPass node's, else the environment's."""
    for node in HOST.selected_shotpass_nodes() + HOST.all_shotpass_nodes():
        return HOST.get(node, "server"), HOST.get(node, "project")
    from shotpass_client.client import DEFAULT_ADDRESS
    from shotpass_client.ui_model import script_project_shot

    return os.environ.get("SHOTPASS_SERVER", DEFAULT_ADDRESS), script_project_shot(HOST.script_path())[0]


def install_menu() -> None:
    """menu.py: the 'shotpass' menu and the node entry first, then the 'shotpass queue' panel.

    The panel needs Qt (the plugin's own shim, no qtpy needed); a Nuke or an environment without a usable
    binding still gets the node and the menu: the panel is left out with one line saying why.
    """
    cmd = "import shotpass_nuke.host\nshotpass_nuke.host.create_node()"
    nuke.menu("Nodes").addMenu("shotpass").addCommand("ShotPass", cmd)
    menu = nuke.menu("Nuke").addMenu("shotpass")
    menu.addCommand("ShotPass node", cmd)
    nuke.addOnScriptLoad(script_loaded)
    if register_panel():
        menu.addCommand("Queue panel", "import shotpass_nuke.host\nshotpass_nuke.host.show_queue_panel()")


def register_panel() -> bool:
    try:
        from . import panel
    except Exception as err:  # ImportError, or a binding that fails while loading its libraries
        print(f"shotpass: queue panel unavailable ({type(err).__name__}: {err}); the ShotPass node works without it")
        return False
    panel.HOOKS["open_in_dag"] = open_render_in_dag
    panel.HOOKS["defaults"] = panel_defaults
    nukescripts.panels.registerWidgetAsPanel("shotpass_nuke.panel.QueuePanel", "shotpass queue", PANEL_ID)
    return True


def show_queue_panel() -> Any:
    try:
        return nukescripts.panels.restorePanel(PANEL_ID)
    except Exception:
        traceback.print_exc()
        return None

