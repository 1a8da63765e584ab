"""FindBlobs timing: another user's stored blobs vs digests nobody stored, asked by the same user.

The server must not be an existence oracle for other users' plates, by its answer or by its timing. Prints the
median time of one FindBlobs call of N digests of each kind (interleaved repetitions) and their ratio; 1.00
means the two cannot be told apart by timing.

    .venv/bin/python bench/find_blobs.py [--blobs 500] [--reps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "server"), str(ROOT / "shared")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=500, help="digests per FindBlobs call (default 500)")
    parser.add_argument("--reps", type=int, default=15, help="calls of each kind (default 15)")
    args = parser.parse_args()

    from shotpass_client import Client
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    with tempfile.TemporaryDirectory(prefix="shotpass-bench-") as tmp:
        srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=Path(tmp) / "d"))
        tokens = {name: srv.accounts.add_user(name) for name in ("alice", "bob")}
        srv.start()
        try:
            with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
                theirs = [alice.upload_bytes(os.urandom(1024)) for _ in range(args.blobs)]
                never = [os.urandom(32).hex() for _ in range(args.blobs)]
                bob.find_blobs(theirs[:10] + never[:10])  # warm up
                times: dict = {"another user's blobs": [], "never stored": []}
                for _ in range(args.reps):
                    for label, digests in (("another user's blobs", theirs), ("never stored", never)):
                        start = time.perf_counter()
                        assert bob.find_blobs(digests) == set()
                        times[label].append(time.perf_counter() - start)
        finally:
            srv.stop(0.5)
    medians = {label: statistics.median(values) for label, values in times.items()}
    for label, value in medians.items():
        print(f"{label:>22}: {value * 1000:8.1f} ms per FindBlobs of {args.blobs} digests (median of {args.reps})")
    ratio = medians["another user's blobs"] / medians["never stored"]
    print(f"ratio another user's / never stored: {ratio:.2f} (1.00: no timing oracle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
