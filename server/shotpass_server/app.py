"""Assembles a running server: store, catalog, models, scheduler, gRPC with health and reflection."""

from __future__ import annotations

import logging
import os
from concurrent import futures
from pathlib import Path
from typing import List, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from shotpass_client.proto import shotpass_pb2 as pb
from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

from .blobs import BlobStore
from .catalog import Catalog
from .config import ServerConfig
from .frames.colour import ColourSpaces
from .passes.registry import ModelRegistry
from .renders import RenderManager
from .service import MAX_CHUNK_BYTES, ShotPassService

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


class ShotpassServer:
    def __init__(self, cfg: ServerConfig, registry: Optional[ModelRegistry] = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing leaves the box
        self.cfg = cfg
        data_dir = Path(cfg.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.catalog = Catalog(data_dir / "catalog.sqlite")
        self.blobs = BlobStore(data_dir / "blobs")
        self.devices = devices(cfg.workers)
        self.manager = RenderManager(
            self.catalog,
            self.blobs,
            registry or _registry(cfg),
            ColourSpaces(cfg.colour_config),
            self.devices,
            cfg.chunk_frames,
            cfg.path_roots,
        )
        self.health = health.HealthServicer()
        self._grpc: Optional[grpc.Server] = None
        self.port = 0

    def start(self) -> int:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=32, thread_name_prefix="shotpass-rpc"),
            options=[
                ("grpc.max_receive_message_length", MAX_CHUNK_BYTES + (1 << 20)),
                ("grpc.max_send_message_length", MAX_CHUNK_BYTES + (1 << 20)),
            ],
        )
        pb_grpc.add_ShotPassServicer_to_server(ShotPassService(self.manager, self.devices), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
        self.port = server.add_insecure_port(self.cfg.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.cfg.listen} (address in use or not allowed)")
        self.manager.start()
        server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._grpc = server
        log.info("serving on %s (devices: %s, data: %s)", self.address, ", ".join(self.devices), self.cfg.data_dir)
        return self.port

    @property
    def address(self) -> str:
        host = self.cfg.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def wait(self) -> None:
        assert self._grpc is not None
        self._grpc.wait_for_termination()

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        self.manager.stop()
        self.catalog.close()
