"""``update``'s input: linux.resources from ``-r file`` (``-`` = stdin) or runc's flags.

Owns turning runc's update flags (``--memory 64m``, ``--cpu-quota``, ``--pids-limit`` ...)
into the OCI ``linux.resources`` object the cgroup managers apply. Byte sizes take
Docker's suffixes (b, k, m, g, t; a bare number is bytes).
"""

from __future__ import annotations

import json
import sys

from hafen.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(text: str, flag: str) -> int:
    """``64m`` -> 67108864; ``-1`` stays -1 (unlimited)."""
    value = text.strip().lower()
    if value == "-1":
        return -1
    if value.endswith("b") and len(value) > 1 and value[-2] in _UNITS:
        value = value[:-1]
    mult = 1
    if value and value[-1] in _UNITS:
        mult = _UNITS[value[-1]]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgument(f"update: --{flag} {text!r}: not a size (e.g. 512m, 1g)")
    if number < 0:
        raise InvalidArgument(f"update: --{flag} {text!r}: must not be negative")
    return int(number * mult)


def _int(text: str, flag: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"update: --{flag} {text!r}: not a number")


def resources_from_flags(opts: dict[str, Any]) -> dict[str, Any]:
    """The resources to apply: the -r document, with the single-value flags over it."""
    resources: dict[str, Any] = {}
    if opts.get("resources"):
        path = opts["resources"]
        try:
            if path == "-":
                resources = json.load(sys.stdin)
            else:
                with open(path) as f:
                    resources = json.load(f)
        except OSError as e:
            raise InvalidArgument(f"update: cannot read resources {path!r}: {e.strerror}")
        except ValueError as e:
            raise InvalidArgument(f"update: resources {path!r} are not valid JSON: {e}")
        if not isinstance(resources, dict):
            raise InvalidArgument("update: the resources document must be a JSON object")
    mem = resources.setdefault("memory", {})
    for flag, key in (
        ("memory", "limit"),
        ("memory_swap", "swap"),
        ("memory_reservation", "reservation"),
    ):
        if opts.get(flag):
            mem[key] = parse_bytes(opts[flag], flag.replace("_", "-"))
    cpu = resources.setdefault("cpu", {})
    for flag, key in (
        ("cpu_share", "shares"),
        ("cpu_period", "period"),
        ("cpu_quota", "quota"),
        ("cpu_rt_period", "realtimePeriod"),
        ("cpu_rt_runtime", "realtimeRuntime"),
    ):
        if opts.get(flag):
            cpu[key] = _int(opts[flag], flag.replace("_", "-"))
    if opts.get("cpuset_cpus"):
        cpu["cpus"] = opts["cpuset_cpus"]
    if opts.get("cpuset_mems"):
        cpu["mems"] = opts["cpuset_mems"]
    if opts.get("pids_limit"):
        resources["pids"] = {"limit": _int(opts["pids_limit"], "pids-limit")}
    if opts.get("blkio_weight"):
        weight = _int(opts["blkio_weight"], "blkio-weight")
        if not 10 <= weight <= 1000:
            raise InvalidArgument("update: --blkio-weight must be between 10 and 1000")
        resources.setdefault("blockIO", {})["weight"] = weight
    return {k: v for k, v in resources.items() if v or v == 0}
