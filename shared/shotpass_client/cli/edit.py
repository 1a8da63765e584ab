"""`shotpass batch | conform`: one render per clip of an edit, and the edit back onto the chosen versions."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List

from ..jobs import RenderSpec, fetch_outputs
from ..pathmap import PathMap
from ..patterns import FramePattern
from ..proto import shotpass_pb2 as pb
from .common import EXIT_FAILED, UsageError, client_args, connect, print_json
from .progress import Board


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


def plans_from_args(args: argparse.Namespace) -> List[Any]:
    from ..timeline import plan_shots, read_timeline

    if args.handles < 0:
        raise UsageError(f"--handles {args.handles}: give 0 or more frames")
    return plan_shots(read_timeline(args.timeline, args.rate), args.handles)


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

    plans = plans_from_args(args)
    skipped = [p.row() for p in plans if not p.ok]
    if not args.preset and not args.like:
        raise UsageError("give the settings: --preset LOOK.toml, or --like RENDER to copy a render's")
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
