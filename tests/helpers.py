"""Small helpers shared by the integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import numpy as np
import OpenEXR


def run_cli(capsys: Any, argv: List[str]) -> Tuple[int, Dict[str, Any], str]:
    """Run the real CLI in-process; returns (exit code, the last stdout line as JSON, stderr)."""
    from shotpass_server.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip()]
    payload = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return code, payload, captured.err


def windows(path: str) -> Tuple[Tuple[int, ...], Tuple[int, ...], float]:
    with OpenEXR.File(path) as f:
        h = f.parts[0].header
        dw = tuple(int(v) for v in (*h["dataWindow"][0], *h["dataWindow"][1]))
        disp = tuple(int(v) for v in (*h["displayWindow"][0], *h["displayWindow"][1]))
        return dw, disp, float(h["pixelAspectRatio"])


def scaled(box: Tuple[int, ...], k: int) -> Tuple[int, ...]:
    x0, y0, x1, y1 = box
    return (x0 * k, y0 * k, (x1 + 1) * k - 1, (y1 + 1) * k - 1)


def channels(path: str) -> Dict[str, np.ndarray]:
    with OpenEXR.File(path, separate_channels=True) as f:
        return {name: np.array(ch.pixels) for name, ch in f.parts[0].channels.items()}


def header(path: str, part: int = 0) -> Dict[str, Any]:
    with OpenEXR.File(path) as f:
        return dict(f.parts[part].header)


def write_pki(folder: Any) -> Dict[str, Any]:
    """A throwaway CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files.

    Keys: ca_cert, ca_key, server_cert, server_key, client_cert, client_key (Paths under `folder`).
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pair(subject: str, issuer: Any = None, ca: bool = False, server: bool = False) -> Tuple[Any, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        issuer_cert, issuer_key = issuer if issuer else (None, key)
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer_cert.subject if issuer_cert else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if server:
            sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        elif not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256()), key

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca = pair("shotpass test CA", ca=True)
    files: Dict[str, Any] = {}
    for label, (cert, key) in {"ca": ca, "server": pair("localhost", ca, server=True),
                               "client": pair("artist", ca)}.items():
        files[f"{label}_cert"] = folder / f"{label}.crt"
        files[f"{label}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{label}_key"] = folder / f"{label}.key"
        files[f"{label}_key"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


def tls_serve_args(pki: Dict[str, Any], mutual: bool = True) -> List[str]:
    """`shotpass serve` flags for a TLS server with `write_pki` files (mutual: client certificates required)."""
    args = ["--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"])]
    return args + (["--tls-client-ca", str(pki["ca_cert"])] if mutual else [])


# How long a client waits to reach a server child process that has just started or reloaded: on a busy 2-core CI
# machine it may answer seconds late, which says nothing about what the test checks.
SLOW_START_S = 30.0


def serve_process(data_dir: Path, log: Path, *extra: str) -> Tuple[subprocess.Popen, str]:
    """`shotpass serve` as a child process on a free loopback port; returns it and its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
         *extra],
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()
    assert "serving on" in line, f"server did not start: {line!r} (log: {log.read_text()[-2000:]})"
    return proc, line.split("serving on ")[1].split()[0]


def watch_after_restart(data_dir: Path, log: Path, render_id: str, *extra: str) -> Tuple[list, Any]:
    """Start `shotpass serve` again on `data_dir`, watch `render_id` to its end: (events, final render)."""
    from shotpass_client import Client

    proc, address = serve_process(data_dir, log, *extra)
    try:
        with Client(address, connect_timeout=SLOW_START_S) as client:
            events = list(client.watch(render_id))
            render = client.get_render(render_id)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    return events, render


def window_seam_ratio(out: np.ndarray, tile: int, overlap: int, grid: int = 8) -> float:
    """Mean |gradient| across the borders of denoising windows over the mean |gradient| everywhere else (rows and
    columns): about 1 where windows agree, well above 1 where each window went its own way.

    Borders are where a window starts or ends, from the very tiling the denoiser uses: ``tile`` and ``overlap``
    pixels on a latent grid of ``grid`` pixels.
    """
    from shotpass_server.frames.tiling import tile_starts

    ratios = []
    for axis in (0, 1):
        starts = tile_starts(out.shape[axis] // grid, tile // grid, overlap // grid)
        edges = {s * grid for s in starts[1:]} | {s * grid + tile for s in starts[:-1]}
        grad = np.abs(np.diff(out, axis=axis)).mean(axis=(1 - axis, 2))  # grad[i]: between i and i + 1
        at = np.zeros(grad.shape, dtype=bool)
        at[[e - 1 for e in edges]] = True
        ratios.append(grad[at].mean() / grad[~at].mean())
    return float(np.mean(ratios))


@contextmanager
def model_server(config: Path, data_dir: Path, **settings: Any) -> Iterator[Any]:
    """The real server on a free loopback port with the models of ``config``; ``settings`` override the config
    (e.g. chunk_frames). torch runs on 2 threads: diffusion results differ by ~1e-5 between thread counts."""
    import torch

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    torch.set_num_threads(2)
    cfg = load_config(config)
    cfg.listen, cfg.data_dir = "127.0.0.1:0", data_dir
    for key, value in settings.items():
        setattr(cfg, key, value)
    srv = ShotpassServer(cfg)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(grace=0.5)
