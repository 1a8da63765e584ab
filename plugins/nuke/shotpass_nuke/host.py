"""The one module that imports `nuke`: the ShotPass Group node, its knobs, and Nuke's threading/execute API.

Everything the node *does* lives in controller.py (plain Python); this adapter only translates between
Nuke's objects and the controller's small host interface, and turns every callback error into a status
line and a printed traceback, never into an exception dialog.
"""

from __future__ import annotations

import os
import re
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import nuke
import nukescripts

from shotpass_client.ui_model import BOOL, CHOICE, FLOAT, INT, OptionField, contiguous_runs

from .controller import CUSTOM_RANGE, INPUT_RANGE, NO_VERSIONS, STATE_KNOB, Controller

READ, SWITCH = "shotpass_read", "shotpass_switch"
PANEL_ID = "io.shotpass.queue"


def _cmd(action: str) -> str:
    return f"import shotpass_nuke.host\nshotpass_nuke.host.button({action!r})"


KNOB_CHANGED = "import shotpass_nuke.host\nshotpass_nuke.host.knob_changed()"


def _frame_path(pattern: str, frame: int) -> str:
    m = list(re.finditer(r"#+", pattern))[-1]
    return f"{pattern[: m.start()]}{frame:0{len(m.group(0))}d}{pattern[m.end():]}"


class NukeHost:
    """The controller's view of Nuke. Methods marked (main) must run on Nuke's main thread."""

    # ----------------------------------------------------------- knobs (main)

    def get(self, node: Any, name: str) -> Any:
        knob = node.knob(name)
        return knob.value() if knob is not None else None

    def set(self, node: Any, name: str, value: Any) -> None:
        knob = node.knob(name)
        if knob is None:
            return
        if isinstance(knob, nuke.Enumeration_Knob) and str(value) not in knob.values():
            return
        knob.setValue(value)

    def choices(self, node: Any, name: str) -> List[str]:
        return list(node[name].values())

    def set_choices(self, node: Any, name: str, values: Sequence[str], current: str) -> None:
        knob = node[name]
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
            knob.setTooltip(field.description)
            node.addKnob(knob)
            value = kept.get(field.name, field.default)
            try:
                knob.setValue(value)
            except (TypeError, ValueError):
                knob.setValue(field.default)

    # ----------------------------------------------------------- nodes (main)

    def full_name(self, node: Any) -> str:
        return node.fullName()

    def base_name(self, node: Any) -> str:
        return node.name()

    def find_node(self, name: str) -> Any:
        return nuke.toNode(name)

    def is_shotpass(self, node: Any) -> bool:
        return node is not None and node.Class() == "Group" and node.knob(STATE_KNOB) is not None

    def input_node(self, node: Any, index: int) -> Any:
        return node.input(index)

    def input_range(self, node: Any) -> Tuple[int, int]:
        return int(node.firstFrame()), int(node.lastFrame())

    def read_file(self, node: Any) -> Optional[str]:
        """The file pattern of a Read node (path mode candidates), else None."""
        return node["file"].value() if node.Class() == "Read" else None

    def selected_shotpass_nodes(self) -> List[Any]:
        return [n for n in nuke.selectedNodes() if self.is_shotpass(n)]

    def all_shotpass_nodes(self) -> List[Any]:
        return [n for n in nuke.allNodes("Group", recurseGroups=True) if self.is_shotpass(n)]

    def reveal(self, node: Any) -> None:
        for other in nuke.selectedNodes():
            other.setSelected(False)
        node.setSelected(True)
        nuke.show(node)

    def _context(self, node: Any) -> Any:
        full = node.fullName()
        return nuke.toNode(full.rsplit(".", 1)[0]) if "." in full else nuke.root()

    def render_to_files(self, src: Any, frames: Sequence[int], pattern: str) -> Dict[int, str]:
        """(main) Render src's frames to EXR files through a temporary Write; frame numbers kept."""
        os.makedirs(os.path.dirname(pattern), exist_ok=True)
        with self._context(src):
            write = nuke.nodes.Write(file=pattern, file_type="exr")
            try:
                write["channels"].setValue("rgba")
                write.setInput(0, src)
                for first, last in contiguous_runs(frames):
                    nuke.execute(write, first, last, 1)
            finally:
                nuke.delete(write)
        written = {f: _frame_path(pattern, f) for f in frames}
        missing = [f for f, p in written.items() if not os.path.isfile(p)]
        if missing:
            raise RuntimeError(f"{src.name()}: frames {missing} were not written")
        return written

    def show_read(self, node: Any, pattern: str, first: int, last: int) -> None:
        read = node.node(READ)
        read["file"].setValue(pattern)
        for name, value in (("first", first), ("last", last), ("origfirst", first), ("origlast", last)):
            read[name].setValue(value)
        if read.knob("reload") is not None:
            read["reload"].execute()
        node.node(SWITCH)["which"].setValue(1)

    def show_input(self, node: Any) -> None:
        node.node(SWITCH)["which"].setValue(0)

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

    # ----------------------------------------------------------- threads

    def main_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        nuke.executeInMainThread(_guarded, args=(fn,) + args)

    def progress_task(self, title: str) -> Any:
        return nuke.ProgressTask(title)

    def end_progress_task(self, task: Any) -> None:
        task.setProgress(100)


