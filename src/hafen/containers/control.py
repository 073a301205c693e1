"""Pause, unpause, update, top and stats of running containers, through the OCI runtime.

Owns the verbs that act on a live container's cgroups rather than its process tree:

    pause / unpause   the runtime's freezer (pause/resume); status paused <-> running
    update            new limits in HostConfig (saved), written live with ``update -r -``
    top               the runtime's ``ps`` (pids in the container's cgroup) joined with
                      the host's ``ps`` output, as dockerd does
    stats             one sample of the cgroup counters plus the host's CPU time
                      (``StatsSample``; Docker's JSON is made in api/)

Runtime calls block (subprocess): they run in worker threads.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hafen.containers.limits import discard_unsupported
from hafen.containers.model import Container, ContainerStatus, HostConfig, RestartPolicy
from hafen.errors import Conflict, InvalidArgument, RuntimeFailure
from hafen.runtime.cli_runtime import OCIRuntimeCLI

if TYPE_CHECKING:
    from hafen.containers.service import ContainerService

# HostConfig fields ``docker update`` may change, with their HostConfig attribute.
UPDATABLE = {
    "Memory": "memory",
    "MemorySwap": "memory_swap",
    "MemoryReservation": "memory_reservation",
    "NanoCpus": "nano_cpus",
    "CpuShares": "cpu_shares",
    "CpuPeriod": "cpu_period",
    "CpuQuota": "cpu_quota",
    "CpusetCpus": "cpuset_cpus",
    "CpusetMems": "cpuset_mems",
    "PidsLimit": "pids_limit",
    "BlkioWeight": "blkio_weight",
}


@dataclass
class StatsSample:
    """The container's counters at one moment (nanoseconds, bytes)."""

    read: float  # time.time() of the sample
    cpu_total: int
    percpu: list[int]
    cpu_kernel: int
    cpu_user: int
    system_cpu: int  # the host's total CPU time, for the percentage
    online_cpus: int
    throttling: dict[str, int]
    mem_usage: int
    mem_max: int
    mem_limit: int
    mem_stats: dict[str, int]
    pids_current: int
    pids_limit: int
    blkio: list[dict[str, Any]] = field(default_factory=list)


def _system_cpu_ns() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:8]
    return sum(int(x) for x in fields) * 10_000_000  # USER_HZ 100 -> ns


def _host_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


