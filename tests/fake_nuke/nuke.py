"""A small, faithful stand-in for Nuke's `nuke` module: only the API the shotpass plugin uses.

Nodes with knobs and inputs, Group contexts (begin/end, `with group:`), createNode (connects to the
selection like Nuke), nuke.nodes.X(**knobs) (does not), toNode by (full) name, allNodes, delete,
execute(write, first, last) that decodes its upstream Read's EXR per frame and writes the Write's EXR with
the same frame number, executeInMainThread (queued from worker threads; tests call `pump()`),
ProgressTask with a test-side `cancel()`, message, menus, root() and frame().
"""

from __future__ import annotations

import os
import queue
import re
import threading
from typing import Any, Callable, Dict, List, Optional

STARTLINE = 0x1000
INVISIBLE = 0x400
DISABLED = 0x80

messages: List[str] = []  # nuke.message dialogs shown
shown: List[Any] = []  # nuke.show(node) calls
executed: List[tuple] = []  # (write name, first, last) per nuke.execute
_main_queue: queue.Queue[tuple] = queue.Queue()
_main_thread = threading.main_thread()


# ------------------------------------------------------------------ knobs


class Knob:
    default: Any = ""

    def __init__(self, name: str, label: Optional[str] = None, value: Any = None) -> None:
        self._name, self._label = name, label if label is not None else name
        self._value = self.default if value is None else self._coerce(value)
        self._flags, self._enabled, self._tooltip = STARTLINE, True, ""
        self.node: Optional[Node] = None

    def _coerce(self, value: Any) -> Any:
        return value

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self) -> Any:
        return self._value

    getValue = value

    def setValue(self, value: Any) -> bool:
        self._value = self._coerce(value)
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


class String_Knob(Knob):
    def _coerce(self, value: Any) -> str:
        return str(value)


class File_Knob(String_Knob):
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
        self.range = (lo, hi)


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
        self._values = list(values or [])
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
        return True


class PyScript_Knob(Knob):
    def __init__(self, name: str, label: Optional[str] = None, command: str = "") -> None:
        super().__init__(name, label, command)

    def execute(self) -> None:
        """Run the button's script as Nuke does: thisNode() is the knob's node."""
        _run_script(self.value(), self.node, self)


def _run_script(script: str, node: Any, knob: Any) -> None:
    if not script:
        return
    _this.append((node, knob))
    try:
        exec(compile(script, f"<{node.name()}.{knob.name()}>", "exec"), {"nuke": __import__(__name__)})
    finally:
        _this.pop()


# ------------------------------------------------------------------ nodes


_DEFAULT_KNOBS: Dict[str, List[Callable[[], Knob]]] = {
    "Read": [lambda: File_Knob("file"), lambda: Int_Knob("first", value=1), lambda: Int_Knob("last", value=1),
             lambda: Int_Knob("origfirst", value=1), lambda: Int_Knob("origlast", value=1),
             lambda: Enumeration_Knob("on_error", "missing frames", ["error", "black", "checkerboard"]),
             lambda: PyScript_Knob("reload", "Reload")],
    "Write": [lambda: File_Knob("file"), lambda: Enumeration_Knob("file_type", "file type", [" ", "exr", "png"]),
              lambda: Enumeration_Knob("channels", "channels", ["rgb", "rgba", "all"])],
    "Switch": [lambda: Int_Knob("which")],
    "Root": [lambda: String_Knob("name", value="Root"), lambda: Int_Knob("first_frame", value=1),
             lambda: Int_Knob("last_frame", value=100), lambda: Double_Knob("frame", value=1),
             lambda: String_Knob("workingSpaceLUT", "working space", "scene_linear")],
}


