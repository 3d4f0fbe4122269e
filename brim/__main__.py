"""``python -m brim``: the same as the ``brimd`` command."""

import sys

from brim.server.cli import main

if __name__ == '__main__':
    sys.exit(main())
