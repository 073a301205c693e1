"""What the daemon loads before anyone asks for it: heavy packages that only some
requests need stay out of an idle daemon's memory."""

from __future__ import annotations

import subprocess
import sys


def test_daemon_and_api_import_without_pyroute2() -> None:
    # a fresh interpreter: other tests in this process may have imported it already
    code = (
        "import sys, hafen.api.main, hafen.api.app, hafen.daemon.daemon; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyroute2'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
