"""Manifests and indexes: the media types, parsing with validation, platform selection.

Four shapes arrive from registries: Docker schema 2 manifests and manifest lists, and
OCI image manifests and indexes. ``parse_manifest`` turns the first two kinds into an
``ImageManifest`` and ``parse_index`` the other two into an ``Index``; each refuses a
document whose media type, schema version or descriptors are wrong, naming the field.
``select_platform`` picks the member for a platform the way containerd's default
matcher does (os, architecture, then the closest variant).
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from hafen.errors import InvalidArgument, NotFound
from hafen.store.content import check_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((*MANIFEST_TYPES, *INDEX_TYPES))
LAYER_TYPES = frozenset(
    {
        DOCKER_LAYER_GZIP,
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        DOCKER_FOREIGN_LAYER,
    }
)
CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
"""Larger manifests are refused unread (the OCI distribution spec's recommended limit)."""


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        return out


@dataclass(frozen=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


_ARCH_NAMES = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i686": "386",
}


def host_platform() -> Platform:
    machine = _platform.machine()
    arch = _ARCH_NAMES.get(machine, machine)
    variant = {"arm64": "v8", "armv7l": "v7", "armv6l": "v6"}.get(
        arch if arch == "arm64" else machine
    )
    return Platform("linux", arch, variant)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` as ``--platform`` takes it (``linux/amd64``, ``linux/arm/v7``)."""
    parts = text.strip().lower().split("/")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise InvalidArgument(
            f"invalid platform {text!r}: expected os/architecture[/variant], e.g. linux/amd64"
        )
    arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else None)


def _load(data: bytes, what: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"{what} is {len(data)} bytes, over the {MAX_MANIFEST_SIZE} limit")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid {what}: not JSON ({e})")
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid {what}: expected a JSON object")
    return doc


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"invalid descriptor at {where}: expected an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidArgument(f"invalid descriptor at {where}: mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidArgument(f"invalid descriptor at {where}: digest is missing")
    try:
        check_digest(digest)
    except InvalidArgument:
        raise InvalidArgument(f"invalid descriptor at {where}: unsupported digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"invalid descriptor at {where}: size must be a non-negative integer")
    plat = raw.get("platform")
    parsed_platform = None
    if isinstance(plat, dict):
        parsed_platform = Platform(
            str(plat.get("os", "")), str(plat.get("architecture", "")), plat.get("variant") or None
        )
    urls = raw.get("urls") or ()
    annotations = raw.get("annotations") or {}
    return Descriptor(
        media_type, digest, size, parsed_platform, tuple(str(u) for u in urls), dict(annotations)
    )


def sniff_media_type(data: bytes, header_type: str | None) -> str:
    """The media type of a manifest document: its own ``mediaType``, else the header's,
    else guessed from its shape (OCI allows documents without ``mediaType``)."""
    doc = _load(data, "manifest")
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    if header_type and header_type.split(";")[0].strip() in (*MANIFEST_TYPES, *INDEX_TYPES):
        return header_type.split(";")[0].strip()
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    if doc.get("schemaVersion") == 1:
        raise InvalidArgument(
            "the registry returned a schema 1 manifest, which is deprecated and not supported"
        )
    raise InvalidArgument("unknown manifest format: neither an image manifest nor an index")


def parse_manifest(data: bytes, media_type: str | None = None) -> ImageManifest:
    doc = _load(data, "image manifest")
    media_type = media_type or sniff_media_type(data, None)
    if media_type not in MANIFEST_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(
            f"invalid image manifest: schemaVersion is {doc.get('schemaVersion')!r}, expected 2"
        )
    config = _descriptor(doc.get("config"), "config")
    if config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(
            f"invalid image manifest: config media type {config.media_type!r} is not an image config"
        )
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument("invalid image manifest: layers must be a list")
    layers = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(raw_layers))
    for i, layer in enumerate(layers):
        if layer.media_type not in LAYER_TYPES:
            raise InvalidArgument(
                f"invalid image manifest: layers[{i}] has media type {layer.media_type!r}, "
                "which is not a layer type hafen can unpack"
            )
    return ImageManifest(media_type, config, layers)


def parse_index(data: bytes, media_type: str | None = None) -> Index:
    doc = _load(data, "image index")
    media_type = media_type or sniff_media_type(data, None)
    if media_type not in INDEX_TYPES:
        raise InvalidArgument(f"unsupported index media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(
            f"invalid image index: schemaVersion is {doc.get('schemaVersion')!r}, expected 2"
        )
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise InvalidArgument("invalid image index: manifests must be a list")
    return Index(media_type, tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(raw)))


def select_platform(index: Index, wanted: Platform) -> Descriptor:
    """The index member for ``wanted``: same os and architecture; the exact variant if
    listed, else (for arm) the highest variant not above the wanted one, else any."""
    candidates = [
        m
        for m in index.manifests
        if m.platform is not None
        and m.platform.os == wanted.os
        and m.platform.architecture == wanted.architecture
        and m.media_type in (*MANIFEST_TYPES, *INDEX_TYPES)
    ]
    if wanted.variant:
        exact = [m for m in candidates if m.platform and m.platform.variant == wanted.variant]
        if exact:
            return exact[0]
        lower = sorted(
            (m for m in candidates if m.platform and (m.platform.variant or "") < wanted.variant),
            key=lambda m: m.platform.variant or "" if m.platform else "",
            reverse=True,
        )
        if lower:
            return lower[0]
    elif candidates:
        plain = [m for m in candidates if m.platform and not m.platform.variant]
        return (plain or candidates)[0]
    available = (
        ", ".join(sorted({str(m.platform) for m in index.manifests if m.platform})) or "none"
    )
    raise NotFound(
        f"no matching manifest for {wanted} in the manifest list entries (available: {available})"
    )
