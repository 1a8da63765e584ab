"""Server settings: defaults, overridden by a TOML file, overridden by command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import tomllib

from .errors import InvalidInput
from .streams import DEFAULT_MAX_OPEN_STREAMS, DEFAULT_MAX_STREAMS_PER_USER, DEFAULT_RPC_THREADS

EXECUTORS = ("local", "ray")


BUILTIN_COLOUR_CONFIG = "ocio://cg-config-latest"


def default_colour_config() -> str:
    """The studio's show config when $OCIO names one (as every OCIO application honours it), else the built-in."""
    return os.environ.get("OCIO", "").strip() or BUILTIN_COLOUR_CONFIG


@dataclass
class ServerConfig:
    listen: str = "127.0.0.1:50051"
    data_dir: Path = Path("shotpass-data")
    workers: int = 1  # CPU workers; each GPU gets one worker of its own
    chunk_frames: int = 4
    # Renders waiting or running at once (previews excepted); past it SubmitRender says RESOURCE_EXHAUSTED.
    max_queued_renders: int = 1000
    # Largest data window (and upscale output) a frame may have, in pixels; checked on the header before decoding.
    max_frame_pixels: int = 16384 * 16384
    # Memory one frame may take to decode (its channels plus the float copy a pass works on); 0: an eighth
    # of the machine's memory. Submits check it on the header; past it, RESOURCE_EXHAUSTED naming the file.
    max_decode_bytes: int = 0
    # Per-user quotas (0: none): renders waiting or running, and their frames not yet finished.
    max_queued_per_user: int = 0
    max_frames_per_user: int = 0
    # On SIGTERM/SIGINT the running step gets this long to finish, then it is cancelled and resumed next start.
    shutdown_grace_s: float = 30.0
    # [colour] config, else the studio's $OCIO, else OpenColorIO's built-in CG config (frames/colour.py).
    colour_config: str = field(default_factory=default_colour_config)
    path_roots: List[Path] = field(default_factory=list)
    # [paths.projects] NAME = [...]: roots only renders of that project may read (besides the global roots).
    project_roots: Dict[str, List[Path]] = field(default_factory=dict)
    threads: Optional[int] = None  # per-model CPU threads (None: the runtime's default)
    models: List[Any] = field(default_factory=list)  # model_config.ModelSpec, from [models.NAME] tables
    config_path: Optional[Path] = None  # the TOML file read: `shotpass models --reload` and SIGHUP re-read it
    # [tls]: a server certificate and key turn TLS on; a client CA also demands client certificates (mutual TLS).
    tls_cert: Optional[Path] = None
    tls_key: Optional[Path] = None
    tls_client_ca: Optional[Path] = None
    metrics_listen: str = ""  # HOST:PORT of the Prometheus /metrics endpoint; empty: off
    web_listen: str = ""  # [web] listen: HOST:PORT of the review pages; empty: off
    # [server] data_plane: blobs over HTTP(S) beside gRPC (dataplane.py). "auto": the gRPC host on a free port
    # (advertised in GetServerInfo); HOST:PORT a fixed one (e.g. for a firewall); "off": gRPC only.
    data_plane: str = "auto"
    # Frames decoded ahead of and encoded behind the model (frame_pipeline.Pipelined); 0: one frame at a time.
    pipeline_depth: int = 2
    log_format: str = "text"  # text | json (one object per line)
    # Executor: "local" (one worker per visible GPU, else `workers` CPU workers) or "ray" (one actor per GPU
    # of the Ray cluster at ray_address, else `ray_workers` CPU actors). ray_address: "local" starts Ray here,
    # "auto" or HOST:6379 joins a running cluster, empty uses Ray's own default.
    executor: str = "local"
    ray_address: str = ""
    ray_workers: int = 1
    ray_rescan_s: float = 15.0  # how often the cluster is checked for GPUs that joined (0: never)
    max_frame_attempts: int = 3  # a frame whose worker died this many times fails, naming the reason
    # Blob store: a size limit (0: none, the disk is the limit); blobs no render uses are deleted by
    # `shotpass gc` once unused this long, and by the server itself every blob_gc_interval_hours (0: never);
    # the bytes of a cut upload wait partial_upload_retention_hours for the client to resume it.
    max_store_bytes: int = 0
    blob_retention_days: float = 30.0
    blob_gc_interval_hours: float = 0.0
    partial_upload_retention_hours: float = 24.0
    # Long calls (watches, uploads, downloads, previews) open at once, server-wide and per user (per client
    # host on a single-user server); past either, RESOURCE_EXHAUSTED. rpc_threads stay free for short calls.
    max_open_streams: int = DEFAULT_MAX_OPEN_STREAMS
    max_streams_per_user: int = DEFAULT_MAX_STREAMS_PER_USER
    rpc_threads: int = DEFAULT_RPC_THREADS
    # Connections: the server pings a silent client every keepalive_s and drops it after keepalive_timeout_s
    # without an answer (its streams end and free their threads); a connection with no call for
    # max_connection_idle_s is closed (0: never).
    keepalive_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    max_connection_idle_s: float = 3600.0

    def check_executor(self, source: str = "the config") -> None:
        if self.executor not in EXECUTORS:
            raise InvalidInput(f"{source}: executor {self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.ray_workers < 1 or self.max_frame_attempts < 1:
            raise InvalidInput(f"{source}: ray_workers and max_frame_attempts must be at least 1")
        if self.ray_rescan_s < 0:
            raise InvalidInput(f"{source}: ray_rescan_s must be 0 (never) or a number of seconds")

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
    cfg.config_path = Path(path)
    server = data.get("server", {})
    cfg.listen = str(server.get("listen", cfg.listen))
    if "data_dir" in server:
        cfg.data_dir = (Path(path).parent / os.path.expanduser(server["data_dir"])).resolve()
    cfg.workers = int(server.get("workers", cfg.workers))
    cfg.chunk_frames = int(server.get("chunk_frames", cfg.chunk_frames))
    cfg.max_queued_renders = int(server.get("max_queued_renders", cfg.max_queued_renders))
    cfg.max_frame_pixels = int(server.get("max_frame_pixels", cfg.max_frame_pixels))
    if cfg.max_frame_pixels < 1:
        raise InvalidInput(f"{path}: [server] max_frame_pixels must be a positive number of pixels")
    cfg.max_decode_bytes = int(server.get("max_decode_bytes", cfg.max_decode_bytes))
    if cfg.max_decode_bytes < 0:
        raise InvalidInput(f"{path}: [server] max_decode_bytes must be 0 (an eighth of the memory) or a byte count")
    cfg.threads = server.get("threads", cfg.threads)
    cfg.metrics_listen = str(server.get("metrics_listen", cfg.metrics_listen))
    cfg.data_plane = str(server.get("data_plane", cfg.data_plane))
    cfg.pipeline_depth = int(server.get("pipeline_depth", cfg.pipeline_depth))
    cfg.log_format = str(server.get("log_format", cfg.log_format))
    cfg.executor = str(server.get("executor", cfg.executor))
    cfg.ray_address = str(server.get("ray_address", cfg.ray_address))
    cfg.ray_workers = int(server.get("ray_workers", cfg.ray_workers))
    cfg.ray_rescan_s = float(server.get("ray_rescan_s", cfg.ray_rescan_s))
    cfg.max_frame_attempts = int(server.get("max_frame_attempts", cfg.max_frame_attempts))
    cfg.check_executor(f"{path}: [server]")
    cfg.colour_config = str(data.get("colour", {}).get("config", cfg.colour_config))
    cfg.web_listen = str(data.get("web", {}).get("listen", cfg.web_listen))
    cfg.max_queued_per_user = int(server.get("max_queued_per_user", cfg.max_queued_per_user))
    cfg.max_frames_per_user = int(server.get("max_frames_per_user", cfg.max_frames_per_user))
    cfg.shutdown_grace_s = float(server.get("shutdown_grace_s", cfg.shutdown_grace_s))
    _store_settings(cfg, server, f"{path}: [server]")
    _connection_settings(cfg, server, f"{path}: [server]")
    paths = data.get("paths", {})
    cfg.path_roots = [Path(os.path.expanduser(p)) for p in paths.get("roots", [])]
    cfg.project_roots = _project_roots(paths.get("projects", {}), str(path))
    tls = data.get("tls", {})
    for key in ("cert", "key", "client_ca"):
        if tls.get(key):
            # Relative to the config file, like data_dir, so a config travels with its certificates.
            setattr(cfg, f"tls_{key}", (Path(path).parent / os.path.expanduser(str(tls[key]))).resolve())
    if "models" in data:
        from .model_config import parse_models

        cfg.models = parse_models(data["models"], Path(path).parent, str(path))
    return cfg


def _project_roots(table: Any, source: str) -> Dict[str, List[Path]]:
    if not isinstance(table, dict):
        raise InvalidInput(f"{source}: [paths.projects] must map project names to lists of folders")
    out: Dict[str, List[Path]] = {}
    for project, roots in table.items():
        if isinstance(roots, str):
            roots = [roots]
        if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
            raise InvalidInput(
                f'{source}: [paths.projects] {project} must be a list of folders, e.g. ["/mnt/shows/{project}"]'
            )
        out[str(project)] = [Path(os.path.expanduser(r)) for r in roots]
    return out


def _store_settings(cfg: ServerConfig, server: Dict[str, Any], source: str) -> None:
    """The blob store's limit and retention settings: numbers of 0 or more."""
    for name, kind in (("max_store_bytes", int), ("blob_retention_days", float), ("blob_gc_interval_hours", float),
                       ("partial_upload_retention_hours", float)):
        if name not in server:
            continue
        value = server[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InvalidInput(f"{source} {name} = {value!r}: use a number of 0 or more")
        setattr(cfg, name, kind(value))


def _connection_settings(cfg: ServerConfig, server: Dict[str, Any], source: str) -> None:
    """Stream caps, RPC threads and keepalive: whole numbers of 1 or more (idle and keepalive: seconds, 0 off)."""
    for name, kind, least in (("max_open_streams", int, 1), ("max_streams_per_user", int, 1), ("rpc_threads", int, 1),
                              ("keepalive_s", float, 0), ("keepalive_timeout_s", float, 1),
                              ("max_connection_idle_s", float, 0)):
        if name not in server:
            continue
        value = server[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least or (
            kind is int and value != int(value)
        ):
            raise InvalidInput(f"{source} {name} = {value!r}: use a {'whole ' if kind is int else ''}number of "
                               f"{least} or more")
        setattr(cfg, name, kind(value))
