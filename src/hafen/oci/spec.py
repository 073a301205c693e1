"""Generate an OCI runtime-spec ``config.json`` for a container, with Docker's defaults.

``SpecOptions`` says what the container wants in runtime terms (already resolved: numeric
user, final argv, env); ``build_spec`` turns it into the runtime-spec document that any
runc-compatible runtime (hafen-runtime, runc, crun) runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hafen.errors import InvalidArgument
from hafen.oci import defaults

OCI_VERSION = "1.2.0"


@dataclass
class BindMount:
    """A mount the container asked for: a bind (default) or a tmpfs (``kind="tmpfs"``)."""

    source: str
    destination: str
    read_only: bool = False
    propagation: str = "rprivate"
    kind: str = "bind"
    options: list[str] = field(default_factory=list)  # tmpfs: size=, mode=, nosuid…


@dataclass
class SpecOptions:
    args: list[str]
    env: list[str]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    terminal: bool = False
    rootfs: str = "rootfs"
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    cgroups_path: str = ""
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
    binds: list[BindMount] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


def normalize_capability(name: str) -> str:
    """``net_admin`` / ``NET_ADMIN`` / ``CAP_NET_ADMIN`` → ``CAP_NET_ADMIN``; ``ALL`` stays."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in defaults.ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability: {name!r}")
    return upper


def effective_capabilities(privileged: bool, cap_add: list[str], cap_drop: list[str]) -> list[str]:
    """Docker's rule: start from the defaults (or all if privileged), add, then drop."""
    if privileged:
        return list(defaults.ALL_CAPABILITIES)
    adds = [normalize_capability(c) for c in cap_add]
    drops = [normalize_capability(c) for c in cap_drop]
    caps = list(defaults.ALL_CAPABILITIES) if "ALL" in adds else list(defaults.DEFAULT_CAPABILITIES)
    for cap in adds:
        if cap != "ALL" and cap not in caps:
            caps.append(cap)
    if "ALL" in drops:
        caps = [c for c in caps if c in adds]
    else:
        caps = [c for c in caps if c not in drops]
    return caps


def _default_mounts(opts: SpecOptions) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro" if not opts.privileged else "rw"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro" if not opts.privileged else "rw", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"]},
    ]  # fmt: skip
    for bind in opts.binds:
        if bind.kind == "tmpfs":
            mounts.append(
                {
                    "destination": bind.destination,
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": list(bind.options),
                }
            )
            continue
        options = ["rbind", bind.propagation or "rprivate"]
        if bind.read_only:
            options.append("ro")
        mounts.append(
            {
                "destination": bind.destination,
                "type": "bind",
                "source": bind.source,
                "options": options,
            }
        )
    return mounts


def _resources(opts: SpecOptions) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if opts.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        devices: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
        for kind, major, minor, access in defaults.DEFAULT_DEVICE_RULES:
            rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
            if major is not None:
                rule["major"] = major
            if minor is not None:
                rule["minor"] = minor
            devices.append(rule)
        resources["devices"] = devices
    memory: dict[str, int] = {}
    if opts.memory:
        memory["limit"] = opts.memory
        if opts.memory_swap:
            memory["swap"] = opts.memory_swap
    if opts.memory_reservation:
        memory["reservation"] = opts.memory_reservation
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if opts.cpu_shares:
        cpu["shares"] = opts.cpu_shares
    if opts.nano_cpus:
        cpu["period"] = 100000
        cpu["quota"] = opts.nano_cpus * 100000 // 1_000_000_000
    if opts.cpu_period:
        cpu["period"] = opts.cpu_period
    if opts.cpu_quota:
        cpu["quota"] = opts.cpu_quota
    if opts.cpuset_cpus:
        cpu["cpus"] = opts.cpuset_cpus
    if cpu:
        resources["cpu"] = cpu
    if opts.pids_limit is not None and opts.pids_limit > 0:
        resources["pids"] = {"limit": opts.pids_limit}
    return resources


def build_spec(opts: SpecOptions) -> dict[str, Any]:
    """The runtime-spec document for ``opts`` (serialise with json.dumps)."""
    if not opts.args:
        raise InvalidArgument("no command specified")
    caps = effective_capabilities(opts.privileged, opts.cap_add, opts.cap_drop)
    linux: dict[str, Any] = {
        "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
        "resources": _resources(opts),
    }
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    if not opts.privileged:
        linux["maskedPaths"] = list(defaults.MASKED_PATHS)
        linux["readonlyPaths"] = list(defaults.READONLY_PATHS)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": opts.terminal,
            "user": {
                "uid": opts.uid,
                "gid": opts.gid,
                **({"additionalGids": opts.additional_gids} if opts.additional_gids else {}),
            },
            "args": list(opts.args),
            "env": list(opts.env),
            "cwd": opts.cwd or "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": False,
            "oomScoreAdj": 0,
        },
        "root": {"path": opts.rootfs, "readonly": opts.readonly_rootfs},
        "hostname": opts.hostname,
        "mounts": _default_mounts(opts),
        "linux": linux,
    }
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    return spec
