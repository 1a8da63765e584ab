"""The Ray executor: one actor per GPU of a Ray cluster (or N CPU actors), fed whole frame chunks.

The server keeps the catalog, the blob store and the scheduler; an actor only turns input EXR bytes into
output EXR bytes. Each actor builds its own model registry (from the server's model config, sent as plain
data) once and keeps its pipelines loaded between chunks. The scheduler sees one worker slot per actor
("ray:0", "ray:1", ...), so chunking, lanes and priorities are exactly those of the local executor.

A chunk is streamed back frame by frame: the actor says when a frame starts and sends each result as soon
as it is encoded, so finished frames are stored even if the actor dies later in the same chunk. The actor
also keeps the latest (frame, step, total) its model reported; the waiting slot thread fetches it every
POLL_SECONDS and reports it as a STEP event, so remote frames show per-step progress too. When an
actor dies, the frames it was rendering go back to pending (the scheduler requeues the render) and the slot
gets a fresh actor; a frame that has killed its worker ``max_frame_attempts`` times fails with the reason.

GPU boxes that join the cluster later get slots without a restart: every ``rescan_s`` seconds the executor
compares the cluster's GPUs with its GPU slots and starts an actor for each new GPU, announcing the new slot
to ``on_new_slot`` (the server hands it to the scheduler, which starts a worker thread for it).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from .errors import InvalidInput, RenderCancelled, ShotpassError
from .frame_pipeline import FrameRequest, run_clip, run_frame
from .frames.exr import LIMITS
from .passes.base import ClipModel, Model, Progress
from .passes.registry import ModelRegistry

log = logging.getLogger("shotpass.ray")

SLOT_PREFIX = "ray:"
# Environment the actors share with the server, so results match the local executor's (thread counts) and
# nothing is downloaded on a GPU box either.
FORWARDED_ENV = ("SHOTPASS_THREADS", "OMP_NUM_THREADS", "HF_HUB_OFFLINE", "HF_HOME", "OCIO")
POLL_SECONDS = 0.2  # how often a waiting chunk looks at cancel and stop flags, and fetches the latest step
GPU_ACTOR = {"num_gpus": 1, "num_cpus": 0}
CPU_ACTOR = {"num_cpus": 1}

RegistryFactory = Callable[[], ModelRegistry]


def registry_from_specs(specs: Sequence[Dict[str, Any]]) -> ModelRegistry:
    """The worker-side registry: starter models plus the configured ``[models.NAME]`` (as plain dicts)."""
    if not specs:
        return ModelRegistry()
    from .model_config import ModelSpec, registry_for

    return registry_for([ModelSpec(**spec) for spec in specs])


def specs_factory(models: Sequence[Any]) -> RegistryFactory:
    """A picklable factory that rebuilds the server's model config inside an actor."""
    return functools.partial(registry_from_specs, [asdict(m) for m in models])


def is_slot(device: str) -> bool:
    return device.startswith(SLOT_PREFIX)


@dataclass
class ChunkHooks:
    """What the server does as a remote chunk reports back (all called on the slot's worker thread)."""

    started: Callable[[List[int]], None]  # frames the actor began (their attempt counts go up)
    finished: Callable[[int, bytes, float], None]  # frame, output EXR bytes, seconds
    failed: Callable[[int, str, float], None]  # frame, message, seconds
    requeued: Callable[[int], None]  # frame goes back to pending
    warning: Callable[[str], None]
    cancelled: Callable[[], bool]
    step: Callable[[int, int, int], None] = lambda frame, step, total: None  # the model's latest step on a frame


def gpu_slots_to_add(cluster_gpus: int, gpu_slots: int) -> int:
    """How many GPU actors a rescan starts: one per cluster GPU that has no slot yet (none on a CPU-only cluster;
    GPUs that left keep their slots, whose fresh actors wait for a GPU)."""
    return max(0, int(cluster_gpus) - gpu_slots)


