"""Loading and validating a bundle's config.json into typed records.

Owns: the subset of the OCI runtime spec (config.md, config-linux.md) that the runtime
applies, the capability and rlimit name tables, and validation that names the bad field
("linux.namespaces[2].type: unknown namespace type 'bogus'"). Everything that is refused
here is refused before anything is created on the host.
"""

from __future__ import annotations

from hafen.errors import InvalidConfig
from hafen.records import field, record
from hafen.runtime import _files
from hafen.runtime import _os as os
from hafen.runtime._fastjson import loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS = {name: i for i, name in enumerate(CAPABILITIES)}

RLIMITS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}

# Namespace type -> clone flag; values mirror _sys so that importing this module stays
# free of ctypes (the daemon validates configs without loading it).
NAMESPACE_FLAGS = {
    "mount": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "network": 0x40000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}


@record
class Namespace:
    type: str
    path: str = ""


@record
class Mount:
    destination: str
    type: str = ""
    source: str = ""
    options: list[str] = field(default_factory=list)


@record
class Device:
    path: str
    type: str
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@record
class IDMapping:
    container_id: int
    host_id: int
    size: int


@record
class Hook:
    path: str
    args: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    timeout: int = 0


@record
class Capabilities:
    bounding: list[str] = field(default_factory=list)
    effective: list[str] = field(default_factory=list)
    permitted: list[str] = field(default_factory=list)
    inheritable: list[str] = field(default_factory=list)
    ambient: list[str] = field(default_factory=list)


@record
class Process:
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    terminal: bool = False
    console_height: int = 0
    console_width: int = 0
    uid: int = 0
    gid: int = 0
    umask: int | None = None
    additional_gids: list[int] = field(default_factory=list)
    capabilities: Capabilities | None = None
    rlimits: list[tuple[int, int, int]] = field(default_factory=list)
    no_new_privileges: bool = False
    oom_score_adj: int | None = None
    apparmor_profile: str = ""


