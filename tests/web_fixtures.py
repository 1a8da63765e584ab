"""What the review-page tests share: tiny EXR plates, a slow test model, users on a real server with its
review pages on a free loopback port, and a small HTTP client that keeps cookies and shows redirects."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlencode, urlsplit

import numpy as np
import OpenEXR

from shotpass_server.passes.base import FrameJob, FrameResult, Model, Option, PassContext


class SlowProbe(Model):
    """Test model: returns the frame unchanged after `seconds`, in four cancellable steps (no CPU used)."""

    name = "test-slow-probe"
    pass_name = "stylize"
    family = "utility"
    description = "review-page tests: a slow identity with per-step progress"
    working_space = None
    options = [Option("seconds", "float", 0.0, "time per frame")]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        for step in range(1, 5):
            time.sleep(ctx.options["seconds"] / 4)
            ctx.progress(step, 4)
        return FrameResult(rgb=job.rgb, alpha=job.alpha)


def tiny_plate(folder: Path, frames: range, fps: Tuple[int, int] = (24, 1), size: Tuple[int, int] = (64, 36)) -> str:
    """A plate of small RGBA half EXRs (a coloured ramp whose brightness moves with the frame number)."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for frame in frames:
        x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :].repeat(h, 0)
        y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None].repeat(w, 1)
        k = 0.25 + 0.75 * ((frame % 8) / 8.0)
        channels = {"R": (x * k).astype(np.float16), "G": (y * k).astype(np.float16),
                    "B": np.full((h, w), 0.2 * k, np.float16), "A": np.ones((h, w), np.float16)}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "framesPerSecond": fps}
        with OpenEXR.File(header, channels) as f:
            f.write(str(folder / f"plate.{frame:04d}.exr"))
    return str(folder / "plate.####.exr")


def add_user(data: Path, name: str, *extra: str) -> str:
    """`shotpass users add NAME --json`: the token it prints once."""
    from shotpass_server.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["users", "add", name, "--data-dir", str(data), "--json", *extra]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


def add_member(data: Path, project: str, user: str, *extra: str) -> None:
    from shotpass_server.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["projects", "add-member", project, user, "--data-dir", str(data), *extra]) == 0


def web_server(data: Path, **cfg: Any) -> Any:
    """A started server with review pages on a free port, the slow probe among its models."""
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig
    from shotpass_server.passes.registry import ModelRegistry, starter_models

    config = ServerConfig(listen="127.0.0.1:0", data_dir=data, web_listen="127.0.0.1:0", chunk_frames=1, **cfg)
    srv = ShotpassServer(config, registry=ModelRegistry([*starter_models(), SlowProbe()]))
    srv.start()
    return srv


@dataclass
class Answer:
    status: int
    headers: Dict[str, str]
    body: bytes
    cookies: List[str] = field(default_factory=list)  # raw Set-Cookie lines

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class Http:
    """One browser-like client: keeps the cookies it is given; never follows redirects (tests look at them)."""

    def __init__(self, url: str, token: Optional[str] = None, tls: Optional[ssl.SSLContext] = None) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.tls = tls  # for https:// pages: the context that trusts the server's CA
        self.token = token  # sent as Authorization: Bearer
        self.cookies: Dict[str, str] = {}
        self.csrf = ""

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
                timeout: float = 30.0) -> Answer:
        conn = self._connection(timeout)
        try:
            conn.request(method, path, body=body, headers=self._headers(headers))
            response = conn.getresponse()
            answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(),
                            [v for k, v in response.getheaders() if k.lower() == "set-cookie"])
        finally:
            conn.close()
        self._keep(answer.cookies)
        return answer

    def get(self, path: str, **kw: Any) -> Answer:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, csrf: Optional[str] = None, **kw: Any) -> Answer:
        headers = {"Content-Type": "application/json"}
        token = self.csrf if csrf is None else csrf
        if token:
            headers["X-CSRF-Token"] = token
        return self.request("POST", path, body=json.dumps(body or {}).encode(), headers=headers, **kw)

    def post_form(self, path: str, form: Dict[str, str]) -> Answer:
        return self.request("POST", path, body=urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})

    def session(self) -> Dict[str, Any]:
        """GET /api/session and keep its CSRF token for later POSTs."""
        answer = self.get("/api/session")
        assert answer.status == 200, answer.text
        data = answer.json()
        self.csrf = data["csrf_token"]
        return data

    @contextlib.contextmanager
    def stream(self, path: str, timeout: float = 3.0) -> Iterator[Any]:
        """An open event stream: yields a function returning the next (event, data) pair, None at its end;
        TimeoutError after `timeout` seconds without a byte (a quiet stream sends a keepalive every 15 s)."""
        conn = self._connection(timeout)
        conn.request("GET", path, headers=self._headers({"Accept": "text/event-stream"}))
        response = conn.getresponse()
        assert response.status == 200, response.read()[:500]

        def next_event() -> Optional[Tuple[str, Dict[str, Any]]]:
            kind, data = "message", ""
            while True:
                line = response.readline()
                if not line:
                    return None
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    kind = text[7:]
                elif text.startswith("data: "):
                    data = text[6:]
                elif text == "" and data:
                    return kind, json.loads(data)

        try:
            yield next_event
        finally:
            conn.close()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls is not None:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.tls)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, extra: Optional[Dict[str, str]]) -> Dict[str, str]:
        headers = dict(extra or {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return headers

    def _keep(self, set_cookies: List[str]) -> None:
        for line in set_cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";", 1)[0]
            if value in ("", '""') or "max-age=0" in line.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
