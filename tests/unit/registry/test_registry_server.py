"""hafen-registry's server with hafen's own registry client in one process: chunked and
monolithic uploads, digest checks, ranged reads, manifests that name missing blobs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from hafen.distribution.auth import TokenCache
from hafen.distribution.client import RegistryClient, new_session
from hafen.distribution.credentials import Credentials
from hafen.distribution.hosts import RegistryConfig, RegistryHosts
from hafen.distribution.manifests import Descriptor
from hafen.errors import HafenError
from hafen.registry.server import build_registry_app
from hafen.store.content import FileContentStore


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _session(root: Path, chunk: int, body: object) -> None:
    server = TestServer(build_registry_app(root / "registry"), host="127.0.0.1")
    await server.start_server()
    config = RegistryConfig(chunk_size=chunk)
    try:
        async with new_session() as session:
            client = RegistryClient(
                session, RegistryHosts(config), config, f"127.0.0.1:{server.port}", "unit/repo",
                Credentials(), TokenCache(), push=True,
            )  # fmt: skip
            await client.open()
            await body(client)  # type: ignore[operator]
    finally:
        await server.close()


@pytest.mark.parametrize("chunk", [0, 100_000])
def test_upload_fetch_resume_round_trip(tmp_path: Path, chunk: int) -> None:
    blob = bytes(range(256)) * 1200  # 307200 bytes: 4 PATCH chunks at 100000
    desc = Descriptor("application/octet-stream", _digest(blob), len(blob))
    store = FileContentStore(tmp_path / "client")

    async def body(client: RegistryClient) -> None:
        assert not await client.blob_exists(desc.digest)
        await client.upload_blob(lambda: io.BytesIO(blob), desc)
        assert await client.blob_exists(desc.digest)
        seen: list[int] = []
        await client.fetch_blob(store, desc, seen.append)
        assert store.read_bytes(desc.digest) == blob and seen[-1] == len(blob)
        resp = await client.request("GET", f"/v2/unit/repo/blobs/{desc.digest}",
                                    headers={"Range": "bytes=1000-"})  # fmt: skip
        assert resp.status == 206 and await resp.read() == blob[1000:]
        resp.release()
        config = b'{"rootfs":{"type":"layers","diff_ids":[]}}'
        await client.upload_blob(
            lambda: io.BytesIO(config),
            Descriptor("application/vnd.oci.image.config.v1+json", _digest(config), len(config)),
        )
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(config), "size": len(config)},
            "layers": [],
        }).encode()  # fmt: skip
        digest = await client.put_manifest(
            "v1", manifest, "application/vnd.oci.image.manifest.v1+json"
        )
        fetched = await client.get_manifest("v1")
        assert fetched.digest == digest and fetched.data == manifest
        other = await client.mount_blob(desc.digest, "unit/repo")
        assert other is None  # mounted (same repo is a valid source)

    asyncio.run(_session(tmp_path, chunk, body))


def test_wrong_digest_and_missing_blobs_are_refused(tmp_path: Path) -> None:
    async def body(client: RegistryClient) -> None:
        data = b"some bytes"
        wrong = Descriptor("application/octet-stream", _digest(b"other"), len(data))
        with pytest.raises(HafenError, match="digest_invalid"):
            await client.upload_blob(lambda: io.BytesIO(data), wrong)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(b"absent"), "size": 6},
            "layers": [],
        }).encode()  # fmt: skip
        with pytest.raises(HafenError, match="blob unknown"):
            await client.put_manifest("v1", manifest, "application/vnd.oci.image.manifest.v1+json")
        with pytest.raises(HafenError, match="not found"):
            await client.get_manifest("v1")

    asyncio.run(_session(tmp_path, 0, body))
    assert not list((tmp_path / "registry" / "uploads").iterdir())
