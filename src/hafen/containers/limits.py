"""Limits the host cannot enforce, handled as dockerd handles them at create.

dockerd (daemon/daemon_unix.go, verifyPlatformContainerResources) does not refuse a
container whose limit needs a cgroup controller the host lacks (a cgroup v2 host whose
memory controller is not delegated, a kernel without swap accounting): it drops the
limit and answers with a warning, which the CLI prints as ``WARNING: ...``. The one
exception is ``--cpus``, which it refuses. This module applies the same rules to a
HostConfig, using the runtime's view of the host (``cgroups.host_support``).
"""

from __future__ import annotations

from hafen.containers.model import HostConfig
from hafen.errors import InvalidArgument
from hafen.runtime.cgroups import Support


def discard_unsupported(hc: HostConfig, support: Support) -> list[str]:
    """Drop from ``hc`` what the host cannot enforce; the warnings, in dockerd's words."""
    warnings: list[str] = []
    if not support.memory:
        if hc.memory > 0:
            warnings.append(
                "Your kernel does not support memory limit capabilities or the cgroup is "
                "not mounted. Limitation discarded."
            )
            hc.memory = 0
            hc.memory_swap = 0  # dockerd: -1, i.e. no swap limit either
        if hc.memory_reservation > 0:
            warnings.append(
                "Your kernel does not support memory soft limit capabilities or the cgroup "
                "is not mounted. Limitation discarded."
            )
            hc.memory_reservation = 0
        if hc.oom_kill_disable:
            warnings.append(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded."
            )
            hc.oom_kill_disable = False
    if hc.memory > 0 and hc.memory_swap > 0 and not support.swap:
        warnings.append(
            "Your kernel does not support swap limit capabilities or the cgroup is not "
            "mounted. Memory limited without swap."
        )
        hc.memory_swap = -1
    if hc.pids_limit is not None and hc.pids_limit > 0 and not support.pids:
        warnings.append(
            "Your kernel does not support PIDs limit capabilities or the cgroup is not "
            "mounted. PIDs limit discarded."
        )
        hc.pids_limit = None
    if not support.cpu:
        if hc.nano_cpus > 0:
            raise InvalidArgument(
                "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler "
                "or the cgroup is not mounted"
            )
        if hc.cpu_shares > 0:
            warnings.append(
                "Your kernel does not support CPU shares or the cgroup is not mounted. "
                "Shares discarded."
            )
            hc.cpu_shares = 0
        if hc.cpu_period > 0:
            warnings.append("Your kernel does not support CPU CFS scheduler. CPU period discarded.")
            hc.cpu_period = 0
        if hc.cpu_quota > 0:
            warnings.append("Your kernel does not support CPU CFS scheduler. CPU quota discarded.")
            hc.cpu_quota = 0
    if not support.cpuset and (hc.cpuset_cpus or hc.cpuset_mems):
        warnings.append(
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded."
        )
        hc.cpuset_cpus = hc.cpuset_mems = ""
    if not support.blkio:
        if hc.blkio_weight > 0:
            warnings.append(
                "Your kernel does not support Block I/O weight or the cgroup is not "
                "mounted. Weight discarded."
            )
            hc.blkio_weight = 0
        for attr, what in _BLKIO_LISTS:
            if getattr(hc, attr):
                warnings.append(
                    f"Your kernel does not support {what} or the cgroup is not mounted. "
                    f"{what} discarded."
                )
                setattr(hc, attr, [])
    return warnings


_BLKIO_LISTS = (
    ("blkio_weight_device", "Block I/O weight_device"),
    ("blkio_device_read_bps", "BPS Block I/O read limit"),
    ("blkio_device_write_bps", "BPS Block I/O write limit"),
    ("blkio_device_read_iops", "IOPS Block I/O read limit"),
    ("blkio_device_write_iops", "IOPS Block I/O write limit"),
)
