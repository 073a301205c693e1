"""HostConfig's isolation and resource fields -> ``SpecOptions`` (Docker's rules).

Owns: ``--security-opt`` (seccomp=unconfined|<profile JSON>, no-new-privileges,
apparmor=, systempaths=unconfined; label= is accepted and has no effect without
SELinux), namespace modes (``--pid/--ipc host|container:X``, ``--uts host``,
``--cgroupns``; Docker's default cgroupns is private on a cgroup v2 host, host on v1),
``--init``, ulimits, devices, sysctls, OOM settings and block-I/O limits. The caller
gives a function that returns the init pid of another running container, for
``container:<name|id>`` modes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hafen.containers.model import HostConfig
from hafen.errors import InvalidArgument
from hafen.oci.spec import DeviceMapping, Throttle, Ulimit


def _security(opts: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep and ":" in opt:  # the old "seccomp:unconfined" spelling
            key, _, value = opt.partition(":")
        if key == "seccomp":
            if not value:
                raise InvalidArgument("invalid --security-opt seccomp: a profile is required")
            out["seccomp_profile"] = value
        elif key == "no-new-privileges":
            if value not in ("", "true", "false"):
                raise InvalidArgument(f"invalid --security-opt: {opt!r}")
            out["no_new_privileges"] = value != "false"
        elif key == "apparmor":
            out["apparmor_profile"] = value
        elif key == "systempaths":
            if value != "unconfined":
                raise InvalidArgument(f"invalid --security-opt: {opt!r}")
            out["unmask_paths"] = True
        elif key == "label":
            continue  # SELinux labels: no SELinux here, as dockerd without --selinux-enabled
        else:
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    return out


def requested_apparmor_profile(hc: HostConfig) -> str:
    """The profile named by ``--security-opt apparmor=<name>`` ("" when none)."""
    profile: str = _security(hc.security_opt).get("apparmor_profile", "")
    return profile


def _namespaces(
    hc: HostConfig, pid_of: Callable[[str], int], cgroup_v2: bool | None
) -> dict[str, str]:
    out: dict[str, str] = {}
    if hc.ipc_mode == "none":
        out["ipc"] = "none"  # a private IPC namespace without /dev/shm (spec: "" + no mount)
    for ns, mode in (("pid", hc.pid_mode), ("ipc", hc.ipc_mode), ("uts", hc.uts_mode)):
        if mode == "host":
            out[ns] = "host"
        elif mode.startswith("container:"):
            out[ns] = f"/proc/{pid_of(mode.split(':', 1)[1])}/ns/{ns}"
    if hc.network_mode == "host":
        out["network"] = "host"
    cgroupns = hc.cgroupns_mode
    if not cgroupns:
        if cgroup_v2 is None:
            from hafen.runtime.cgroups import is_unified

            cgroup_v2 = is_unified()
        cgroupns = "private" if cgroup_v2 else "host"  # dockerd's default
    if cgroupns == "private":
        out["cgroup"] = ""
    return out


def _device(spec: dict[str, str]) -> DeviceMapping:
    host = spec.get("PathOnHost", "")
    if not host:
        raise InvalidArgument("invalid device mapping: PathOnHost is required")
    perms = spec.get("CgroupPermissions") or "rwm"
    if not set(perms) <= set("rwm"):
        raise InvalidArgument(f"invalid device mode: {perms}")
    return DeviceMapping(host, spec.get("PathInContainer") or host, perms)


def _throttles(entries: list[dict[str, Any]], key: str) -> list[Throttle]:
    out = []
    for e in entries:
        if not e.get("Path"):
            raise InvalidArgument("invalid block I/O device: Path is required")
        out.append(Throttle(e["Path"], int(e.get(key, 0))))
    return out


def isolation_options(
    hc: HostConfig, pid_of: Callable[[str], int], cgroup_v2: bool | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``SpecOptions`` from ``hc``; ``cgroup_v2``: whether the host
    is cgroup v2 only (the daemon knows; None: look at the host now)."""
    out = _security(hc.security_opt)
    out["namespaces"] = _namespaces(hc, pid_of, cgroup_v2)
    if hc.init:
        from hafen.runtime.initbin import init_binary

        out["init_path"] = init_binary()
    out["ulimits"] = [
        Ulimit(u.get("Name", ""), int(u.get("Soft", 0)), int(u.get("Hard", 0))) for u in hc.ulimits
    ]
    out["devices"] = [_device(d) for d in hc.devices]
    out["device_cgroup_rules"] = list(hc.device_cgroup_rules)
    out["sysctls"] = dict(hc.sysctls)
    out["oom_kill_disable"] = hc.oom_kill_disable
    out["oom_score_adj"] = hc.oom_score_adj
    out["cpuset_mems"] = hc.cpuset_mems
    out["blkio_weight"] = hc.blkio_weight
    out["blkio_weight_device"] = _throttles(hc.blkio_weight_device, "Weight")
    out["device_read_bps"] = _throttles(hc.blkio_device_read_bps, "Rate")
    out["device_write_bps"] = _throttles(hc.blkio_device_write_bps, "Rate")
    out["device_read_iops"] = _throttles(hc.blkio_device_read_iops, "Rate")
    out["device_write_iops"] = _throttles(hc.blkio_device_write_iops, "Rate")
    return out
