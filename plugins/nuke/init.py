"""shotpass for Nuke, init stage (no UI): put the plugin, its vendored grpcio/protobuf and the client on sys.path.

Nuke runs this for every folder on NUKE_PATH (and ~/.nuke). It must never stop Nuke from starting:
any failure prints a traceback and returns.
"""


def _shotpass_init():
    import os
    import sys
    import traceback

    try:
        here = os.path.dirname(os.path.abspath(__file__))
    except NameError:  # some Nuke versions exec init.py without __file__: find the folder on the plugin path
        roots = list(sys.path) + os.environ.get("NUKE_PATH", "").split(os.pathsep) + [os.path.expanduser("~/.nuke")]
        here = next((p for p in roots if p and os.path.isfile(os.path.join(p, "shotpass_nuke", "bootstrap.py"))), "")
    try:
        if here and here not in sys.path:
            sys.path.insert(0, here)
        from shotpass_nuke import bootstrap

        bootstrap.setup(here)
    except Exception:
        print("shotpass: init failed; the shotpass node will not be available")
        traceback.print_exc()


_shotpass_init()
del _shotpass_init
