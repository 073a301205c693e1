"""Container cgroups: placement, resource limits and removal, for cgroup v1 and v2.

Owns the one small interface the rest of the runtime uses (``CgroupManager``) and its two
implementations. Lifecycle, as runc without systemd:

    manager = open_manager(cgroups_path, container_id)   # nothing touched yet
    manager.create()          # mkdir the container's cgroup(s); v2: enable controllers
    manager.apply(resources)  # write linux.resources into the files
    manager.add_proc(pid)     # move a process in
    manager.fork_child()      # or: fork a one-thread child that joins (born inside on v2)
    ... container runs ...
    manager.pids()            # every process inside (kill --all, delete --force)
    manager.destroy()         # rmdir the container's cgroup(s); parents stay
    manager.remove_if_empty() # or: rmdir at once, False (nothing waited for) when busy

The filesystem root (``/sys/fs/cgroup``) is a constructor argument so that unit tests run
against a plain directory and check what was written to each file.
"""

from __future__ import annotations

import errno
import time

from hafen.errors import InvalidConfig, RuntimeFailure
from hafen.runtime import _files
from hafen.runtime import _os as os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP2_SUPER_MAGIC = 0x63677270


class CgroupManager:
    """The container's cgroup(s), whatever the host's cgroup version (the interface).

    A plain base class rather than a typing.Protocol: ``typing`` costs start-up time.
    """

    path: str

    def paths(self) -> dict[str, str]:
        """Controller (or "" on v2) -> absolute directory of the container's cgroup."""
        raise NotImplementedError

    def create(self) -> None:
        raise NotImplementedError

    def apply(self, resources: dict[str, Any]) -> None:
        raise NotImplementedError

    def add_proc(self, pid: int) -> None:
        raise NotImplementedError

    def join_files(self) -> list[str]:
        """The files a process with a single thread writes ``0`` to, to move itself in
        (the runtime's forked intermediates: a container's init and an exec'd process)."""
        raise NotImplementedError

    def fork_inside(self, namespaces: int = 0) -> int | None:
        """Fork a child born inside the container's cgroup (and in new ``namespaces``), as
        ``os.fork`` returns (0 in the child); ``None`` (nothing forked) where the kernel
        cannot."""
        return None

    def fork_child(self, namespaces: int = 0) -> tuple[int, list[str]]:
        """``os.fork()`` for one of the runtime's one-thread children, and the files the
        child still writes ``0`` to, to join (none when it was born inside).

        With ``namespaces`` (CLONE_NEW* flags) the child is born in new namespaces too
        (clone3); raises ``OSError``, with nothing forked, where the kernel refuses that.
        """
        pid = self.fork_inside(namespaces)
        if pid is not None:
            return pid, []
        if namespaces:
            from hafen.runtime import _sys

            return _sys.clone_fork(namespaces), self.join_files()
        return os.fork(), self.join_files()

    def pids(self) -> list[int]:
        raise NotImplementedError

    def exists(self) -> bool:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def remove_if_empty(self) -> bool:
        """rmdir the container's cgroup(s) without reading or waiting on them; False
        when one still holds a process (or one that has only just exited): the caller
        then kills what is left and calls ``destroy``. A delete's usual case, an empty
        cgroup, so costs one rmdir per hierarchy."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Stop every process of the container (pause); returns once they are frozen."""
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def frozen(self) -> bool:
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Usage read back, in runc's ``events --stats`` shape (see ``cgroup_stats``)."""
        raise NotImplementedError

    def kill_all(self) -> bool:
        """SIGKILL every process at once, forks racing the kill included; False where the
        kernel cannot (v1, or v2 before Linux 5.14): the caller signals pid by pid."""
        return False