class Node:
    def __init__(self, cls: str, parent: Optional[Group]) -> None:
        self._class = cls
        self._knobs: Dict[str, Knob] = {}
        self._inputs: List[Optional[Node]] = []
        self._parent = parent
        self._name = ""
        self._selected = False
        self._xy = (0, 0)
        for make in [lambda: String_Knob("label"), lambda: String_Knob("knobChanged")] + _DEFAULT_KNOBS.get(cls, []):
            self.addKnob(make())

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def fullName(self) -> str:
        if self._parent is None or isinstance(self._parent, Root):
            return self._name
        return f"{self._parent.fullName()}.{self._name}"

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        siblings = {n.name() for n in self._parent.nodes() if n is not self} if self._parent else set()
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
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def knobs(self) -> Dict[str, Knob]:
        return dict(self._knobs)

    def addKnob(self, knob: Knob) -> None:
        knob.node = self
        self._knobs[knob.name()] = knob

    def removeKnob(self, knob: Knob) -> None:
        del self._knobs[knob.name()]
        knob.node = None

    # inputs
    def input(self, i: int) -> Optional[Node]:
        return self._inputs[i] if i < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Optional[Node]) -> bool:
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def dependent(self) -> List[Node]:
        return [n for n in (self._parent.nodes() if self._parent else []) if self in n._inputs]

    # DAG
    def setSelected(self, on: bool) -> None:
        self._selected = bool(on)

    def isSelected(self) -> bool:
        return self._selected

    def xpos(self) -> int:
        return self._xy[0]

    def ypos(self) -> int:
        return self._xy[1]

    def setXYpos(self, x: int, y: int) -> None:
        self._xy = (int(x), int(y))

    # frame range, as Nuke reports it: a Read's own range, otherwise its input's
    def firstFrame(self) -> int:
        if self._class == "Read":
            return self["first"].value()
        up = _upstream(self, 1)
        return up.firstFrame() if up is not None else root()["first_frame"].value()

    def lastFrame(self) -> int:
        if self._class == "Read":
            return self["last"].value()
        up = _upstream(self, 1)
        return up.lastFrame() if up is not None else root()["last_frame"].value()

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
        return next((n for n in self._nodes if n.name() == name), None)

    def begin(self) -> Group:
        _context.append(self)
        return self

    def end(self) -> None:
        if _context[-1] is not self:
            raise RuntimeError(f"{self.name()}.end() without a matching begin()")
        _context.pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def _input_nodes(self) -> List[Node]:
        return [n for n in self._nodes if n.Class() == "Input"]


class Root(Group):
    def __init__(self) -> None:
        super().__init__("Root", None)
        self._name = "root"

    def name(self) -> str:
        return self["name"].value()

    def fullName(self) -> str:
        return "root"


def _upstream(node: Node, frame: int) -> Optional[Node]:
    """The node feeding `node`'s image: through Switch, Group (its Output) and a Group's Input nodes."""
    if node.Class() == "Switch":
        return node.input(int(node["which"].value()))
    if node.Class() == "Input":
        group = node._parent
        index = group._input_nodes().index(node) if group is not None else 0
        return group.input(index) if group is not None else None
    return node.input(0)


def _source(node: Optional[Node], frame: int) -> Node:
    seen = 0
    while node is not None and seen < 100:
        seen += 1
        if node.Class() == "Read":
            return node
        if isinstance(node, Group) and node.Class() == "Group":
            out = next((n for n in node.nodes() if n.Class() == "Output"), None)
            node = out.input(0) if out is not None else None
            continue
        node = _upstream(node, frame)
    raise RuntimeError("nothing to render: no Read upstream")


def _frame_path(pattern: str, frame: int) -> str:
    for rx in (r"#+", r"%0?(\d*)d"):
        m = list(re.finditer(rx, pattern))
        if m:
            tok = m[-1]
            width = len(tok.group(0)) if rx == r"#+" else int(tok.group(1) or 1)
            return f"{pattern[: tok.start()]}{frame:0{width}d}{pattern[tok.end():]}"
    return pattern


# ------------------------------------------------------------------ module API

_root = Root()
_context: List[Group] = [_root]
_this: List[tuple] = []


def reset() -> None:
    """Tests: a new empty script."""
    global _root
    _root = Root()
    _context[:] = [_root]
    _this.clear()
    messages.clear()
    shown.clear()
    executed.clear()
    ProgressTask.instances.clear()
    while not _main_queue.empty():
        _main_queue.get_nowait()


def root() -> Root:
    return _root


def thisNode() -> Any:
    return _this[-1][0] if _this else _root


def thisKnob() -> Any:
    return _this[-1][1] if _this else None


def frame(f: Optional[float] = None) -> int:
    if f is not None:
        _root["frame"].setValue(f)
    return int(_root["frame"].value())


