"""The image service: images, their tags and their layers, over the stores.

An image is its config blob (the image ID is the config's digest), the manifest it
came with, its tags, and a chain of unpacked layers in the snapshotter. Storing an image
unpacks and verifies every layer first (each layer published atomically by the
snapshotter, shared by every image that has it) and then records the image, its layers
and tags in one metadata transaction, so a crash leaves either no image or a whole one.
Removal follows Docker's ``rmi`` rules (untag vs delete, conflicts with containers)
and garbage-collects the layers and blobs nothing else references.

All methods block (disk, SQLite): the API calls them in worker threads.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from hafen.errors import (
    Conflict,
    DigestMismatch,
    ImageNotFound,
    InvalidArgument,
    InvalidReference,
    NotFound,
)
from hafen.images.model import Image, ImageConfig
from hafen.images.reference import Reference, looks_like_image_id, parse_reference
from hafen.store import durability
from hafen.store.archive import open_layer_stream
from hafen.store.content import BlobWriter, ContentStore, sha256_digest
from hafen.store.layers import chain_ids
from hafen.store.metadata import MetadataStore
from hafen.store.snapshots.protocol import Snapshotter

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_TAR_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


@dataclass(frozen=True)
class ImageUser:
    """A container that uses an image, as ``remove`` needs to know it."""

    container_id: str
    running: bool


@dataclass(frozen=True)
class LayerBlob:
    """A layer to store: the digest of its (possibly compressed) blob in the content store."""

    digest: str
    media_type: str = LAYER_TAR_GZIP


@dataclass(frozen=True)
class StagedLayer:
    """A layer unpacked aside (not yet in the snapshotter's view); ``blob``: its
    verified but not yet committed blob, when it was streamed from a registry."""

    path: Path
    size: int
    blob: BlobWriter | None = None


@dataclass(frozen=True)
class Lease:
    """What one operation holds (ChainIDs and blob digests): see ``acquire_lease``."""

    keys: tuple[str, ...]


ImageUsers = Callable[[str], list[ImageUser]]


class ImageService:
    def __init__(
        self, content: ContentStore, metadata: MetadataStore, snapshotter: Snapshotter
    ) -> None:
        self.content = content
        self.metadata = metadata
        self.snapshotter = snapshotter
        # One lock per ChainID: two pulls of the same layer unpack it once.
        self._layer_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # Sizes of layers unpacked ahead of their image's record (a pull in progress).
        self._unrecorded_sizes: dict[str, int] = {}
        # ChainIDs and blob digests under a lease (count of holders), and the lock that
        # makes taking a lease and collecting garbage exclusive.
        self._leased: dict[str, int] = {}
        self._gc_lock = threading.Lock()
        with self.metadata.transaction() as db:
            # Where each blob is known to live: the source of cross-repository mounts.
            db.execute(
                "CREATE TABLE IF NOT EXISTS blob_sources (digest TEXT NOT NULL, "
                "registry TEXT NOT NULL, repository TEXT NOT NULL, "
                "PRIMARY KEY (digest, registry, repository))"
            )

    # ------------------------------------------------------------------ lookup

    def resolve(self, ref: str) -> Image:
        """An image by name[:tag], name@digest, full ID or unique ID prefix."""
        image = self.find(ref)
        if image is None:
            try:  # Docker names the normalized reference: "No such image: busybox:latest"
                raise ImageNotFound(parse_reference(ref).familiar())
            except InvalidReference:
                raise ImageNotFound(ref) from None
        return image

    def find(self, ref: str) -> Image | None:
        parse_error: InvalidReference | None = None
        try:
            parsed = parse_reference(ref)
        except InvalidReference as e:
            parse_error = e
        else:
            rows = self.metadata.query("SELECT image_id FROM tags WHERE ref = ?", (str(parsed),))
            if rows:
                return self._load(rows[0]["image_id"])
        if looks_like_image_id(ref):
            found = self._find_by_id_prefix(ref)
            if found is not None:
                return found
        if parse_error is not None and not looks_like_image_id(ref):
            raise parse_error
        return None

    def _find_by_id_prefix(self, ref: str) -> Image | None:
        prefix = ref if ref.startswith("sha256:") else "sha256:" + ref
        rows = self.metadata.query(
            "SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
            (prefix, prefix + "g"),
        )
        if len(rows) > 1:
            raise InvalidArgument(f"ambiguous image ID prefix {ref!r}: it matches several images")
        return self._load(rows[0]["id"]) if rows else None

    def exists(self, image_id: str) -> bool:
        return bool(self.metadata.query("SELECT 1 FROM images WHERE id = ?", (image_id,)))

    def list(self, all: bool = False) -> builtins.list[Image]:
        """Every image, newest first (``all`` adds intermediate images once builds make them)."""
        # A build's intermediate images (untagged, with a child step) show only with ``all``,
        # as Docker's do.
        hide = (
            ""
            if all
            else " WHERE id IN (SELECT image_id FROM tags) OR id NOT IN "
            "(SELECT parent_id FROM build_cache WHERE parent_id IS NOT NULL)"
        )
        rows = self.metadata.query(f"SELECT id FROM images{hide} ORDER BY created DESC, added DESC")
        images = [self._load(row["id"]) for row in rows]
        return [i for i in images if i is not None]

    def _load(self, image_id: str) -> Image | None:
        rows = self.metadata.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            return None
        row = rows[0]
        try:
            config = ImageConfig.from_json(self.content.read_bytes(row["config_digest"]))
        except NotFound:
            raise NotFound(
                f"image {image_id} is recorded but its config blob is missing from the content "
                "store; remove it with `hafen rmi -f`"
            )
        tags: builtins.list[str] = []
        digests: builtins.list[str] = []
        for tag_row in self.metadata.query(
            "SELECT ref FROM tags WHERE image_id = ? ORDER BY ref", (image_id,)
        ):
            reference = parse_reference(tag_row["ref"], default_tag=False)
            (digests if reference.digest else tags).append(reference.familiar())
        return Image(
            id=row["id"],
            config=config,
            repo_tags=tags,
            repo_digests=digests,
            created=row["created"],
            size=row["size"],
            chain_id=row["chain_id"],
            manifest_digest=row["manifest_digest"],
        )

    def layer_chain(self, image: Image) -> str | None:
        """The ChainID of the image's top layer: what a container snapshot is prepared on."""
        return image.chain_id

    # ------------------------------------------------------------------ store

    def store_image(
        self,
        config_bytes: bytes,
        layers: builtins.list[LayerBlob],
        *,
        manifest_bytes: bytes | None = None,
        tags: Iterable[str] = (),
        pending: Sequence[BlobWriter] = (),
    ) -> Image:
        """Record an image whose config and layer blobs are in the content store.

        Every layer is unpacked (unless already present) and its DiffID checked against
        the config before anything is recorded. ``pending``: layer blobs the caller wrote
        and verified but did not commit (``verify(durable=False)``: a load, an import, a
        commit); their layers are unpacked from where they were written.

        Durability (``store/durability.py``): the new blobs and unpacked layers are
        flushed at once, then renamed into place, flushed again, and only then recorded —
        two ``syncfs`` per image on overlay (vfs flushes each layer it unpacks too).
        """
        config = ImageConfig.from_json(config_bytes)
        diff_ids = config.diff_ids
        if len(diff_ids) != len(layers):
            raise InvalidArgument(
                f"image config lists {len(diff_ids)} layers but {len(layers)} were given"
            )
        references = [parse_reference(t) for t in tags]
        image_id = sha256_digest(config_bytes)
        manifest_digest = sha256_digest(manifest_bytes) if manifest_bytes else None
        by_digest = {w.verify(durable=False): w for w in pending}
        chains = chain_ids(diff_ids)
        with ExitStack() as own_blobs:
            blobs = list(pending)
            for data in (config_bytes, manifest_bytes):
                if data is None:
                    continue
                digest = sha256_digest(data)
                if digest in by_digest or self.content.exists(digest):
                    continue
                writer = own_blobs.enter_context(self.content.writer(digest))
                writer.write(data)
                writer.verify(durable=False)
                by_digest[digest] = writer
                blobs.append(writer)
            staged: builtins.list[tuple[str, StagedLayer]] = []
            try:
                sizes, unpacked, all_recorded = self._place_layers(
                    layers, chains, diff_ids, by_digest, staged
                )
                if blobs or staged:
                    self.sync()  # the data first ...
                for writer in blobs:
                    writer.commit(durable=False)
                while staged:
                    chain, placed = staged.pop(0)
                    self.publish_layer(chain, placed, flushed=True)
                if blobs or unpacked or not all_recorded:
                    self.sync()  # ... then the renames, before the record points at them
            except BaseException:
                for _, left in staged:
                    self.discard_staged(left)
                raise
        with self.metadata.transaction() as db:
            for index, (layer, chain) in enumerate(zip(layers, chains, strict=True)):
                db.execute(
                    "INSERT OR IGNORE INTO layers(chain_id, diff_id, parent, blob, size) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (chain, diff_ids[index], chains[index - 1] if index else None, layer.digest,
                     sizes[index]),
                )  # fmt: skip
            db.execute(
                "INSERT INTO images(id, config_digest, manifest_digest, chain_id, created, size, "
                "added) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "manifest_digest = COALESCE(excluded.manifest_digest, manifest_digest)",
                (image_id, image_id, manifest_digest, chains[-1] if chains else None,
                 config.created, sum(sizes), time.time()),
            )  # fmt: skip
            for reference in references:
                db.execute(
                    "INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)",
                    (str(reference), image_id),
                )
        for chain in chains:
            self._unrecorded_sizes.pop(chain, None)
        image = self._load(image_id)
        assert image is not None
        return image

    def _place_layers(
        self,
        layers: builtins.list[LayerBlob],
        chains: builtins.list[str],
        diff_ids: builtins.list[str],
        pending: dict[str, BlobWriter],
        staged: builtins.list[tuple[str, StagedLayer]],
    ) -> tuple[builtins.list[int], bool, bool]:
        """Unpack the layers not yet there: staged aside (overlay; appended to
        ``staged`` for the caller to publish after its flush) or applied in order (vfs,
        which flushes each). Returns (sizes, whether any was unpacked, whether every layer
        was already recorded)."""
        sizes: builtins.list[int] = []
        unpacked = False
        all_recorded = True
        staging = self.can_stage_layers()
        for index, (layer, chain) in enumerate(zip(layers, chains, strict=True)):
            parent = chains[index - 1] if index else None
            if self.snapshotter.has_layer(chain):
                rows = self.metadata.query("SELECT size FROM layers WHERE chain_id = ?", (chain,))
                if rows:
                    sizes.append(int(rows[0]["size"]))
                    continue
                all_recorded = False  # published by an operation that has not recorded it
            if staging and not self.snapshotter.has_layer(chain):
                with self._open_blob(layer.digest, pending) as blob:
                    layer_staged = self._stage(diff_ids[index], layer, blob, parent)
                staged.append((chain, layer_staged))
                sizes.append(layer_staged.size)
                continue
            unpacked = unpacked or not self.snapshotter.has_layer(chain)
            sizes.append(self._ensure_layer(chain, parent, diff_ids[index], layer, pending))
        return sizes, unpacked, all_recorded

    def _open_blob(self, digest: str, pending: dict[str, BlobWriter]) -> BinaryIO:
        writer = pending.get(digest)
        return writer.open_verified() if writer is not None else self.content.open(digest)

    def _layer_lock(self, chain_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._layer_locks.setdefault(chain_id, threading.Lock())

    def _ensure_layer(
        self,
        chain: str,
        parent: str | None,
        diff_id: str,
        layer: LayerBlob,
        pending: dict[str, BlobWriter] | None = None,
    ) -> int:
        with self._layer_lock(chain):
            if self.snapshotter.has_layer(chain):
                rows = self.metadata.query("SELECT size FROM layers WHERE chain_id = ?", (chain,))
                if rows:
                    return int(rows[0]["size"])
                if chain in self._unrecorded_sizes:
                    return self._unrecorded_sizes[chain]
                # unpacked by an earlier store that crashed before recording it: reuse
                return 0
            # apply_layer flushes the layer before it becomes visible
            with self._open_blob(layer.digest, pending or {}) as blob:
                stats = self.snapshotter.apply_layer(chain, parent, open_layer_stream(blob))
            if stats.diff_id != diff_id:
                self.snapshotter.remove_layer(chain)
                raise DigestMismatch(
                    f"layer {layer.digest} unpacks to {stats.diff_id}, but the image config "
                    f"says {diff_id}"
                )
            self._unrecorded_sizes[chain] = stats.size
            return stats.size

    def unpack_layer(self, chain: str, parent: str | None, diff_id: str, layer: LayerBlob) -> int:
        """Unpack one layer ahead of ``store_image`` (a pull overlapping download and
        unpack); its parent must be unpacked. Returns the unpacked size."""
        return self._ensure_layer(chain, parent, diff_id, layer)

    def can_stage_layers(self) -> bool:
        """Whether layers can be unpacked before their parents (overlay: each holds
        only its own diff), i.e. in parallel."""
        return hasattr(self.snapshotter, "stage_layer")

    def stage_layer(self, diff_id: str, layer: LayerBlob, parent: str | None) -> StagedLayer:
        """Unpack a layer aside and check its DiffID (blocking; see ``can_stage_layers``);
        ``parent``: the ChainID it will be published on."""
        with self.content.open(layer.digest) as blob:
            return self._stage(diff_id, layer, blob, parent)

    def _stage(
        self, diff_id: str, layer: LayerBlob, blob: BinaryIO, parent: str | None
    ) -> StagedLayer:
        snapshotter: Any = self.snapshotter
        staging, stats = snapshotter.stage_layer(open_layer_stream(blob), parent)
        if stats.diff_id != diff_id:
            snapshotter.discard_staged(staging)
            raise DigestMismatch(
                f"layer {layer.digest} unpacks to {stats.diff_id}, but the image config "
                f"says {diff_id}"
            )
        return StagedLayer(staging, stats.size)

    def stage_layer_stream(
        self, diff_id: str, layer: LayerBlob, source: BinaryIO, parent: str | None
    ) -> StagedLayer:
        """Unpack a layer aside straight from its blob's bytes as they arrive (``source``,
        read once), writing the blob to the content store on the way; both the blob's
        digest and the DiffID are checked. The blob is committed by ``publish_layer``,
        after the caller's ``sync`` (blocking)."""
        snapshotter: Any = self.snapshotter
        writer = self.content.writer(layer.digest)
        try:
            tee = _Tee(source, writer)
            staging, stats = snapshotter.stage_layer(open_layer_stream(cast(BinaryIO, tee)), parent)
            try:
                tee.drain()  # what the decompressor did not need: gzip trailer, padding
                writer.verify(durable=False)
                if stats.diff_id != diff_id:
                    raise DigestMismatch(
                        f"layer {layer.digest} unpacks to {stats.diff_id}, but the image "
                        f"config says {diff_id}"
                    )
            except BaseException:
                snapshotter.discard_staged(staging)
                raise
        except BaseException:
            writer.abort()
            raise
        return StagedLayer(staging, stats.size, writer)

    def sync(self) -> None:
        """Make everything written to the content store and the layers durable (one
        ``syncfs`` per filesystem: the two share one in practice)."""
        durability.flush(self.content.root, self.snapshotter.root)

    def acquire_lease(self, chains: Iterable[str], blobs: Iterable[str]) -> Lease:
        """Protect layers and blobs an operation is about to use or is writing (a pull):
        no image removal or prune deletes them while the lease is held, even if no
        recorded image references them yet (containerd's leases, in memory: a daemon
        restart ends every operation that held one). Blocks while a removal runs."""
        held = Lease((*chains, *(b for b in blobs if b)))
        with self._gc_lock:
            for key in held.keys:
                self._leased[key] = self._leased.get(key, 0) + 1
        return held

    def release_lease(self, lease: Lease) -> None:
        with self._gc_lock:
            for key in lease.keys:
                left = self._leased[key] - 1
                if left:
                    self._leased[key] = left
                else:
                    del self._leased[key]

    @contextmanager
    def lease(self, chains: Iterable[str], blobs: Iterable[str]) -> Iterator[None]:
        """``acquire_lease`` … ``release_lease`` around a block."""
        held = self.acquire_lease(chains, blobs)
        try:
            yield
        finally:
            self.release_lease(held)

    def publish_layer(self, chain: str, staged: StagedLayer, *, flushed: bool) -> int:
        """Put a staged layer in place (its parent must be); returns its size. A streamed
        blob is committed first. ``flushed``: the caller flushed (``sync``) since the
        layer was staged; otherwise it is flushed here."""
        snapshotter: Any = self.snapshotter
        if not flushed:
            self.sync()
        if staged.blob is not None:
            staged.blob.commit(durable=False)
        with self._layer_lock(chain):
            if self.snapshotter.has_layer(chain):
                snapshotter.discard_staged(staged.path)
            else:
                snapshotter.publish_staged(chain, staged.path, flushed=True)
                self._unrecorded_sizes[chain] = staged.size
        return staged.size

    def note_unrecorded_layer(self, chain: str, size: int) -> None:
        """A layer someone else put in place (a build step's committed snapshot), to be
        recorded with its size by the ``store_image`` that uses it."""
        self._unrecorded_sizes[chain] = size

    def discard_staged(self, staged: StagedLayer) -> None:
        snapshotter: Any = self.snapshotter
        snapshotter.discard_staged(staged.path)
        if staged.blob is not None:
            staged.blob.abort()

    def add_references(self, image_id: str, references: Iterable[str]) -> None:
        """Point tags and digest references (``name@sha256:…``) at an existing image."""
        parsed = [parse_reference(r) for r in references]
        with self.metadata.transaction() as db:
            for reference in parsed:
                db.execute(
                    "INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)",
                    (str(reference), image_id),
                )

    def record_blob_sources(self, digests: Iterable[str], registry: str, repository: str) -> None:
        with self.metadata.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO blob_sources(digest, registry, repository) VALUES (?, ?, ?)",
                [(d, registry, repository) for d in digests],
            )

    def blob_sources(self, digest: str, registry: str) -> builtins.list[str]:
        """Repositories of ``registry`` known to hold the blob (mount candidates)."""
        rows = self.metadata.query(
            "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ?",
            (digest, registry),
        )
        return [r["repository"] for r in rows]

    def layer_blobs(self, image: Image) -> builtins.list[str | None]:
        """The blob digest recorded for each layer of the image, bottom first."""
        chains = chain_ids(image.diff_ids)
        out: builtins.list[str | None] = []
        for chain in chains:
            rows = self.metadata.query("SELECT blob FROM layers WHERE chain_id = ?", (chain,))
            out.append(rows[0]["blob"] if rows else None)
        return out

    # ------------------------------------------------------------------ tags

    def tag(self, source: str, target: str) -> Reference:
        image = self.resolve(source)
        reference = parse_reference(target)
        if reference.digest:
            raise InvalidReference(f"refusing to create a tag with a digest reference: {target!r}")
        with self.metadata.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)",
                (str(reference), image.id),
            )
        return reference

    # ------------------------------------------------------------------ remove

    def remove(
        self, ref: str, *, force: bool = False, in_use: ImageUsers | None = None
    ) -> builtins.list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image once nothing names or uses it.

        Returns Docker's response items (``{"Untagged": ...}``, ``{"Deleted": ...}``).
        """
        image = self.resolve(ref)
        users = in_use(image.id) if in_use else []
        by_name = self._names_image(ref, image)
        refs = [
            parse_reference(r["ref"], default_tag=False)
            for r in self.metadata.query("SELECT ref FROM tags WHERE image_id = ?", (image.id,))
        ]
        items: builtins.list[dict[str, str]] = []
        if by_name is not None:
            others = [r for r in refs if r != by_name]
            # As dockerd: the last tag of a repository takes that repository's digest
            # references (name@sha256:…) with it.
            repo_digests = []
            if by_name.digest is None and not any(
                r.digest is None and r.name == by_name.name for r in others
            ):
                repo_digests = [r for r in others if r.digest and r.name == by_name.name]
            if any(r.digest is None for r in others):
                # Other tags still name it: removing one name is all `rmi name` does.
                for reference in (by_name, *repo_digests):
                    self._untag(reference)
                return [{"Untagged": r.familiar()} for r in (by_name, *repo_digests)]
            if users and not force:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{ref}" (must force) - '
                    f"container {users[0].container_id[:12]} is using its referenced image "
                    f"{image.short_id}"
                )
            if users:  # forced: the last name goes, the image stays for its containers
                self._untag(by_name)
                return [{"Untagged": by_name.familiar()}]
        else:
            running = [u for u in users if u.running]
            if running:
                raise Conflict(
                    f"conflict: unable to delete {image.short_id} (cannot be forced) - image is "
                    f"being used by running container {running[0].container_id[:12]}"
                )
            if users and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                    f"being used by stopped container {users[0].container_id[:12]}"
                )
            if sum(r.digest is None for r in refs) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                    "referenced in multiple repositories"
                )
        for reference in refs:
            self._untag(reference)
            items.append({"Untagged": reference.familiar()})
        if users:
            return items  # forced, used by stopped containers: untagged, kept (as Docker)
        items.extend({"Deleted": d} for d in self._delete_image(image))
        return items

    def names_image(self, ref: str, image: Image) -> Reference | None:
        """The tag or digest reference ``ref`` stands for, if it names ``image``."""
        return self._names_image(ref, image)

    def _names_image(self, ref: str, image: Image) -> Reference | None:
        """The tag or digest reference ``ref`` stands for, if it is a name and not an ID."""
        try:
            reference = parse_reference(ref)
        except InvalidReference:
            return None
        rows = self.metadata.query(
            "SELECT 1 FROM tags WHERE ref = ? AND image_id = ?", (str(reference), image.id)
        )
        return reference if rows else None

    def _untag(self, reference: Reference) -> None:
        with self.metadata.transaction() as db:
            db.execute("DELETE FROM tags WHERE ref = ?", (str(reference),))

    def _delete_image(self, image: Image) -> builtins.list[str]:
        """Drop the image record, then the layers and blobs nothing else references
        (nor a lease holds: a pull in progress may be about to record them)."""
        with self._gc_lock:
            return self._delete_image_locked(image)

    def _delete_image_locked(self, image: Image) -> builtins.list[str]:
        with self.metadata.transaction() as db:
            db.execute("DELETE FROM tags WHERE image_id = ?", (image.id,))
            db.execute("DELETE FROM images WHERE id = ?", (image.id,))
            dead = {c: b for c, b in self._unreferenced_layers(db).items() if c not in self._leased}
            for chain in dead:
                db.execute("DELETE FROM layers WHERE chain_id = ?", (chain,))
            live_blobs = (
                {r[0] for r in db.execute("SELECT blob FROM layers WHERE blob IS NOT NULL")}
                | {r[0] for r in db.execute("SELECT config_digest FROM images")}
                | {r[0] for r in db.execute("SELECT manifest_digest FROM images")}
            )
        # The record is gone first: a crash now leaves only unreferenced files behind,
        # never an image whose layers are missing.
        blobs = {image.id, image.manifest_digest} | {b for _, b in dead.items()}
        for digest in blobs:
            if digest and digest not in live_blobs and digest not in self._leased:
                try:
                    self.content.delete(digest)
                except NotFound:
                    pass
        for chain in dead:  # each layer directory stands alone: any order will do
            self.snapshotter.remove_layer(chain)
        return [image.id, *dead]

    def _unreferenced_layers(self, db: sqlite3.Connection) -> dict[str, str | None]:
        """ChainID → blob of each layer no remaining image's chain reaches."""
        parents = {r[0]: r[1] for r in db.execute("SELECT chain_id, parent FROM layers")}
        blobs = {r[0]: r[1] for r in db.execute("SELECT chain_id, blob FROM layers")}
        live: set[str] = set()
        for (top,) in db.execute("SELECT chain_id FROM images WHERE chain_id IS NOT NULL"):
            chain: str | None = top
            while chain is not None and chain not in live:
                live.add(chain)
                chain = parents.get(chain)
        return {c: blobs[c] for c in parents if c not in live}


class _Tee:
    """Reads ``source`` and writes what it read to a blob writer (which hashes it)."""

    def __init__(self, source: BinaryIO, writer: BlobWriter) -> None:
        self._source = source
        self._writer = writer

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(n)
        if data:
            self._writer.write(data)
        return data

    def drain(self) -> None:
        while self.read(1024 * 1024):
            pass


def manifest_for(config_bytes: bytes, layers: list[tuple[str, int]]) -> bytes:
    """A Docker v2 schema 2 manifest for a config and (digest, size) gzip layers."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {
            "mediaType": CONFIG_V1,
            "size": len(config_bytes),
            "digest": sha256_digest(config_bytes),
        },
        "layers": [
            {"mediaType": LAYER_TAR_GZIP, "size": size, "digest": digest} for digest, size in layers
        ],
    }
    return json.dumps(manifest, indent=3).encode()