def is_unified(root: str = CGROUP_ROOT) -> bool:
    """True when ``root`` is a cgroup2 mount (pure v2 host), as runc detects it: by the
    statfs type of what is mounted there, on top (not mountinfo, which grows with every
    container's mounts and is read on every create)."""
    from hafen.runtime import _sys

    try:
        return _sys.statfs_type(root) == CGROUP2_SUPER_MAGIC
    except OSError:
        return False


def _fstype(mountpoint: str, mountinfo: str) -> str:
    found = ""
    try:
        lines = _files.read_text(mountinfo).splitlines()
    except OSError:
        return found
    for line in lines:
        parts = line.split()
        if len(parts) > 4 and parts[4] == mountpoint and "-" in parts:
            found = parts[parts.index("-") + 1]
    return found


def layout(root: str = CGROUP_ROOT, mountinfo: str = "/proc/self/mountinfo") -> str:
    """ "unified", "hybrid" or "legacy", as runc names the host's cgroup layout."""
    if _fstype(root, mountinfo) == "cgroup2":
        return "unified"
    if _fstype(root + "/unified", mountinfo) == "cgroup2":
        return "hybrid"
    return "legacy"


class Support:
    """Which limits this host's cgroups can enforce (dockerd's sysinfo, cgroup part)."""

    def __init__(self, version: int, controllers: set[str], swap: bool) -> None:
        self.version = version
        self.controllers = controllers  # v1 names and v2 names alike ("blkio" / "io")
        self.memory = "memory" in controllers
        self.swap = swap
        self.pids = "pids" in controllers
        self.cpu = "cpu" in controllers  # shares/weight and CFS quota/period
        self.cpuset = "cpuset" in controllers
        self.blkio = bool({"blkio", "io"} & controllers)


def host_support(root: str = CGROUP_ROOT, mountinfo: str = "/proc/self/mountinfo") -> Support:
    """What a container placed by this runtime can be limited in, on this host."""
    if layout(root, mountinfo) == "unified":
        try:
            found = set(_read(root, "cgroup.controllers").split())
        except OSError:
            found = set()
        # memory.swap.max exists below the root wherever the kernel accounts swap.
        return Support(2, found, "memory" in found and _swap_accounted())
    found = set()
    for name in os.listdir(root) if os.path.isdir(root) else []:
        if name != "unified" and os.path.exists(os.path.join(root, name, "cgroup.procs")):
            found.update(name.split(","))
    swap = os.path.exists(os.path.join(root, "memory", "memory.memsw.limit_in_bytes"))
    return Support(1, found, swap)


def _swap_accounted() -> bool:
    try:
        return "swapaccount=0" not in _files.read_text("/proc/cmdline").split()
    except OSError:
        return True


def resolve_path(cgroups_path: str, container_id: str) -> str:
    """linux.cgroupsPath -> the path below each hierarchy's root (runc's rules, no systemd)."""
    if not cgroups_path:
        return "/" + container_id
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        raise InvalidConfig(
            f"config.json: linux.cgroupsPath {cgroups_path!r}: systemd cgroup paths "
            "(slice:prefix:name) are not supported"
        )
    path = os.path.normpath("/" + cgroups_path.lstrip("/"))
    if path == "/":
        raise InvalidConfig("config.json: linux.cgroupsPath must not be the root cgroup")
    return path


def _write(directory: str, name: str, value: str) -> None:
    path = os.path.join(directory, name)
    try:
        _files.write_text(path, value)
    except OSError as e:
        raise RuntimeFailure(f"cgroup: write {value!r} to {path}: {e.strerror}")


def _read(directory: str, name: str) -> str:
    return _files.read_text(os.path.join(directory, name)).strip()


def _read_pids(directory: str) -> list[int]:
    try:
        return [
            int(pid) for pid in _files.read_bytes(os.path.join(directory, "cgroup.procs")).split()
        ]
    except OSError:
        return []


def _rmdir_now(paths: list[str]) -> bool:
    """rmdir each of ``paths`` (gone counts as removed); False if one was busy."""
    removed = True
    for path in paths:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise RuntimeFailure(f"cgroup: remove {path}: {e.strerror}")
            removed = False
    return removed


