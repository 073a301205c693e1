"""``run``/``create`` flags for isolation and resources -> HostConfig fields, as docker.

Owns the flags (``--memory-swap``, ``--cpu-shares``, ``--ulimit``, ``--device``,
``--security-opt``, ``--pid``, ``--sysctl`` ...) and ``host_config_fields``, which maps
their values to the Engine API's HostConfig names. ``--security-opt seccomp=<file>``
is read here and sent as the profile's JSON, as the docker CLI does.
"""

from __future__ import annotations

from hafen.cli import flags
from hafen.cli.format import ram_in_bytes
from hafen.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# (spellings, flags.option keyword arguments) in docker's help order.
_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("--memory-swap",), {"help": "Swap limit equal to memory plus swap: -1 for unlimited"}),
    (("--memory-reservation",), {"help": "Memory soft limit"}),
    (("--oom-kill-disable",), {"is_flag": True, "help": "Disable OOM Killer"}),
    (("--oom-score-adj",), {"type": int, "help": "Tune host's OOM preferences (-1000 to 1000)"}),
    (("-c", "--cpu-shares"), {"type": int, "help": "CPU shares (relative weight)"}),
    (("--cpu-period",), {"type": int, "help": "Limit CPU CFS (Completely Fair Scheduler) period"}),
    (("--cpu-quota",), {"type": int, "help": "Limit CPU CFS (Completely Fair Scheduler) quota"}),
    (("--cpuset-cpus",), {"help": "CPUs in which to allow execution (0-3, 0,1)"}),
    (("--cpuset-mems",), {"help": "MEMs in which to allow execution (0-3, 0,1)"}),
    (("--blkio-weight",), {"type": int, "help": "Block IO (relative weight), 10 to 1000"}),
    (("--blkio-weight-device",), {"multiple": True, "help": "Block IO weight (device:weight)"}),
    (("--device-read-bps",), {"multiple": True, "help": "Limit read rate (bytes per second)"}),
    (("--device-write-bps",), {"multiple": True, "help": "Limit write rate (bytes per second)"}),
    (("--device-read-iops",), {"multiple": True, "help": "Limit read rate (IO per second)"}),
    (("--device-write-iops",), {"multiple": True, "help": "Limit write rate (IO per second)"}),
    (("--ulimit",), {"multiple": True, "help": "Ulimit options (name=soft[:hard])"}),
    (("--security-opt",), {"multiple": True, "help": "Security Options"}),
    (("--device",), {"multiple": True, "help": "Add a host device to the container"}),
    (("--device-cgroup-rule",), {"multiple": True, "help": "Add a rule to the cgroup allowed devices list"}),
    (("--sysctl",), {"multiple": True, "help": "Sysctl options"}),
    (("--pid",), {"help": "PID namespace to use"}),
    (("--ipc",), {"help": "IPC mode to use"}),
    (("--uts",), {"help": "UTS namespace to use"}),
    (("--userns",), {"help": "User namespace to use"}),
    (("--cgroupns",), {"help": 'Cgroup namespace to use (host|private)'}),
    (("--shm-size",), {"help": "Size of /dev/shm"}),
    (("--group-add",), {"multiple": True, "help": "Add additional groups to join"}),
    (("--runtime",), {"help": "Runtime to use for this container"}),
]  # fmt: skip

PARAMS = (
    "memory_swap", "memory_reservation", "oom_kill_disable", "oom_score_adj", "cpu_shares",
    "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "blkio_weight",
    "blkio_weight_device", "device_read_bps", "device_write_bps", "device_read_iops",
    "device_write_iops", "ulimit", "security_opt", "device", "device_cgroup_rule", "sysctl",
    "pid", "ipc", "uts", "userns", "cgroupns", "shm_size", "group_add", "runtime",
)  # fmt: skip


def isolation_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    for spellings, kwargs in reversed(_OPTIONS):
        func = flags.option(*spellings, **kwargs)(func)
    return func


