"""``python -m imgatlas``: the same command line, and the same exit codes, as the
``imgatlas`` script."""

import sys

from imgatlas.cli import main

if __name__ == "__main__":
    sys.exit(main())
