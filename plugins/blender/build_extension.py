"""Build and validate the installable extension zip with Blender's own extension tooling.

Run with a Python that can ``import bpy`` (the bpy test venv, or ``blender --background --python``):

    plugins/blender/build_wheels.sh                      # once: grpcio + protobuf wheels
    VENV/bin/python plugins/blender/build_extension.py   # -> plugins/blender/dist/shotpass-<version>.zip

It stages ``shotpass/`` with the client package vendored under ``_vendor/`` and the wheels under
``wheels/``, then calls the code behind ``blender --command extension build`` and ``... validate``
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
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SOURCE = os.path.join(HERE, "shotpass")
CLIENT = os.path.join(REPO, "shared", "shotpass_client")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def stage(stage_dir: str, wheels_dir: str) -> str:
    """Copy the extension, vendor the client and the wheels; returns the staged source folder."""
    wheels = sorted(glob.glob(os.path.join(wheels_dir, "*.whl")))
    if not wheels:
        raise SystemExit(f"no wheels in {wheels_dir}: run plugins/blender/build_wheels.sh first")
    src = os.path.join(stage_dir, "shotpass")
    shutil.copytree(SOURCE, src, ignore=IGNORE)
    shutil.copytree(CLIENT, os.path.join(src, "_vendor", "shotpass_client"), ignore=IGNORE)
    os.makedirs(os.path.join(src, "wheels"))
    for whl in wheels:
        shutil.copy2(whl, os.path.join(src, "wheels"))
    manifest = os.path.join(src, "blender_manifest.toml")
    with open(manifest, encoding="utf-8") as fh:
        text = fh.read()
    listed = "wheels = [\n" + "".join(f'  "./wheels/{os.path.basename(w)}",\n' for w in wheels) + "]"
    # The committed list documents the pins; the staged one names exactly the files that were fetched.
    text = re.sub(r"wheels = \[.*?\]", lambda _m: listed, text, count=1, flags=re.S)
    with open(manifest, "w", encoding="utf-8") as fh:
        fh.write(text)
    return src


def blender_ext(args: List[str]) -> int:
    import bpy  # noqa: F401  (puts Blender's bundled add-ons, bl_pkg among them, on sys.path)
    from bl_pkg import bl_extension_cli

    return bl_extension_cli.cli_extension_handler(args)


def build(out_dir: str, wheels_dir: str) -> str:
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shotpass-ext-") as tmp:
        src = stage(tmp, wheels_dir)
        if blender_ext(["validate", src]) != 0:
            raise SystemExit("extension source did not validate")
        before = set(glob.glob(os.path.join(out_dir, "*.zip")))
        if blender_ext(["build", "--source-dir", src, "--output-dir", out_dir]) != 0:
            raise SystemExit("extension build failed")
    built = sorted(set(glob.glob(os.path.join(out_dir, "*.zip"))) - before) or sorted(
        glob.glob(os.path.join(out_dir, "shotpass-*.zip")), key=os.path.getmtime
    )[-1:]
    if not built:
        raise SystemExit(f"extension build wrote no zip into {out_dir}")
    zip_path = built[-1]
    if blender_ext(["validate", zip_path]) != 0:
        raise SystemExit(f"{zip_path} did not validate")
    return zip_path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default=os.path.join(HERE, "dist"))
    parser.add_argument("--wheels-dir", default=os.path.join(HERE, "wheels"))
    args = parser.parse_args(argv)
    print(f"shotpass extension: {build(os.path.abspath(args.output_dir), os.path.abspath(args.wheels_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
