"""Content digests: BLAKE3 (one thread, all cores) vs sha256 on the same bytes in memory, in one run.

    .venv/bin/python bench/hashing.py [--mb 256] [--reps 5]

The data is random bytes in memory (no disk), hashed through shotpass_client.digests as uploads and
downloads hash it: 1 MiB updates. The headline is blake3 (all cores) MB/s over sha256 MB/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable, Dict, List

import blake3

from shotpass_client import digests


def rates(fns: Dict[str, Callable[[memoryview], str]], data: memoryview, reps: int) -> Dict[str, float]:
    """MB/s of each function, median of `reps`; the functions take turns, so a busy moment hits all of them."""
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(data)
            times[name].append(time.perf_counter() - start)
    return {name: len(data) / 1e6 / statistics.median(t) for name, t in times.items()}


def chunked(make):  # type: ignore[no-untyped-def]
    def run(data: memoryview) -> str:
        h = make()
        for offset in range(0, len(data), digests.FILE_BLOCK):
            h.update(data[offset: offset + digests.FILE_BLOCK])
        return h.hexdigest() if hasattr(h, "hexdigest") else h.digest()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    data = memoryview(os.urandom(args.mb << 20))
    r = rates({"sha": chunked(lambda: digests.Hasher(digests.SHA256)),
               "one": chunked(lambda: blake3.blake3()),
               "auto": chunked(lambda: digests.Hasher(digests.BLAKE3))}, data, args.reps)
    sha, one, auto = r["sha"], r["one"], r["auto"]
    print(f"{args.mb} MiB in memory, 1 MiB updates, median of {args.reps}; {os.cpu_count()} CPUs")
    print(f"  sha256:                {sha:7.0f} MB/s")
    print(f"  blake3, one thread:    {one:7.0f} MB/s   {one / sha:.2f}x sha256")
    print(f"  blake3, all cores:     {auto:7.0f} MB/s   {auto / sha:.2f}x sha256  (what shotpass uses)")


if __name__ == "__main__":
    main()
