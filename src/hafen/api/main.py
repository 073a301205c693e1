"""``hafend``: parse flags, load daemon.json, build the ``Daemon`` and serve the Engine API.

The entry point lives here, above ``daemon/``, because serving the API is what starts
the daemon; ``daemon/`` itself knows nothing about HTTP.

Listening: a unix socket is ``0660 root:hafen`` (the group is created when missing), as
dockerd's is ``root:docker``. ``-H tcp://ADDR:PORT`` is served only with mutual TLS
(``--tlsverify --tlscacert --tlscert --tlskey``: clients must present a certificate
signed by that CA), because the API is root on the host; a plain TCP socket is refused
unless ``--insecure-tcp`` forces it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import grp
import logging
import os
import signal
import socket
import ssl
import sys
from dataclasses import dataclass
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
    p.add_argument(
        "-b", "--bridge", help='"none": no default bridge network (containers get only lo)'
    )
    p.add_argument(
        "--bridge-on-host",
        nargs="?",
        const=True,
        type=_flag_bool,
        metavar="BOOL",
        help="create bridges and nftables rules even in the machine's own network namespace "
        '(daemon.json "bridge-on-host"; off by default, unlike dockerd)',
    )
    for flag, what in (
        ("--iptables", "nftables DNAT for published ports and bridge isolation"),
        ("--ip-masq", "masquerade traffic leaving bridge networks"),
        ("--ip-forward", "enable IPv4 forwarding where bridges are made"),
    ):
        p.add_argument(flag, nargs="?", const=True, type=_flag_bool, metavar="BOOL", help=what)
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-l", "--log-level", help="debug, info, warn, error")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("--tlsverify", action="store_true", help="serve TCP with mutual TLS")
    p.add_argument("--tls", action="store_true", help="implied by --tlsverify")
    p.add_argument("--tlscacert", help="trust client certificates signed by this CA")
    p.add_argument("--tlscert", help="the server's certificate")
    p.add_argument("--tlskey", help="the server's key")
    p.add_argument(
        "--insecure-tcp",
        action="store_true",
        help="serve tcp:// hosts without TLS (anyone who reaches the port is root)",
    )
    return p.parse_args(argv)


def _flag_bool(text: str) -> bool:
    """dockerd's boolean flags: ``--iptables``, ``--iptables=false``."""
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r} (true or false)")


@dataclass
class TLSOptions:
    verify: bool = False
    cacert: str = ""
    cert: str = ""
    key: str = ""
    insecure_tcp: bool = False


def _tcp_address(host: str) -> tuple[str, int] | None:
    """(host, port) of a ``tcp://`` address; None for anything else."""
    if not host.startswith("tcp://"):
        return None
    rest = host[len("tcp://") :].rstrip("/")
    addr, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidConfig(f"invalid host address {host!r}: expected tcp://ADDRESS:PORT")
    return addr.strip("[]") or "0.0.0.0", int(port)


