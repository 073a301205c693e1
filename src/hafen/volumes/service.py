"""The volume service: named and anonymous volumes, their metadata and their use.

``VolumeService`` is the one place that creates and removes volumes. Records live in the
``volumes`` table of the metadata database; the data lives wherever the volume's driver
keeps it. A volume referenced by any container (running or not) cannot be removed: the
container service answers that question through ``set_users``.

Every method blocks (SQLite, file systems, mount): callers on the event loop run them in
worker threads.
"""

from __future__ import annotations

import builtins
import json
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hafen.errors import Conflict, InvalidArgument, NotFound
from hafen.store.metadata import MetadataStore
from hafen.volumes.driver import VolumeDriver
from hafen.volumes.local import LocalDriver
from hafen.volumes.model import ANONYMOUS_LABEL, Volume

log = logging.getLogger("hafen.volumes")


class VolumeNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"get {name}: no such volume")


class VolumeService:
    def __init__(
        self, metadata: MetadataStore, root: Path, owner: tuple[int, int] | None = None
    ) -> None:
        """``owner``: (uid, gid) of new volumes' data directories (userns-remap's root)."""
        self.metadata = metadata
        self.drivers: dict[str, VolumeDriver] = {"local": LocalDriver(root, owner)}
        self._users: Callable[[str], list[str]] = lambda name: []
        self._lock = threading.Lock()

    def set_users(self, users: Callable[[str], list[str]]) -> None:
        """``users(name)`` → ids of the containers that reference the volume."""
        self._users = users

    def _driver(self, name: str) -> VolumeDriver:
        driver = self.drivers.get(name or "local")
        if driver is None:
            raise NotFound(f"error looking up volume plugin {name}: plugin {name!r} not found")
        return driver

    # ------------------------------------------------------------------ records

    def get(self, name: str) -> Volume:
        rows = self.metadata.query("SELECT * FROM volumes WHERE name = ?", (name,))
        if not rows:
            raise VolumeNotFound(name)
        return _from_row(rows[0])

    def list(self) -> list[Volume]:
        return [_from_row(r) for r in self.metadata.query("SELECT * FROM volumes ORDER BY name")]

    def users(self, name: str) -> builtins.list[str]:
        return self._users(name)

    # ------------------------------------------------------------------ lifecycle

    def create(
        self,
        name: str | None,
        driver: str = "local",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Volume:
        """A new volume, or the existing one of that name (Docker's idempotent create)."""
        options = dict(options or {})
        labels = dict(labels or {})
        drv = self._driver(driver)
        with self._lock:
            if name:
                try:
                    existing = self.get(name)
                except VolumeNotFound:
                    pass
                else:
                    if existing.driver != drv.name:
                        raise Conflict(
                            f"volume {name!r} already exists with driver {existing.driver!r}"
                        )
                    return existing
            else:
                name = secrets.token_hex(32)
            drv.validate(options)
            mountpoint = drv.create(name, options)
            volume = Volume(
                name=name,
                driver=drv.name,
                mountpoint=mountpoint,
                created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                labels=labels,
                options=options,
            )
            try:
                with self.metadata.transaction() as db:
                    db.execute(
                        "INSERT INTO volumes(name, driver, mountpoint, created_at, labels, options)"
                        " VALUES(?,?,?,?,?,?)",
                        (
                            name,
                            volume.driver,
                            mountpoint,
                            volume.created_at,
                            json.dumps(labels),
                            json.dumps(options),
                        ),
                    )
            except BaseException:
                drv.remove(name, options)
                raise
        return volume

    def create_anonymous(
        self, driver: str = "local", options: dict[str, str] | None = None
    ) -> Volume:
        return self.create(None, driver, options, {ANONYMOUS_LABEL: ""})

    def remove(self, name: str, force: bool = False) -> None:
        """Delete a volume that nothing uses; ``force`` only ignores a missing volume."""
        with self._lock:
            try:
                volume = self.get(name)
            except VolumeNotFound:
                if force:
                    return
                raise
            users = self._users(volume.name)
            if users:
                raise Conflict(f"remove {volume.name}: volume is in use - [{', '.join(users)}]")
            with self.metadata.transaction() as db:
                db.execute("DELETE FROM volumes WHERE name = ?", (volume.name,))
                # the data goes inside the transaction: if that fails the record stays
                self._driver(volume.driver).remove(volume.name, volume.options)

    def prune(
        self, include_named: bool, labels: builtins.list[str]
    ) -> tuple[builtins.list[str], int]:
        """Remove unused volumes (only anonymous ones unless ``include_named``)."""
        deleted: builtins.list[str] = []
        reclaimed = 0
        for volume in self.list():
            if not include_named and not volume.anonymous:
                continue
            if not label_filter_matches(volume.labels, labels):
                continue
            if self._users(volume.name):
                continue
            size = self._driver(volume.driver).size(volume.name)
            try:
                self.remove(volume.name)
            except (Conflict, NotFound) as e:
                log.info("prune skipped %s: %s", volume.name, e)
                continue
            deleted.append(volume.name)
            reclaimed += size
        return deleted, reclaimed

    def mount(self, volume: Volume) -> str:
        return self._driver(volume.driver).mount(volume.name, volume.options)

    def unmount(self, volume: Volume) -> None:
        self._driver(volume.driver).unmount(volume.name, volume.options)


def label_filter_matches(labels: dict[str, str], filters: list[str]) -> bool:
    """Docker's ``label=key`` / ``label=key=value`` (``label!=`` negated) semantics."""
    for spec in filters:
        negate = spec.startswith("!")
        spec = spec.lstrip("!")
        key, sep, value = spec.partition("=")
        hit = key in labels and (not sep or labels[key] == value)
        if hit == negate:
            return False
    return True


def _from_row(row: object) -> Volume:
    r = dict(row)  # type: ignore[call-overload]
    try:
        labels = json.loads(r["labels"] or "{}")
        options = json.loads(r["options"] or "{}")
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"corrupt volume record {r['name']}: {e}")
    return Volume(
        name=r["name"],
        driver=r["driver"],
        mountpoint=r["mountpoint"],
        created_at=r["created_at"],
        labels=labels,
        options=options,
    )
