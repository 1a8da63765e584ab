#!/usr/bin/env bash
# Fetch the grpcio + protobuf wheels the extension bundles, for Blender's Python 3.11 on each platform,
# into plugins/blender/wheels/ (gitignored). Run it before build_extension.py.
# grpcio 1.85.3 / protobuf 6.33.6: the newest available; the committed stubs need at least grpcio 1.70 and
# protobuf 5.29 (they check GRPC_GENERATED_VERSION at import).
# When the pins change, update `wheels = [...]` in shotpass/blender_manifest.toml to match.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
OUT="$HERE/wheels"
GRPCIO="grpcio==1.85.3"
PROTOBUF="protobuf==6.33.6"
mkdir -p "$OUT"
rm -f "$OUT"/*.whl  # a stale pin must not end up in the zip
for platform in manylinux_2_17_x86_64 manylinux_2_17_aarch64 macosx_11_0_universal2 win_amd64; do
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --implementation cp --abi cp311 --platform "$platform" -d "$OUT" "$GRPCIO"
done
# protobuf's pure-Python wheel runs everywhere (slower than upb, but only messages of ~1 MiB pass through).
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --implementation py --abi none --platform any -d "$OUT" "$PROTOBUF"
ls -1 "$OUT"