class FrameWorker:
    """The actor body: holds one registry and colour config; runs whole chunks and streams the results back.

    Threaded (max_concurrency 2), so ``cancel`` and ``info`` answer while a chunk runs.
    """

    def __init__(
        self, slot: str, make_registry: RegistryFactory, colour_config: str, env: Dict[str, str], max_frame_pixels: int
    ) -> None:
        os.environ.update(env)
        import ray

        from .frames.colour import ColourSpaces
        from .frames.exr import set_max_frame_pixels

        set_max_frame_pixels(max_frame_pixels)  # the server's header limits hold on every box

        self.slot = slot
        self.device = "cuda:0" if ray.get_gpu_ids() else "cpu"  # Ray shows the actor only its own GPU
        self.registry = make_registry()
        self.colours = ColourSpaces(colour_config)
        self._cancelled: set = set()
        self._steps: Dict[str, Tuple[int, int, int]] = {}  # render id -> its latest (frame, step, total)
        self._lock = threading.Lock()

    def info(self) -> Dict[str, Any]:
        import ray

        return {"pid": os.getpid(), "device": self.device, "node": ray.util.get_node_ip_address(),
                "max_frame_pixels": LIMITS.max_pixels}

    def cancel(self, render_id: str) -> None:
        with self._lock:
            self._cancelled.add(render_id)

    def latest_step(self, render_id: str) -> Optional[Tuple[int, int, int]]:
        """The (frame, step, total) the model last reported for the render's running chunk; None before any."""
        with self._lock:
            return self._steps.get(render_id)

    def run(self, model_name: str, requests: List[FrameRequest]) -> Iterator[Tuple[Any, ...]]:
        """Yields ("started", [frames]), then ("done", frame, bytes, seconds) / ("failed", frame, message,
        seconds) per frame, or ("cancelled", [frames]) for the frames a cancel stopped."""
        render_id = requests[0].render_id
        requests = [replace(r, device=self.device) for r in requests]
        try:
            model = self.registry.get(model_name)
        except ShotpassError as err:
            for r in requests:
                if not r.context:
                    yield ("failed", r.frame, f"worker {self.slot}: {err}", 0.0)
            return
        try:
            if isinstance(model, ClipModel):  # one progress for the whole clip, reported on its first frame
                first = next(r.frame for r in requests if not r.context)
                yield from self._run_clip(model, requests, self._progress_of(render_id, first))
            else:
                for r in requests:
                    if self._is_cancelled(render_id):
                        return
                    yield ("started", [r.frame])
                    yield self._run_one(model, r, self._progress_of(render_id, r.frame))
        finally:
            with self._lock:
                self._cancelled.discard(render_id)
                self._steps.pop(render_id, None)

    def _run_one(self, model: Model, request: FrameRequest, progress: Callable[[int, int], None]) -> Tuple[Any, ...]:
        started = time.perf_counter()
        try:
            out = run_frame(request, model, self.colours, progress)
        except RenderCancelled:
            return ("cancelled", [request.frame])
        except Exception as err:  # a model bug fails the frame, the actor stays up
            return ("failed", request.frame, _model_error(model, err, request.frame), time.perf_counter() - started)
        return ("done", request.frame, out, time.perf_counter() - started)

    def _run_clip(
        self, model: ClipModel, requests: List[FrameRequest], progress: Callable[[int, int], None]
    ) -> Iterator[Tuple[Any, ...]]:
        frames = [r.frame for r in requests if not r.context]  # context frames are read, never reported
        yield ("started", frames)
        started = time.perf_counter()
        try:
            outs = run_clip(requests, model, self.colours, progress)
        except RenderCancelled:
            yield ("cancelled", frames)
            return
        except Exception as err:
            seconds = time.perf_counter() - started
            for frame in frames:
                yield ("failed", frame, _model_error(model, err, frame), seconds / len(frames))
            return
        seconds = (time.perf_counter() - started) / len(frames)
        for frame, out in zip(frames, outs):
            yield ("done", frame, out, seconds)

    def _progress_of(self, render_id: str, frame: int) -> Progress:
        return Progress(functools.partial(self._progress, render_id, frame), functools.partial(self._check, render_id))

    def _progress(self, render_id: str, frame: int, step: int, total: int) -> None:
        with self._lock:
            self._steps[render_id] = (frame, step, total)
        self._check(render_id)

    def _check(self, render_id: str) -> None:
        if self._is_cancelled(render_id):
            raise RenderCancelled(f"render {render_id} was cancelled")

    def _is_cancelled(self, render_id: str) -> bool:
        with self._lock:
            return render_id in self._cancelled


