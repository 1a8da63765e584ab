"""Put the right vendored grpcio/protobuf and the shotpass client on sys.path (used by init.py; no nuke).

Wheels are unpacked by ../vendor_wheels.py into vendor/<tag>/ with tag cp39-linux_x86_64,
cp311-macosx_arm64, cp310-win_amd64 ...; the tag for the running interpreter is chosen here.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import List, Optional, Sequence

PLATFORMS = ("linux_x86_64", "linux_aarch64", "macosx_x86_64", "macosx_arm64", "win_amd64")


def platform_name(system: Optional[str] = None, machine: Optional[str] = None) -> str:
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "arm64", "aarch64": "aarch64"}.get(machine, machine)
    if system == "windows":
        return "win_amd64"
    if system == "darwin":
        return "macosx_arm64" if arch in ("arm64", "aarch64") else "macosx_x86_64"
    return "linux_aarch64" if arch in ("arm64", "aarch64") else "linux_x86_64"


def vendor_tag(version: Sequence[int] = tuple(sys.version_info[:2]), plat: Optional[str] = None) -> str:
    return f"cp{version[0]}{version[1]}-{plat or platform_name()}"


def candidate_paths(plugin_dir: str, tag: Optional[str] = None) -> List[str]:
    """Existing folders to add: the vendored wheels for this Python, the bundled or checked-out client."""
    plugin_dir = os.path.abspath(plugin_dir)
    found = []
    checkout = os.path.join(os.path.dirname(os.path.dirname(plugin_dir)), "shared")
    for path in (
        os.path.join(plugin_dir, "vendor", tag or vendor_tag()),
        # Running from a checkout its client is the current one; an installed plugin has its copy.
        checkout if os.path.isdir(os.path.join(checkout, "shotpass_client")) else
        os.path.join(plugin_dir, "vendor", "common"),  # a copy of shotpass_client (vendor_wheels.py)
    ):
        if os.path.isdir(path):
            found.append(path)
    return found


def setup(plugin_dir: str) -> List[str]:
    """Add the plugin folder and its dependencies to sys.path (first, so a studio's other grpc loses)."""
    added = []
    for path in [os.path.abspath(plugin_dir)] + candidate_paths(plugin_dir):
        if path not in sys.path:
            sys.path.insert(0, path)
            added.append(path)
    return added
