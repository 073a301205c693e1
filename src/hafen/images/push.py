"""``push``: a local image to a registry, with Docker's progress and digest line.

The image goes up as it came (its stored manifest, byte for byte, so the digest a
registry reports is the one it was pulled with) when that manifest and its blobs are in
the content store; otherwise a schema 2 (or, for non-gzip layers, OCI) manifest is made
from the recorded layer blobs. Each blob is checked with HEAD first, mounted from
another repository of the same registry known to hold it, else uploaded
(``max_concurrent_uploads`` at a time); the manifest is PUT last, so a registry never
holds a manifest whose blobs are missing.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from hafen.distribution.client import RegistryClient
from hafen.distribution.manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    parse_manifest,
    sniff_media_type,
)
from hafen.errors import HafenError, InvalidArgument, NotFound
from hafen.images.model import Image
from hafen.images.progress import Emit, ProgressEvent, short_digest
from hafen.images.reference import Reference
from hafen.images.service import ImageService
from hafen.store.archive import GZIP_MAGIC, ZSTD_MAGIC

PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class PushSource:
    manifest: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class PushResult:
    digest: str
    size: int


def push_source(images: ImageService, image: Image) -> PushSource:
    """What to upload for ``image`` (blocking: reads the content store)."""
    content = images.content
    if image.manifest_digest and content.exists(image.manifest_digest):
        data = content.read_bytes(image.manifest_digest)
        try:
            media_type = sniff_media_type(data, None)
            manifest = parse_manifest(data, media_type)
        except InvalidArgument:
            manifest = None
        if (
            manifest is not None
            and manifest.config.digest == image.id
            and all(content.exists(d.digest) for d in manifest.layers)
        ):
            return PushSource(data, media_type, manifest.config, manifest.layers)
    layers: list[Descriptor] = []
    for diff_id, blob in zip(image.diff_ids, images.layer_blobs(image), strict=True):
        if not blob or not content.exists(blob):
            raise NotFound(
                f"cannot push {image.short_id}: the blob of layer {diff_id} is not in the content "
                "store"
            )
        with content.open(blob) as f:
            head = f.read(4)
        kind = (
            OCI_LAYER_GZIP if head[:2] == GZIP_MAGIC else OCI_LAYER_ZSTD if head == ZSTD_MAGIC
            else OCI_LAYER
        )  # fmt: skip
        layers.append(Descriptor(kind, blob, content.info(blob)))
    docker = all(d.media_type == OCI_LAYER_GZIP for d in layers)
    config = Descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, image.id, content.info(image.id))
    if docker:
        layers = [Descriptor(DOCKER_LAYER_GZIP, d.digest, d.size) for d in layers]
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    data = json.dumps(doc, indent=3).encode()
    return PushSource(data, media_type, config, tuple(layers))


async def push_image(
    client: RegistryClient,
    images: ImageService,
    reference: Reference,
    emit: Emit,
    *,
    max_uploads: int = 5,
) -> PushResult:
    image = await asyncio.to_thread(images.resolve, str(reference))
    source = await asyncio.to_thread(push_source, images, image)
    emit(ProgressEvent(f"The push refers to repository [{reference.name}]"))
    for desc in reversed(source.layers):
        emit(ProgressEvent("Preparing", id=short_digest(desc.digest)))
    semaphore = asyncio.Semaphore(max(1, max_uploads))
    seen: set[str] = set()

    async def push_blob(desc: Descriptor, show: bool) -> None:
        ident = short_digest(desc.digest)
        if show and semaphore.locked():
            emit(ProgressEvent("Waiting", id=ident))
        async with semaphore:
            if await client.blob_exists(desc.digest):
                if show:
                    emit(ProgressEvent("Layer already exists", id=ident))
                return
            location = None
            sources = await asyncio.to_thread(images.blob_sources, desc.digest, client.domain)
            for other in sources:
                if other == client.repository:
                    continue
                try:
                    location = await client.mount_blob(desc.digest, other)
                except HafenError:
                    continue  # no access to that repository: upload instead
                if location is None:
                    if show:
                        emit(ProgressEvent(f"Mounted from {other}", id=ident))
                    return
                break
            last = 0.0

            def progress(current: int) -> None:
                nonlocal last
                now = time.monotonic()
                if show and (now - last >= PROGRESS_INTERVAL or current >= desc.size):
                    last = now
                    emit(ProgressEvent("Pushing", id=ident, current=current, total=desc.size))

            await client.upload_blob(
                lambda: images.content.open(desc.digest), desc, location, progress
            )
            if show:
                emit(ProgressEvent("Pushed", id=ident))

    tasks = []
    for desc in source.layers:
        if desc.digest not in seen:
            seen.add(desc.digest)
            tasks.append(asyncio.create_task(push_blob(desc, True)))
    tasks.append(asyncio.create_task(push_blob(source.config, False)))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    tag = reference.tag or "latest"
    digest = await client.put_manifest(tag, source.manifest, source.media_type)
    await asyncio.to_thread(
        images.record_blob_sources,
        [d.digest for d in source.layers],
        client.domain,
        client.repository,
    )
    await asyncio.to_thread(
        images.add_references,
        image.id,
        [str(Reference(reference.domain, reference.path, None, digest))],
    )
    size = len(source.manifest)
    emit(ProgressEvent(f"{tag}: digest: {digest} size: {size}"))
    emit(ProgressEvent("", aux={"Tag": tag, "Digest": digest, "Size": size}))
    return PushResult(digest, size)
