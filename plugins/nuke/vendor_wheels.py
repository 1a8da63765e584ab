#!/usr/bin/env python3
"""Vendor grpcio + protobuf for Nuke's Python into plugins/nuke/vendor/cpXY-<platform>/ (wheels are not committed).

    python plugins/nuke/vendor_wheels.py                     # Nuke 14-16 Pythons (3.9, 3.10, 3.11), all platforms
    python plugins/nuke/vendor_wheels.py --python 3.11 --platform linux_x86_64
    python plugins/nuke/vendor_wheels.py --dry-run           # print the pip commands only

For each (Python, platform) it runs `pip download --only-binary=:all: --python-version X.Y --platform TAG`
and unpacks the wheels (a wheel is a zip) into vendor/cpXY-<platform>/, which init.py puts on sys.path.
It also copies the shotpass client package into vendor/common/ so the plugin folder is self-contained.
The committed gRPC stubs need grpcio>=1.70 and protobuf>=5.29,<7.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
REQUIREMENTS = ["grpcio>=1.70", "protobuf>=5.29,<7"]
PYTHONS = ["3.9", "3.10", "3.11"]
# Our folder name -> the wheel platform tags pip may accept for it (newest manylinux first).
PLATFORMS: Dict[str, List[str]] = {
    "linux_x86_64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "linux_aarch64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
    "macosx_x86_64": ["macosx_11_0_x86_64", "macosx_10_14_x86_64", "macosx_10_9_x86_64"],
    "macosx_arm64": ["macosx_11_0_arm64", "macosx_11_0_universal2", "macosx_10_9_universal2"],
    "win_amd64": ["win_amd64"],
}


def pip_command(python: str, platform: str, dest: str) -> List[str]:
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "--dest", dest,
           "--python-version", python, "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}",
           "--abi", "abi3", "--abi", "none"]
    for tag in PLATFORMS[platform] + ["any"]:
        cmd += ["--platform", tag]
    return cmd + REQUIREMENTS


def vendor(python: str, platform: str, root: str, dry_run: bool = False) -> str:
    target = os.path.join(root, f"cp{python.replace('.', '')}-{platform}")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = pip_command(python, platform, tmp)
        print(" ".join(cmd))
        if dry_run:
            return target
        subprocess.run(cmd, check=True)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        for wheel in sorted(glob.glob(os.path.join(tmp, "*.whl"))):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(target)
            print(f"  {os.path.basename(wheel)} -> {target}")
    return target


def copy_client(root: str) -> str:
    src = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "shotpass_client")
    dest = os.path.join(root, "common", "shotpass_client")
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", action="append", choices=PYTHONS, help="Nuke Python version (repeatable)")
    ap.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="platform (repeatable)")
    ap.add_argument("--dest", default=os.path.join(HERE, "vendor"))
    ap.add_argument("--dry-run", action="store_true")
    args = ap.parse_args(argv)
    for python in args.python or PYTHONS:
        for platform in args.platform or sorted(PLATFORMS):
            vendor(python, platform, args.dest, args.dry_run)
    if not args.dry_run:
        print(f"client package -> {copy_client(args.dest)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