class _StepPoller:
    """Fetches the actor's latest step without blocking the slot thread: one request in flight, at most one
    every POLL_SECONDS; a step is reported once, and only while its frame is still running."""

    def __init__(self, actor: Any, render_id: str) -> None:
        self._actor = actor
        self._render_id = render_id
        self._pending: Any = None
        self._asked = 0.0
        self._last: Optional[Tuple[int, int, int]] = None
        self._broken = False

    def poll(self, ray: Any, running: List[int], hooks: ChunkHooks) -> None:
        if self._broken:
            return
        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return
            try:
                latest = ray.get(self._pending)
            except Exception as err:  # the actor died: the chunk's stream reports that, progress just stops
                log.debug("step poll: %s", err)
                self._broken = True
                return
            self._pending = None
            if latest is not None and latest != self._last and latest[0] in running:
                self._last = latest
                hooks.step(*latest)
        now = time.monotonic()
        if now - self._asked >= POLL_SECONDS:
            self._asked = now
            self._pending = self._actor.latest_step.remote(self._render_id)


def _model_error(model: Model, err: Exception, frame: int) -> str:
    if isinstance(err, ShotpassError):
        return str(err)
    log.error("%s frame %s:\n%s", model.name, frame, traceback.format_exc())
    return f"internal error in {model.name}: {err}"


