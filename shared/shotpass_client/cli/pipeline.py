"""`shotpass batch | conform | farm | stats`: a sequence from an edit, back into the edit, on a farm, and its cost."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional

from ..jobs import PlateError, RenderSpec, fetch_outputs
from ..pathmap import PathMap
from ..patterns import FramePattern
from ..proto import shotpass_pb2 as pb
from .common import EXIT_FAILED, client_args, connect, parse_options, print_json, settings_args, shot_from_plate
from .progress import Board

STAT_FIELDS = ("renders", "previews", "frames_done", "frames_failed", "device_seconds")


def edit_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("timeline", help="the edit: .otio, CMX 3600 .edl, or any format OpenTimelineIO reads")
    sp.add_argument("--rate", type=float, default=24.0, help="frames per second of an EDL's timecode (default 24)")
    sp.add_argument("--handles", type=int, default=0, metavar="N", help="frames added at head and tail of each "
                    "clip, as far as the plate has them (default 0)")
    sp.add_argument("--project", default="", help="the project (default: the preset's, else 'default')")


def add_commands(sub: Any) -> None:
    b = sub.add_parser("batch", help="one render per clip of an edit (OpenTimelineIO), with one preset")
    edit_args(b)
    b.add_argument("--preset", metavar="LOOK.toml", help="settings: pass, model, prompt, options, seed, ...")
    b.add_argument("--like", metavar="RENDER", help="copy the settings of this render (a preset applies on top)")
    b.add_argument("--shots", metavar="SHOTS.toml", help="per-shot overrides: [shots.NAME] tables")
    b.add_argument("--dry-run", action="store_true", help="print the shot table, submit nothing")
    b.add_argument("--detach", action="store_true", help="submit every shot and exit without waiting")
    b.add_argument("--out", metavar="DIR", help="fetch each finished shot's frames into DIR/SHOT/")
    b.add_argument("--path-map", default=os.environ.get("SHOTPASS_PATH_MAP", ""), metavar="LOCAL=SERVER[;...]",
                   help="path mode for plates under mapped folders ($SHOTPASS_PATH_MAP)")
    client_args(b)
    b.set_defaults(func=cmd_batch)

    c = sub.add_parser("conform", help="the edit with each clip on its approved (else pinned, else latest) version")
    c.add_argument("timeline", help="the edit: .otio, CMX 3600 .edl, or any format OpenTimelineIO reads")
    c.add_argument("--rate", type=float, default=24.0, help="frames per second of an EDL's timecode (default 24)")
    c.add_argument("--project", default="default")
    c.add_argument("--out", required=True, metavar="CUT.otio", help="the conformed timeline to write")
    c.add_argument("--media", metavar="DIR", help="where the versions' frames go, DIR/SHOT/vNNN/ "
                   "(default: beside --out, in NAME_media)")
    client_args(c)
    c.set_defaults(func=cmd_conform)

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

    st = sub.add_parser("stats", help="cost per shot, sequence and project: device-seconds and frames")
    st.add_argument("--project", default="", help="one project (default: every project you may see)")
    st.add_argument("--shot", default="", help="one shot")
    st.add_argument("--shot-prefix", default="", metavar="PREFIX",
                    help="a sequence: only shots whose names start with PREFIX (e.g. sq010_), totalled")
    st.add_argument("--timeline", metavar="CUT", help="a sequence: only the shots of this edit's clips, totalled")
    st.add_argument("--rate", type=float, default=24.0, help="frames per second of an EDL's timecode (default 24)")
    client_args(st)
    st.set_defaults(func=cmd_stats)


def totals(rows: List[Dict[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {k: 0 for k in STAT_FIELDS}
    for row in rows:
        for k in STAT_FIELDS:
            out[k] += row[k]
    out["device_seconds"] = round(out["device_seconds"], 3)
    out["shots"] = len(rows)
    return out


def cmd_stats(args: argparse.Namespace) -> int:
    cut: Optional[set] = None
    if args.timeline:
        from ..timeline import plan_shots, read_timeline

        cut = {p.shot for p in plan_shots(read_timeline(args.timeline, args.rate)) if p.shot}
    with connect(args) as client:
        shots = client.stats(args.project, args.shot)
    rows = [
        {"project": s.project, "shot": s.shot, "renders": s.renders, "previews": s.previews,
         "frames_done": s.frames_done, "frames_failed": s.frames_failed,
         "device_seconds": round(s.device_seconds, 3)}
        for s in shots if s.shot.startswith(args.shot_prefix) and (cut is None or s.shot in cut)
    ]
    projects = {p: totals([r for r in rows if r["project"] == p]) for p in sorted({r["project"] for r in rows})}
    report = {"shots": rows, "projects": projects, "total": totals(rows)}
    if args.shot_prefix or cut is not None:
        report["sequence"] = dict(totals(rows), prefix=args.shot_prefix, timeline=args.timeline or "")
    if args.json:
        print_json(report)
        return 0
    head = f"{'project':<16} {'shot':<24} {'renders':>7} {'previews':>8} {'frames':>7} {'failed':>6} {'device-s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['project']:<16} {r['shot']:<24} {r['renders']:>7} {r['previews']:>8} {r['frames_done']:>7} "
              f"{r['frames_failed']:>6} {r['device_seconds']:>10.1f}")
    print("-" * len(head))
    for name, t in projects.items():
        label = f"{t['shots']} shots"
        print(f"{name:<16} {label:<24} {t['renders']:>7} {t['previews']:>8} {t['frames_done']:>7} "
              f"{t['frames_failed']:>6} {t['device_seconds']:>10.1f}")
    if "sequence" in report:
        t = report["sequence"]
        which = os.path.basename(args.timeline) if args.timeline else args.shot_prefix + "*"
        print(f"{'sequence':<16} {which:<24} {t['renders']:>7} {t['previews']:>8} "
              f"{t['frames_done']:>7} {t['frames_failed']:>6} {t['device_seconds']:>10.1f}")
    return 0


# -------------------------------------------------------------------- batch


def _plans(args: argparse.Namespace) -> List[Any]:
    from ..timeline import plan_shots, read_timeline

    if args.handles < 0:
        raise PresetMissing(f"--handles {args.handles}: give 0 or more frames")
    return plan_shots(read_timeline(args.timeline, args.rate), args.handles)


class PresetMissing(PlateError):
    """The batch lacks what it needs to run (settings, a sensible option)."""


def print_plan(plans: List[Any], stream: Any = None) -> None:
    out = stream or sys.stdout
    head = f"{'#':>3} {'shot':<20} {'cut':<12} {'frames (handles)':<24} plate / reason"
    print(head, file=out)
    print("-" * len(head), file=out)
    for p in plans:
        if p.ok:
            cut = f"{p.cut[0]}-{p.cut[1]}"
            frames = f"{p.frames[0]}-{p.frames[-1]} ({p.handles[0]}+{p.handles[1]})"
            print(f"{p.index:>3} {p.shot:<20} {cut:<12} {frames:<24} {p.pattern}", file=out)
        else:
            print(f"{p.index:>3} {(p.shot or '-'):<20} {'':<12} {'SKIPPED':<24} {p.clip or '(gap)'}: {p.reason}",
                  file=out)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import apply_settings as with_preset
    from ..batch import load_toml, poll_until_final, shot_specs, spec_from_render, submit_shots

    plans = _plans(args)
    skipped = [p.row() for p in plans if not p.ok]
    if not args.preset and not args.like:
        raise PresetMissing("give the settings: --preset LOOK.toml, or --like RENDER to copy a render's")
    sidecar = load_toml(args.shots) if args.shots else {}
    if args.dry_run:
        base = RenderSpec()
        if args.preset:
            base = with_preset(base, load_toml(args.preset), args.preset)
        if args.project:
            base.project = args.project
        jobs = shot_specs(plans, base, sidecar, args.shots or "")
        if args.json:
            print_json({"shots": [dict(j.plan.row(), settings=_spec_dict(j.spec)) for j in jobs], "skipped": skipped})
        else:
            print_plan(plans)
        return 0
    with connect(args) as client:
        base = spec_from_render(client.get_render(args.like)) if args.like else RenderSpec()
        if args.preset:
            base = with_preset(base, load_toml(args.preset), args.preset)
        if args.project:
            base.project = args.project
        jobs = shot_specs(plans, base, sidecar, args.shots or "")
        board = None if args.json else Board()
        if not args.json:
            print_plan(plans, sys.stderr)
        for p in plans:
            if not p.ok and not args.json:
                print(f"shotpass batch: skipped {p.clip or 'gap'} (item {p.index}): {p.reason}", file=sys.stderr)

        def show() -> None:
            if board is not None:
                for job in jobs:
                    board.set(job.plan.shot, job.line())
                board.draw()

        submit_shots(client, jobs, PathMap.parse(args.path_map), on_submitted=lambda job: show())
        if not args.detach:
            poll_until_final(client, jobs, show)
        if board is not None:
            board.draw(force=True)
        if args.out and not args.detach:
            for job in jobs:
                if job.render is not None and job.render.state == pb.FINISHED:
                    pattern = FramePattern.parse(job.plan.pattern)
                    fetch_outputs(client, job.render, os.path.join(args.out, job.plan.shot), pattern)
    report = {"shots": [j.summary() for j in jobs], "skipped": skipped}
    if args.json:
        print_json(report)
    else:
        done = sum(1 for j in jobs if j.render is not None and j.render.state == pb.FINISHED)
        print(f"batch: {len(jobs)} shot(s) submitted, {done} finished, {len(skipped)} item(s) skipped")
    if args.detach:
        return EXIT_FAILED if any(j.error for j in jobs) else 0
    ok = all(j.render is not None and j.render.state == pb.FINISHED for j in jobs)
    return 0 if ok else EXIT_FAILED


def _spec_dict(spec: RenderSpec) -> Dict[str, Any]:
    return {"project": spec.project, "pass": spec.pass_name, "model": spec.model, "prompt": spec.prompt,
            "options": spec.options, "seed": spec.seed, "frame_timeout": spec.frame_timeout}


# -------------------------------------------------------------------- conform


def cmd_conform(args: argparse.Namespace) -> int:
    from ..conform import conform, write_timeline

    media = args.media or os.path.splitext(args.out)[0] + "_media"
    with connect(args) as client:
        timeline, clips = conform(client, args.timeline, args.project, media, args.rate)
    write_timeline(timeline, args.out)
    if args.json:
        print_json({"timeline": os.path.abspath(args.out), "media": os.path.abspath(media),
                    "clips": [c.row() for c in clips]})
        return 0
    for c in clips:
        if c.render is not None:
            print(f"{c.plan.index:>3} {c.plan.shot:<20} v{c.render.version:<3} {c.why:<8} {c.render.id}  {c.media}")
        else:
            print(f"{c.plan.index:>3} {c.plan.shot:<20} kept its media: {c.reason}")
    got = sum(1 for c in clips if c.render is not None)
    print(f"conform: {got}/{len(clips)} clips on rendered versions; wrote {os.path.abspath(args.out)}")
    return 0


# -------------------------------------------------------------------- farm


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

    if bool(args.plate) == bool(args.timeline):
        raise PresetMissing("give one PLATE pattern, or --timeline CUT for every clip of an edit")
    for name in ("chunk", "task_timeout"):
        if getattr(args, name) < 1:
            raise PresetMissing(f"--{name.replace('_', '-')} {getattr(args, name)}: give 1 or more")
    if args.retries < 0:
        raise PresetMissing(f"--retries {args.retries}: give 0 or more")
    spec = RenderSpec(project=args.project, pass_name=args.pass_name, model=args.model, prompt=args.prompt,
                      negative_prompt=args.negative_prompt, options=parse_options(args.option), seed=args.seed,
                      colour_space=args.colour_space, view=args.view, priority=args.priority, label=args.label,
                      frame_timeout=args.frame_timeout)
    if args.preset:
        spec = apply_settings(spec, load_toml(args.preset), args.preset)
    if not spec.pass_name and not spec.model:
        raise PresetMissing("choose a pass or a model (--pass, --model, or a --preset that names one)")
    skipped: List[Dict[str, Any]] = []
    if args.timeline:
        plans = _plans(args)
        shots = [FarmShot(p.shot, p.pattern, p.frames) for p in plans if p.ok]
        skipped = [p.row() for p in plans if not p.ok]
    else:
        frames = sorted(plate_frames(args.plate, parse_frame_range(args.frames) if args.frames else None))
        shots = [FarmShot(args.shot or shot_from_plate(args.plate), FramePattern.parse(args.plate).hashes(), frames)]
    if not shots:
        raise PresetMissing("no shot to render: every clip of the edit was skipped")
    job = FarmJob(name=args.job_name, shots=shots, spec=with_fixed_seed(spec),
                  job_key=args.job_key or f"{args.job_name}-{uuid.uuid4().hex[:8]}", out_root=args.out,
                  chunk=args.chunk, task_timeout_s=args.task_timeout, retries=args.retries, server=args.server)
    if args.format == "openjd":
        try:
            template = openjd_template(job)
        except FarmError as err:
            raise PresetMissing(str(err)) from None
        os.makedirs(args.write, exist_ok=True)
        with open(os.path.join(args.write, "template.json"), "w") as fh:
            json.dump(template, fh, indent=2)
        with open(os.path.join(args.write, "parameter_values.json"), "w") as fh:
            json.dump(openjd_parameter_values(job), fh, indent=2)
    else:
        try:
            xml = opencue_outline(job, args.show)
        except FarmError as err:
            raise PresetMissing(str(err)) from None
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
