"""System routes: ``/_ping``, ``/version``, ``/info``."""

from __future__ import annotations

import asyncio
import os
import platform
from datetime import UTC, datetime

from aiohttp import web

from hafen import API_VERSION, MIN_API_VERSION, __version__
from hafen.api.app import SERVER_HEADERS, Routes, daemon_of
from hafen.containers.model import ContainerStatus
from hafen.daemon.daemon import Daemon


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
    return web.json_response(
        {
            "Platform": {"Name": "hafen"},
            "Components": [
                {"Name": "Engine", "Version": __version__, "Details": {"ApiVersion": API_VERSION}},
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": "python" + platform.python_version(),
            "Os": "linux",
            "Arch": "amd64" if info["arch"] == "x86_64" else info["arch"],
            "KernelVersion": info["kernel"],
            "BuildTime": datetime.fromtimestamp(d.started_at, UTC).isoformat(),
        }
    )


async def info(request: web.Request) -> web.Response:
    d = daemon_of(request)
    host = d.host_info()
    containers = d.containers.list()
    running = sum(1 for c in containers if c.state.status == ContainerStatus.RUNNING)
    paused = sum(1 for c in containers if c.state.status == ContainerStatus.PAUSED)
    images = await _count_images(d)
    cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    return web.json_response(
        {
            "ID": host["hostname"],
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": images,
            "Driver": d.storage_driver,
            "DriverStatus": [["Backing Filesystem", "extfs"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "none"],
                "Log": ["json-file"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "IPv4Forwarding": True,
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
                name: {"path": name} for name in ("hafen", "runc", "crun", *d.config.runtimes)
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
            "Warnings": None,
        }
    )


async def _count_images(d: Daemon) -> int:
    return len(await asyncio.to_thread(d.images.list))


def register(routes: Routes) -> None:
    routes.add("GET", "/_ping", ping)
    routes.add("HEAD", "/_ping", ping)
    routes.add("GET", "/version", version)
    routes.add("GET", "/info", info)
