"""A small stand-in for Nuke's `nuke` module: only the API the shotpass plugin uses, strict where Nuke is.

Strict like Nuke (the plugin's real-Nuke bugs hid where an earlier fake was lenient):
- an empty Group (`createNode("Group")`) has no inputs until Input nodes are inside it; setInput on a
  missing input returns False and connects nothing, so createNode cannot connect it to the selection;
- knob scripts (buttons, knobChanged) of a Group run in that group's context: selectedNodes, allNodes,
  createNode and toNode see the group's inside unless the script uses `with nuke.root():`;
- node, knob and DAG access only on the main thread: any other thread is recorded in `thread_violations`
  and gets a RuntimeError (executeInMainThread and ProgressTask are the thread-safe parts);
- `execute` renders what the Write's knobs say: channels (rgb, rgba, all or a layer), datatype (16 bit half
  or 32 bit float, real float16/float32 EXRs via OpenEXR), views (%V in the path: a file per view; else
  a multi-part file with a part per view), proxy mode (the proxy path, at the proxy scale); a Read's
  frame offset ("offset"/"start at") moves its frames;
- knob changes made while undo is enabled are recorded in `undo_stack` (nuke.Undo.disable() keeps them out);
- a script saved with scriptSave and opened with scriptOpen keeps nodes, connections, user knobs (type,
  items, value, flags) and nothing of Python's memory; onScriptLoad callbacks then run.
Tests drive what a user does with Node.ui_set (edit a knob), pump() (Nuke's event loop running the
calls posted to the main thread) and ProgressTask.cancel() (the task's cancel button).
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

STARTLINE = 0x1000
INVISIBLE = 0x400
DISABLED = 0x80
NO_UNDO = 0x20000
DO_NOT_WRITE = 0x200

messages: List[str] = []  # nuke.message dialogs shown
shown: List[Any] = []  # nuke.show(node) calls
zoomed: List[tuple] = []  # nuke.zoom(scale, (x, y)) calls
executed: List[tuple] = []  # (write name, first, last, views) per nuke.execute
thread_violations: List[str] = []  # node/knob access from a thread other than the main thread
undo_stack: List[Tuple[str, str]] = []  # (node, knob) of knob changes recorded for undo
_main_queue: queue.Queue[tuple] = queue.Queue()
_main_thread = threading.main_thread()
_undo_disabled = [0]
_script_load_callbacks: List[tuple] = []


def _main_only(what: str) -> None:
    if threading.current_thread() is not _main_thread:
        thread_violations.append(f"{what} from thread {threading.current_thread().name}")
        raise RuntimeError(f"{what}: Nuke's nodes and knobs may only be used on the main thread")


class _MainThreadOnly:
    """Every public attribute of a node or knob is checked like Nuke's objects are used: main thread only."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            _main_only(f"{type(self).__name__}.{name}")
        return object.__getattribute__(self, name)


# ------------------------------------------------------------------ knobs


class Knob(_MainThreadOnly):
    default: Any = ""

    def __init__(self, name: str, label: Optional[str] = None, value: Any = None) -> None:
        self._name, self._label = name, label if label is not None else name
        self._value = self.default if value is None else self._coerce(value)
        self._flags, self._enabled, self._tooltip = STARTLINE, True, ""
        self._node: Optional[Node] = None

    def _coerce(self, value: Any) -> Any:
        return value

    def _changed(self) -> None:
        if not _undo_disabled[0] and not self._flags & NO_UNDO and self._node is not None:
            undo_stack.append((self._node.fullName(), self._name))

    def node(self) -> Optional[Node]:
        return self._node

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self) -> Any:
        return self._value

    getValue = value

    def evaluate(self) -> str:
        return _evaluate_tcl(str(self._value), self._node)

    def setValue(self, value: Any) -> bool:
        self._value = self._coerce(value)
        self._changed()
        return True

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setEnabled(self, on: bool) -> None:
        self._enabled = bool(on)

    def enabled(self) -> bool:
        return self._enabled

    def setTooltip(self, text: str) -> None:
        self._tooltip = text

    def tooltip(self) -> str:
        return self._tooltip

    def setLabel(self, text: str) -> None:
        self._label = text

    def _saved(self) -> Dict[str, Any]:
        return {"type": type(self).__name__, "name": self._name, "label": self._label, "value": self._value,
                "flags": self._flags, "tooltip": self._tooltip}


class String_Knob(Knob):
    def _coerce(self, value: Any) -> str:
        return str(value)


class File_Knob(String_Knob):
    pass


class EvalString_Knob(String_Knob):
    pass


class Multiline_Eval_String_Knob(String_Knob):
    pass


class Text_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    pass


class Int_Knob(Knob):
    default = 0

    def _coerce(self, value: Any) -> int:
        return int(value)

    def setRange(self, lo: float, hi: float) -> None:
        self._range = (lo, hi)


class Double_Knob(Int_Knob):
    default = 0.0

    def _coerce(self, value: Any) -> float:  # type: ignore[override]
        return float(value)


class Boolean_Knob(Knob):
    default = False

    def _coerce(self, value: Any) -> bool:
        return bool(value)


