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

from .accounts import Accounts
from .blobs import BlobStore
from .catalog import Catalog
from .config import ServerConfig
from .errors import InvalidInput
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
        cfg.check_tls()
        self.catalog = Catalog(data_dir / "catalog.sqlite")
        self.accounts = Accounts(data_dir / "catalog.sqlite")  # after the catalog: it reads the catalog's tables
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
            cfg.max_queued_renders,
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
        pb_grpc.add_ShotPassServicer_to_server(ShotPassService(self.manager, self.devices, self.accounts), server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection((SERVICE_NAME, reflection.SERVICE_NAME, health.SERVICE_NAME), server)
        credentials = self._tls_credentials()
        if credentials is None:
            self.port = server.add_insecure_port(self.cfg.listen)
        else:
            self.port = server.add_secure_port(self.cfg.listen, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.cfg.listen} (address in use or not allowed)")
        self.manager.start()
        server.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._grpc = server
        log.info("serving on %s (devices: %s, data: %s, tls: %s, users: %s)", self.address, ", ".join(self.devices),
                 self.cfg.data_dir, self.tls_mode, "yes" if self.accounts.has_users() else "none (single-user)")
        return self.port

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

    def stop(self, grace: float = 2.0) -> None:
        self.health.enter_graceful_shutdown()
        if self._grpc is not None:
            self._grpc.stop(grace).wait()
        self.manager.stop()
        self.accounts.close()
        self.catalog.close()
