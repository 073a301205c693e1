"""Generate an OCI runtime-spec ``config.json`` for a container, with Docker's defaults.

``SpecOptions`` says what the container wants in runtime terms (already resolved: numeric
user, final argv, env); ``build_spec`` turns it into the runtime-spec document that any
runc-compatible runtime (hafen-runtime, runc, crun) runs.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any

from hafen.errors import InvalidArgument
from hafen.oci import defaults, seccomp

OCI_VERSION = "1.2.0"
INIT_PATH = "/sbin/docker-init"


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
class DeviceMapping:
    """``--device /dev/x[:/dev/y[:rwm]]``: a host device node made in the container."""

    path_on_host: str
    path_in_container: str = ""
    permissions: str = "rwm"


@dataclass
class Throttle:
    """A per-device rate (bytes or operations per second) or weight, by host path."""

    path: str
    rate: int


@dataclass
class Ulimit:
    name: str  # "nofile", as docker spells it
    soft: int
    hard: int


@dataclass
class IDMap:
    container_id: int
    host_id: int
    size: int


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
    init_path: str = ""  # the host's init binary, bind-mounted at /sbin/docker-init
    seccomp_profile: str = ""  # "" Docker's default, "unconfined", or a profile's JSON
    no_new_privileges: bool = False
    apparmor_profile: str = ""
    oom_kill_disable: bool = False
    oom_score_adj: int = 0
    cpuset_mems: str = ""
    blkio_weight: int = 0
    blkio_weight_device: list[Throttle] = field(default_factory=list)
    device_read_bps: list[Throttle] = field(default_factory=list)
    device_write_bps: list[Throttle] = field(default_factory=list)
    device_read_iops: list[Throttle] = field(default_factory=list)
    device_write_iops: list[Throttle] = field(default_factory=list)
    ulimits: list[Ulimit] = field(default_factory=list)
    devices: list[DeviceMapping] = field(default_factory=list)
    device_cgroup_rules: list[str] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)
    # namespace type -> "" (a new one, the default), "host" (none: the host's), or a
    # path to join (/proc/<pid>/ns/<type> of another container for "container:<id>").
    namespaces: dict[str, str] = field(default_factory=dict)
    unmask_paths: bool = False  # --security-opt systempaths=unconfined
    uid_mappings: list[IDMap] = field(default_factory=list)  # a user namespace when set
    gid_mappings: list[IDMap] = field(default_factory=list)


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


def available_capabilities() -> list[str]:
    """Every capability the daemon itself may grant: the known ones in its bounding set
    (moby filters "all" the same way, so privileged works in a restricted environment)."""
    try:
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith("CapBnd:"))
        bounding = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError):
        return list(defaults.ALL_CAPABILITIES)
    return [c for i, c in enumerate(defaults.ALL_CAPABILITIES) if bounding & (1 << i)]


def effective_capabilities(privileged: bool, cap_add: list[str], cap_drop: list[str]) -> list[str]:
    """Docker's rule: start from the defaults (or all if privileged), add, then drop."""
    if privileged:
        return available_capabilities()
    adds = [normalize_capability(c) for c in cap_add]
    drops = [normalize_capability(c) for c in cap_drop]
    caps = available_capabilities() if "ALL" in adds else list(defaults.DEFAULT_CAPABILITIES)
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
    ]  # fmt: skip
    ipc = opts.namespaces.get("ipc", "")
    if ipc == "host":
        # --ipc host: the host's SysV IPC and its /dev/shm, as Docker
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                       "options": ["rbind", "nosuid", "noexec", "nodev"]})  # fmt: skip
    elif ipc != "none":
        mounts.append({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                       "options": ["nosuid", "noexec", "nodev", "mode=1777",
                                   f"size={opts.shm_size}"]})  # fmt: skip
    if opts.init_path:
        mounts.append(
            {
                "destination": INIT_PATH,
                "type": "bind",
                "source": opts.init_path,
                "options": ["rbind", "ro", "rprivate"],
            }
        )
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
        for m in opts.devices:
            node = _host_device(m.path_on_host)
            devices.append(
                {"allow": True, "type": node["type"], "major": node["major"],
                 "minor": node["minor"], "access": m.permissions or "rwm"}
            )  # fmt: skip
        devices.extend(parse_device_cgroup_rule(r) for r in opts.device_cgroup_rules)
    memory: dict[str, Any] = {}
    if opts.memory:
        memory["limit"] = opts.memory
        # Docker: no --memory-swap means as much swap as memory (swap = 2 x memory).
        memory["swap"] = opts.memory_swap or 2 * opts.memory
    elif opts.memory_swap:
        raise InvalidArgument("you should always set the memory limit when using --memory-swap")
    if opts.memory_reservation:
        memory["reservation"] = opts.memory_reservation
    if opts.oom_kill_disable:
        memory["disableOOMKiller"] = True
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
    if opts.cpuset_mems:
        cpu["mems"] = opts.cpuset_mems
    if cpu:
        resources["cpu"] = cpu
    if opts.pids_limit is not None and opts.pids_limit > 0:
        resources["pids"] = {"limit": opts.pids_limit}
    blkio: dict[str, Any] = {}
    if opts.blkio_weight:
        if not 10 <= opts.blkio_weight <= 1000:
            raise InvalidArgument("invalid --blkio-weight: the range is 10 to 1000")
        blkio["weight"] = opts.blkio_weight
    for key, entries, field_name in (
        ("weightDevice", opts.blkio_weight_device, "weight"),
        ("throttleReadBpsDevice", opts.device_read_bps, "rate"),
        ("throttleWriteBpsDevice", opts.device_write_bps, "rate"),
        ("throttleReadIOPSDevice", opts.device_read_iops, "rate"),
        ("throttleWriteIOPSDevice", opts.device_write_iops, "rate"),
    ):
        for t in entries:
            node = _host_device(t.path)
            if node["type"] != "b":
                raise InvalidArgument(f"{t.path} is not a block device")
            blkio.setdefault(key, []).append(
                {"major": node["major"], "minor": node["minor"], field_name: t.rate}
            )
    if blkio:
        resources["blockIO"] = blkio
    return resources


