"""Small helpers shared by the integration tests."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Tuple

import numpy as np
import OpenEXR


def run_cli(capsys: Any, argv: List[str]) -> Tuple[int, Dict[str, Any], str]:
    """Run the real CLI in-process; returns (exit code, the last stdout line as JSON, stderr)."""
    from shotpass_server.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    payload = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return code, payload, captured.err


def windows(path: str) -> Tuple[Tuple[int, ...], Tuple[int, ...], float]:
    with OpenEXR.File(path) as f:
        h = f.parts[0].header
        dw = tuple(int(v) for v in (*h["dataWindow"][0], *h["dataWindow"][1]))
        disp = tuple(int(v) for v in (*h["displayWindow"][0], *h["displayWindow"][1]))
        return dw, disp, float(h["pixelAspectRatio"])


def scaled(box: Tuple[int, ...], k: int) -> Tuple[int, ...]:
    x0, y0, x1, y1 = box
    return (x0 * k, y0 * k, (x1 + 1) * k - 1, (y1 + 1) * k - 1)


def channels(path: str) -> Dict[str, np.ndarray]:
    with OpenEXR.File(path, separate_channels=True) as f:
        return {name: np.array(ch.pixels) for name, ch in f.parts[0].channels.items()}


def header(path: str, part: int = 0) -> Dict[str, Any]:
    with OpenEXR.File(path) as f:
        return dict(f.parts[part].header)
