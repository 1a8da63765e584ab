"""Farm jobs: the Open Job Description template validates with the spec's own model (openjd-model) and the OpenCue
outline is built with PyOutline; running each generated task's command against a real server gives one render
(one version) of the shot with every frame once, a retried task included."""

from __future__ import annotations

import json
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List

import openjd.model as ojd
import pytest
from conftest import BEACHBALL, require_data
from helpers import run_cli

from shotpass_client.farm import opencue_chunk
from shotpass_client.proto import shotpass_pb2 as pb


@pytest.fixture
def plate(tmp_path: Path) -> str:
    require_data()
    folder = tmp_path / "plates" / "bb"
    folder.mkdir(parents=True)
    for src in sorted(BEACHBALL.glob("singlepart.*.exr")):
        (folder / src.name).symlink_to(src)
    return str(folder / "singlepart.####.exr")


def _run_task(capsys, argv: List[str]) -> dict:
    assert argv[0] == "shotpass"
    code, out, err = run_cli(capsys, argv[1:])
    assert code == 0, err
    return out


def test_openjd_template_validates_and_its_tasks_make_one_version(capsys, server, client, plate, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    code, report, err = run_cli(capsys, [
        "farm", "openjd", plate, "--shot", "sh010", "--pass", "passthrough", "--frame-timeout", "300",
        "--chunk", "3", "--task-timeout", "900", "--retries", "3", "--job-name", "cut-v1",
        "--out", str(tmp_path / "farm-out"), "--server", server.address, "--write", str(bundle), "--json"])
    assert code == 0, err
    assert report["shots"] == [{"shot": "sh010", "plate": plate, "tasks": ["1-3", "4-6", "7-8"]}]
    template = json.loads((bundle / "template.json").read_text())
    values = json.loads((bundle / "parameter_values.json").read_text())
    assert {"name": "deadline:maxRetriesPerTask", "value": 3} in values["parameterValues"]

    job = ojd.create_job(job_template=ojd.decode_job_template(template=template), job_parameter_values={})
    (step,) = job.steps
    run = step.script.actions.onRun
    assert run.command == "shotpass" and int(run.timeout) == 900
    params = {f"Param.{k}": v.value for k, v in job.parameters.items()}
    tasks = [t["Frames"].value for t in ojd.StepParameterSpaceIterator(space=step.parameterSpace)]
    assert tasks == ["1-3", "4-6", "7-8"]
    outs = []
    for frames in tasks + ["4-6"]:  # the farm retries the second task after it succeeded
        symtab = ojd.SymbolTable(source={**params, "Task.Param.Frames": frames})
        outs.append(_run_task(capsys, ["shotpass", *[a.resolve(symtab=symtab) for a in run.args]]))
    assert len({o["render"] for o in outs}) == 1 and all(o["version"] == 1 for o in outs)
    render = client.wait(outs[0]["render"])  # a task ends with its frames; the render after its QC
    assert render.state == pb.FINISHED and [f.frame for f in render.frames] == list(range(1, 9))
    assert all(f.attempts == 1 for f in render.frames), "a frame was rendered twice"
    assert render.settings.seed == report["seed"] and render.settings.frame_timeout_seconds == 300
    assert render.job_key == report["job_key"]
    written = sorted(p.name for p in (tmp_path / "farm-out" / "sh010").iterdir())
    assert written == [f"singlepart.{f:04d}.exr" for f in range(1, 9)]


def test_openjd_template_of_an_edit_has_one_step_per_shot(capsys, plate, tmp_path) -> None:
    import opentimelineio as otio

    rate = 24
    track = otio.schema.Track()
    for name, start, length in (("sh010", 0, 3), ("sh020", 4, 4)):
        ref = otio.schema.ImageSequenceReference(
            target_url_base=str(Path(plate).parent) + "/", name_prefix="singlepart.", name_suffix=".exr",
            start_frame=1, rate=rate, frame_zero_padding=4,
            available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                    otio.opentime.RationalTime(8, rate)))
        track.append(otio.schema.Clip(name=name, media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(start, rate), otio.opentime.RationalTime(length, rate))))
    track.append(otio.schema.Clip(name="sh030", media_reference=otio.schema.MissingReference(),
                                  source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                                       otio.opentime.RationalTime(4, rate))))
    cut = tmp_path / "cut.otio"
    otio.adapters.write_to_file(otio.schema.Timeline(tracks=[track]), str(cut))
    preset = tmp_path / "look.toml"
    preset.write_text('pass = "stylize"\nprompt = "a painted beach ball"\n[options]\nstyle = 3\n')
    code, report, err = run_cli(capsys, ["farm", "openjd", "--timeline", str(cut), "--handles", "1", "--preset",
                                         str(preset), "--chunk", "2", "--out", "/farm/out", "--write",
                                         str(tmp_path / "b"), "--json"])
    assert code == 0, err
    assert [(s["shot"], s["tasks"]) for s in report["shots"]] == [("sh010", ["1-2", "3-4"]),
                                                                  ("sh020", ["4-5", "6-7", "8"])]
    assert report["skipped"][0]["clip"] == "sh030"
    template = json.loads((tmp_path / "b" / "template.json").read_text())
    job = ojd.create_job(job_template=ojd.decode_job_template(template=template), job_parameter_values={})
    assert [s.name for s in job.steps] == ["sh010", "sh020"]
    args = [str(a) for a in job.steps[1].script.actions.onRun.args]
    assert "a painted beach ball" in args and "style=3" in args and "/farm/out/sh020" in args
    assert args[args.index("--shot") + 1] == "sh020"