def _rmdir(path: str) -> None:
    """rmdir, retrying while the last exited tasks leave the cgroup (EBUSY).

    The wait starts at 0.5 ms and doubles up to 10 ms: a task that has just exited
    leaves within a millisecond or two, and a container's delete waits on this."""
    delay = 0.0005
    deadline = time.monotonic() + 2.0
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise RuntimeFailure(f"cgroup: remove {path}: {e.strerror}")
        if time.monotonic() > deadline:
            raise RuntimeFailure(f"cgroup: remove {path}: still busy (processes left)")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)


class CgroupV1(CgroupManager):
    """One directory per mounted v1 hierarchy: <root>/<controller><path>."""

    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        self.path = path
        self.root = root
        self._controllers = self._find_controllers()

    def _find_controllers(self) -> list[str]:
        found = []
        try:
            # scandir: the entry's type comes with its name, no stat per entry
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return []
        for entry in entries:
            # "unified" is the empty cgroup2 of a hybrid host; runc v1 leaves it alone.
            # Combined mounts (cpu,cpuacct) appear as a dir plus symlinks; use the dir once.
            if entry.name == "unified" or not entry.is_dir(follow_symlinks=False):
                continue
            if os.path.exists(entry.path + "/cgroup.procs"):
                found.append(entry.name)
        return found

    def _has(self, controller: str) -> bool:
        return any(controller in name.split(",") for name in self._controllers)

    def _dir(self, controller: str) -> str:
        for name in self._controllers:
            if controller in name.split(","):
                return self.root + "/" + name + self.path
        raise RuntimeFailure(f"cgroup: controller {controller!r} is not mounted")

    def paths(self) -> dict[str, str]:
        return {name: self.root + "/" + name + self.path for name in self._controllers}

    def exists(self) -> bool:
        return any(os.path.isdir(p) for p in self.paths().values())

    def create(self) -> None:
        for name, d in self.paths().items():
            if "cpuset" in name.split(","):
                self._create_cpuset(self.root + "/" + name)
            else:
                os.makedirs(d, exist_ok=True)

    def _create_cpuset(self, top: str) -> None:
        # A new v1 cpuset cgroup starts with empty cpus/mems and refuses tasks; copy each
        # new level's values from its parent (as runc does).
        current = top
        for part in self.path.strip("/").split("/"):
            parent, current = current, current + "/" + part
            fresh = not os.path.isdir(current)
            os.makedirs(current, exist_ok=True)
            if not fresh:
                continue
            for name in ("cpuset.cpus", "cpuset.mems"):
                try:
                    inherited = _read(parent, name)
                except FileNotFoundError:
                    continue
                try:
                    mine = _read(current, name)
                except FileNotFoundError:
                    mine = ""
                if not mine:
                    _write(current, name, inherited)

    def apply(self, resources: dict[str, Any]) -> None:
        mem = resources.get("memory") or {}
        if mem and self._has("memory"):
            d = self._dir("memory")
            memsw = os.path.join(d, "memory.memsw.limit_in_bytes")
            swap = mem.get("swap") if os.path.exists(memsw) else None
            limit = mem.get("limit")
            # memsw must never be below the memory limit: raise memsw first when the new
            # limit is above the current memsw (an update), else the limit first.
            swap_first = swap is not None and limit is not None and _above(limit, d, memsw)
            if swap_first:
                _write(d, "memory.memsw.limit_in_bytes", str(swap))
            if limit is not None:
                _write(d, "memory.limit_in_bytes", str(limit))
            if swap is not None and not swap_first:
                _write(d, "memory.memsw.limit_in_bytes", str(swap))
            if mem.get("reservation") is not None:
                _write(d, "memory.soft_limit_in_bytes", str(mem["reservation"]))
            if mem.get("swappiness") is not None and mem["swappiness"] <= 100:
                _write(d, "memory.swappiness", str(mem["swappiness"]))
            if mem.get("disableOOMKiller"):
                _write(d, "memory.oom_control", "1")
        pids = resources.get("pids") or {}
        if pids.get("limit") is not None and self._has("pids"):
            limit = pids["limit"]
            _write(self._dir("pids"), "pids.max", "max" if limit <= 0 else str(limit))
        cpu = resources.get("cpu") or {}
        if cpu and self._has("cpu"):
            d = self._dir("cpu")
            if cpu.get("shares"):
                _write(d, "cpu.shares", str(cpu["shares"]))
            # period before quota: the kernel checks quota against the current period.
            if cpu.get("period"):
                _write(d, "cpu.cfs_period_us", str(cpu["period"]))
            if cpu.get("quota"):
                _write(d, "cpu.cfs_quota_us", str(cpu["quota"]))
            if cpu.get("realtimePeriod"):
                _write(d, "cpu.rt_period_us", str(cpu["realtimePeriod"]))
            if cpu.get("realtimeRuntime"):
                _write(d, "cpu.rt_runtime_us", str(cpu["realtimeRuntime"]))
        if cpu and self._has("cpuset"):
            d = self._dir("cpuset")
            if cpu.get("cpus"):
                _write(d, "cpuset.cpus", cpu["cpus"])
            if cpu.get("mems"):
                _write(d, "cpuset.mems", cpu["mems"])
        if "devices" in resources and self._has("devices"):
            d = self._dir("devices")
            for rule in resources["devices"]:
                line = _device_rule(rule)
                _write(d, "devices.allow" if rule.get("allow") else "devices.deny", line)
        blkio = resources.get("blockIO") or {}
        if blkio and self._has("blkio"):
            d = self._dir("blkio")
            if blkio.get("weight"):
                _write(d, _first(d, "blkio.weight", "blkio.bfq.weight"), str(blkio["weight"]))
            if blkio.get("leafWeight"):
                _write(d, "blkio.leaf_weight", str(blkio["leafWeight"]))
            for dev in blkio.get("weightDevice") or []:
                if dev.get("weight"):
                    name = _first(d, "blkio.weight_device", "blkio.bfq.weight_device")
                    _write(d, name, f"{dev['major']}:{dev['minor']} {dev['weight']}")
            for key, name in _V1_THROTTLES:
                for dev in blkio.get(key) or []:
                    _write(d, name, f"{dev['major']}:{dev['minor']} {dev['rate']}")
        for limit in resources.get("hugepageLimits") or []:
            # _dir refuses clearly when the hugetlb controller is not mounted.
            size = limit["pageSize"]
            _write(self._dir("hugetlb"), f"hugetlb.{size}.limit_in_bytes", str(limit["limit"]))
        if resources.get("unified"):
            raise InvalidConfig(
                "config.json: linux.resources.unified needs cgroup v2; this host uses v1"
            )

    def add_proc(self, pid: int) -> None:
        for d in self.paths().values():
            _write(d, "cgroup.procs", str(pid))

    def join_files(self) -> list[str]:
        # ``tasks``, not ``cgroup.procs``: moving a whole process takes the kernel's global
        # threadgroup lock, whose first taking after a quiet spell waits for an RCU grace
        # period (5-15 ms here, on every container start); moving the calling thread
        # alone does not (the kernel skips that lock for it), and a process with one
        # thread moves whole.
        return [os.path.join(d, "tasks") for d in self.paths().values()]

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for d in self.paths().values():
            seen.update(_read_pids(d))
        return sorted(seen)

    def destroy(self) -> None:
        for d in self.paths().values():
            _rmdir(d)

    def remove_if_empty(self) -> bool:
        return _rmdir_now(list(self.paths().values()))

    def freeze(self) -> None:
        d = self._dir("freezer")
        for _ in range(1000):
            _write(d, "freezer.state", "FROZEN")
            # FREEZING while tasks are still being stopped; write again until FROZEN.
            if _read(d, "freezer.state") == "FROZEN":
                return
            time.sleep(0.001)
        _write(d, "freezer.state", "THAWED")
        raise RuntimeFailure(f"cgroup: could not freeze {d}")

    def thaw(self) -> None:
        _write(self._dir("freezer"), "freezer.state", "THAWED")

    def frozen(self) -> bool:
        if not self._has("freezer"):
            return False
        try:
            return _read(self._dir("freezer"), "freezer.state") != "THAWED"
        except OSError:
            return False

    def stats(self) -> dict[str, Any]:
        from hafen.runtime import cgroup_stats

        return cgroup_stats.v1_stats(self.paths())


