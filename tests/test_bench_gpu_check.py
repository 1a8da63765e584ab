"""bench/gpu_passes.py is proven on CPU before GPU time is spent on it: its three paths run end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_runs_every_path_in_its_cpu_check() -> None:
    kinds = ["sd15", "sdxl", "sd3", "flux"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_passes.py"), "--check", "--frames", "2", "--steps", "2",
         "--batch", "2", "--kinds", ",".join(kinds)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CHECK on CPU" in done.stdout
    figures = {}
    for line in done.stdout.splitlines():
        match = re.match(r"(\w+)\s+bare ([\d.]+) fps \| bare batch 2 ([\d.]+) fps \| server ([\d.]+) fps$", line)
        if match:
            figures[match.group(1)] = [float(x) for x in match.groups()[1:]]
    assert sorted(figures) == sorted(kinds), done.stdout[-3000:]
    assert all(f > 0 for row in figures.values() for f in row), figures