def _host_device(path: str) -> dict[str, Any]:
    """A host device node as config.json's linux.devices describes it."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise InvalidArgument(
            f"error gathering device information while adding device {path!r}: {e.strerror}"
        )
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"{path} is not a device node")
    return {
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def parse_device_cgroup_rule(rule: str) -> dict[str, Any]:
    """``--device-cgroup-rule 'c 1:3 rwm'`` (``*`` for any major/minor, ``a`` for all)."""
    parts = rule.split()
    if len(parts) != 3 or parts[0] not in ("a", "b", "c") or ":" not in parts[1]:
        raise InvalidArgument(f"invalid device cgroup rule {rule!r}: expected 'c 1:3 rwm'")
    major, _, minor = parts[1].partition(":")
    if not set(parts[2]) <= set("rwm"):
        raise InvalidArgument(f"invalid device cgroup rule {rule!r}: access is r, w and m")
    out: dict[str, Any] = {"allow": True, "type": parts[0], "access": parts[2]}
    for key, value in (("major", major), ("minor", minor)):
        if value != "*":
            try:
                out[key] = int(value)
            except ValueError:
                raise InvalidArgument(f"invalid device cgroup rule {rule!r}: bad {key}")
    return out


_SKIP_DEV = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "console"}


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every device node under /dev, for --privileged (as Docker's HostDevices)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root:
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DEV]
        for name in filenames:
            path = os.path.join(dirpath, name)
            if dirpath == root and name in _SKIP_DEV:
                continue
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
                continue
            node = _host_device(path)
            node["path"] = path
            found.append(node)
    return found


def _linux_devices(opts: SpecOptions) -> list[dict[str, Any]]:
    out = []
    if opts.privileged:
        out.extend(host_devices())
    for m in opts.devices:
        node = _host_device(m.path_on_host)
        node["path"] = m.path_in_container or m.path_on_host
        out.append(node)
    return out


_RLIMIT_NAMES = {
    "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack", "as",
}  # fmt: skip


def _rlimits(ulimits: list[Ulimit]) -> list[dict[str, Any]]:
    out = []
    for u in ulimits:
        if u.name not in _RLIMIT_NAMES:
            raise InvalidArgument(f"invalid ulimit type: {u.name}")
        if u.soft > u.hard and u.hard != -1:
            raise InvalidArgument(
                f"ulimit soft limit must be less than or equal to hard limit: {u.soft} > {u.hard}"
            )
        hard = 0xFFFFFFFFFFFFFFFF if u.hard == -1 else u.hard
        soft = 0xFFFFFFFFFFFFFFFF if u.soft == -1 else u.soft
        out.append({"type": "RLIMIT_" + u.name.upper(), "hard": hard, "soft": soft})
    return out


_BASE_NAMESPACES = ("pid", "network", "ipc", "uts", "mount")
_NAMESPACE_TYPES = (*_BASE_NAMESPACES, "cgroup", "user")


def _namespaces(opts: SpecOptions) -> list[dict[str, Any]]:
    out = []
    for t in opts.namespaces:
        if t not in _NAMESPACE_TYPES:
            raise InvalidArgument(f"unknown namespace type {t!r}")
    for t in _NAMESPACE_TYPES:
        default = "" if t in _BASE_NAMESPACES else "host"
        if t == "user":
            default = "" if opts.uid_mappings else "host"
        mode = opts.namespaces.get(t, default)
        if mode == "host":
            continue
        if mode == "none":  # --ipc none: a namespace of its own, only without /dev/shm
            mode = ""
        out.append({"type": t, **({"path": mode} if mode else {})})
    return out


def build_spec(opts: SpecOptions) -> dict[str, Any]:
    """The runtime-spec document for ``opts`` (serialise with json.dumps)."""
    if not opts.args:
        raise InvalidArgument("no command specified")
    caps = effective_capabilities(opts.privileged, opts.cap_add, opts.cap_drop)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(opts),
        "resources": _resources(opts),
    }
    devices = _linux_devices(opts)
    if devices:
        linux["devices"] = devices
    if opts.sysctls:
        linux["sysctl"] = dict(opts.sysctls)
    if opts.uid_mappings:
        linux["uidMappings"] = [
            {"containerID": m.container_id, "hostID": m.host_id, "size": m.size}
            for m in opts.uid_mappings
        ]
        linux["gidMappings"] = [
            {"containerID": m.container_id, "hostID": m.host_id, "size": m.size}
            for m in (opts.gid_mappings or opts.uid_mappings)
        ]
    if not opts.privileged and opts.seccomp_profile != "unconfined":
        profile = (
            seccomp.parse_profile(opts.seccomp_profile)
            if opts.seccomp_profile
            else seccomp.default_profile()
        )
        linux["seccomp"] = seccomp.to_oci(profile, caps)
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    if not opts.privileged and not opts.unmask_paths:
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
            "args": [INIT_PATH, "--", *opts.args] if opts.init_path else list(opts.args),
            "env": list(opts.env),
            "cwd": opts.cwd or "/",
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": opts.no_new_privileges,
            "oomScoreAdj": opts.oom_score_adj,
        },
        "root": {"path": opts.rootfs, "readonly": opts.readonly_rootfs},
        # With the host's UTS namespace the container keeps the host's name (Docker).
        "hostname": "" if opts.namespaces.get("uts") == "host" else opts.hostname,
        "mounts": _default_mounts(opts),
        "linux": linux,
    }
    if opts.annotations:
        spec["annotations"] = dict(opts.annotations)
    if opts.ulimits:
        spec["process"]["rlimits"] = _rlimits(opts.ulimits)
    if opts.apparmor_profile:  # "unconfined" too, as dockerd writes it for --privileged
        spec["process"]["apparmorProfile"] = opts.apparmor_profile
    return spec
