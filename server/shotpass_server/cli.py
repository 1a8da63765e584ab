"""The server's commands of `shotpass`: `serve | demo | users | projects | gc`.

The client commands live in shotpass_client.cli (they need no server extra); `main` is the one `shotpass`
command with both. `users`, `projects` and `gc` act on a data dir directly (like `serve`), never over the
network: whoever can write the data dir administers the server.

"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from shotpass_client.cli import main

from .errors import ShotpassError

__all__ = ["main", "add_server_commands"]
# One-line errors of the server's commands (the client CLI reports them like its own).
ERRORS = (ShotpassError,)


def add_server_commands(sub: Any) -> None:
    """Register the server's commands on the `shotpass` parser (shotpass_client.cli builds it)."""
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
    s.add_argument("--web", metavar="HOST:PORT",
                   help="also serve the review pages at http://HOST:PORT/ ([web] listen; default off)")
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
    pa.add_argument("--role", choices=("member", "viewer", "owner"),
                    help="viewer: sees the project's renders (and review pages) but cannot render, cancel or review")
    for sp in (pl, pa, pr):
        data_args(sp)
        sp.set_defaults(func=cmd_projects)

    g = sub.add_parser("gc", help="delete stored blobs no render uses (on the server's data dir)")
    g.add_argument("--older-than", type=float, metavar="DAYS",
                   help="only blobs unused this many days (default: [server] blob_retention_days, 30)")
    g.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    data_args(g)
    g.set_defaults(func=cmd_gc)

    d = sub.add_parser("demo", help="make a small plate, preview, stylize with it as reference, chain an upscale")
    d.add_argument("--out", type=Path, default=Path("demo-out"))
    d.add_argument("--frames", type=int, default=6)
    d.set_defaults(func=cmd_demo)


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
    cfg.web_listen = args.web if args.web is not None else cfg.web_listen
    configure_logs(args.log_format or cfg.log_format)
    server = ShotpassServer(cfg)
    server.start()
    print(f"shotpass: serving on {server.address} (data in {cfg.data_dir}, TLS {server.tls_mode})", flush=True)
    if server.metrics_address:
        print(f"shotpass: metrics on http://{server.metrics_address}/metrics", flush=True)
    if server.web is not None:
        print(f"shotpass: review pages on {server.web.url}", flush=True)
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
            token = (accounts.add_user(args.name, args.admin, args.max_priority) if args.action == "add"
                     else accounts.new_token(args.name))
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
            accounts.add_member(args.project, args.user, args.role)
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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.out, args.frames)


if __name__ == "__main__":
    sys.exit(main())
