"""`python -m gmi.cli`: the same entry point as the `gmi` script."""

import sys

from gmi.cli import main

sys.exit(main())
