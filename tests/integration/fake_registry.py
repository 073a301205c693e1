"""A misbehaving registry for failure tests: serves one small synthetic image over the
distribution API and can be told to lie (wrong bytes, truncation, 500s, dropped
connections, oversized or malformed manifests, hostile tars). Runs in a thread with its
own event loop on 127.0.0.1 (random port)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_layer(files: dict[str, bytes], *, hostile: str | None = None) -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip) of ``files``; ``hostile`` adds an entry with that name."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        if hostile == "symlink-escape":  # a link out of the root, then a write through it
            link = tarfile.TarInfo("escape")
            link.type = tarfile.SYMTYPE
            link.linkname = "/tmp/hafen-escape-target"
            tar.addfile(link)
            info = tarfile.TarInfo("escape/owned")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"owned"))
        elif hostile == "device":
            dev = tarfile.TarInfo("dev/evil-mem")
            dev.type = tarfile.CHRTYPE
            dev.devmajor, dev.devminor = 1, 1  # /dev/mem
            tar.addfile(dev)
        elif hostile:
            info = tarfile.TarInfo(hostile)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"owned"))
    tar_bytes = raw.getvalue()
    return tar_bytes, gzip.compress(tar_bytes, mtime=0)


@dataclass
class FakeImage:
    layers: list[bytes]  # gzip blobs
    config: bytes
    manifest: bytes

    @classmethod
    def build(cls, sizes: list[int], hostile: str | None = None, seed: str = "") -> FakeImage:
        tars, blobs = [], []
        for i, size in enumerate(sizes):
            payload = hashlib.shake_256(f"{seed}/{i}".encode()).digest(size)  # incompressible
            tar, blob = make_layer({f"file{i}": payload}, hostile=hostile if i == 0 else None)
            tars.append(tar)
            blobs.append(blob)
        config = json.dumps({
            "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/file0"]},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]},
        }).encode()  # fmt: skip
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": digest_of(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(b), "digest": digest_of(b)} for b in blobs],
        }).encode()  # fmt: skip
        return cls(blobs, config, manifest)


@dataclass
class Faults:
    wrong_blob: str | None = None  # serve other bytes for this digest
    drop_after: dict[str, int] = field(default_factory=dict)  # digest -> bytes sent, then cut
    drop_times: int = 1  # how many responses get cut (then serve whole)
    range_support: bool = True
    manifest_status: int | None = None  # answer manifests with this status
    manifest_override: bytes | None = None
    unauthorized: bool = False
    stall_after: dict[str, int] = field(default_factory=dict)  # digest -> bytes, then hang


class FakeRegistry:
    def __init__(self, image: FakeImage) -> None:
        self.image = image
        self.faults = Faults()
        self.requests: list[tuple[str, str, str]] = []  # method, path, Range
        self.blobs = {digest_of(self.image.config): self.image.config}
        self.blobs.update({digest_of(b): b for b in self.image.layers})
        self._cuts: dict[str, int] = {}
        self.stalled = threading.Event()
        self._closing = False
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)
        self.host = f"127.0.0.1:{self.port}"

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/v2/", self._root)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", self._blob)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        started.set()
        self.loop.run_forever()

    def close(self) -> None:
        self._closing = True
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _root(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, ""))
        if self.faults.unauthorized:
            return web.Response(
                status=401,
                text='{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
            )
        return web.json_response({})

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path, ""))
        if self.faults.unauthorized:
            return await self._root(request)
        if self.faults.manifest_status:
            return web.Response(
                status=self.faults.manifest_status,
                text='{"errors":[{"code":"UNKNOWN","message":"the registry is broken"}]}',
            )
        body = self.faults.manifest_override or self.image.manifest
        return web.Response(
            body=body,
            content_type="application/vnd.docker.distribution.manifest.v2+json",
        )

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        digest = request.match_info["digest"]
        rng = request.headers.get("Range", "")
        self.requests.append((request.method, request.path, rng))
        data = self.blobs.get(digest)
        if data is None:
            return web.Response(
                status=404, text='{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}'
            )
        if digest == self.faults.wrong_blob:
            data = bytes(len(data))
        start = 0
        status = 200
        if rng and self.faults.range_support:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            status = 206
        headers: dict[str, Any] = {"Content-Length": str(len(data) - start),
                                   "Docker-Content-Digest": digest}  # fmt: skip
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response = web.StreamResponse(status=status, headers=headers)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        stall = self.faults.stall_after.get(digest)
        if stall is not None:
            await response.write(data[start : start + stall])
            self.stalled.set()
            for _ in range(600):  # hang mid-blob (the test kills the client meanwhile)
                if self._closing:
                    break
                await asyncio.sleep(0.1)
            return response
        cut = self.faults.drop_after.get(digest)
        if cut is not None and self._cuts.get(digest, 0) < self.faults.drop_times:
            self._cuts[digest] = self._cuts.get(digest, 0) + 1
            await response.write(data[start : start + cut])
            assert request.transport is not None
            request.transport.close()  # drop the connection mid-blob
            return response
        await response.write(data[start:])
        await response.write_eof()
        return response
