"""`shotpass farm`: a render-farm job (Open Job Description or OpenCue) whose tasks render chunks of shots."""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List

from ..jobs import RenderSpec
from ..patterns import FramePattern
from .common import UsageError, parse_options, print_json, settings_args, shot_from_plate
from .edit import plans_from_args


def add_commands(sub: Any) -> None:
    f = sub.add_parser("farm", help="write a render-farm job: Open Job Description (Deadline Cloud) or OpenCue")
    f.add_argument("format", choices=("openjd", "opencue"))
    f.add_argument("plate", nargs="?", help="one shot: its frame pattern (or use --timeline for a whole edit)")
    f.add_argument("--frames", help="the plate's frame range (default: all on disk)")
    f.add_argument("--shot", default="", help="the plate's shot name (default: the plate's name)")
    f.add_argument("--timeline", metavar="CUT", help="every clip of an edit (.otio, EDL, ...) as a shot")
    f.add_argument("--rate", type=float, default=24.0, help="frames per second of an EDL's timecode (default 24)")
    f.add_argument("--handles", type=int, default=0, metavar="N", help="handle frames per clip (with --timeline)")
    f.add_argument("--preset", metavar="LOOK.toml", help="settings from a preset file (over the flags below)")
    settings_args(f)
    f.add_argument("--project", default="default")
    f.add_argument("--label", default="")
    f.add_argument("--chunk", type=int, default=10, metavar="N", help="frames per task (default 10)")
    f.add_argument("--task-timeout", type=int, default=3600, metavar="SECONDS",
                   help="a task running longer fails (default 3600)")
    f.add_argument("--retries", type=int, default=2, metavar="N", help="retries of a failed task (default 2)")
    f.add_argument("--job-name", default="shotpass", help="the farm job's name")
    f.add_argument("--job-key", default="", help="the job key the tasks share (default: job name + a random id)")
    f.add_argument("--out", required=True, metavar="DIR", help="where tasks write frames on the farm: DIR/SHOT/")
    f.add_argument("--server", default="", help="HOST:PORT the tasks use (OpenJD: the job parameter's default; "
                   "OpenCue: default the node's $SHOTPASS_SERVER)")
    f.add_argument("--show", default="shotpass", help="OpenCue show (default shotpass)")
    f.add_argument("--write", required=True, metavar="PATH", help="OpenJD: a job bundle folder (template.json, "
                   "parameter_values.json); OpenCue: the outline XML file")
    f.add_argument("--json", action="store_true", help="print one JSON object")
    f.set_defaults(func=cmd_farm)


def cmd_farm(args: argparse.Namespace) -> int:
    import json
    import uuid

    from ..batch import apply_settings, load_toml
    from ..farm import (
        FarmError,
        FarmJob,
        FarmShot,
        describe,
        opencue_outline,
        openjd_parameter_values,
        openjd_template,
        with_fixed_seed,
    )
    from ..jobs import plate_frames
    from ..patterns import parse_frame_range
    from ..schedule import parse_option_at, parse_prompt_at

    if bool(args.plate) == bool(args.timeline):
        raise UsageError("give one PLATE pattern, or --timeline CUT for every clip of an edit")
    for name in ("chunk", "task_timeout"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} {getattr(args, name)}: give 1 or more")
    if args.retries < 0:
        raise UsageError(f"--retries {args.retries}: give 0 or more")
    spec = RenderSpec(project=args.project, pass_name=args.pass_name, model=args.model, prompt=args.prompt,
                      negative_prompt=args.negative_prompt, options=parse_options(args.option), seed=args.seed,
                      colour_space=args.colour_space, view=args.view, priority=args.priority, label=args.label,
                      frame_timeout=args.frame_timeout, prompt_by_frame=parse_prompt_at(args.prompt_at),
                      options_by_frame=parse_option_at(args.option_at))
    if args.preset:
        spec = apply_settings(spec, load_toml(args.preset), args.preset)
    if not spec.pass_name and not spec.model:
        raise UsageError("choose a pass or a model (--pass, --model, or a --preset that names one)")
    skipped: List[Dict[str, Any]] = []
    if args.timeline:
        plans = plans_from_args(args)
        shots = [FarmShot(p.shot, p.pattern, p.frames) for p in plans if p.ok]
        skipped = [p.row() for p in plans if not p.ok]
    else:
        frames = sorted(plate_frames(args.plate, parse_frame_range(args.frames) if args.frames else None))
        shots = [FarmShot(args.shot or shot_from_plate(args.plate), FramePattern.parse(args.plate).hashes(), frames)]
    if not shots:
        raise UsageError("no shot to render: every clip of the edit was skipped")
    job = FarmJob(name=args.job_name, shots=shots, spec=with_fixed_seed(spec),
                  job_key=args.job_key or f"{args.job_name}-{uuid.uuid4().hex[:8]}", out_root=args.out,
                  chunk=args.chunk, task_timeout_s=args.task_timeout, retries=args.retries, server=args.server)
    if args.format == "openjd":
        try:
            template = openjd_template(job)
        except FarmError as err:
            raise UsageError(str(err)) from None
        os.makedirs(args.write, exist_ok=True)
        with open(os.path.join(args.write, "template.json"), "w") as fh:
            json.dump(template, fh, indent=2)
        with open(os.path.join(args.write, "parameter_values.json"), "w") as fh:
            json.dump(openjd_parameter_values(job), fh, indent=2)
    else:
        try:
            xml = opencue_outline(job, args.show)
        except FarmError as err:
            raise UsageError(str(err)) from None
        with open(args.write, "w") as fh:
            fh.write(xml)
    report = {"format": args.format, "written": os.path.abspath(args.write), "job_key": job.job_key,
              "seed": job.spec.seed, "shots": describe(job), "skipped": skipped}
    if args.json:
        print_json(report)
    else:
        tasks = sum(len(s["tasks"]) for s in report["shots"])
        print(f"{args.format}: {len(shots)} shot(s), {tasks} task(s) of up to {args.chunk} frames, job key "
              f"{job.job_key}; wrote {report['written']}")
        for row in skipped:
            print(f"skipped {row['clip'] or 'gap'} (item {row['index']}): {row['reason']}")
    return 0
