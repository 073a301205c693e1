"""Whether the kernel's OOM killer struck inside the container's memory cgroup.

Owns finding the init's memory cgroup (``/proc/<pid>/cgroup``: the v1 ``memory``
controller, else the v2 unified path) and reading its ``oom_kill`` counter (v1
``memory.oom_control``, v2 ``memory.events``). The shim reads the counter right after
create and again when the init has exited, before ``<runtime> delete`` removes the
cgroup; a rise means the container was OOM-killed (Docker's ``OOMKilled``).
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def memory_cgroup_file(pid: int, root: str = CGROUP_ROOT) -> str | None:
    """The file holding the ``oom_kill`` counter for ``pid``'s memory cgroup, if any."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _num, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = os.path.join(root, "memory", path.lstrip("/"), "memory.oom_control")
            if os.path.exists(candidate):
                return candidate
        elif controllers == "":
            unified = path
    if unified is not None:
        for base in (root, os.path.join(root, "unified")):
            candidate = os.path.join(base, unified.lstrip("/"), "memory.events")
            if os.path.exists(candidate):
                return candidate
    return None


def oom_kill_count(path: str | None) -> int:
    """The ``oom_kill`` counter in a ``memory.oom_control``/``memory.events`` file (0 if none)."""
    if path is None:
        return 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
