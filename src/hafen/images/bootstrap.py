"""Base images made locally: ``hafen image bootstrap busybox`` from Debian's busybox-static.

The image is built the way a registry image would be: one gzip tar layer (the static
binary, its applet links as hard links, a minimal /etc), an image config and a schema 2
manifest, all in the content store. Everything is deterministic — file times are the
binary's mtime, owners root, gzip without a timestamp, ``created`` the binary's mtime —
so the same package always gives the same image ID, and bootstrapping twice is a no-op.
"""

from __future__ import annotations

import gzip
import json
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from hafen.errors import HafenError, NotFound
from hafen.images.reference import Reference, parse_reference
from hafen.images.service import ImageService, LayerBlob, manifest_for
from hafen.store.archive import tar_directory
from hafen.store.content import BlobWriter, sha256_digest

BUSYBOX_PACKAGE = "busybox-static"
BUSYBOX_BINARY = Path("/bin/busybox")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The accounts of the busybox images on Docker Hub, so `-u nobody` and friends resolve.
_PASSWD = """\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
_GROUP = """\
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""
_DIRECTORIES = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "home": 0o755,
    "proc": 0o755,
    "root": 0o700,
    "sys": 0o755,
    "tmp": 0o1777,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/sbin": 0o755,
    "sbin": 0o755,
    "var": 0o755,
    "var/spool": 0o755,
    "var/spool/mail": 0o755,
    "var/www": 0o755,
}


@dataclass(frozen=True)
class BootstrapResult:
    image_id: str
    created: bool  # False when the image was already there under that tag


def bootstrap_busybox(images: ImageService, tag: str = "busybox:latest") -> BootstrapResult:
    """Build (or find) the busybox image and tag it ``tag``."""
    reference = parse_reference(tag)
    binary = _static_busybox()
    version = _package_version()
    with tempfile.TemporaryDirectory(prefix="hafen-bootstrap-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        mtime = int(binary.stat().st_mtime)
        _make_rootfs(binary, rootfs, mtime)
        # the layer blob is written without an fsync: store_image flushes it with the
        # layer it unpacks (one syncfs) before either is renamed into place or recorded
        with images.content.writer() as writer:
            with gzip.GzipFile(fileobj=writer, mode="wb", mtime=0, compresslevel=6) as gz:  # type: ignore[call-overload]
                stats = tar_directory(rootfs, gz, mtime=mtime, owner=(0, 0))
            layer_digest = writer.verify(durable=False)
            layer_size = writer.size
            return _store(images, reference, writer, layer_digest, layer_size, stats.diff_id,
                          mtime, version)  # fmt: skip


def _store(
    images: ImageService,
    reference: Reference,
    writer: BlobWriter,
    layer_digest: str,
    layer_size: int,
    diff_id: str,
    mtime: int,
    version: str,
) -> BootstrapResult:
    created = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": _architecture(),
        "os": "linux",
        "created": created,
        "config": {"Env": [f"PATH={IMAGE_PATH}"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": created,
                "created_by": f"hafen image bootstrap busybox ({BUSYBOX_PACKAGE} {version})",
            },
            {
                "created": created,
                "created_by": '/bin/sh -c #(nop)  CMD ["sh"]',
                "empty_layer": True,
            },
        ],
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    existing = images.find(str(reference))
    image_id = sha256_digest(config_bytes)
    if existing is not None and existing.id == image_id:
        return BootstrapResult(image_id=image_id, created=False)
    manifest = manifest_for(config_bytes, [(layer_digest, layer_size)])
    already_stored = images.exists(image_id)
    image = images.store_image(
        config_bytes,
        [LayerBlob(layer_digest)],
        manifest_bytes=manifest,
        tags=[str(reference)],
        pending=[writer],
    )
    return BootstrapResult(image_id=image.id, created=not already_stored)


def _static_busybox() -> Path:
    """``/bin/busybox`` from busybox-static, installing the package when it is missing."""
    if not _is_static(BUSYBOX_BINARY):
        if shutil.which("apt-get") is None:
            raise NotFound(
                f"{BUSYBOX_BINARY} is missing or not statically linked, and there is no apt-get "
                f"to install {BUSYBOX_PACKAGE}: install a static busybox at {BUSYBOX_BINARY}"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", BUSYBOX_PACKAGE],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 or not _is_static(BUSYBOX_BINARY):
            raise HafenError(
                f"installing {BUSYBOX_PACKAGE} failed (apt-get exit {result.returncode}): "
                f"{result.stderr.strip()[-500:]}"
            )
    return BUSYBOX_BINARY


def _is_static(binary: Path) -> bool:
    """An ELF executable without a PT_INTERP program header needs no dynamic loader."""
    try:
        with open(binary, "rb") as f:
            header = f.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only, as we run on
                return False
            order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
            phoff = int.from_bytes(header[32:40], order)
            phentsize = int.from_bytes(header[54:56], order)
            phnum = int.from_bytes(header[56:58], order)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    pt_interp = 3
    return all(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], order) != pt_interp
        for i in range(phnum)
    )


def _package_version() -> str:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", BUSYBOX_PACKAGE],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown version"


def _applets(binary: Path) -> list[str]:
    result = subprocess.run(
        [str(binary), "--list-full"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 or not result.stdout.strip():
        raise HafenError(f"{binary} --list-full failed: {result.stderr.strip()}")
    return sorted({line.strip().strip("/") for line in result.stdout.splitlines() if line.strip()})


def _make_rootfs(binary: Path, rootfs: Path, mtime: int) -> None:
    rootfs.mkdir()
    for rel, mode in _DIRECTORIES.items():
        path = rootfs / rel
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, mode)
    target = rootfs / "bin" / "busybox"
    shutil.copyfile(binary, target)
    os.chmod(target, 0o755)
    for applet in _applets(binary):
        link = rootfs / applet
        if link == target or os.path.lexists(link):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(target, link)
    (rootfs / "etc" / "passwd").write_text(_PASSWD)
    (rootfs / "etc" / "group").write_text(_GROUP)
    (rootfs / "etc" / "shadow").write_text(
        "".join(f"{line.split(':')[0]}:*:10933:0:99999:7:::\n" for line in _PASSWD.splitlines())
    )
    os.chmod(rootfs / "etc" / "shadow", 0o640)
    for path in (rootfs / "etc" / "passwd", rootfs / "etc" / "group"):
        os.chmod(path, 0o644)


def _architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )
