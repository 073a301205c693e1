"""The container service: create, start, stop, kill, remove, wait, attach and re-adoption.

``ContainerService`` is the one place that changes a container's state. A container's
process is owned by its shim, never by the daemon: ``start`` launches a detached shim,
and a monitor task per running container waits on the shim's socket for the exit. When
the daemon restarts, ``restore`` re-adopts every shim still alive and records the exits
that happened while it was down (from the shim's ``exit.json``).

Blocking work (SQLite writes, mounts, file writes) runs in worker threads; the event
loop only coordinates.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal as signals
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hafen.containers import logopts
from hafen.containers.archive import ContainerFiles
from hafen.containers.control import ContainerControl
from hafen.containers.execs import ExecService
from hafen.containers.health import HealthMonitor, merge_healthcheck, validate_healthcheck
from hafen.containers.isolation import isolation_options, requested_apparmor_profile
from hafen.containers.limits import discard_unsupported
from hafen.containers.logs import parse_rfc3339 as parse_rfc3339_time
from hafen.containers.model import (
    Container,
    ContainerConfig,
    ContainerStateRecord,
    ContainerStatus,
    HostConfig,
)
from hafen.containers.names import VALID_NAME, generate_name
from hafen.containers.restart import Backoff, should_restart, validate_policy
from hafen.containers.userns import Remap, shift_rootfs, traversable
from hafen.errors import (
    Conflict,
    ContainerNotFound,
    Forbidden,
    HafenError,
    InvalidArgument,
    NotModified,
    NotRunning,
    RuntimeFailure,
)
from hafen.images.model import Image
from hafen.images.service import ImageUser
from hafen.network.dns import DNS_ADDRESS, EmbeddedDNS
from hafen.network.etcfiles import HostEntry, host_nameservers, hosts_file, resolv_conf
from hafen.network.model import Endpoint, EndpointRequest
from hafen.network.ports import PortPublisher, port_requests
from hafen.network.service import BRIDGE_ON_HOST_HINT, NetworkService
from hafen.oci import apparmor, defaults
from hafen.oci.spec import BindMount, SpecOptions, build_spec
from hafen.oci.user import resolve_group, resolve_user
from hafen.runtime import cgroups
from hafen.shim.client import (
    ExitStatus,
    ShimClient,
    ShimInfo,
    launch_shim,
    read_exit_status,
    read_shim_info,
)
from hafen.store._mount import is_mount_point
from hafen.store.metadata import MetadataStore
from hafen.volumes.model import MountPoint, Volume
from hafen.volumes.mounts import (
    copy_up,
    merge_mounts,
    parse_bind,
    parse_tmpfs,
    volumes_from_spec,
)
from hafen.volumes.service import VolumeService

log = logging.getLogger("hafen.containers")

DEFAULT_STOP_TIMEOUT = 10
_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")  # secrets.token_hex(32): also its snapshot key


class ImageLookup(Protocol):
    """What the container service needs from the image service."""

    def resolve(self, ref: str) -> Image: ...

    def layer_chain(self, image: Image) -> str | None: ...


class Publish(Protocol):
    """The event bus's publish, as the daemon hands it over."""

    def __call__(
        self, type: str, action: str, actor_id: str, attributes: dict[str, str] | None = None
    ) -> object: ...


class SnapshotLookup(Protocol):
    def prepare(self, key: str, parent_chain_id: str | None) -> None: ...

    def mount(self, key: str, target: Path, volatile: bool = False) -> None: ...

    def unmount(self, target: Path) -> None: ...

    def remove(self, key: str) -> None: ...

    def usage(self, key: str) -> int: ...

    def active_keys(self) -> list[str]: ...


@dataclass
class ServiceOptions:
    data_root: Path
    exec_root: Path
    runtime_root: Path
    shim_command: list[str]
    runtime_command: Callable[[str | None], list[str]]
    default_runtime: str = "hafen"
    cgroup_parent: str = "/hafen"
    userns_remap: Remap | None = None  # daemon-wide user-namespace remapping
    shim_env: dict[str, str] = field(default_factory=dict)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)


@dataclass
class AttachRequest:
    stdin: bool
    stdout: bool
    stderr: bool


def now_rfc3339() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def parse_signal(value: str | int | None, default: int) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"15"`` or 15 → 15."""
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    text = value.strip().upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return int(signals.Signals[text])
    except KeyError:
        if text.startswith("SIGRTMIN+") and text[9:].isdigit():
            return int(signals.SIGRTMIN) + int(text[9:])
        raise InvalidArgument(f"invalid signal: {value}")


def _exec_error_exit_code(message: str) -> int | None:
    """Docker's mapping of start failures: 127 not found, 126 cannot invoke."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered or "cannot execute" in lowered:
        return 126
    return None


