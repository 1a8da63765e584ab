"""How fast frames move through shotpass's gRPC blob path, against raw TCP on loopback, in one run.

    .venv/bin/python bench/transport.py [--frames 8] [--size 2048x1080] [--compression none|zip] [--reps 3]

Both servers run in their own process (`shotpass serve` for gRPC, a sendall/recv_into sink written
below for raw TCP); the client side runs here. Each repetition writes fresh random frames first, so
the content-addressed upload never skips a blob the server already holds, and downloads into a fresh
folder, as a first fetch does. Medians of the repetitions are printed; the headline is the gRPC/raw
ratio (1.0 = as fast as a bare socket).

For context it also runs bare TCP doing the work that any checked, stored transfer must do, with none of
shotpass's protocol around it: "raw + hash" hashes every byte on both sides (BLAKE3, memory to memory);
"raw + hash + files" also reads the source file, writes every byte into a new file on the receiving side
and fsyncs it, as shotpass does. And it times each stage alone (`stages`), so the per-byte cost of each is
visible.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

MB = 1e6
HEADER = struct.Struct("!cQ")  # command byte, length or blob index
BLOCK = 1 << 20  # as shotpass_client.blockio


# --------------------------------------------------------------------------- frames


def write_frames(folder: Path, count: int, size: Tuple[int, int], compression: str, seed: int) -> List[str]:
    """2K-ish half RGBA frames: a gradient plus grain, distinct per seed (hence per digest)."""
    import OpenEXR

    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    kind = OpenEXR.ZIP_COMPRESSION if compression == "zip" else OpenEXR.NO_COMPRESSION
    paths = []
    for i in range(count):
        grain = rng.standard_normal((height, width, 4), dtype=np.float32) * 0.05
        rgba = (ramp * np.array([1.0, 0.8, 0.6, 0.0], np.float32) + grain).astype(np.float16)
        rgba[..., 3] = 1.0
        path = folder / f"noise.{1001 + i:04d}.exr"
        OpenEXR.File({"compression": kind, "type": OpenEXR.scanlineimage}, {"RGBA": rgba}).write(str(path))
        paths.append(str(path))
    return paths


# --------------------------------------------------------------------------- raw TCP sink/echo


def raw_server(folder: Path) -> None:
    """U<len>: receive a blob into the next kept buffer; D<index>: send a kept blob back; R: rewind.
    H<len>/E<index>: the same, hashing every byte received (H) or before sending it (E).
    W<len>: receive a blob into a new file in `folder`, hashing it, then fsync; F<index>: send that file back.

    Buffers are allocated once and reused across repetitions, as a tuned receiver would.
    """
    from shotpass_client import digests
    from shotpass_client.blockio import send_file

    written: List[Path] = []
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"raw serving on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    kept: List[bytearray] = []
    count = 0
    while True:
        head = _recv_exact(conn, HEADER.size)
        if head is None:
            return
        command, value = HEADER.unpack(head)
        if command in (b"U", b"H"):
            if count == len(kept):
                kept.append(bytearray(value))
            elif len(kept[count]) != value:
                kept[count] = bytearray(value)
            _recv_into(conn, memoryview(kept[count]), digests.Hasher("blake3") if command == b"H" else None)
            count += 1
            conn.sendall(b"k")
        elif command in (b"D", b"E"):
            if command == b"E":
                digests.of_bytes(kept[value], "blake3")
            conn.sendall(struct.pack("!Q", len(kept[value])))
            conn.sendall(kept[value])
        elif command == b"W":
            path = folder / f"blob.{len(written)}"
            with open(path, "wb", buffering=0) as fh:
                _recv_into_file(conn, fh, value, digests.Hasher("blake3"))
                os.fsync(fh.fileno())
            written.append(path)
            conn.sendall(b"k")
        elif command == b"F":
            with open(written[value], "rb", buffering=0) as fh:
                size = os.fstat(fh.fileno()).st_size
                conn.sendall(struct.pack("!Q", size))
                send_file(conn, fh, size)
        elif command == b"R":
            count = 0
            for path in written:
                path.unlink()
            written.clear()
            conn.sendall(b"k")


def _recv_into(conn: socket.socket, view: memoryview, hasher=None) -> None:  # type: ignore[no-untyped-def]
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:got + BLOCK] if hasher else view[got:])
        if n == 0:
            raise ConnectionError("peer closed mid-blob")
        if hasher:
            hasher.update(view[got:got + n])
        got += n


def _recv_into_file(conn: socket.socket, fh, size: int, hasher) -> None:  # type: ignore[no-untyped-def]
    """Receive `size` bytes through one reused cache-sized buffer: hash each block and write it to the file."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    left = size
    while left:
        n = conn.recv_into(view[: min(BLOCK, left)])
        if n == 0:
            raise ConnectionError("peer closed mid-blob")
        hasher.update(view[:n])
        fh.write(view[:n])
        left -= n


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = bytearray(n)
    try:
        _recv_into(conn, memoryview(buf))
    except ConnectionError:
        return None
    return bytes(buf)


