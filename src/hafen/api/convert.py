"""Docker's JSON shapes ↔ hafen's records. The only place those shapes live.

Requests are validated field by field: a wrong type gets a 400 naming the field.
"""

from __future__ import annotations

import ipaddress
import shlex
import time
from typing import Any

from hafen.containers.logs import parse_rfc3339
from hafen.containers.model import (
    Container,
    ContainerConfig,
    ContainerStatus,
    HostConfig,
    RestartPolicy,
)
from hafen.errors import InvalidArgument
from hafen.network.model import EndpointRequest
from hafen.network.ports import port_requests
from hafen.units import human_duration
from hafen.volumes.model import MountPoint
from hafen.volumes.mounts import parse_api_mount, parse_bind, parse_tmpfs, volumes_from_spec

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _get(
    body: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str
) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise InvalidArgument(f"invalid value for {where}{key}: expected {names}")
    return value


def _str_list(body: dict[str, Any], key: str, where: str, split_string: bool) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value) if split_string else [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid value for {where}{key}: expected a list of strings")
    return list(value)


def container_config_from_api(body: dict[str, Any]) -> tuple[ContainerConfig, HostConfig]:
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    image = _get(body, "Image", str, "", "")
    if not image:
        raise InvalidArgument("Config.Image: an image is required")
    cmd = _str_list(body, "Cmd", "Config.", split_string=False)
    entrypoint = _str_list(body, "Entrypoint", "Config.", split_string=False)
    labels = _get(body, "Labels", dict, {}, "Config.")
    stop_timeout = body.get("StopTimeout")
    if stop_timeout is not None and (
        not isinstance(stop_timeout, int) or isinstance(stop_timeout, bool)
    ):
        raise InvalidArgument("invalid value for Config.StopTimeout: expected int")
    config = ContainerConfig(
        image=image,
        cmd=cmd,
        entrypoint=entrypoint,
        env=_str_list(body, "Env", "Config.", split_string=False) or [],
        working_dir=_get(body, "WorkingDir", str, "", "Config."),
        user=_get(body, "User", str, "", "Config."),
        hostname=_get(body, "Hostname", str, "", "Config."),
        domainname=_get(body, "Domainname", str, "", "Config."),
        tty=_get(body, "Tty", bool, False, "Config."),
        open_stdin=_get(body, "OpenStdin", bool, False, "Config."),
        stdin_once=_get(body, "StdinOnce", bool, False, "Config."),
        attach_stdin=_get(body, "AttachStdin", bool, False, "Config."),
        attach_stdout=_get(body, "AttachStdout", bool, True, "Config."),
        attach_stderr=_get(body, "AttachStderr", bool, True, "Config."),
        labels={str(k): str(v) for k, v in labels.items()},
        stop_signal=_get(body, "StopSignal", str, "", "Config."),
        stop_timeout=stop_timeout,
        exposed_ports=_get(body, "ExposedPorts", dict, {}, "Config."),
        volumes=_get(body, "Volumes", dict, {}, "Config."),
        healthcheck=_get(body, "Healthcheck", dict, None, "Config.") or None,
    )
    hc_raw = _get(body, "HostConfig", dict, {}, "")
    w = "HostConfig."
    restart = _get(hc_raw, "RestartPolicy", dict, {}, w)
    log_config = _get(hc_raw, "LogConfig", dict, {}, w)
    pids_limit = _get(hc_raw, "PidsLimit", int, None, w)
    host_config = HostConfig(
        auto_remove=_get(hc_raw, "AutoRemove", bool, False, w),
        privileged=_get(hc_raw, "Privileged", bool, False, w),
        read_only_rootfs=_get(hc_raw, "ReadonlyRootfs", bool, False, w),
        cap_add=_str_list(hc_raw, "CapAdd", w, split_string=False) or [],
        cap_drop=_str_list(hc_raw, "CapDrop", w, split_string=False) or [],
        memory=_get(hc_raw, "Memory", int, 0, w),
        memory_swap=_get(hc_raw, "MemorySwap", int, 0, w),
        memory_reservation=_get(hc_raw, "MemoryReservation", int, 0, w),
        nano_cpus=_get(hc_raw, "NanoCpus", int, 0, w),
        cpu_shares=_get(hc_raw, "CpuShares", int, 0, w),
        cpu_period=_get(hc_raw, "CpuPeriod", int, 0, w),
        cpu_quota=_get(hc_raw, "CpuQuota", int, 0, w),
        cpuset_cpus=_get(hc_raw, "CpusetCpus", str, "", w),
        pids_limit=pids_limit,
        shm_size=_get(hc_raw, "ShmSize", int, 0, w) or 64 * 1024 * 1024,
        init=bool(_get(hc_raw, "Init", bool, False, w)),
        runtime=_get(hc_raw, "Runtime", str, "", w),
        network_mode=_get(hc_raw, "NetworkMode", str, "default", w) or "default",
        restart_policy=RestartPolicy(
            name=_get(restart, "Name", str, "no", w + "RestartPolicy.") or "no",
            maximum_retry_count=_get(restart, "MaximumRetryCount", int, 0, w + "RestartPolicy."),
        ),
        binds=_str_list(hc_raw, "Binds", w, split_string=False) or [],
        extra_hosts=_str_list(hc_raw, "ExtraHosts", w, split_string=False) or [],
        group_add=_str_list(hc_raw, "GroupAdd", w, split_string=False) or [],
        # empty: the daemon's log-driver (daemon.json), chosen at create
        log_type=_get(log_config, "Type", str, "", w + "LogConfig.") or "",
        log_config={
            str(k): str(v)
            for k, v in (_get(log_config, "Config", dict, {}, w + "LogConfig.")).items()
        },
    )
    _isolation_from_api(hc_raw, host_config)
    mounts_raw = _get(hc_raw, "Mounts", list, [], w)
    host_config.mounts = [parse_api_mount(m) for m in mounts_raw]
    tmpfs = _get(hc_raw, "Tmpfs", dict, {}, w)
    if not all(isinstance(v, str) for v in tmpfs.values()):
        raise InvalidArgument("invalid value for HostConfig.Tmpfs: expected strings")
    host_config.tmpfs = {str(k): v for k, v in tmpfs.items()}
    host_config.volumes_from = _str_list(hc_raw, "VolumesFrom", w, split_string=False) or []
    host_config.dns = _str_list(hc_raw, "Dns", w, split_string=False) or []
    bindings = _get(hc_raw, "PortBindings", dict, {}, w)
    host_config.port_bindings = {}
    for key, entries in bindings.items():
        if entries is None:
            entries = []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise InvalidArgument(f"invalid value for HostConfig.PortBindings.{key}")
        host_config.port_bindings[str(key)] = [
            {"HostIp": str(e.get("HostIp") or ""), "HostPort": str(e.get("HostPort") or "")}
            for e in entries
        ]
    host_config.publish_all_ports = _get(hc_raw, "PublishAllPorts", bool, False, w)
    port_requests(config.exposed_ports, host_config.port_bindings, False)  # validates
    host_config.dns_search = _str_list(hc_raw, "DnsSearch", w, split_string=False) or []
    host_config.dns_options = _str_list(hc_raw, "DnsOptions", w, split_string=False) or []
    for spec in host_config.extra_hosts:
        name, sep, ip = spec.partition(":")
        if not sep or not name or not ip:
            raise InvalidArgument(f"invalid IP address in add-host: {spec!r} (expected host:ip)")
        if ip != "host-gateway":
            try:
                ipaddress.ip_address(ip.strip("[]"))
            except ValueError:
                raise InvalidArgument(f"invalid IP address in add-host: {ip!r}")
    # refuse bad specs now: nothing is created for a request that cannot run
    for spec in host_config.binds:
        parse_bind(spec)
    for dest, opts in host_config.tmpfs.items():
        parse_tmpfs(dest, opts)
    for spec in host_config.volumes_from:
        volumes_from_spec(spec)
    from hafen.containers.logopts import DRIVERS

    if host_config.log_type and host_config.log_type not in DRIVERS:
        raise InvalidArgument(
            f"HostConfig.LogConfig.Type: unsupported log driver {host_config.log_type!r}"
        )
    return config, host_config


_NS_MODES = {
    "PidMode": ("pid_mode", ("", "host"), True),
    "IpcMode": ("ipc_mode", ("", "host", "private", "shareable", "none"), True),
    "UTSMode": ("uts_mode", ("", "host"), False),
    "UsernsMode": ("userns_mode", ("", "host"), False),
    "CgroupnsMode": ("cgroupns_mode", ("", "host", "private"), False),
}


def _dict_list(body: dict[str, Any], key: str, fields: dict[str, type]) -> list[dict[str, Any]]:
    """A list of objects with typed fields (Ulimits, Devices, BlkioDevice*...)."""
    where = f"HostConfig.{key}"
    out = []
    for i, item in enumerate(_get(body, key, list, [], "HostConfig.") or []):
        if not isinstance(item, dict):
            raise InvalidArgument(f"invalid value for {where}[{i}]: expected an object")
        entry: dict[str, Any] = {}
        for name, kind in fields.items():
            value = item.get(name)
            if value is None:
                continue
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise InvalidArgument(
                    f"invalid value for {where}[{i}].{name}: expected {kind.__name__}"
                )
            entry[name] = value
        out.append(entry)
    return out


def _isolation_from_api(hc_raw: dict[str, Any], hc: HostConfig) -> None:
    """The isolation and resource fields of HostConfig (namespaces, devices, limits)."""
    w = "HostConfig."
    hc.security_opt = _str_list(hc_raw, "SecurityOpt", w, split_string=False) or []
    for opt in hc.security_opt:
        key = opt.split("=", 1)[0].split(":", 1)[0]
        if key not in ("seccomp", "no-new-privileges", "apparmor", "label", "systempaths"):
            raise InvalidArgument(f"invalid --security-opt: {opt!r}")
    hc.ulimits = _dict_list(hc_raw, "Ulimits", {"Name": str, "Soft": int, "Hard": int})
    hc.devices = _dict_list(
        hc_raw, "Devices", {"PathOnHost": str, "PathInContainer": str, "CgroupPermissions": str}
    )
    hc.device_cgroup_rules = _str_list(hc_raw, "DeviceCgroupRules", w, split_string=False) or []
    sysctls = _get(hc_raw, "Sysctls", dict, {}, w)
    hc.sysctls = {str(k): str(v) for k, v in sysctls.items()}
    for key, (attr, allowed, container_ok) in _NS_MODES.items():
        mode = _get(hc_raw, key, str, "", w)
        if mode not in allowed and not (container_ok and mode.startswith("container:")):
            raise InvalidArgument(f"invalid {key}: {mode!r}")
        setattr(hc, attr, mode)
    hc.oom_kill_disable = bool(_get(hc_raw, "OomKillDisable", bool, False, w))
    hc.oom_score_adj = _get(hc_raw, "OomScoreAdj", int, 0, w)
    if not -1000 <= hc.oom_score_adj <= 1000:
        raise InvalidArgument(
            f"invalid value {hc.oom_score_adj}, range for oom score adj is [-1000, 1000]"
        )
    hc.cpuset_mems = _get(hc_raw, "CpusetMems", str, "", w)
    hc.blkio_weight = _get(hc_raw, "BlkioWeight", int, 0, w)
    if hc.blkio_weight and not 10 <= hc.blkio_weight <= 1000:
        raise InvalidArgument("range of blkio weight is from 10 to 1000")
    hc.blkio_weight_device = _dict_list(hc_raw, "BlkioWeightDevice", {"Path": str, "Weight": int})
    rate = {"Path": str, "Rate": int}
    hc.blkio_device_read_bps = _dict_list(hc_raw, "BlkioDeviceReadBps", rate)
    hc.blkio_device_write_bps = _dict_list(hc_raw, "BlkioDeviceWriteBps", rate)
    hc.blkio_device_read_iops = _dict_list(hc_raw, "BlkioDeviceReadIOps", rate)
    hc.blkio_device_write_iops = _dict_list(hc_raw, "BlkioDeviceWriteIOps", rate)


def _config_to_api(c: Container) -> dict[str, Any]:
    cfg = c.config
    out: dict[str, Any] = {
        "Hostname": cfg.hostname,
        "Domainname": cfg.domainname,
        "User": cfg.user,
        "AttachStdin": cfg.attach_stdin,
        "AttachStdout": cfg.attach_stdout,
        "AttachStderr": cfg.attach_stderr,
        "Tty": cfg.tty,
        "OpenStdin": cfg.open_stdin,
        "StdinOnce": cfg.stdin_once,
        "Env": cfg.env,
        "Cmd": cfg.cmd,
        "Image": c.image_ref,
        "Volumes": cfg.volumes or None,
        "WorkingDir": cfg.working_dir,
        "Entrypoint": cfg.entrypoint,
        "OnBuild": None,
        "Labels": cfg.labels,
    }
    if cfg.exposed_ports:
        out["ExposedPorts"] = cfg.exposed_ports
    if cfg.stop_signal:
        out["StopSignal"] = cfg.stop_signal
    if cfg.stop_timeout is not None:
        out["StopTimeout"] = cfg.stop_timeout
    if cfg.healthcheck:
        out["Healthcheck"] = cfg.healthcheck
    return out


def _host_config_to_api(hc: HostConfig) -> dict[str, Any]:
    return {
        "Binds": hc.binds or None,
        "ContainerIDFile": "",
        "LogConfig": {"Type": hc.log_type, "Config": hc.log_config},
        "NetworkMode": hc.network_mode,
        "PortBindings": hc.port_bindings,
        "RestartPolicy": {
            "Name": hc.restart_policy.name,
            "MaximumRetryCount": hc.restart_policy.maximum_retry_count,
        },
        "AutoRemove": hc.auto_remove,
        "VolumeDriver": "",
        "VolumesFrom": hc.volumes_from or None,
        "Mounts": [_mount_spec_to_api(m) for m in hc.mounts] or None,
        "Tmpfs": hc.tmpfs or None,
        "CapAdd": hc.cap_add or None,
        "CapDrop": hc.cap_drop or None,
        "CgroupnsMode": hc.cgroupns_mode or "host",
        "Dns": hc.dns,
        "DnsOptions": hc.dns_options,
        "DnsSearch": hc.dns_search,
        "ExtraHosts": hc.extra_hosts or None,
        "GroupAdd": hc.group_add or None,
        "IpcMode": hc.ipc_mode or "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": hc.oom_score_adj,
        "PidMode": hc.pid_mode,
        "Privileged": hc.privileged,
        "PublishAllPorts": hc.publish_all_ports,
        "ReadonlyRootfs": hc.read_only_rootfs,
        "SecurityOpt": hc.security_opt or None,
        "UTSMode": hc.uts_mode,
        "UsernsMode": hc.userns_mode,
        "ShmSize": hc.shm_size,
        "Runtime": hc.runtime or "hafen",
        "Isolation": "",
        "CpuShares": hc.cpu_shares,
        "Memory": hc.memory,
        "NanoCpus": hc.nano_cpus,
        "CgroupParent": "",
        "CpuPeriod": hc.cpu_period,
        "CpuQuota": hc.cpu_quota,
        "CpusetCpus": hc.cpuset_cpus,
        "CpusetMems": hc.cpuset_mems,
        "Devices": hc.devices,
        "DeviceCgroupRules": hc.device_cgroup_rules or None,
        "BlkioWeight": hc.blkio_weight,
        "BlkioWeightDevice": hc.blkio_weight_device,
        "BlkioDeviceReadBps": hc.blkio_device_read_bps,
        "BlkioDeviceWriteBps": hc.blkio_device_write_bps,
        "BlkioDeviceReadIOps": hc.blkio_device_read_iops,
        "BlkioDeviceWriteIOps": hc.blkio_device_write_iops,
        "OomKillDisable": hc.oom_kill_disable,
        "Ulimits": hc.ulimits or None,
        "Sysctls": hc.sysctls or None,
        "MemoryReservation": hc.memory_reservation,
        "MemorySwap": hc.memory_swap,
        "PidsLimit": hc.pids_limit,
        "Init": hc.init,
        "MaskedPaths": None,
        "ReadonlyPaths": None,
    }


def _state_to_api(c: Container) -> dict[str, Any]:
    st = c.state
    return {
        "Status": st.status.value,
        "Running": st.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED),
        "Paused": st.status == ContainerStatus.PAUSED,
        "Restarting": st.status == ContainerStatus.RESTARTING,
        "OOMKilled": st.oom_killed,
        "Dead": st.status == ContainerStatus.DEAD,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": st.started_at,
        "FinishedAt": st.finished_at,
        **({"Health": st.health} if st.health else {}),
    }