class ContainerService:
    def __init__(
        self,
        options: ServiceOptions,
        metadata: MetadataStore,
        images: ImageLookup,
        snapshotter: SnapshotLookup,
        volumes: VolumeService | None = None,
        networks: NetworkService | None = None,
    ) -> None:
        self.options = options
        self.volumes = volumes
        self.networks = networks
        self.dns = EmbeddedDNS(self._dns_lookup) if networks is not None else None
        self.ports: PortPublisher | None = None  # set by the daemon when bridges are on
        self._mounted_volumes: dict[str, builtins.list[Volume]] = {}
        self._cgroup_support: cgroups.Support | None = None
        self.metadata = metadata
        self.images = images
        self.snapshotter = snapshotter
        self._containers: dict[str, Container] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[ContainerStateRecord]]] = {}
        self._remove_waiters: dict[str, list[asyncio.Future[ContainerStateRecord]]] = {}
        self._pending_attach: dict[
            str,
            list[
                tuple[
                    AttachRequest, asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
                ]
            ],
        ] = {}
        self._starting: set[str] = set()
        self._exiting: set[str] = set()  # exit being recorded (see _wait_exit)
        self.execs = ExecService(self)
        self.control = ContainerControl(self)
        self.files = ContainerFiles(self)
        self.health = HealthMonitor(self)
        self._background: set[asyncio.Task[Any]] = set()
        self._restart_tasks: dict[str, asyncio.Task[None]] = {}
        self._backoff: dict[str, Backoff] = {}
        self._no_restart: set[str] = set()  # being removed: an exit must not restart them
        # names taken by a create or rename under way (name -> container id): claimed on
        # the loop before their first await, so that two cannot both pass the check
        self._claimed_names: dict[str, str] = {}
        self.execs.on_event = self._exec_event
        self.publish: Publish | None = None
        (options.data_root / "containers").mkdir(parents=True, exist_ok=True)
        (options.exec_root / "containers").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lookup

    def list(self, all: bool = True) -> list[Container]:
        items = sorted(self._containers.values(), key=lambda c: c.created, reverse=True)
        return [c for c in items if all or c.state.running]

    def ids(self) -> builtins.set[str]:
        """The ids of every container (for caches to drop what was removed)."""
        return builtins.set(self._containers)

    def get(self, ref: str) -> Container:
        """By full id, name (with or without the leading slash) or unique id prefix."""
        if not ref:
            raise ContainerNotFound(ref)
        c = self._containers.get(ref)
        if c is not None:
            return c
        name = ref[1:] if ref.startswith("/") else ref
        for c in self._containers.values():
            if c.name == name:
                return c
        matches = [c for c in self._containers.values() if c.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"multiple IDs found with provided prefix: {ref}")
        raise ContainerNotFound(ref)

    def image_users(self, image_id: str) -> builtins.list[ImageUser]:
        """The containers made from an image, which keep it from being deleted."""
        return [
            ImageUser(container_id=c.id, running=c.state.running)
            for c in self._containers.values()
            if c.image_id == image_id
        ]

    def volume_users(self, name: str) -> builtins.list[str]:
        """The containers whose mounts reference volume ``name`` (in any state)."""
        return [
            c.id
            for c in builtins.list(self._containers.values())
            if any(m.type == "volume" and m.name == name for m in c.mount_points)
        ]

    def event(self, c: Container, action: str, **extra: str) -> None:
        """Publish a container event with Docker's attributes (labels, image, name)."""
        if self.publish is None:
            return
        attributes = {**c.config.labels, "image": c.image_ref or c.image_id, "name": c.name}
        attributes.update(extra)
        self.publish("container", action, c.id, attributes)

    def _exec_event(self, action: str, record: Any) -> None:
        c = self._containers.get(record.container_id)
        if c is None:
            return
        extra = {"execID": record.id}
        if action == "exec_die":
            extra["exitCode"] = str(record.exit_code)
        else:
            action = f"{action}: {' '.join(record.config.cmd)}"
        self.event(c, action, **extra)

    def network_users(self, network_id: str) -> builtins.list[str]:
        """The running containers with an endpoint on the network."""
        return [
            c.id
            for c in builtins.list(self._containers.values())
            if any(e.network_id == network_id for e in c.endpoints)
        ]

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _state_dir(self, c: Container) -> Path:
        return self.options.exec_root / "containers" / c.id

    def _data_dir(self, c: Container) -> Path:
        return self.options.data_root / "containers" / c.id

    async def _save(self, c: Container) -> None:
        record = c.to_json()  # here, on the loop: nothing changes it half-way
        await asyncio.to_thread(self._write_record, c, record)

    def _write_record(self, c: Container, record: str) -> None:
        with self.metadata.transaction() as db:
            db.execute(
                "INSERT INTO containers(id, name, image_id, created, record) VALUES(?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET name=excluded.name, record=excluded.record",
                (c.id, c.name, c.image_id, datetime.now().timestamp(), record),
            )

    # ------------------------------------------------------------------ create

    async def create(
        self,
        name: str | None,
        config: ContainerConfig,
        host_config: HostConfig,
        endpoints: dict[str, EndpointRequest] | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> Container:
        """A new container; limits the host cannot enforce are dropped with a message
        appended to ``warnings`` (dockerd's rules, see ``limits``)."""
        container_id = secrets.token_hex(32)
        if name:
            if not VALID_NAME.match(name):
                raise InvalidArgument(
                    f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )
            name = name.lstrip("/")
        else:
            taken = {c.name for c in self._containers.values()}
            name = generate_name(lambda n: n in taken or n in self._claimed_names)
        self._claim_name(name, container_id)
        try:
            return await self._create(container_id, name, config, host_config, endpoints, warnings)
        finally:
            self._claimed_names.pop(name, None)

    def _claim_name(self, name: str, container_id: str) -> None:
        """Take ``name`` for ``container_id`` until its record is in (the caller releases
        it); Conflict, in dockerd's words, when a container has it or is taking it."""
        holder = self._claimed_names.get(name)
        if holder is None:
            holder = next((o.id for o in self._containers.values() if o.name == name), None)
        if holder is not None and holder != container_id:
            raise Conflict(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{holder}". You have to remove (or rename) that container to be able '
                "to reuse that name."
            )
        self._claimed_names[name] = container_id

    async def _create(
        self,
        container_id: str,
        name: str,
        config: ContainerConfig,
        host_config: HostConfig,
        endpoints: dict[str, EndpointRequest] | None,
        warnings: builtins.list[str] | None,
    ) -> Container:
        validate_policy(
            host_config.restart_policy.name, host_config.restart_policy.maximum_retry_count
        )
        validate_healthcheck(config.healthcheck)
        dropped = discard_unsupported(host_config, self.cgroup_support())
        if warnings is not None:
            warnings.extend(dropped)
        host_config.log_type, host_config.log_config = logopts.effective(
            host_config.log_type,
            host_config.log_config,
            self.options.log_driver,
            self.options.log_opts,
        )
        logopts.validate(host_config.log_type, host_config.log_config)
        if host_config.auto_remove and host_config.restart_policy.name not in ("no", ""):
            raise Conflict("Conflicting options: AutoRemove and restart policy")
        image = await asyncio.to_thread(self.images.resolve, config.image)
        merged = _merge_image_config(config, image)
        if not merged.entrypoint and not merged.cmd:
            raise InvalidArgument("No command specified")
        argv = (merged.entrypoint or []) + (merged.cmd or [])
        if not merged.hostname:
            merged.hostname = container_id[:12]
        runtime = host_config.runtime or self.options.default_runtime
        self.options.runtime_command(runtime)  # unknown runtime → error now, not at start
        c = Container(
            id=container_id,
            name=name,
            created=now_rfc3339(),
            image_id=image.id,
            image_ref=config.image,
            config=merged,
            host_config=host_config,
            path=argv[0],
            args=argv[1:],
            snapshot_key=container_id,
            runtime=runtime,
        )
        data_dir = self._data_dir(c)
        c.log_path = str(
            data_dir / "local-logs" / "container.log"  # where dockerd keeps it
            if host_config.log_type == "local"
            else data_dir / f"{c.id}-json.log"
        )
        c.hostname_path = str(data_dir / "hostname")
        c.hosts_path = str(data_dir / "hosts")
        c.resolv_conf_path = str(data_dir / "resolv.conf")
        chain = self.images.layer_chain(image)
        created_volumes: builtins.list[str] = []

        def prepare() -> None:
            # host_enabled reads a file: here in the worker thread, not on the loop
            c.app_armor_profile = apparmor.container_profile(
                requested_apparmor_profile(host_config),
                host_config.privileged,
                apparmor.host_enabled(),
            )
            c.networks = self._plan_networks(host_config, endpoints or {})
            c.mount_points = self._plan_mounts(merged, host_config, created_volumes)
            data_dir.mkdir(parents=True, exist_ok=True)
            self.snapshotter.prepare(c.snapshot_key, chain)
            # recorded in the same trip to the thread: nobody else sees c before it is
            self._write_record(c, c.to_json())

        try:
            await asyncio.to_thread(prepare)
            self._containers[c.id] = c
        except BaseException:
            self._containers.pop(c.id, None)
            await asyncio.to_thread(self._discard_storage, c)
            await asyncio.to_thread(self._remove_volumes, created_volumes)
            raise
        self.event(c, "create")
        return c

    # ------------------------------------------------------------------ networks

    def _plan_networks(
        self, hc: HostConfig, endpoints: dict[str, EndpointRequest]
    ) -> dict[str, EndpointRequest]:
        mode = hc.network_mode or "default"
        if mode.startswith("container:"):
            self.get(mode.partition(":")[2])
            if hc.port_bindings or hc.publish_all_ports:
                raise InvalidArgument(
                    "conflicting options: port publishing and the container type network mode"
                )
        publishing = bool(hc.port_bindings or hc.publish_all_ports)
        if publishing and mode != "host" and (self.networks is None or not self.networks.enabled):
            raise InvalidArgument(
                "published ports need bridge networking, which is off on this daemon (it shares "
                f"the machine's network namespace; {BRIDGE_ON_HOST_HINT} to turn it on)"
            )
        if any(h.partition(":")[2] == "host-gateway" for h in hc.extra_hosts) and not (
            self.host_gateway()
        ):
            raise InvalidArgument(
                "unable to derive the IP value for host-gateway: this daemon has no default "
                "bridge network"
            )
        if self.networks is None:
            return {}
        return self.networks.requests_for(mode, endpoints)

    def host_gateway(self) -> str:
        """What ``--add-host NAME:host-gateway`` maps to: the default bridge's gateway
        (dockerd's default host-gateway-ip); "" where there is no bridge."""
        networks = self.networks
        if networks is None or not networks.enabled or not networks.default_bridge_enabled:
            return ""
        try:
            return networks.get("bridge").gateway
        except HafenError:
            return ""

    def _network_up(self, c: Container) -> None:
        """Make and wire the container's namespace before its start (worker thread)."""
        if self.networks is None or not c.networks:
            return
        path, endpoints = self.networks.attach(c.id, c.networks)
        c.netns_path, c.endpoints = path, endpoints

    def _network_down(self, c: Container) -> None:
        if self.networks is None or not (c.endpoints or c.netns_path):
            return
        ids = {e.network_id for e in c.endpoints}
        self.networks.detach(c.id, c.endpoints)
        c.endpoints, c.netns_path = [], ""
        self._refresh_peers(ids, exclude=c.id)

    def _dns_lookup(self, container_id: str, name: str) -> builtins.list[str] | None:
        """The embedded DNS's answer for ``name`` asked by a container (None: not ours)."""
        c = self._containers.get(container_id)
        if c is None:
            return None
        mine = {e.network_id: e.network_name for e in c.endpoints if _user_network(e)}
        for net_name in mine.values():  # "web.front" → "web" on network front
            if name.endswith("." + net_name.lower()):
                name = name[: -len(net_name) - 1]
                break
        found: builtins.list[str] = []
        for other in builtins.list(self._containers.values()):
            if not other.state.running and other.id not in self._starting:
                continue
            names = {other.name.lower(), other.short_id, other.config.hostname.lower()}
            for e in other.endpoints:
                if e.network_id in mine and (
                    name in names or name in {a.lower() for a in e.aliases}
                ):
                    found.append(e.ip)
        return found or None

    async def _dns_up(self, c: Container) -> None:
        if self.dns is None or not c.netns_path or not any(map(_user_network, c.endpoints)):
            return
        upstreams = list(c.host_config.dns)
        if not upstreams:
            try:
                upstreams = host_nameservers(
                    await asyncio.to_thread(Path("/etc/resolv.conf").read_text)
                )
            except OSError:
                upstreams = []
        await self.dns.add(c.id, c.netns_path, upstreams)

    async def _ports_up(self, c: Container) -> None:
        """Publish -p/-P ports to the container's first address (before its process starts)."""
        hc = c.host_config
        if self.ports is None or not c.endpoints:
            return
        requests = port_requests(c.config.exposed_ports, hc.port_bindings, hc.publish_all_ports)
        if requests:
            c.ports = await self.ports.publish(c.id, c.endpoints[0].ip, requests)

    async def _ports_down(self, c: Container) -> None:
        if self.ports is not None:
            await self.ports.unpublish(c.id)
        c.ports = []

    def _dns_down(self, c: Container) -> None:
        if self.dns is not None:
            self.dns.remove(c.id)

    def _network_namespace(self, c: Container) -> str:
        mode = c.host_config.network_mode
        if mode == "host":
            return "host"
        if mode.startswith("container:"):
            other = self.get(mode.partition(":")[2])
            if not other.state.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return other.netns_path or f"/proc/{other.state.pid}/ns/net"
        return c.netns_path

    def _peers(self, c: Container) -> builtins.list[HostEntry]:
        """Containers sharing a user-defined network with ``c``, as hosts entries."""
        mine = {
            e.network_id for e in c.endpoints if e.network_name not in ("bridge", "host", "none")
        }
        entries = []
        for other in builtins.list(self._containers.values()):
            if other.id == c.id or (not other.state.running and other.id not in self._starting):
                continue
            for e in other.endpoints:
                if e.network_id in mine:
                    names = [other.name, *e.aliases, other.short_id]
                    if other.config.hostname and other.config.hostname not in names:
                        names.append(other.config.hostname)
                    entries.append(HostEntry(e.ip, names))
        return entries

    def _refresh_peers(self, network_ids: set[str], exclude: str = "") -> None:
        """Rewrite the hosts files of running containers on these networks (in place).

        Only user-defined networks put peers in hosts files: a container coming or going
        on the default bridge rewrites none (each start and exit rewrote every running
        container's on it)."""
        gateway: str | None = None  # looked up once (it reads the networks table)
        for other in builtins.list(self._containers.values()):
            if other.id == exclude or not other.endpoints:
                continue
            if any(e.network_id in network_ids and _user_network(e) for e in other.endpoints):
                if gateway is None:
                    gateway = self.host_gateway()
                try:
                    _write_hosts(other, self._peers(other), gateway)
                except OSError as e:
                    log.warning("updating hosts of %s: %s", other.short_id, e)

    async def connect(self, ref: str, network_ref: str, req: EndpointRequest) -> None:
        """``network connect``: now for a running container, at its next start otherwise."""
        if self.networks is None:
            raise InvalidArgument("networking is not available on this daemon")
        c = self.get(ref)
        networks = self.networks
        async with self._lock(c.id):
            network = await asyncio.to_thread(networks.get, network_ref)
            mode = c.host_config.network_mode
            if mode in ("host", "none") or mode.startswith("container:"):
                raise Forbidden(
                    f"container sharing network namespace with another container or host "
                    f"cannot be connected to any other network (mode {mode})"
                )
            if network.id in c.networks:
                raise Forbidden(
                    f"endpoint with name {c.name} already exists in network {network.name}"
                )
            resolved = await asyncio.to_thread(
                networks.requests_for, network.name, {network.name: req}
            )
            req = resolved[network.id]  # validated, with the network's name for inspect
            if c.state.running and c.netns_path:
                endpoint = await asyncio.to_thread(
                    networks.connect, c.id, c.netns_path, network.id, req, c.endpoints
                )
                c.endpoints.append(endpoint)
                await asyncio.to_thread(self._refresh_peers, {network.id})
                if _user_network(endpoint) and self.dns is not None and not self.dns.serves(c.id):
                    # dockerd starts the embedded server when a container first joins a
                    # user-defined network, and points its resolv.conf at it
                    await self._dns_up(c)
                    await asyncio.to_thread(_write_resolv_conf, c)
            c.networks[network.id] = req
            await self._save(c)

    async def disconnect(self, ref: str, network_ref: str, force: bool = False) -> None:
        if self.networks is None:
            raise InvalidArgument("networking is not available on this daemon")
        c = self.get(ref)
        networks = self.networks
        async with self._lock(c.id):
            network = await asyncio.to_thread(networks.get, network_ref)
            if network.id not in c.networks:
                if force:
                    return
                raise Forbidden(f"container {c.id} is not connected to network {network.name}")
            ports_target = c.endpoints[0].network_id if c.endpoints else ""
            for endpoint in [e for e in c.endpoints if e.network_id == network.id]:
                await asyncio.to_thread(networks.disconnect, endpoint)
                c.endpoints.remove(endpoint)
            del c.networks[network.id]
            if ports_target == network.id and c.ports and self.ports is not None:
                # published ports point at the address just released (another container
                # may get it): they move to the next network's address, or close
                fixed = list(c.ports)
                await self.ports.unpublish(c.id)
                c.ports = []
                if c.endpoints:
                    c.ports = await self.ports.publish(c.id, c.endpoints[0].ip, [], fixed=fixed)
            await self._save(c)
            await asyncio.to_thread(self._refresh_peers, {network.id})
            if c.state.running:
                await asyncio.to_thread(_write_hosts, c, self._peers(c), self.host_gateway())

    # ------------------------------------------------------------------ mounts

    def _plan_mounts(
        self, config: ContainerConfig, hc: HostConfig, created: builtins.list[str]
    ) -> builtins.list[MountPoint]:
        """Resolve every mount of a new container; creates the volumes it names (worker
        thread). Anonymous volumes it made are appended to ``created`` for clean-up."""
        inherited: builtins.list[MountPoint] = []
        for spec in hc.volumes_from:
            ref, mode = volumes_from_spec(spec)
            other = self.get(ref)
            for m in other.mount_points:
                if m.type == "tmpfs":
                    continue
                rw = m.rw if mode is None else mode == "rw"
                inherited.append(replace(m, rw=rw, anonymous=False, copy_up=False))
        user = [parse_bind(b) for b in hc.binds]
        user += [replace(m) for m in hc.mounts]
        user += [parse_tmpfs(dest, opts) for dest, opts in hc.tmpfs.items()]
        points = merge_mounts(inherited, user, builtins.list(config.volumes))
        if any(m.type == "volume" for m in points) and self.volumes is None:
            raise InvalidArgument("volumes are not available on this daemon")
        for m in points:
            if m.type == "bind" and not m.create_source and not os.path.exists(m.source):
                raise InvalidArgument(
                    f'invalid mount config for type "bind": bind source path does not exist: '
                    f"{m.source}"
                )
            if m.type != "volume" or self.volumes is None:
                continue
            if not m.name:
                volume = self.volumes.create_anonymous(m.driver or "local", m.volume_options)
                created.append(volume.name)
                m.name, m.anonymous = volume.name, True
            else:
                volume = self.volumes.create(
                    m.name, m.driver or "local", m.volume_options, m.volume_labels
                )
            m.source, m.driver = volume.mountpoint, volume.driver
        return points

    def _remove_volumes(self, names: builtins.list[str]) -> None:
        if self.volumes is None:
            return
        for name in names:
            try:
                self.volumes.remove(name)
            except HafenError as e:
                log.info("keeping volume %s: %s", name, e)

    def _mount_all(self, c: Container, rootfs: Path) -> builtins.list[BindMount]:
        """Mount the container's volumes (copy-up on first use); its mounts for the spec."""
        binds: builtins.list[BindMount] = []
        mounted: builtins.list[Volume] = []
        try:
            for m in c.mount_points:
                if m.type == "volume" and self.volumes is not None:
                    volume = self.volumes.get(m.name)
                    path = self.volumes.mount(volume)
                    mounted.append(volume)
                    if m.copy_up:
                        copy_up(rootfs, m.destination, path)
                    binds.append(BindMount(path, m.destination, read_only=not m.rw))
                elif m.type == "bind":
                    if not os.path.exists(m.source):
                        if not m.create_source:
                            raise InvalidArgument(
                                'invalid mount config for type "bind": bind source path does '
                                f"not exist: {m.source}"
                            )
                        _make_bind_source(m.source, self._remap(c))  # Docker creates them
                    binds.append(
                        BindMount(
                            m.source,
                            m.destination,
                            read_only=not m.rw,
                            propagation=m.propagation or "rprivate",
                        )
                    )
                elif m.type == "tmpfs":
                    binds.append(
                        BindMount("tmpfs", m.destination, kind="tmpfs", options=m.tmpfs_options)
                    )
        except BaseException:
            self._unmount_volumes(mounted)
            raise
        self._mounted_volumes[c.id] = mounted
        return binds

    def _unmount_volumes(self, volumes: builtins.list[Volume]) -> None:
        for volume in volumes:
            try:
                if self.volumes is not None:
                    self.volumes.unmount(volume)
            except (HafenError, OSError) as e:
                log.warning("unmounting volume %s: %s", volume.name, e)

    def _remount_volumes(self, c: Container) -> None:
        """A re-adopted container holds its volumes again (restores the mount counts)."""
        if self.volumes is None:
            return
        mounted = []
        for m in c.mount_points:
            if m.type == "volume":
                try:
                    volume = self.volumes.get(m.name)
                    self.volumes.mount(volume)
                    mounted.append(volume)
                except HafenError as e:
                    log.warning("volume %s of %s: %s", m.name, c.short_id, e)
        self._mounted_volumes[c.id] = mounted

    def _discard_storage(self, c: Container) -> None:
        try:
            self.snapshotter.remove(c.snapshot_key)
        except (HafenError, OSError) as e:
            log.warning("removing snapshot of %s: %s", c.short_id, e)
        shutil.rmtree(self._data_dir(c), ignore_errors=True)
        self._drop_state_dir(self._state_dir(c))

    # ------------------------------------------------------------------ start

    async def start(self, ref: str, by_policy: bool = False) -> Container:
        """Start a container (``by_policy``: a restart policy's, which a stop overrides)."""
        c = self.get(ref)
        if not by_policy:
            self._cancel_restart(c.id)
        async with self._lock(c.id):
            if by_policy and (
                c.has_been_manually_stopped or c.state.status != ContainerStatus.RESTARTING
            ):
                return c
            if c.state.running:
                raise NotModified("container already started")
            if c.state.status == ContainerStatus.REMOVING:
                raise Conflict(f"container {c.id} is marked for removal and cannot be started")
            self._starting.add(c.id)
            failure: HafenError | None = None
            try:
                await self._start_locked(c)
            except HafenError as e:
                if not c.host_config.auto_remove:
                    raise
                failure = e
            finally:
                self._starting.discard(c.id)
        if failure is not None:
            # as dockerd: an --rm container that cannot start is removed with its anonymous
            # volumes (a client waiting for condition=removed would otherwise wait forever)
            try:
                await self.remove(c.id, force=True, volumes=True)
            except HafenError as e:
                log.warning("auto-removing %s after a failed start: %s", c.short_id, e)
            raise failure
        return c

    async def _start_locked(self, c: Container) -> None:
        state_dir = self._state_dir(c)
        rootfs = state_dir / "rootfs"
        runtime = self.options.runtime_command(c.runtime or None)
        try:
            if c.networks:  # none with networking off or --network none/host: no thread trips
                await asyncio.to_thread(self._network_up, c)
                peers = {e.network_id for e in c.endpoints if _user_network(e)}
                if peers:  # the default bridge puts no peers in hosts files
                    await asyncio.to_thread(self._refresh_peers, peers, c.id)
                await self._dns_up(c)
                await self._ports_up(c)
                # recorded before the launch, which starts the container: a daemon that
                # dies before the record says "running" leaves what restore needs to
                # adopt the container with its networking, or to release it
                await self._save(c)
            if state_dir.exists():  # what an earlier run left (a restart's)
                await asyncio.to_thread(self._clear_bundle, state_dir, rootfs)
            # The shim is launched while the bundle is made: it sets itself up meanwhile
            # and waits for the bundle (launch_shim's bundle_ready) before its create.
            bundle = asyncio.ensure_future(
                asyncio.to_thread(self._prepare_bundle, c, state_dir, rootfs)
            )
            # One attacher (docker run, start -a) or none: the launch connects it and
            # starts the container itself, one trip to the shim instead of three.
            waiting = [(r, f) for r, f in self._pending_attach.get(c.id, []) if not f.done()]
            merged = waiting[0][0] if len(waiting) == 1 else None
            try:
                info = await self._launch(
                    c, state_dir, runtime, bundle, start=len(waiting) <= 1, attach=merged
                )
            finally:
                if not bundle.done():  # the launch failed before it waited for the bundle
                    with contextlib.suppress(BaseException):
                        await bundle
        except HafenError as e:
            raise await self._start_failed(c, rootfs, e) from e
        except Exception as e:
            err = RuntimeFailure(f"failed to start container {c.short_id}: {e}")
            raise await self._start_failed(c, rootfs, err) from e
        shim = ShimClient(str(state_dir))
        # attachers that arrived before start get every byte: connect them first
        for req, fut in self._pending_attach.pop(c.id, []):
            if req is merged and info.attached is not None:
                if fut.done():  # its client left during the launch
                    info.attached[1].close()
                else:
                    fut.set_result(info.attached)
                continue
            if fut.done():
                continue
            try:
                fut.set_result(await shim.attach(req.stdin, req.stdout, req.stderr))
            except Exception as e:  # the attach fails alone; the start goes on
                fut.set_exception(e)
        if not info.started:
            try:
                await shim.start()
            except HafenError as e:
                await shim.kill(signals.SIGKILL)
                await shim.wait()
                raise await self._start_failed(c, rootfs, e) from e
        c.has_been_manually_stopped = False
        c.state = ContainerStateRecord(
            status=ContainerStatus.RUNNING,
            pid=info.pid,
            shim_pid=info.shim_pid,
            started_at=now_rfc3339(),
            finished_at=c.state.finished_at,
        )
        self.health.start(c)
        await self._save(c)
        self._monitor(c)
        self.event(c, "start")

    async def _launch(
        self,
        c: Container,
        state_dir: Path,
        runtime: builtins.list[str],
        bundle: asyncio.Future[None],
        start: bool,
        attach: AttachRequest | None,
    ) -> ShimInfo:
        """Launch the container's shim: it creates the container once ``bundle`` is
        ready, and starts it (connecting ``attach`` first) where it can."""
        log_type = c.host_config.log_type
        max_size, max_files = logopts.rotation(c.host_config.log_config, log_type)
        return await launch_shim(
            self.options.shim_command,
            container_id=c.id,
            bundle=str(state_dir),
            state_dir=str(state_dir),
            log_path=c.log_path if log_type != "none" else os.devnull,
            runtime=runtime,
            runtime_root=str(self.options.runtime_root),
            tty=c.config.tty,
            stdin=c.config.open_stdin,
            stdin_once=c.config.stdin_once,
            env=self.options.shim_env or None,
            log_max_size=max_size,
            log_max_files=max_files,
            log_format="local" if log_type == "local" else "json-file",
            log_compress=logopts.compressed(c.host_config.log_config, log_type),
            log_buffer_size=logopts.buffer_size(c.host_config.log_config),
            log_attrs=logopts.attributes(
                c.host_config.log_config,
                logopts.LogInfo(
                    id=c.id,
                    name=c.name,
                    image_id=c.image_id,
                    image_name=c.image_ref,
                    labels=c.config.labels,
                    env=c.config.env,
                ),
            )
            or None,
            start=start,
            attach=(attach.stdin, attach.stdout, attach.stderr) if attach else None,
            bundle_ready=bundle,
        )

    async def _start_failed(self, c: Container, rootfs: Path, error: HafenError) -> HafenError:
        """Record a failed start, release the rootfs; the error to raise (400 for exec errors)."""
        self._dns_down(c)
        await self._ports_down(c)
        code = _exec_error_exit_code(error.message)
        c.state.error = error.message
        c.state.exit_code = code if code is not None else 128

        def release() -> None:
            self._release_rootfs(c, rootfs)
            self._drop_state_dir(rootfs.parent)  # the shim has left: a failed launch's

        await asyncio.to_thread(release)
        await self._save(c)
        for _, fut in self._pending_attach.pop(c.id, []):
            if not fut.done():
                fut.set_exception(error)
        if code is not None and not isinstance(error, InvalidArgument):
            return InvalidArgument(error.message)  # Docker answers these with 400
        return error

    def _release_rootfs(self, c: Container, rootfs: Path) -> None:
        """Unmount the volumes and the rootfs, take the network down, and remove the
        rootfs mount point; the rest of the state dir stays for ``_drop_state_dir``
        (the shim may still be using it). Never deletes through a mount (worker thread)."""
        self._unmount_volumes(self._mounted_volumes.pop(c.id, []))
        self._network_down(c)
        if not rootfs.exists():
            return  # released already (an exit's release, then the removal's)
        if is_mount_point(rootfs):
            try:
                self.snapshotter.unmount(rootfs)
            except (HafenError, OSError) as e:
                log.warning("unmounting rootfs of %s: %s", c.short_id, e)
        if not is_mount_point(rootfs):
            shutil.rmtree(rootfs, ignore_errors=True)

    def _drop_state_dir(self, state_dir: Path) -> None:
        """Remove a container's state dir (worker thread) once its rootfs is released:
        not while the rootfs is there (an unmount that failed), never through a mount."""
        if not (state_dir / "rootfs").exists():
            shutil.rmtree(state_dir, ignore_errors=True)

    def _clear_bundle(self, state_dir: Path, rootfs: Path) -> None:
        """Remove what an earlier run left in the state dir (worker thread)."""
        if is_mount_point(rootfs):
            self.snapshotter.unmount(rootfs)
        shutil.rmtree(state_dir)

    def _prepare_bundle(self, c: Container, state_dir: Path, rootfs: Path) -> None:
        """Mount the rootfs and write config.json (worker thread; the shim, launched
        meanwhile, makes the state dir too and listens in it)."""
        rootfs.mkdir(parents=True)
        # an auto-remove container's layer is thrown away at exit: no sync at unmount
        self.snapshotter.mount(c.snapshot_key, rootfs, volatile=c.host_config.auto_remove)
        try:
            remap = self._remap(c)
            if remap is not None:
                shift_rootfs(rootfs, remap)
                traversable(rootfs, self.options.exec_root)
            mounts = self._mount_all(c, rootfs)
            spec = build_spec(self._spec_options(c, rootfs, mounts))
            _write_etc_files(c, self._peers(c), self.host_gateway())
            if remap is not None:
                # As dockerd: the files bound over /etc belong to the container's root.
                for path in (c.hostname_path, c.hosts_path, c.resolv_conf_path):
                    os.chown(path, remap.uid_start, remap.gid_start)
            tmp = state_dir / "config.json.tmp"
            tmp.write_text(json.dumps(spec))
            tmp.rename(state_dir / "config.json")
        except BaseException:
            self._unmount_volumes(self._mounted_volumes.pop(c.id, []))
            self.snapshotter.unmount(rootfs)
            raise

    def _spec_options(
        self, c: Container, rootfs: Path, mounts: builtins.list[BindMount]
    ) -> SpecOptions:
        cfg, hc = c.config, c.host_config
        user = resolve_user(rootfs, cfg.user)
        for group in hc.group_add:
            user.additional_gids.append(resolve_group(rootfs, group))
        env = list(cfg.env)
        keys = {e.partition("=")[0] for e in env}
        if "PATH" not in keys:
            env.insert(0, f"PATH={defaults.DEFAULT_PATH}")
        env.insert(0, f"HOSTNAME={cfg.hostname}")
        if cfg.tty and "TERM" not in keys:
            env.append("TERM=xterm")
        if "HOME" not in keys:
            env.append(f"HOME={user.home or '/'}")
        user_dests = {m.destination for m in mounts}
        etc_files = [
            BindMount(c.hostname_path, "/etc/hostname"),
            BindMount(c.hosts_path, "/etc/hosts"),
            BindMount(c.resolv_conf_path, "/etc/resolv.conf"),
        ]
        if hc.network_mode.startswith("container:"):  # one network stack, one set of files
            other = self.get(hc.network_mode.partition(":")[2])
            etc_files[1:] = [
                BindMount(other.hosts_path, "/etc/hosts"),
                BindMount(other.resolv_conf_path, "/etc/resolv.conf"),
            ]
        # a user's mount of one of these files wins; a parent before its child (stable)
        binds = sorted(
            [b for b in etc_files if b.destination not in user_dests] + mounts,
            key=lambda b: b.destination.rstrip("/").count("/"),
        )
        isolation = isolation_options(
            hc, self._running_pid, cgroup_v2=self.cgroup_support().version == 2
        )
        # Chosen again at each start, as dockerd does (a container created before the
        # host had AppArmor gets the default too); the default profile is (re)loaded.
        profile = apparmor.container_profile(
            requested_apparmor_profile(hc), hc.privileged, apparmor.host_enabled()
        )
        if profile == apparmor.DEFAULT_PROFILE:
            apparmor.ensure_loaded()
        isolation["apparmor_profile"] = profile
        network_ns = self._network_namespace(c)
        if network_ns:  # the daemon-made namespace, "host", or another container's
            isolation["namespaces"]["network"] = network_ns
        return SpecOptions(
            args=[c.path, *c.args],
            env=env,
            cwd=cfg.working_dir or "/",
            uid=user.uid,
            gid=user.gid,
            additional_gids=user.additional_gids,
            hostname=cfg.hostname,
            terminal=cfg.tty,
            rootfs=str(rootfs),
            readonly_rootfs=hc.read_only_rootfs,
            privileged=hc.privileged,
            cap_add=hc.cap_add,
            cap_drop=hc.cap_drop,
            cgroups_path=f"{self.options.cgroup_parent.rstrip('/')}/{c.id}",
            memory=hc.memory,
            memory_swap=hc.memory_swap,
            memory_reservation=hc.memory_reservation,
            nano_cpus=hc.nano_cpus,
            cpu_shares=hc.cpu_shares,
            cpu_period=hc.cpu_period,
            cpu_quota=hc.cpu_quota,
            cpuset_cpus=hc.cpuset_cpus,
            pids_limit=hc.pids_limit,
            shm_size=hc.shm_size or 64 * 1024 * 1024,
            binds=binds,
            **isolation,
            **self._userns_options(c),
        )

    def cgroup_support(self) -> cgroups.Support:
        """What this host's cgroups can limit (read once: controllers do not come and go)."""
        if self._cgroup_support is None:
            self._cgroup_support = cgroups.host_support()
        return self._cgroup_support

    def _remap(self, c: Container) -> Remap | None:
        """The daemon's remapping, unless the container keeps the host's ids."""
        hc = c.host_config
        if self.options.userns_remap is None or hc.userns_mode == "host" or hc.privileged:
            return None
        return self.options.userns_remap

    def _userns_options(self, c: Container) -> dict[str, Any]:
        remap = self._remap(c)
        if remap is None:
            return {}
        return {"uid_mappings": remap.uid_mappings(), "gid_mappings": remap.gid_mappings()}

    def _running_pid(self, ref: str) -> int:
        """The init pid of a running container (for --pid/--ipc container:<ref>)."""
        other = self.get(ref)
        if other.state.status != ContainerStatus.RUNNING or not other.state.pid:
            raise Conflict(f"cannot join namespace of a non running container: {ref}")
        return other.state.pid

    # ------------------------------------------------------------------ exit

    def _monitor(self, c: Container) -> None:
        old = self._monitors.get(c.id)
        if old is not None and not old.done():
            return
        self._monitors[c.id] = asyncio.get_running_loop().create_task(
            self._watch(c), name=f"monitor-{c.short_id}"
        )

    async def _watch(self, c: Container) -> None:
        shim = ShimClient(str(self._state_dir(c)))
        released: asyncio.Future[None] | None = None
        try:
            status, released = await shim.wait_exit()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the shim vanished without recording an exit
            log.warning("lost the shim of %s: %s", c.short_id, e)
            status = ExitStatus(exit_code=255, exited_at=now_rfc3339(), oom_killed=False)
        await self._record_exit(c, status, released)

    async def _record_exit(
        self, c: Container, status: ExitStatus, released: asyncio.Future[None] | None = None
    ) -> None:
        """Record an exit and release what the container held; ``released``: done once
        its shim has deleted the runtime's state, before which the state dir stays."""
        async with self._lock(c.id):
            if not c.state.running:
                return
            self._exiting.add(c.id)  # not running, not yet released: stop still waits
            try:
                self.health.stop(c.id)
                c.state.status = ContainerStatus.EXITED
                c.state.exit_code = status.exit_code
                c.state.finished_at = status.exited_at or now_rfc3339()
                c.state.oom_killed = status.oom_killed
                c.state.pid = 0
                c.state.shim_pid = 0
                self._dns_down(c)
                await self._ports_down(c)
                # unmounted while the shim deletes the runtime's state; the state dir
                # goes after both (below, or with an auto-remove container's storage)
                await asyncio.to_thread(self._release_rootfs, c, self._state_dir(c) / "rootfs")
                if released is not None:
                    await released
                if not c.host_config.auto_remove:
                    # under the lock: a start right after (docker restart) makes it anew
                    await asyncio.to_thread(self._drop_state_dir, self._state_dir(c))
                    # an auto-remove container's record is deleted next: writing "exited"
                    # first costs a transaction for nothing (after a crash in between,
                    # restore finds it "running" with its shim gone and removes it)
                    await self._save(c)
            finally:
                self._exiting.discard(c.id)
        if status.oom_killed:
            self.event(c, "oom")
        self.event(c, "die", exitCode=str(status.exit_code))
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c.state)
        self._monitors.pop(c.id, None)
        if c.host_config.auto_remove:
            try:
                await self.remove(c.id, force=True, volumes=True)
            except HafenError as e:
                log.warning("auto-removing %s: %s", c.short_id, e)
        else:
            await self._apply_restart_policy(c, initial=False)

    # ------------------------------------------------------------------ restart policy

    async def _apply_restart_policy(self, c: Container, initial: bool) -> None:
        """Schedule a restart if the policy wants one (``initial``: at daemon start-up)."""
        policy = c.host_config.restart_policy
        if c.id in self._no_restart or not should_restart(
            policy.name,
            policy.maximum_retry_count,
            c.state.exit_code,
            c.has_been_manually_stopped,
            c.restart_count,
        ):
            if c.state.status == ContainerStatus.RESTARTING:
                c.state.status = ContainerStatus.EXITED
                await self._save(c)
            return
        if initial:
            delay = 0.0
        else:
            try:
                ran_for = parse_rfc3339_time(c.state.finished_at) - parse_rfc3339_time(
                    c.state.started_at
                )
            except ValueError:
                ran_for = 0.0
            delay = self._backoff.setdefault(c.id, Backoff()).next(ran_for)
        c.state.status = ContainerStatus.RESTARTING
        await self._save(c)
        self._cancel_restart(c.id)
        self._restart_tasks[c.id] = asyncio.get_running_loop().create_task(
            self._restart_later(c, delay), name=f"restart-{c.short_id}"
        )

    async def _restart_later(self, c: Container, delay: float) -> None:
        await asyncio.sleep(delay)
        self._restart_tasks.pop(c.id, None)
        if c.id not in self._containers or c.state.status != ContainerStatus.RESTARTING:
            return
        c.restart_count += 1
        try:
            await self.start(c.id, by_policy=True)
        except HafenError as e:
            log.warning("restarting %s failed: %s", c.short_id, e)
            if c.state.status == ContainerStatus.RESTARTING:
                c.state.status = ContainerStatus.EXITED
                await self._save(c)

    def _cancel_restart(self, container_id: str) -> None:
        task = self._restart_tasks.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> None:
        """``docker restart``: stop if running (or restarting), then start."""
        c = self.get(ref)
        try:
            await self.stop(c.id, timeout, signal)
        except NotModified:
            pass
        await self.start(c.id)
        self.event(c, "restart")

    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        new_name = new_name.lstrip("/")
        if not new_name:
            raise InvalidArgument("Neither old nor new names may be empty")
        if not VALID_NAME.match(new_name):
            raise InvalidArgument(
                f"Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        if new_name == c.name:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        self._claim_name(new_name, c.id)
        try:
            old = c.name
            async with self._lock(c.id):
                c.name = new_name
                try:
                    await self._save(c)
                except BaseException:
                    c.name = old
                    raise
        finally:
            self._claimed_names.pop(new_name, None)
        self.event(c, "rename", oldName="/" + old)

    # ------------------------------------------------------------------ signals

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        signum = parse_signal(signal, signals.SIGKILL)
        await ShimClient(str(self._state_dir(c))).kill(signum)
        self.event(c, "kill", signal=str(signum))
        await self.control.thaw_for_stop(c)
        if signum == signals.SIGKILL:
            await self._wait_exit(c, 10)

    async def stop(self, ref: str, timeout: int | None = None, signal: str | None = None) -> None:
        c = self.get(ref)
        if c.state.status == ContainerStatus.RESTARTING:  # waiting out its back-off
            self._cancel_restart(c.id)
            c.has_been_manually_stopped = True
            async with self._lock(c.id):
                if c.state.status == ContainerStatus.RESTARTING:
                    c.state.status = ContainerStatus.EXITED
                    await self._save(c)
                    self.event(c, "stop")
                    return
            # the policy's start won the race: stop the container it started
        if not c.state.running:
            raise NotModified("container already stopped")
        c.has_been_manually_stopped = True  # saved with the exit it causes
        signum = parse_signal(signal or c.config.stop_signal or None, signals.SIGTERM)
        if timeout is None:
            timeout = c.config.stop_timeout
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        shim = ShimClient(str(self._state_dir(c)))
        try:
            await shim.kill(signum)
            self.event(c, "kill", signal=str(signum))
            await self.control.thaw_for_stop(c)
        except HafenError as e:
            log.info("stop signal to %s failed: %s", c.short_id, e)
        if timeout < 0:
            await self._wait_exit(c, None)
        elif not await self._wait_exit(c, timeout):
            try:
                await shim.kill(signals.SIGKILL)
                self.event(c, "kill", signal=str(int(signals.SIGKILL)))
            except HafenError as e:
                log.info("SIGKILL to %s failed: %s", c.short_id, e)
            await self._wait_exit(c, None)
        self.event(c, "stop")

    async def _wait_exit(self, c: Container, timeout: float | None) -> bool:
        """Until the exit is recorded *and* what the container held (network, ports,
        rootfs) is released, as ``docker stop`` returns only then."""
        if not c.state.running and c.id not in self._exiting:
            return True
        fut: asyncio.Future[ContainerStateRecord] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False

    # ------------------------------------------------------------------ wait

    async def wait(self, ref: str, condition: str = "not-running") -> ContainerStateRecord:
        """Block until the condition holds; the state at that moment."""
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition in ("", "not-running"):
            if not c.state.running and c.id not in self._starting:
                return c.state
            waiters = self._exit_waiters
        elif condition == "next-exit":
            waiters = self._exit_waiters
        elif condition == "removed":
            waiters = self._remove_waiters
        else:
            raise InvalidArgument(f"invalid condition: {condition!r}")
        fut: asyncio.Future[ContainerStateRecord] = loop.create_future()
        waiters.setdefault(c.id, []).append(fut)
        return await fut

    def wait_registration(self, ref: str, condition: str) -> asyncio.Future[ContainerStateRecord]:
        """Register a waiter now and return its future (so the API can answer headers first)."""
        return asyncio.ensure_future(self.wait(ref, condition))

    # ------------------------------------------------------------------ attach

    async def attach(
        self, ref: str, req: AttachRequest
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Streams to the container's stdio; waits for the start of a created container."""
        c = self.get(ref)
        self.event(c, "attach")
        if c.state.running and c.id not in self._starting:
            return await ShimClient(str(self._state_dir(c))).attach(
                req.stdin, req.stdout, req.stderr
            )
        if (
            c.state.status in (ContainerStatus.CREATED, ContainerStatus.EXITED)
            or c.id in self._starting
        ):
            fut: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
                asyncio.get_running_loop().create_future()
            )
            self._pending_attach.setdefault(c.id, []).append((req, fut))
            try:
                return await fut
            except HafenError:
                return None
        return None

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.state.running:
            raise NotRunning(c.id)
        await ShimClient(str(self._state_dir(c))).resize(height, width)
        self.event(c, "resize", height=str(height), width=str(width))

    # ------------------------------------------------------------------ remove

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """Delete a container; ``volumes`` also deletes its anonymous volumes (``rm -v``)."""
        c = self.get(ref)
        if c.state.running and not force:
            raise Conflict(
                f"You cannot remove a running container {c.id}. Stop the container before "
                "attempting removal or force remove"
            )
        self._no_restart.add(c.id)
        self._cancel_restart(c.id)
        self.health.stop(c.id)
        try:
            await self._remove(c, force, volumes)
        finally:
            self._no_restart.discard(c.id)
            self._backoff.pop(c.id, None)

    async def _remove(self, c: Container, force: bool, volumes: bool) -> None:
        if c.state.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.id}. Stop the container before "
                    "attempting removal or force remove"
                )
            try:
                await ShimClient(str(self._state_dir(c))).kill(signals.SIGKILL)
                await self.control.thaw_for_stop(c)
            except HafenError as e:  # exiting on its own: its shim is finishing
                log.info("SIGKILL to %s failed: %s", c.short_id, e)
            await self._wait_exit(c, 30)
            if c.id not in self._containers:
                return  # AutoRemove took it while we waited
        async with self._lock(c.id):
            if c.id not in self._containers:
                return
            if c.state.running:
                raise Conflict(f"container {c.id} is still running")
            c.state.status = ContainerStatus.REMOVING
            for _, attacher in self._pending_attach.pop(c.id, []):
                if not attacher.done():
                    attacher.set_exception(ContainerNotFound(c.id))

            def delete() -> None:
                # the state dir goes with the storage, after the answer
                self._release_rootfs(c, self._state_dir(c) / "rootfs")
                with self.metadata.transaction() as db:
                    db.execute("DELETE FROM containers WHERE id = ?", (c.id,))

            await asyncio.to_thread(delete)
            del self._containers[c.id]
            self.execs.forget_container(c.id)
        anonymous = [m.name for m in c.mount_points if m.type == "volume" and m.anonymous]
        if volumes and anonymous:
            await asyncio.to_thread(self._remove_volumes, anonymous)
        self.event(c, "destroy")
        self._locks.pop(c.id, None)
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c.state)
        for fut in self._remove_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c.state)
        # The container is gone once its record is: its layer and files are deleted after
        # the waiters (`run --rm`) have their answer, off their path; what a crash leaves
        # of them, restore's sweep deletes.
        await asyncio.to_thread(self._discard_storage, c)

    def size_rw(self, c: Container) -> int:
        """Bytes the container wrote on top of its image (worker thread)."""
        try:
            return self.snapshotter.usage(c.snapshot_key)
        except (HafenError, OSError):
            return 0

    async def prune(self, accept: Callable[[Container], bool]) -> tuple[builtins.list[str], int]:
        """Remove every stopped container ``accept`` lets through; (ids, bytes freed)."""
        deleted: builtins.list[str] = []
        reclaimed = 0
        for c in self.list(all=True):
            if c.state.running or c.state.status in (
                ContainerStatus.RESTARTING,
                ContainerStatus.REMOVING,
            ):
                continue
            if not accept(c):
                continue
            size = await asyncio.to_thread(self.size_rw, c)
            try:
                await self.remove(c.id)
            except HafenError as e:
                log.info("prune kept %s: %s", c.short_id, e)
                continue
            deleted.append(c.id)
            reclaimed += size
        if self.publish is not None:
            self.publish("container", "prune", "", {"reclaimed": str(reclaimed)})
        return deleted, reclaimed

    # ------------------------------------------------------------------ restore

    async def restore(self) -> None:
        """Load every container and re-adopt the running ones (daemon start-up)."""
        rows = await asyncio.to_thread(self.metadata.query, "SELECT id, record FROM containers")
        await asyncio.to_thread(self._sweep_storage, {str(row["id"]) for row in rows})
        for row in rows:
            try:
                c = Container.from_json(row["record"])
            except (ValueError, TypeError, KeyError) as e:
                log.error("skipping an unreadable container record: %s", e)
                continue
            self._containers[c.id] = c
        # a stopped container's state dir is gone: only these may have a shim to ask;
        # and only these have state in the runtime (none at all after a reboot)
        launched = await asyncio.to_thread(_entry_names, self.options.exec_root / "containers")
        held = await asyncio.to_thread(_entry_names, self.options.runtime_root)
        for c in list(self._containers.values()):
            if not c.state.running:
                if c.state.status == ContainerStatus.REMOVING or (
                    c.host_config.auto_remove and c.state.status == ContainerStatus.EXITED
                ):
                    await self.remove(c.id, force=True, volumes=c.host_config.auto_remove)
                    continue
                if c.id not in launched or not await self._started_unrecorded(c, held):
                    await self._forget_unstarted_network(c)
                    continue
            shim = ShimClient(str(self._state_dir(c)))
            if await shim.alive():
                log.info("re-adopted running container %s", c.short_id)
                await self._reconcile_paused(c)
                await asyncio.to_thread(self._remount_volumes, c)
                try:
                    await self._dns_up(c)
                    if self.ports is not None and c.ports and c.endpoints:
                        c.ports = await self.ports.publish(
                            c.id, c.endpoints[0].ip, [], fixed=c.ports
                        )
                except (OSError, HafenError) as e:
                    log.warning("networking of re-adopted %s: %s", c.short_id, e)
                self._monitor(c)
                self.health.start(c)
                continue
            status = await asyncio.to_thread(read_exit_status, str(self._state_dir(c)))
            if c.id in held:
                await self._delete_runtime_leftovers(c)
            if status is None:
                status = ExitStatus(exit_code=255, exited_at=now_rfc3339(), oom_killed=False)
            await self._record_exit(c, status)
        # dockerd starts what its restart policies want at start-up (a restart's back-off
        # that the daemon's death cut short included)
        for c in list(self._containers.values()):
            if c.state.status in (ContainerStatus.EXITED, ContainerStatus.RESTARTING) and (
                c.id not in self._restart_tasks
            ):
                await self._apply_restart_policy(c, initial=True)

    def _sweep_storage(self, recorded: set[str]) -> None:
        """Delete the layers and files of containers that have no record (a crash between
        a removal's record deletion and its storage's, or a create's snapshot and its
        record). An unreadable record still counts as a record: its storage stays."""
        for key in self.snapshotter.active_keys():
            if _CONTAINER_ID.fullmatch(key) and key not in recorded:
                log.info("removing the layer of removed container %s", key[:12])
                try:
                    self.snapshotter.remove(key)
                except (HafenError, OSError) as e:
                    log.warning("removing the layer of removed container %s: %s", key[:12], e)
        files = self.options.data_root / "containers"
        for entry in files.iterdir() if files.is_dir() else []:
            if _CONTAINER_ID.fullmatch(entry.name) and entry.name not in recorded:
                shutil.rmtree(entry, ignore_errors=True)

    async def _started_unrecorded(self, c: Container, held: set[str]) -> bool:
        """Whether a container recorded as not running (created, exited, restarting) has
        a shim that started it (the daemon died between the launch, which starts it, and
        the record saying so); if so it is recorded as running now and re-adopted like
        the others. A shim whose container is still only created lost its start: it is
        killed. ``held``: the ids the runtime has state for."""
        shim = ShimClient(str(self._state_dir(c)))
        try:
            state = await shim.state()
        except RuntimeFailure:  # no shim: what it had made, if anything, goes
            if c.id in held:
                await self._delete_runtime_leftovers(c)
            return False
        if state.get("status") == "created":
            log.info("ending the shim of %s: its start was cut short", c.short_id)
            with contextlib.suppress(HafenError):
                await shim.kill(signals.SIGKILL)
            return False
        info = await asyncio.to_thread(read_shim_info, str(self._state_dir(c)))
        c.state = ContainerStateRecord(
            status=ContainerStatus.RUNNING,
            pid=int(state.get("pid") or info.get("pid") or 0),
            shim_pid=int(info.get("shim_pid") or 0),
            started_at=now_rfc3339(),
            finished_at=c.state.finished_at,
        )
        await self._save(c)
        log.info("adopted %s: it was started as the daemon stopped", c.short_id)
        return True

    async def _reconcile_paused(self, c: Container) -> None:
        """Record what the freezer says: a pause or an unpause that the daemon's death
        cut short between the freezer and the record left a frozen container recorded
        as running (a stop would then signal it in vain) or the reverse."""
        path = self.control.cgroups_path(c)
        try:
            frozen = await asyncio.to_thread(lambda: cgroups.open_manager(path, c.id).frozen())
        except (OSError, HafenError) as e:
            log.warning("reading the freezer of %s: %s", c.short_id, e)
            return
        status = ContainerStatus.PAUSED if frozen else ContainerStatus.RUNNING
        if c.state.status != status:
            log.info("%s is %s: its record said %s", c.short_id, status.value, c.state.status.value)
            c.state.status = status
            await self._save(c)

    async def _delete_runtime_leftovers(self, c: Container) -> None:
        """``<runtime> delete --force`` for a container whose shim is gone (killed, or
        dead of an error): its processes may run on unwatched, and its cgroup and the
        runtime's state stay, all of which the shim would have deleted. containerd does
        the same for a dead shim when it starts. Called only where the runtime's root
        has the container's state: a runtime call costs ~20 ms, and after a reboot every
        container recorded as running has a dead shim and nothing else left."""
        try:
            await asyncio.to_thread(self.control.runtime(c).delete, c.id, True)
            log.info("deleted what the runtime held of %s: its shim was gone", c.short_id)
        except ContainerNotFound:
            pass  # nothing left: the usual case
        except (HafenError, OSError) as e:
            log.warning("deleting what the runtime held of %s: %s", c.short_id, e)

    async def _forget_unstarted_network(self, c: Container) -> None:
        """Forget the networking that a start cut short by the daemon's death recorded
        before its launch, when the container did not run: the record must not keep
        addresses (inspect) or endpoints (``network rm``'s users) it no longer has. What
        is left of them the network service releases at start-up, as of every container
        that is not running."""
        if c.endpoints or c.netns_path or c.ports:
            log.info("forgetting the networking of %s: its start was cut short", c.short_id)
            c.endpoints, c.netns_path, c.ports = [], "", []
            await self._save(c)

    async def shutdown(self) -> None:
        """Stop watching; containers keep running (live restore)."""
        if self.dns is not None:
            self.dns.close()
        for container_id in list(self._restart_tasks):
            self._cancel_restart(container_id)
        self.health.stop_all()
        for task in self._monitors.values():
            task.cancel()
        for task in list(self._monitors.values()):
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._monitors.clear()


