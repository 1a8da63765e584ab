"""Run in a bare interpreter with only the plugin and the fake `nuke` on sys.path (no Qt at all):
init.py and menu.py as Nuke runs them; prints the menu entries they added as one JSON line."""

import json
import os
import runpy
import sys

plugin, fake = sys.argv[1:3]
sys.path[:0] = [plugin, fake]
runpy.run_path(os.path.join(plugin, "init.py"))
runpy.run_path(os.path.join(plugin, "menu.py"), run_name="__main__")

import nuke  # noqa: E402  (the fake)
import nukescripts  # noqa: E402

nodes = nuke.menu("Nodes").findItem("shotpass")
main = nuke.menu("Nuke").findItem("shotpass")
print(json.dumps({
    "nodes": sorted(nodes.items_) if nodes else [],
    "nuke": sorted(main.items_) if main else [],
    "panels": sorted(nukescripts.panels.registered),
    "qt_loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("PySide2", "PySide6", "qtpy")),
}))
