"""``python3 -S -m hafen.shim``: run the shim's command line."""

from __future__ import annotations

import sys

from hafen.shim.main import main

if __name__ == "__main__":
    sys.exit(main())
