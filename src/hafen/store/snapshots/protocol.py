"""The ``Snapshotter`` interface: committed layers by ChainID, writable snapshots by key.

Lifecycle:

1. ``apply_layer(chain_id, parent, stream)`` unpacks one layer on top of its parent
   chain into a committed, read-only layer. It is unpacked under a temporary name and
   renamed into place, so a crash never leaves a half layer visible; a layer is unpacked
   once per ChainID and shared by every image that has it.
2. ``prepare(key, parent_chain_id)`` makes a writable snapshot (a container's rootfs)
   over a committed chain (``None`` for an empty root).
3. ``mount(key, target)`` / ``unmount(target)`` expose it as a directory tree.
   ``mount(..., volatile=True)`` is for a snapshot whose content is disposable (an
   auto-remove container's): the snapshotter may then skip durability work, such as
   the overlay's sync of the whole upper filesystem at unmount.
4. ``commit(key, chain_id)`` turns an unmounted snapshot into a committed layer (the
   caller exported its changes and knows their DiffID); the snapshot is used up.
5. ``remove(key)`` deletes an unmounted snapshot; ``remove_layer(chain_id)`` a layer
   that no image and no snapshot uses any more (the caller tracks references).

Durability: ``apply_layer`` and ``commit`` flush what they wrote (one ``syncfs`` of
``root``) before the rename, so a committed layer that is visible after a machine crash
is whole; ``sync()`` flushes ``root``, and a caller flushes once more after the renames
before it records anything that points at them (see ``store/durability.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol

from hafen.store.archive import LayerStats


class Snapshotter(Protocol):
    name: str
    root: Path

    def sync(self) -> None: ...

    def has_layer(self, chain_id: str) -> bool: ...

    def apply_layer(self, chain_id: str, parent: str | None, stream: BinaryIO) -> LayerStats: ...

    def commit(self, key: str, chain_id: str) -> None: ...

    def active_keys(self) -> list[str]: ...

    def remove_layer(self, chain_id: str) -> None: ...

    def prepare(self, key: str, parent_chain_id: str | None) -> None: ...

    def mount(self, key: str, target: Path, volatile: bool = False) -> None: ...

    def unmount(self, target: Path) -> None: ...

    def remove(self, key: str) -> None: ...

    def usage(self, key: str) -> int: ...

    def upper_dir(self, key: str) -> Path: ...

    def parent(self, key: str) -> str | None: ...

    def layer_dir(self, chain_id: str) -> Path: ...
