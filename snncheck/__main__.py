"""`python -m snncheck`: the same command line as `snncheck`."""
import sys

from .cli import main

sys.exit(main())
