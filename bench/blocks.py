"""How the data plane moves a blob's bytes: block size and send method, side by side in one run.

    .venv/bin/python bench/blocks.py [--frames 6] [--mb 17.7] [--reps 7]

A sender process and this process talk over loopback TCP; the blobs are random files in TMPDIR (use
TMPDIR=/dev/shm to keep the disk out). Two questions, each answered by variants that take turns every
repetition (medians), so a busy moment of a shared machine hits all of them:

- **Sending a file** (a data plane GET, a client's PUT): `sendfile`, or reads into one reused buffer of
  1 MiB / 8 MiB and `sendall`; the receiver only `recv_into`s a preallocated buffer. `sendall` from memory
  (no file) is the floor.
- **Receiving into a store** (a data plane PUT, a client's download): `recv_into` one reused buffer, BLAKE3
  it and write it into a new file, with 1 MiB or 8 MiB blocks; the sender sends from memory.

shotpass uses 1 MiB blocks and read + sendall (shotpass_client/blockio.py).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

REQUEST = struct.Struct("!cQ")  # how to send, block size
SEND_WAYS = {"sendfile": b"f", "read 1 MiB + sendall": b"1", "read 8 MiB + sendall": b"8", "sendall from memory": b"m"}


def sender(folder: str) -> None:
    paths = sorted(Path(folder).glob("blob.*"))
    kept = [p.read_bytes() for p in paths]
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        head = conn.recv(REQUEST.size, socket.MSG_WAITALL)
        if len(head) < REQUEST.size:
            return
        way, _ = REQUEST.unpack(head)
        for path, data in zip(paths, kept):
            if way == b"m":
                conn.sendall(data)
                continue
            with open(path, "rb", buffering=0) as fh:
                if way == b"f":
                    conn.sendfile(fh, 0, len(data))
                    continue
                buf = bytearray((1 if way == b"1" else 8) << 20)
                view = memoryview(buf)
                while n := fh.readinto(buf):
                    conn.sendall(view[:n])


def recv_exact(sock: socket.socket, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = sock.recv_into(view[got:])
        if not n:
            raise ConnectionError("the sender went away")
        got += n


def run(frames: int, size: int, reps: int) -> None:
    import numpy as np

    from shotpass_client import digests

    with tempfile.TemporaryDirectory(prefix="shotpass-blocks-") as tmp:
        rng = np.random.default_rng(7)
        for i in range(frames):
            (Path(tmp) / f"blob.{i}").write_bytes(rng.bytes(size))
        proc = subprocess.Popen([sys.executable, __file__, "--sender", tmp], stdout=subprocess.PIPE, text=True)
        try:
            port = int(proc.stdout.readline())  # type: ignore[union-attr]
            sock = socket.create_connection(("127.0.0.1", port))
            whole = bytearray(size)

            def ask(way: bytes) -> None:
                sock.sendall(REQUEST.pack(way, 0))

            def receive_only(way: bytes) -> Callable[[], None]:
                def go() -> None:
                    ask(way)
                    for _ in range(frames):
                        recv_exact(sock, memoryview(whole))
                return go

            def store(block: int) -> Callable[[], None]:
                def go() -> None:
                    ask(b"m")
                    out = Path(tmp) / "out"
                    out.mkdir(exist_ok=True)
                    buf = bytearray(block)
                    view = memoryview(buf)
                    for i in range(frames):
                        h = digests.Hasher(digests.BLAKE3)
                        target = out / f"{time.perf_counter_ns()}.{i}"
                        with open(target, "wb", buffering=0) as fh:
                            left = size
                            while left:
                                n = min(block, left)
                                recv_exact(sock, view[:n])
                                h.update(view[:n])
                                fh.write(view[:n])
                                left -= n
                        target.unlink()  # timed alike for both block sizes
                return go

            variants: Dict[str, Callable[[], None]] = {f"send: {name}": receive_only(way)
                                                       for name, way in SEND_WAYS.items()}
            variants["store: 1 MiB blocks"] = store(1 << 20)
            variants["store: 8 MiB blocks"] = store(8 << 20)
            times: Dict[str, List[float]] = {name: [] for name in variants}
            for _ in range(reps):
                for name, go in variants.items():
                    started = time.perf_counter()
                    go()
                    times[name].append(time.perf_counter() - started)
            sock.close()
        finally:
            proc.wait(10)
    total = frames * size / 1e6
    load = os.getloadavg()[0]
    print(f"{frames} blobs of {size / 1e6:.1f} MB over loopback, median of {reps}; {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    for name, seconds in times.items():
        print(f"  {name:<34} {total / statistics.median(seconds):7.0f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--mb", type=float, default=17.7)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--sender", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sender:
        sender(args.sender)
        return
    run(args.frames, int(args.mb * 1e6), args.reps)


if __name__ == "__main__":
    main()
