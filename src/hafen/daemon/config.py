"""The daemon's configuration: ``daemon.json`` → a typed ``DaemonConfig``; flags override it.

One source of truth for every path and default the daemon uses. Unknown keys in
daemon.json are refused with a message naming them, as dockerd does, so a typo never
silently changes nothing.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hafen.errors import InvalidConfig
from hafen.runtime import command as hafen_runtime_command

DEFAULT_DATA_ROOT = "/var/lib/hafen"
DEFAULT_EXEC_ROOT = "/run/hafen"
DEFAULT_HOST = "unix:///run/hafen/hafen.sock"
DEFAULT_CONFIG_FILE = "/etc/hafen/daemon.json"


def python_module_command(module: str) -> list[str]:
    """The argv prefix that runs a stdlib-only hafen module without site-packages.

    ``-S`` keeps interpreter start-up at ~16 ms instead of ~68 ms: the shim (its zygote)
    imports nothing outside the stdlib. ``-P``: ``-m`` would put the daemon's working
    directory first on ``sys.path``, where a ``json.py`` would be imported, as root,
    instead of the stdlib's. hafen's runtime has its own, runpy-free command
    (``hafen.runtime.command``).
    """
    return [sys.executable, "-S", "-P", "-m", module]


def hafen_pythonpath() -> str:
    """The directory holding the ``hafen`` package, for PYTHONPATH under ``python -S``."""
    import hafen

    return str(Path(hafen.__file__).resolve().parent.parent)


@dataclass
class DaemonConfig:
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    exec_root: Path = Path(DEFAULT_EXEC_ROOT)
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    default_runtime: str = "hafen"
    # name -> argv prefix of a runc-compatible runtime CLI
    runtimes: dict[str, list[str]] = field(default_factory=dict)
    storage_driver: str = ""  # "" = overlay when the kernel supports it, else vfs
    log_level: str = "info"
    group: str = "hafen"
    debug: bool = False
    cgroup_parent: str = "/hafen"
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    # create bridges even when hafend shares the machine's own network namespace
    bridge_on_host: bool = False
    bridge: str = ""  # "none": no default bridge network (dockerd's --bridge=none)
    iptables: bool = True  # nftables DNAT for published ports (when nft exists)
    ip_masq: bool = True  # masquerade traffic leaving bridge networks
    ip_forward: bool = True  # enable forwarding (only where nftables isolates bridges)
    port_range: str = ""  # "lo-hi" for -P; "" = the kernel's ephemeral range
    log_driver: str = "json-file"  # for containers that name none
    log_opts: dict[str, str] = field(default_factory=dict)
    userns_remap: str = ""  # "default" | "user[:group]": containers' root is a subuid

    def runtime_command(self, name: str | None = None) -> list[str]:
        name = name or self.default_runtime
        if name in self.runtimes:
            return list(self.runtimes[name])
        if name == "hafen":
            return hafen_runtime_command(sys.executable)
        if name in ("runc", "crun"):
            return [name]
        raise InvalidConfig(
            f'unknown runtime {name!r}: configure it under "runtimes" in daemon.json'
        )

    @property
    def runtime_root(self) -> Path:
        return self.exec_root / "runtime"


# daemon.json key -> DaemonConfig attribute
_JSON_KEYS = {
    "data-root": "data_root",
    "exec-root": "exec_root",
    "hosts": "hosts",
    "default-runtime": "default_runtime",
    "runtimes": "runtimes",
    "storage-driver": "storage_driver",
    "log-level": "log_level",
    "group": "group",
    "debug": "debug",
    "cgroup-parent": "cgroup_parent",
    "insecure-registries": "insecure_registries",
    "registry-mirrors": "registry_mirrors",
    "max-concurrent-downloads": "max_concurrent_downloads",
    "max-concurrent-uploads": "max_concurrent_uploads",
    "bridge-on-host": "bridge_on_host",
    "bridge": "bridge",
    "iptables": "iptables",
    "ip-masq": "ip_masq",
    "ip-forward": "ip_forward",
    "port-range": "port_range",
    "log-driver": "log_driver",
    "log-opts": "log_opts",
    "userns-remap": "userns_remap",
}


def load_config(path: Path | None, overrides: dict[str, Any]) -> DaemonConfig:
    """Read daemon.json (if it exists) and apply flag overrides (attribute name → value)."""
    config = DaemonConfig()
    if path is not None and path.exists():
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InvalidConfig(f"{path}: invalid JSON: {e}")
        if not isinstance(raw, dict):
            raise InvalidConfig(f"{path}: the top level must be a JSON object")
        unknown = sorted(set(raw) - set(_JSON_KEYS))
        if unknown:
            raise InvalidConfig(f"{path}: unknown keys: {', '.join(unknown)}")
        for key, value in raw.items():
            _set(config, _JSON_KEYS[key], value, f"{path}: {key}")
    for attr, value in overrides.items():
        if value is not None:
            _set(config, attr, value, f"flag {attr}")
    return config


def _set(config: DaemonConfig, attr: str, value: Any, where: str) -> None:
    kinds = {f.name: f.type for f in fields(config)}
    kind = str(kinds[attr])
    if "Path" in kind:
        if not isinstance(value, str | os.PathLike):
            raise InvalidConfig(f"{where}: expected a path")
        value = Path(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise InvalidConfig(f"{where}: expected true or false")
    elif attr == "runtimes":
        if not isinstance(value, dict):
            raise InvalidConfig(f'{where}: expected an object of name -> {{"path": ...}}')
        parsed: dict[str, list[str]] = {}
        for name, spec in value.items():
            if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                parsed[name] = [spec["path"], *[str(a) for a in spec.get("runtimeArgs", [])]]
            elif isinstance(spec, str):
                parsed[name] = shlex.split(spec)
            else:
                raise InvalidConfig(f'{where}: runtime {name!r} needs a "path"')
        value = parsed
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidConfig(f"{where}: expected a positive integer")
    elif attr == "log_opts":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise InvalidConfig(f"{where}: expected an object of string values")
        value = {str(k): v for k, v in value.items()}
    elif attr in ("insecure_registries", "registry_mirrors"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidConfig(f"{where}: expected a list of strings")
    elif attr == "hosts":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
            raise InvalidConfig(f"{where}: expected a list of addresses")
    elif not isinstance(value, str):
        raise InvalidConfig(f"{where}: expected a string")
    elif attr == "bridge" and value not in ("", "none"):
        raise InvalidConfig(
            f'{where}: hafen supports only "none" (no default bridge network), not {value!r}'
        )
    setattr(config, attr, value)