def container_inspect(c: Container, driver: str) -> dict[str, Any]:
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": _state_to_api(c),
        "Image": c.image_id,
        "ResolvConfPath": c.resolv_conf_path,
        "HostnamePath": c.hostname_path,
        "HostsPath": c.hosts_path,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": c.restart_count,
        "Driver": driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": c.app_armor_profile,
        "ExecIDs": None,
        "HostConfig": _host_config_to_api(c.host_config),
        "GraphDriver": {"Name": driver, "Data": None},
        "Mounts": [mount_point_to_api(m) for m in c.mount_points],
        "Config": _config_to_api(c),
        "NetworkSettings": network_settings(c),
    }


def status_text(c: Container, now: float | None = None) -> str:
    """The human ``Status`` of ``docker ps``: "Up 3 seconds", "Exited (0) 2 minutes ago"."""
    now = time.time() if now is None else now
    st = c.state
    if st.status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
        text = "Up " + human_duration(now - parse_rfc3339(st.started_at))
        if st.status == ContainerStatus.PAUSED:
            return text + " (Paused)"
        health = (st.health or {}).get("Status")
        if health == "starting":
            return text + " (health: starting)"
        return f"{text} ({health})" if health else text
    if st.status == ContainerStatus.RESTARTING:
        ago = human_duration(now - parse_rfc3339(st.finished_at))
        return f"Restarting ({st.exit_code}) {ago} ago"
    if st.status == ContainerStatus.REMOVING:
        return "Removal In Progress"
    if st.status == ContainerStatus.DEAD:
        return "Dead"
    if st.finished_at == _ZERO_TIME or st.status == ContainerStatus.CREATED:
        return "Created"
    return f"Exited ({st.exit_code}) {human_duration(now - parse_rfc3339(st.finished_at))} ago"


