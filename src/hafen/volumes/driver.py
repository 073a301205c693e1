"""The ``VolumeDriver`` interface: where a named volume's data lives and how it is mounted.

Lifecycle of one volume, as the volume service drives it:

    create(name, options)   allocate storage; the volume exists but is not mounted
    mount(name)             make the data reachable; returns the host path to bind into
                            a container. Called once per container start; the driver
                            counts mounts so that a shared volume is mounted once.
    unmount(name)           one container stopped using it; the last one unmounts
    remove(name)            release the storage; only called when nothing uses the volume

A driver never tracks which containers use a volume: the service refuses to remove a
volume that a container references. Errors are ``hafen.errors`` exceptions with
messages that name the volume.
"""

from __future__ import annotations

from typing import Protocol


class VolumeDriver(Protocol):
    name: str

    def validate(self, options: dict[str, str]) -> None:
        """Refuse unknown or inconsistent options (``InvalidArgument``) before anything exists."""
        ...

    def create(self, name: str, options: dict[str, str]) -> str:
        """Allocate the volume; returns its mountpoint (the host path shown by inspect)."""
        ...

    def mount(self, name: str, options: dict[str, str]) -> str:
        """Make the volume's data reachable; returns the host path to bind into containers."""
        ...

    def unmount(self, name: str, options: dict[str, str]) -> None: ...

    def remove(self, name: str, options: dict[str, str]) -> None: ...

    def size(self, name: str) -> int:
        """Bytes used (for prune's SpaceReclaimed); 0 when unknown."""
        ...
