"""Assembles a running server: store, catalog, models, scheduler, gRPC with health and reflection."""

from __future__ import annotations

import logging
import os
import ssl
from concurrent import futures
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shotpass_client.proto import shotpass_pb2 as pb

from .accounts import Accounts
from .blob_gc import periodic_gc
from .blobs import BlobStore
from .catalog import QUEUED, Catalog
from .config import ServerConfig
from .dataplane import DataPlane, listen_address
from .errors import InvalidInput
from .frames.colour import ColourSpaces
from .frames.exr import set_decode_budget, set_max_frame_pixels
from .metrics import Metrics, RpcObserver
from .passes.registry import ModelRegistry
from .quotas import Quotas
from .ray_executor import RayExecutor, specs_factory
from .renders import RenderManager
from .service import MAX_CHUNK_BYTES, MAX_REQUEST_BYTES, ShotPassService, add_to_server
from .streams import StreamLimiter

log = logging.getLogger("shotpass")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ShotPass"].full_name


def devices(workers: int) -> List[str]:
    """One worker per visible GPU when torch sees CUDA, else `workers` CPU workers."""
    try:
        import torch  # optional: the starter passes need no torch

        if torch.cuda.is_available():
            return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return ["cpu"] if workers <= 1 else [f"cpu:{i}" for i in range(workers)]


def _registry(cfg: ServerConfig) -> ModelRegistry:
    if not cfg.models:
        return ModelRegistry()
    from .model_config import registry_for

    return registry_for(cfg.models)


def _ray_executor(cfg: ServerConfig, worker_registry: Optional[Callable[[], ModelRegistry]]) -> RayExecutor:
    """Connect to the Ray cluster and start one actor per GPU there (or `ray_workers` CPU actors)."""
    cfg.check_executor()
    return RayExecutor(
        cfg.ray_address,
        cfg.ray_workers,
        worker_registry or specs_factory(cfg.models),
        cfg.colour_config,
        cfg.max_frame_attempts,
    )