class RayExecutor:
    """Connects to Ray, owns the actors (one per slot) and runs chunks on them for the scheduler."""

    def __init__(
        self,
        address: str,
        cpu_workers: int,
        make_registry: RegistryFactory,
        colour_config: str,
        max_frame_attempts: int = 3,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidInput(
                "the ray executor needs Ray on the server and every worker box: pip install 'shotpass[ray]'"
            ) from None
        self._ray = ray
        self.address = address
        self.max_frame_attempts = max(1, max_frame_attempts)
        self._make_registry = make_registry
        self._colour_config = colour_config
        self._env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
        self._actor_class = ray.remote(FrameWorker)
        self._owns_ray = self._connect(address, cpu_workers)
        gpus = self.cluster_gpus()
        # One actor per GPU; a cluster without GPUs gets `cpu_workers` one-CPU actors.
        count = gpus or max(1, cpu_workers)
        self.slots: List[str] = []
        self._resources: Dict[str, Dict[str, float]] = {}  # slot -> what its actor asks Ray for
        self._actors: Dict[str, Any] = {}
        self._lock = threading.Lock()
        self._deaths: Dict[Tuple[str, int], int] = {}  # (render, frame) -> workers it was running on that died
        self._stopping = False
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self.on_new_slot: Callable[[str], Any] = lambda slot: None  # the server: scheduler.add_device
        self._rescan_stop = threading.Event()
        self._rescan_thread: Optional[threading.Thread] = None
        for _ in range(count):
            self._add_slot(GPU_ACTOR if gpus else CPU_ACTOR)
        log.info("ray executor: %d %s actor(s) on the cluster at %s", count, "GPU" if gpus else "CPU",
                 address or "(default)")

    def _connect(self, address: str, cpu_workers: int) -> bool:
        """Joins the cluster at ``address`` ("local": start one here); True when this process started Ray."""
        ray = self._ray
        if ray.is_initialized():
            return False  # an embedding program (or a test) already connected this process
        try:
            if address == "local":
                ray.init(address="local", num_cpus=max(cpu_workers, os.cpu_count() or 1), include_dashboard=False)
            else:
                ray.init(address=address or None, include_dashboard=False)
        except ConnectionError as err:
            raise InvalidInput(
                f"cannot reach a Ray cluster at {address or 'the default address'} ({err}); start one with "
                "`ray start --head` on this box, or use --ray-address local for a single box"
            ) from None
        return True

    def _new_actor(self, slot: str) -> Any:
        # Restarts are ours (a fresh actor per death), so a frame that kills its worker is counted.
        return self._actor_class.options(max_concurrency=2, max_restarts=0, **self._resources[slot]).remote(
            slot, self._make_registry, self._colour_config, self._env, LIMITS.max_pixels
        )

    def _add_slot(self, resources: Dict[str, float]) -> str:
        """A new slot and its actor ("" once stopping: stop() must see every actor it has to end)."""
        with self._lock:
            if self._stopping:
                return ""
            slot = f"{SLOT_PREFIX}{len(self.slots)}"
            self._resources[slot] = resources
            self._actors[slot] = self._new_actor(slot)
            self.slots.append(slot)
        return slot

    # ------------------------------------------------------------ GPUs that join later

    def set_registry_factory(self, make_registry: RegistryFactory) -> None:
        """After a model registry reload: actors started from now on build their models from this factory
        (running actors keep the registry they were started with until they restart)."""
        self._make_registry = make_registry

    def cluster_gpus(self) -> int:
        return int(self._ray.cluster_resources().get("GPU", 0))

    def gpu_slots(self) -> int:
        with self._lock:
            return sum(1 for r in self._resources.values() if r.get("num_gpus"))

    def add_slot(self, gpu: bool = True) -> str:
        """Start one more actor (one GPU, or one CPU) and announce its slot to ``on_new_slot``."""
        slot = self._add_slot(GPU_ACTOR if gpu else CPU_ACTOR)
        if not slot:
            return ""
        log.info("ray executor: new %s worker %s", "GPU" if gpu else "CPU", slot)
        self.on_new_slot(slot)
        return slot

    def rescan(self) -> List[str]:
        """One GPU slot per cluster GPU that has none yet (a box joined): the new slots."""
        added = [self.add_slot(gpu=True) for _ in range(gpu_slots_to_add(self.cluster_gpus(), self.gpu_slots()))]
        return [slot for slot in added if slot]

    def start_rescan(self, every_s: float) -> None:
        """Rescan the cluster every ``every_s`` seconds until stop() (0: never)."""
        if every_s <= 0 or self._rescan_thread is not None:
            return

        def loop() -> None:
            while not self._rescan_stop.wait(every_s):
                try:
                    self.rescan()
                except Exception as err:  # the cluster head is unreachable for a moment: try again next time
                    log.warning("ray executor: cannot rescan the cluster for new GPUs: %s", err)

        self._rescan_thread = threading.Thread(target=loop, name="shotpass-ray-rescan", daemon=True)
        self._rescan_thread.start()

    def _actor(self, slot: str) -> Any:
        with self._lock:
            return self._actors[slot]

    def info(self, slot: str, timeout: float = 60.0) -> Dict[str, Any]:
        """The slot's actor: pid, device and node address (waits until it is up)."""
        return self._ray.get(self._actor(slot).info.remote(), timeout=timeout)

    # ------------------------------------------------------------ chunks

    def run_chunk(self, slot: str, model_name: str, requests: List[FrameRequest], hooks: ChunkHooks) -> None:
        """Run consecutive frames on the slot's actor; results, failures and requeues go through ``hooks``."""
        ray = self._ray
        with self._lock:
            if self._stopping:
                return
            self._busy += 1
            actor = self._actors[slot]
        render_id = requests[0].render_id
        running: List[int] = []  # started on the actor, no result yet
        settled: List[int] = []  # finished, failed or handed back
        cancel_sent = False
        steps = _StepPoller(actor, render_id)
        try:
            stream = actor.run.remote(model_name, requests)
            while True:
                ready, _ = ray.wait([stream], timeout=POLL_SECONDS)
                if self._stopping:
                    return  # frames left running are picked up again when the server starts next
                if not cancel_sent and hooks.cancelled():
                    actor.cancel.remote(render_id)
                    cancel_sent = True
                steps.poll(ray, running, hooks)
                if not ready:
                    continue
                try:
                    message = ray.get(next(stream))
                except StopIteration:
                    break
                self._report(message, running, settled, hooks)
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as err:
            if not self._stopping:
                # Frames run in order: with none known to be running (it died before saying so, or before it
                # could start at all), the first unsettled frame is the one it was on; it carries the attempt,
                # so a worker that cannot start is not retried forever.
                victims = running or [r.frame for r in requests if not r.context and r.frame not in settled][:1]
                if victims and not running:
                    hooks.started(victims)  # its "started" never arrived: count the attempt it had
                self._worker_died(slot, actor, render_id, victims, err, hooks)
        except ray.exceptions.RayTaskError as err:  # a bug in the actor itself, not in a model
            log.error("worker %s failed:\n%s", slot, err)
            for r in requests:
                if not r.context and r.frame not in settled:
                    hooks.failed(r.frame, f"internal error on worker {slot}: {err.cause!r}", 0.0)
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    def _report(self, message: Tuple[Any, ...], running: List[int], settled: List[int], hooks: ChunkHooks) -> None:
        kind = message[0]
        if kind == "started":
            running.extend(message[1])
            hooks.started(message[1])
            return
        frames = message[1] if kind == "cancelled" else [message[1]]
        for frame in frames:
            if frame in running:
                running.remove(frame)
            settled.append(frame)
        if kind == "done":
            hooks.finished(message[1], message[2], message[3])
        elif kind == "failed":
            hooks.failed(message[1], message[2], message[3])
        elif kind == "cancelled":
            for frame in message[1]:
                hooks.requeued(frame)

    def _worker_died(
        self, slot: str, actor: Any, render_id: str, running: List[int], err: Exception, hooks: ChunkHooks
    ) -> None:
        reason = death_reason(err)
        with self._lock:
            if self._actors[slot] is actor:  # the next chunk on this slot gets a fresh actor
                self._actors[slot] = self._new_actor(slot)
        log.warning("worker %s died while rendering %s frame(s) %s: %s", slot, render_id, running, reason)
        for frame in running:
            key = (render_id, frame)
            self._deaths[key] = deaths = self._deaths.get(key, 0) + 1
            if deaths >= self.max_frame_attempts:
                hooks.failed(frame, f"worker died {deaths} times while rendering frame {frame}: {reason}; its log "
                             "on the Ray node says why (`ray logs`, or /tmp/ray/session_latest/logs there)", 0.0)
            else:
                hooks.requeued(frame)
                hooks.warning(
                    f"worker {slot} died while rendering frame {frame} (attempt {deaths} of "
                    f"{self.max_frame_attempts}); frame requeued: {reason}"
                )

    # ------------------------------------------------------------ lifecycle

    def stop(self, timeout: float = 10.0) -> None:
        """Stop handing out work, let waiting chunks return, end the actors (and Ray, if it was started here)."""
        ray = self._ray
        self._rescan_stop.set()
        if self._rescan_thread is not None:
            self._rescan_thread.join(timeout)
        with self._lock:
            self._stopping = True
            actors = list(self._actors.values())
            self._idle.wait_for(lambda: self._busy == 0, timeout)
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as err:  # already gone: nothing to end
                log.debug("ray.kill: %s", err)
        if self._owns_ray:
            ray.shutdown()


def death_reason(err: Exception) -> str:
    """One line from Ray's long actor-death text: what happened and, when Ray knows, how the process exited."""
    text = str(err).strip()
    first = text.splitlines()[0].rstrip(".") if text else type(err).__name__
    detail = ""
    marker = "Worker exit detail:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().split(". ")[0].rstrip(".")
    return f"{first} ({detail})" if detail else first
