"""``hafen-registry``: serve an OCI distribution registry from a directory.

hafen-registry --root /var/lib/hafen-registry --addr 127.0.0.1:5000
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="hafen-registry", description=__doc__)
    parser.add_argument("--root", default="/var/lib/hafen-registry", help="storage directory")
    parser.add_argument("--addr", default="127.0.0.1:5000", help="host:port to listen on")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    host, _, port = args.addr.rpartition(":")
    if not port.isdigit():
        parser.error(f"--addr {args.addr!r}: expected host:port")
    from hafen.registry.server import build_registry_app

    app = build_registry_app(Path(args.root))
    web.run_app(app, host=host or "127.0.0.1", port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