def collect(params: dict[str, Any]) -> dict[str, Any]:
    """The flags' values from the parsed params (only those given)."""
    out = {}
    for name in PARAMS:
        value = params.get(name)
        if value not in (None, (), False):
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024:2048`` / ``nofile=1024`` -> {"Name","Soft","Hard"}."""
    name, sep, limits = text.partition("=")
    if not sep or not name:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    soft_s, _, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    if soft > hard and hard != -1:
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Soft": soft, "Hard": hard}


def parse_device(text: str) -> dict[str, str]:
    """``/dev/x[:/dev/y][:rwm]`` -> {"PathOnHost","PathInContainer","CgroupPermissions"}."""
    parts = text.split(":")
    perms = "rwm"
    if (
        len(parts) > 1
        and parts[-1]
        and set(parts[-1]) <= set("rwm")
        and not parts[-1].startswith("/")
    ):
        perms = parts.pop()
    if len(parts) > 2 or not parts[0]:
        raise InvalidArgument(f"invalid device specification: {text}")
    host = parts[0]
    return {"PathOnHost": host, "PathInContainer": parts[1] if len(parts) == 2 else host,
            "CgroupPermissions": perms}  # fmt: skip


def _rate(text: str, flag: str, sizes: bool) -> dict[str, Any]:
    path, sep, value = text.rpartition(":")
    if not sep or not path:
        raise InvalidArgument(f"invalid value for --{flag}: {text} (expected <device>:<rate>)")
    try:
        rate = ram_in_bytes(value) if sizes else int(value)
    except (ValueError, InvalidArgument):
        raise InvalidArgument(f"invalid rate for --{flag}: {value}")
    return {"Path": path, "Rate": rate}


def _security_opt(opt: str) -> str:
    key, sep, value = opt.partition("=")
    if key == "seccomp" and sep and value != "unconfined":
        try:
            with open(value, encoding="utf-8") as f:
                return "seccomp=" + f.read()
        except OSError as e:
            raise InvalidArgument(f"opening seccomp profile ({value}) failed: {e.strerror}")
    return opt


def host_config_fields(values: dict[str, Any]) -> dict[str, Any]:
    """HostConfig entries for the flags in ``values`` (from ``collect``)."""
    v = values
    host: dict[str, Any] = {}
    if "memory_swap" in v:
        host["MemorySwap"] = -1 if v["memory_swap"] == "-1" else ram_in_bytes(v["memory_swap"])
    if "memory_reservation" in v:
        host["MemoryReservation"] = ram_in_bytes(v["memory_reservation"])
    if v.get("oom_kill_disable"):
        host["OomKillDisable"] = True
    if "oom_score_adj" in v:
        if not -1000 <= v["oom_score_adj"] <= 1000:
            raise InvalidArgument("invalid value for --oom-score-adj: the range is -1000 to 1000")
        host["OomScoreAdj"] = v["oom_score_adj"]
    simple = {
        "cpu_shares": "CpuShares", "cpu_period": "CpuPeriod", "cpu_quota": "CpuQuota",
        "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems", "blkio_weight": "BlkioWeight",
        "pid": "PidMode", "ipc": "IpcMode", "uts": "UTSMode", "userns": "UsernsMode",
        "cgroupns": "CgroupnsMode", "runtime": "Runtime",
    }  # fmt: skip
    for key, api in simple.items():
        if key in v:
            host[api] = v[key]
    if "blkio_weight_device" in v:
        host["BlkioWeightDevice"] = [
            {"Path": r["Path"], "Weight": r["Rate"]}
            for r in (_rate(t, "blkio-weight-device", False) for t in v["blkio_weight_device"])
        ]
    for key, api, sizes in (
        ("device_read_bps", "BlkioDeviceReadBps", True),
        ("device_write_bps", "BlkioDeviceWriteBps", True),
        ("device_read_iops", "BlkioDeviceReadIOps", False),
        ("device_write_iops", "BlkioDeviceWriteIOps", False),
    ):
        if key in v:
            host[api] = [_rate(t, key.replace("_", "-"), sizes) for t in v[key]]
    if "ulimit" in v:
        host["Ulimits"] = [parse_ulimit(u) for u in v["ulimit"]]
    if "security_opt" in v:
        host["SecurityOpt"] = [_security_opt(o) for o in v["security_opt"]]
    if "device" in v:
        host["Devices"] = [parse_device(d) for d in v["device"]]
    if "device_cgroup_rule" in v:
        host["DeviceCgroupRules"] = list(v["device_cgroup_rule"])
    if "sysctl" in v:
        sysctls = {}
        for entry in v["sysctl"]:
            key, sep, value = entry.partition("=")
            if not sep or not key:
                raise InvalidArgument(f"invalid argument for --sysctl: {entry} (key=value)")
            sysctls[key] = value
        host["Sysctls"] = sysctls
    if "shm_size" in v:
        host["ShmSize"] = ram_in_bytes(v["shm_size"])
    if "group_add" in v:
        host["GroupAdd"] = list(v["group_add"])
    return host