@record
class Spec:
    """The parts of config.json the runtime applies, with paths resolved."""

    oci_version: str
    bundle: str
    rootfs: str
    root_readonly: bool
    process: Process | None
    hostname: str = ""
    domainname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    uid_mappings: list[IDMapping] = field(default_factory=list)
    gid_mappings: list[IDMapping] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    sysctl: dict[str, str] = field(default_factory=dict)
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    rootfs_propagation: str = ""
    seccomp: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    hooks: dict[str, list[Hook]] = field(default_factory=dict)

    def has_namespace(self, ns_type: str) -> bool:
        return any(ns.type == ns_type for ns in self.namespaces)

    def namespace(self, ns_type: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.type == ns_type:
                return ns
        return None


def _want(obj: Any, typ: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, typ) or (typ is int and isinstance(obj, bool)):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise InvalidConfig(f"config.json: {where}: expected {names}, got {type(obj).__name__}")
    return obj


def _str_list(obj: Any, where: str) -> list[str]:
    items = _want(obj if obj is not None else [], list, where)
    for i, s in enumerate(items):
        _want(s, str, f"{where}[{i}]")
    return list(items)


def _caps(obj: Any, where: str) -> Capabilities:
    _want(obj, dict, where)
    caps = Capabilities()
    for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
        names = _str_list(obj.get(key), f"{where}.{key}")
        for name in names:
            if name not in CAP_NUMBERS:
                raise InvalidConfig(f"config.json: {where}.{key}: unknown capability {name!r}")
        setattr(caps, key, names)
    return caps


def parse_process(obj: Any, source: str = "config.json") -> Process:
    """Validate an OCI ``process`` object (from config.json, or exec's process.json)."""
    try:
        return _process(obj)
    except InvalidConfig as e:
        if source != "config.json":
            e.message = e.message.replace("config.json:", source + ":", 1)
            e.args = (e.message,)
        raise


def _process(obj: Any) -> Process:
    _want(obj, dict, "process")
    args = _str_list(obj.get("args"), "process.args")
    if not args:
        raise InvalidConfig("config.json: process.args must not be empty")
    user = _want(obj.get("user") or {}, dict, "process.user")
    cwd = _want(obj.get("cwd", "/"), str, "process.cwd")
    if not cwd.startswith("/"):
        raise InvalidConfig(f"config.json: process.cwd {cwd!r} must be an absolute path")
    proc = Process(
        args=args,
        env=_str_list(obj.get("env"), "process.env"),
        cwd=cwd,
        terminal=bool(obj.get("terminal", False)),
        uid=_want(user.get("uid", 0), int, "process.user.uid"),
        gid=_want(user.get("gid", 0), int, "process.user.gid"),
        additional_gids=[
            _want(g, int, "process.user.additionalGids[]") for g in user.get("additionalGids") or []
        ],
        no_new_privileges=bool(obj.get("noNewPrivileges", False)),
    )
    if "umask" in user:
        proc.umask = _want(user["umask"], int, "process.user.umask")
    size = obj.get("consoleSize")
    if size:
        proc.console_height = _want(size.get("height", 0), int, "process.consoleSize.height")
        proc.console_width = _want(size.get("width", 0), int, "process.consoleSize.width")
    if obj.get("capabilities") is not None:
        proc.capabilities = _caps(obj["capabilities"], "process.capabilities")
    for i, rl in enumerate(_want(obj.get("rlimits") or [], list, "process.rlimits")):
        where = f"process.rlimits[{i}]"
        _want(rl, dict, where)
        typ = rl.get("type")
        if typ not in RLIMITS:
            raise InvalidConfig(f"config.json: {where}.type: unknown rlimit {typ!r}")
        proc.rlimits.append(
            (
                RLIMITS[typ],
                _want(rl.get("soft", 0), int, f"{where}.soft"),
                _want(rl.get("hard", 0), int, f"{where}.hard"),
            )
        )
    proc.apparmor_profile = _want(obj.get("apparmorProfile", ""), str, "process.apparmorProfile")
    if obj.get("oomScoreAdj") is not None:
        proc.oom_score_adj = _want(obj["oomScoreAdj"], int, "process.oomScoreAdj")
    return proc


def _mappings(obj: Any, where: str) -> list[IDMapping]:
    out = []
    for i, m in enumerate(_want(obj or [], list, where)):
        _want(m, dict, f"{where}[{i}]")
        out.append(
            IDMapping(
                _want(m.get("containerID"), int, f"{where}[{i}].containerID"),
                _want(m.get("hostID"), int, f"{where}[{i}].hostID"),
                _want(m.get("size"), int, f"{where}[{i}].size"),
            )
        )
    return out


HOOK_KINDS = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


def _hooks(obj: Any) -> dict[str, list[Hook]]:
    _want(obj, dict, "hooks")
    out: dict[str, list[Hook]] = {}
    for kind, entries in obj.items():
        if kind not in HOOK_KINDS:
            raise InvalidConfig(f"config.json: hooks.{kind}: unknown hook kind")
        for i, h in enumerate(_want(entries or [], list, f"hooks.{kind}")):
            where = f"hooks.{kind}[{i}]"
            _want(h, dict, where)
            path = _want(h.get("path"), str, f"{where}.path")
            if not path.startswith("/"):
                raise InvalidConfig(f"config.json: {where}.path: {path!r} must be absolute")
            timeout = _want(h.get("timeout", 0), int, f"{where}.timeout")
            if timeout < 0:
                raise InvalidConfig(f"config.json: {where}.timeout must be positive")
            out.setdefault(kind, []).append(
                Hook(
                    path=path,
                    args=_str_list(h.get("args"), f"{where}.args"),
                    env=_str_list(h.get("env"), f"{where}.env"),
                    timeout=timeout,
                )
            )
    return out


def parse_spec(raw: dict[str, Any], bundle: str) -> Spec:
    """Validate a decoded config.json; paths resolve against ``bundle``."""
    _want(raw, dict, "top level")
    root = _want(raw.get("root"), dict, "root")
    root_path = _want(root.get("path"), str, "root.path")
    rootfs = os.path.normpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise InvalidConfig(f"config.json: root.path: rootfs {rootfs!r} does not exist")
    spec = Spec(
        oci_version=_want(raw.get("ociVersion", ""), str, "ociVersion"),
        bundle=bundle,
        rootfs=rootfs,
        root_readonly=bool(root.get("readonly", False)),
        process=_process(raw["process"]) if raw.get("process") is not None else None,
        hostname=_want(raw.get("hostname", ""), str, "hostname"),
        domainname=_want(raw.get("domainname", ""), str, "domainname"),
        annotations=dict(_want(raw.get("annotations") or {}, dict, "annotations")),
    )
    for i, m in enumerate(_want(raw.get("mounts") or [], list, "mounts")):
        where = f"mounts[{i}]"
        _want(m, dict, where)
        dest = _want(m.get("destination"), str, f"{where}.destination")
        if not dest.startswith("/"):
            # runc 1.1 accepts relative destinations and treats them as rooted.
            dest = "/" + dest
        spec.mounts.append(
            Mount(
                destination=dest,
                type=_want(m.get("type", ""), str, f"{where}.type"),
                source=_want(m.get("source", ""), str, f"{where}.source"),
                options=_str_list(m.get("options"), f"{where}.options"),
            )
        )
    linux = _want(raw.get("linux") or {}, dict, "linux")
    seen: set[str] = set()
    for i, ns in enumerate(_want(linux.get("namespaces") or [], list, "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        _want(ns, dict, where)
        typ = ns.get("type")
        if typ not in NAMESPACE_FLAGS:
            raise InvalidConfig(f"config.json: {where}.type: unknown namespace type {typ!r}")
        if typ in seen:
            raise InvalidConfig(f"config.json: {where}: namespace {typ!r} listed twice")
        seen.add(typ)
        path = _want(ns.get("path", ""), str, f"{where}.path")
        if path and not os.path.exists(path):
            raise InvalidConfig(f"config.json: {where}.path: {path!r} does not exist")
        spec.namespaces.append(Namespace(typ, path))
    spec.uid_mappings = _mappings(linux.get("uidMappings"), "linux.uidMappings")
    spec.gid_mappings = _mappings(linux.get("gidMappings"), "linux.gidMappings")
    user_ns = spec.namespace("user")
    if user_ns and not user_ns.path and not (spec.uid_mappings and spec.gid_mappings):
        raise InvalidConfig(
            "config.json: user namespace requires linux.uidMappings and gidMappings"
        )
    if spec.uid_mappings and not user_ns:
        raise InvalidConfig("config.json: linux.uidMappings given without a user namespace")
    for i, d in enumerate(_want(linux.get("devices") or [], list, "linux.devices")):
        where = f"linux.devices[{i}]"
        _want(d, dict, where)
        dtype = d.get("type")
        if dtype not in ("c", "b", "u", "p"):
            raise InvalidConfig(f"config.json: {where}.type: unknown device type {dtype!r}")
        spec.devices.append(
            Device(
                path=_want(d.get("path"), str, f"{where}.path"),
                type=dtype,
                major=_want(d.get("major", 0), int, f"{where}.major"),
                minor=_want(d.get("minor", 0), int, f"{where}.minor"),
                file_mode=_want(d.get("fileMode", 0o666), int, f"{where}.fileMode"),
                uid=_want(d.get("uid", 0), int, f"{where}.uid"),
                gid=_want(d.get("gid", 0), int, f"{where}.gid"),
            )
        )
    spec.cgroups_path = _want(linux.get("cgroupsPath", ""), str, "linux.cgroupsPath")
    spec.resources = dict(_want(linux.get("resources") or {}, dict, "linux.resources"))
    spec.sysctl = {
        str(k): str(v) for k, v in _want(linux.get("sysctl") or {}, dict, "linux.sysctl").items()
    }
    spec.masked_paths = _str_list(linux.get("maskedPaths"), "linux.maskedPaths")
    spec.readonly_paths = _str_list(linux.get("readonlyPaths"), "linux.readonlyPaths")
    spec.rootfs_propagation = _want(
        linux.get("rootfsPropagation", ""), str, "linux.rootfsPropagation"
    )
    if raw.get("hooks") is not None:
        spec.hooks = _hooks(raw["hooks"])
    if linux.get("seccomp") is not None:
        spec.seccomp = _want(linux["seccomp"], dict, "linux.seccomp")
    return spec


def load_spec(bundle: str) -> Spec:
    """Read and validate ``<bundle>/config.json``."""
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        raw = loads(_files.read_bytes(path))
    except FileNotFoundError:
        raise InvalidConfig(f"config.json not found in bundle {bundle!r}")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidConfig(f"config.json in {bundle!r} is not valid JSON: {e}")
    return parse_spec(raw, bundle)
