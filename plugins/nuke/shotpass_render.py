"""Render ShotPass nodes of a saved script without the UI, for a terminal or a render farm.

    nuke -t /path/to/shotpass/plugins/nuke/shotpass_render.py /shows/x/sh010_comp_v003.nk [ShotPass1 ...] [--save]

Each named node (every ShotPass node when none is named) renders its frame range like its Render button:
the plate frame by frame, upload, the server's progress, the results into the node's output template.
Progress goes to stdout. --save writes the script back so its nodes list the new versions.
Exit status: 0 every render finished, 1 one failed, 2 no such node.
"""

import os
import sys


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from shotpass_nuke import bootstrap

    bootstrap.setup(here)
    save = "--save" in argv
    args = [a for a in argv if a != "--save"]
    if not args:
        print(__doc__)
        return 2
    from shotpass_nuke import host  # the one module that talks to nuke

    return host.render_script(args[0], args[1:], save=save)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
