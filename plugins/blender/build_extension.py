"""Build and validate the installable extension zips with Blender's own extension tooling, one per platform.

Run with a Python that can ``import bpy`` (a bpy test venv, or ``blender --background --python``):

    plugins/blender/build_wheels.sh                      # once: the dependency closure as wheels
    VENV/bin/python plugins/blender/build_extension.py   # -> plugins/blender/dist/shotpass-<version>-<platform>.zip

It stages ``shotpass/`` with the client package vendored under ``_vendor/`` and the wheels under
``wheels/``, writes the manifest's ``wheels`` and ``platforms`` from the wheels found (a platform is
claimed only when every compiled dependency has a wheel for it for every Blender Python), then calls the
code behind ``blender --command extension build --split-platforms`` and ``... validate``
(``bl_pkg.bl_extension_cli.cli_extension_handler``), which the bpy module ships too.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from typing import Dict, List, Optional, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SOURCE = os.path.join(HERE, "shotpass")
CLIENT = os.path.join(REPO, "shared", "shotpass_client")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")
# The Pythons of the Blender versions the manifest admits: 4.2-5.0 run 3.11, 5.1+ run 3.13.
BLENDER_PYTHONS = ("cp311", "cp313")


def wheel_platforms(wheel_platform: str) -> List[str]:
    """Blender platforms of a wheel's platform tag, by Blender's own mapping (universal2 -> both macOS)."""
    import bpy  # noqa: F401  (puts bl_pkg on sys.path)
    from bl_pkg.cli.blender_ext import blender_platforms_from_wheel_platform

    return blender_platforms_from_wheel_platform(wheel_platform)


def platforms_of(wheels: List[str]) -> List[str]:
    """The Blender platforms every compiled dependency has a wheel for, for every Blender Python."""
    covered: Dict[Tuple[str, str], Set[str]] = defaultdict(set)  # (distribution, python) -> platforms
    compiled: Set[str] = set()
    for whl in wheels:
        dist, _version, python, _abi, platform = os.path.basename(whl)[:-4].split("-")
        if platform == "any":
            continue
        compiled.add(dist)
        for tag in python.split("."):
            covered[(dist, tag)].update(wheel_platforms(platform))
    if not compiled:
        raise SystemExit("no compiled wheels found: the extension needs grpcio")
    sets = [covered[(dist, py)] for dist in sorted(compiled) for py in BLENDER_PYTHONS]
    missing = [f"{d} for {py}" for d in sorted(compiled) for py in BLENDER_PYTHONS if not covered[(d, py)]]
    if missing:
        raise SystemExit(f"no wheel of {', '.join(missing)}: run plugins/blender/build_wheels.sh")
    return sorted(set.intersection(*sets))


def toml_list(name: str, items: List[str]) -> str:
    return f"{name} = [\n" + "".join(f'  "{item}",\n' for item in items) + "]"


def stage(stage_dir: str, wheels_dir: str) -> Tuple[str, List[str]]:
    """Copy the extension, vendor the client and the wheels; returns the staged folder and its platforms."""
    wheels = sorted(glob.glob(os.path.join(wheels_dir, "*.whl")))
    if not wheels:
        raise SystemExit(f"no wheels in {wheels_dir}: run plugins/blender/build_wheels.sh first")
    platforms = platforms_of(wheels)
    src = os.path.join(stage_dir, "shotpass")
    shutil.copytree(SOURCE, src, ignore=IGNORE)
    shutil.copytree(CLIENT, os.path.join(src, "_vendor", "shotpass_client"), ignore=IGNORE)
    os.makedirs(os.path.join(src, "wheels"))
    for whl in wheels:
        shutil.copy2(whl, os.path.join(src, "wheels"))
    manifest = os.path.join(src, "blender_manifest.toml")
    with open(manifest, encoding="utf-8") as fh:
        text = fh.read()
    # The committed lists document the pins; the staged ones name exactly the files that were fetched.
    listed = toml_list("wheels", [f"./wheels/{os.path.basename(w)}" for w in wheels])
    text = re.sub(r"^wheels = \[.*?\]", lambda _m: listed, text, count=1, flags=re.S | re.M)
    text = re.sub(r"^platforms = \[.*?\]", lambda _m: toml_list("platforms", platforms), text, count=1,
                  flags=re.S | re.M)
    with open(manifest, "w", encoding="utf-8") as fh:
        fh.write(text)
    return src, platforms


def blender_ext(args: List[str]) -> int:
    import bpy  # noqa: F401  (puts Blender's bundled add-ons, bl_pkg among them, on sys.path)
    from bl_pkg import bl_extension_cli

    return bl_extension_cli.cli_extension_handler(args)


def build(out_dir: str, wheels_dir: str) -> List[str]:
    """Build one validated zip per platform into out_dir; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    for old in glob.glob(os.path.join(out_dir, "shotpass-*.zip")):
        os.remove(old)  # a zip for a platform no longer claimed must not linger
    with tempfile.TemporaryDirectory(prefix="shotpass-ext-") as tmp:
        src, platforms = stage(tmp, wheels_dir)
        if blender_ext(["validate", src]) != 0:
            raise SystemExit("extension source did not validate")
        if blender_ext(["build", "--split-platforms", "--source-dir", src, "--output-dir", out_dir]) != 0:
            raise SystemExit("extension build failed")
    built = sorted(glob.glob(os.path.join(out_dir, "shotpass-*.zip")))
    expected = {p.replace("-", "_") for p in platforms}
    got = {os.path.basename(z)[:-4].rsplit("-", 1)[-1] for z in built}
    if got != expected:
        raise SystemExit(f"expected one zip per platform {sorted(expected)}, the build wrote {sorted(got)}")
    for zip_path in built:
        if blender_ext(["validate", zip_path]) != 0:
            raise SystemExit(f"{zip_path} did not validate")
    return built


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=os.path.join(HERE, "dist"))
    parser.add_argument("--wheels-dir", default=os.path.join(HERE, "wheels"))
    args = parser.parse_args(argv)
    for path in build(os.path.abspath(args.output_dir), os.path.abspath(args.wheels_dir)):
        print(f"shotpass extension: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
