"""The "shotpass queue" panel: the server's renders of this script's project (state, progress, QC; cancel,
suspend, resume, requeue failed frames; open in the DAG).

Qt through the small `qt` shim, so the same code runs on PySide2 (Nuke 13-15) and PySide6 (Nuke 16) with or
without qtpy. No nuke import: the host plugs in "open in DAG" and the default server/project through HOOKS.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from shotpass_client import ClientError
from shotpass_client.background import CONTROL_LABELS, REQUEUE, RESUME, SUSPEND, control_render
from shotpass_client.client import DEFAULT_ADDRESS
from shotpass_client.connection import Connection
from shotpass_client.qc import qc_label, qc_summary
from shotpass_client.ui_model import STATE_NAMES, stars

from .qt import QtCore, QtWidgets

HOOKS: Dict[str, Optional[Callable[..., Any]]] = {"open_in_dag": None, "defaults": None}
COLUMNS = ("shot", "version", "lane", "state", "progress", "model", "rating", "qc", "created", "render id")
REFRESH_MS = 3000


def _defaults() -> Tuple[str, str]:
    hook = HOOKS.get("defaults")
    if hook is not None:
        try:
            return hook()
        except Exception:
            pass
    return os.environ.get("SHOTPASS_SERVER", DEFAULT_ADDRESS), os.environ.get("SHOTPASS_PROJECT", "")


class QueuePanel(QtWidgets.QWidget):
    loaded = QtCore.Signal(object, str)  # renders, error message (from a worker thread)
    message = QtCore.Signal(str)  # what a job-control action did (from a worker thread)

    def __init__(self, parent: Any = None, server: Optional[str] = None, project: Optional[str] = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("shotpass queue")
        self.setObjectName("shotpassQueue")
        default_server, default_project = _defaults()
        self.renders: List[Any] = []
        self._busy = False

        self.server = QtWidgets.QLineEdit(server or default_server)
        self.project = QtWidgets.QLineEdit(project if project is not None else default_project)
        self.project.setPlaceholderText("all projects")
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.auto = QtWidgets.QCheckBox("auto")
        self.auto.setChecked(True)
        top = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("server"), self.server, QtWidgets.QLabel("project"), self.project,
                       self.refresh_button, self.auto):
            top.addWidget(widget)

        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)

        self.cancel_button = QtWidgets.QPushButton("Cancel selected")
        self.control_buttons = {a: QtWidgets.QPushButton(f"{CONTROL_LABELS[a]} selected")
                                for a in (SUSPEND, RESUME, REQUEUE)}
        self.open_button = QtWidgets.QPushButton("Open in DAG")
        self.status = QtWidgets.QLabel("")
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.cancel_button)
        for button in self.control_buttons.values():
            bottom.addWidget(button)
        bottom.addWidget(self.open_button)
        bottom.addWidget(self.status, 1)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self._auto_refresh)
        self.loaded.connect(self.show_renders)
        self.message.connect(self.status.setText)
        self.refresh_button.clicked.connect(self.refresh)
        self.cancel_button.clicked.connect(self.cancel_selected)
        for action, button in self.control_buttons.items():
            button.clicked.connect(lambda _checked=False, a=action: self.control_selected(a))
        self.open_button.clicked.connect(self.open_selected)
        self.table.itemDoubleClicked.connect(lambda _item: self.open_selected())

    # --------------------------------------------------------------- loading

    def where(self) -> Tuple[str, str]:
        """(server, project) as typed; Qt widgets are read here, on the main thread, never by a worker."""
        return self.server.text().strip(), self.project.text().strip()

    @staticmethod
    def fetch(address: str, project: str) -> Tuple[List[Any], str]:
        try:
            with Connection.resolve(address).client(2.0) as client:
                return client.list_renders(project=project), ""
        except ClientError as err:
            return [], str(err)

    def refresh(self) -> None:
        """Load in a worker thread; the table updates when the answer arrives (never blocks Nuke)."""
        if self._busy:
            return
        self._busy = True
        address, project = self.where()

        def work() -> None:
            renders, error = self.fetch(address, project)
            self.loaded.emit(renders, error)

        threading.Thread(target=work, name="shotpass-queue", daemon=True).start()

    def refresh_now(self) -> None:
        self._busy = True
        self.show_renders(*self.fetch(*self.where()))

    def _auto_refresh(self) -> None:
        if self.auto.isChecked() and self.isVisible():
            self.refresh()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self.timer.start()
        self.refresh()

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt API
        self.timer.stop()
        super().hideEvent(event)

    def show_renders(self, renders: List[Any], error: str) -> None:
        self._busy = False
        if error:
            self.status.setText(error)
            return
        # Rows are by position and the newest render comes first: the selection follows its renders' ids, so a
        # render submitted meanwhile never moves "Cancel selected" onto another render.
        keep = set(self.selected_ids())
        self.renders = sorted(renders, key=lambda r: r.created_at, reverse=True)
        self.table.setRowCount(len(self.renders))
        for row, r in enumerate(self.renders):
            cells = (r.shot, f"v{r.version:03d}", r.lane or "render", STATE_NAMES.get(r.state, "?"), None,
                     r.settings.model or r.settings.pass_name,
                     (stars(r.review.rating) if r.review.rating else "") + (" pinned" if r.review.pinned else ""),
                     qc_label(qc_summary(r, pairs=False)),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)), r.id)
            for col, text in enumerate(cells):
                if text is None:
                    bar = QtWidgets.QProgressBar()
                    bar.setRange(0, max(1, r.frames_total))
                    bar.setValue(r.frames_done)
                    bar.setFormat(f"{r.frames_done}/{r.frames_total}")
                    self.table.setCellWidget(row, col, bar)
                else:
                    self.table.setItem(row, col, QtWidgets.QTableWidgetItem(str(text)))
        self._reselect(keep)
        self.table.resizeColumnsToContents()
        project = self.project.text().strip() or "all projects"
        self.status.setText(f"{len(self.renders)} render(s) in {project} on {self.server.text().strip()}")

    def _reselect(self, ids: Set[str]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        rows = QtCore.QItemSelectionModel.Select | QtCore.QItemSelectionModel.Rows
        for row, r in enumerate(self.renders):
            if r.id in ids:
                selection.select(self.table.model().index(row, 0), rows)

    # --------------------------------------------------------------- actions

    def selected_ids(self) -> List[str]:
        rows = sorted({index.row() for index in self.table.selectedIndexes()})
        return [self.renders[r].id for r in rows if r < len(self.renders)]

    def cancel_selected(self) -> None:
        ids, (address, project) = self.selected_ids(), self.where()
        if not ids:
            self.status.setText("select the renders to cancel")
            return

        def work() -> None:
            error = ""
            try:
                with Connection.resolve(address).client(2.0) as client:
                    for rid in ids:
                        client.cancel(rid)
            except ClientError as err:
                error = f"cancel failed: {err}"
            renders, fetch_error = self.fetch(address, project)
            self.loaded.emit(renders, error or fetch_error)

        threading.Thread(target=work, name="shotpass-queue-cancel", daemon=True).start()

    def control_selected(self, action: str) -> None:
        """Suspend, resume or requeue the selected renders in a worker; the table reloads after."""
        ids, (address, project) = self.selected_ids(), self.where()
        if not ids:
            self.status.setText(f"select the renders to {action}")
            return

        def work() -> None:
            messages = []
            try:
                with Connection.resolve(address).client(2.0) as client:
                    for rid in ids:
                        try:
                            messages.append(control_render(client, rid, action)[1])
                        except ClientError as err:  # one refused render does not stop the others
                            messages.append(f"{action} {rid}: {err}")
            except ClientError as err:
                messages.append(f"{action} failed: {err}")
            renders, fetch_error = self.fetch(address, project)
            self.loaded.emit(renders, fetch_error)
            self.message.emit("; ".join(messages))

        threading.Thread(target=work, name=f"shotpass-queue-{action}", daemon=True).start()

    def open_selected(self) -> Any:
        ids = self.selected_ids()
        hook = HOOKS.get("open_in_dag")
        if not ids or hook is None:
            self.status.setText("select a render (open in DAG needs Nuke)" if hook is None else "select a render")
            return None
        node = hook(ids[0])
        self.status.setText(f"{ids[0][:8]}: " + ("shown in the DAG" if node is not None else
                                                 "no ShotPass node of this script holds it"))
        return node
