#!/usr/bin/env python3
"""Vendor grpcio + protobuf and their whole dependency closure for Nuke's Pythons (wheels are not committed).

    python plugins/nuke/vendor_wheels.py                     # Nuke 14-16 (Python 3.9, 3.10, 3.11), all platforms
    python plugins/nuke/vendor_wheels.py --host              # the three Pythons, this machine's platform only
    python plugins/nuke/vendor_wheels.py --python 3.11 --platform linux_x86_64
    python plugins/nuke/vendor_wheels.py --dry-run           # print the pip commands only

For each (Python, platform) it runs `pip download --only-binary=:all: --python-version X.Y --platform TAG`
*with* dependency resolution (grpcio needs typing-extensions; `--no-deps` would leave it out and `import
grpc` fails in Nuke's own Python), checks that every `Requires-Dist` of the result is present, and unpacks
the wheels into vendor/cpXY-<platform>/, which init.py puts on sys.path. The client package is copied to
vendor/common/ so the plugin folder is self-contained.

Downloaded wheels are kept in a cache ($SHOTPASS_WHEEL_CACHE, else ~/.cache/shotpass/nuke-wheels): a second
run with the same pins touches neither pip nor the network, and an up-to-date vendor folder is left alone.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHONS = ["3.9", "3.10", "3.11"]
# Pinned per Nuke Python: the committed stubs need grpcio>=1.70 and protobuf>=5.29 (checked at import);
# protobuf stays on 5.29 so the 5.29 gencode runs without a version warning; grpcio 1.80 is the last with
# Python 3.9 wheels (Nuke 14). Dependencies (typing-extensions) are resolved by pip, never listed by hand.
PINS: Dict[str, List[str]] = {
    "3.9": ["grpcio==1.80.1", "protobuf==5.29.6"],
    "3.10": ["grpcio==1.85.3", "protobuf==5.29.6"],
    "3.11": ["grpcio==1.85.3", "protobuf==5.29.6"],
}
# Our folder name -> the wheel platform tags pip may accept for it (grpcio ships universal2 only on macOS).
PLATFORMS: Dict[str, List[str]] = {
    "linux_x86_64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux_aarch64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
    "macosx_x86_64": ["macosx_11_0_x86_64", "macosx_11_0_universal2", "macosx_10_14_x86_64",
                      "macosx_10_9_x86_64", "macosx_10_9_universal2"],
    "macosx_arm64": ["macosx_11_0_arm64", "macosx_11_0_universal2", "macosx_10_9_universal2"],
    "win_amd64": ["win_amd64"],
}
STAMP = ".shotpass-vendor.json"


def cache_root() -> str:
    return os.environ.get("SHOTPASS_WHEEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "shotpass", "nuke-wheels")


def tag(python: str, platform: str) -> str:
    return f"cp{python.replace('.', '')}-{platform}"


def pip_command(python: str, platform: str, dest: str) -> List[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--dest", dest,
           "--python-version", python, "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}",
           "--abi", "abi3", "--abi", "none"]
    for platform_tag in PLATFORMS[platform] + ["any"]:
        cmd += ["--platform", platform_tag]
    return cmd + PINS[python]


def _read_json(path: str) -> Optional[dict]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def download(python: str, platform: str, cache: str, dry_run: bool = False) -> List[str]:
    """The wheel files of the pins' closure for (python, platform), from the cache or from pip."""
    folder = os.path.join(cache, tag(python, platform))
    resolved = _read_json(os.path.join(folder, "resolved.json"))
    if resolved and resolved.get("pins") == PINS[python]:
        wheels = [os.path.join(folder, name) for name in resolved["wheels"]]
        if all(os.path.isfile(w) for w in wheels):
            return wheels
    with tempfile.TemporaryDirectory() as tmp:
        cmd = pip_command(python, platform, tmp)
        print(" ".join(cmd), flush=True)
        if dry_run:
            return []
        subprocess.run(cmd, check=True)
        names = sorted(os.path.basename(w) for w in glob.glob(os.path.join(tmp, "*.whl")))
        os.makedirs(folder, exist_ok=True)
        for name in names:
            shutil.copy(os.path.join(tmp, name), os.path.join(folder, name))
    with open(os.path.join(folder, "resolved.json"), "w") as f:
        json.dump({"pins": PINS[python], "wheels": names}, f, indent=1)
    return [os.path.join(folder, name) for name in names]


