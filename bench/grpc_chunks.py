"""gRPC downloads: chunks read by hand (rawchunks.decode_chunk) vs parsed by protobuf, in one run.

    TMPDIR=/dev/shm .venv/bin/python bench/grpc_chunks.py [--frames 6] [--reps 9]

`shotpass serve` runs as a subprocess; the real Client here uploads N fresh 17.7 MB blobs over gRPC, then
downloads them all, in memory and verified, over the same channel: once through the Client's DownloadBlob
that reads each chunk by hand (what `download` uses), once through the generated stub (protobuf parses each
chunk). The two take turns every repetition; medians.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).parent))
from transport import start, stop  # noqa: E402 - the bench's own helpers, beside this file

SIZE = 17_700_000


def run(frames: int, reps: int) -> None:
    import numpy as np

    from shotpass_client import Client, digests
    from shotpass_client.proto import shotpass_pb2 as pb

    with tempfile.TemporaryDirectory(prefix="shotpass-chunks-") as tmp:
        proc, address = start([sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0",
                               "--data-dir", str(Path(tmp) / "data")], "serving on ", Path(tmp) / "server.log")
        try:
            with Client(address) as client:
                client.use_data_plane = False
                rng = np.random.default_rng(5)
                blobs = [client.upload_bytes(rng.bytes(SIZE)) for _ in range(frames)]

                def fetch(call: Callable) -> Callable[[], None]:  # type: ignore[type-arg]
                    def go() -> None:
                        for digest in blobs:
                            h, out = digests.hasher_for(digest), io.BytesIO()
                            for chunk in call(pb.DownloadBlobRequest(digest=digest), metadata=client._metadata):
                                out.write(chunk.data)
                                h.update(chunk.data)
                            if h.digest() != digest:
                                raise SystemExit(f"blob {digest[:12]} came back different")
                    return go

                ways = {"read by hand": fetch(client._raw_download),
                        "parsed by protobuf": fetch(client._stub.DownloadBlob)}
                times: Dict[str, List[float]] = {name: [] for name in ways}
                for _ in range(reps):
                    for name, go in ways.items():
                        started = time.perf_counter()
                        go()
                        times[name].append(time.perf_counter() - started)
        finally:
            stop(proc)
    mb = frames * SIZE / 1e6
    rates = {name: mb / statistics.median(t) for name, t in times.items()}
    print(f"{frames} blobs of {SIZE / 1e6:.1f} MB, gRPC DownloadBlob in memory, median of {reps}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    for name, rate in rates.items():
        print(f"  {name:<20} {rate:6.0f} MB/s")
    print(f"read by hand / protobuf = {rates['read by hand'] / rates['parsed by protobuf']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    run(args.frames, args.reps)


if __name__ == "__main__":
    main()
