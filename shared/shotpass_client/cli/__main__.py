"""`python -m shotpass_client.cli`: the `shotpass` command where no console script is on PATH."""

import sys

from . import main

sys.exit(main())
