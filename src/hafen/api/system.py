"""System routes: ``/_ping``, ``/version``, ``/info``."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
from datetime import UTC, datetime

from aiohttp import web

from hafen import API_VERSION, MIN_API_VERSION, __version__
from hafen.api.app import SERVER_HEADERS, Routes, daemon_of
from hafen.containers.model import ContainerStatus
from hafen.daemon.daemon import Daemon, backing_filesystem, host_flag
from hafen.runtime.cgroups import Support


async def ping(request: web.Request) -> web.Response:
    headers = {
        **SERVER_HEADERS,
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
    }
    if request.method == "HEAD":
        return web.Response(
            status=200, headers={**headers, "Content-Type": "text/plain; charset=utf-8"}
        )
    return web.Response(text="OK", headers=headers)


async def version(request: web.Request) -> web.Response:
    d = daemon_of(request)
    info = d.host_info()
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "python" + platform.python_version(),
        "Os": "linux",
        "Arch": "amd64" if info["arch"] == "x86_64" else info["arch"],
        "KernelVersion": info["kernel"],
        "BuildTime": _build_time(),
    }
    return web.json_response(
        {
            "Platform": {"Name": "hafen"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": __version__,
                    "Details": {**details, "Experimental": "false"},
                }
            ],
            "Version": __version__,
            **details,
            "Experimental": False,
        }
    )


def _cgroup_warnings(support: Support) -> list[str]:
    """dockerd's info warnings for limits this host cannot enforce."""
    missing = [
        (support.memory, "No memory limit support"),
        (support.swap, "No swap limit support"),
        (support.cpu, "No cpu cfs quota support"),
        (support.cpu, "No cpu cfs period support"),
        (support.cpu, "No cpu shares support"),
        (support.cpuset, "No cpuset support"),
        (support.pids, "No pids limit support"),
        (support.blkio, "No blkio throttle support"),
    ]
    return [f"WARNING: {text}" for ok, text in missing if not ok]


async def info(request: web.Request) -> web.Response:
    d = daemon_of(request)
    host = d.host_info()
    containers = d.containers.list()
    running = sum(1 for c in containers if c.state.status == ContainerStatus.RUNNING)
    paused = sum(1 for c in containers if c.state.status == ContainerStatus.PAUSED)
    images = await _count_images(d)
    support = d.containers.cgroup_support()
    cgroup_version = str(support.version)
    return web.json_response(
        {
            "ID": host["hostname"],
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": images,
            "Driver": d.storage_driver,
            "DriverStatus": [["Backing Filesystem", backing_filesystem(d.config.data_root)]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["null"],
                "Log": ["json-file", "local"],
            },
            "MemoryLimit": support.memory,
            "SwapLimit": support.swap,
            "CpuCfsPeriod": support.cpu,
            "CpuCfsQuota": support.cpu,
            "CPUShares": support.cpu,
            "CPUSet": support.cpuset,
            "PidsLimit": support.pids,
            "IPv4Forwarding": host_flag("/proc/sys/net/ipv4/ip_forward"),
            "Debug": d.config.debug,
            "NFd": len(os.listdir("/proc/self/fd")),
            "NGoroutines": 0,
            "SystemTime": datetime.now(UTC).isoformat(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version,
            "KernelVersion": host["kernel"],
            "OperatingSystem": host["os"],
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": host["arch"],
            "NCPU": os.cpu_count() or 1,
            "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
            "DockerRootDir": str(d.config.data_root),
            "Name": host["hostname"],
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {
                name: {"path": d.config.runtime_command(name)[0]}
                for name in ("hafen", "runc", "crun", *d.config.runtimes)
                if name == "hafen" or name in d.config.runtimes or shutil.which(name)
            },
            "DefaultRuntime": d.config.default_runtime,
            "Swarm": {
                "LocalNodeState": "inactive",
                "NodeID": "",
                "NodeAddr": "",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "SecurityOptions": [],
            "Warnings": _cgroup_warnings(support) or None,
        }
    )


def _build_time() -> str:
    """When this hafen was installed: the mtime of its package (there is no build step)."""
    import hafen

    stamp = os.path.getmtime(hafen.__file__)
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000000+00:00")


async def _count_images(d: Daemon) -> int:
    return len(await asyncio.to_thread(d.images.list))


def register(routes: Routes) -> None:
    routes.add("GET", "/_ping", ping)
    routes.add("HEAD", "/_ping", ping)
    routes.add("GET", "/version", version)
    routes.add("GET", "/info", info)