class RawClient:
    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def upload(self, blobs: List[bytes], hashed: bool = False) -> None:
        """Send each blob from memory; the sink acknowledges each one once it holds all of it.
        hashed: both sides hash every byte (the client before sending, the sink as it receives)."""
        from shotpass_client import digests

        ack = memoryview(bytearray(1))
        for data in blobs:
            if hashed:
                digests.of_bytes(data, "blake3")
            self.sock.sendall(HEADER.pack(b"H" if hashed else b"U", len(data)))
            self.sock.sendall(data)
            _recv_into(self.sock, ack)

    def download(self, buffers: List[bytearray], hashed: bool = False) -> None:
        """Receive each kept blob into a preallocated buffer of its size (hashed: both sides hash it)."""
        from shotpass_client import digests

        size = memoryview(bytearray(8))
        for index, buf in enumerate(buffers):
            self.sock.sendall(HEADER.pack(b"E" if hashed else b"D", index))
            _recv_into(self.sock, size)
            if struct.unpack("!Q", size)[0] != len(buf):
                raise SystemExit("raw download: size mismatch")
            _recv_into(self.sock, memoryview(buf), digests.Hasher("blake3") if hashed else None)

    def upload_files(self, paths: List[str]) -> None:
        """Hash each file (read + BLAKE3, as a client does before it asks what the server lacks), send it from
        the file; the sink hashes it as it writes it into a new file, and fsyncs."""
        from shotpass_client import digests
        from shotpass_client.blockio import send_file

        ack = memoryview(bytearray(1))
        for path in paths:
            digests.of_file(path, "blake3")
            size = os.path.getsize(path)
            self.sock.sendall(HEADER.pack(b"W", size))
            with open(path, "rb", buffering=0) as fh:
                send_file(self.sock, fh, size)
            _recv_into(self.sock, ack)

    def download_files(self, count: int, folder: Path) -> None:
        """Receive each written blob into a new file, hashing it on the way (as a client's download does)."""
        from shotpass_client import digests

        size = memoryview(bytearray(8))
        for index in range(count):
            self.sock.sendall(HEADER.pack(b"F", index))
            _recv_into(self.sock, size)
            with open(folder / f"raw.{index}", "wb", buffering=0) as fh:
                _recv_into_file(self.sock, fh, struct.unpack("!Q", size)[0], digests.Hasher("blake3"))

    def reset(self) -> None:
        self.sock.sendall(HEADER.pack(b"R", 0))
        _recv_into(self.sock, memoryview(bytearray(1)))

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- processes


def start(argv: List[str], marker: str, log: Path) -> Tuple[subprocess.Popen, str]:
    """Start a server process and read its address from the line that starts with `marker`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if marker not in line:
        proc.kill()
        raise SystemExit(f"server did not start ({line.strip()!r}); see {log}")
    return proc, line.split(marker, 1)[1].split()[0]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


# --------------------------------------------------------------------------- measuring


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def fresh_folder(parent: Path) -> Path:
    """An empty folder for one round's downloads: a first fetch writes new files (no old ones to replace)."""
    shutil.rmtree(parent, ignore_errors=True)
    parent.mkdir()
    return parent


def grpc_round(client, paths: List[str], out_dir: Path) -> Tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """(upload s, download-to-file s, download-in-memory s) through the real Client."""
    digests: Dict[str, str] = {}
    out_dir = fresh_folder(out_dir)

    def upload() -> None:
        found, sent = client.upload_files(paths)
        if sent != sum(os.path.getsize(p) for p in paths):
            raise SystemExit(f"only {sent} bytes were uploaded: the server already had some blobs")
        digests.update(found)

    up = timed(upload)
    down = timed(lambda: [client.download(digests[p], str(out_dir / Path(p).name)) for p in paths])
    memory = timed(lambda: [client.download_bytes(digests[p]) for p in paths])
    return up, down, memory


