"""The engine: builds the stores and services from a ``DaemonConfig`` and owns their lifecycle.

``Daemon`` is what the API serves. ``start`` re-adopts running containers (live
restore); ``close`` stops watching them but never stops them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
from pathlib import Path

from hafen.build.cache import BuildCache
from hafen.build.executor import Builder
from hafen.containers import logopts, userns
from hafen.containers.service import ContainerService, ServiceOptions
from hafen.daemon.build_runner import ContainerStepRunner, RegistryPuller
from hafen.daemon.config import DaemonConfig, hafen_pythonpath, python_module_command
from hafen.daemon.events import EventBus
from hafen.distribution.hosts import RegistryConfig
from hafen.distribution.service import Distribution
from hafen.errors import InvalidArgument, InvalidConfig
from hafen.images.service import ImageService
from hafen.network import netns, nft
from hafen.network.ports import PortPublisher, default_port_range
from hafen.network.service import BRIDGE_ON_HOST_HINT, NetworkService
from hafen.shim.client import close_zygotes, prestart_zygote
from hafen.store.content import FileContentStore
from hafen.store.metadata import MetadataStore
from hafen.store.snapshots import select_snapshotter
from hafen.volumes.service import VolumeService

log = logging.getLogger("hafen.daemon")


class Daemon:
    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.started_at = time.time()
        try:
            logopts.validate(config.log_driver, config.log_opts)
        except InvalidArgument as e:
            raise InvalidConfig(f"daemon.json log-driver/log-opts: {e.message}") from e
        for path in (config.data_root, config.exec_root, config.runtime_root):
            path.mkdir(parents=True, exist_ok=True)
        os.chmod(config.data_root, 0o711)
        self.metadata = MetadataStore(config.data_root / "metadata.db")
        self.events = EventBus(config.data_root / "events.jsonl")
        self.content = FileContentStore(config.data_root / "content")
        self.snapshotter = select_snapshotter(
            config.data_root / "snapshots", prefer=config.storage_driver or "overlay"
        )
        self.images = ImageService(self.content, self.metadata, self.snapshotter)
        remap = userns.resolve(config.userns_remap) if config.userns_remap else None
        self.volumes = VolumeService(
            self.metadata,
            config.data_root / "volumes",
            owner=(remap.uid_start, remap.gid_start) if remap else None,
        )
        self.distribution = Distribution(
            RegistryConfig(
                insecure_registries=list(config.insecure_registries),
                registry_mirrors=list(config.registry_mirrors),
                max_concurrent_downloads=config.max_concurrent_downloads,
                max_concurrent_uploads=config.max_concurrent_uploads,
            )
        )
        self.networks = NetworkService(
            self.metadata,
            config.exec_root,
            enabled=config.bridge_on_host or not netns.in_initial_namespace(),
            default_bridge_enabled=config.bridge != "none",
        )
        env = {"PYTHONPATH": hafen_pythonpath(), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.containers = ContainerService(
            ServiceOptions(
                data_root=config.data_root,
                exec_root=config.exec_root,
                runtime_root=config.runtime_root,
                shim_command=python_module_command("hafen.shim"),
                runtime_command=config.runtime_command,
                default_runtime=config.default_runtime,
                cgroup_parent=config.cgroup_parent,
                shim_env=env,
                log_driver=config.log_driver,
                log_opts=dict(config.log_opts),
                userns_remap=remap,
            ),
            self.metadata,
            self.images,
            self.snapshotter,
            self.volumes,
            self.networks,
        )
        self.containers.ports = (
            PortPublisher(
                _port_range(config.port_range),
                use_nft=config.iptables and nft.available(),
            )
            if self.networks.enabled
            else None
        )
        self.networks.on_change = self._masquerade
        self.volumes.set_users(self.containers.volume_users)
        self.containers.publish = self.events.publish
        self.build_cache = BuildCache(self.metadata)
        self.builder = Builder(
            self.images,
            ContainerStepRunner(self.containers),
            self.snapshotter,
            self.content,
            self.build_cache,
            config.data_root / "build",
            RegistryPuller(self.distribution, self.images),
        )
        self.builder.sweep()
        self.networks.set_users(self.containers.network_users)

    @property
    def storage_driver(self) -> str:
        name = getattr(self.snapshotter, "name", "overlay")
        return "overlay2" if name == "overlay" else str(name)

    async def start(self) -> None:
        # the shim zygote imports while the daemon restores (first start without the wait)
        opts = self.containers.options
        self._zygote = asyncio.create_task(
            prestart_zygote(opts.shim_command, opts.shim_env or None)
        )
        if self.containers.ports is not None:
            await self.containers.ports.start()  # stale rules go before re-adoption
        await self.containers.restore()
        running = {c.id for c in self.containers.list() if c.state.running}
        await asyncio.to_thread(self.networks.start, running)
        await asyncio.to_thread(self._masquerade)
        if not self.networks.enabled:
            log.warning(
                "bridge networking is off: hafend shares the machine's network namespace "
                f"({BRIDGE_ON_HOST_HINT} to create bridges)"
            )
        log.info(
            "hafend ready: data root %s, storage driver %s, %d containers",
            self.config.data_root,
            self.storage_driver,
            len(self.containers.list()),
        )

    def _masquerade(self) -> None:
        """Keep nftables in step with the networks: masquerade set, bridge isolation; then
        turn forwarding on (only here: without these rules bridges would reach each other)."""
        ports = self.containers.ports
        if ports is None or not ports.use_nft:
            return
        bridges = [n for n in self.networks.list() if n.driver == "bridge"]
        subnets = [n.subnet for n in bridges if n.masquerade] if self.config.ip_masq else []
        nft.set_masquerade(subnets)
        nft.set_isolation([(n.bridge, n.internal) for n in bridges])
        if self.config.ip_forward:
            try:
                Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
            except OSError as e:
                log.warning("cannot enable IP forwarding: %s", e)

    async def close(self) -> None:
        if self.containers.ports is not None:
            await self.containers.ports.close()
        await self.containers.shutdown()
        await self.events.close()
        self.metadata.close()
        await asyncio.to_thread(close_zygotes)

    def host_info(self) -> dict[str, str]:
        uname = platform.uname()
        return {
            "kernel": uname.release,
            "arch": uname.machine,
            "hostname": uname.node,
            "os": _os_name(),
        }


_DOCKER_FS_NAMES = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}


def backing_filesystem(path: Path) -> str:
    """The filesystem type under ``path`` (Docker's names: ext4 is "extfs")."""
    best, fs_type = "", "unknown"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                mount_point = fields[4].replace("\\040", " ")
                kind = fields[fields.index("-") + 1]
                inside = str(path) == mount_point or str(path).startswith(
                    mount_point.rstrip("/") + "/"
                )
                if inside and len(mount_point) >= len(best):
                    best, fs_type = mount_point, kind
    except (OSError, ValueError, IndexError):
        pass
    return _DOCKER_FS_NAMES.get(fs_type, fs_type)


def host_flag(path: str) -> bool:
    """A kernel switch read from /proc or /sys: true when the file holds a non-zero value."""
    try:
        return Path(path).read_text().strip() not in ("", "0")
    except OSError:
        return False


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip('"')
    except OSError:
        pass
    return "Linux"


def _port_range(text: str) -> tuple[int, int]:
    if not text:
        return default_port_range()
    from hafen.errors import InvalidConfig

    lo, sep, hi = text.partition("-")
    try:
        low, high = int(lo), int(hi if sep else lo)
    except ValueError:
        raise InvalidConfig(f"daemon.json: port-range {text!r}: expected LOW-HIGH")
    if not 0 < low <= high < 65536:
        raise InvalidConfig(f"daemon.json: port-range {text!r}: expected 1 <= LOW <= HIGH <= 65535")
    return low, high
