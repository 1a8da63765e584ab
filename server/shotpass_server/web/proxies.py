"""Display-referred JPEG proxies of EXR frames, made with the colour config's display/view transform.

A proxy is made on first request and kept in the blob store (content-addressed like every blob); a small
table maps (source digest, colour space, display, view, size) to it. Proxies are a cache: no render refers
to them, so blob GC may delete them, and a missing one is simply made again.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import PyOpenColorIO as ocio
from PIL import Image

from ..blobs import BlobStore
from ..errors import InvalidInput, NotFound
from ..frames.colour import ColourSpaces
from ..frames.exr import decode_exr, select_colour

SIZES = {"thumb": 320, "full": 2048}  # longest edge of the proxy, in pixels
JPEG_QUALITY = 88
PROXY_VERSION = 1  # part of the cache key: bump when the way proxies look changes
SCHEMA = """CREATE TABLE IF NOT EXISTS proxies (
  key TEXT PRIMARY KEY, digest TEXT NOT NULL, created_at REAL NOT NULL)"""


class DisplayProxies:
    def __init__(self, blobs: BlobStore, colours: ColourSpaces, index_path: Path) -> None:
        self.blobs = blobs
        self.colours = colours
        self.config = ocio.Config.CreateFromFile(colours.config_name)  # the server's colour config
        self.default_display = self.config.getDefaultDisplay()
        self.default_view = self.config.getDefaultView(self.default_display)
        self._processors: Dict[Tuple[str, str, str], ocio.CPUProcessor] = {}
        self._lock = threading.Lock()
        # OCIO's applyRGB holds the GIL: one proxy at a time, so page loads never starve the render workers.
        self._making = threading.Semaphore(1)
        self._db = sqlite3.connect(str(index_path), check_same_thread=False, isolation_level=None, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def views(self) -> List[Dict[str, str]]:
        """Every (display, view) pair of the config, the default first."""
        out = [{"display": self.default_display, "view": self.default_view}]
        for display in self.config.getDisplays():
            for view in self.config.getViews(display):
                if (display, view) != (self.default_display, self.default_view):
                    out.append({"display": display, "view": view})
        return out

    def check_view(self, display: str, view: str) -> Tuple[str, str]:
        display = display or self.default_display
        if display not in self.config.getDisplays():
            raise InvalidInput(f"unknown display {display!r}; displays: {', '.join(self.config.getDisplays())}")
        view = view or self.config.getDefaultView(display)
        if view not in self.config.getViews(display):
            raise InvalidInput(f"display {display!r} has no view {view!r}; views: "
                               f"{', '.join(self.config.getViews(display))}")
        return display, view

    def proxy(self, digest: str, name: str, colour_space: str, display: str, view: str, size: str) -> bytes:
        """The JPEG of a stored EXR as the display/view shows it (made now, or from the cache)."""
        if size not in SIZES:
            raise InvalidInput(f"size {size!r}: use {' or '.join(SIZES)}")
        space = self.colours.check(colour_space or self.colours.scene_linear)
        display, view = self.check_view(display, view)
        key = hashlib.sha256(f"{PROXY_VERSION}|{digest}|{space}|{display}|{view}|{size}".encode()).hexdigest()
        cached = self._cached(key)
        if cached is not None:
            return cached
        with self._making:
            cached = self._cached(key)  # made by a request that held the semaphore before us
            if cached is not None:
                return cached
            jpeg = self._make(self.blobs.get(digest), name, space, display, view, SIZES[size])
            proxy_digest = self.blobs.put(jpeg)
            with self._lock:
                self._db.execute("INSERT OR REPLACE INTO proxies (key, digest, created_at) VALUES (?, ?, ?)",
                                 (key, proxy_digest, time.time()))
        return jpeg

    def _cached(self, key: str) -> Optional[bytes]:
        with self._lock:
            row = self._db.execute("SELECT digest FROM proxies WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return self.blobs.get(row[0])
        except (NotFound, OSError):  # deleted by blob GC: made again
            return None

    def _make(self, data: bytes, name: str, space: str, display: str, view: str, longest: int) -> bytes:
        plane = select_colour(decode_exr(data, name))
        canvas = _on_display_window(plane.rgb, plane.data_window, plane.display_window)
        h, w = canvas.shape[:2]
        factor = min(1.0, longest / max(w, h))
        if factor < 1.0:  # scene-linear pixels averaged before the view transform: no dark fringes
            size = (max(1, round(w * factor)), max(1, round(h * factor)))
            canvas = np.ascontiguousarray(cv2.resize(canvas, size, interpolation=cv2.INTER_AREA), dtype=np.float32)
        canvas = np.nan_to_num(canvas, nan=0.0, posinf=65504.0, neginf=-65504.0)
        self._processor(space, display, view).applyRGB(canvas)
        pixels = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=JPEG_QUALITY)
        return out.getvalue()

    def _processor(self, space: str, display: str, view: str) -> ocio.CPUProcessor:
        key = (space, display, view)
        with self._lock:
            cpu = self._processors.get(key)
            if cpu is None:
                transform = ocio.DisplayViewTransform(src=space, display=display, view=view)
                cpu = self.config.getProcessor(transform).getDefaultCPUProcessor()
                self._processors[key] = cpu
            return cpu


def _on_display_window(rgb: np.ndarray, data: Tuple[int, int, int, int],
                       display: Tuple[int, int, int, int]) -> np.ndarray:
    """The data window's pixels placed in a black frame the size of the display window (what a comp shows),
    so versions with moving data windows line up in a wipe."""
    dx0, dy0, dx1, dy1 = display
    w, h = dx1 - dx0 + 1, dy1 - dy0 + 1
    if w <= 0 or h <= 0 or w * h > 1 << 28:
        return np.ascontiguousarray(rgb, dtype=np.float32)
    canvas = np.zeros((h, w, 3), dtype=np.float32)
    x0, y0 = data[0] - dx0, data[1] - dy0
    sx0, sy0 = max(0, -x0), max(0, -y0)
    tx0, ty0 = max(0, x0), max(0, y0)
    cw = min(rgb.shape[1] - sx0, w - tx0)
    ch = min(rgb.shape[0] - sy0, h - ty0)
    if cw > 0 and ch > 0:
        canvas[ty0:ty0 + ch, tx0:tx0 + cw] = rgb[sy0:sy0 + ch, sx0:sx0 + cw]
    return canvas
