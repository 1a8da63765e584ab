"""Server settings: defaults, overridden by a TOML file, overridden by command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import tomllib

from .errors import InvalidInput


@dataclass
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("shotpass-data")
    workers: int = 1  # CPU workers; each GPU gets one worker of its own
    chunk_frames: int = 4
    # Renders waiting or running at once (previews excepted); past it SubmitRender says RESOURCE_EXHAUSTED.
    max_queued_renders: int = 1000
    colour_config: str = "ocio://cg-config-latest"
    path_roots: List[Path] = field(default_factory=list)
    threads: Optional[int] = None  # per-model CPU threads (None: the runtime's default)
    models: List[Any] = field(default_factory=list)  # model_config.ModelSpec, from [models.NAME] tables
    # [tls]: a server certificate and key turn TLS on; a client CA also demands client certificates (mutual TLS).
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    tls_client_ca: Optional[Path] = None

    def check_tls(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidInput("TLS needs both a certificate and its key ([tls] cert and key, or --tls-cert/--tls-key)")
        if self.tls_client_ca and not self.tls_cert:
            raise InvalidInput("mutual TLS (client_ca) needs the server's own certificate and key too")


def load_config(path: Optional[Path]) -> ServerConfig:
    cfg = ServerConfig()
    if path is None:
        return cfg
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(f"{path}: not valid TOML ({err})") from None
    server = data.get("server", {})
    cfg.listen = str(server.get("listen", cfg.listen))
    if "data_dir" in server:
        cfg.data_dir = (Path(path).parent / os.path.expanduser(server["data_dir"])).resolve()
    cfg.workers = int(server.get("workers", cfg.workers))
    cfg.chunk_frames = int(server.get("chunk_frames", cfg.chunk_frames))
    cfg.max_queued_renders = int(server.get("max_queued_renders", cfg.max_queued_renders))
    cfg.threads = server.get("threads", cfg.threads)
    cfg.colour_config = str(data.get("colour", {}).get("config", cfg.colour_config))
    cfg.path_roots = [Path(os.path.expanduser(p)) for p in data.get("paths", {}).get("roots", [])]
    tls = data.get("tls", {})
    for key in ("cert", "key", "client_ca"):
        if tls.get(key):
            # Relative to the config file, like data_dir, so a config travels with its certificates.
            setattr(cfg, f"tls_{key}", (Path(path).parent / os.path.expanduser(str(tls[key]))).resolve())
    if "models" in data:
        from .model_config import parse_models

        cfg.models = parse_models(data["models"], Path(path).parent, str(path))
    return cfg
