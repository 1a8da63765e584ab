"""shotpass client: the host-agnostic part of every shotpass plugin and of the CLI.

Pure Python on grpcio + protobuf, importable on Python 3.9 and later (Nuke 14-16, Blender 4.2-5.x).
"""

from .client import Client, ClientError
from .patterns import FramePattern, format_frame_list, parse_frame_range

__all__ = ["Client", "ClientError", "FramePattern", "format_frame_list", "parse_frame_range"]
__version__ = "0.1.0"
