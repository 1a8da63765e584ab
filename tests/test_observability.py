"""Metrics over HTTP, JSON logs naming renders, and health that says SERVING only when the server is ready."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, Tuple

import grpc
import pytest
from conftest import BEACHBALL, require_data
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

Samples = Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def beachball_frames(n: int) -> Dict[int, str]:
    require_data()
    return {i + 1: str(p) for i, p in enumerate(sorted(BEACHBALL.glob("singlepart.*.exr"))[:n])}


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[object]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", chunk_frames=2,
                                      metrics_listen="127.0.0.1:0"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(grace=0.5)


def test_metrics_count_a_render_its_steps_and_a_refused_request(metered) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    labels = {"pass": "passthrough", "model": "passthrough"}
    before = scrape(metered.metrics_address)
    assert value(before, "shotpass_ready") == 1
    assert value(before, "shotpass_queue_depth", lane="render") == 0
    assert value(before, "shotpass_queue_depth", lane="preview") == 0
    with Client(metered.address) as client:
        sub = submit_render(client, RenderSpec(project="obs", shot="sh010", pass_name="passthrough"),
                            beachball_frames(3))
        assert client.wait(sub.render_id).state == pb.FINISHED
        with pytest.raises(ClientError) as refused:
            client.get_render("r-doesnotexist")
        assert refused.value.code == "NOT_FOUND"
    after = scrape(metered.metrics_address)

    def moved(name: str, **lab: str) -> float:
        return value(after, name, **lab) - value(before, name, **lab)

    assert moved("shotpass_frames_finished_total", **labels) == 3
    assert moved("shotpass_frames_failed_total", **labels) == 0
    assert moved("shotpass_frame_seconds_count", **labels) == 3
    assert moved("shotpass_frame_seconds_sum", **labels) > 0
    # passthrough reports step 0 then step 1 of 1 per frame: one step interval each.
    assert moved("shotpass_step_seconds_count", **labels) == 3
    rpc = {"service": "shotpass.v1.ShotPass"}
    assert moved("shotpass_rpcs_total", **rpc, method="GetRender", code="NOT_FOUND") == 1
    assert moved("shotpass_rpcs_total", **rpc, method="SubmitRender", code="OK") == 1
    # Client.wait stops reading at the FINISHED event, which may race the stream's own end.
    assert sum(moved("shotpass_rpcs_total", **rpc, method="WatchRender", code=c) for c in ("OK", "CANCELLED")) == 1
    assert value(after, "shotpass_queue_depth", lane="render") == 0
    gpu = [k for k in after if k[0].startswith("shotpass_gpu_memory")]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        assert any(dict(k[1]).get("device") == "cuda:0" for k in gpu)
    else:
        assert gpu == []


def test_health_is_not_serving_until_ready_and_again_during_shutdown(tmp_path: Path) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data"))
    release = threading.Event()
    srv.readiness_checks.append(lambda: release.wait(30))  # stands for a slow model check
    starter = threading.Thread(target=srv.start)
    starter.start()
    deadline = time.monotonic() + 20
    while not srv.port and time.monotonic() < deadline:
        time.sleep(0.02)
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    stub = health_pb2_grpc.HealthStub(channel)
    ns, serving = health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.SERVING
    try:
        check = health_pb2.HealthCheckRequest(service="shotpass.v1.ShotPass")
        assert stub.Check(check, timeout=10, wait_for_ready=True).status == ns
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status == ns
        with Client(srv.address) as client, pytest.raises(ClientError) as early:
            client.server_info()
        assert early.value.code == "UNAVAILABLE" and "starting" in str(early.value)

        release.set()
        starter.join(20)
        assert stub.Check(check, timeout=10).status == serving
        with Client(srv.address) as client:
            assert client.server_info().version

        updates = stub.Watch(health_pb2.HealthCheckRequest(), timeout=20)
        assert next(updates).status == serving
        stopper = threading.Thread(target=srv.stop, kwargs={"grace": 1.0})
        stopper.start()
        assert next(updates).status == ns
        stopper.join(20)
    finally:
        release.set()
        channel.close()
        if srv.ready:
            srv.stop(grace=0.2)


def test_serve_with_json_logs_and_metrics_from_the_config(tmp_path: Path) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    config = tmp_path / "shotpass.toml"
    config.write_text('[server]\nmetrics_listen = "127.0.0.1:0"\nlog_format = "json"\n')
    log_file = tmp_path / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir",
         str(tmp_path / "data"), "--config", str(config)],
        stdout=subprocess.PIPE, stderr=log_file.open("wb"), text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        serving, metrics = proc.stdout.readline(), proc.stdout.readline()
        assert "serving on" in serving, log_file.read_text()
        address = serving.split("serving on ")[1].split()[0]
        metrics_address = metrics.split("http://")[1].split("/metrics")[0]
        with Client(address) as client:
            sub = submit_render(client, RenderSpec(project="obs", shot="sh020", pass_name="passthrough"),
                                beachball_frames(2))
            rid = sub.render_id
            assert client.wait(rid).state == pb.FINISHED
            with pytest.raises(ClientError):
                client.cancel("r-nosuchrender")
        assert value(scrape(metrics_address), "shotpass_frames_finished_total", **{"pass": "passthrough",
                                                                                   "model": "passthrough"}) == 2
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [line for line in log_file.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any("serving on" in r["message"] and r["level"] == "INFO" for r in records)
    about = [r for r in records if r.get("render_id") == rid]
    assert any(r["message"] == "render queued" for r in about), about
    done = sorted(r["frame"] for r in about if r["message"].startswith("frame ") and "done" in r["message"])
    assert done == [1, 2], about
    assert any(r["message"].startswith(f"render {rid} started on ") for r in about), about
    assert any(r["message"] == f"render {rid} finished (2/2 frames)" for r in about), about
    refused = [r for r in records if r.get("render_id") == "r-nosuchrender"]
    assert refused and "NOT_FOUND" in refused[0]["message"] and "CancelRender" in refused[0]["message"]


def test_log_format_and_metrics_address_are_checked() -> None:
    from shotpass_server.errors import InvalidInput
    from shotpass_server.logs import configure
    from shotpass_server.metrics import Metrics

    with pytest.raises(InvalidInput, match="log format 'xml'.*text, json"):
        configure("xml")
    with pytest.raises(InvalidInput, match="HOST:PORT"):
        Metrics(lambda rid: ("p", "m")).serve("9464")
