"""`python -m podsim.front.cli`: the `podsim` command."""

import sys

from podsim.front.cli import main

sys.exit(main())
