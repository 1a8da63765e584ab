"""`shotpass stats`: cost per shot, sequence and project (device-seconds and frames)."""

from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List, Optional

from .common import client_args, connect, print_json

STAT_FIELDS = ("renders", "previews", "frames_done", "frames_failed", "device_seconds")


def add_commands(sub: Any) -> None:
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
