"""Stand-in for the part of Nuke's `nukescripts` the plugin uses: panel registration."""

from __future__ import annotations

from typing import Dict, Tuple


class panels:  # noqa: N801 - mirrors the nukescripts.panels module
    registered: Dict[str, Tuple[str, str]] = {}

    @staticmethod
    def registerWidgetAsPanel(widget: str, name: str, id: str, create: bool = False) -> None:  # noqa: A002,N802
        panels.registered[id] = (widget, name)

    @staticmethod
    def restorePanel(id: str) -> str:  # noqa: A002,N802
        return panels.registered[id][0]