def container_summary(c: Container, now: float | None = None) -> dict[str, Any]:
    """A ``GET /containers/json`` row (``now``: the time its ``Status`` is told at)."""
    command = " ".join([c.path, *c.args]) if c.path else ""
    return {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image_ref,
        "ImageID": c.image_id,
        "Command": command,
        "Created": int(parse_rfc3339(c.created)),
        "Ports": [
            {
                "IP": p.host_ip,
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": p.proto,
            }
            for p in c.ports
        ]
        if c.ports
        else [],
        "Labels": c.config.labels,
        "State": c.state.status.value,
        "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": c.host_config.network_mode},
        "NetworkSettings": {"Networks": networks_to_api(c)},
        "Mounts": [mount_point_to_api(m) for m in c.mount_points] if c.mount_points else [],
    }


def mount_point_to_api(m: MountPoint) -> dict[str, Any]:
    """A container's mount as inspect and ps show it (Docker's ``MountPoint``)."""
    out: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        out["Name"] = m.name
    out["Source"] = m.source
    out["Destination"] = m.destination
    if m.type == "volume":
        out["Driver"] = m.driver
    out["Mode"] = m.mode
    out["RW"] = m.rw
    out["Propagation"] = m.propagation if m.type == "bind" else ""
    return out


def _mount_spec_to_api(m: MountPoint) -> dict[str, Any]:
    """A ``HostConfig.Mounts`` entry back in Docker's ``Mount`` shape."""
    out: dict[str, Any] = {"Type": m.type, "Target": m.destination}
    if m.type == "bind":
        out["Source"] = m.source
        out["BindOptions"] = {"Propagation": m.propagation}
    elif m.type == "volume":
        out["Source"] = "" if m.anonymous else m.name
        volume_options: dict[str, Any] = {"NoCopy": not m.copy_up}
        if m.volume_labels:
            volume_options["Labels"] = m.volume_labels
        if m.volume_options or m.driver not in ("", "local"):
            volume_options["DriverConfig"] = {
                "Name": m.driver or "local",
                "Options": m.volume_options,
            }
        out["VolumeOptions"] = volume_options
    if not m.rw:
        out["ReadOnly"] = True
    return out


