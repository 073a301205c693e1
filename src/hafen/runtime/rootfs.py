"""The container's filesystem view: mounts, /dev, pivot_root, masked and read-only paths.

Owns everything the init does to its (already private) mount namespace, in runc's order:

    prepare_rootfs()   rslave the tree, bind the rootfs onto itself, mount config "mounts"
                       in order, create /dev nodes and links, create cwd, pivot_root
    finalize_rootfs()  (after hostname/console/sysctl) read-only paths, masked paths,
                       root.readonly remount

Mount points are created with ``secure_join`` so that a symlink planted in an image can
never redirect a mount outside the rootfs.
"""

from __future__ import annotations

import _stat as stat
import errno

from hafen.records import record
from hafen.runtime import _files, _sys
from hafen.runtime import _os as os
from hafen.runtime.config import Device, Mount, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# option -> (clear?, flag), as runc parses mount options.
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, 0),
    "async": (True, _sys.MS_SYNCHRONOUS),
    "atime": (True, _sys.MS_NOATIME),
    "bind": (False, _sys.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, _sys.MS_NODEV),
    "diratime": (True, _sys.MS_NODIRATIME),
    "dirsync": (False, _sys.MS_DIRSYNC),
    "exec": (True, _sys.MS_NOEXEC),
    "mand": (False, _sys.MS_MANDLOCK),
    "noatime": (False, _sys.MS_NOATIME),
    "nodev": (False, _sys.MS_NODEV),
    "nodiratime": (False, _sys.MS_NODIRATIME),
    "noexec": (False, _sys.MS_NOEXEC),
    "nomand": (True, _sys.MS_MANDLOCK),
    "norelatime": (True, _sys.MS_RELATIME),
    "nostrictatime": (True, _sys.MS_STRICTATIME),
    "nosuid": (False, _sys.MS_NOSUID),
    "nosymfollow": (False, _sys.MS_NOSYMFOLLOW),
    "rbind": (False, _sys.MS_BIND | _sys.MS_REC),
    "relatime": (False, _sys.MS_RELATIME),
    "remount": (False, _sys.MS_REMOUNT),
    "ro": (False, _sys.MS_RDONLY),
    "rw": (True, _sys.MS_RDONLY),
    "silent": (False, _sys.MS_SILENT),
    "strictatime": (False, _sys.MS_STRICTATIME),
    "suid": (True, _sys.MS_NOSUID),
    "sync": (False, _sys.MS_SYNCHRONOUS),
}
_PROPAGATION = {
    "private": _sys.MS_PRIVATE,
    "rprivate": _sys.MS_PRIVATE | _sys.MS_REC,
    "shared": _sys.MS_SHARED,
    "rshared": _sys.MS_SHARED | _sys.MS_REC,
    "slave": _sys.MS_SLAVE,
    "rslave": _sys.MS_SLAVE | _sys.MS_REC,
    "unbindable": _sys.MS_UNBINDABLE,
    "runbindable": _sys.MS_UNBINDABLE | _sys.MS_REC,
}
# Options that only mean something to other runtimes (crun, runc extensions).
_IGNORED = {"tmpcopyup", "idmap", "ridmap", "copy-symlink", "rro"}

# Per-mount flags that a bind remount must keep (statvfs bit -> mount flag).
_ST_TO_MS = [
    (1, _sys.MS_RDONLY),
    (2, _sys.MS_NOSUID),
    (4, _sys.MS_NODEV),
    (8, _sys.MS_NOEXEC),
    (1024, _sys.MS_NOATIME),
    (2048, _sys.MS_NODIRATIME),
    (4096, _sys.MS_RELATIME),
]

DEFAULT_DEVICES = [
    Device("/dev/null", "c", 1, 3),
    Device("/dev/zero", "c", 1, 5),
    Device("/dev/full", "c", 1, 7),
    Device("/dev/tty", "c", 5, 0),
    Device("/dev/random", "c", 1, 8),
    Device("/dev/urandom", "c", 1, 9),
]


@record
class MountOptions:
    flags: int = 0
    propagation: list[int] | None = None
    data: str = ""


def parse_options(options: list[str]) -> MountOptions:
    """Split OCI mount options into mount(2) flags, propagation changes and fs data."""
    out = MountOptions(propagation=[])
    data: list[str] = []
    for opt in options:
        if opt in _FLAGS:
            clear, flag = _FLAGS[opt]
            if clear:
                out.flags &= ~flag
            else:
                out.flags |= flag
        elif opt in _PROPAGATION:
            assert out.propagation is not None
            out.propagation.append(_PROPAGATION[opt])
        elif opt in _IGNORED:
            continue
        else:
            data.append(opt)
    out.data = ",".join(data)
    return out


