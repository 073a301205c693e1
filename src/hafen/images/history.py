"""``history``: an image's build steps from its config, newest first, with layer sizes.

Each config ``history`` entry that made a layer (not ``empty_layer``) is paired with
the next layer in order; Docker shows the image's ID and tags on the newest entry only
and ``<missing>`` elsewhere. A config without history gets one entry per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hafen.images.model import Image
from hafen.images.service import ImageService
from hafen.store.layers import chain_ids


@dataclass(frozen=True)
class HistoryEntry:
    id: str  # the image ID on the newest entry, "<missing>" elsewhere
    created: str
    created_by: str
    size: int
    comment: str = ""
    tags: list[str] = field(default_factory=list)


def image_history(images: ImageService, image: Image) -> list[HistoryEntry]:
    chains = chain_ids(image.diff_ids)
    sizes = []
    for chain in chains:
        rows = images.metadata.query("SELECT size FROM layers WHERE chain_id = ?", (chain,))
        sizes.append(int(rows[0]["size"]) if rows else 0)
    raw = image.config.raw.get("history") or []
    if not isinstance(raw, list) or not raw:
        raw = [{"created": image.created, "created_by": ""} for _ in chains] or [
            {"created": image.created, "created_by": ""}
        ]
    entries: list[HistoryEntry] = []
    layer = 0
    for item in raw:
        if not isinstance(item, dict):
            continue
        size = 0
        if not item.get("empty_layer") and layer < len(sizes):
            size = sizes[layer]
            layer += 1
        entries.append(
            HistoryEntry(
                id="<missing>",
                created=str(item.get("created") or ""),
                created_by=str(item.get("created_by") or ""),
                size=size,
                comment=str(item.get("comment") or ""),
            )
        )
    entries.reverse()
    top = entries[0]
    entries[0] = HistoryEntry(
        image.id, top.created, top.created_by, top.size, top.comment, list(image.repo_tags)
    )
    return entries