class Enumeration_Knob(Knob):
    """value() is the chosen item's text; setValue takes an item or an index, like Nuke."""

    def __init__(self, name: str, label: Optional[str] = None, values: Optional[List[str]] = None) -> None:
        super().__init__(name, label)
        self._values = [str(v) for v in values or []]
        self._index = 0

    def values(self) -> List[str]:
        return list(self._values)

    def setValues(self, values: List[str]) -> None:
        current = self.value()
        self._values = [str(v) for v in values]
        self._index = self._values.index(current) if current in self._values else 0

    def value(self) -> str:
        return self._values[self._index] if self._values else ""

    def getValue(self) -> float:
        return float(self._index)

    def setValue(self, value: Any) -> bool:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not 0 <= int(value) < len(self._values):
                raise ValueError(f"{self._name}: index {value} out of range")
            self._index = int(value)
        elif str(value) in self._values:
            self._index = self._values.index(str(value))
        else:
            raise ValueError(f"{self._name}: {value!r} is not one of {self._values}")
        self._changed()
        return True

    def _saved(self) -> Dict[str, Any]:
        return {**super()._saved(), "value": self.value(), "values": self._values}


# What each OCIO config lists (Nuke 14's nuke-default, an ACES 1.2 studio config), for Colorspace knobs.
OCIO_CONFIGS: Dict[str, List[str]] = {
    "nuke-default": ["linear", "sRGB", "rec709", "Cineon", "Gamma1.8", "Gamma2.2", "Gamma2.4", "Panalog",
                     "REDLog", "ViperLog", "AlexaV3LogC", "PLogLin", "SLog", "SLog1", "SLog2", "SLog3", "CLog",
                     "Log3G10", "Log3G12", "HybridLogGamma", "Protune", "BT1886", "st2084", "raw"],
    "aces_1.2": ["ACES - ACES2065-1", "ACES - ACEScc", "ACES - ACEScct", "ACES - ACEScg",
                 "Utility - Linear - sRGB", "Utility - sRGB - Texture", "Utility - Raw",
                 "Input - ARRI - V3 LogC (EI800) - Wide Gamut"],
}


class Colorspace_Knob(Enumeration_Knob):
    """The script's OCIO colour spaces (Root's OCIO_config), "default" first on Reads and Writes."""

    def __init__(self, name: str, label: Optional[str] = None, with_default: bool = True) -> None:
        super().__init__(name, label, [])
        self._with_default = with_default
        self._chosen = "default" if with_default else "linear"

    def values(self) -> List[str]:
        holder = self._node if isinstance(self._node, Root) else globals().get("_root")
        spaces = OCIO_CONFIGS[holder._knobs["OCIO_config"]._value] if holder is not None else []
        return (["default"] if self._with_default else []) + spaces

    def value(self) -> str:
        return self._chosen

    def setValue(self, value: Any) -> bool:
        if str(value) not in self.values():
            raise ValueError(f"{self._name}: {value!r} is not a colour space of the script's OCIO config")
        self._chosen = str(value)
        self._changed()
        return True

    def _saved(self) -> Dict[str, Any]:
        return {**Knob._saved(self), "value": self._chosen}


class PyScript_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, command: str = "") -> None:
        super().__init__(name, label, command)

    def execute(self) -> None:
        """Run the button's script as Nuke does: thisNode() is the knob's node, in the node's context."""
        _run_script(self.value(), self._node, self)


class BBox_Knob(Knob):
    """x, y, r, t (a box in pixels)."""

    default = (0.0, 0.0, 0.0, 0.0)

    def _coerce(self, value: Any) -> tuple:
        x, y, r, t = (float(v) for v in value)
        return (x, y, r, t)

    def x(self) -> float:
        return self._value[0]

    def y(self) -> float:
        return self._value[1]

    def r(self) -> float:
        return self._value[2]

    def t(self) -> float:
        return self._value[3]


def _run_script(script: str, node: Any, knob: Any) -> None:
    if not script:
        return
    # Like Nuke: a Group's knob scripts run inside the group (its DAG is the context).
    inside = isinstance(node, Group) and not isinstance(node, Root)
    _this.append((node, knob))
    if inside:
        _context.append(node)
    try:
        exec(compile(script, f"<{node._name}.{knob._name}>", "exec"), {"nuke": __import__(__name__)})
    finally:
        if inside:
            _context.pop()
        _this.pop()


# ------------------------------------------------------------------ nodes


_DEFAULT_KNOBS: Dict[str, List[Callable[[], Knob]]] = {
    "Read": [lambda: File_Knob("file"), lambda: File_Knob("proxy"), lambda: Int_Knob("first", value=1),
             lambda: Int_Knob("last", value=1), lambda: Int_Knob("origfirst", value=1),
             lambda: Int_Knob("origlast", value=1),
             lambda: Enumeration_Knob("frame_mode", "frame", ["expression", "start at", "offset"]),
             lambda: String_Knob("frame", "frame", ""),
             lambda: Enumeration_Knob("on_error", "missing frames", ["error", "black", "checkerboard"]),
             lambda: Colorspace_Knob("colorspace"), lambda: Boolean_Knob("raw"),
             lambda: PyScript_Knob("reload", "Reload")],
    "Write": [lambda: File_Knob("file"), lambda: File_Knob("proxy"),
              lambda: Enumeration_Knob("file_type", "file type", [" ", "exr", "png"]),
              lambda: Enumeration_Knob("datatype", "datatype", ["16 bit half", "32 bit float"]),
              lambda: String_Knob("channels", "channels", "rgb"),
              lambda: String_Knob("views", "views", ""),
              lambda: Colorspace_Knob("colorspace"), lambda: Boolean_Knob("raw"),
              lambda: Boolean_Knob("create_directories")],
    "Switch": [lambda: Int_Knob("which")],
    "Crop": [lambda: BBox_Knob("box"), lambda: Boolean_Knob("reformat"), lambda: Boolean_Knob("crop", value=True)],
    "Rectangle": [lambda: BBox_Knob("area")],
    "Keymix": [lambda: String_Knob("channels", value="all"),
               lambda: Enumeration_Knob("bbox", "bbox", ["union", "B side", "A side"])],
    "Input": [lambda: Int_Knob("number")],
    "Root": [lambda: String_Knob("name", value="Root"), lambda: Int_Knob("first_frame", value=1),
             lambda: Int_Knob("last_frame", value=100), lambda: Double_Knob("frame", value=1),
             lambda: String_Knob("views", value="main"), lambda: Boolean_Knob("proxy"),
             lambda: Double_Knob("proxy_scale", value=0.5),
             lambda: String_Knob("colorManagement", value="Nuke"),
             lambda: String_Knob("OCIO_config", value="nuke-default"),
             lambda: Colorspace_Knob("workingSpaceLUT", "working space", with_default=False)],
}