def endpoints_config_from_api(body: dict[str, Any]) -> dict[str, EndpointRequest]:
    """``NetworkingConfig.EndpointsConfig`` → requests by network name."""
    networking = _get(body, "NetworkingConfig", dict, {}, "")
    endpoints = _get(networking, "EndpointsConfig", dict, {}, "NetworkingConfig.")
    out: dict[str, EndpointRequest] = {}
    for name, raw in endpoints.items():
        out[str(name)] = endpoint_request_from_api(
            raw or {}, f"NetworkingConfig.EndpointsConfig.{name}."
        )
    return out


def endpoint_request_from_api(raw: Any, where: str) -> EndpointRequest:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"invalid value for {where.rstrip('.')}: expected an object")
    ipam = _get(raw, "IPAMConfig", dict, {}, where)
    return EndpointRequest(
        ipv4_address=_get(ipam, "IPv4Address", str, "", where + "IPAMConfig."),
        aliases=_str_list(raw, "Aliases", where, split_string=False) or [],
    )


def networks_to_api(c: Container) -> dict[str, Any]:
    """``NetworkSettings.Networks``: per network, the request and (while running) the
    endpoint (all that ``ps`` shows of the network settings)."""
    networks: dict[str, Any] = {}
    if not c.networks:
        mode = c.host_config.network_mode
        if mode in ("host", "none"):
            networks[mode] = {"NetworkID": "", "EndpointID": "", "IPAddress": "", "Gateway": ""}
        return networks
    live = {e.network_id: e for e in c.endpoints}
    for network_id, req in c.networks.items():
        e = live.get(network_id)
        networks[req.network_name or network_id[:12]] = {
            "IPAMConfig": {"IPv4Address": req.ipv4_address} if req.ipv4_address else None,
            "Links": None,
            "Aliases": req.aliases or None,
            "MacAddress": e.mac if e else "",
            "DriverOpts": None,
            "NetworkID": network_id,
            "EndpointID": e.endpoint_id if e else "",
            "Gateway": e.gateway if e else "",
            "IPAddress": e.ip if e else "",
            "IPPrefixLen": e.prefixlen if e else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "DNSNames": [c.name, c.short_id, *req.aliases] if e else None,
        }
    mode = c.host_config.network_mode
    if mode in ("host", "none"):
        networks[mode] = {"NetworkID": "", "EndpointID": "", "IPAddress": "", "Gateway": ""}
    return networks