def secure_join(root: str, unsafe: str) -> str:
    """``root`` + ``unsafe``, with every symlink resolved as if ``root`` were ``/``.

    The result never leaves ``root``: ``..`` stops at the root and absolute symlinks
    restart from it. Components that do not exist yet are kept as they are.
    """
    root = os.path.normpath(root)
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {unsafe} in {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkdir_all(path: str) -> None:
    os.makedirs(path, mode=0o755, exist_ok=True)


def _create_mountpoint(path: str, is_file: bool) -> None:
    if is_file:
        _mkdir_all(os.path.dirname(path))
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    else:
        _mkdir_all(path)


def _current_flags(path: str) -> int:
    st_flags = os.statvfs(path).f_flag
    flags = 0
    for st_bit, ms_bit in _ST_TO_MS:
        if st_flags & st_bit:
            flags |= ms_bit
    return flags


def _remount_bind(dest: str, flags: int) -> None:
    """Apply per-mount flags to a bind mount, keeping locked flags the kernel demands."""
    keep = _current_flags(dest) & (_sys.MS_NOSUID | _sys.MS_NODEV | _sys.MS_NOEXEC)
    want = flags & ~(_sys.MS_BIND | _sys.MS_REC | _sys.MS_REMOUNT)
    _sys.mount(dest, dest, None, _sys.MS_BIND | _sys.MS_REMOUNT | want | keep, None)


def _is_bind(m: Mount) -> bool:
    return m.type == "bind" or "bind" in m.options or "rbind" in m.options


def _mount_one(spec: Spec, m: Mount, cgroup_paths: dict[str, str], cgroupns: bool) -> None:
    rootfs = spec.rootfs
    opts = parse_options(m.options)
    dest = secure_join(rootfs, m.destination)
    if _is_bind(m):
        source = m.source if m.source.startswith("/") else os.path.join(spec.bundle, m.source)
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind mount source {source} does not exist")
        _create_mountpoint(dest, not os.path.isdir(source))
        _sys.mount(source, dest, None, _sys.MS_BIND | (opts.flags & _sys.MS_REC), None)
        if opts.flags & ~(_sys.MS_BIND | _sys.MS_REC):
            _remount_bind(dest, opts.flags)
    elif m.type == "cgroup" or m.type == "cgroup2":
        _create_mountpoint(dest, False)
        _mount_cgroup(dest, opts, cgroup_paths, cgroupns)
    else:
        _create_mountpoint(dest, False)
        flags = opts.flags
        data = opts.data or None
        try:
            _sys.mount(m.source or m.type, dest, m.type, flags, data)
        except PermissionError:
            if m.type == "sysfs" and spec.has_namespace("user"):
                # A network namespace not owned by the container's user namespace (a
                # joined or daemon-made one) forbids a new sysfs: bind the host's, as runc.
                _sys.mount("/sys", dest, None, _sys.MS_BIND | _sys.MS_REC, None)
                _remount_bind(dest, flags)
                return
            if not flags & _sys.MS_RDONLY:
                raise
            # Some filesystems refuse a fresh read-only mount inside a user namespace;
            # mount rw, then make this mount point (not the superblock) read-only.
            _sys.mount(m.source or m.type, dest, m.type, flags & ~_sys.MS_RDONLY, data)
            _remount_bind(dest, flags)
    for prop in opts.propagation or []:
        _sys.mount(None, dest, None, prop, None)


def _mount_cgroup(dest: str, opts: MountOptions, paths: dict[str, str], cgroupns: bool) -> None:
    flags = opts.flags & ~(_sys.MS_BIND | _sys.MS_REC | _sys.MS_REMOUNT)
    if "" in paths:
        # Unified host: a cgroupns shows the container's own cgroup as the root; without
        # one, bind the container's directory so the host tree stays invisible.
        if cgroupns:
            _sys.mount("cgroup2", dest, "cgroup2", flags, None)
        else:
            _sys.mount(paths[""], dest, None, _sys.MS_BIND, None)
            _remount_bind(dest, flags)
        return
    # v1: a tmpfs holding one directory per hierarchy, each the container's own cgroup.
    _sys.mount("tmpfs", dest, "tmpfs", flags & ~_sys.MS_RDONLY, "mode=755")
    for name, host_dir in paths.items():
        sub = os.path.join(dest, name)
        os.mkdir(sub, 0o755)
        if not os.path.isdir(host_dir):
            continue
        _sys.mount(host_dir, sub, None, _sys.MS_BIND, None)
        _remount_bind(sub, flags)
        for single in name.split(","):
            if single != name and single:
                os.symlink(name, os.path.join(dest, single))
    if flags & _sys.MS_RDONLY:
        _sys.mount(dest, dest, None, _sys.MS_REMOUNT | flags, "mode=755")


def _dev_is_bind(spec: Spec) -> bool:
    return any(m.destination == "/dev" and _is_bind(m) for m in spec.mounts)


def _create_devices(spec: Spec, in_userns: bool) -> None:
    devices: dict[str, Device] = {d.path: d for d in DEFAULT_DEVICES}
    for d in spec.devices:
        devices[d.path] = d
    for d in devices.values():
        dest = secure_join(spec.rootfs, d.path)
        _mkdir_all(os.path.dirname(dest))
        if in_userns:
            # mknod is refused in a user namespace: bind the host's node instead.
            _create_mountpoint(dest, True)
            _sys.mount(d.path, dest, None, _sys.MS_BIND, None)
            continue
        if os.path.lexists(dest):
            os.unlink(dest)
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d.type]
        os.mknod(dest, kind | (d.file_mode & 0o7777), os.makedev(d.major, d.minor))
        os.chown(dest, d.uid, d.gid)


