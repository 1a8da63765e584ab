"""`shotpass suspend | resume | requeue | priority`: job control a farm user expects."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import state_name
from ..patterns import format_frame_list
from .common import client_args, connect, print_json, render_summary


def add_commands(sub: Any) -> None:
    s = sub.add_parser("suspend", help="start no more frames of a render (a running frame finishes) until resumed")
    s.add_argument("render")
    client_args(s)
    s.set_defaults(func=cmd_suspend)

    r = sub.add_parser("resume", help="put a suspended render back in the queue where it stopped")
    r.add_argument("render")
    client_args(r)
    r.set_defaults(func=cmd_resume)

    q = sub.add_parser("requeue", help="run a render's failed and cancelled frames again (finished frames are kept)")
    q.add_argument("render")
    q.add_argument("--frame-timeout", type=float, metavar="SECONDS",
                   help="the requeued frames' timeout (0: no limit; default: the render's)")
    client_args(q)
    q.set_defaults(func=cmd_requeue)

    p = sub.add_parser("priority", help="reorder: give a waiting render a new priority (higher starts first among "
                                        "your renders; above your max priority is refused)")
    p.add_argument("render")
    p.add_argument("priority", type=int, metavar="N")
    client_args(p)
    p.set_defaults(func=cmd_priority)


def _report(args: argparse.Namespace, render: Any, what: str) -> int:
    if args.json:
        print_json(render_summary(render))
    else:
        print(f"render {render.id} ({render.project}/{render.shot} v{render.version}): {what}, now "
              f"{state_name(render.state)}, {render.frames_done}/{render.frames_total} frames done")
    return 0


def cmd_suspend(args: argparse.Namespace) -> int:
    with connect(args) as client:
        return _report(args, client.suspend(args.render), "suspended")


def cmd_resume(args: argparse.Namespace) -> int:
    with connect(args) as client:
        return _report(args, client.resume(args.render), "resumed")


def cmd_requeue(args: argparse.Namespace) -> int:
    with connect(args) as client:
        before = {f.frame for f in client.get_render(args.render).frames if f.error}
        render = client.requeue(args.render, args.frame_timeout)
    return _report(args, render, f"frames {format_frame_list(before) or '-'} requeued")


def cmd_priority(args: argparse.Namespace) -> int:
    with connect(args) as client:
        render = client.set_priority(args.render, args.priority)
    if args.json:
        print_json({**render_summary(render), "priority": render.settings.priority})
        return 0
    return _report(args, render, f"priority {render.settings.priority}")