class Node(_MainThreadOnly):
    def __init__(self, cls: str, parent: Optional[Group]) -> None:
        self._class = cls
        self._knobs: Dict[str, Knob] = {}
        self._inputs: List[Optional[Node]] = []
        self._parent = parent
        self._name = ""
        self._selected = False
        self._xy = (0, 0)
        for make in [lambda: String_Knob("label"), lambda: String_Knob("knobChanged"),
                     lambda: String_Knob("onCreate"), lambda: Boolean_Knob("disable"),
                     lambda: String_Knob("help")] + _DEFAULT_KNOBS.get(cls, []):
            self._add(make())

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def fullName(self) -> str:
        if self._parent is None or isinstance(self._parent, Root):
            return self._name
        return f"{self._parent.fullName()}.{self._name}"

    def parent(self) -> Optional[Group]:
        return self._parent

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        siblings = {n._name for n in self._parent._nodes if n is not self} if self._parent else set()
        if name in siblings:
            if not uncollide:
                raise ValueError(f"a node named {name} already exists")
            stem = re.sub(r"\d+$", "", name)
            n = 1
            while f"{stem}{n}" in siblings:
                n += 1
            name = f"{stem}{n}"
        self._name = name

    # knobs
    def knob(self, name: str) -> Optional[Knob]:
        return self._knobs.get(name)

    def __getitem__(self, name: str) -> Knob:
        _main_only(f"{type(self).__name__}[{name!r}]")
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def knobs(self) -> Dict[str, Knob]:
        return dict(self._knobs)

    def _add(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob._name] = knob

    def addKnob(self, knob: Knob) -> None:
        self._add(knob)
        knob._user = True  # type: ignore[attr-defined]

    def removeKnob(self, knob: Knob) -> None:
        del self._knobs[knob._name]
        knob._node = None

    # inputs
    def maxInputs(self) -> int:
        return 1 if self._class in ("Read", "Input", "Root") else 99

    def input(self, i: int) -> Optional[Node]:
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Optional[Node]) -> bool:
        if i >= self.maxInputs():
            return False
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def dependent(self) -> List[Node]:
        return [n for n in (self._parent._nodes if self._parent else []) if self in n._inputs]

    # DAG
    def setSelected(self, on: bool) -> None:
        self._selected = bool(on)

    def isSelected(self) -> bool:
        return self._selected

    def xpos(self) -> int:
        return self._xy[0]

    def ypos(self) -> int:
        return self._xy[1]

    def screenWidth(self) -> int:
        return 80

    def screenHeight(self) -> int:
        return 18

    def setXYpos(self, x: int, y: int) -> None:
        self._xy = (int(x), int(y))

    # frame range, as Nuke reports it: a Read's own range (moved by its offset), otherwise its input's
    def firstFrame(self) -> int:
        if self._class == "Read":
            return self._knobs["first"]._value + _read_offset(self)
        up = _upstream(self)
        return up.firstFrame() if up is not None else _root._knobs["first_frame"]._value

    def lastFrame(self) -> int:
        if self._class == "Read":
            return self._knobs["last"]._value + _read_offset(self)
        up = _upstream(self)
        return up.lastFrame() if up is not None else _root._knobs["last_frame"]._value

    def metadata(self, key: Optional[str] = None, time: Optional[float] = None, view: Optional[str] = None) -> Any:
        """What Nuke reports of the source file at `time` (input/bitsperchannel, input/filename, exr/*)."""
        frame_no = int(time if time is not None else _root._knobs["frame"]._value)
        try:
            read, local = _source_read(self, frame_no)
            path = _read_path(read, local, view or _views()[0])
            meta = _file_metadata(path)
        except (RuntimeError, OSError):
            meta = {}
        return meta.get(key) if key is not None else meta

    # tests: what a user's edit of a knob in the properties panel does
    def ui_set(self, name: str, value: Any) -> None:
        self[name].setValue(value)
        _run_script(self["knobChanged"].value(), self, self[name])

    def __repr__(self) -> str:
        return f"<{self._class} {self.fullName()}>"


class Group(Node):
    def __init__(self, cls: str = "Group", parent: Optional[Group] = None) -> None:
        super().__init__(cls, parent)
        self._nodes: List[Node] = []

    def nodes(self) -> List[Node]:
        return list(self._nodes)

    def node(self, name: str) -> Optional[Node]:
        return next((n for n in self._nodes if n._name == name), None)

    def begin(self) -> Group:
        _context.append(self)
        return self

    def end(self) -> None:
        if _context[-1] is not self:
            raise RuntimeError(f"{self._name}.end() without a matching begin()")
        _context.pop()

    def __enter__(self) -> Group:
        _main_only("with group")
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def _input_nodes(self) -> List[Node]:
        return [n for n in self._nodes if n._class == "Input"]

    # Like Nuke: a Group has exactly as many inputs as it holds Input nodes.
    def maxInputs(self) -> int:
        return len(self._input_nodes())

    def input(self, i: int) -> Optional[Node]:
        return self._inputs[i] if i < min(len(self._inputs), self.maxInputs()) else None

    def inputs(self) -> int:
        return min(len(self._inputs), self.maxInputs())