class ContainerControl:
    """The live-container verbs of one ``ContainerService``."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    def runtime(self, c: Container) -> OCIRuntimeCLI:
        """The container's OCI runtime, as a CLI."""
        opts = self.containers.options
        argv = opts.runtime_command(c.runtime or None)
        return OCIRuntimeCLI(argv, root=str(opts.runtime_root), env=opts.shim_env or None)

    def cgroups_path(self, c: Container) -> str:
        return f"{self.containers.options.cgroup_parent.rstrip('/')}/{c.id}"

    async def pause(self, ref: str) -> None:
        c = self.containers.get(ref)
        async with self.containers._lock(c.id):
            if c.state.status == ContainerStatus.PAUSED:
                raise Conflict(f"Container {c.id} is already paused")
            if c.state.status != ContainerStatus.RUNNING:
                raise Conflict(f"Container {c.id} is not running")
            await asyncio.to_thread(self.runtime(c).pause, c.id)
            c.state.status = ContainerStatus.PAUSED
            await self.containers._save(c)
        self.containers.event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.containers.get(ref)
        async with self.containers._lock(c.id):
            if c.state.status != ContainerStatus.PAUSED:
                raise Conflict(f"Container {c.id} is not paused")
            await asyncio.to_thread(self.runtime(c).resume, c.id)
            c.state.status = ContainerStatus.RUNNING
            await self.containers._save(c)
        self.containers.event(c, "unpause")

    async def thaw_for_stop(self, c: Container) -> None:
        """A paused container cannot act on a signal: thaw it (stop, kill, rm -f).

        The signal is already sent, so the thawed container may exit, and its exit be
        recorded, before the resume's thread hands back: only a status still paused
        becomes running, or a recorded exit would be overwritten and stop, kill and
        rm -f would wait for an exit that has already come."""
        if c.state.status == ContainerStatus.PAUSED:
            await asyncio.to_thread(self.runtime(c).resume, c.id)
            if c.state.status == ContainerStatus.PAUSED:
                c.state.status = ContainerStatus.RUNNING

    async def update(self, ref: str, body: dict[str, Any]) -> list[str]:
        """Apply ``docker update``'s body; returns the warnings."""
        c = self.containers.get(ref)
        hc = c.host_config
        changes: dict[str, Any] = {}
        for key, attr in UPDATABLE.items():
            value = body.get(key)
            if value is None or (value == 0 and key != "PidsLimit") or value == "":
                continue
            want = str if attr.startswith("cpuset") else int
            if not isinstance(value, want) or isinstance(value, bool):
                raise InvalidArgument(f"invalid value for {key}: expected {want.__name__}")
            changes[attr] = value
        if changes.get("nano_cpus") and (changes.get("cpu_quota") or hc.cpu_quota):
            raise InvalidArgument(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
            )
        if "blkio_weight" in changes and not 10 <= changes["blkio_weight"] <= 1000:
            raise InvalidArgument("range of blkio weight is from 10 to 1000")
        mem = changes.get("memory", hc.memory)
        swap = changes.get("memory_swap", hc.memory_swap)
        if mem and swap > 0 and swap < mem:
            raise InvalidArgument(
                "Minimum memoryswap limit should be larger than memory limit, see usage"
            )
        # As dockerd: what the host cannot enforce is dropped with a warning.
        probe = HostConfig(**changes)
        warnings = discard_unsupported(probe, self.containers.cgroup_support())
        changes = {
            attr: getattr(probe, attr)
            for attr, value in changes.items()
            if getattr(probe, attr) == value or getattr(probe, attr) not in (0, None, "")
        }
        policy = body.get("RestartPolicy")
        async with self.containers._lock(c.id):
            if c.state.running and changes:
                resources = _resources(changes)
                await asyncio.to_thread(self.runtime(c).update, c.id, resources)
            for attr, value in changes.items():
                setattr(hc, attr, value)
            if isinstance(policy, dict) and policy.get("Name") is not None:
                hc.restart_policy = RestartPolicy(
                    name=str(policy.get("Name") or "no"),
                    maximum_retry_count=int(policy.get("MaximumRetryCount") or 0),
                )
            await self.containers._save(c)
        self.containers.event(c, "update")
        return warnings

    async def top(self, ref: str, ps_args: str = "") -> tuple[list[str], list[list[str]]]:
        c = self.containers.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        return await asyncio.to_thread(self._top, c, ps_args or "-ef")

    def _top(self, c: Container, ps_args: str) -> tuple[list[str], list[list[str]]]:
        pids = set(self.runtime(c).ps(c.id))
        args = ps_args.split()
        try:
            out = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            raise RuntimeFailure("top: the host has no ps command")
        if out.returncode != 0:
            raise RuntimeFailure(f"Error running ps: {out.stderr.strip() or out.returncode}")
        lines = out.stdout.splitlines()
        if not lines:
            return [], []
        titles = lines[0].split()
        if "PID" not in titles:
            raise RuntimeFailure(f"Couldn't find PID field in ps output (ps {ps_args})")
        col = titles.index("PID")
        rows = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in pids:
                rows.append(fields)
        return titles, rows

    async def stats(self, ref: str) -> StatsSample:
        c = self.containers.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        return await asyncio.to_thread(self.sample, c)

    def sample(self, c: Container) -> StatsSample:
        from hafen.runtime import cgroups

        raw = cgroups.open_manager(self.cgroups_path(c), c.id).stats()
        cpu = raw["cpu"]
        mem = raw["memory"]
        limit = mem["usage"]["limit"] or _host_memory()
        return StatsSample(
            read=time.time(),
            cpu_total=cpu["usage"]["total"],
            percpu=list(cpu["usage"]["percpu"]),
            cpu_kernel=cpu["usage"]["kernel"],
            cpu_user=cpu["usage"]["user"],
            system_cpu=_system_cpu_ns(),
            online_cpus=os.cpu_count() or 1,
            throttling=dict(cpu["throttling"]),
            mem_usage=mem["usage"]["usage"],
            mem_max=mem["usage"]["max"],
            mem_limit=limit,
            mem_stats=dict(mem["raw"]),
            pids_current=raw["pids"]["current"],
            pids_limit=raw["pids"]["limit"],
            blkio=list(raw["blkio"]["ioServiceBytesRecursive"]),
        )


def _resources(changes: dict[str, Any]) -> dict[str, Any]:
    """The linux.resources for the changed HostConfig fields."""
    res: dict[str, Any] = {}
    mem: dict[str, int] = {}
    for attr, key in (
        ("memory", "limit"),
        ("memory_swap", "swap"),
        ("memory_reservation", "reservation"),
    ):
        if attr in changes:
            mem[key] = changes[attr]
    if mem:
        res["memory"] = mem
    cpu: dict[str, Any] = {}
    if "cpu_shares" in changes:
        cpu["shares"] = changes["cpu_shares"]
    if "nano_cpus" in changes:
        cpu["period"] = 100000
        cpu["quota"] = changes["nano_cpus"] * 100000 // 1_000_000_000
    if "cpu_period" in changes:
        cpu["period"] = changes["cpu_period"]
    if "cpu_quota" in changes:
        cpu["quota"] = changes["cpu_quota"]
    if "cpuset_cpus" in changes:
        cpu["cpus"] = changes["cpuset_cpus"]
    if "cpuset_mems" in changes:
        cpu["mems"] = changes["cpuset_mems"]
    if cpu:
        res["cpu"] = cpu
    if "pids_limit" in changes:
        res["pids"] = {"limit": changes["pids_limit"] if changes["pids_limit"] > 0 else -1}
    if "blkio_weight" in changes:
        res["blockIO"] = {"weight": changes["blkio_weight"]}
    return res
