#!/usr/bin/env bash
# Create the Blender-as-a-module test environment: bpy 5.0.1 (Python 3.11, pins numpy<2) + grpcio/protobuf.
# Usage: plugins/blender/dev/make_bpy_env.sh [VENV_DIR]   (default: plugins/blender/.venv-bpy)
# Kept separate from the main venv because the server needs numpy 2 and bpy refuses it.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VENV="${1:-$REPO/plugins/blender/.venv-bpy}"
PYTHON="${PYTHON311:-python3.11}"
STAMP="$VENV/.shotpass-bpy-v2"
if [ -f "$STAMP" ]; then
    echo "bpy env ready: $VENV"
    exit 0
fi
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "bpy 5.0 wheels need Python 3.11"'
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "bpy==5.0.1" "grpcio>=1.70" "protobuf>=5.29,<7"
# No shotpass_client here on purpose: the extension must work from the copy vendored into its zip.
"$VENV/bin/python" -m pip uninstall --quiet --yes shotpass 2>/dev/null || true
"$VENV/bin/python" -c 'import bpy, grpc; print("bpy", bpy.app.version_string, "grpc", grpc.__version__)'
touch "$STAMP"
echo "bpy env ready: $VENV"
