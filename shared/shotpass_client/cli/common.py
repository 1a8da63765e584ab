"""What every client command shares: connection flags, render flags, the JSON summary of a render."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

from ..client import DEFAULT_ADDRESS, Client, ClientError, state_name
from ..connection import Connection
from ..jobs import PlateError, RenderSpec, require_finished
from ..patterns import FramePattern
from ..proto import shotpass_pb2 as pb
from ..qc import qc_summary
from ..schedule import ScheduleError, as_settings, parse_option_at, parse_prompt_at

EXIT_USAGE, EXIT_FAILED = 2, 1


class UsageError(PlateError):
    """A command asked for something it cannot do as given (a missing setting, a bad option value)."""


def client_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--server", default=DEFAULT_ADDRESS, help=f"HOST:PORT (default {DEFAULT_ADDRESS}, or $SHOTPASS_SERVER)"
    )
    sp.add_argument("--token", default=os.environ.get("SHOTPASS_TOKEN"), help="access token (or $SHOTPASS_TOKEN)")
    sp.add_argument("--json", action="store_true", help="no progress; print one JSON object as the last line")
    env = os.environ.get
    sp.add_argument("--tls-ca", default=env("SHOTPASS_TLS_CA"), help="connect with TLS, trusting this CA (PEM) "
                    "($SHOTPASS_TLS_CA)")
    sp.add_argument("--tls-cert", default=env("SHOTPASS_TLS_CERT"), help="client certificate (PEM) for mutual "
                    "TLS ($SHOTPASS_TLS_CERT)")
    sp.add_argument("--tls-key", default=env("SHOTPASS_TLS_KEY"), help="its private key ($SHOTPASS_TLS_KEY)")


def settings_args(sp: argparse.ArgumentParser) -> None:
    """The settings of a render (what a preset file holds too)."""
    sp.add_argument("--pass", dest="pass_name", default="", help="stylize, inpaint, upscale or passthrough")
    sp.add_argument("--model", default="", help="model name (default: the pass's default; see `shotpass models`)")
    sp.add_argument("--prompt", default="")
    sp.add_argument("--negative-prompt", default="")
    sp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model option (repeatable)")
    sp.add_argument("--prompt-at", action="append", default=[], metavar="FRAME:PROMPT",
                    help="the prompt from this frame on, up to the next key (repeatable; before the first key: "
                         "--prompt)")
    sp.add_argument("--option-at", action="append", default=[], metavar="FRAME:KEY=VALUE",
                    help="a model option from this frame on, e.g. 1001:strength=0.4 (repeatable)")
    sp.add_argument("--seed", type=int)
    sp.add_argument("--colour-space", default="", help="the plate's colour space (default: scene-linear)")
    sp.add_argument("--view", default="", help="view of a stereo/multi-part EXR (default: the first)")
    sp.add_argument("--priority", type=int, default=0)
    sp.add_argument("--frame-timeout", type=float, default=0.0, metavar="SECONDS",
                    help="a frame still running after this many seconds fails with that reason (default: no limit)")


def render_args(sp: argparse.ArgumentParser) -> None:
    settings_args(sp)
    sp.add_argument("--mask", help="mask plate pattern (inpaint); default: the plate's alpha")
    sp.add_argument("--reference", help="reference/style frame (EXR file)")
    sp.add_argument("--reference-render", metavar="RENDER[:FRAME]", help="use a render's output as reference")
    sp.add_argument("--from-render", default="", metavar="RENDER", help="chain: use a render's outputs as input")
    sp.add_argument("--project", default="default")
    sp.add_argument("--shot", default="", help="default: the plate's name")
    sp.add_argument("--label", default="")
    sp.add_argument("--out", required=True, help="folder for the output frames")
    sp.add_argument(
        "--path-map",
        default=os.environ.get("SHOTPASS_PATH_MAP", ""),
        metavar="LOCAL=SERVER[;...]",
        help="path mode: a plate under a mapped folder is read by the server from shared storage, "
        "nothing is uploaded ($SHOTPASS_PATH_MAP; the server must list the folder in [paths] roots)",
    )


def connect(args: argparse.Namespace) -> Client:
    client = Connection.resolve(args.server, args.token, args.tls_ca, args.tls_cert, args.tls_key).client()
    # While the server restarts, a watch or a fetch waits for it; say so on stderr (stdout stays JSON).
    client.on_reconnect = lambda message: print(f"shotpass: {message}", file=sys.stderr, flush=True)
    return client


def parse_options(items: List[str]) -> Dict[str, str]:
    options: Dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PlateError(f"--option {item!r}: write it as KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def spec_from_args(args: argparse.Namespace, plate: Optional[str]) -> RenderSpec:
    shot = args.shot or (shot_from_plate(plate) if plate else "shot")
    try:
        prompt_by_frame, options_by_frame = parse_prompt_at(args.prompt_at), parse_option_at(args.option_at)
    except ScheduleError as err:
        raise PlateError(str(err)) from None
    return RenderSpec(
        project=args.project,
        shot=shot,
        pass_name=args.pass_name,
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        options=parse_options(args.option),
        seed=args.seed,
        colour_space=args.colour_space,
        view=args.view,
        priority=args.priority,
        label=args.label,
        frame_timeout=args.frame_timeout,
        job_key=getattr(args, "job_key", "") or "",
        prompt_by_frame=prompt_by_frame,
        options_by_frame=options_by_frame,
    )


def shot_from_plate(plate: str) -> str:
    base = os.path.basename(FramePattern.parse(plate).prefix).rstrip("._-")
    return base or "shot"


def render_summary(render: pb.Render, listing: bool = False) -> Dict[str, Any]:
    """One render as JSON; a listing (ListRenders) carries no frames, only their counts."""
    summary = {
        "render": render.id,
        "state": state_name(render.state),
        "project": render.project,
        "shot": render.shot,
        "version": render.version,
        "pass": render.settings.pass_name,
        "model": render.settings.model,
        "seed": render.settings.seed,
        "parent": render.parent_render,
        "frames": [f.frame for f in render.frames],
        "frames_done": render.frames_done,
        "frames_total": render.frames_total,
        "failed": {str(f.frame): f.error for f in render.frames if f.error},
        "compute_seconds": round(render.compute_seconds, 3),
        "error": render.error,
        "qc": qc_summary(render),
        **as_settings(dict(render.settings.prompt_by_frame),
                      {k: dict(v.values) for k, v in render.settings.options_by_frame.items()}),
    }
    if listing:
        del summary["frames"], summary["failed"]
    return summary


def print_json(payload: Dict[str, Any]) -> None:
    print(json.dumps(payload))


def fail(command: str, err: ClientError) -> int:
    print(f"shotpass {command}: error: {err}", file=sys.stderr)
    return EXIT_FAILED


def finished_or_fail(command: str, render: pb.Render) -> int:
    try:
        require_finished(render)
    except ClientError as err:
        return fail(command, err)
    return 0
