"""``save``: images to one tar that is both a docker-archive and an OCI image layout.

The layout is what Docker 25+ writes: ``blobs/sha256/`` holds each image config, an OCI
manifest per image and its layers as plain tars (named by DiffID); ``index.json`` and
``oci-layout`` make it an OCI layout, ``manifest.json`` and ``repositories`` make it a
docker-archive (``docker load``, ``skopeo docker-archive:``). Layers are decompressed
from the content store and checked against their DiffIDs on the way.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from hafen.distribution.manifests import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST
from hafen.errors import DigestMismatch, NotFound
from hafen.images.model import Image
from hafen.images.reference import parse_reference
from hafen.images.service import ImageService
from hafen.store.archive import open_layer_stream

_CHUNK = 1024 * 1024


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def save_images(images: ImageService, names: list[str], out: BinaryIO, spool: Path) -> None:
    """Write the archive of ``names`` (refs or IDs) to ``out`` (blocking)."""
    resolved: list[tuple[Image, list[str]]] = []
    for name in names:
        image = images.resolve(name)
        by_name = images.names_image(name, image)
        tags = [by_name.familiar()] if by_name is not None and by_name.digest is None else []
        existing = next((r for r in resolved if r[0].id == image.id), None)
        if existing:
            existing[1].extend(t for t in tags if t not in existing[1])
        else:
            resolved.append((image, tags))
    written: set[str] = set()
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for image, tags in resolved:
            config = images.content.read_bytes(image.id)
            _add_blob(tar, config, written)
            blobs = images.layer_blobs(image)
            layer_descs = []
            for diff_id, blob in zip(image.diff_ids, blobs, strict=True):
                if blob is None or not images.content.exists(blob):
                    raise NotFound(
                        f"cannot save {image.short_id}: the blob of layer {diff_id} is missing"
                    )
                size = _add_layer(tar, images, blob, diff_id, written, spool)
                layer_descs.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": size})
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": image.id, "size": len(config)},
                "layers": layer_descs,
            }).encode()  # fmt: skip
            manifest_digest = _add_blob(tar, manifest, written)
            refs = tags or []
            index_names: list[str | None] = list(refs) or [None]
            for tag in index_names:
                entry: dict[str, Any] = {
                    "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": len(manifest),
                }  # fmt: skip
                if tag:
                    full = parse_reference(tag)
                    entry["annotations"] = {
                        "io.containerd.image.name": str(full),
                        "org.opencontainers.image.ref.name": full.tag or "latest",
                    }
                index.append(entry)
            manifest_json.append({
                "Config": f"blobs/sha256/{image.id[7:]}",
                "RepoTags": refs,
                "Layers": [f"blobs/sha256/{d[7:]}" for d in image.diff_ids],
            })  # fmt: skip
            for tag in refs:
                ref = parse_reference(tag)
                if image.diff_ids:
                    repositories.setdefault(ref.familiar_name, {})[ref.tag or "latest"] = (
                        image.diff_ids[-1][7:]
                    )
        _add_bytes(tar, "index.json", json.dumps({
            "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index,
        }).encode())  # fmt: skip
        _add_bytes(tar, "manifest.json", json.dumps(manifest_json).encode())
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        if repositories:
            _add_bytes(tar, "repositories", json.dumps(repositories).encode())


def _add_blob(tar: tarfile.TarFile, data: bytes, written: set[str]) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if digest not in written:
        written.add(digest)
        _add_bytes(tar, f"blobs/sha256/{digest[7:]}", data)
    return digest


def _add_layer(
    tar: tarfile.TarFile,
    images: ImageService,
    blob: str,
    diff_id: str,
    written: set[str],
    spool: Path,
) -> int:
    """Decompress a layer blob into a spool file (tar needs the size first), verify its
    DiffID, and add it as ``blobs/sha256/<diffid>``."""
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spool) as tmp:
        digest = hashlib.sha256()
        with images.content.open(blob) as raw:
            stream = open_layer_stream(raw)
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                tmp.write(chunk)
        size = tmp.tell()
        if "sha256:" + digest.hexdigest() != diff_id:
            raise DigestMismatch(f"layer blob {blob} does not unpack to its DiffID {diff_id}")
        if diff_id not in written:
            written.add(diff_id)
            tmp.seek(0)
            info = tarfile.TarInfo(f"blobs/sha256/{diff_id[7:]}")
            info.size = size
            info.mode = 0o644
            tar.addfile(info, tmp)
        return size


def copy_stream(src: BinaryIO, dst: BinaryIO) -> None:
    shutil.copyfileobj(src, dst, _CHUNK)