def _create(cls: str, knobs: Dict[str, Any]) -> Node:
    parent = _context[-1]
    node: Node = Group(cls, parent) if cls == "Group" else Node(cls, parent)
    parent._nodes.append(node)
    node.setName(knobs.pop("name", f"{cls}1"))
    for key, value in knobs.items():
        node[key].setValue(value)
    return node


def createNode(cls: str, knobs: str = "", inpanel: bool = True) -> Node:
    """Like Nuke: the new node is connected to the selected node and becomes the selection."""
    selected = selectedNodes()
    node = _create(cls, {})
    if selected:
        node.setInput(0, selected[-1])
    for n in _context[-1].nodes():
        n.setSelected(n is node)
    return node


class _Nodes:
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        return lambda **knobs: _create(cls, dict(knobs))


nodes = _Nodes()


def toNode(name: str) -> Optional[Node]:
    for start in (_context[-1], _root):
        node: Any = start
        for part in name.split("."):
            node = node.node(part) if isinstance(node, Group) else None
            if node is None:
                break
        if node is not None:
            return node
    return _root if name == "root" else None


def allNodes(filter: Optional[str] = None, group: Optional[Group] = None, recurseGroups: bool = False) -> List[Node]:
    found: List[Node] = []
    for n in (group or _context[-1]).nodes():
        if filter is None or n.Class() == filter:
            found.append(n)
        if recurseGroups and isinstance(n, Group):
            found += allNodes(filter, n, True)
    return found


def selectedNodes(filter: Optional[str] = None) -> List[Node]:
    return [n for n in _context[-1].nodes() if n.isSelected() and (filter is None or n.Class() == filter)]


def delete(node: Node) -> None:
    parent = node._parent
    if parent is not None:
        parent._nodes.remove(node)
        for other in parent.nodes():
            other._inputs = [None if i is node else i for i in other._inputs]


def execute(node: Any, start: int, end: int, incr: int = 1) -> None:
    """Render a Write: per frame, decode the upstream Read's EXR and write RGBA to the Write's file."""
    write = toNode(node) if isinstance(node, str) else node
    if write is None or write.Class() != "Write":
        raise RuntimeError(f"{node}: execute needs a Write node")
    if write["file_type"].value() != "exr":
        raise RuntimeError(f"{write.name()}: file_type must be set")
    import numpy as np  # here, not at the top: menu tests import this module in a bare interpreter
    import OpenEXR

    executed.append((write.name(), start, end))
    for f in range(start, end + 1, incr):
        read = _source(write.input(0), f)
        if not read["first"].value() <= f <= read["last"].value():
            raise RuntimeError(f"{read.name()}: frame {f} is outside {read['first'].value()}-{read['last'].value()}")
        src = _frame_path(read["file"].value(), f)
        if not os.path.isfile(src):
            raise RuntimeError(f"{read.name()}: Read error: {src}: No such file or directory")
        keep = ("R", "G", "B", "A") if write["channels"].value() != "all" else None
        with OpenEXR.File(src, separate_channels=True) as exr:
            head = exr.parts[0].header
            pixels = {k: np.array(v.pixels) for k, v in exr.parts[0].channels.items() if keep is None or k in keep}
            header = {k: head[k] for k in ("dataWindow", "displayWindow", "pixelAspectRatio") if k in head}
        header["compression"] = OpenEXR.ZIP_COMPRESSION
        out = _frame_path(write["file"].value(), f)
        OpenEXR.File(header, pixels).write(out)


def executeInMainThread(call: Callable[..., Any], args: tuple = (), kwargs: Optional[dict] = None) -> None:
    if threading.current_thread() is _main_thread:
        call(*args, **(kwargs or {}))
    else:
        _main_queue.put((call, args, kwargs or {}))


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
    instances: List[ProgressTask] = []

    def __init__(self, title: str) -> None:
        self.title, self.progress, self.message, self._cancelled = title, 0, "", False
        self.history: List[int] = []
        ProgressTask.instances.append(self)

    def setProgress(self, percent: int) -> None:
        self.progress = int(percent)
        self.history.append(self.progress)

    def setMessage(self, text: str) -> None:
        self.message = text

    def isCancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """Tests: the user pressed the task's cancel button."""
        self._cancelled = True


def message(text: str) -> None:
    messages.append(text)


def show(node: Node) -> None:
    shown.append(node)


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