_V1_THROTTLES = (
    ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
    ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
    ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
    ("throttleWriteIOPSDevice", "blkio.throttle.write_iops_device"),
)


def _first(directory: str, *names: str) -> str:
    """The first of ``names`` that exists in ``directory`` (kernels name some files two ways)."""
    for name in names:
        if os.path.exists(os.path.join(directory, name)):
            return name
    raise RuntimeFailure(f"cgroup: {directory} has none of {', '.join(names)} (not supported)")


def _above(limit: int, directory: str, memsw: str) -> bool:
    try:
        current = int(_read(directory, os.path.basename(memsw)) or "0")
    except (OSError, ValueError):
        return False
    return limit == -1 or (current > 0 and limit > current)


def _device_rule(rule: dict[str, Any]) -> str:
    typ = rule.get("type") or "a"
    major = rule.get("major")
    minor = rule.get("minor")
    access = rule.get("access") or "rwm"
    if typ == "a":
        return "a"
    maj = "*" if major is None or major < 0 else str(major)
    mnr = "*" if minor is None or minor < 0 else str(minor)
    return f"{typ} {maj}:{mnr} {access}"


class CgroupV2(CgroupManager):
    """One directory in the unified hierarchy: <root><path>."""

    def __init__(self, path: str, root: str = CGROUP_ROOT) -> None:
        self.path = path
        self.root = root
        self.dir = root + path

    def paths(self) -> dict[str, str]:
        return {"": self.dir}

    def exists(self) -> bool:
        return os.path.isdir(self.dir)

    def create(self) -> None:
        # Enable every available controller on the way down so the leaf gets them all.
        try:
            available = _read(self.root, "cgroup.controllers").split()
        except OSError:
            available = []
        current = self.root
        for part in self.path.strip("/").split("/"):
            if available:
                want = " ".join("+" + c for c in available)
                try:
                    _write(current, "cgroup.subtree_control", want)
                except RuntimeFailure:
                    # Some controllers cannot be enabled (e.g. threaded); enable one by one.
                    for c in available:
                        try:
                            _write(current, "cgroup.subtree_control", "+" + c)
                        except RuntimeFailure:
                            pass
            current = current + "/" + part
            os.makedirs(current, exist_ok=True)
            try:
                available = _read(current, "cgroup.controllers").split()
            except OSError:
                available = []

    def controllers(self) -> set[str]:
        """The controllers this cgroup can use (its ``cgroup.controllers``)."""
        try:
            return set(_read(self.dir, "cgroup.controllers").split())
        except OSError:
            return set()

    def apply(self, resources: dict[str, Any]) -> None:
        # runc's rules (libcontainer/cgroups/fs2): a value of 0 or "" means "not set"; a
        # limit that is set needs its controller, else the container is refused with a
        # message naming the controller (runc: "controller %q not available").
        d = self.dir
        available = self.controllers()

        def need(controller: str, what: str) -> None:
            if controller not in available:
                raise RuntimeFailure(
                    f"cgroup v2: {what} requested but controller {controller!r} is not "
                    f"available in {d} (cgroup.controllers: {' '.join(sorted(available)) or 'none'})"
                )

        mem = resources.get("memory") or {}
        limit = mem.get("limit") or 0
        swap = mem.get("swap") or 0
        reservation = mem.get("reservation") or 0
        swap_value = memory_swap_to_v2(swap, limit)
        if limit or reservation or swap_value not in ("", "max", "0"):
            need("memory", "a memory limit")
        if swap_value != "":
            try:
                _write(d, "memory.swap.max", swap_value)
            except RuntimeFailure:
                # Without swap accounting (or the memory controller), runc silently
                # ignores "max" and "0".
                if os.path.exists(os.path.join(d, "memory.swap.max")) or swap_value not in (
                    "max",
                    "0",
                ):
                    raise
        if limit:
            _write(d, "memory.max", _num(limit))
        if reservation:
            _write(d, "memory.low", _num(reservation))
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            need("pids", "a pids limit")
            _write(d, "pids.max", "max" if pids["limit"] < 0 else str(pids["limit"]))
        cpu = resources.get("cpu") or {}
        if cpu.get("shares") or cpu.get("quota") or cpu.get("period"):
            need("cpu", "a cpu limit")
        if cpu.get("shares"):
            _write(d, "cpu.weight", str(shares_to_weight(cpu["shares"])))
        if cpu.get("quota") or cpu.get("period"):
            # As runc: "max" unless a positive quota; the period only when given (the
            # kernel keeps the current one otherwise).
            quota = cpu.get("quota") or 0
            value = str(quota) if quota > 0 else "max"
            if cpu.get("period"):
                value += f" {cpu['period']}"
            _write(d, "cpu.max", value)
        if cpu.get("cpus") or cpu.get("mems"):
            need("cpuset", "a cpuset")
        if cpu.get("cpus"):
            _write(d, "cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            _write(d, "cpuset.mems", cpu["mems"])
        blkio = resources.get("blockIO") or {}
        throttles: dict[str, list[str]] = {}
        for key, name in _V2_THROTTLES:
            for dev in blkio.get(key) or []:
                throttles.setdefault(f"{dev['major']}:{dev['minor']}", []).append(
                    f"{name}={dev['rate']}"
                )
        weight_devices = [dev for dev in blkio.get("weightDevice") or [] if dev.get("weight")]
        if blkio.get("weight") or weight_devices or throttles:
            need("io", "a block I/O limit")
        if blkio.get("weight"):
            if os.path.exists(os.path.join(d, "io.bfq.weight")):
                _write(d, "io.bfq.weight", str(blkio["weight"]))
            else:
                _write(d, "io.weight", f"default {blkio_weight_to_io(blkio['weight'])}")
        for dev in weight_devices:
            w = blkio_weight_to_io(dev["weight"])
            _write(d, "io.weight", f"{dev['major']}:{dev['minor']} {w}")
        # One io.max line per device with all its throttles ("8:0 rbps=1048576 wiops=10").
        for device, values in throttles.items():
            _write(d, "io.max", f"{device} {' '.join(values)}")
        hugepages = resources.get("hugepageLimits") or []
        if hugepages:
            need("hugetlb", "a hugepage limit")
        for hp in hugepages:
            _write(d, f"hugetlb.{hp['pageSize']}.max", str(hp["limit"]))
        for name, value in (resources.get("unified") or {}).items():
            if "/" in name or name.startswith(".") or "." not in name:
                raise InvalidConfig(
                    f"config.json: linux.resources.unified: bad file {name!r} "
                    "(want CONTROLLER.PARAMETER)"
                )
            controller = name.split(".", 1)[0]
            if controller != "cgroup":
                need(controller, f"linux.resources.unified {name!r}")
            _write(d, name, str(value))
        if "devices" in resources:
            # No controller: the kernel asks an eBPF program attached to the cgroup.
            from hafen.runtime import devices_bpf

            devices_bpf.attach(d, resources["devices"])

    def add_proc(self, pid: int) -> None:
        _write(self.dir, "cgroup.procs", str(pid))

    def join_files(self) -> list[str]:
        # v2 moves a thread alone only within one threaded subtree (cgroup.threads), so
        # the process moves as a whole, grace period and all: fork_inside avoids it.
        return [os.path.join(self.dir, "cgroup.procs")]

    def fork_inside(self, namespaces: int = 0) -> int | None:
        from hafen.runtime import _sys

        try:
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return None  # the migration path reports what is wrong
        try:
            return _sys.clone_fork(namespaces, fd)
        except OSError:
            return None  # ENOSYS (Linux < 5.7), or refused: join by migration instead
        finally:
            os.close(fd)

    def kill_all(self) -> bool:
        if not os.path.exists(os.path.join(self.dir, "cgroup.kill")):
            return False
        _write(self.dir, "cgroup.kill", "1")
        return True

    def pids(self) -> list[int]:
        return _read_pids(self.dir)

    def destroy(self) -> None:
        _rmdir(self.dir)

    def remove_if_empty(self) -> bool:
        return _rmdir_now([self.dir])

    def freeze(self) -> None:
        _write(self.dir, "cgroup.freeze", "1")
        for _ in range(1000):
            if self.frozen():
                return
            time.sleep(0.001)
        _write(self.dir, "cgroup.freeze", "0")
        raise RuntimeFailure(f"cgroup: could not freeze {self.dir}")

    def thaw(self) -> None:
        _write(self.dir, "cgroup.freeze", "0")

    def frozen(self) -> bool:
        try:
            events = _files.read_text(os.path.join(self.dir, "cgroup.events"))
            return "frozen 1" in events.splitlines()
        except OSError:
            return False

    def stats(self) -> dict[str, Any]:
        from hafen.runtime import cgroup_stats

        return cgroup_stats.v2_stats(self.dir)


_V2_THROTTLES = (
    ("throttleReadBpsDevice", "rbps"),
    ("throttleWriteBpsDevice", "wbps"),
    ("throttleReadIOPSDevice", "riops"),
    ("throttleWriteIOPSDevice", "wiops"),
)


def _num(value: int) -> str:
    return "max" if value < 0 else str(value)


def memory_swap_to_v2(swap: int, memory: int) -> str:
    """OCI memory.swap (memory+swap, a v1 notion) -> memory.swap.max ("" = leave alone).

    runc's ConvertMemorySwapToCgroupV2Value, including its refusals.
    """
    if memory == -1 and swap == 0:
        return "max"  # unlimited memory and swap not given: both unlimited
    if swap == -1:
        return "max"
    if swap == 0:
        return ""
    if memory in (0, -1):
        raise InvalidConfig("config.json: unable to set swap limit without memory limit")
    if memory < 0:
        raise InvalidConfig(f"config.json: invalid memory value {memory}")
    if swap < memory:
        raise InvalidConfig("config.json: memory+swap limit should be >= memory limit")
    return str(swap - memory)


def blkio_weight_to_io(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's conversion."""
    if weight <= 0:
        return 100
    return 1 + (weight - 10) * 9999 // 990


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) -> cpu.weight (1..10000), the formula runc and crun use."""
    if shares <= 0:
        return 100
    return 1 + ((shares - 2) * 9999) // 262142


def open_manager(
    cgroups_path: str,
    container_id: str,
    root: str = CGROUP_ROOT,
    unified: bool | None = None,
) -> CgroupManager:
    """The manager for this host's cgroup version (detected unless ``unified`` is given)."""
    path = resolve_path(cgroups_path, container_id)
    if unified is None:
        unified = is_unified(root)
    if unified:
        return CgroupV2(path, root)
    return CgroupV1(path, root)


def manager_from_state(path: str, unified: bool, root: str = CGROUP_ROOT) -> CgroupManager:
    """Re-open a container's cgroups from what state.json recorded."""
    return CgroupV2(path, root) if unified else CgroupV1(path, root)