def connection_options(cfg: ServerConfig) -> List[Tuple[str, int]]:
    """Keepalive pings find dead clients (their streams end and free a thread); idle connections close."""
    options = [
        ("grpc.keepalive_time_ms", int(cfg.keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
        # Clients may ping too (the shotpass client does, every 30 s), but not more often than every 10 s.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_ping_strikes", 2),
    ]
    if cfg.keepalive_s <= 0:
        options = options[2:]
    if cfg.max_connection_idle_s > 0:
        options.append(("grpc.max_connection_idle_ms", int(cfg.max_connection_idle_s * 1000)))
    return options


def _drop_loaded_pipelines() -> None:
    try:
        from .passes.diffusion.common import PIPELINES
    except ImportError:  # no diffusion extra installed: nothing was loaded
        return
    PIPELINES.clear()


class ShotpassServer:
    def __init__(
        self,
        cfg: ServerConfig,
        registry: Optional[ModelRegistry] = None,
        worker_registry: Optional[Callable[[], ModelRegistry]] = None,
    ) -> None:
        """``worker_registry``: with the Ray executor, a picklable factory each actor calls to build its models
        (default: the starter models plus ``cfg.models``); pass one together with a custom ``registry``."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing leaves the box
        self.cfg = cfg
        data_dir = Path(cfg.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        cfg.check_tls()
        set_max_frame_pixels(cfg.max_frame_pixels)  # process-wide: every decode_exr checks headers against it
        set_decode_budget(cfg.max_decode_bytes)
        self.catalog = Catalog(data_dir / "catalog.sqlite")
        self.accounts = Accounts(data_dir / "catalog.sqlite")  # after the catalog: it reads the catalog's tables
        self.blobs = BlobStore(data_dir / "blobs", cfg.max_store_bytes, cfg.partial_upload_retention_hours * 3600)
        self.blob_gc = periodic_gc(self.blobs, self.catalog, cfg)  # None unless [server] blob_gc_interval_hours
        self.executor = _ray_executor(cfg, worker_registry) if cfg.executor == "ray" else None
        # One list shared by the scheduler and GetServerInfo: a slot added at runtime shows in both.
        self.devices = list(self.executor.slots) if self.executor else devices(cfg.workers)
        self.manager = RenderManager(
            self.catalog,
            self.blobs,
            registry or _registry(cfg),
            ColourSpaces(cfg.colour_config),
            self.devices,
            cfg.chunk_frames,
            cfg.path_roots,
            quotas=Quotas(cfg.max_queued_renders, cfg.max_queued_per_user, cfg.max_frames_per_user),
            project_roots=cfg.project_roots,
        )
        self.manager.executor = self.executor
        self.manager.pipeline_depth = max(0, cfg.pipeline_depth)
        if self.executor is not None:  # GPU boxes that join the cluster later become worker slots
            self.executor.on_new_slot = self.manager.scheduler.add_device
        self.health = health.HealthServicer()
        self.ready = False  # health says SERVING only while this is set (see start and stop)
        self.starting = True  # until start() passed its readiness checks: ShotPass calls get UNAVAILABLE
        # Run by start() before SERVING; each raises with a message that says what to fix. Sites may add their own.
        self.readiness_checks: List[Callable[[], None]] = [self._check_store, self._check_models,
                                                           self._check_working_spaces]
        self.metrics = Metrics(self._render_labels)
        self.metrics.watch_live_state(self.manager.scheduler.queue_depth, lambda: self.ready and self.catalog.writable)
        self.manager.metrics = self.metrics
        self.metrics_address = ""
        self.web: Optional[Any] = None  # web.app.WebServer while [web] listen is set
        self.streams = StreamLimiter(cfg.max_open_streams, cfg.max_streams_per_user)
        self._grpc: Optional[grpc.Server] = None
        self.data_plane: Optional[DataPlane] = None
        self.port = 0

    def start(self) -> int:
        cfg = self.cfg
        # Long calls are capped below the pool size (streams.py), so rpc_threads always serve short calls.
        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=cfg.max_open_streams + cfg.rpc_threads, thread_name_prefix="shotpass-rpc"
            ),
            options=[
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", MAX_CHUNK_BYTES + (1 << 20)),
                *connection_options(cfg),
            ],
            interceptors=[RpcObserver(self.metrics, lambda: self.starting, SERVICE_NAME)],
        )
        service = ShotPassService(self.manager, self.devices, self.accounts, self.streams,
                                  reload_models=self.reload_models)
        service.starting = lambda: self.starting
        add_to_server(service, server)  # non-UTF-8: INVALID_ARGUMENT
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
        credentials = self._tls_credentials()
        if credentials is None:
            self.port = server.add_insecure_port(self.cfg.listen)
        else:
            self.port = server.add_secure_port(self.cfg.listen, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.cfg.listen} (address in use or not allowed)")
        # Listening but NOT_SERVING (ShotPass calls get UNAVAILABLE) until every readiness check passed.
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        server.start()
        self._grpc = server
        try:
            if self.cfg.metrics_listen:
                self.metrics_address = self.metrics.serve(self.cfg.metrics_listen)
            if self.cfg.web_listen:
                from .web.app import WebServer  # only servers with review pages import the ASGI stack

                self.web = WebServer(self)
                self.web.start(self.cfg.web_listen)
            for check in self.readiness_checks:
                check()
            self._start_data_plane(service)
        except BaseException:
            server.stop(0)
            self.metrics.close()
            if self.web is not None:
                self.web.stop()
            if self.data_plane is not None:
                self.data_plane.stop()
            raise
        self.manager.start()
        if self.executor is not None:
            self.executor.start_rescan(self.cfg.ray_rescan_s)
        if self.blob_gc is not None:
            self.blob_gc.start()
        self.ready, self.starting = True, False
        self.catalog.on_writable = lambda writable: self._set_health()
        self._set_health()
        log.info("serving on %s (devices: %s, data: %s, tls: %s, users: %s)", self.address, ", ".join(self.devices),
                 self.cfg.data_dir, self.tls_mode, "yes" if self.accounts.has_users() else "none (single-user)")
        return self.port

    def _set_health(self) -> None:
        """SERVING while ready and the catalog can write: a server that cannot record work is drained."""
        if self.ready:
            serving = self.catalog.writable
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            for name in ("", SERVICE_NAME):
                self.health.set(name, status)

    def _start_data_plane(self, service: ShotPassService) -> None:
        listen = listen_address(self.cfg.data_plane, self.cfg.listen)
        if listen is None:
            return
        context = self._tls_context()
        self.data_plane = DataPlane(service, context)
        try:
            port = self.data_plane.start(listen)
        except OSError as err:
            raise OSError(f"cannot listen on {listen} for the data plane ([server] data_plane): {err}") from None
        service.data_plane_info = {"data_plane_port": port, "data_plane_tls": context is not None}
        log.info("data plane on port %d (%s)", port, "https" if context else "http")

    def _tls_context(self) -> Optional[ssl.SSLContext]:
        """The gRPC port's certificate (and client CA) for the data plane's HTTPS."""
        cfg = self.cfg
        if not cfg.tls_cert or not cfg.tls_key:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key))
        if cfg.tls_client_ca:
            context.load_verify_locations(str(cfg.tls_client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def tls_mode(self) -> str:
        return "mutual" if self.cfg.tls_client_ca else "on" if self.cfg.tls_cert else "off"

    def _tls_credentials(self) -> Optional[grpc.ServerCredentials]:
        cfg = self.cfg
        if not cfg.tls_cert or not cfg.tls_key:
            return None
        try:
            key, cert = Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes()
            client_ca = Path(cfg.tls_client_ca).read_bytes() if cfg.tls_client_ca else None
        except OSError as err:
            raise InvalidInput(f"cannot read a TLS file: {err.filename}: {err.strerror}") from None
        # With a client CA every client must present a certificate it signed (mutual TLS).
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    @property
    def address(self) -> str:
        host = self.cfg.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def wait(self) -> None:
        assert self._grpc is not None
        self._grpc.wait_for_termination()

    def stop(self, grace: float = 2.0, work_grace: Optional[float] = None) -> None:
        """Graceful: NOT_SERVING first; no new work; the running step gets `work_grace` seconds (default
        [server] shutdown_grace_s) to finish, else it is cancelled and its frames resume at the next start.
        gRPC keeps answering meanwhile (watchers see the last frames, submits are refused), then gets `grace`."""
        self.ready = False
        self.manager.stop_accepting()  # from here every submit is refused with UNAVAILABLE, none half-accepted
        self.catalog.on_writable = lambda writable: None
        self.health.enter_graceful_shutdown()  # NOT_SERVING from here on, so balancers drain this server
        self.manager.scheduler.stop(self.cfg.shutdown_grace_s if work_grace is None else work_grace)
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        if self.web is not None:  # before the catalog closes: its pages and event streams read it
            self.web.stop()
        if self.data_plane is not None:
            self.data_plane.stop()
        self.manager.stop()  # the scheduler is stopped already: this only lets the manager release the rest
        if self.executor is not None:  # after the scheduler: its graceful stop may still cancel remote chunks
            self.executor.stop()
        if self.blob_gc is not None:  # before the catalog closes: a run in progress still reads it
            self.blob_gc.stop()
        self.accounts.close()
        self.catalog.close()
        self.metrics.close()

    def _check_store(self) -> None:
        """The catalog answers and the blob store takes files: renders can be recorded and stored."""
        self.catalog.render_ids_in_state(QUEUED)
        if not os.access(self.blobs.tmp_dir, os.W_OK):
            raise InvalidInput(f"blob store {self.blobs.root} is not writable by this user: fix its permissions")

    def _check_models(self) -> None:
        """Say which configured models cannot serve (probed when the config was read): the others still do."""
        for spec in self.cfg.models:
            if spec.unavailable:
                log.warning("model %s is unavailable: %s", spec.name, spec.unavailable)

    def reload_models(self) -> ModelRegistry:
        """Re-read the config file's [models], probe every folder and swap the registry in.

        Queued and running renders stay: they name their model, which each chunk looks up afresh (a frame
        already running finishes on the model it started with). A config that does not parse keeps the old
        registry and says why. Pipelines loaded from the old entries are dropped, so changed weights load anew.
        """
        from .model_config import models_from_file, registry_for
        from .ray_executor import specs_factory

        if self.cfg.config_path is None:
            raise InvalidInput("this server was started without --config: there is no model registry to reload")
        specs = models_from_file(self.cfg.config_path)
        registry = registry_for(specs)
        self.cfg.models = specs
        self.manager.registry = registry
        if self.executor is not None:  # actors started from now on build the new registry
            self.executor.set_registry_factory(specs_factory(specs))
        _drop_loaded_pipelines()
        bad = [s.name for s in specs if s.unavailable]
        log.info("model registry reloaded from %s: %d models%s", self.cfg.config_path, len(specs),
                 f" ({len(bad)} unavailable: {', '.join(bad)})" if bad else "")
        return registry

    def _check_working_spaces(self) -> None:
        """The colour config ($OCIO, say) has every space a model works in, or frames would fail one by one."""
        colours = self.manager.colours
        for model in self.manager.registry.all():
            if model.working_space:
                try:
                    colours.check(model.working_space)
                except InvalidInput:
                    raise InvalidInput(
                        f"the colour config {colours.config_name!r} has no colour space {model.working_space!r} "
                        f"(model {model.name} works in it); add it (or an alias such as srgb_tx) to the config, "
                        "or use another config ($OCIO, [colour] config)"
                    ) from None

    def _render_labels(self, render_id: str) -> Tuple[str, str]:
        settings = self.catalog.get_render(render_id, with_frames=False).settings
        return str(settings.get("pass_name", "")), str(settings.get("model", ""))
