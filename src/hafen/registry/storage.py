"""hafen-registry's storage: blobs in a content store, repositories as links to them.

    <root>/content/blobs/sha256/<hex>                 every blob, once (FileContentStore)
    <root>/repositories/<name>/_layers/<hex>          the blob is in this repository
    <root>/repositories/<name>/_manifests/<hex>       a manifest of this repository
                                                      (its media type is the file's text)
    <root>/repositories/<name>/_tags/<tag>            the digest the tag points at
    <root>/uploads/<uuid>                             an upload in progress (its bytes)

Every link is written to a temp file and renamed, so a reader never sees half of one; a
blob becomes visible only after its digest was checked. A repository exists once it
holds a manifest or a blob.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import uuid
from pathlib import Path

from hafen.errors import DigestMismatch, InvalidArgument, NotFound
from hafen.store.content import FileContentStore, check_digest

_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_UPLOAD = re.compile(r"^[0-9a-f]{32}$")


def check_name(name: str) -> str:
    if len(name) > 255 or not _NAME.match(name):
        raise InvalidArgument(f"invalid repository name {name!r}")
    return name


def check_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise InvalidArgument(f"invalid tag {tag!r}")
    return tag


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


class RegistryStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.content = FileContentStore(root / "content")
        self.uploads = root / "uploads"
        self.repos = root / "repositories"
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.repos.mkdir(parents=True, exist_ok=True)

    def _repo(self, name: str) -> Path:
        return self.repos / check_name(name)

    # ------------------------------------------------------------------ blobs

    def has_blob(self, name: str, digest: str) -> bool:
        check_digest(digest)
        return (
            (self._repo(name) / "_layers" / digest[7:]).exists() and self.content.exists(digest)
        ) or (self._repo(name) / "_manifests" / digest[7:]).exists()

    def blob_path(self, name: str, digest: str) -> Path:
        if not self.has_blob(name, digest):
            raise NotFound(f"blob unknown to registry: {digest}")
        return self.content.path(digest)

    def link_blob(self, name: str, digest: str) -> None:
        _write_atomic(self._repo(name) / "_layers" / digest[7:], digest)

    def mount(self, name: str, digest: str, source: str) -> bool:
        """Cross-repository mount: link ``digest`` into ``name`` if ``source`` has it."""
        try:
            check_name(source)
        except InvalidArgument:
            return False
        if (self.repos / source / "_layers" / digest[7:]).exists() and self.content.exists(digest):
            self.link_blob(name, digest)
            return True
        return False

    def delete_blob(self, name: str, digest: str) -> None:
        link = self._repo(name) / "_layers" / check_digest(digest)[7:]
        if not link.exists():
            raise NotFound(f"blob unknown to registry: {digest}")
        link.unlink()

    # ------------------------------------------------------------------ uploads

    def start_upload(self, name: str) -> str:
        check_name(name)
        upload = uuid.uuid4().hex
        (self.uploads / upload).write_bytes(b"")
        return upload

    def upload_path(self, upload: str) -> Path:
        path = self.uploads / upload
        if not _UPLOAD.match(upload) or not path.exists():
            raise NotFound(f"blob upload unknown to registry: {upload}")
        return path

    def upload_size(self, upload: str) -> int:
        return self.upload_path(upload).stat().st_size

    def finish_upload(self, name: str, upload: str, digest: str) -> None:
        """Verify the upload's bytes against ``digest`` and publish them (blocking)."""
        check_digest(digest)
        path = self.upload_path(upload)
        hasher = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                hasher.update(chunk)
            os.fsync(f.fileno())
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            path.unlink(missing_ok=True)
            raise DigestMismatch(f"provided digest did not match uploaded content: {actual}")
        os.replace(path, self.content.path(digest))
        self.link_blob(name, digest)

    def cancel_upload(self, upload: str) -> None:
        self.upload_path(upload).unlink(missing_ok=True)

    # ------------------------------------------------------------------ manifests

    def put_manifest(self, name: str, reference: str, data: bytes, media_type: str) -> str:
        digest = self.content.put_bytes(data)
        repo = self._repo(name)
        _write_atomic(repo / "_manifests" / digest[7:], media_type)
        if not reference.startswith("sha256:"):
            _write_atomic(repo / "_tags" / check_tag(reference), digest)
        elif reference != digest:
            raise DigestMismatch(f"manifest digest {digest} does not match {reference}")
        return digest

    def resolve(self, name: str, reference: str) -> str:
        repo = self._repo(name)
        if reference.startswith("sha256:"):
            check_digest(reference)
            digest = reference
        else:
            tag = repo / "_tags" / check_tag(reference)
            if not tag.exists():
                raise NotFound(f"manifest unknown: {name}:{reference}")
            digest = tag.read_text().strip()
        if not (repo / "_manifests" / digest[7:]).exists():
            raise NotFound(f"manifest unknown: {name}@{digest}")
        return digest

    def get_manifest(self, name: str, reference: str) -> tuple[bytes, str, str]:
        digest = self.resolve(name, reference)
        media_type = (self._repo(name) / "_manifests" / digest[7:]).read_text().strip()
        return self.content.read_bytes(digest), media_type, digest

    def has_manifest(self, name: str, digest: str) -> bool:
        return (self._repo(name) / "_manifests" / digest[7:]).exists()

    def delete_manifest(self, name: str, digest: str) -> None:
        repo = self._repo(name)
        check_digest(digest)
        link = repo / "_manifests" / digest[7:]
        if not link.exists():
            raise NotFound(f"manifest unknown: {name}@{digest}")
        link.unlink()
        tags = repo / "_tags"
        if tags.exists():
            for tag in tags.iterdir():
                if tag.read_text().strip() == digest:
                    tag.unlink()

    # ------------------------------------------------------------------ listings

    def tags(self, name: str) -> list[str]:
        tags = self._repo(name) / "_tags"
        if not self._repo(name).exists():
            raise NotFound(f"repository name not known to registry: {name}")
        return sorted(p.name for p in tags.iterdir()) if tags.exists() else []

    def catalog(self) -> list[str]:
        names = []
        for marker in self.repos.rglob("_manifests"):
            names.append(str(marker.parent.relative_to(self.repos)))
        for marker in self.repos.rglob("_layers"):
            name = str(marker.parent.relative_to(self.repos))
            if name not in names:
                names.append(name)
        return sorted(names)