def test_opencue_outline_runs_as_chunks_into_one_version(capsys, server, client, plate, tmp_path) -> None:
    spec = tmp_path / "job.xml"
    code, report, err = run_cli(capsys, [
        "farm", "opencue", plate, "--frames", "2-8", "--shot", "sh040", "--pass", "passthrough", "--chunk", "3",
        "--task-timeout", "90", "--retries", "4", "--show", "testshow", "--out", str(tmp_path / "cue-out"),
        "--server", server.address, "--write", str(spec), "--json"])
    assert code == 0, err
    root = ET.fromstring(spec.read_text().split("?>", 1)[1].split(">", 1)[1])  # after the XML and DOCTYPE lines
    assert root.findtext("show") == "testshow"
    job = root.find("job")
    assert job.findtext("maxretries") == "4"
    (layer,) = job.find("layers")
    assert layer.get("name") == "sh040" and layer.findtext("range") == "2-8" and layer.findtext("chunk") == "3"
    assert layer.findtext("timeout") == "2"  # minutes: 90 s rounds up
    command = layer.findtext("cmd")
    outs = []
    for first, last in opencue_chunk(2, 8, 3):  # how OpenCue cuts 2-8 by 3: 2-4, 5-7, 8-8
        line = command.replace("#FRAME_START#", str(first)).replace("#FRAME_END#", str(last))
        outs.append(_run_task(capsys, shlex.split(line)))
    assert len({o["render"] for o in outs}) == 1
    render = client.wait(outs[0]["render"])  # a task ends with its frames; the render after its QC
    assert render.state == pb.FINISHED and [f.frame for f in render.frames] == list(range(2, 9))
    assert all(f.attempts == 1 for f in render.frames)


def test_farm_refuses_unusable_requests_with_one_line(capsys, plate, tmp_path) -> None:
    code, _, err = run_cli(capsys, ["farm", "openjd", plate, "--chunk", "0", "--pass", "passthrough", "--out", "o",
                                    "--write", str(tmp_path / "b")])
    assert code == 1 and "--chunk 0" in err
    code, _, err = run_cli(capsys, ["farm", "openjd", plate, "--out", "o", "--write", str(tmp_path / "b")])
    assert code == 1 and "choose a pass or a model" in err
    code, _, err = run_cli(capsys, ["farm", "opencue", plate, "--frames", "1-3,6-8", "--pass", "passthrough",
                                    "--out", "o", "--write", str(tmp_path / "j.xml")])
    assert code == 1 and "not one run" in err
    code, _, err = run_cli(capsys, ["farm", "openjd", plate, "--pass", "passthrough", "--prompt", "a {{Param.X}} sky",
                                    "--out", "o", "--write", str(tmp_path / "b2")])
    assert code == 1 and "Open Job Description reads as an expression" in err
