"""``image prune``: remove dangling images (or, with ``all``, every image no container
uses), honouring ``until`` and ``label`` filters; report what went and the space freed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hafen.errors import Conflict, InvalidArgument, NotFound
from hafen.images.model import Image
from hafen.images.service import ImageService, ImageUsers

_KNOWN = frozenset({"until", "label", "label!", "dangling"})


@dataclass
class PruneReport:
    deleted: list[dict[str, str]] = field(default_factory=list)
    reclaimed: int = 0


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={text}': expected a timestamp")


def _created(image: Image) -> float:
    try:
        return datetime.fromisoformat(image.created.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _labels_match(image: Image, wanted: list[str], negate: bool) -> bool:
    labels = image.config.runtime.get("Labels") or {}
    for want in wanted:
        key, sep, value = want.partition("=")
        has = key in labels and (not sep or labels[key] == value)
        if has == negate:
            return False
    return True


def prune_images(
    images: ImageService,
    *,
    all_images: bool,
    filters: dict[str, list[str]],
    in_use: ImageUsers,
) -> PruneReport:
    unknown = sorted(set(filters) - _KNOWN)
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    if filters.get("dangling"):
        all_images = filters["dangling"][-1].lower() in ("false", "0")
    until = [_timestamp(t) for t in filters.get("until", [])]
    report = PruneReport()
    for image in images.list():
        if not all_images and image.repo_tags:
            continue
        if in_use(image.id):
            continue
        if until and not all(_created(image) < u for u in until):
            continue
        if not _labels_match(image, filters.get("label", []), False):
            continue
        if not _labels_match(image, filters.get("label!", []), True):
            continue
        size = image.size
        try:
            items = images.remove(image.id, force=True, in_use=in_use)
        except (Conflict, NotFound):
            continue  # taken into use or removed meanwhile
        report.deleted.extend(items)
        if any("Deleted" in item for item in items):
            report.reclaimed += size
    return report
