"""`shotpass serve | render | preview | renders | fetch | cancel | models | review | demo | users | projects | gc`.

`users`, `projects` and `gc` act on a data dir directly (like `serve`), never over the network: whoever can
write the data dir administers the server.

Every client command accepts --json: progress then goes nowhere and the last stdout line is one JSON
object. Errors are one line on stderr naming the file and frame, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from shotpass_client import Client, ClientError
from shotpass_client.client import DEFAULT_ADDRESS, state_name
from shotpass_client.connection import Connection
from shotpass_client.jobs import (
    PlateError,
    RenderSpec,
    fetch_outputs,
    plate_frames,
    require_finished,
    server_paths,
    submit_render,
)
from shotpass_client.pathmap import PathMap, PathMapError
from shotpass_client.patterns import FramePattern, PatternError, parse_frame_range
from shotpass_client.proto import shotpass_pb2 as pb

from .errors import ShotpassError

EXIT_USAGE, EXIT_FAILED = 2, 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ClientError, PlateError, PatternError, PathMapError, ShotpassError) as err:
        print(f"shotpass {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"shotpass {args.command}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="shotpass", description="Frame-perfect stylize, inpaint and upscale passes over EXR shots."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the server")
    s.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:50051; port 0 picks a free one)")
    s.add_argument("--data-dir", type=Path, help="where the catalog and blobs live (default ./shotpass-data)")
    s.add_argument("--config", type=Path, help="TOML config file")
    s.add_argument("--workers", type=int, help="CPU workers when no GPU is visible")
    s.add_argument("--tls-cert", type=Path, help="server certificate (PEM): serve TLS only ([tls] cert)")
    s.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM) ([tls] key)")
    s.add_argument("--tls-client-ca", type=Path, help="CA of client certificates: demand mutual TLS ([tls] client_ca)")
    s.add_argument("--metrics-listen", metavar="HOST:PORT",
                   help="serve Prometheus metrics at http://HOST:PORT/metrics ([server] metrics_listen; default off)")
    s.add_argument("--log-format", choices=("text", "json"), help="json: one JSON object per log line ([server] "
                   "log_format)")
    s.add_argument("--executor", choices=("local", "ray"),
                   help="local: one worker per visible GPU (default); ray: one actor per GPU of a Ray cluster")
    s.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster: auto, HOST:6379, or local to start one "
                   "on this box ([server] ray_address)")
    s.add_argument("--ray-workers", type=int, metavar="N",
                   help="CPU actors when the Ray cluster has no GPUs (default 1) ([server] ray_workers)")
    s.add_argument("--ray-rescan-s", type=float, metavar="S",
                   help="look for GPU boxes that joined the Ray cluster every S seconds, 0: never (default 15) "
                   "([server] ray_rescan_s)")
    s.set_defaults(func=cmd_serve)

    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data-dir", type=Path, help="the server's data dir (default ./shotpass-data)")
        sp.add_argument("--config", type=Path, help="the server's TOML config file (for its data_dir)")
        sp.add_argument("--json", action="store_true", help="print one JSON object")

    u = sub.add_parser("users", help="add, list or revoke users and their tokens (on the server's data dir)")
    usub = u.add_subparsers(dest="action", required=True)
    ua = usub.add_parser("add", help="add a user and print their token (shown once)")
    ua.add_argument("name")
    ua.add_argument("--admin", action="store_true", help="sees and manages every project")
    us = usub.add_parser("set", help="change a user's settings")
    us.add_argument("name")
    for sp in (ua, us):
        sp.add_argument("--max-priority", type=int, default=None if sp is us else 0, required=sp is us, metavar="N",
                        help="the highest render priority the user may ask for; above it is lowered to N "
                        "(default 0; admins are not capped)")
    ul = usub.add_parser("list", help="list users and their projects")
    ur = usub.add_parser("revoke", help="revoke a user's token (they are refused until `users token`)")
    ur.add_argument("name")
    ut = usub.add_parser("token", help="give a user a new token (the old one stops working)")
    ut.add_argument("name")
    for sp in (ua, us, ul, ur, ut):
        data_args(sp)
        sp.set_defaults(func=cmd_users)

    pj = sub.add_parser("projects", help="list projects and manage their members (on the server's data dir)")
    psub = pj.add_subparsers(dest="action", required=True)
    pl = psub.add_parser("list", help="list projects and their members")
    pa = psub.add_parser("add-member", help="let a user see and render in a project")
    pr = psub.add_parser("remove-member", help="take a user out of a project")
    for sp in (pa, pr):
        sp.add_argument("project")
        sp.add_argument("user")
    for sp in (pl, pa, pr):
        data_args(sp)
        sp.set_defaults(func=cmd_projects)

    g = sub.add_parser("gc", help="delete stored blobs no render uses (on the server's data dir)")
    g.add_argument("--older-than", type=float, metavar="DAYS",
                   help="only blobs unused this many days (default: [server] blob_retention_days, 30)")
    g.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    data_args(g)
    g.set_defaults(func=cmd_gc)

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

    def render_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--pass", dest="pass_name", default="", help="stylize, inpaint, upscale or passthrough")
        sp.add_argument("--model", default="", help="model name (default: the pass's default; see `shotpass models`)")
        sp.add_argument("--prompt", default="")
        sp.add_argument("--negative-prompt", default="")
        sp.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="model option (repeatable)")
        sp.add_argument("--seed", type=int)
        sp.add_argument("--colour-space", default="", help="the plate's colour space (default: scene-linear)")
        sp.add_argument("--view", default="", help="view of a stereo/multi-part EXR (default: the first)")
        sp.add_argument("--mask", help="mask plate pattern (inpaint); default: the plate's alpha")
        sp.add_argument("--reference", help="reference/style frame (EXR file)")
        sp.add_argument("--reference-render", metavar="RENDER[:FRAME]", help="use a render's output as reference")
        sp.add_argument("--from-render", default="", metavar="RENDER", help="chain: use a render's outputs as input")
        sp.add_argument("--project", default="default")
        sp.add_argument("--shot", default="", help="default: the plate's name")
        sp.add_argument("--label", default="")
        sp.add_argument("--priority", type=int, default=0)
        sp.add_argument("--out", required=True, help="folder for the output frames")
        sp.add_argument(
            "--path-map",
            default=os.environ.get("SHOTPASS_PATH_MAP", ""),
            metavar="LOCAL=SERVER[;...]",
            help="path mode: a plate under a mapped folder is read by the server from shared storage, "
            "nothing is uploaded ($SHOTPASS_PATH_MAP; the server must list the folder in [paths] roots)",
        )

    r = sub.add_parser("render", help="render a shot's frames through a pass")
    r.add_argument("plate", nargs="?", help="frame pattern: name.####.exr, name.%%04d.exr or name.$F4.exr")
    r.add_argument("--frames", help="frame range, e.g. 1-8 or 1001-1100x2 (default: all on disk)")
    r.add_argument("--detach", action="store_true", help="submit and exit without waiting")
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

    d = sub.add_parser("demo", help="make a small plate, preview, stylize with it as reference, chain an upscale")
    d.add_argument("--out", type=Path, default=Path("demo-out"))
    d.add_argument("--frames", type=int, default=6)
    d.set_defaults(func=cmd_demo)
    return p


# -------------------------------------------------------------------- serve


def cmd_serve(args: argparse.Namespace) -> int:
    from .app import ShotpassServer
    from .config import load_config
    from .logs import configure as configure_logs

    cfg = load_config(args.config)
    if args.listen:
        cfg.listen = args.listen
    if args.data_dir:
        cfg.data_dir = args.data_dir
    if args.workers:
        cfg.workers = args.workers
    cfg.executor = args.executor or cfg.executor
    cfg.ray_address = args.ray_address if args.ray_address is not None else cfg.ray_address
    cfg.ray_workers = args.ray_workers or cfg.ray_workers
    cfg.ray_rescan_s = args.ray_rescan_s if args.ray_rescan_s is not None else cfg.ray_rescan_s
    for key in ("cert", "key", "client_ca"):
        if getattr(args, f"tls_{key}"):
            setattr(cfg, f"tls_{key}", getattr(args, f"tls_{key}"))
    cfg.metrics_listen = args.metrics_listen if args.metrics_listen is not None else cfg.metrics_listen
    configure_logs(args.log_format or cfg.log_format)
    server = ShotpassServer(cfg)
    server.start()
    print(f"shotpass: serving on {server.address} (data in {cfg.data_dir}, TLS {server.tls_mode})", flush=True)
    if server.metrics_address:
        print(f"shotpass: metrics on http://{server.metrics_address}/metrics", flush=True)
    done = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        if done.is_set():  # a second signal: do not wait out the grace period
            server.manager.scheduler.halt()
            return
        # Through logging, so --log-format json keeps stderr one JSON object per line.
        logging.getLogger("shotpass").warning(
            "shotpass: shutting down; the running step may finish (up to %g s, [server] shutdown_grace_s; signal "
            "again to cancel it now)", cfg.shutdown_grace_s)
        done.set()

    def reload(signum: int, frame: Any) -> None:
        # Off the signal handler: probing reads every model folder.
        threading.Thread(target=_reload_models, args=(server,), name="shotpass-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)
    done.wait()
    server.stop()
    return 0


def _reload_models(server: Any) -> None:
    """SIGHUP: reload the model registry; a config that does not parse keeps the old one and says why."""
    try:
        server.reload_models()
    except Exception as err:
        logging.getLogger("shotpass").error("model registry not reloaded: %s", err)


def _accounts(args: argparse.Namespace) -> Any:
    from .accounts import Accounts
    from .catalog import Catalog
    from .config import load_config

    cfg = load_config(args.config)
    data_dir = Path(args.data_dir or cfg.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    # The catalog first: it creates the tables that membership and blob checks read.
    Catalog(data_dir / "catalog.sqlite").close()
    return Accounts(data_dir / "catalog.sqlite")


def cmd_users(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        if args.action in ("add", "token"):
            token = accounts.add_user(args.name, args.admin) if args.action == "add" else accounts.new_token(args.name)
            if args.json:
                print(json.dumps({"user": args.name, "token": token}))
            else:
                print(f"token for {args.name} (shown only now; give it to them, they set SHOTPASS_TOKEN):\n{token}")
        elif args.action == "set":
            accounts.set_max_priority(args.name, args.max_priority)
            print(json.dumps({"user": args.name, "max_priority": args.max_priority}) if args.json
                  else f"{args.name}: max priority {args.max_priority}")
        elif args.action == "revoke":
            accounts.revoke(args.name)
            print(json.dumps({"user": args.name, "revoked": True}) if args.json else f"{args.name}: token revoked")
        else:
            users = accounts.users()
            if args.json:
                print(json.dumps({"users": [{"name": u.name, "admin": u.admin, "revoked": u.revoked,
                                             "projects": u.projects, "max_priority": u.max_priority}
                                            for u in users]}))
            elif not users:
                print("no users: the server is single-user and needs no token (add one: shotpass users add NAME)")
            for u in users if not args.json else ():
                flags = (" admin" if u.admin else "") + (" REVOKED" if u.revoked else "")
                print(f"{u.name}{flags}  projects: {', '.join(u.projects) or '-'}")
    finally:
        accounts.close()
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    accounts = _accounts(args)
    try:
        if args.action == "add-member":
            accounts.add_member(args.project, args.user)
        elif args.action == "remove-member":
            accounts.remove_member(args.project, args.user)
        if args.action != "list":
            done = "added to" if args.action == "add-member" else "removed from"
            print(json.dumps({"project": args.project, "user": args.user, "action": args.action}) if args.json
                  else f"{args.user} {done} project {args.project}")
            return 0
        projects = accounts.projects()
        if args.json:
            print(json.dumps({"projects": {name: members for name, members in projects}}))
        for name, members in projects if not args.json else ():
            print(f"{name}  members: {', '.join(members) or '- (admins only)'}")
    finally:
        accounts.close()
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    """Blob garbage collection on a data dir; safe while the server runs (it re-checks every blob it deletes)."""
    from .blob_gc import collect
    from .blobs import BlobStore, human_bytes
    from .catalog import Catalog
    from .config import load_config

    cfg = load_config(args.config)
    data_dir = Path(args.data_dir or cfg.data_dir)
    if not (data_dir / "catalog.sqlite").is_file():
        raise ShotpassError(f"{data_dir} holds no shotpass data: pass --data-dir (the folder `shotpass serve` uses)")
    days = cfg.blob_retention_days if args.older_than is None else args.older_than
    if days < 0:
        raise ShotpassError(f"--older-than {days:g}: use a number of days of 0 or more")
    catalog = Catalog(data_dir / "catalog.sqlite")
    try:
        # Beside a running server: leave its in-flight temp files alone.
        store = BlobStore(data_dir / "blobs", clear_leftovers=False)
        report = collect(store, catalog, days, args.dry_run, cfg.partial_upload_retention_hours)
    finally:
        catalog.close()
    if args.json:
        print(json.dumps(report.as_dict()))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for digest, size in report.deleted:
        print(f"{verb} {digest}  {human_bytes(size)}")
    for path, size in report.partials:
        print(f"{verb} partial upload {path}  {human_bytes(size)}")
    print(report.summary())
    return 0


def _client(args: argparse.Namespace) -> Client:
    return Connection.resolve(args.server, args.token, args.tls_ca, args.tls_cert, args.tls_key).client()


# -------------------------------------------------------------------- render / preview


def _spec(args: argparse.Namespace, plate: Optional[str]) -> RenderSpec:
    options: Dict[str, str] = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise PlateError(f"--option {item!r}: write it as KEY=VALUE")
        options[key.strip()] = value.strip()
    shot = args.shot or (_shot_from_plate(plate) if plate else "shot")
    return RenderSpec(
        project=args.project,
        shot=shot,
        pass_name=args.pass_name,
        model=args.model,
        prompt=args.prompt,
        negative_prompt=args.negative_prompt,
        options=options,
        seed=args.seed,
        colour_space=args.colour_space,
        view=args.view,
        priority=args.priority,
        label=args.label,
    )


def _shot_from_plate(plate: str) -> str:
    base = os.path.basename(FramePattern.parse(plate).prefix).rstrip("._-")
    return base or "shot"


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
    mask = plate_frames(args.mask, sorted(plate)) if args.mask else {}
    spec = _spec(args, args.plate)
    with _client(args) as client:
        bar = _bytes_bar(args, plate, mask)
        submitted = submit_render(
            client, spec, plate, mask, args.reference, _reference_render(args.reference_render),
            parent_render=args.from_render, parent_frames=frames or (), on_bytes=bar.update if bar else None,
            plate_paths=server_paths(plate, PathMap.parse(args.path_map)),
        )
        if bar:
            bar.close()
        for w in submitted.warnings:
            print(f"shotpass render: warning: {w}", file=sys.stderr)
        if args.detach:
            return _finish(args, submitted.render, {}, submitted.bytes_uploaded, submitted.warnings)
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
    mask = plate_frames(args.mask, [args.frame]) if args.mask else {}
    with _client(args) as client:
        submitted = submit_render(
            client, _spec(args, args.plate), plate, mask, args.reference, _reference_render(args.reference_render),
            parent_render=args.from_render, parent_frames=[args.frame] if args.from_render else (), preview=True,
            plate_paths=server_paths(plate, PathMap.parse(args.path_map)),
        )
        for w in submitted.warnings:
            print(f"shotpass preview: warning: {w}", file=sys.stderr)
        pattern = FramePattern.parse(args.plate) if args.plate else None
        outputs = fetch_outputs(client, submitted.render, args.out, pattern)
        return _finish(args, submitted.render, outputs, submitted.bytes_uploaded, submitted.warnings)


def _bytes_bar(args: argparse.Namespace, plate: Dict[int, str], mask: Dict[int, str]) -> Any:
    if args.json:
        return None
    from tqdm import tqdm

    total = sum(os.path.getsize(p) for p in list(plate.values()) + list(mask.values()))
    return tqdm(total=total, unit="B", unit_scale=True, desc="upload", leave=False)


def _watch(args: argparse.Namespace, client: Client, render_id: str, total: int) -> pb.Render:
    bar = None
    if not args.json:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc=render_id)
    try:
        for event in client.watch(render_id):
            if bar is None:
                continue
            if event.kind == pb.RenderEvent.FRAME_DONE:
                bar.n = event.frames_done
                bar.set_postfix_str(f"frame {event.frame}")
                bar.refresh()
            elif event.kind == pb.RenderEvent.STEP:
                bar.set_postfix_str(f"frame {event.frame} step {event.step}/{event.total_steps}")
            elif event.kind == pb.RenderEvent.QUEUED:
                bar.set_postfix_str(f"queued, position {event.position}")
            elif event.kind in (pb.RenderEvent.WARNING, pb.RenderEvent.FRAME_FAILED):
                bar.write(f"{pb.RenderEvent.Kind.Name(event.kind).lower()}: frame {event.frame}: {event.message}")
    except KeyboardInterrupt:
        client.cancel(render_id)
        raise ClientError(f"interrupted: render {render_id} cancelled (finished frames kept on the server)") from None
    finally:
        if bar is not None:
            bar.close()
    return client.get_render(render_id)


def _finish(
    args: argparse.Namespace, render: pb.Render, outputs: Dict[int, str], uploaded: int, warnings: List[str]
) -> int:
    summary = render_summary(render)
    summary.update(outputs={str(k): v for k, v in sorted(outputs.items())}, bytes_uploaded=uploaded, warnings=warnings)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"render {render.id} (v{render.version} of {render.project}/{render.shot}): "
              f"{summary['state']}, {render.frames_done}/{render.frames_total} frames, "
              f"{uploaded} bytes uploaded, {render.compute_seconds:.1f} device-seconds")
        if outputs:
            first, last = min(outputs), max(outputs)
            print(f"outputs: {len(outputs)} frames {first}-{last} in {os.path.abspath(args.out)}")
    if render.state in (pb.QUEUED, pb.RUNNING) and getattr(args, "detach", False):
        return 0
    try:
        require_finished(render)
    except ClientError as err:
        print(f"shotpass {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def render_summary(render: pb.Render) -> Dict[str, Any]:
    return {
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
        "failed": {str(f.frame): f.error for f in render.frames if f.error},
        "compute_seconds": round(render.compute_seconds, 3),
        "error": render.error,
    }


# -------------------------------------------------------------------- other client commands


def cmd_renders(args: argparse.Namespace) -> int:
    with _client(args) as client:
        renders = client.list_renders(args.project, args.shot, args.limit)
    if args.json:
        print(json.dumps({"renders": [render_summary(r) for r in renders]}))
        return 0
    for r in renders:
        review = "*" * r.review.rating
        review += (" pinned" if r.review.pinned else "") + (" approved" if r.review.approved else "")
        parent = f" <- {r.parent_render}" if r.parent_render else ""
        print(f"{r.id}  {r.project}/{r.shot} v{r.version:<3} {r.lane:<7} {state_name(r.state):<9} "
              f"{r.settings.pass_name}/{r.settings.model} {r.frames_done}/{r.frames_total}{parent} {review}".rstrip())
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        render = client.get_render(args.render)
        if render.state != pb.FINISHED and not args.partial:
            require_finished(render)
        outputs = fetch_outputs(client, render, args.out)
    summary = render_summary(render)
    summary["outputs"] = {str(k): v for k, v in sorted(outputs.items())}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"fetched {len(outputs)} frames of {render.id} into {os.path.abspath(args.out)}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        render = client.cancel(args.render)
    if args.json:
        print(json.dumps(render_summary(render)))
    else:
        kept = f"{render.frames_done}/{render.frames_total}"
        print(f"render {render.id}: {state_name(render.state)} ({kept} frames kept)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.reload_models() if args.reload else client.list_models(args.pass_name)
    if args.reload and args.pass_name:
        models = [m for m in models if m.pass_name == args.pass_name]
    if args.json:
        print(json.dumps({"models": [_model_dict(m) for m in models]}))
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
    with _client(args) as client:
        render = client.review(args.render, args.rating, args.pinned, args.note, args.approved)
    if args.json:
        summary = render_summary(render)
        summary["review"] = {"rating": render.review.rating, "pinned": render.review.pinned,
                             "note": render.review.note, "approved": render.review.approved}
        print(json.dumps(summary))
    else:
        print(f"render {render.id}: rating {render.review.rating}, pinned {render.review.pinned}, "
              f"approved {render.review.approved}, note {render.review.note!r}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.frames)


if __name__ == "__main__":
    sys.exit(main())
