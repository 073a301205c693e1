"""A container's mounts: parsing the user's specs and copying image content into volumes.

Owns the mini-languages Docker accepts for mounts — ``Binds`` entries
(``/host:/ctr[:ro]``, ``name:/ctr[:ro,nocopy]``), ``Mounts`` entries (type bind, volume,
tmpfs), ``Tmpfs`` entries — turning each into a ``MountPoint``, and ``merge_mounts``,
which applies Docker's precedence: ``--volumes-from`` first, then binds and mounts
(a destination given twice is an error), then the image's VOLUMEs as anonymous volumes
where nothing else is mounted. Pure functions, apart from ``copy_up``.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
from pathlib import Path
from typing import Any

from hafen.errors import InvalidArgument, RuntimeFailure
from hafen.store.archive import resolve_in_root
from hafen.volumes.model import MountPoint

_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
_BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", "consistent", "cached", "delegated", *_PROPAGATIONS}


def _clean_destination(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(
            f"invalid mount config: mount path must be absolute: {dest!r} (in {spec!r})"
        )
    clean = posixpath.normpath(dest)
    if clean == "/":
        raise InvalidArgument(f"invalid mount config: destination can't be '/' (in {spec!r})")
    return clean


def parse_bind(spec: str) -> MountPoint:
    """One ``HostConfig.Binds`` entry: ``src:dst[:mode]``; an absolute src is a bind."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(
            f"invalid volume specification: {spec!r}: expected source:destination[:mode]"
        )
    source, dest = parts[0], _clean_destination(parts[1], spec)
    mode = parts[2] if len(parts) == 3 else ""
    flags = [m for m in mode.split(",") if m] if mode else []
    for flag in flags:
        if flag not in _BIND_MODES:
            raise InvalidArgument(f"invalid mode: {flag} (in volume specification {spec!r})")
    if "ro" in flags and "rw" in flags:
        raise InvalidArgument(f"invalid mode: {mode} (ro and rw together)")
    rw = "ro" not in flags
    propagation = next((f for f in flags if f in _PROPAGATIONS), "")
    if source.startswith("/"):
        if "nocopy" in flags:
            raise InvalidArgument(f"invalid mode: nocopy applies to volumes only (in {spec!r})")
        return MountPoint(
            type="bind",
            destination=dest,
            source=posixpath.normpath(source),
            rw=rw,
            mode=mode,
            propagation=propagation or "rprivate",
            create_source=True,
        )
    if propagation:
        raise InvalidArgument(f"invalid mode: {propagation} applies to bind mounts only")
    return MountPoint(
        type="volume",
        destination=dest,
        name=source,
        driver="local",
        rw=rw,
        mode=mode,
        copy_up="nocopy" not in flags,
    )


def _opt(body: dict[str, Any], key: str, kind: type, default: Any, where: str) -> Any:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"invalid value for {where}{key}: expected {kind.__name__}")
    return value


