"""`python -m assets.cli` runs the `assets` console script."""

import sys

from assets.cli import main

sys.exit(main())