class Root(Group):
    def __init__(self) -> None:
        super().__init__("Root", None)
        self._name = "root"

    def name(self) -> str:
        return self._knobs["name"]._value

    def fullName(self) -> str:
        return "root"

    def maxInputs(self) -> int:
        return 0


# ------------------------------------------------------------------ the image a Write pulls


def _read_offset(read: Node) -> int:
    mode, text = read._knobs["frame_mode"].value(), str(read._knobs["frame"]._value).strip()
    if not text or mode == "expression":
        return 0
    if mode == "offset":
        return int(float(text))
    return int(float(text)) - read._knobs["first"]._value  # "start at"


def _upstream(node: Node) -> Optional[Node]:
    """The node feeding `node`'s image: through Switch, a Group's Input nodes, otherwise input 0."""
    if node._class == "Switch":
        return node.input(int(node._knobs["which"]._value))
    if node._class == "Input":
        group = node._parent
        index = group._input_nodes().index(node) if group is not None else 0
        return group.input(index) if group is not None else None
    return node.input(0)


def _source_read(node: Optional[Node], frame_no: int) -> Tuple[Node, int]:
    """(the Read this node shows, the file frame it reads at output frame `frame_no`)."""
    seen = 0
    while node is not None and seen < 100:
        seen += 1
        if node._class == "Read":
            return node, frame_no - _read_offset(node)
        if isinstance(node, Group) and node._class == "Group":
            out = next((n for n in node._nodes if n._class == "Output"), None)
            node = out.input(0) if out is not None else None
            continue
        node = _upstream(node)
    raise RuntimeError("nothing to render: no Read upstream")


_PASS_THROUGH = ("Dot", "NoOp", "Output", "Input", "Switch")


def _pull(node: Optional[Node], frame_no: int, view: str) -> Tuple[Dict[str, Any], Dict[str, Any], bool]:
    """What a node outputs at a frame: (channels by Nuke name as float32, EXR header, read from a proxy file).

    The node classes the plugin builds are rendered as Nuke does; any other class is an error, never a guess.
    """
    if node is None:
        raise RuntimeError("nothing to render: an input is not connected")
    cls = node._class
    if node._knobs["disable"]._value and cls not in ("Read",):
        return _pull(node.input(0), frame_no, view)
    if cls == "Read":
        path = _read_path(node, frame_no - _read_offset(node), view)
        if not os.path.isfile(path):
            if node._knobs["on_error"].value() == "error":
                raise RuntimeError(f"{node._name}: Read error: {path}: No such file or directory")
            raise RuntimeError(f"{node._name}: the fake renders no black frames for missing files ({path})")
        channels, header, _bits = _decode(path)
        return channels, header, _uses_proxy_file(node)
    if cls == "Group":
        out = next((n for n in node._nodes if n._class == "Output"), None)
        if out is None:
            raise RuntimeError(f"{node._name}: a Group without an Output node renders nothing")
        return _pull(out, frame_no, view)
    if cls in _PASS_THROUGH:
        return _pull(_upstream(node), frame_no, view)
    if cls == "Crop":
        return _crop(node, frame_no, view)
    if cls == "Keymix":
        return _keymix(node, frame_no, view)
    raise RuntimeError(f"the fake nuke cannot render a {cls} node")


def _exr_box(box: Tuple[float, ...], header: Dict[str, Any]) -> Tuple[int, int, int, int]:
    """A Nuke box (x, y, r, t: y up, r and t exclusive) as an EXR window (x0, y0, x1, y1: y down, inclusive)."""
    (dx0, dy0), (dx1, dy1) = header["displayWindow"]
    height = int(dy1) - int(dy0) + 1
    x, y, r, t = (int(round(v)) for v in box)
    return x, int(dy0) + height - t, r - 1, int(dy0) + height - 1 - y


def _window(header: Dict[str, Any]) -> Tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = header["dataWindow"]
    return int(x0), int(y0), int(x1), int(y1)


def _place(values: Any, src: Tuple[int, int, int, int], dst: Tuple[int, int, int, int]) -> Any:
    """Values on window src, placed on window dst (zero where src does not reach)."""
    import numpy as np

    out = np.zeros((dst[3] - dst[1] + 1, dst[2] - dst[0] + 1), np.float32)
    x0, y0, x1, y1 = max(src[0], dst[0]), max(src[1], dst[1]), min(src[2], dst[2]), min(src[3], dst[3])
    if x0 <= x1 and y0 <= y1:
        out[y0 - dst[1]:y1 - dst[1] + 1, x0 - dst[0]:x1 - dst[0] + 1] = \
            values[y0 - src[1]:y1 - src[1] + 1, x0 - src[0]:x1 - src[0] + 1]
    return out


def _crop(node: Node, frame_no: int, view: str) -> Tuple[Dict[str, Any], Dict[str, Any], bool]:
    """Crop (reformat off): the bbox shrinks to the box; the pixels inside are untouched."""
    import numpy as np

    channels, header, proxy_file = _pull(node.input(0), frame_no, view)
    box, window = _exr_box(node._knobs["box"]._value, header), _window(header)
    inside = (max(box[0], window[0]), max(box[1], window[1]), min(box[2], window[2]), min(box[3], window[3]))
    if inside[0] > inside[2] or inside[1] > inside[3]:
        raise RuntimeError(f"{node._name}: the crop box lies outside the image")
    header = dict(header)
    header["dataWindow"] = (np.array(inside[:2], np.int32), np.array(inside[2:], np.int32))
    return {k: _place(v, window, inside) for k, v in channels.items()}, header, proxy_file


