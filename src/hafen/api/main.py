"""``hafend``: parse flags, load daemon.json, build the ``Daemon`` and serve the Engine API.

The entry point lives here, above ``daemon/``, because serving the API is what starts
the daemon; ``daemon/`` itself knows nothing about HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from aiohttp import web

from hafen import __version__
from hafen.daemon.config import DEFAULT_CONFIG_FILE, DaemonConfig, load_config
from hafen.errors import HafenError, InvalidConfig

log = logging.getLogger("hafen.daemon")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hafend", description="the hafen container engine daemon")
    p.add_argument("--data-root", help="root of persistent state (default /var/lib/hafen)")
    p.add_argument("--exec-root", help="root of runtime state (default /run/hafen)")
    p.add_argument("-H", "--host", action="append", dest="hosts", help="socket to listen on")
    p.add_argument("--config-file", default=DEFAULT_CONFIG_FILE, help="daemon.json path")
    p.add_argument("--storage-driver", help="overlay or vfs")
    p.add_argument("--default-runtime", help="hafen, runc, crun or one from daemon.json")
    p.add_argument("--group", help="group owning the socket (default hafen)")
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-l", "--log-level", help="debug, info, warn, error")
    p.add_argument("-v", "--version", action="store_true")
    return p.parse_args(argv)


def _unix_path(host: str) -> str:
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if host.startswith("/"):
        return host
    if host.startswith(("tcp://", "fd://")):
        raise InvalidConfig(
            f"cannot listen on {host}: hafend serves unix sockets only "
            "(an unauthenticated TCP socket would give root to anyone who can reach it)"
        )
    raise InvalidConfig(f"invalid host address {host!r}: expected unix:///path")


def _claim_socket(path: str) -> None:
    """Refuse to start when another daemon answers on ``path``; clear a stale socket."""
    if not os.path.exists(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: left behind by a killed daemon
        return
    finally:
        probe.close()
    raise InvalidConfig(f"another daemon is already listening on {path}")


def _secure_socket(path: str, group: str) -> None:
    gid = 0
    with contextlib.suppress(KeyError):
        gid = grp.getgrnam(group).gr_gid
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)


async def serve(config: DaemonConfig) -> None:
    from hafen.api.app import build_app
    from hafen.daemon.daemon import Daemon

    paths = [_unix_path(h) for h in config.hosts]
    for path in paths:
        _claim_socket(path)
    daemon = Daemon(config)
    await daemon.start()
    runner = web.AppRunner(build_app(daemon), access_log=None, handle_signals=False)
    await runner.setup()
    for path in paths:
        await web.UnixSite(runner, path).start()
        _secure_socket(path, config.group)
        log.info("API listening on unix://%s", path)
    pidfile = config.exec_root / "hafend.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down; containers keep running (live restore)")
        await runner.cleanup()
        await daemon.close()
        with contextlib.suppress(FileNotFoundError):
            pidfile.unlink()
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.version:
        print(f"hafend version {__version__}")
        return
    level = "debug" if args.debug else (args.log_level or "info")
    logging.basicConfig(
        level=getattr(logging, level.upper().replace("WARN", "WARNING"), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(
            Path(args.config_file),
            {
                "data_root": args.data_root,
                "exec_root": args.exec_root,
                "hosts": args.hosts,
                "storage_driver": args.storage_driver,
                "default_runtime": args.default_runtime,
                "group": args.group,
                "debug": args.debug,
            },
        )
        asyncio.run(serve(config))
    except HafenError as e:
        print(f"hafend: {e.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
