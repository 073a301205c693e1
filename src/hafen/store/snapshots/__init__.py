"""Snapshotters: overlay (default) and vfs (fallback), behind the ``Snapshotter`` protocol."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from hafen.errors import InvalidConfig
from hafen.store import _mount
from hafen.store.snapshots.overlay import OverlaySnapshotter
from hafen.store.snapshots.protocol import Snapshotter
from hafen.store.snapshots.vfs import VfsSnapshotter

log = logging.getLogger("hafen.store")

__all__ = [
    "OverlaySnapshotter",
    "Snapshotter",
    "VfsSnapshotter",
    "overlay_supported",
    "select_snapshotter",
]


def overlay_supported(root: Path) -> bool:
    """Try one real overlay mount on the filesystem that will hold the layers."""
    probe = root / ".overlay-probe"
    shutil.rmtree(probe, ignore_errors=True)
    dirs = {name: probe / name for name in ("lower", "upper", "work", "merged")}
    for d in dirs.values():
        d.mkdir(parents=True)
    try:
        data = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        _mount.mount("overlay", str(dirs["merged"]), "overlay", 0, data)
        _mount.unmount(str(dirs["merged"]))
        return True
    except OSError as e:
        log.info("overlay is not usable under %s (%s): using vfs", root, e)
        return False
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def select_snapshotter(root: Path, prefer: str = "overlay") -> Snapshotter:
    """``overlay`` when the kernel can mount it under ``root``, else ``vfs``."""
    if prefer in ("overlay", "overlay2"):
        (root / "overlay").mkdir(parents=True, exist_ok=True)
        if overlay_supported(root / "overlay"):
            return OverlaySnapshotter(root / "overlay")
        return VfsSnapshotter(root / "vfs")
    if prefer == "vfs":
        return VfsSnapshotter(root / "vfs")
    raise InvalidConfig(f"unknown storage driver {prefer!r}: expected overlay or vfs")
