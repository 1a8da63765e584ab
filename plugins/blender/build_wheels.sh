#!/usr/bin/env bash
# Fetch the wheels the extension bundles into plugins/blender/wheels/ (gitignored): the whole dependency
# closure of wheels.txt, for Blender's Python 3.11 (4.2-5.0) and 3.13 (5.1+), on every platform the
# manifest claims. pip resolves the closure per target, so a dependency added upstream (grpcio ->
# typing-extensions) is fetched rather than forgotten; --no-deps is never used. Cached: nothing is
# fetched again while wheels.txt and this script are unchanged.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$HERE/wheels"
PINS="$HERE/wheels.txt"
# pip platform tag -> the manifest's platform (build_extension.py derives `platforms` from the wheels).
PLATFORMS=(manylinux_2_17_x86_64 manylinux_2_17_aarch64 macosx_11_0_universal2 win_amd64)
PYTHONS=(3.11 3.13)
STAMP="$OUT/.fetched"
KEY="$(cat "$PINS" "${BASH_SOURCE[0]}" | cksum)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ]; then
    echo "wheels up to date: $OUT"
    exit 0
fi
mkdir -p "$OUT"
rm -f "$OUT"/*.whl "$STAMP"  # a stale pin must not end up in the zip
for py in "${PYTHONS[@]}"; do
    abi="cp${py/./}"
    for platform in "${PLATFORMS[@]}"; do
        "$PYTHON" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
            --python-version "$py" --implementation cp --abi "$abi" --platform "$platform" \
            -d "$OUT" -r "$PINS" 2> >(grep -v "is ignored: it is neither" >&2)
    done
done
# One wheel per distribution: where pip chose a pure-Python wheel for one target and a compiled one for
# another (protobuf), keep the pure one everywhere, so every platform runs the same protobuf code.
for pure in "$OUT"/*-py3-none-any.whl; do
    dist_version="$(basename "$pure" | cut -d- -f1-2)"
    for other in "$OUT/$dist_version"-*.whl; do
        [ "$other" = "$pure" ] || rm -f "$other"
    done
done
echo "$KEY" > "$STAMP"
ls -1 "$OUT"
