"""``images --filter`` logic: dangling, reference globs, label, before/since."""

from __future__ import annotations

import pytest

from hafen.errors import InvalidArgument
from hafen.images.filters import filter_images
from hafen.images.model import Image, ImageConfig


def image(ident: str, created: str, tags: list[str], labels: dict[str, str] | None = None) -> Image:
    config = ImageConfig({"rootfs": {"diff_ids": []}, "config": {"Labels": labels or {}}})
    return Image(id=ident, config=config, repo_tags=tags, created=created,
                 repo_digests=[t.split(":")[0] + "@sha256:" + "a" * 64 for t in tags])  # fmt: skip


IMAGES = [
    image("sha256:1", "2024-01-01T00:00:00Z", ["busybox:latest", "busybox:1.36"]),
    image("sha256:2", "2024-02-01T00:00:00Z", ["localhost:5000/app/web:v1"], {"tier": "web"}),
    image("sha256:3", "2024-03-01T00:00:00Z", [], {"tier": "db"}),
]


def run(filters: dict[str, list[str]]) -> list[Image]:
    by_ref = {"busybox": IMAGES[0], "sha256:3": IMAGES[2]}
    return filter_images(IMAGES, filters, lambda ref: by_ref[ref])


def test_dangling() -> None:
    assert [i.id for i in run({"dangling": ["true"]})] == ["sha256:3"]
    assert [i.id for i in run({"dangling": ["false"]})] == ["sha256:1", "sha256:2"]
    with pytest.raises(InvalidArgument, match="dangling=maybe"):
        run({"dangling": ["maybe"]})


def test_reference_globs_and_kept_tags() -> None:
    [found] = run({"reference": ["busybox:1.*"]})
    assert found.repo_tags == ["busybox:1.36"]
    [found] = run({"reference": ["busybox"]})
    assert found.repo_tags == ["busybox:latest", "busybox:1.36"]
    assert [i.id for i in run({"reference": ["localhost:5000/app/*"]})] == ["sha256:2"]
    assert run({"reference": ["nothing"]}) == []


def test_label_before_since_and_unknown() -> None:
    assert [i.id for i in run({"label": ["tier"]})] == ["sha256:2", "sha256:3"]
    assert [i.id for i in run({"label": ["tier=db"]})] == ["sha256:3"]
    assert [i.id for i in run({"since": ["busybox"]})] == ["sha256:2", "sha256:3"]
    assert [i.id for i in run({"before": ["sha256:3"]})] == ["sha256:1", "sha256:2"]
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        run({"colour": ["red"]})
