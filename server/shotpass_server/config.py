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
    colour_config: str = "ocio://cg-config-latest"
    path_roots: List[Path] = field(default_factory=list)
    threads: Optional[int] = None  # per-model CPU threads (None: the runtime's default)
    models: List[Any] = field(default_factory=list)  # model_config.ModelSpec, from [models.NAME] tables


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
    cfg.threads = server.get("threads", cfg.threads)
    cfg.colour_config = str(data.get("colour", {}).get("config", cfg.colour_config))
    cfg.path_roots = [Path(os.path.expanduser(p)) for p in data.get("paths", {}).get("roots", [])]
    if "models" in data:
        from .model_config import parse_models

        cfg.models = parse_models(data["models"], Path(path).parent, str(path))
    return cfg