def _create_dev_links(spec: Spec) -> None:
    links = [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, name in links:
        dest = secure_join(spec.rootfs, name)
        if not os.path.lexists(dest):
            os.symlink(target, dest)
    if any(m.destination == "/dev/pts" for m in spec.mounts):
        ptmx = secure_join(spec.rootfs, "/dev/ptmx")
        if os.path.lexists(ptmx):
            os.unlink(ptmx)
        os.symlink("pts/ptmx", ptmx)


def prepare_rootfs(
    spec: Spec,
    cgroup_paths: dict[str, str],
    no_pivot: bool = False,
    in_userns: bool = False,
    before_pivot: Callable[[], None] | None = None,
) -> None:
    """Build the container's mount tree and make its rootfs ``/`` (runs in the init).

    ``before_pivot`` runs once every mount exists, before the root changes (the
    createRuntime and createContainer hooks run there).
    """
    propagation = _PROPAGATION.get(spec.rootfs_propagation, _sys.MS_SLAVE | _sys.MS_REC)
    # Nothing mounted below may propagate back to the host.
    _sys.mount(None, "/", None, propagation, None)
    _sys.mount(spec.rootfs, spec.rootfs, None, _sys.MS_BIND | _sys.MS_REC, None)
    cgroupns = spec.has_namespace("cgroup")
    for m in spec.mounts:
        _mount_one(spec, m, cgroup_paths, cgroupns)
    if not _dev_is_bind(spec):
        _create_devices(spec, in_userns)
        _create_dev_links(spec)
    if spec.process is not None:
        # runc creates a missing cwd; done here so root.readonly cannot get in the way.
        _mkdir_all(secure_join(spec.rootfs, spec.process.cwd))
    if before_pivot is not None:
        before_pivot()
    if no_pivot:
        os.chdir(spec.rootfs)
        _sys.mount(spec.rootfs, "/", None, _sys.MS_MOVE, None)
        os.chroot(".")
        os.chdir("/")
        return
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new_root = os.open(spec.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        # pivot_root(".", ".") stacks the old root on top of the new one; detach it.
        os.fchdir(new_root)
        _sys.pivot_root(".", ".")
        os.fchdir(old_root)
        _sys.mount(None, ".", None, _sys.MS_SLAVE | _sys.MS_REC, None)
        _sys.umount2(".", _sys.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def write_sysctls(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            _files.write_text(path, value)
        except OSError as e:
            raise OSError(e.errno, f"write sysctl {key}={value}: {e.strerror}")


def _readonly_path(path: str) -> None:
    try:
        _sys.mount(path, path, None, _sys.MS_BIND | _sys.MS_REC, None)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.ENOENT:
            return
        raise
    flags = _current_flags(path)
    _sys.mount(path, path, None, _sys.MS_BIND | _sys.MS_REMOUNT | _sys.MS_RDONLY | flags, None)


def _mask_path(path: str) -> None:
    if not os.path.lexists(path):
        return
    if os.path.isdir(path):
        _sys.mount("tmpfs", path, "tmpfs", _sys.MS_RDONLY, None)
    else:
        _sys.mount("/dev/null", path, None, _sys.MS_BIND, None)


def finalize_rootfs(spec: Spec) -> None:
    """Read-only and masked paths, then a read-only root (runs in the init, after pivot)."""
    for path in spec.readonly_paths:
        _readonly_path(path)
    for path in spec.masked_paths:
        _mask_path(path)
    if spec.root_readonly:
        flags = _current_flags("/")
        _sys.mount(None, "/", None, _sys.MS_BIND | _sys.MS_REMOUNT | _sys.MS_RDONLY | flags, None)
