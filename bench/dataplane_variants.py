"""The data plane end to end under the choices it could make: block size, send method, BLAKE3 threads.

    TMPDIR=/dev/shm .venv/bin/python bench/dataplane_variants.py [--frames 6] [--reps 7]

One `shotpass serve` per variant (subprocesses of this script, each set to its variant) and the real Client
here, set to the same variant before each round. Every round uploads fresh random blobs (`upload_files`:
digest, FindBlobs, PUTs) and downloads them into an empty folder (`download`). The variants take turns every
repetition, so a busy moment of a shared machine hits all of them; medians. The first variant is what
shotpass ships; the last is what it shipped before (8 MiB blocks, sendfile).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

sys.path.insert(0, str(Path(__file__).parent))
from transport import start, stop  # noqa: E402 - the bench's own helpers, beside this file

SIZE = 17_700_000


class Variant(NamedTuple):
    block: int
    send: str  # "read": read into one buffer + sendall; "sendfile"
    threads: int  # BLAKE3 max_threads; -1 = all cores

    def label(self) -> str:
        threads = "all cores" if self.threads < 0 else f"{self.threads} thread"
        return f"{self.block >> 20} MiB blocks, {self.send:8s}, BLAKE3 {threads}"


VARIANTS = [Variant(1 << 20, "read", -1), Variant(1 << 20, "read", 1), Variant(8 << 20, "read", -1),
            Variant(1 << 20, "sendfile", -1), Variant(8 << 20, "sendfile", -1)]


def _sendfile(sock, fh, size: int, on_bytes=None) -> int:  # type: ignore[no-untyped-def]
    sent = 0
    while sent < size:
        n = sock.sendfile(fh, sent, size - sent)
        if not n:
            break
        sent += n
        if on_bytes:
            on_bytes(n)
    return sent


def apply(variant: Variant) -> None:
    """Set this process's client and server modules to the variant."""
    from shotpass_client import blockio, digests, transfer

    blockio.BLOCK_BYTES = transfer.BLOCK_BYTES = variant.block
    digests.BLAKE3_THREADS = variant.threads
    digests.of_file.__defaults__ = (digests.SHA256, variant.block)
    transfer.send_file = _sendfile if variant.send == "sendfile" else blockio.send_file
    if "shotpass_server.dataplane" in sys.modules:
        from shotpass_server import dataplane

        dataplane.BLOCK_BYTES = variant.block
        dataplane.send_file = transfer.send_file


def serve(variant: Variant, argv: List[str]) -> None:
    import shotpass_server.dataplane  # noqa: F401 - loaded so that apply() sets it too
    from shotpass_server.cli import main

    apply(variant)
    sys.argv = ["shotpass", *argv]
    sys.exit(main())


def run(frames: int, reps: int) -> None:
    import numpy as np

    from shotpass_client import Client

    root = Path(tempfile.mkdtemp(prefix="shotpass-variants-"))
    plate, out = root / "plate", root / "out"
    plate.mkdir()
    servers: List[Tuple[Variant, object, str]] = []
    try:
        for i, variant in enumerate(VARIANTS):
            proc, address = start([sys.executable, __file__, "--serve", str(i), "serve", "--listen", "127.0.0.1:0",
                                   "--data-dir", str(root / f"data{i}")], "serving on ", root / "servers.log")
            servers.append((variant, proc, address))
        rng = np.random.default_rng(11)
        times: Dict[Variant, Tuple[List[float], List[float]]] = {v: ([], []) for v in VARIANTS}
        for _ in range(reps):
            for variant, _, address in servers:
                apply(variant)
                paths = []
                for i in range(frames):
                    path = plate / f"blob.{i}"
                    path.write_bytes(rng.bytes(SIZE))
                    paths.append(str(path))
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                with Client(address) as client:
                    client.server_info()
                    started = time.perf_counter()
                    found, sent = client.upload_files(paths)
                    up = time.perf_counter() - started
                    if sent != frames * SIZE or not client.use_data_plane:
                        raise SystemExit("a blob was skipped or the data plane failed")
                    started = time.perf_counter()
                    for path in paths:
                        client.download(found[path], str(out / Path(path).name))
                    down = time.perf_counter() - started
                times[variant][0].append(up)
                times[variant][1].append(down)
    finally:
        for _, proc, _ in servers:
            stop(proc)  # type: ignore[arg-type]
        shutil.rmtree(root, ignore_errors=True)
    mb = frames * SIZE / 1e6
    print(f"{frames} blobs of {SIZE / 1e6:.1f} MB, data plane, median of {reps}; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    for variant, (ups, downs) in times.items():
        up, down = statistics.median(ups), statistics.median(downs)
        print(f"  {variant.label():<44} upload {mb / up:5.0f} MB/s  download {mb / down:5.0f} MB/s  "
              f"both {2 * mb / (up + down):5.0f} MB/s")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(VARIANTS[int(sys.argv[2])], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    run(args.frames, args.reps)


if __name__ == "__main__":
    main()
