"""Regenerate the Python stubs of the wire contract into the client package.

Run: python proto/generate.py            (writes the stubs)
     python proto/generate.py --check    (exit 1 if the committed stubs are stale)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO = "shotpass/v1/shotpass.proto"
STUB_DIR = ROOT / "shared" / "shotpass_client" / "proto"
STUBS = ("shotpass_pb2.py", "shotpass_pb2.pyi", "shotpass_pb2_grpc.py")


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(
            [
                "protoc",
                f"-I{PROTO_DIR}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(PROTO_DIR / PROTO),
            ]
        )
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")
        gen = Path(tmp) / "shotpass" / "v1"
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in STUBS:
            text = (gen / name).read_text()
            # Generated code imports its sibling absolutely; the stubs live inside a package.
            text = re.sub(r"^from shotpass\.v1 import ", "from . import ", text, flags=re.M)
            (out_dir / name).write_text(text)


def stale_files() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return [
            name
            for name in STUBS
            if not (STUB_DIR / name).exists()
            or (Path(tmp) / name).read_text() != (STUB_DIR / name).read_text()
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only check that the stubs are current")
    args = parser.parse_args()
    if args.check:
        stale = stale_files()
        if stale:
            print("stale stubs: " + ", ".join(stale) + " (run: python proto/generate.py)")
            return 1
        print("stubs are current")
        return 0
    generate(STUB_DIR)
    print(f"wrote {', '.join(STUBS)} to {STUB_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