def _keymix(node: Node, frame_no: int, view: str) -> Tuple[Dict[str, Any], Dict[str, Any], bool]:
    """Keymix (inputs B, A, mask; bbox "B side"): A where the mask is 1, B where it is 0, on B's bbox."""
    import numpy as np

    if node._knobs["bbox"].value() != "B side":
        raise RuntimeError(f"{node._name}: the fake renders Keymix with bbox 'B side' only")
    b, bhead, proxy_file = _pull(node.input(0), frame_no, view)
    a, ahead, _ = _pull(node.input(1), frame_no, view)
    window = _window(bhead)
    mask_node = node.input(2)
    if mask_node is None:
        mask = np.ones((window[3] - window[1] + 1, window[2] - window[0] + 1), np.float32)
    elif mask_node._class == "Rectangle":
        box = _exr_box(mask_node._knobs["area"]._value, bhead)
        mask = _place(np.ones((box[3] - box[1] + 1, box[2] - box[0] + 1), np.float32), box, window)
    else:
        m, mhead, _ = _pull(mask_node, frame_no, view)
        mask = _place(m.get("rgba.alpha", np.zeros((1, 1), np.float32)), _window(mhead), window)
    out = {}
    for name, values in b.items():
        placed = _place(a[name], _window(ahead), window) if name in a else np.zeros_like(values)
        out[name] = np.where(mask >= 1.0, placed, np.where(mask <= 0.0, values, values * (1 - mask) + placed * mask))
    return out, bhead, proxy_file


def _views() -> List[str]:
    return _root._knobs["views"]._value.split()


def views() -> List[str]:
    _main_only("nuke.views")
    return _views()


def _evaluate_tcl(text: str, node: Optional[Node]) -> str:
    """[getenv NAME], $env(NAME) and [value knob] / [value root.name] as Nuke's TCL evaluates them in paths."""
    def value(m: re.Match) -> str:
        target, _, knob = m.group(1).rpartition(".")
        holder = _root if target == "root" else (toNode(target) if target else node)
        return str(holder._knobs[knob].value()) if holder is not None and knob in holder._knobs else ""

    text = re.sub(r"\[getenv\s+(\w+)\]", lambda m: os.environ.get(m.group(1), ""), text)
    text = re.sub(r"\$env\((\w+)\)", lambda m: os.environ.get(m.group(1), ""), text)
    text = re.sub(r"\[value\s+([\w.]+)\]", value, text)
    if "[" in text:
        raise RuntimeError(f"TCL the fake cannot evaluate: {text}")
    return text


def _frame_path(pattern: str, frame_no: int, view: str = "main") -> str:
    pattern = pattern.replace("%V", view).replace("%v", view[:1])
    for rx in (r"#+", r"%0?(\d*)d"):
        m = list(re.finditer(rx, pattern))
        if m:
            tok = m[-1]
            width = len(tok.group(0)) if rx == r"#+" else int(tok.group(1) or 1)
            return f"{pattern[: tok.start()]}{frame_no:0{width}d}{pattern[tok.end():]}"
    return pattern


def _uses_proxy_file(read: Node) -> bool:
    return bool(_root._knobs["proxy"]._value) and bool(read._knobs["proxy"]._value)


def _read_path(read: Node, local_frame: int, view: str) -> str:
    """The file a Read reads: in proxy mode its proxy file when it has one (else the full file, scaled)."""
    first, last = read._knobs["first"]._value, read._knobs["last"]._value
    if not first <= local_frame <= last:
        raise RuntimeError(f"{read._name}: frame {local_frame} is outside {first}-{last}")
    knob = "proxy" if _uses_proxy_file(read) else "file"
    return _frame_path(_evaluate_tcl(read._knobs[knob]._value, read), local_frame, view)


_TO_NUKE = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
_TO_EXR = {v: k for k, v in _TO_NUKE.items()}


def _nuke_channel(exr_name: str) -> str:
    layer, _, chan = exr_name.rpartition(".")
    if not layer:
        return f"rgba.{_TO_NUKE[chan]}" if chan in _TO_NUKE else ("depth.Z" if chan == "Z" else f"other.{chan}")
    return f"{layer}.{_TO_NUKE.get(chan, chan)}"


def _exr_channel(nuke_name: str) -> str:
    layer, _, chan = nuke_name.partition(".")
    if layer == "rgba":
        return _TO_EXR[chan]
    if nuke_name == "depth.Z":
        return "Z"
    return f"{layer}.{_TO_EXR.get(chan, chan)}"


def _file_metadata(path: str) -> Dict[str, Any]:
    _channels, header, bits = _decode(path)
    return {"input/filename": path, "input/bitsperchannel": bits, **{f"exr/{k}": v for k, v in header.items()}}


def _decode(path: str) -> Tuple[Dict[str, Any], Dict[str, Any], str]:
    """(channels by Nuke name as float32 like Nuke's internal pixels, header, bitsperchannel)."""
    import numpy as np
    import OpenEXR

    with OpenEXR.File(path, separate_channels=True) as exr:
        part = exr.parts[0]
        raw = {k: np.array(v.pixels) for k, v in part.channels.items()}
        head = part.header
        header = {k: head[k] for k in ("dataWindow", "displayWindow", "pixelAspectRatio") if k in head}
    bits = "16-bit half float" if all(a.dtype == np.float16 for a in raw.values()) else "32-bit float"
    return {_nuke_channel(k): a.astype(np.float32) for k, a in raw.items()}, header, bits


