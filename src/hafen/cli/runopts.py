"""``run``/``create`` flags -> the ``POST /containers/create`` JSON, as docker maps them.

Owns: the ``RunOptions`` record the commands fill from their flags, the parsers for the
flag mini-languages (``-e``/``--env-file``, ``-l``, ``-p``, ``-v``, ``--restart``,
``--memory``), and ``build_create_body``, which produces the create body
(``Config`` fields at the top level plus ``HostConfig``) that the daemon receives.
Pure functions: no I/O apart from reading ``--env-file``/``--label-file`` files and
the caller's environment for ``-e KEY``.
"""

from __future__ import annotations

import os
import re

from hafen.cli.format import ram_in_bytes
from hafen.errors import InvalidArgument
from hafen.records import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


@record
class RunOptions:
    """Everything ``hafen run``/``hafen create`` accept, before mapping."""

    image: str
    command: list[str] = field(default_factory=list)
    name: str | None = None
    detach: bool = False
    auto_remove: bool = False
    env: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    entrypoint: str | None = None
    interactive: bool = False
    tty: bool = False
    hostname: str | None = None
    labels: list[str] = field(default_factory=list)
    label_files: list[str] = field(default_factory=list)
    memory: str | None = None
    pids_limit: int | None = None
    cpus: float | None = None
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    read_only: bool = False
    init: bool = False
    stop_signal: str | None = None
    stop_timeout: int | None = None
    restart: str | None = None
    volumes: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    tmpfs: list[str] = field(default_factory=list)
    volumes_from: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    publish_all: bool = False
    expose: list[str] = field(default_factory=list)
    network: str | None = None
    extra_networks: list[str] = field(default_factory=list)  # --network given again
    network_aliases: list[str] = field(default_factory=list)
    ip: str | None = None
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    attach: list[str] = field(default_factory=list)
    console_size: tuple[int, int] | None = None  # (height, width) of the local terminal
    isolation: dict[str, Any] = field(default_factory=dict)  # cli.isolation's flag values
    healthcheck: dict[str, Any] | None = None  # cli.health's flags as Docker's Healthcheck
    log_config: dict[str, Any] | None = None  # cli.logflags' flags as HostConfig.LogConfig


# ----------------------------------------------------------------------------- env, labels


def _read_kv_file(path: str, what: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror or exc}")
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key = line.split("=", 1)[0]
        if not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"{what} file {path}, line {number}: invalid variable {key!r}")
        lines.append(line)
    return lines


def parse_env(
    values: Sequence[str],
    files: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """``--env-file`` entries first, then ``-e``; ``KEY`` alone takes ``KEY`` from the
    caller's environment and is dropped if unset, as docker does."""
    env = os.environ if environ is None else environ
    out: list[str] = []
    entries = [line for path in files for line in _read_kv_file(path, "env")] + list(values)
    for entry in entries:
        if "=" in entry:
            key = entry.split("=", 1)[0]
            if not key:
                raise InvalidArgument(f"invalid environment variable: {entry}")
            out.append(entry)
        elif entry:
            if entry in env:
                out.append(f"{entry}={env[entry]}")
        else:
            raise InvalidArgument("invalid environment variable: empty name")
    return out


def parse_labels(values: Sequence[str], files: Sequence[str] = ()) -> dict[str, str]:
    """``-l key=value`` / ``-l key`` (empty value) / ``--label-file``."""
    labels: dict[str, str] = {}
    entries = [line for path in files for line in _read_kv_file(path, "label")] + list(values)
    for entry in entries:
        key, _, value = entry.partition("=")
        if not key:
            raise InvalidArgument(f"invalid label '{entry}': empty name")
        labels[key] = value
    return labels


# ----------------------------------------------------------------------------- ports


def _port_range(text: str, what: str) -> tuple[int, int]:
    try:
        if "-" in text:
            lo_s, hi_s = text.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
        else:
            lo = hi = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}")
    if not (0 < lo <= hi <= 65535) and not (what == "hostPort" and lo == hi == 0):
        raise InvalidArgument(f"invalid {what}: {text}")
    return lo, hi