def network_settings(c: Container) -> dict[str, Any]:
    """Docker's ``NetworkSettings``: per network, the request and (while running) the endpoint."""
    networks = networks_to_api(c)
    live = {e.network_id: e for e in c.endpoints}
    default = live.get(next((k for k, r in c.networks.items() if r.network_name == "bridge"), ""))
    return {
        "Bridge": "",
        "SandboxID": c.id if c.netns_path else "",
        "SandboxKey": c.netns_path,
        "Ports": ports_to_api(c),
        "Gateway": default.gateway if default else "",
        "IPAddress": default.ip if default else "",
        "IPPrefixLen": default.prefixlen if default else 0,
        "MacAddress": default.mac if default else "",
        "Networks": networks,
    }


def ports_to_api(c: Container) -> dict[str, Any]:
    """``NetworkSettings.Ports``: every exposed port, with its host bindings while running."""
    out: dict[str, Any] = {}
    if not c.state.running:
        return out
    for key in c.config.exposed_ports:
        out[key if "/" in key else f"{key}/tcp"] = None
    for p in c.ports:
        out.setdefault(f"{p.container_port}/{p.proto}", None)
        entries = out[f"{p.container_port}/{p.proto}"] or []
        entries.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
        out[f"{p.container_port}/{p.proto}"] = entries
    return out