def parse_api_mount(body: Any) -> MountPoint:
    """One ``HostConfig.Mounts`` entry (Docker's ``Mount`` object)."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid value for HostConfig.Mounts: expected a list of objects")
    w = "HostConfig.Mounts."
    kind = _opt(body, "Type", str, "", w)
    target = _opt(body, "Target", str, "", w)
    source = _opt(body, "Source", str, "", w)
    read_only = _opt(body, "ReadOnly", bool, False, w)
    if not target:
        raise InvalidArgument(
            f'invalid mount config for type "{kind or "?"}": field Target must not be empty'
        )
    dest = _clean_destination(target, target)
    if kind == "bind":
        if not source:
            raise InvalidArgument(
                'invalid mount config for type "bind": field Source must not be empty'
            )
        if not source.startswith("/"):
            raise InvalidArgument(
                f'invalid mount config for type "bind": invalid mount path: {source!r} mount path must be absolute'
            )
        bind_opts = _opt(body, "BindOptions", dict, {}, w)
        propagation = _opt(bind_opts, "Propagation", str, "", w + "BindOptions.")
        if propagation and propagation not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid propagation mode: {propagation}")
        return MountPoint(
            type="bind",
            destination=dest,
            source=posixpath.normpath(source),
            rw=not read_only,
            propagation=propagation or "rprivate",
            create_source=bool(_opt(bind_opts, "CreateMountpoint", bool, False, w)),
        )
    if kind == "volume":
        vol_opts = _opt(body, "VolumeOptions", dict, {}, w)
        driver_cfg = _opt(vol_opts, "DriverConfig", dict, {}, w + "VolumeOptions.")
        options = _opt(driver_cfg, "Options", dict, {}, w + "VolumeOptions.DriverConfig.")
        labels = _opt(vol_opts, "Labels", dict, {}, w + "VolumeOptions.")
        if source.startswith("/"):
            raise InvalidArgument(
                f'invalid mount config for type "volume": invalid volume name {source!r}: '
                "use type=bind for host paths"
            )
        return MountPoint(
            type="volume",
            destination=dest,
            name=source,
            driver=_opt(driver_cfg, "Name", str, "", w) or "local",
            rw=not read_only,
            copy_up=not _opt(vol_opts, "NoCopy", bool, False, w + "VolumeOptions."),
            volume_options={str(k): str(v) for k, v in options.items()},
            volume_labels={str(k): str(v) for k, v in labels.items()},
            anonymous=not source,
        )
    if kind == "tmpfs":
        if source:
            raise InvalidArgument(
                'invalid mount config for type "tmpfs": field Source must be empty'
            )
        tmpfs = _opt(body, "TmpfsOptions", dict, {}, w)
        options = ["nosuid", "nodev", "noexec"]
        size = _opt(tmpfs, "SizeBytes", int, 0, w + "TmpfsOptions.")
        mode = _opt(tmpfs, "Mode", int, 0, w + "TmpfsOptions.")
        if size:
            options.append(f"size={size}")
        if mode:
            options.append(f"mode={mode:o}")
        if read_only:
            options.append("ro")
        return MountPoint(type="tmpfs", destination=dest, rw=not read_only, tmpfs_options=options)
    raise InvalidArgument(f"mount type unknown: {kind!r} (expected bind, volume or tmpfs)")


def parse_tmpfs(dest: str, options: str) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry: destination → ``"size=64m,mode=1777"``."""
    clean = _clean_destination(dest, dest)
    opts = [o for o in options.split(",") if o] if options else []
    base = ["nosuid", "nodev", "noexec"]
    rw = "ro" not in opts
    return MountPoint(type="tmpfs", destination=clean, rw=rw, tmpfs_options=base + opts)


def merge_mounts(
    inherited: list[MountPoint], user: list[MountPoint], image_volumes: list[str]
) -> list[MountPoint]:
    """Docker's precedence; the result sorted so that a parent is mounted before its child."""
    by_dest: dict[str, MountPoint] = {m.destination: m for m in inherited}
    seen: set[str] = set()
    for m in user:
        if m.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}")
        seen.add(m.destination)
        by_dest[m.destination] = m
    for path in image_volumes:
        dest = _clean_destination(path, path)
        if dest not in by_dest:
            by_dest[dest] = MountPoint(
                type="volume", destination=dest, driver="local", anonymous=True
            )
    return sorted(by_dest.values(), key=lambda m: m.destination.count("/"))


def volumes_from_spec(spec: str) -> tuple[str, str | None]:
    """``container[:ro|rw]`` → (container, mode or None to keep each mount's own)."""
    name, _, mode = spec.partition(":")
    if mode and mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid mode for volumes-from: {mode!r} (expected ro or rw)")
    if not name:
        raise InvalidArgument(f"invalid volumes-from specification: {spec!r}")
    return name, mode or None


def copy_up(rootfs: Path, destination: str, volume_dir: str) -> None:
    """Docker's copy-up: fill an empty volume with the image's files at ``destination``."""
    try:
        if any(os.scandir(volume_dir)):
            return
    except OSError:
        return
    parts = [p for p in destination.split("/") if p]
    source = resolve_in_root(rootfs, parts, follow_last=True)
    if not source.is_dir() or source.is_symlink():
        return
    if not any(source.iterdir()):
        return
    st = source.stat()
    result = subprocess.run(
        ["cp", "-a", "--", f"{source}/.", volume_dir], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeFailure(
            f"copying image content at {destination} into its volume: {result.stderr.strip()}"
        )
    os.chown(volume_dir, st.st_uid, st.st_gid)
    os.chmod(volume_dir, st.st_mode & 0o7777)