def _pick_channels(write: Node, available: Dict[str, Any]) -> Dict[str, Any]:
    chosen = str(write._knobs["channels"]._value).strip()
    layers = {name.split(".")[0] for name in available}
    if chosen == "all":
        return dict(available)
    if chosen in ("rgb", "rgba"):
        wanted = ["rgba.red", "rgba.green", "rgba.blue"] + (["rgba.alpha"] if chosen == "rgba" else [])
        return {k: available[k] for k in wanted if k in available}
    if chosen not in layers:
        raise RuntimeError(f"{write._name}: channels {chosen!r}: no such layer in the input ({sorted(layers)})")
    return {k: v for k, v in available.items() if k.split(".")[0] == chosen}


def _proxy_scaled(channels: Dict[str, Any], header: Dict[str, Any], scale: float) -> None:
    """Proxy mode: every plane and both windows shrunk by 1/scale (box filter; whole factors only)."""
    import numpy as np

    k = int(round(1 / scale))
    for name, a in channels.items():
        h, w = a.shape[0] // k * k, a.shape[1] // k * k
        channels[name] = a[:h, :w].reshape(h // k, k, w // k, k).mean(axis=(1, 3)).astype(np.float32)
    for key in ("dataWindow", "displayWindow"):
        if key in header:
            (x0, y0), (x1, y1) = header[key]
            w, h = (x1 - x0 + 1) // k, (y1 - y0 + 1) // k
            lo = np.array([x0 // k, y0 // k], np.int32)
            header[key] = (lo, lo + np.array([w - 1, h - 1], np.int32))


# ------------------------------------------------------------------ module API

_root = Root()
_context: List[Group] = [_root]
_this: List[tuple] = []


def reset() -> None:
    """Tests: a new empty script (Nuke restarted: no callbacks, no undo history)."""
    global _root
    _root = Root()
    _context[:] = [_root]
    _this.clear()
    messages.clear()
    shown.clear()
    zoomed.clear()
    executed.clear()
    thread_violations.clear()
    undo_stack.clear()
    _undo_disabled[0] = 0
    _script_load_callbacks.clear()
    ProgressTask.instances.clear()
    while not _main_queue.empty():
        _main_queue.get_nowait()


def root() -> Root:
    _main_only("nuke.root")
    return _root


def thisNode() -> Any:
    _main_only("nuke.thisNode")
    return _this[-1][0] if _this else _root


def thisKnob() -> Any:
    return _this[-1][1] if _this else None


def thisGroup() -> Group:
    _main_only("nuke.thisGroup")
    return _context[-1]


def frame(f: Optional[float] = None) -> int:
    _main_only("nuke.frame")
    if f is not None:
        _root._knobs["frame"]._value = float(f)
    return int(_root._knobs["frame"]._value)


def _create(cls: str, knobs: Dict[str, Any]) -> Node:
    _main_only(f"creating a {cls}")
    parent = _context[-1]
    node: Node = Group(cls, parent) if cls == "Group" else Node(cls, parent)
    parent._nodes.append(node)
    node.setName(knobs.pop("name", f"{cls}1"))
    for key, value in knobs.items():
        node[key].setValue(value)
    return node


def createNode(cls: str, knobs: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: the new node is connected to the selected node (if it has an input) and becomes the selection."""
    selected = selectedNodes()
    node = _create(cls, {})
    if selected:
        node.setInput(0, selected[-1])  # an empty Group has no input: nothing is connected
        node.setXYpos(selected[-1].xpos(), selected[-1].ypos() + 80)
    for n in _context[-1]._nodes:
        n._selected = n is node
    return node


class _Nodes:
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        return lambda **knobs: _create(cls, dict(knobs))


nodes = _Nodes()


def toNode(name: str) -> Optional[Node]:
    """Like Nuke: a name is looked up in the current context (a group's inside while its knob scripts run)."""
    _main_only("nuke.toNode")
    if name == "root":
        return _root
    node: Any = _root if name.startswith("root.") else _context[-1]
    for part in (name[5:] if name.startswith("root.") else name).split("."):
        node = node.node(part) if isinstance(node, Group) else None
        if node is None:
            return None
    return node


def allNodes(filter: Optional[str] = None, group: Optional[Group] = None, recurseGroups: bool = False) -> List[Node]:
    _main_only("nuke.allNodes")
    found: List[Node] = []
    for n in (group or _context[-1])._nodes:
        if filter is None or n._class == filter:
            found.append(n)
        if recurseGroups and isinstance(n, Group):
            found += allNodes(filter, n, True)
    return found


def selectedNodes(filter: Optional[str] = None) -> List[Node]:
    _main_only("nuke.selectedNodes")
    return [n for n in _context[-1]._nodes if n._selected and (filter is None or n._class == filter)]


def selectedNode() -> Node:
    found = selectedNodes()
    if not found:
        raise ValueError("no node selected")
    return found[-1]


def delete(node: Node) -> None:
    _main_only("nuke.delete")
    parent = node._parent
    if parent is not None:
        parent._nodes.remove(node)
        for other in parent._nodes:
            other._inputs = [None if i is node else i for i in other._inputs]


def execute(node: Any, start: int, end: int, incr: int = 1, views: Optional[List[str]] = None,
            continueOnError: bool = False) -> None:
    """Render a Write frame by frame as its knobs say (see the module docstring)."""
    import numpy as np
    import OpenEXR

    _main_only("nuke.execute")
    write = toNode(node) if isinstance(node, str) else node
    if write is None or write._class != "Write":
        raise RuntimeError(f"{node}: execute needs a Write node")
    if write._knobs["file_type"].value() != "exr":
        raise RuntimeError(f"{write._name}: file_type must be set")
    proxy = bool(_root._knobs["proxy"]._value)
    file_knob = "proxy" if proxy else "file"
    pattern = _evaluate_tcl(write._knobs[file_knob]._value, write)
    if not pattern:
        raise RuntimeError(f"{write._name}: {'proxy ' if proxy else ''}filename not set")
    chosen_views = views or write._knobs["views"]._value.split() or _views()
    unknown = [v for v in chosen_views if v not in _views()]
    if unknown:
        raise RuntimeError(f"{write._name}: views {unknown} are not in the script ({_views()})")
    half = write._knobs["datatype"].value() == "16 bit half"
    space = write._knobs["colorspace"].value()
    if not write._knobs["raw"]._value and space not in ("default", _root._knobs["workingSpaceLUT"].value()):
        raise RuntimeError(f"{write._name}: the fake cannot convert to {space!r} (it writes working-space values)")
    executed.append((write._name, start, end, tuple(chosen_views)))
    for f in range(start, end + 1, incr):
        parts = []
        for view in chosen_views:
            available, header, from_proxy_file = _pull(write.input(0), f, view)
            picked = _pick_channels(write, available)
            if not picked:
                raise RuntimeError(f"{write._name}: no channels to write")
            if proxy and not from_proxy_file:
                _proxy_scaled(picked, header, float(_root._knobs["proxy_scale"]._value))
            header["compression"] = OpenEXR.ZIP_COMPRESSION
            pixels = {_exr_channel(k): v.astype(np.float16 if half else np.float32) for k, v in picked.items()}
            parts.append((view, header, pixels))
        out = _frame_path(pattern, f, chosen_views[0])
        if write._knobs["create_directories"]._value:
            os.makedirs(os.path.dirname(out), exist_ok=True)
        if not os.path.isdir(os.path.dirname(out) or "."):
            raise RuntimeError(f"{write._name}: cannot write {out}: No such file or directory")
        if "%V" in pattern or "%v" in pattern or len(parts) == 1:
            for view, header, pixels in parts:
                OpenEXR.File(header, pixels).write(_frame_path(pattern, f, view))
        else:  # several views in one file: a part per view, named and tagged with its view
            exr_parts = [OpenEXR.Part({**header, "view": view}, {n: OpenEXR.Channel(n, p) for n, p in pixels.items()},
                                      view) for view, header, pixels in parts]
            OpenEXR.File(exr_parts).write(out)


REPLACE = 1


def filename(node: Node, flags: int = 0) -> Optional[str]:
    """The file a Read/Write uses, TCL and environment expressions evaluated; frame tokens kept (printf
    style, as Nuke returns them) unless REPLACE asks for the current frame's file."""
    _main_only("nuke.filename")
    knob = node._knobs.get("file")
    if knob is None:
        return None
    text = _evaluate_tcl(str(knob._value), node)
    if flags & REPLACE:
        return _frame_path(text, int(_root._knobs["frame"]._value))
    return re.sub(r"#+", lambda m: f"%0{len(m.group(0))}d", text)


def executeInMainThread(call: Callable[..., Any], args: tuple = (), kwargs: Optional[dict] = None) -> None:
    if threading.current_thread() is _main_thread:
        call(*args, **(kwargs or {}))
    else:
        _main_queue.put((call, args, kwargs or {}))


def executeInMainThreadWithResult(call: Callable[..., Any], args: tuple = (), kwargs: Optional[dict] = None) -> Any:
    if threading.current_thread() is _main_thread:
        return call(*args, **(kwargs or {}))
    done = threading.Event()
    box: List[Any] = []
    _main_queue.put((lambda: (box.append(call(*args, **(kwargs or {}))), done.set()), (), {}))
    done.wait()
    return box[0]


def pump() -> int:
    """Tests: run the calls worker threads posted to the main thread (Nuke's event loop does this)."""
    n = 0
    while True:
        try:
            call, args, kwargs = _main_queue.get_nowait()
        except queue.Empty:
            return n
        call(*args, **kwargs)
        n += 1


class ProgressTask:
    """Thread-safe in Nuke (that is what it is for): no main-thread check here."""

    instances: List[ProgressTask] = []

    def __init__(self, title: str) -> None:
        self.title, self.progress, self.message, self._cancelled = title, 0, "", False
        self.history: List[int] = []
        self.messages: List[str] = []
        ProgressTask.instances.append(self)

    def setProgress(self, percent: int) -> None:
        self.progress = int(percent)
        self.history.append(self.progress)

    def setMessage(self, text: str) -> None:
        self.message = text
        self.messages.append(text)

    def isCancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Tests: the user pressed the task's cancel button."""
        self._cancelled = True


class Undo:
    """Like Nuke's: disable/enable are a switch, not a counter (an inner enable turns undo back on)."""

    @staticmethod
    def disable() -> None:
        _undo_disabled[0] = 1

    @staticmethod
    def enable() -> None:
        _undo_disabled[0] = 0

    @staticmethod
    def disabled() -> bool:
        return bool(_undo_disabled[0])


def message(text: str) -> None:
    messages.append(text)


def show(node: Node, forceFloat: bool = False) -> None:
    _main_only("nuke.show")
    shown.append(node)


def zoom(scale: float, center: Optional[Tuple[float, float]] = None) -> None:
    _main_only("nuke.zoom")
    zoomed.append((scale, tuple(center) if center is not None else None))


def addOnScriptLoad(call: Callable[..., Any], args: tuple = (), kwargs: Optional[dict] = None,
                    nodeClass: str = "Root") -> None:
    _script_load_callbacks.append((call, args, kwargs or {}))


# ------------------------------------------------------------------ scripts on disk


def _save_node(node: Node) -> Dict[str, Any]:
    data: Dict[str, Any] = {
        "class": node._class, "name": node._name, "xy": list(node._xy), "selected": node._selected,
        "inputs": [n._name if n is not None else None for n in node._inputs],
        "knobs": [k._saved() for k in node._knobs.values() if not k._flags & DO_NOT_WRITE],
        "user": [k._name for k in node._knobs.values() if getattr(k, "_user", False)],
    }
    if isinstance(node, Group) and not isinstance(node, Root):
        data["nodes"] = [_save_node(n) for n in node._nodes]
    return data


def scriptSave(filename: Optional[str] = None) -> None:
    _main_only("nuke.scriptSave")
    path = filename or _root._knobs["name"]._value
    with open(path, "w") as f:
        json.dump({"root": _save_node(_root), "nodes": [_save_node(n) for n in _root._nodes]}, f, default=list)
    _root._knobs["name"]._value = path


def _load_knobs(node: Node, data: Dict[str, Any]) -> None:
    user = set(data["user"])
    for saved in data["knobs"]:
        knob = node._knobs.get(saved["name"])
        if knob is None and saved["name"] in user:
            cls = globals()[saved["type"]]
            knob = cls(saved["name"], saved["label"], saved.get("values")) if saved["type"] == "Enumeration_Knob" \
                else cls(saved["name"], saved["label"])
            node.addKnob(knob)
        if knob is None:
            continue
        if isinstance(knob, Colorspace_Knob):
            knob._chosen = saved["value"]
        elif isinstance(knob, Enumeration_Knob):
            knob._values = list(saved.get("values", knob._values))
            knob._index = knob._values.index(saved["value"]) if saved["value"] in knob._values else 0
        else:
            knob._value = knob._coerce(saved["value"])
        knob._flags, knob._tooltip = saved["flags"], saved["tooltip"]


def _load_nodes(parent: Group, items: List[Dict[str, Any]], uncollide: bool = False) -> List[Node]:
    """Nodes from saved data; their onCreate scripts run once all exist, as when Nuke loads or pastes them."""
    made: Dict[str, Node] = {}
    for data in items:
        node: Node = Group(data["class"], parent) if "nodes" in data else Node(data["class"], parent)
        parent._nodes.append(node)
        node._xy, node._selected = tuple(data["xy"]), data["selected"]
        node._name = data["name"]
        if uncollide:
            node.setName(data["name"])
        _load_knobs(node, data)
        if "nodes" in data:
            _load_nodes(node, data["nodes"])  # type: ignore[arg-type]
        made[data["name"]] = node
    for data in items:
        for i, name in enumerate(data["inputs"]):
            if name is not None and name in made:
                made[data["name"]].setInput(i, made[name])
    for node in made.values():
        _run_script(node._knobs["onCreate"]._value, node, node._knobs["onCreate"])
    return list(made.values())


_clipboard: Dict[str, str] = {}


def nodeCopy(destination: str) -> bool:
    """Copy the selected nodes (of the current context) as Nuke does, to '%clipboard%' or a file."""
    _main_only("nuke.nodeCopy")
    chosen = [n for n in _context[-1]._nodes if n._selected]
    names = {n._name for n in chosen}
    data = [_save_node(n) for n in chosen]
    for item in data:  # connections to nodes outside the copy are not copied
        item["inputs"] = [name if name in names else None for name in item["inputs"]]
    _clipboard[destination] = json.dumps(data, default=list)
    return True


def nodePaste(source: str) -> Optional[Node]:
    """Paste into the current context: new names where they collide, onCreate scripts run, pasted selected."""
    _main_only("nuke.nodePaste")
    for n in _context[-1]._nodes:
        n._selected = False
    pasted = _load_nodes(_context[-1], json.loads(_clipboard[source]), uncollide=True)
    for n in pasted:
        n._selected = True
        n._xy = (n._xy[0] + 50, n._xy[1] + 50)
    return pasted[-1] if pasted else None


def scriptClose() -> None:
    """Nuke quits (or the script is closed): worker threads and Python memory of the plugin stay behind in
    the test process, but the nodes are gone."""
    _main_only("nuke.scriptClose")
    global _root
    _root = Root()
    _context[:] = [_root]
    undo_stack.clear()


def scriptOpen(filename: str) -> None:
    _main_only("nuke.scriptOpen")
    scriptClose()
    with open(filename) as f:
        data = json.load(f)
    _load_knobs(_root, data["root"])
    _root._knobs["name"]._value = filename
    _load_nodes(_root, data["nodes"])
    undo_stack.clear()
    for call, args, kwargs in list(_script_load_callbacks):
        _this.append((_root, None))
        try:
            call(*args, **kwargs)
        finally:
            _this.pop()


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items_: Dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str) -> Menu:
        return self.items_.setdefault(name, Menu(name))

    def addCommand(self, name: str, command: Any = "", shortcut: str = "", icon: str = "") -> None:
        self.items_[name] = command

    def findItem(self, name: str) -> Any:
        return self.items_.get(name)


_menus: Dict[str, Menu] = {}


def menu(name: str) -> Menu:
    return _menus.setdefault(name, Menu(name))
