"""Reading a container's cgroup usage back: CPU, memory, pids, block I/O.

Owns the translation of v1 and v2 files into one shape, that of ``runc events --stats``
(``cpu.usage.total`` in ns, ``memory.usage.usage`` in bytes, ...), which ``hafen stats``
turns into Docker's stats JSON. Missing files read as zero: a controller that is not
mounted, or a kernel without a counter, leaves its fields at 0.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNLIMITED = 1 << 62  # v1 reports "no limit" as a page-rounded LONG_MAX


def _text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _int(path: str) -> int:
    value = _text(path)
    if value in ("", "max"):
        return 0
    try:
        return int(value.split()[0])
    except ValueError:
        return 0


def _kv(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in _text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return out


def _limit(path: str) -> int:
    value = _int(path)
    return 0 if value >= _UNLIMITED else value


def _v1_blkio(d: str, name: str) -> list[dict[str, Any]]:
    entries = []
    for line in _text(os.path.join(d, name)).splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":")
        entries.append(
            {"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])}
        )
    return entries


def v1_stats(paths: dict[str, str]) -> dict[str, Any]:
    """Stats from one directory per v1 hierarchy (controller name -> directory)."""

    def where(controller: str) -> str:
        for name, d in paths.items():
            if controller in name.split(","):
                return d
        return "/nonexistent"

    cpuacct = where("cpuacct")
    cpu = where("cpu")
    mem = where("memory")
    pids = where("pids")
    blkio = where("blkio")
    percpu = [int(x) for x in _text(os.path.join(cpuacct, "cpuacct.usage_percpu")).split()]
    ticks = _kv(os.path.join(cpuacct, "cpuacct.stat"))
    hz_to_ns = 10_000_000  # USER_HZ is 100 on Linux
    throttling = _kv(os.path.join(cpu, "cpu.stat"))
    raw = _kv(os.path.join(mem, "memory.stat"))
    swap_limit = _limit(os.path.join(mem, "memory.memsw.limit_in_bytes"))
    bytes_ = _v1_blkio(blkio, "blkio.throttle.io_service_bytes_recursive")
    ios = _v1_blkio(blkio, "blkio.throttle.io_serviced_recursive")
    return {
        "cpu": {
            "usage": {
                "total": _int(os.path.join(cpuacct, "cpuacct.usage")),
                "percpu": percpu,
                "kernel": ticks.get("system", 0) * hz_to_ns,
                "user": ticks.get("user", 0) * hz_to_ns,
            },
            "throttling": {
                "periods": throttling.get("nr_periods", 0),
                "throttledPeriods": throttling.get("nr_throttled", 0),
                "throttledTime": throttling.get("throttled_time", 0),
            },
        },
        "memory": {
            "usage": {
                "usage": _int(os.path.join(mem, "memory.usage_in_bytes")),
                "max": _int(os.path.join(mem, "memory.max_usage_in_bytes")),
                "limit": _limit(os.path.join(mem, "memory.limit_in_bytes")),
                "failcnt": _int(os.path.join(mem, "memory.failcnt")),
            },
            "swap": {
                "usage": _int(os.path.join(mem, "memory.memsw.usage_in_bytes")),
                "limit": swap_limit,
            },
            "cache": raw.get("total_cache", raw.get("cache", 0)),
            "raw": raw,
        },
        "pids": {
            "current": _int(os.path.join(pids, "pids.current")),
            "limit": _int(os.path.join(pids, "pids.max")),
        },
        "blkio": {"ioServiceBytesRecursive": bytes_, "ioServicedRecursive": ios},
    }


def v2_stats(d: str) -> dict[str, Any]:
    """Stats from the container's unified-hierarchy directory."""
    cpu = _kv(os.path.join(d, "cpu.stat"))
    raw = _kv(os.path.join(d, "memory.stat"))
    bytes_: list[dict[str, Any]] = []
    ios: list[dict[str, Any]] = []
    for line in _text(os.path.join(d, "io.stat")).splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, minor = (int(x) for x in parts[0].split(":"))
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op in (("rbytes", "Read"), ("wbytes", "Write")):
            bytes_.append(
                {"major": major, "minor": minor, "op": op, "value": int(fields.get(key, 0))}
            )
        for key, op in (("rios", "Read"), ("wios", "Write")):
            ios.append({"major": major, "minor": minor, "op": op, "value": int(fields.get(key, 0))})
    events = _kv(os.path.join(d, "memory.events"))
    return {
        "cpu": {
            "usage": {
                "total": cpu.get("usage_usec", 0) * 1000,
                "percpu": [],
                "kernel": cpu.get("system_usec", 0) * 1000,
                "user": cpu.get("user_usec", 0) * 1000,
            },
            "throttling": {
                "periods": cpu.get("nr_periods", 0),
                "throttledPeriods": cpu.get("nr_throttled", 0),
                "throttledTime": cpu.get("throttled_usec", 0) * 1000,
            },
        },
        "memory": {
            "usage": {
                "usage": _int(os.path.join(d, "memory.current")),
                "max": _int(os.path.join(d, "memory.peak")),
                "limit": _int(os.path.join(d, "memory.max")),
                "failcnt": events.get("max", 0),
            },
            "swap": {
                "usage": _int(os.path.join(d, "memory.swap.current")),
                "limit": _int(os.path.join(d, "memory.swap.max")),
            },
            "cache": raw.get("file", 0),
            "raw": raw,
        },
        "pids": {
            "current": _int(os.path.join(d, "pids.current")),
            "limit": _int(os.path.join(d, "pids.max")),
        },
        "blkio": {"ioServiceBytesRecursive": bytes_, "ioServicedRecursive": ios},
    }
