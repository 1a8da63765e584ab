"""`shotpass render | preview | renders | fetch | cancel | models | review`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Dict, List, Optional, Set

from ..client import Client, ClientError, state_name
from ..jobs import (
    PlateError,
    fetch_outputs,
    handle_frames,
    mask_frames,
    plate_frames,
    require_finished,
    server_paths,
    submit_render,
)
from ..pathmap import PathMap
from ..patterns import FramePattern, parse_frame_range
from ..proto import shotpass_pb2 as pb
from ..qc import qc_label, qc_problems, qc_summary
from .common import (
    EXIT_FAILED,
    client_args,
    connect,
    print_json,
    render_args,
    render_summary,
    spec_from_args,
)
from .progress import Bar


def add_commands(sub: Any) -> None:
    r = sub.add_parser("render", help="render a shot's frames through a pass")
    r.add_argument("plate", nargs="?", help="frame pattern: name.####.exr, name.%%04d.exr or name.$F4.exr")
    r.add_argument("--frames", help="frame range, e.g. 1-8 or 1001-1100x2 (default: all on disk)")
    r.add_argument("--context-handles", type=int, default=0, metavar="N",
                   help="video models: also read up to N plate frames before and after --frames as context, without "
                   "rendering them, so a pickup cuts back into the full render (give the full render's range)")
    r.add_argument("--detach", action="store_true", help="submit and exit without waiting")
    r.add_argument("--job-key", default="", metavar="KEY",
                   help="farm task of a job: tasks with one key add their frames to one render (one version) of the "
                   "shot; this task waits for, fetches and reports its own frames only")
    render_args(r)
    client_args(r)
    r.set_defaults(func=cmd_render)

    pv = sub.add_parser("preview", help="render one frame on the priority lane")
    pv.add_argument("plate", nargs="?", help="frame pattern")
    pv.add_argument("--frame", type=int, required=True)
    render_args(pv)
    client_args(pv)
    pv.set_defaults(func=cmd_preview)

    ls = sub.add_parser("renders", help="list renders")
    ls.add_argument("--project", default="")
    ls.add_argument("--shot", default="")
    ls.add_argument("--limit", type=int, default=50)
    client_args(ls)
    ls.set_defaults(func=cmd_renders)

    f = sub.add_parser("fetch", help="download a render's output frames")
    f.add_argument("render")
    f.add_argument("--out", required=True)
    f.add_argument("--partial", action="store_true", help="also fetch the finished frames of an unfinished render")
    client_args(f)
    f.set_defaults(func=cmd_fetch)

    c = sub.add_parser("cancel", help="cancel a render (finished frames are kept)")
    c.add_argument("render")
    client_args(c)
    c.set_defaults(func=cmd_cancel)

    m = sub.add_parser("models", help="list passes and models with their options")
    m.add_argument("--pass", dest="pass_name", default="")
    m.add_argument("--reload", action="store_true",
                   help="admin: the server re-reads its config's [models] and probes every folder (the queue stays)")
    client_args(m)
    m.set_defaults(func=cmd_models)

    rv = sub.add_parser("review", help="rate, pin, note or approve a render")
    rv.add_argument("render")
    rv.add_argument("--rating", type=int)
    rv.add_argument("--pin", dest="pinned", action="store_true", default=None)
    rv.add_argument("--unpin", dest="pinned", action="store_false")
    rv.add_argument("--note")
    rv.add_argument("--approve", dest="approved", action="store_true", default=None)
    rv.add_argument("--unapprove", dest="approved", action="store_false")
    client_args(rv)
    rv.set_defaults(func=cmd_review)


def _reference_render(text: Optional[str]) -> Optional[tuple]:
    if not text:
        return None
    render_id, _, frame = text.partition(":")
    return render_id, int(frame or 0)


def cmd_render(args: argparse.Namespace) -> int:
    if not args.plate and not args.from_render:
        raise PlateError("give a PLATE pattern, or --from-render RENDER to chain onto a render's outputs")
    frames = parse_frame_range(args.frames) if args.frames else None
    plate = plate_frames(args.plate, frames) if args.plate else {}
    mask = mask_frames(args.mask, sorted(plate)) if args.mask else {}
    if args.context_handles and not args.plate:
        raise PlateError("--context-handles reads plate frames around --frames: give a PLATE pattern")
    context = handle_frames(args.plate, sorted(plate), args.context_handles) if args.plate else {}
    spec = spec_from_args(args, args.plate)
    path_map = PathMap.parse(args.path_map)
    with connect(args) as client:
        bar = _bytes_bar(args, {**plate, **context}, mask)
        submitted = submit_render(
            client, spec, plate, mask, args.reference, _reference_render(args.reference_render),
            parent_render=args.from_render, parent_frames=frames or (), on_bytes=bar.update if bar else None,
            plate_paths=server_paths(plate, path_map), context=context, context_paths=server_paths(context, path_map),
        )
        if bar:
            bar.close()
        for w in submitted.warnings:
            print(f"shotpass render: warning: {w}", file=sys.stderr)
        if args.detach:
            return _finish(args, submitted.render, {}, submitted.bytes_uploaded, submitted.warnings)
        if args.job_key:
            mine = set(plate) or set(frames or ()) or {f.frame for f in submitted.render.frames}
            render = task_frames(_watch_task(args, client, submitted.render_id, mine), mine)
        else:
            render = _watch(args, client, submitted.render_id, submitted.render.frames_total)
        outputs: Dict[int, str] = {}
        if render.state == pb.FINISHED:
            pattern = FramePattern.parse(args.plate) if args.plate else None
            outputs = fetch_outputs(client, render, args.out, pattern)
        return _finish(args, render, outputs, submitted.bytes_uploaded, submitted.warnings)


def cmd_preview(args: argparse.Namespace) -> int:
    if not args.plate and not args.from_render:
        raise PlateError("give a PLATE pattern, or --from-render RENDER")
    plate = plate_frames(args.plate, [args.frame]) if args.plate else {}
    mask = mask_frames(args.mask, [args.frame]) if args.mask else {}
    with connect(args) as client:
        submitted = submit_render(
            client, spec_from_args(args, args.plate), plate, mask, args.reference,
            _reference_render(args.reference_render), parent_render=args.from_render,
            parent_frames=[args.frame] if args.from_render else (), preview=True,
            plate_paths=server_paths(plate, PathMap.parse(args.path_map)),
        )
        for w in submitted.warnings:
            print(f"shotpass preview: warning: {w}", file=sys.stderr)
        pattern = FramePattern.parse(args.plate) if args.plate else None
        outputs = fetch_outputs(client, submitted.render, args.out, pattern)
        return _finish(args, submitted.render, outputs, submitted.bytes_uploaded, submitted.warnings)


def _bytes_bar(args: argparse.Namespace, plate: Dict[int, str], mask: Dict[int, str]) -> Optional[Bar]:
    if args.json:
        return None
    total = sum(os.path.getsize(p) for p in list(plate.values()) + list(mask.values()))
    return Bar(total=total, unit="B", desc="upload")


def _watch(args: argparse.Namespace, client: Client, render_id: str, total: int) -> pb.Render:
    bar = None if args.json else Bar(total=total, unit="frame", desc=render_id)
    try:
        for event in client.watch(render_id):
            if bar is not None:
                show_event(bar, event)
    except KeyboardInterrupt:
        client.cancel(render_id)
        raise ClientError(f"interrupted: render {render_id} cancelled (finished frames kept on the server)") from None
    finally:
        if bar is not None:
            bar.close()
    return client.get_render(render_id)


def _watch_task(args: argparse.Namespace, client: Client, render_id: str, mine: Set[int]) -> pb.Render:
    """A farm task's wait: until each of its own frames is done or failed (other tasks' frames share the render,
    and the render may finish, take more frames and run again)."""
    bar = None if args.json else Bar(total=len(mine), unit="frame", desc=render_id)
    last = 0
    try:
        while True:
            for event in client.watch(render_id, after_sequence=last):
                last = event.sequence
                ours = event.frame in mine or event.kind in (pb.RenderEvent.FINISHED, pb.RenderEvent.SUSPENDED)
                if bar is not None and ours:
                    show_event(bar, event)
                if ours and _settled(client.get_render(render_id), mine):
                    return client.get_render(render_id)
            render = client.get_render(render_id)
            if _settled(render, mine):
                return render
            time.sleep(0.5)  # the stream ended on a FINISHED that was followed by more frames: watch on
    except KeyboardInterrupt:
        raise ClientError(f"interrupted: render {render_id} goes on for the job's other tasks "
                          f"(cancel it with: shotpass cancel {render_id})") from None
    finally:
        if bar is not None:
            bar.close()


def _settled(render: pb.Render, mine: Set[int]) -> bool:
    if render.state == pb.CANCELLED:
        return True
    ended = (pb.FRAME_DONE, pb.FRAME_FAILED, pb.FRAME_CANCELLED)
    return all(f.state in ended for f in render.frames if f.frame in mine)


def task_frames(render: pb.Render, mine: Set[int]) -> pb.Render:
    """The render as a farm task sees it: its own frames only, FINISHED when all of them are done."""
    task = pb.Render()
    task.CopyFrom(render)
    del task.frames[:]
    task.frames.extend(f for f in render.frames if f.frame in mine)
    task.frames_total = len(task.frames)
    task.frames_done = sum(1 for f in task.frames if f.state == pb.FRAME_DONE)
    if task.frames_done == task.frames_total:
        task.state, task.error = pb.FINISHED, ""
    elif render.state not in (pb.SUSPENDED,):
        task.state = pb.CANCELLED if render.state == pb.CANCELLED else pb.FAILED
    return task


def show_event(bar: Bar, event: pb.RenderEvent) -> None:
    if event.kind == pb.RenderEvent.FRAME_DONE:
        bar.n = event.frames_done
        bar.set_postfix_str(f"frame {event.frame}")
    elif event.kind == pb.RenderEvent.STEP:
        bar.set_postfix_str(f"frame {event.frame} step {event.step}/{event.total_steps}")
    elif event.kind == pb.RenderEvent.QUEUED:
        bar.set_postfix_str(f"queued, position {event.position}")
    elif event.kind in (pb.RenderEvent.WARNING, pb.RenderEvent.FRAME_FAILED):
        bar.write(f"{pb.RenderEvent.Kind.Name(event.kind).lower()}: frame {event.frame}: {event.message}")


def _finish(
    args: argparse.Namespace, render: pb.Render, outputs: Dict[int, str], uploaded: int, warnings: List[str]
) -> int:
    summary = render_summary(render)
    summary.update(outputs={str(k): v for k, v in sorted(outputs.items())}, bytes_uploaded=uploaded, warnings=warnings)
    if getattr(args, "job_key", ""):
        summary["job_key"] = args.job_key
    if args.json:
        print_json(summary)
    else:
        print(f"render {render.id} (v{render.version} of {render.project}/{render.shot}): "
              f"{summary['state']}, {render.frames_done}/{render.frames_total} frames, "
              f"{uploaded} bytes uploaded, {render.compute_seconds:.1f} device-seconds")
        if outputs:
            first, last = min(outputs), max(outputs)
            print(f"outputs: {len(outputs)} frames {first}-{last} in {os.path.abspath(args.out)}")
        qc = summary.get("qc")
        if qc and qc.get("flicker_ratio") is not None:
            print(f"flicker: {qc['flicker_ratio']:.2f}x the footage's own (1.0 = as steady as the plate)")
        for problem in qc_problems(qc):
            print(f"QC: {problem}")
    if render.state in (pb.QUEUED, pb.RUNNING) and getattr(args, "detach", False):
        return 0
    try:
        require_finished(render)
    except ClientError as err:
        print(f"shotpass {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_renders(args: argparse.Namespace) -> int:
    with connect(args) as client:
        renders = client.list_renders(args.project, args.shot, args.limit)
    if args.json:
        print_json({"renders": [render_summary(r, listing=True) for r in renders]})
        return 0
    for r in renders:
        review = "*" * r.review.rating
        review += (" pinned" if r.review.pinned else "") + (" approved" if r.review.approved else "")
        parent = f" <- {r.parent_render}" if r.parent_render else ""
        qc = qc_label(qc_summary(r, pairs=False))
        print(f"{r.id}  {r.project}/{r.shot} v{r.version:<3} {r.lane:<7} {state_name(r.state):<9} "
              f"{r.settings.pass_name}/{r.settings.model} {r.frames_done}/{r.frames_total}{parent} {review}"
              f"{'  ' + qc if qc else ''}".rstrip())
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    with connect(args) as client:
        render = client.get_render(args.render)
        if render.state != pb.FINISHED and not args.partial:
            require_finished(render)
        outputs = fetch_outputs(client, render, args.out)
    summary = render_summary(render)
    summary["outputs"] = {str(k): v for k, v in sorted(outputs.items())}
    if args.json:
        print_json(summary)
    else:
        print(f"fetched {len(outputs)} frames of {render.id} into {os.path.abspath(args.out)}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with connect(args) as client:
        render = client.cancel(args.render)
    if args.json:
        print_json(render_summary(render))
    else:
        kept = f"{render.frames_done}/{render.frames_total}"
        print(f"render {render.id}: {state_name(render.state)} ({kept} frames kept)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with connect(args) as client:
        models = client.reload_models() if args.reload else client.list_models(args.pass_name)
    if args.reload and args.pass_name:
        models = [m for m in models if m.pass_name == args.pass_name]
    if args.json:
        print_json({"models": [_model_dict(m) for m in models]})
        return 0
    for m in models:
        print(f"{m.pass_name:<12} {m.name:<30} {m.family:<11} x{m.scale}  {m.description}")
        if m.unavailable:
            print(f"{'':14}UNAVAILABLE: {m.unavailable}")
        for o in m.options:
            kind = pb.OptionSpec.Type.Name(o.type).lower()
            extra = f" [{'|'.join(o.choices)}]" if o.choices else ""
            print(f"{'':14}--option {o.name}=<{kind}> (default {o.default_value}){extra}: {o.description}")
    return 0


def _model_dict(m: pb.ModelInfo) -> Dict[str, Any]:
    return {
        "name": m.name, "pass": m.pass_name, "family": m.family, "scale": m.scale, "description": m.description,
        "licence": m.licence, "needs_mask": m.needs_mask, "uses_reference": m.uses_reference,
        "options": {o.name: o.default_value for o in m.options}, "unavailable": m.unavailable,
    }


def cmd_review(args: argparse.Namespace) -> int:
    with connect(args) as client:
        render = client.review(args.render, args.rating, args.pinned, args.note, args.approved)
    if args.json:
        summary = render_summary(render)
        summary["review"] = {"rating": render.review.rating, "pinned": render.review.pinned,
                             "note": render.review.note, "approved": render.review.approved}
        print_json(summary)
    else:
        print(f"render {render.id}: rating {render.review.rating}, pinned {render.review.pinned}, "
              f"approved {render.review.approved}, note {render.review.note!r}")
    return 0
