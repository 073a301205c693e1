"""The container record: what a container is, as the daemon stores it.

``Container`` holds the user's request (``ContainerConfig``, ``HostConfig``), the
daemon's decisions (paths, resolved image) and the lifecycle (``ContainerStateRecord``).
It serialises to JSON for the metadata database; Docker's API shapes are built from it
at the API edge only.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from hafen.network.model import Endpoint, EndpointRequest
from hafen.network.ports import PortBinding
from hafen.volumes.model import MountPoint

T = TypeVar("T")


class ContainerStatus(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@dataclass
class ContainerConfig:
    """The portable part of a container's configuration (Docker's ``Config``)."""

    image: str = ""
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = True
    attach_stderr: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    stop_timeout: int | None = None
    exposed_ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    healthcheck: dict[str, Any] | None = None  # Docker's HealthConfig (Test, Interval, …)


@dataclass
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0


@dataclass
class HostConfig:
    """The host-dependent part (Docker's ``HostConfig``)."""

    auto_remove: bool = False
    privileged: bool = False
    read_only_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    pids_limit: int | None = None
    shm_size: int = 64 * 1024 * 1024
    init: bool = False
    runtime: str = ""
    network_mode: str = "default"
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    binds: list[str] = field(default_factory=list)
    mounts: list[MountPoint] = field(default_factory=list)  # HostConfig.Mounts, parsed
    tmpfs: dict[str, str] = field(default_factory=dict)
    volumes_from: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)
    port_bindings: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    publish_all_ports: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)
    log_type: str = "json-file"
    log_config: dict[str, str] = field(default_factory=dict)
    # Isolation and resources (Docker's names; shapes as the Engine API sends them).
    security_opt: list[str] = field(default_factory=list)
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # {"Name","Soft","Hard"}
    devices: list[dict[str, str]] = field(default_factory=list)  # {"PathOnHost",...}
    device_cgroup_rules: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    pid_mode: str = ""
    ipc_mode: str = ""
    uts_mode: str = ""
    userns_mode: str = ""
    cgroupns_mode: str = ""
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    cpuset_mems: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[dict[str, Any]] = field(default_factory=list)  # {"Path","Weight"}
    blkio_device_read_bps: list[dict[str, Any]] = field(default_factory=list)  # {"Path","Rate"}
    blkio_device_write_bps: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_read_iops: list[dict[str, Any]] = field(default_factory=list)
    blkio_device_write_iops: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ContainerStateRecord:
    status: ContainerStatus = ContainerStatus.CREATED
    pid: int = 0
    shim_pid: int = 0
    exit_code: int = 0
    error: str = ""
    oom_killed: bool = False
    started_at: str = "0001-01-01T00:00:00Z"
    finished_at: str = "0001-01-01T00:00:00Z"
    health: dict[str, Any] | None = None  # Docker's State.Health while a check runs

    @property
    def running(self) -> bool:
        return self.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)


@dataclass
class Container:
    id: str
    name: str
    created: str  # RFC 3339 with nanoseconds
    image_id: str
    image_ref: str  # what the user asked for, as Docker shows in ps
    config: ContainerConfig
    host_config: HostConfig
    path: str = ""  # the resolved executable (entrypoint[0] or cmd[0])
    args: list[str] = field(default_factory=list)
    state: ContainerStateRecord = field(default_factory=ContainerStateRecord)
    log_path: str = ""
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    restart_count: int = 0
    snapshot_key: str = ""
    runtime: str = ""  # the runtime name used at the last start
    # set by stop, cleared by start: restart policies leave such a container alone
    has_been_manually_stopped: bool = False
    mount_points: list[MountPoint] = field(default_factory=list)  # resolved at create
    networks: dict[str, EndpointRequest] = field(default_factory=dict)  # by network id
    endpoints: list[Endpoint] = field(default_factory=list)  # while running
    netns_path: str = ""  # while running on bridge networks
    ports: list[PortBinding] = field(default_factory=list)  # published, while running
    # chosen at create as dockerd does ("" on a host without AppArmor); inspect shows it
    app_armor_profile: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_json(self) -> str:
        # the encoder walks the dataclass tree itself: asdict deep-copied every value
        # first (105 -> 24 us for a full record; every start and stop writes one)
        return json.dumps(self, default=_fields_of, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Container:
        raw = json.loads(text)
        return _build(cls, raw)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _fields_of(value: object) -> dict[str, Any]:
    """A dataclass's fields, as ``asdict`` gives them at the top level (for the encoder)."""
    kind = type(value)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        try:
            names = tuple(f.name for f in fields(value))  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{kind.__name__} is not JSON serializable") from None
        _FIELD_NAMES[kind] = names
    return {name: getattr(value, name) for name in names}


def _build(kind: type[T], raw: dict[str, Any]) -> T:
    """Rebuild a dataclass tree from ``asdict`` output, ignoring unknown keys (old records)."""
    nested = {
        "config": ContainerConfig,
        "host_config": HostConfig,
        "state": ContainerStateRecord,
        "restart_policy": RestartPolicy,
    }
    values: dict[str, Any] = {}
    for f in fields(kind):  # type: ignore[arg-type]
        if f.name not in raw:
            continue
        value = raw[f.name]
        if f.name in nested and isinstance(value, dict):
            value = _build(nested[f.name], value)
        elif f.name in ("mounts", "mount_points") and isinstance(value, list):
            value = [_build(MountPoint, m) for m in value if isinstance(m, dict)]
        elif f.name == "ports" and isinstance(value, list):
            value = [_build(PortBinding, p) for p in value if isinstance(p, dict)]
        elif f.name == "endpoints" and isinstance(value, list):
            value = [_build(Endpoint, e) for e in value if isinstance(e, dict)]
        elif f.name == "networks" and isinstance(value, dict):
            value = {k: _build(EndpointRequest, v) for k, v in value.items() if isinstance(v, dict)}
        elif f.name == "status":
            value = ContainerStatus(value)
        values[f.name] = value
    return kind(**values)
