"""What the daemon loads before anyone asks for it: heavy libraries that only some
requests need stay out of an idle daemon's memory."""

from __future__ import annotations

import subprocess
import sys


def test_daemon_and_api_load_no_libnftables() -> None:
    """libnftables (~1.5 MB mapped, its own cache of the ruleset) is loaded at the first
    nftables change, which a daemon without bridges never makes."""
    # a fresh interpreter: other tests in this process may have loaded it already
    code = (
        "import hafen.api.main, hafen.api.app, hafen.daemon.daemon, hafen.network.ports; "
        "print('libnftables' in open('/proc/self/maps').read())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