def _guarded(fn: Callable[..., Any], *args: Any) -> None:
    """Main-thread calls posted by workers: an error is printed, never raised into Nuke."""
    try:
        fn(*args)
    except Exception:
        traceback.print_exc()


HOST = NukeHost()
CONTROLLER = Controller(HOST)


def build_node(node: Any) -> Any:
    """Turn an empty Group into a ShotPass node: inputs plate/mask/reference, a Read of the version, knobs."""
    node.setName("ShotPass1", uncollide=True)
    with node:
        plate = nuke.nodes.Input(name="plate")
        nuke.nodes.Input(name="mask")
        nuke.nodes.Input(name="reference")
        read = nuke.nodes.Read(name=READ)
        read["on_error"].setValue("black")
        switch = nuke.nodes.Switch(name=SWITCH)
        switch.setInput(0, plate)
        switch.setInput(1, read)
        nuke.nodes.Output().setInput(0, switch)

    def add(knob: Any, tooltip: str = "", newline: bool = True) -> Any:
        if not newline:
            knob.clearFlag(nuke.STARTLINE)
        if tooltip:
            knob.setTooltip(tooltip)
        node.addKnob(knob)
        return knob

    add(nuke.Tab_Knob("shotpass_tab", "ShotPass"))
    add(nuke.String_Knob("server", "server"), "host:port of the shotpass server ($SHOTPASS_SERVER)")
    add(nuke.PyScript_Knob("connect", "Connect", _cmd("connect")), "load passes and models", newline=False)
    add(nuke.String_Knob("project", "project"))
    add(nuke.String_Knob("shot", "shot"), newline=False)
    add(nuke.Enumeration_Knob("pass", "pass", []))
    add(nuke.Enumeration_Knob("model", "model", []), newline=False)
    add(nuke.Multiline_Eval_String_Knob("prompt", "prompt"), "describe the result (not an instruction)")
    add(nuke.Multiline_Eval_String_Knob("negative_prompt", "negative prompt"))
    strength = add(nuke.Double_Knob("strength", "strength"))
    strength.setRange(0.0, 1.0)
    strength.setValue(1.0)
    add(nuke.Int_Knob("seed", "seed"), newline=False).setValue(1)
    add(nuke.Enumeration_Knob("range_mode", "frame range", [INPUT_RANGE, CUSTOM_RANGE]))
    add(nuke.String_Knob("frames", "frames"), "custom range, e.g. 1001-1100 or 1001-1100x2", newline=False)
    add(nuke.String_Knob("colour_space", "plate colour space"), "colour space of the plate (server name)")
    add(nuke.File_Knob("output_dir", "output folder"))
    add(nuke.Text_Knob("actions", ""))
    add(nuke.PyScript_Knob("preview", "Preview Frame", _cmd("preview")))
    add(nuke.PyScript_Knob("render", "Render", _cmd("render")), newline=False)
    add(nuke.PyScript_Knob("cancel", "Cancel", _cmd("cancel")), newline=False)
    add(nuke.PyScript_Knob("edit_render", "Edit this Render", _cmd("edit_render")), newline=False)
    add(nuke.PyScript_Knob("reuse_settings", "Reuse Settings", _cmd("reuse_settings")),
        "copy these settings to the selected ShotPass nodes", newline=False)
    add(nuke.Enumeration_Knob("version", "version", [NO_VERSIONS]))
    rating = add(nuke.Int_Knob("rating", "rating"), newline=False)
    rating.setRange(0, 5)
    add(nuke.Boolean_Knob("pinned", "pin"), newline=False)
    add(nuke.Text_Knob("status", "status", ""))
    add(nuke.String_Knob(STATE_KNOB, STATE_KNOB)).setFlag(nuke.INVISIBLE)
    add(nuke.Tab_Knob("options_tab", "Pass options"))
    node["knobChanged"].setValue(KNOB_CHANGED)
    node["label"].setValue("[value model]")
    return node


# ------------------------------------------------------------------ entry points (menu, knob scripts)


def create_node() -> Any:
    """Menu entry: a ShotPass node after the selected node, filled from the script and the server."""
    try:
        node = build_node(nuke.createNode("Group", inpanel=False))
        CONTROLLER.on_create(node)
        return node
    except Exception:
        traceback.print_exc()
        return None


def button(action: str) -> None:
    node = nuke.thisNode()
    _safe(node, CONTROLLER.button, node, action)


def knob_changed() -> None:
    node, knob = nuke.thisNode(), nuke.thisKnob()
    _safe(node, CONTROLLER.knob_changed, node, knob.name())


def _safe(node: Any, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as err:
        traceback.print_exc()
        try:
            node["status"].setValue(f"shotpass error: {type(err).__name__}: {err}")
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
