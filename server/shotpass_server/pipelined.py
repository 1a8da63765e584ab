"""Three stages over a chunk's frames, overlapped: load ahead, compute in order, store behind.

    loader thread    load(frame)            read + decode + colour in, up to `depth` frames ahead
    caller's thread  compute(frame, loaded) the model (on the thread that owns the device)
    storer thread    store(frame, computed) colour out + encode + store + record, in frame order

So the device never waits for the codec: while the model runs on frame N, frame N+1 is decoded and frame
N-1 encoded. With `batch` > 1, consecutive loaded frames whose `batch_key` is equal (and not None) go to
`compute` together, up to `batch` of them (several frames through the model at once); the loader then works
a whole batch ahead. OpenEXR, OpenColorIO, numpy and the model runtimes release the GIL in their C++ work, so the
stages really overlap (bench/pipeline.py measures it). The stages are the functions a sequential worker
calls, in the same order per frame, so the outputs are the same bits.

A `load` that raises hands its exception to `compute` (which records the frame failed, as it would have
failed sequentially). A `compute` that raises (a cancel) stops the loader, lets the storer finish the frames
already computed — each of them complete, so a frame is recorded only whole — and re-raises.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Hashable, List, Optional, Sequence, Tuple

_END = object()


class LoadFailed:
    """What `compute` gets in place of a loaded frame whose load raised."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def run_pipelined(
    frames: Sequence[int],
    load: Callable[[int], Any],
    compute: Callable[[List[int], List[Any]], Sequence[Any]],
    store: Callable[[int, Any], None],
    depth: int = 2,
    stop: Callable[[], bool] = lambda: False,
    batch: int = 1,
    batch_key: Optional[Callable[[int, Any], Optional[Hashable]]] = None,
) -> None:
    """compute(frames, loaded) returns one result per frame; None skips the store for that frame (it failed
    and was recorded as such)."""
    batch = max(1, batch)
    loaded: queue.Queue = queue.Queue(maxsize=max(1, depth) + batch - 1)
    computed: queue.Queue = queue.Queue(maxsize=max(1, depth))
    halt = threading.Event()
    store_error: list = []

    def loader() -> None:
        for frame in frames:
            if halt.is_set() or stop():
                break
            try:
                item: Any = load(frame)
            except BaseException as err:  # handed to compute, which decides what a failed load means
                item = LoadFailed(err)
            while not halt.is_set():
                try:
                    loaded.put((frame, item), timeout=0.1)
                    break
                except queue.Full:
                    continue
        if not halt.is_set():
            loaded.put(_END)

    def storer() -> None:
        while True:
            entry = computed.get()
            if entry is _END:
                return
            try:
                store(*entry)
            except BaseException as err:  # store() records its own failures; anything else is a bug to raise
                store_error.append(err)
                halt.set()
                return

    threads = [threading.Thread(target=loader, name="shotpass-load", daemon=True),
               threading.Thread(target=storer, name="shotpass-store", daemon=True)]
    for t in threads:
        t.start()
    def next_entry() -> Any:
        while not store_error:
            try:
                return loaded.get(timeout=0.1)  # a failed storer halts the loader, which then sends no _END
            except queue.Empty:
                continue
        return _END

    def key_of(entry: Tuple[int, Any]) -> Optional[Hashable]:
        return None if batch_key is None or batch == 1 or isinstance(entry[1], LoadFailed) else batch_key(*entry)

    held: Any = None  # an entry read while filling a batch that did not fit it: the next batch starts with it
    try:
        while not store_error:
            entry, held = (held, None) if held is not None else (next_entry(), None)
            if entry is _END:
                break
            if stop():  # cancelled: frames loaded ahead were never started, so nothing to undo
                break
            group, key = [entry], key_of(entry)
            while key is not None and len(group) < batch:
                following = next_entry()
                if following is not _END and key_of(following) == key:
                    group.append(following)
                    continue
                held = following
                break
            results = compute([f for f, _ in group], [item for _, item in group])
            for (frame, _), result in zip(group, results):
                if result is not None:
                    _put(computed, (frame, result), store_error)
    finally:
        halt.set()
        _drain(loaded)  # a loader blocked on a full queue sees `halt` within its timeout
        threads[0].join()
        if threads[1].is_alive():
            computed.put(_END)
            threads[1].join()
    if store_error:
        raise store_error[0]


def _put(q: queue.Queue, item: Any, errors: list) -> None:
    while not errors:
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
