"""``python -S -c "import hafen.runtime.__main__"`` (what hafen runs: see ``command``) or
``python -m hafen.runtime``: the same entry point as the ``hafen-runtime`` script.

Leaves with ``os._exit`` once stdout and stderr are flushed: every file the runtime
writes is closed by then, and the interpreter's own teardown (module and object
finalization, several ms) would only delay the caller, who waits on this process.
"""

from __future__ import annotations

import sys

from hafen.runtime import _os as os
from hafen.runtime.main import main

code = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except (OSError, ValueError):
    code = code or 1  # a closed or broken stdout: the output was lost
os._exit(code)
