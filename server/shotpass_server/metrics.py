"""Prometheus metrics on the server's own registry, served over HTTP when `[server] metrics_listen` is set.

Queue depth and GPU memory are read at scrape time (no thread polls them); frame and step figures are
recorded by one-line calls from the render manager; RPC outcomes by a gRPC server interceptor.
frames/s is `rate(shotpass_frames_finished_total[1m])`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, Tuple

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .errors import InvalidInput

log = logging.getLogger("shotpass.metrics")

# Steps of a diffusion model take 0.05-5 s; a whole frame up to minutes on a CPU.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FRAME_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
ProgressFn = Callable[[int, int], None]


class _LiveState(Collector):
    """Gauges computed when scraped: queue depth per lane, readiness, and CUDA memory per device."""

    def __init__(self, queue_depth: Callable[[], Dict[str, int]], ready: Callable[[], bool]) -> None:
        self._queue_depth = queue_depth
        self._ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("shotpass_queue_depth", "Renders waiting in each lane", labels=["lane"])
        for lane, n in self._queue_depth().items():
            depth.add_metric([lane], n)
        yield depth
        yield GaugeMetricFamily("shotpass_ready", "1 when the server reports SERVING", value=int(self._ready()))
        yield from _gpu_memory()


def _gpu_memory() -> Iterator[GaugeMetricFamily]:
    # Only when this process already uses torch: importing it for a scrape would take seconds.
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return
    allocated = GaugeMetricFamily("shotpass_gpu_memory_allocated_bytes", "CUDA memory held by tensors",
                                  labels=["device"])
    reserved = GaugeMetricFamily("shotpass_gpu_memory_reserved_bytes", "CUDA memory reserved by the caching "
                                 "allocator", labels=["device"])
    for i in range(torch.cuda.device_count()):
        allocated.add_metric([f"cuda:{i}"], torch.cuda.memory_allocated(i))
        reserved.add_metric([f"cuda:{i}"], torch.cuda.memory_reserved(i))
    yield allocated
    yield reserved


class NoMetrics:
    """What a RenderManager holds until a server attaches its Metrics (managers built alone record nothing)."""

    def frame_finished(self, render_id: str, frame: int, seconds: float) -> None:
        pass

    def frame_failed(self, render_id: str, frame: int, message: str) -> None:
        pass

    def data_plane_request(self, method: str, status: int, nbytes: int) -> None:
        pass

    def timed_steps(self, render_id: str, progress: ProgressFn) -> ProgressFn:
        return progress


NO_METRICS = NoMetrics()


class Metrics(NoMetrics):
    """All of a server's metrics. `render_labels` maps a render id to its (pass, model) labels."""

    def __init__(self, render_labels: Callable[[str], Tuple[str, str]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_finished = Counter("shotpass_frames_finished", "Frames rendered and stored", ["pass", "model"],
                                       registry=r)
        self.frames_failed = Counter("shotpass_frames_failed", "Frames that failed", ["pass", "model"], registry=r)
        self.frame_seconds = Histogram("shotpass_frame_seconds", "Seconds to render one frame",
                                       ["pass", "model"], buckets=FRAME_BUCKETS, registry=r)
        self.step_seconds = Histogram("shotpass_step_seconds", "Seconds between a model's progress steps",
                                      ["pass", "model"], buckets=STEP_BUCKETS, registry=r)
        self.rpcs = Counter("shotpass_rpcs", "RPCs answered, by method and gRPC status code",
                            ["service", "method", "code"], registry=r)
        self.data_plane = Counter("shotpass_data_plane_requests", "Data plane requests answered, by method and "
                                  "HTTP status", ["method", "status"], registry=r)
        self.data_plane_bytes = Counter("shotpass_data_plane_bytes", "Blob bytes moved over the data plane",
                                        ["method"], registry=r)
        self._render_labels = render_labels
        self._labels: OrderedDict[str, Tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._http: Any = None
        self._events = logging.getLogger("shotpass.renders")

    def watch_live_state(self, queue_depth: Callable[[], Dict[str, int]], ready: Callable[[], bool]) -> None:
        self.registry.register(_LiveState(queue_depth, ready))

    # ------------------------------------------------------------ render hooks (from RenderManager)

    def labels(self, render_id: str) -> Tuple[str, str]:
        with self._lock:
            if render_id in self._labels:
                return self._labels[render_id]
        try:
            found = self._render_labels(render_id)
        except Exception:  # a metric must never fail a frame
            found = ("unknown", "unknown")
        with self._lock:
            self._labels[render_id] = found
            while len(self._labels) > 1024:
                self._labels.popitem(last=False)
        return found

    def frame_finished(self, render_id: str, frame: int, seconds: float) -> None:
        labels = self.labels(render_id)
        self.frames_finished.labels(*labels).inc()
        self.frame_seconds.labels(*labels).observe(seconds)
        self._events.info("frame %d done in %.2fs", frame, seconds,
                          extra={"render_id": render_id, "frame": frame, "seconds": round(seconds, 4)})

    def data_plane_request(self, method: str, status: int, nbytes: int) -> None:
        self.data_plane.labels(method, str(status)).inc()
        if nbytes:
            self.data_plane_bytes.labels(method).inc(nbytes)

    def frame_failed(self, render_id: str, frame: int, message: str) -> None:
        self.frames_failed.labels(*self.labels(render_id)).inc()
        self._events.warning("frame %d failed: %s", frame, message, extra={"render_id": render_id, "frame": frame})

    def timed_steps(self, render_id: str, progress: ProgressFn) -> ProgressFn:
        """Wrap a step callback so the time between steps lands in the step histogram.

        Models call progress(0, total) when they start and (i, total) after step i; step 0 restarts the clock.
        """
        histogram = self.step_seconds.labels(*self.labels(render_id))
        last = [time.perf_counter()]

        def timed(step: int, total: int) -> None:
            now = time.perf_counter()
            if step > 0:
                histogram.observe(now - last[0])
            last[0] = now
            progress(step, total)

        return timed

    # ------------------------------------------------------------ HTTP endpoint

    def serve(self, listen: str) -> str:
        """Serve /metrics on HOST:PORT (port 0 picks one); returns the address actually bound."""
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit():
            raise InvalidInput(f"metrics_listen {listen!r}: write it as HOST:PORT, e.g. 127.0.0.1:9464")
        try:
            self._http, _thread = start_http_server(int(port), host.strip("[]") or "0.0.0.0", registry=self.registry)
        except OSError as err:
            raise InvalidInput(f"metrics_listen {listen}: cannot listen ({err.strerror})") from None
        return f"{host}:{self._http.server_port}"

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class RpcObserver(grpc.ServerInterceptor):
    """Counts every RPC by its final status code, logs refusals, and answers UNAVAILABLE while starting.

    Health and reflection stay open while the server starts, so probes can watch it become ready.
    """

    def __init__(self, metrics: Metrics, starting: Callable[[], bool], gated_service: str) -> None:
        self.metrics = metrics
        self.starting = starting
        self.gated = f"/{gated_service}/"
        self.log = logging.getLogger("shotpass.rpc")

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, _, method = details.method.lstrip("/").partition("/")
        gated = details.method.startswith(self.gated)
        kind = ("stream" if handler.request_streaming else "unary") + "_" + (
            "stream" if handler.response_streaming else "unary")
        behavior = getattr(handler, kind)
        wrap = self._wrap_stream if handler.response_streaming else self._wrap_unary
        wrapped = wrap(behavior, service, method, gated)
        factory = getattr(grpc, f"{kind}_rpc_method_handler")
        return factory(wrapped, handler.request_deserializer, handler.response_serializer)

    def _refuse_if_starting(self, context: grpc.ServicerContext, gated: bool) -> None:
        if gated and self.starting():
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          "the shotpass server is starting (opening its store and checking models); retry shortly")

    def _wrap_unary(self, behavior: Callable, service: str, method: str, gated: bool) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                self._refuse_if_starting(context, gated)
                response = behavior(request, context)
            except BaseException:
                self._done(service, method, context, request, None, failed=True)
                raise
            self._done(service, method, context, request, response, failed=False)
            return response

        return call

    def _wrap_stream(self, behavior: Callable, service: str, method: str, gated: bool) -> Callable:
        def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                self._refuse_if_starting(context, gated)
                yield from behavior(request, context)
            except GeneratorExit:  # the client went away mid-stream
                self._count(service, method, "CANCELLED")
                raise
            except BaseException:
                self._done(service, method, context, request, None, failed=True)
                raise
            self._done(service, method, context, request, None, failed=False)

        return call

    def _count(self, service: str, method: str, code: str) -> None:
        self.metrics.rpcs.labels(service, method, code).inc()

    def _done(self, service: str, method: str, context: Any, request: Any, response: Any, failed: bool) -> None:
        status = context.code() if hasattr(context, "code") else None
        code = status.name if isinstance(status, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
        self._count(service, method, code)
        render_id = _render_id(request, response)
        extra = {"render_id": render_id} if render_id else {}
        if code != "OK":
            details = context.details() if hasattr(context, "details") else ""
            if isinstance(details, bytes):
                details = details.decode("utf-8", "replace")
            self.log.info("%s refused: %s: %s", method, code, details or "", extra=extra)
        elif method == "SubmitRender" and render_id:
            self.log.info("render queued", extra=extra)


def _render_id(request: Any, response: Any) -> str:
    """The render an RPC is about, when its request or answer names one."""
    for message, field in ((request, "render_id"), (getattr(response, "render", None), "id")):
        value = getattr(message, field, "") if message is not None and not hasattr(message, "__next__") else ""
        if isinstance(value, str) and value:
            return value
    return ""