def _entry_names(directory: Path) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(directory)}
    except FileNotFoundError:
        return set()


def _merge_image_config(config: ContainerConfig, image: Image) -> ContainerConfig:
    """Docker's merge: image defaults under the user's settings (Env by key, Labels by key)."""
    img: dict[str, Any] = image_runtime_config(image)
    merged = ContainerConfig(**{k: v for k, v in config.__dict__.items()})
    if config.entrypoint is None:
        merged.entrypoint = img.get("Entrypoint") or None
        if config.cmd is None:
            merged.cmd = img.get("Cmd") or None
    elif config.cmd is None:
        merged.cmd = None  # an entrypoint from the user resets the image's Cmd
    env: dict[str, str] = {}
    for item in list(img.get("Env") or []) + list(config.env):
        key, sep, value = item.partition("=")
        env[key] = item if sep else f"{key}="
        del value
    merged.env = list(env.values())
    merged.working_dir = config.working_dir or img.get("WorkingDir") or ""
    merged.user = config.user or img.get("User") or ""
    merged.labels = {**(img.get("Labels") or {}), **config.labels}
    merged.stop_signal = config.stop_signal or img.get("StopSignal") or ""
    merged.exposed_ports = {**(img.get("ExposedPorts") or {}), **config.exposed_ports}
    merged.volumes = {**(img.get("Volumes") or {}), **config.volumes}
    merged.healthcheck = merge_healthcheck(config.healthcheck, img.get("Healthcheck"))
    return merged


