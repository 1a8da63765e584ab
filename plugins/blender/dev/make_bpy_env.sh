#!/usr/bin/env bash
# Create a Blender-as-a-module test environment that holds ONLY bpy (and what bpy itself needs).
# Usage: plugins/blender/dev/make_bpy_env.sh VENV_DIR BPY_VERSION PYTHON_VERSION
#   e.g. make_bpy_env.sh plugins/blender/.venv-bpy-5.0 5.0.1 3.11
# No grpcio/protobuf/typing-extensions here on purpose: a venv that has them would lend them to the
# extension and hide a dependency its zip forgot to bundle. Kept apart from the main venv because
# bpy 4.x/5.0 pin numpy<2 and the server needs numpy 2. Cached: a stamp names the version it holds.
set -euo pipefail
VENV="${1:?venv folder}"
BPY="${2:?bpy version}"
PYVER="${3:?python version (3.11 or 3.13)}"
STAMP="$VENV/.shotpass-bpy-$BPY"
if [ -f "$STAMP" ]; then
    echo "bpy $BPY env ready: $VENV"
    exit 0
fi

find_python() {  # python3.X on PATH that runs, else one under pyenv's versions (its shim may refuse)
    local want="python$1" candidate
    if command -v "$want" >/dev/null 2>&1 && "$want" -c '' >/dev/null 2>&1; then
        command -v "$want"; return 0
    fi
    for root in "${PYENV_ROOT:-$HOME/.pyenv}" /root/.pyenv; do
        for candidate in "$root"/versions/"$1".*/bin/"$want"; do
            if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
        done
    done
    echo "no $want found: install Python $1 (bpy $BPY needs it) or put it on PATH" >&2
    return 1
}

PYTHON="$(find_python "$PYVER")"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "bpy==$BPY"
"$VENV/bin/python" - <<PY
import importlib.util, sys
import bpy
print("bpy", bpy.app.version_string, "on Python", sys.version.split()[0])
# typing_extensions may come with bpy's own requirements (cattrs, bpy 5.1+); grpc and protobuf never do.
lent = [m for m in ("grpc", "google", "shotpass_client") if importlib.util.find_spec(m) is not None]
assert not lent, f"the bpy venv must hold only bpy and its requirements, but it has {lent}"
PY
touch "$STAMP"
echo "bpy $BPY env ready: $VENV"