def vendor(python: str, platform: str, root: str, cache: Optional[str] = None, dry_run: bool = False) -> str:
    """Fill root/cpXY-<platform>/ with the unpacked closure; a folder already holding these wheels is kept."""
    target = os.path.join(root, tag(python, platform))
    wheels = download(python, platform, cache or cache_root(), dry_run)
    if dry_run:
        return target
    stamp = {"pins": PINS[python], "wheels": sorted(os.path.basename(w) for w in wheels)}
    if _read_json(os.path.join(target, STAMP)) == stamp:
        return target
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{tag(python, platform)}-", dir=root)
    try:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(staging)
        missing = missing_requirements(staging, python, platform)
        if missing:
            raise RuntimeError(f"{tag(python, platform)}: the vendored wheels lack {', '.join(missing)}")
        with open(os.path.join(staging, STAMP), "w") as f:
            json.dump(stamp, f, indent=1)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)  # a half-unpacked folder is never left where init.py looks
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"  {', '.join(stamp['wheels'])} -> {target}", flush=True)
    return target


def _marker_env(python: str, platform: str) -> Dict[str, str]:
    system, machine = {"linux_x86_64": ("Linux", "x86_64"), "linux_aarch64": ("Linux", "aarch64"),
                       "macosx_x86_64": ("Darwin", "x86_64"), "macosx_arm64": ("Darwin", "arm64"),
                       "win_amd64": ("Windows", "AMD64")}[platform]
    sys_platform = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}[system]
    return {"python_version": python, "python_full_version": f"{python}.0", "platform_system": system,
            "platform_machine": machine, "sys_platform": sys_platform,
            "os_name": "nt" if system == "Windows" else "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def missing_requirements(folder: str, python: str, platform: str) -> List[str]:
    """Requirements of the unpacked distributions (for this Python/platform, no extras) that none satisfies."""
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # pip always carries a copy
        from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        from pip._vendor.packaging.utils import canonicalize_name  # type: ignore[no-redef]
    env = _marker_env(python, platform)
    present: Dict[str, str] = {}
    requires: List[str] = []
    for meta in glob.glob(os.path.join(folder, "*.dist-info", "METADATA")):
        name = version = ""
        with open(meta, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break  # the body (long description) starts after the first blank line
                key, _, value = line.partition(":")
                if key == "Name":
                    name = value.strip()
                elif key == "Version":
                    version = value.strip()
                elif key == "Requires-Dist":
                    requires.append(value.strip())
        present[canonicalize_name(name)] = version
    missing = []
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        have = present.get(canonicalize_name(req.name))
        if have is None or not req.specifier.contains(have, prereleases=True):
            missing.append(text)
    return missing


def copy_client(root: str) -> str:
    src = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "shotpass_client")
    dest = os.path.join(root, "common", "shotpass_client")
    staging = dest + ".new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    return dest


def host_platform() -> str:
    sys.path.insert(0, HERE)
    from shotpass_nuke.bootstrap import platform_name

    return platform_name()


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", choices=PYTHONS, help="Nuke Python version (repeatable)")
    ap.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="platform (repeatable)")
    ap.add_argument("--host", action="store_true", help="only this machine's platform (what the tests need)")
    ap.add_argument("--dest", default=os.path.join(HERE, "vendor"))
    ap.add_argument("--cache", default=None, help=f"wheel cache (default {cache_root()})")
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    platforms = args.platform or ([host_platform()] if args.host else sorted(PLATFORMS))
    for python in args.python or PYTHONS:
        for platform in platforms:
            vendor(python, platform, args.dest, args.cache, args.dry_run)
    if not args.dry_run:
        print(f"client package -> {copy_client(args.dest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
