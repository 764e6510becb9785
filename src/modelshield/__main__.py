"""``python -m modelshield`` runs the command line.

$ python -m modelshield --version
"""

from __future__ import annotations

import sys

from modelshield.cli import main

if __name__ == "__main__":
    sys.exit(main())
