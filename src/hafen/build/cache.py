"""The build cache: (parent image, instruction, inputs) → the image that step produced.

Every build step commits an image (as Docker's classic builder does), so a cache entry
is just a row pointing at it; the row survives daemon restarts with the metadata
database. A hit is used only while its image still exists. ``--cache-from`` narrows the
hits to the named images and the steps that led to them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from hafen.store.metadata import MetadataStore


def cache_key(parent_id: str | None, *parts: object) -> str:
    """A stable key for one step: its parent image and everything the step depends on."""
    material = json.dumps([parent_id, *parts], sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class PruneResult:
    entries: int  # cache rows dropped
    image_ids: list[str]  # intermediate images deleted
    space_reclaimed: int  # bytes of the layers that went with them


class BuildCache:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def lookup(self, key: str) -> str | None:
        rows = self.metadata.query(
            "SELECT c.image_id FROM build_cache c JOIN images i ON i.id = c.image_id "
            "WHERE c.key = ? ORDER BY c.created DESC LIMIT 1",
            (key,),
        )
        if not rows:
            return None
        with self.metadata.transaction() as db:
            db.execute(
                "UPDATE build_cache SET last_used = ? WHERE key = ? AND image_id = ?",
                (time.time(), key, rows[0]["image_id"]),
            )
        return str(rows[0]["image_id"])

    def record(self, key: str, image_id: str, parent_id: str | None) -> None:
        now = time.time()
        with self.metadata.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO build_cache(key, image_id, parent_id, created, last_used) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, image_id, parent_id, now, now),
            )

    def ancestry(self, image_ids: list[str]) -> set[str]:
        """The images and every image their build steps were made on (for --cache-from)."""
        parents = {
            r["image_id"]: r["parent_id"]
            for r in self.metadata.query("SELECT image_id, parent_id FROM build_cache")
        }
        seen: set[str] = set()
        for image_id in image_ids:
            current: str | None = image_id
            while current and current not in seen:
                seen.add(current)
                current = parents.get(current)
        return seen

    def intermediate_images(self) -> list[str]:
        """Untagged images made by build steps, newest (children) first."""
        rows = self.metadata.query(
            "SELECT DISTINCT image_id, created FROM build_cache WHERE image_id NOT IN "
            "(SELECT image_id FROM tags) ORDER BY created DESC"
        )
        return [str(r["image_id"]) for r in rows]

    def clear(self) -> int:
        with self.metadata.transaction() as db:
            count = db.execute("SELECT COUNT(*) FROM build_cache").fetchone()[0]
            db.execute("DELETE FROM build_cache")
        return int(count)
