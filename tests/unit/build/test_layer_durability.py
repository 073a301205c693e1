"""A build step's layer (its blob and its committed snapshot) is flushed by one ``syncfs``
before either is renamed into place, and the image that uses it is recorded only after
the renames are flushed — on real mounts, checked by the durability spy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.build.layers import LayerWriter
from hafen.images.service import ImageService, LayerBlob
from tests.unit.layer_fixtures import image_service
from tests.unit.store.durability_spy import DurabilitySpy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="build steps mount snapshots")


@pytest.fixture(params=["overlay", "vfs"])
def images(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageService]:
    yield from image_service(request.param, tmp_path)


def _config(diff_ids: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def test_build_steps_flush_each_layer_once_and_record_after_the_renames(
    images: ImageService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work").mkdir()
    writer = LayerWriter(images.snapshotter, images.content, images, tmp_path / "work")
    spy = DurabilitySpy(monkeypatch, images.content.root, images.snapshotter.root)
    chain: str | None = None
    layers: list[LayerBlob] = []
    for step in range(3):

        def action(root: Path, step: int = step) -> None:
            (root / f"step{step}").write_bytes(bytes([step]) * 50_000)

        flushes = spy.flushes
        layer = writer.write_step(chain, action)
        assert layer is not None
        assert spy.flushes == flushes + 1  # the step's blob and snapshot: one syncfs
        layers.append(LayerBlob(layer[0]))
        image = images.store_image(_config([b.digest for b in layers]), layers)
        assert image.size >= 50_000 * (step + 1)  # the committed snapshot's size, recorded
        chain = image.chain_id
    spy.assert_rule_held()
    assert spy.flushes == 3 * 3  # per step: the layer, then store_image's data and renames
    # the last image's layers hold every step's file, and nothing is left staged
    top = images.snapshotter.layer_dir(chain or "")
    assert (top / "step2").stat().st_size == 50_000
    assert list(images.snapshotter.root.rglob(".staging-*")) == []
