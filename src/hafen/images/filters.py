"""``images --filter``: dangling, reference, label, before, since — as dockerd applies them.

``reference`` patterns match the familiar ``name:tag`` (or the name alone) with
shell-style globs; an image shown through a reference filter lists only its matching
tags and digests, as Docker's does.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import replace

from hafen.errors import InvalidArgument
from hafen.images.model import Image
from hafen.images.reference import parse_reference

KNOWN = frozenset({"dangling", "reference", "label", "before", "since", "until"})


def _ref_matches(pattern: str, ref: str) -> bool:
    try:
        parsed = parse_reference(ref, default_tag=False)
    except InvalidArgument:
        return False
    name = parsed.familiar_name
    return any(
        fnmatch.fnmatchcase(candidate, pattern)
        for candidate in (ref, name, parsed.name, str(parsed))
    )


def filter_images(
    images: list[Image], filters: dict[str, list[str]], resolve: Callable[[str], Image]
) -> list[Image]:
    unknown = sorted(set(filters) - KNOWN)
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    out = []
    dangling = filters.get("dangling")
    if dangling:
        value = dangling[-1].lower()
        if value not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={dangling[-1]}'")
    before = [resolve(ref).created for ref in filters.get("before", [])]
    since = [resolve(ref).created for ref in filters.get("since", [])]
    for image in images:
        if dangling:
            want = dangling[-1].lower() in ("true", "1")
            if want != (not image.repo_tags):
                continue
        if any(image.created >= b for b in before) or any(image.created <= s for s in since):
            continue
        labels = (image.config.runtime.get("Labels") or {}) if image.config else {}
        if not all(_label_matches(labels, want) for want in filters.get("label", [])):
            continue
        patterns = filters.get("reference")
        if patterns:
            tags = [t for t in image.repo_tags if any(_ref_matches(p, t) for p in patterns)]
            digests = [d for d in image.repo_digests if any(_ref_matches(p, d) for p in patterns)]
            if not tags and not digests:
                continue
            image = replace(image, repo_tags=tags, repo_digests=digests)
        out.append(image)
    return out


def _label_matches(labels: dict[str, str], want: str) -> bool:
    key, sep, value = want.partition("=")
    if key not in labels:
        return False
    return not sep or labels[key] == value
