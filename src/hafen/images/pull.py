"""``pull``: an image from a registry into the stores, with Docker's progress.

The manifest (or index → the member for the wanted platform) is fetched and verified;
the config blob first; then the layers, ``max_concurrent_downloads`` at a time. On
overlay each layer's bytes are read off the network once and, as they arrive, hashed,
written to the content store and unpacked aside by a worker thread (a ``BlobPipe``
between the download and the thread); every layer at once, since an overlay layer
needs only its own diff. One ``syncfs`` then makes it all durable, blobs and layers
are put in place in chain order, and the image with its tag and repo digest is
recorded in one transaction at the end — so an interrupted pull (or a machine crash)
leaves no image and no partial blob or layer, only complete ones the next pull reuses.
On vfs a layer's tree starts as its parent's, so blobs are downloaded first and layers
unpacked in order. Layers already unpacked (same ChainID) are not downloaded at all,
and the whole pull holds a lease on its layers and blobs so that a concurrent ``rmi``
or prune cannot collect them before the image is recorded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, cast

from hafen.distribution.client import RegistryClient
from hafen.distribution.manifests import (
    INDEX_TYPES,
    Descriptor,
    ImageManifest,
    Platform,
    parse_index,
    parse_manifest,
    select_platform,
    sniff_media_type,
)
from hafen.distribution.pipe import BlobPipe, ReaderGone
from hafen.errors import InvalidArgument
from hafen.images.model import ImageConfig
from hafen.images.progress import Emit, ProgressEvent, short_digest
from hafen.images.reference import Reference
from hafen.images.service import ImageService, LayerBlob, StagedLayer
from hafen.store.layers import chain_ids

PROGRESS_INTERVAL = 0.1  # seconds between two "Downloading" events of one layer


@dataclass(frozen=True)
class PullResult:
    image_id: str
    digest: str  # of the manifest or index the reference named
    updated: bool  # False: the image was already there under this name


async def pull_image(
    client: RegistryClient,
    images: ImageService,
    reference: Reference,
    platform: Platform,
    emit: Emit,
    *,
    max_downloads: int = 3,
) -> PullResult:
    ref_text = reference.digest or reference.tag or "latest"
    top = await client.get_manifest(ref_text)
    emit(ProgressEvent(f"Pulling from {reference.path}", id=ref_text))
    media_type = sniff_media_type(top.data, top.media_type)
    manifest_data, manifest_type = top.data, media_type
    if media_type in INDEX_TYPES:
        member = select_platform(parse_index(top.data, media_type), platform)
        child = await client.get_manifest(member.digest, expected_digest=member.digest)
        manifest_data = child.data
        manifest_type = sniff_media_type(child.data, child.media_type)
        if manifest_type in INDEX_TYPES:
            raise InvalidArgument(f"index {member.digest} names another index: not supported")
    manifest = parse_manifest(manifest_data, manifest_type)

    # in memory: store_image writes it (durably) with the image record
    config_bytes = await client.read_blob(manifest.config)
    config = ImageConfig.from_json(config_bytes)
    diff_ids = config.diff_ids
    if len(diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image config lists {len(diff_ids)} layers but the manifest has {len(manifest.layers)}"
        )
    _check_platform(config, platform, media_type in INDEX_TYPES)

    by_digest = str(Reference(reference.domain, reference.path, None, top.digest))
    tags = [str(reference), by_digest] if reference.digest is None else [by_digest]
    image_id = manifest.config.digest
    existing = await asyncio.to_thread(images.find, str(reference))
    if existing is not None and existing.id == image_id:
        await asyncio.to_thread(images.add_references, image_id, tags)
        emit(ProgressEvent(f"Digest: {top.digest}"))
        emit(ProgressEvent(f"Status: Image is up to date for {reference.familiar()}"))
        return PullResult(image_id, top.digest, updated=False)

    # Leased until the image is recorded: a concurrent rmi or prune must not collect
    # the layers this pull found present, nor the ones it is writing.
    blobs = [manifest.config.digest, *(d.digest for d in manifest.layers)]
    lease = await asyncio.to_thread(images.acquire_lease, chain_ids(diff_ids), blobs)
    try:
        await _fetch_and_unpack(client, images, manifest, diff_ids, emit, max_downloads)
        layers = [LayerBlob(d.digest, d.media_type) for d in manifest.layers]
        await asyncio.to_thread(
            images.store_image, config_bytes, layers, manifest_bytes=manifest_data, tags=tags
        )
    finally:
        await asyncio.shield(asyncio.to_thread(images.release_lease, lease))
    await asyncio.to_thread(
        images.record_blob_sources,
        [d.digest for d in manifest.layers],
        client.domain,
        client.repository,
    )
    emit(ProgressEvent(f"Digest: {top.digest}"))
    emit(ProgressEvent(f"Status: Downloaded newer image for {reference.familiar()}"))
    return PullResult(image_id, top.digest, updated=True)


def _check_platform(config: ImageConfig, wanted: Platform, from_index: bool) -> None:
    arch = config.raw.get("architecture")
    os_name = config.raw.get("os")
    if from_index or not arch:
        return
    if (os_name or "linux") != wanted.os or arch != wanted.architecture:
        raise InvalidArgument(
            f"image is for {os_name}/{arch}, not the requested platform {wanted} "
            "(pull it with --platform to accept that)"
        )


async def _fetch_and_unpack(
    client: RegistryClient,
    images: ImageService,
    manifest: ImageManifest,
    diff_ids: list[str],
    emit: Emit,
    max_downloads: int,
) -> None:
    chains = chain_ids(diff_ids)
    present = await asyncio.to_thread(lambda: [images.snapshotter.has_layer(c) for c in chains])
    # A layer whose ChainID is unpacked needs nothing; neither do the ones below it.
    todo = [i for i, have in enumerate(present) if not have]
    for i, desc in enumerate(manifest.layers):
        if present[i]:
            emit(ProgressEvent("Already exists", id=short_digest(desc.digest)))
        else:
            emit(ProgressEvent("Pulling fs layer", id=short_digest(desc.digest)))
    if not todo:
        return
    if images.can_stage_layers():
        await _stream_layers(client, images, manifest, diff_ids, todo, emit, max_downloads)
    else:
        await _fetch_then_unpack(client, images, manifest, diff_ids, todo, emit, max_downloads)


def _progress(emit: Emit, ident: str, total: int) -> Callable[[int], None]:
    last = 0.0

    def progress(current: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_INTERVAL or current >= total:
            last = now
            emit(ProgressEvent("Downloading", id=ident, current=current, total=total))

    return progress


async def _stream_layers(
    client: RegistryClient,
    images: ImageService,
    manifest: ImageManifest,
    diff_ids: list[str],
    todo: list[int],
    emit: Emit,
    max_downloads: int,
) -> None:
    """Overlay: each layer is read off the network once — hashed, written to the content
    store and unpacked aside by a worker thread as its bytes arrive — all of them at
    once (up to ``max_downloads``), since an overlay layer holds only its own diff.
    Then one ``syncfs`` makes blobs and files durable, and the blobs and layers are put
    in place in chain order (and synced again) before the image is recorded."""
    chains = chain_ids(diff_ids)
    loop = asyncio.get_running_loop()
    semaphore = asyncio.Semaphore(max(1, max_downloads))
    # The threads run on if a task is cancelled: keep their futures so that a failed
    # pull can wait for them and discard what they unpacked.
    stage_work: list[asyncio.Future[StagedLayer]] = []

    async def fetch(i: int) -> StagedLayer:
        desc = manifest.layers[i]
        ident = short_digest(desc.digest)
        layer = LayerBlob(desc.digest, desc.media_type)
        parent = chains[i - 1] if i else None
        if semaphore.locked():
            emit(ProgressEvent("Waiting", id=ident))
        async with semaphore:
            if images.content.exists(desc.digest):  # the blob is here, its layer is not
                emit(ProgressEvent("Download complete", id=ident))
                emit(ProgressEvent("Extracting", id=ident, current=desc.size, total=desc.size))
                work = asyncio.ensure_future(
                    asyncio.to_thread(images.stage_layer, diff_ids[i], layer, parent)
                )
                stage_work.append(work)
                return await asyncio.shield(work)
            pipe = BlobPipe(loop)

            def consume() -> StagedLayer:
                try:
                    return images.stage_layer_stream(
                        diff_ids[i], layer, cast(BinaryIO, pipe), parent
                    )
                finally:
                    pipe.abandon()  # a download still running stops at its next chunk

            work = asyncio.ensure_future(asyncio.to_thread(consume))
            stage_work.append(work)
            try:
                await client.stream_blob(desc, pipe.put, _progress(emit, ident, desc.size))
            except ReaderGone:
                pass  # the unpacking failed: its error is raised below
            except BaseException as e:
                pipe.fail(e)
                raise
            pipe.close()
            emit(ProgressEvent("Verifying Checksum", id=ident))
            emit(ProgressEvent("Download complete", id=ident))
            emit(ProgressEvent("Extracting", id=ident, current=desc.size, total=desc.size))
            return await asyncio.shield(work)

    tasks = [asyncio.create_task(fetch(i)) for i in todo]
    try:
        staged = await asyncio.gather(*tasks)
        await asyncio.to_thread(images.sync)  # data first ...
        for i, layer in zip(todo, staged, strict=True):
            await asyncio.to_thread(images.publish_layer, chains[i], layer, flushed=True)
            emit(ProgressEvent("Pull complete", id=short_digest(manifest.layers[i].digest)))
        await asyncio.to_thread(images.sync)  # ... then the renames, before the record
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*stage_work, return_exceptions=True)
        for work in stage_work:  # unpacked aside but never published (a no-op if it was)
            if not work.cancelled() and work.exception() is None:
                await asyncio.to_thread(images.discard_staged, work.result())
        raise


async def _fetch_then_unpack(
    client: RegistryClient,
    images: ImageService,
    manifest: ImageManifest,
    diff_ids: list[str],
    todo: list[int],
    emit: Emit,
    max_downloads: int,
) -> None:
    """vfs: a layer's tree starts as a copy of its parent's, so layers are unpacked in
    order, each from its downloaded blob, as soon as it and its parent are there."""
    chains = chain_ids(diff_ids)
    semaphore = asyncio.Semaphore(max(1, max_downloads))
    loop = asyncio.get_running_loop()
    done: dict[int, asyncio.Future[None]] = {i: loop.create_future() for i in todo}

    async def download(i: int, desc: Descriptor) -> None:
        ident = short_digest(desc.digest)
        if semaphore.locked():
            emit(ProgressEvent("Waiting", id=ident))
        async with semaphore:
            already = images.content.exists(desc.digest)
            await client.fetch_blob(images.content, desc, _progress(emit, ident, desc.size))
            if not already:
                emit(ProgressEvent("Verifying Checksum", id=ident))
            emit(ProgressEvent("Download complete", id=ident))
        done[i].set_result(None)

    async def unpack() -> None:
        for i in todo:
            desc = manifest.layers[i]
            ident = short_digest(desc.digest)
            parent = chains[i - 1] if i else None
            await done[i]
            emit(ProgressEvent("Extracting", id=ident, current=desc.size, total=desc.size))
            await asyncio.to_thread(
                images.unpack_layer, chains[i], parent, diff_ids[i],
                LayerBlob(desc.digest, desc.media_type),
            )  # fmt: skip
            emit(ProgressEvent("Pull complete", id=ident))

    tasks = [asyncio.create_task(download(i, manifest.layers[i])) for i in todo]
    unpacker = asyncio.create_task(unpack())
    try:
        await asyncio.gather(*tasks, unpacker)
    except BaseException:
        for task in (*tasks, unpacker):
            task.cancel()
        await asyncio.gather(*tasks, unpacker, return_exceptions=True)
        raise
