"""The `shotpass` command.

Client commands (render, preview, renders, fetch, cancel, review, models, suspend, resume, requeue, batch,
conform, farm, stats) live here and need only grpcio + protobuf, so `pip install shotpass` on a farm node or
an artist's workstation is enough. Server commands (serve, demo, users, projects, gc) come from the server
package when its extra is installed (`pip install 'shotpass[server]'`).

Every client command accepts --json: progress then goes nowhere and the last stdout line is one JSON
object. Errors are one line on stderr naming the file and frame, with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from typing import Any, List, Optional, Sequence, Tuple, Type

from ..batch import PresetError
from ..client import ClientError
from ..jobs import PlateError
from ..pathmap import PathMapError
from ..patterns import PatternError
from ..schedule import ScheduleError
from ..timeline import TimelineError
from .common import EXIT_FAILED, EXIT_USAGE

SERVER_COMMANDS = ("serve", "demo", "users", "projects", "gc")
# Imported by the server's commands; one missing means the server extra is not installed.
SERVER_MODULES = ("numpy", "OpenEXR", "PyOpenColorIO", "cv2", "onnxruntime")
CLIENT_ERRORS: Tuple[Type[BaseException], ...] = (ClientError, PlateError, PatternError, PathMapError, PresetError,
                                                  TimelineError, ScheduleError)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), "")
    if command in SERVER_COMMANDS:
        missing = missing_server_modules()
        if missing:
            print(f"shotpass {command}: the shotpass server is not installed here (missing {', '.join(missing)}); "
                  "install it with: pip install 'shotpass[server]'", file=sys.stderr)
            return EXIT_USAGE
    parser, errors = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.command == "serve" else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except errors as err:
        print(f"shotpass {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    except UnicodeEncodeError as err:  # text the wire cannot carry that no check above named more precisely
        bad = err.object[err.start : err.end] if isinstance(err.object, str) else ""
        print(f"shotpass {args.command}: error: an argument or file name is not valid UTF-8 text (near "
              f"{err.object[max(0, err.start - 20) : err.end + 20]!r}, bad part {bad!r}); use UTF-8 names",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"shotpass {args.command}: interrupted", file=sys.stderr)
        return 130


def missing_server_modules() -> List[str]:
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def build_parser() -> Tuple[argparse.ArgumentParser, Tuple[Type[BaseException], ...]]:
    """The parser with every command, and the error types a command reports as one line."""
    from . import control, edit, farm, renders, stats

    p = argparse.ArgumentParser(
        prog="shotpass", description="Frame-perfect stylize, inpaint and upscale passes over EXR shots.",
        epilog=f"server commands ({', '.join(SERVER_COMMANDS)}) come with the server: pip install 'shotpass[server]'",
    )
    sub = p.add_subparsers(dest="command", required=True)
    errors = CLIENT_ERRORS
    server = _server_cli()
    if server is not None:
        server.add_server_commands(sub)
        errors = errors + tuple(server.ERRORS)
    renders.add_commands(sub)
    control.add_commands(sub)
    edit.add_commands(sub)
    farm.add_commands(sub)
    stats.add_commands(sub)
    return p, errors


def _server_cli() -> Any:
    """The server's commands, when the server extra is installed (a client-only install has none)."""
    if missing_server_modules():
        return None
    try:
        from shotpass_server import cli
    except ImportError:
        return None
    return cli