def raw_round(raw: RawClient, paths: List[str], out_dir: Path) -> Tuple[float, ...]:
    """(upload s, download s) of the same bytes, memory to memory: the floor for any transport; then the same
    with hashing on both sides, then from files into new files with hashing and fsync (context)."""
    blobs = [Path(p).read_bytes() for p in paths]
    buffers = [bytearray(len(b)) for b in blobs]
    raw.reset()
    up, down = timed(lambda: raw.upload(blobs)), timed(lambda: raw.download(buffers))
    if any(buf != blob for buf, blob in zip(buffers, blobs)):
        raise SystemExit("raw download returned different bytes")
    raw.reset()
    hashed_up, hashed_down = timed(lambda: raw.upload(blobs, True)), timed(lambda: raw.download(buffers, True))
    raw.reset()
    folder = fresh_folder(out_dir)
    files_up, files_down = timed(lambda: raw.upload_files(paths)), timed(lambda: raw.download_files(len(paths), folder))
    return up, down, hashed_up, hashed_down, files_up, files_down


def stages(paths: List[str], out_dir: Path) -> Dict[str, float]:
    """Seconds of each per-byte stage of a transfer alone, on the same files (1 MiB blocks, as the product)."""
    from shotpass_client import digests

    blobs = [Path(p).read_bytes() for p in paths]
    buf = bytearray(BLOCK)
    view = memoryview(buf)

    def read() -> None:
        for path in paths:
            with open(path, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass

    def hash_memory() -> None:
        for blob in blobs:
            h = digests.Hasher("blake3")
            data = memoryview(blob)
            for offset in range(0, len(data), BLOCK):
                h.update(data[offset: offset + BLOCK])
            h.digest()

    def write_new(fsync: bool) -> Callable[[], None]:
        def write() -> None:
            folder = fresh_folder(out_dir)
            for index, blob in enumerate(blobs):
                data = memoryview(blob)
                with open(folder / f"stage.{index}", "wb", buffering=0) as fh:
                    for offset in range(0, len(data), BLOCK):
                        fh.write(data[offset: offset + BLOCK])
                    if fsync:
                        os.fsync(fh.fileno())
        return write

    def copy_memory() -> None:
        for blob in blobs:
            data = memoryview(blob)
            for offset in range(0, len(data), BLOCK):
                view[: len(data[offset: offset + BLOCK])] = data[offset: offset + BLOCK]

    return {
        "file read (1 MiB readinto)": timed(read),
        "client hash (read + BLAKE3 all cores, of_file)": timed(lambda: [digests.of_file(p, "blake3") for p in paths]),
        "BLAKE3 all cores in memory (1 MiB updates)": timed(hash_memory),
        "write into new files": timed(write_new(False)),
        "write into new files + fsync": timed(write_new(True)),
        "memory copy (1 MiB blocks)": timed(copy_memory),
    }


def hash_seconds(paths: List[str], algorithm: str) -> float:
    """The digest of the same files (read + hash), as a client computes it before an upload."""
    from shotpass_client import digests

    return timed(lambda: [digests.of_file(p, algorithm) for p in paths])


def report(name: str, total: int, seconds: List[float], raw: List[float] | None = None) -> float:
    rate = total / MB / statistics.median(seconds)
    ratio = f"   {rate / (total / MB / statistics.median(raw)):.2f} of raw" if raw else ""
    print(f"  {name:<48} {rate:8.0f} MB/s  (median of {len(seconds)}: {statistics.median(seconds):.3f} s){ratio}")
    return rate


def run(frames: int, size: Tuple[int, int], compression: str, reps: int) -> None:
    from shotpass_client import Client

    with tempfile.TemporaryDirectory(prefix="shotpass-bench-") as tmp:
        root = Path(tmp)
        plate, out = root / "plate", root / "out"
        plate.mkdir()
        out.mkdir()
        log = root / "servers.log"
        grpc_proc, grpc_addr = start([sys.executable, "-m", "shotpass_server.cli", "serve", "--listen",
                                      "127.0.0.1:0", "--data-dir", str(root / "data")], "serving on ", log)
        (root / "raw").mkdir()  # the raw server's files, removed with the rest when the run ends
        raw_proc, raw_addr = start([sys.executable, __file__, "--raw-server", str(root / "raw")],
                                   "raw serving on ", log)
        keys = ("up", "down", "mem", "dp_up", "dp_down", "dp_mem", "raw_up", "raw_down", "rawh_up", "rawh_down",
                "rawf_up", "rawf_down", "sha256", "blake3")
        results: Dict[str, List[float]] = {k: [] for k in keys}
        stage_times: Dict[str, List[float]] = {}
        try:
            with Client(grpc_addr) as client, Client(grpc_addr) as grpc_only:
                grpc_only.use_data_plane = False
                if client.data_plane() is None or client.digest_algorithm != "blake3":
                    raise SystemExit("the server offers no data plane or no blake3: is this checkout installed?")
                raw = RawClient(raw_addr)
                for rep in range(reps):
                    # Fresh frames for each path, so neither finds its blobs already stored.
                    paths = write_frames(plate, frames, size, compression, seed=2 * rep)
                    for key, value in zip(("up", "down", "mem"), grpc_round(grpc_only, paths, out)):
                        results[key].append(value)
                    raw_keys = ("raw_up", "raw_down", "rawh_up", "rawh_down", "rawf_up", "rawf_down")
                    for key, value in zip(raw_keys, raw_round(raw, paths, out)):
                        results[key].append(value)
                    paths = write_frames(plate, frames, size, compression, seed=2 * rep + 1)
                    for key, value in zip(("dp_up", "dp_down", "dp_mem"), grpc_round(client, paths, out)):
                        results[key].append(value)
                    for algorithm in ("sha256", "blake3"):
                        results[algorithm].append(hash_seconds(paths, algorithm))
                    for name, seconds in stages(paths, out).items():
                        stage_times.setdefault(name, []).append(seconds)
                raw.close()
        finally:
            stop(grpc_proc)
            stop(raw_proc)
        total = sum(os.path.getsize(p) for p in paths)
        print_results(frames, size, compression, total, results, reps)
        print("each stage alone, same files (1000 / MB/s = ns per byte; one thread unless said):")
        for name, seconds in stage_times.items():
            report(name, total, seconds)


def print_results(
    frames: int, size: Tuple[int, int], compression: str, total: int, r: Dict[str, List[float]], reps: int
) -> None:
    print(f"{frames} frames {size[0]}x{size[1]} half RGBA, {compression.upper()} compression, "
          f"{total / frames / MB:.1f} MB each ({total / MB:.0f} MB per direction); {reps} repetitions, "
          f"fresh random frames each; {os.cpu_count()} CPUs")
    report("raw TCP upload (sendall from memory)", total, r["raw_up"])
    report("raw TCP download (recv_into preallocated)", total, r["raw_down"])
    report("  context: raw + BLAKE3 both sides, upload", total, r["rawh_up"], r["raw_up"])
    report("  context: raw + BLAKE3 both sides, download", total, r["rawh_down"], r["raw_down"])
    report("  context: raw + BLAKE3 + new files + fsync, up", total, r["rawf_up"], r["raw_up"])
    report("  context: raw + BLAKE3 + new files, download", total, r["rawf_down"], r["raw_down"])
    report("gRPC upload (upload_files, blake3)", total, r["up"], r["raw_up"])
    report("gRPC download (download to file, blake3)", total, r["down"], r["raw_down"])
    report("gRPC download in memory (download_bytes)", total, r["mem"], r["raw_down"])
    report("data plane upload (upload_files, blake3)", total, r["dp_up"], r["raw_up"])
    report("data plane download (download to file)", total, r["dp_down"], r["raw_down"])
    report("data plane download in memory", total, r["dp_mem"], r["raw_down"])
    sha = report("sha256 alone (read + hash)", total, r["sha256"])
    b3 = report("blake3 alone (read + hash, all cores)", total, r["blake3"])
    print(f"hashing: blake3/sha256 = {b3 / sha:.2f}x")
    raw_s = statistics.median(r["raw_up"]) + statistics.median(r["raw_down"])
    for name, up, down in (("gRPC", "up", "down"), ("data plane", "dp_up", "dp_down"),
                           ("context: raw + BLAKE3", "rawh_up", "rawh_down"),
                           ("context: raw + BLAKE3 + files", "rawf_up", "rawf_down")):
        s = statistics.median(r[up]) + statistics.median(r[down])
        print(f"{name} {2 * total / MB / s:.0f} MB/s vs raw TCP {2 * total / MB / raw_s:.0f} MB/s "
              f"(upload + download): ratio {name}/raw = {raw_s / s:.2f}")


def parse_size(text: str) -> Tuple[int, int]:
    width, _, height = text.lower().partition("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=parse_size, default=(2048, 1080), help="WIDTHxHEIGHT (default 2048x1080)")
    parser.add_argument("--compression", choices=("none", "zip"), default="none",
                        help="none: ~17.7 MB frames (the wire-speed case); zip: real-size files of grain")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--raw-server", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        raw_server(Path(args.raw_server))
        return
    run(args.frames, args.size, args.compression, args.reps)


if __name__ == "__main__":
    main()
