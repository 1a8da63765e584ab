"""Run in a bare interpreter of a Nuke Python (`pythonX.Y -S -E -s`): the plugin as Nuke loads it, then a render.

argv: plugin folder, server address, one plate EXR, output folder. Prints one JSON line for the test.
Only the standard library and the plugin folder are on sys.path; init.py must add everything else.
"""

import json
import os
import runpy
import sys

plugin, address, plate, out_dir = sys.argv[1:5]
sys.path.insert(0, plugin)
runpy.run_path(os.path.join(plugin, "init.py"))  # what Nuke does with each folder on NUKE_PATH

import google.protobuf  # noqa: E402
import grpc  # noqa: E402
import typing_extensions  # noqa: E402

import shotpass_client  # noqa: E402
from shotpass_client import Client  # noqa: E402
from shotpass_client.jobs import RenderSpec, fetch_outputs, require_finished, submit_render  # noqa: E402

with Client(address) as client:
    info = client.server_info()
    spec = RenderSpec(project="bare", shot=f"py{sys.version_info[0]}{sys.version_info[1]}", pass_name="passthrough",
                      model="passthrough", seed=1)
    submitted = submit_render(client, spec, {7: plate})
    for _ in client.watch(submitted.render_id):
        pass
    render = client.get_render(submitted.render_id)
    require_finished(render)
    outputs = fetch_outputs(client, render, out_dir)

loaded = sorted({os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(json.dumps({
    "python": list(sys.version_info[:2]),
    "grpc": grpc.__file__, "grpc_version": grpc.__version__, "protobuf": google.protobuf.__version__,
    "typing_extensions": typing_extensions.__file__, "client": shotpass_client.__file__,
    "server_version": info.version, "outputs": {str(k): v for k, v in outputs.items()},
    "loaded": loaded, "base_prefix": os.path.realpath(sys.base_prefix),
}))
