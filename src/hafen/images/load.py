"""``load``: images from a docker-archive or an OCI image layout tar (gzip, zstd or plain).

The archive is spooled to a file first (the request body streams into it), then read
with random access: ``manifest.json`` (docker-archive, either Docker's legacy
``<id>/layer.tar`` shape or the OCI-shaped one of Docker 25+) or, without it,
``index.json`` (OCI layout; nested indexes resolved to the host platform). Every
layer goes into the content store verified, then ``store_image`` checks the DiffIDs —
so a bad or hostile archive is refused with nothing recorded. Member names are only
looked up, never extracted to the filesystem. The layer blobs are written without an
fsync apiece and handed to ``store_image`` uncommitted: it flushes them with the layers
it unpacks (one ``syncfs``) before anything is renamed into place or recorded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafen.distribution.manifests import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    host_platform,
    parse_index,
    parse_manifest,
    select_platform,
    sniff_media_type,
)
from hafen.errors import InvalidArgument
from hafen.images.reference import parse_reference
from hafen.images.service import ImageService, LayerBlob
from hafen.store.archive import GZIP_MAGIC, ZSTD_MAGIC
from hafen.store.content import BlobWriter

_CHUNK = 1024 * 1024
_MAX_JSON = 16 * 1024 * 1024


@dataclass(frozen=True)
class Loaded:
    image_id: str
    tags: list[str]


def _decompress_in_place(path: Path) -> None:
    """Random access into a compressed stream is slow: make the spool a plain tar."""
    with open(path, "rb") as raw:
        head = raw.read(4)
        if head[:2] != GZIP_MAGIC and head != ZSTD_MAGIC:
            return
        raw.seek(0)
        plain = path.with_suffix(".plain")
        with open(plain, "wb") as dst:
            if head[:2] == GZIP_MAGIC:
                with gzip.GzipFile(fileobj=raw) as src:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
            else:
                import zstandard

                zstandard.ZstdDecompressor().copy_stream(raw, dst)
    plain.replace(path)


class _Archive:
    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.members = {m.name.removeprefix("./"): m for m in tar.getmembers()}

    def member(self, name: str) -> tarfile.TarInfo:
        clean = name.removeprefix("./")
        member = self.members.get(clean)
        seen = 0
        while member is not None and (member.issym() or member.islnk()) and seen < 8:
            target = member.linkname
            if member.issym():
                target = str(Path(clean).parent / target)
            clean = str(Path(target)).removeprefix("./")
            member = self.members.get(clean)
            seen += 1
        if member is None or not member.isreg():
            raise InvalidArgument(f"invalid archive: {name!r} is missing or not a file")
        return member

    def read(self, name: str, limit: int = _MAX_JSON) -> bytes:
        member = self.member(name)
        if member.size > limit:
            raise InvalidArgument(f"invalid archive: {name!r} is too large ({member.size} bytes)")
        f = self.tar.extractfile(member)
        assert f is not None
        return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except ValueError as e:
            raise InvalidArgument(f"invalid archive: {name} is not valid JSON: {e}")

    def blob_to_store(
        self, images: ImageService, blobs: ExitStack, name: str, expected: str | None = None
    ) -> tuple[str, BlobWriter | None]:
        """Write a member to the content store, verified but not committed (``store_image``
        commits it after its flush; ``blobs`` aborts it otherwise). No writer when the
        expected blob is already there."""
        if expected is not None and images.content.exists(expected):
            return expected, None
        member = self.member(name)
        f = self.tar.extractfile(member)
        assert f is not None
        writer = blobs.enter_context(images.content.writer(expected))
        while chunk := f.read(_CHUNK):
            writer.write(chunk)
        return writer.verify(durable=False), writer


def load_archive(images: ImageService, path: Path) -> list[Loaded]:
    """Load every image of the archive at ``path`` (blocking; ``path`` is consumed)."""
    try:
        _decompress_in_place(path)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise InvalidArgument(f"the archive to load is corrupt: {e}")
    with open(path, "rb") as raw:
        try:
            tar = tarfile.open(fileobj=raw, mode="r:")  # noqa: SIM115 (closed below)
        except tarfile.TarError as e:
            raise InvalidArgument(f"the archive to load is not a tar file: {e}")
        with tar:
            archive = _Archive(tar)
            if "manifest.json" in archive.members:
                return _load_docker(images, archive)
            if "index.json" in archive.members:
                return _load_oci(images, archive)
    raise InvalidArgument(
        "the archive has neither manifest.json (docker-archive) nor index.json (OCI layout)"
    )


def _load_docker(images: ImageService, archive: _Archive) -> list[Loaded]:
    entries = archive.json("manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("invalid archive: manifest.json must be a list")
    loaded = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str):
            raise InvalidArgument(f"invalid archive: manifest.json[{i}] has no Config")
        config = archive.read(entry["Config"])
        layers = entry.get("Layers") or []
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise InvalidArgument(f"invalid archive: manifest.json[{i}].Layers must list paths")
        tags = [str(parse_reference(t)) for t in entry.get("RepoTags") or []]
        with ExitStack() as pending:
            written = [archive.blob_to_store(images, pending, name) for name in layers]
            image = images.store_image(
                config,
                [LayerBlob(digest) for digest, _ in written],
                tags=tags,
                pending=[w for _, w in written if w is not None],
            )
        loaded.append(Loaded(image.id, [parse_reference(t).familiar() for t in tags]))
    return loaded


def _load_oci(images: ImageService, archive: _Archive) -> list[Loaded]:
    index_data = archive.read("index.json")
    index = parse_index(index_data, OCI_INDEX)
    loaded = []
    for desc in index.manifests:
        manifest_desc = desc
        data = _blob(archive, desc.digest)
        media_type = sniff_media_type(data, desc.media_type)
        if media_type in INDEX_TYPES:
            manifest_desc = select_platform(parse_index(data, media_type), host_platform())
            data = _blob(archive, manifest_desc.digest)
            media_type = sniff_media_type(data, manifest_desc.media_type)
        if media_type not in MANIFEST_TYPES:
            raise InvalidArgument(f"invalid archive: {desc.digest} is not an image manifest")
        manifest = parse_manifest(data, media_type)
        config = _blob(archive, manifest.config.digest)
        tags = []
        name = desc.annotations.get("io.containerd.image.name") or desc.annotations.get(
            "org.opencontainers.image.ref.name", ""
        )
        if name and ("/" in name or ":" in name):
            tags = [str(parse_reference(name))]
        with ExitStack() as pending:
            written = [
                archive.blob_to_store(images, pending, _blob_path(layer.digest), layer.digest)
                for layer in manifest.layers
            ]
            image = images.store_image(
                config,
                [
                    LayerBlob(digest, layer.media_type)
                    for (digest, _), layer in zip(written, manifest.layers, strict=True)
                ],
                manifest_bytes=data,
                tags=tags,
                pending=[w for _, w in written if w is not None],
            )
        loaded.append(Loaded(image.id, [parse_reference(t).familiar() for t in tags]))
    return loaded


def _blob_path(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _blob(archive: _Archive, digest: str) -> bytes:
    data = archive.read(_blob_path(digest))
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidArgument(f"invalid archive: blob {digest} does not match its digest")
    return data