def image_runtime_config(image: Image) -> dict[str, Any]:
    """The image config's ``config`` object (Env, Cmd, Entrypoint, …) as Docker JSON."""
    return image.config.runtime


def _make_bind_source(source: str, remap: Remap | None) -> None:
    """Create a missing ``-v`` source; with userns-remap, the directories it creates
    belong to the remapped root (dockerd's MkdirAllAndChownNew)."""
    missing: list[str] = []
    path = os.path.normpath(source)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    os.makedirs(source, exist_ok=True)
    if remap is not None:
        for created in missing:
            os.chown(created, remap.uid_start, remap.gid_start)


def _write_hosts(c: Container, peers: list[HostEntry], host_gateway: str) -> None:
    own_ip = c.endpoints[0].ip if c.endpoints else ""
    text = hosts_file(c.config.hostname, own_ip, c.host_config.extra_hosts, peers, host_gateway)
    _rewrite_in_place(c.hosts_path, text.encode())  # a running container sees the change


def _rewrite_in_place(path: str, data: bytes) -> None:
    """Overwrite the file's content, keeping its inode (it is bind-mounted into the
    container). Written over the old bytes and then cut to length, not truncated to
    zero first: on ext4 a file truncated to zero and rewritten is flushed at close
    (auto_da_alloc), ~0.1-0.2 ms a file — paid for every peer on every start and exit."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], done)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def _write_etc_files(c: Container, peers: list[HostEntry], host_gateway: str) -> None:
    Path(c.hostname_path).write_text(c.config.hostname + "\n")
    _write_hosts(c, peers, host_gateway)
    _write_resolv_conf(c)


def _write_resolv_conf(c: Container) -> None:
    hc = c.host_config
    try:
        host_resolv = Path("/etc/resolv.conf").read_text()
    except OSError:
        host_resolv = ""
    embedded = DNS_ADDRESS if any(map(_user_network, c.endpoints)) else ""
    Path(c.resolv_conf_path).write_text(
        resolv_conf(host_resolv, hc.dns, hc.dns_search, hc.dns_options, embedded)
    )


def _user_network(e: Endpoint) -> bool:
    return e.network_name not in ("bridge", "host", "none")