def parse_publish(
    specs: Sequence[str],
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, str]]]]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` (ranges allowed) ->
    (ExposedPorts, PortBindings)."""
    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        rest, _, proto = spec.partition("/")
        proto = (proto or "tcp").lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        ip = ""
        if rest.startswith("["):
            # [ipv6]:host:container
            end = rest.find("]")
            if end < 0:
                raise InvalidArgument(f"invalid IP address in {spec}")
            ip = rest[1:end]
            rest = rest[end + 1 :].lstrip(":")
            parts = rest.split(":")
            host_part, container_part = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        else:
            parts = rest.split(":")
            if len(parts) == 1:
                host_part, container_part = "", parts[0]
            elif len(parts) == 2:
                host_part, container_part = parts
            elif len(parts) == 3:
                ip, host_part, container_part = parts
            else:
                raise InvalidArgument(f"invalid port format: {spec}")
        if not container_part:
            raise InvalidArgument(f"no port specified: {spec}<empty>")
        c_lo, c_hi = _port_range(container_part, "containerPort")
        count = c_hi - c_lo + 1
        host_ports: list[str] = [""] * count
        if host_part:
            h_lo, h_hi = _port_range(host_part, "hostPort")
            if h_hi - h_lo + 1 == count:
                host_ports = [str(h_lo + i) for i in range(count)]
            elif count == 1:
                # A single container port may take any host port of a range.
                host_ports = [f"{h_lo}-{h_hi}" if h_lo != h_hi else str(h_lo)]
            else:
                raise InvalidArgument(
                    f"invalid ranges specified for container and host Ports: {container_part} and {host_part}"
                )
        for i in range(count):
            key = f"{c_lo + i}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_ports[i]})
    return exposed, bindings


def parse_expose(specs: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``--expose port[/proto]`` or a range."""
    exposed: dict[str, dict[str, Any]] = {}
    for spec in specs:
        port, _, proto = spec.partition("/")
        lo, hi = _port_range(port, "port")
        for p in range(lo, hi + 1):
            exposed[f"{p}/{(proto or 'tcp').lower()}"] = {}
    return exposed


# ----------------------------------------------------------------------------- volumes, restart


def parse_volumes(specs: Sequence[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """``-v`` -> (Binds, Volumes): ``src:dst[:opts]`` is a bind (or named volume), a lone
    ``/dst`` is an anonymous volume, as docker's CLI splits them."""
    binds: list[str] = []
    anonymous: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if not spec:
            raise InvalidArgument("invalid empty volume spec")
        parts = spec.split(":")
        if len(parts) == 1:
            if not spec.startswith("/"):
                raise InvalidArgument(
                    f"invalid volume specification: '{spec}': must be an absolute path"
                )
            anonymous[spec] = {}
        elif len(parts) in (2, 3):
            if not parts[0] or not parts[1].startswith("/"):
                raise InvalidArgument(f"invalid volume specification: '{spec}'")
            binds.append(spec)
        else:
            raise InvalidArgument(f"invalid volume specification: '{spec}'")
    return binds, anonymous


_TRUE = ("", "1", "true")
_FALSE = ("0", "false")


def _mount_bool(key: str, value: str | None, spec: str) -> bool:
    text = (value or "").lower()
    if value is None or text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidArgument(f"invalid value for {key}: {value} (in --mount {spec})")


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=…,source=…,target=…[,readonly][,volume-opt=k=v]…`` -> a Mount object."""
    import csv

    try:
        fields = next(csv.reader([spec]))
    except (csv.Error, StopIteration):
        raise InvalidArgument(f"invalid --mount specification: {spec!r}")
    mount: dict[str, Any] = {"Type": "volume"}
    volume_opts: dict[str, Any] = {}
    bind_opts: dict[str, Any] = {}
    tmpfs_opts: dict[str, Any] = {}
    driver_opts: dict[str, str] = {}
    labels: dict[str, str] = {}
    for item in fields:
        key, sep, value_text = item.partition("=")
        key = key.strip().lower()
        value = value_text if sep else None
        if key == "type":
            mount["Type"] = value or ""
        elif key in ("source", "src"):
            mount["Source"] = value or ""
        elif key in ("target", "destination", "dst"):
            mount["Target"] = value or ""
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _mount_bool(key, value, spec)
        elif key == "consistency":
            mount["Consistency"] = value or ""
        elif key == "bind-propagation":
            bind_opts["Propagation"] = value or ""
        elif key == "volume-nocopy":
            volume_opts["NoCopy"] = _mount_bool(key, value, spec)
        elif key == "volume-driver":
            volume_opts.setdefault("DriverConfig", {})["Name"] = value or ""
        elif key == "volume-label":
            k, _, v = (value or "").partition("=")
            labels[k] = v
        elif key == "volume-opt":
            k, sep2, v = (value or "").partition("=")
            if not k or not sep2:
                raise InvalidArgument(f"invalid volume-opt {value!r}: expected key=value")
            driver_opts[k] = v
        elif key == "tmpfs-size":
            tmpfs_opts["SizeBytes"] = ram_in_bytes(value or "")
        elif key == "tmpfs-mode":
            try:
                tmpfs_opts["Mode"] = int(value or "", 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for tmpfs-mode: {value}")
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{item}'")
    if not mount.get("Target"):
        raise InvalidArgument("target is required")
    if driver_opts:
        volume_opts.setdefault("DriverConfig", {})["Options"] = driver_opts
    if labels:
        volume_opts["Labels"] = labels
    kind = mount["Type"]
    if volume_opts and kind != "volume":
        raise InvalidArgument(f"cannot mix 'volume-*' options with mount type '{kind}'")
    if bind_opts and kind != "bind":
        raise InvalidArgument(f"cannot mix 'bind-*' options with mount type '{kind}'")
    if tmpfs_opts and kind != "tmpfs":
        raise InvalidArgument(f"cannot mix 'tmpfs-*' options with mount type '{kind}'")
    if volume_opts:
        mount["VolumeOptions"] = volume_opts
    if bind_opts:
        mount["BindOptions"] = bind_opts
    if tmpfs_opts:
        mount["TmpfsOptions"] = tmpfs_opts
    return mount


def parse_tmpfs_flags(specs: Sequence[str]) -> dict[str, str]:
    """``--tmpfs /path[:opts]`` -> HostConfig.Tmpfs."""
    out: dict[str, str] = {}
    for spec in specs:
        path, _, options = spec.partition(":")
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid tmpfs mount {spec!r}: the path must be absolute")
        out[path] = options
    return out


_RESTART_NAMES = ("no", "always", "unless-stopped", "on-failure")


def parse_restart(spec: str) -> dict[str, Any]:
    """``--restart no|always|unless-stopped|on-failure[:N]`` -> RestartPolicy."""
    name, _, count = spec.partition(":")
    if name not in _RESTART_NAMES:
        raise InvalidArgument(f"invalid restart policy '{spec}'")
    if count and name != "on-failure":
        raise InvalidArgument(
            f"invalid restart policy '{spec}': maximum retry count only with on-failure"
        )
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise InvalidArgument(
            f"invalid restart policy '{spec}': maximum retry count must be an integer"
        )
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": retries}


_SIGNAL_RE = re.compile(r"^(SIG)?[A-Z0-9+-]+$|^\d+$", re.IGNORECASE)


# ----------------------------------------------------------------------------- the body


def build_create_body(opts: RunOptions, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``POST /containers/create`` body for ``opts``; raises ``InvalidArgument`` for bad flags."""
    if not opts.image:
        raise InvalidArgument("image name is required")
    attach_stdin = attach_stdout = attach_stderr = False
    if not opts.detach:
        if opts.attach:
            streams = {s.lower() for s in opts.attach}
            bad = streams - {"stdin", "stdout", "stderr"}
            if bad:
                raise InvalidArgument(
                    f'invalid argument "{sorted(bad)[0]}" for "-a, --attach" flag'
                )
            attach_stdin = "stdin" in streams
            attach_stdout = "stdout" in streams
            attach_stderr = "stderr" in streams
        else:
            attach_stdout = attach_stderr = True
            attach_stdin = opts.interactive
    elif opts.attach:
        raise InvalidArgument("conflicting options: cannot specify both --attach and --detach")

    exposed, port_bindings = parse_publish(opts.publish)
    exposed.update(parse_expose(opts.expose))
    binds, anonymous = parse_volumes(opts.volumes)

    body: dict[str, Any] = {
        "Hostname": opts.hostname or "",
        "Domainname": "",
        "User": opts.user or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        # docker: a stdin that is attached closes the container's stdin when we detach.
        "StdinOnce": opts.interactive and attach_stdin,
        "Env": parse_env(opts.env, opts.env_files, environ),
        "Cmd": list(opts.command) if opts.command else None,
        "Image": opts.image,
        "Volumes": anonymous or None,
        "WorkingDir": opts.workdir or "",
        "Entrypoint": None,
        "Labels": parse_labels(opts.labels, opts.label_files),
    }
    if exposed:
        body["ExposedPorts"] = exposed
    if opts.entrypoint is not None:
        # docker: --entrypoint "" resets the image's entrypoint.
        body["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    if opts.stop_signal:
        if not _SIGNAL_RE.match(opts.stop_signal):
            raise InvalidArgument(f"invalid signal: {opts.stop_signal}")
        body["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        body["StopTimeout"] = opts.stop_timeout
    if opts.healthcheck is not None:
        body["Healthcheck"] = opts.healthcheck

    host: dict[str, Any] = {
        "Binds": binds or None,
        "Mounts": [parse_mount(m) for m in opts.mounts] or None,
        "Tmpfs": parse_tmpfs_flags(opts.tmpfs) or None,
        "VolumesFrom": list(opts.volumes_from) or None,
        "NetworkMode": opts.network or "default",
        "PortBindings": port_bindings,
        "PublishAllPorts": opts.publish_all,
        "RestartPolicy": parse_restart(opts.restart)
        if opts.restart
        else {"Name": "", "MaximumRetryCount": 0},
        "AutoRemove": opts.auto_remove,
        "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only,
        "CapAdd": list(opts.cap_add) or None,
        "CapDrop": list(opts.cap_drop) or None,
    }
    if opts.auto_remove and host["RestartPolicy"]["Name"] not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")
    if opts.dns:
        host["Dns"] = list(opts.dns)
    if opts.dns_search:
        host["DnsSearch"] = list(opts.dns_search)
    if opts.dns_options:
        host["DnsOptions"] = list(opts.dns_options)
    if opts.add_hosts:
        for spec in opts.add_hosts:
            name, sep, ip = spec.partition(":")
            if not sep or not name or not ip:
                raise InvalidArgument(f'invalid argument "{spec}" for "--add-host" flag')
        host["ExtraHosts"] = list(opts.add_hosts)
    network = opts.network or "default"
    special = ("default", "bridge", "host", "none")
    endpoints: dict[str, Any] = {}
    if opts.ip or opts.network_aliases:
        if network in special or network.startswith("container:"):
            raise InvalidArgument(
                "--ip and --network-alias need a user-defined network (--network NAME)"
            )
        endpoint: dict[str, Any] = {"Aliases": list(opts.network_aliases) or None}
        if opts.ip:
            endpoint["IPAMConfig"] = {"IPv4Address": opts.ip}
        endpoints[network] = endpoint
    for extra in opts.extra_networks:
        if network in special[2:] or network.startswith("container:") or extra in special[2:]:
            raise InvalidArgument(
                "conflicting options: cannot attach both user-defined and non-user-defined "
                "network-modes"
            )
        endpoints.setdefault(extra, {})
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    if opts.memory:
        host["Memory"] = ram_in_bytes(opts.memory)
    if opts.pids_limit is not None:
        host["PidsLimit"] = opts.pids_limit
    if opts.cpus is not None:
        if opts.cpus < 0:
            raise InvalidArgument(f"invalid value for --cpus: {opts.cpus}")
        host["NanoCpus"] = round(opts.cpus * 1e9)
    if opts.init:
        host["Init"] = True
    if opts.isolation:
        from hafen.cli.isolation import host_config_fields

        host.update(host_config_fields(opts.isolation))
    if opts.console_size and opts.tty:
        host["ConsoleSize"] = [opts.console_size[0], opts.console_size[1]]
    if opts.log_config is not None:
        host["LogConfig"] = opts.log_config
    body["HostConfig"] = host
    return body


# ----------------------------------------------------------------------------- references


def familiar_tagged(image: str) -> str:
    """The name docker prints in "Unable to find image 'X' locally": tag ``latest``
    added when the reference has neither tag nor digest, docker.io prefixes dropped."""
    name = image
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if "@" in name:
        return name
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    return name


def split_repo_tag(ref: str) -> tuple[str, str | None]:
    """``repo[:tag]`` -> (repo, tag or None); the tag is after the last ':' of the last
    path component (so ``host:5000/x`` has no tag)."""
    head, sep, last = ref.rpartition("/")
    if ":" in last:
        name, tag = last.rsplit(":", 1)
        return (head + sep + name, tag)
    return ref, None
