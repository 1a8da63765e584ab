"""Qt for the queue panel without depending on qtpy, which Nuke does not ship.

Order: qtpy when a studio installed it (it honours QT_API), else PySide6 (Nuke 16), else PySide2 (Nuke 13-15).
The names the panel uses (QtCore.Signal, QtWidgets.*) are the same in all three. ImportError when none is
there: callers treat the panel as unavailable and keep the rest of the plugin working.
"""

from __future__ import annotations

from typing import Any, Tuple


def _load() -> Tuple[Any, Any, str]:
    errors = []
    try:
        from qtpy import API_NAME, QtCore, QtWidgets

        return QtCore, QtWidgets, f"qtpy ({API_NAME})"
    except Exception as err:  # qtpy raises its own errors when it finds no binding
        errors.append(f"qtpy: {err}")
    try:
        from PySide6 import QtCore, QtWidgets

        return QtCore, QtWidgets, "PySide6"
    except ImportError as err:
        errors.append(f"PySide6: {err}")
    try:
        from PySide2 import QtCore, QtWidgets

        return QtCore, QtWidgets, "PySide2"
    except ImportError as err:
        errors.append(f"PySide2: {err}")
    raise ImportError("no Qt binding for the shotpass queue panel (" + "; ".join(errors) + ")")


QtCore, QtWidgets, BINDING = _load()