def ssl_context(tls: TLSOptions) -> ssl.SSLContext:
    """The server context for mutual TLS: our certificate, client certificates required."""
    missing = [
        flag
        for flag, value in (
            ("--tlscacert", tls.cacert),
            ("--tlscert", tls.cert),
            ("--tlskey", tls.key),
        )
        if not value
    ]
    if missing:
        raise InvalidConfig(f"--tlsverify needs {', '.join(missing)}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert, tls.key)
        ctx.load_verify_locations(tls.cacert)
    except (OSError, ssl.SSLError) as e:
        raise InvalidConfig(f"cannot load the TLS certificates: {e}") from e
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


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


def _lock_roots(config: DaemonConfig) -> None:
    """Hold an exclusive lock on the data root and the exec root for the daemon's life.

    Two daemons on one root would each restore, remove and write the same containers,
    images and snapshots; a second one (or a restart while the first is still shutting
    down) is refused until the first has exited. The kernel drops the lock with the
    process however it ends (the fd is close-on-exec, so no shim or zygote inherits it).
    """
    for root in (config.data_root, config.exec_root):
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / "hafend.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise InvalidConfig(
                f"another hafend{f' (pid {holder})' if holder else ''} is using {root}: "
                "stop it first, or give this one its own --data-root and --exec-root"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held_locks.append(fd)


_held_locks: list[int] = []
_SHUTDOWN_GRACE_SECONDS = 1.0


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


def ensure_group(group: str) -> int:
    """The gid of ``group``, creating it (a system group) when it is missing; 0 if we cannot."""
    with contextlib.suppress(KeyError):
        return grp.getgrnam(group).gr_gid
    if os.geteuid() == 0 and group:
        import subprocess

        result = subprocess.run(
            ["groupadd", "--system", group], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            log.info("created the group %s for the API socket", group)
        else:
            log.warning("cannot create the group %s: %s", group, result.stderr.strip())
    with contextlib.suppress(KeyError):
        return grp.getgrnam(group).gr_gid
    return 0


def _secure_socket(path: str, gid: int) -> None:
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)


async def serve(config: DaemonConfig, tls: TLSOptions | None = None) -> None:
    from hafen.api.app import build_app
    from hafen.daemon.daemon import Daemon

    tls = tls or TLSOptions()
    tcp = [a for a in (_tcp_address(h) for h in config.hosts) if a is not None]
    paths = [_unix_path(h) for h in config.hosts if not h.startswith("tcp://")]
    context: ssl.SSLContext | None = None
    if tcp:
        if tls.verify:
            context = ssl_context(tls)
        elif not tls.insecure_tcp:
            raise InvalidConfig(
                "refusing to serve tcp:// without --tlsverify: anyone who can reach the port "
                "would be root on this host (--insecure-tcp forces it)"
            )
    _lock_roots(config)
    for path in paths:
        _claim_socket(path)
    daemon = Daemon(config)
    await daemon.start()
    # a header may hold up to 2 MiB: X-Hafen-Build-Secrets carries build secrets (≤ 500 KiB
    # each, as BuildKit allows), X-Registry-Config every registry's credentials.
    # At shutdown, streaming clients (events, logs -f, attach, exec, stats) get a moment
    # to finish and are then cut off: containers run on (live restore), while aiohttp's
    # default grace kept the daemon up for two minutes with such a client attached
    runner = web.AppRunner(build_app(daemon), access_log=None, handle_signals=False,
                           max_field_size=2 * 1024 * 1024,
                           shutdown_timeout=_SHUTDOWN_GRACE_SECONDS)  # fmt: skip
    await runner.setup()
    gid = ensure_group(config.group) if paths else 0
    ours: dict[str, int] = {}
    for path in paths:
        await web.UnixSite(runner, path).start()
        _secure_socket(path, gid)
        ours[path] = os.stat(path).st_ino
        log.info("API listening on unix://%s", path)
    for address, port in tcp:
        await web.TCPSite(runner, address, port, ssl_context=context).start()
        if context is None:
            log.warning("API listening on tcp://%s:%d WITHOUT TLS (--insecure-tcp)", address, port)
        else:
            log.info("API listening on tcp://%s:%d (mutual TLS)", address, port)
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
        for path, inode in ours.items():
            with contextlib.suppress(FileNotFoundError):
                if os.stat(path).st_ino == inode:  # never another daemon's socket
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
                "bridge": args.bridge,
                "bridge_on_host": args.bridge_on_host,
                "iptables": args.iptables,
                "ip_masq": args.ip_masq,
                "ip_forward": args.ip_forward,
                "debug": args.debug,
            },
        )
        tls = TLSOptions(
            verify=bool(args.tlsverify),
            cacert=args.tlscacert or "",
            cert=args.tlscert or "",
            key=args.tlskey or "",
            insecure_tcp=bool(args.insecure_tcp),
        )
        if args.tls and not args.tlsverify:
            raise InvalidConfig(
                "--tls without --tlsverify would accept any client: use --tlsverify"
            )
        asyncio.run(serve(config, tls))
    except HafenError as e:
        print(f"hafend: {e.message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
