"""hafen-registry's HTTP API: the OCI distribution spec (pull, push, mount, tags list,
catalog, deletes), errors in its ``{"errors": [{"code","message","detail"}]}`` shape.

Uploads stream to disk as they arrive (PATCH chunks with ``Content-Range`` checks,
or one PUT); a blob is published only after its digest is verified. Blobs are served
with ``Range`` support, so clients can resume. Blocking file work runs in threads.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from hafen.distribution.manifests import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_MANIFEST_SIZE,
    parse_index,
    parse_manifest,
)
from hafen.errors import DigestMismatch, HafenError, InvalidArgument, NotFound
from hafen.registry.storage import RegistryStorage
from hafen.store.content import check_digest

log = logging.getLogger("hafen.registry")
STORAGE = web.AppKey("storage", RegistryStorage)
_API_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
_CHUNK = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, code: str, message: str, detail: Any = None) -> web.Response:
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    return web.json_response(body, status=status, headers=_API_HEADER)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DigestMismatch as e:
        return _error(400, "DIGEST_INVALID", e.message)
    except NotFound as e:
        code = (
            "MANIFEST_UNKNOWN" if "manifest" in e.message
            else "BLOB_UPLOAD_UNKNOWN" if "upload" in e.message
            else "NAME_UNKNOWN" if "repository" in e.message
            else "BLOB_UNKNOWN"
        )  # fmt: skip
        return _error(404, code, e.message)
    except InvalidArgument as e:
        code = "NAME_INVALID" if "repository name" in e.message else (
            "TAG_INVALID" if "tag" in e.message else "MANIFEST_INVALID"
            if "manifest" in e.message or "index" in e.message else "DIGEST_INVALID"
        )  # fmt: skip
        return _error(400, code, e.message)
    except HafenError as e:
        log.error("%s %s: %s", request.method, request.path, e.message)
        return _error(500, "UNKNOWN", e.message)


def _storage(request: web.Request) -> RegistryStorage:
    return request.app[STORAGE]


async def api_root(request: web.Request) -> web.Response:
    return web.json_response({}, headers=_API_HEADER)


# ---------------------------------------------------------------------- blobs


async def get_blob(request: web.Request) -> web.StreamResponse:
    s = _storage(request)
    name, digest = request.match_info["name"], request.match_info["digest"]
    path = await asyncio.to_thread(s.blob_path, name, digest)
    size = path.stat().st_size
    headers = {**_API_HEADER, "Docker-Content-Digest": digest, "Accept-Ranges": "bytes",
               "Content-Type": "application/octet-stream", "ETag": f'"{digest}"'}  # fmt: skip
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(size)})
    start, end = 0, size - 1
    status = 200
    ranges = request.headers.get("Range", "")
    if ranges.startswith("bytes="):
        first, _, last = ranges[6:].partition("-")
        try:
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return _error(416, "BLOB_UNKNOWN", f"invalid range {ranges!r}")
        if start >= size or end < start:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        end = min(end, size - 1)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    response = web.StreamResponse(status=status, headers=headers)
    await response.prepare(request)
    with open(path, "rb") as f:
        await asyncio.to_thread(f.seek, start)
        left = end - start + 1
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            await response.write(chunk)
    await response.write_eof()
    return response


async def delete_blob(request: web.Request) -> web.Response:
    s = _storage(request)
    await asyncio.to_thread(s.delete_blob, request.match_info["name"], request.match_info["digest"])
    return web.Response(status=202, headers=_API_HEADER)


def _upload_headers(name: str, upload: str, size: int) -> dict[str, str]:
    return {
        **_API_HEADER,
        "Location": f"/v2/{name}/blobs/uploads/{upload}",
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": upload,
        "Content-Length": "0",
    }


async def _append(request: web.Request, path: Path) -> int:
    with open(path, "ab") as f:
        async for chunk in request.content.iter_chunked(_CHUNK):
            await asyncio.to_thread(f.write, chunk)
        return f.tell()


async def start_upload(request: web.Request) -> web.Response:
    s = _storage(request)
    name = request.match_info["name"]
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount and source:
        check_digest(mount)
        if await asyncio.to_thread(s.mount, name, mount, source):
            return web.Response(status=201, headers={
                **_API_HEADER, "Location": f"/v2/{name}/blobs/{mount}",
                "Docker-Content-Digest": mount, "Content-Length": "0",
            })  # fmt: skip
    upload = await asyncio.to_thread(s.start_upload, name)
    digest = request.query.get("digest")
    if digest:  # monolithic: POST with the whole blob
        await _append(request, s.upload_path(upload))
        await asyncio.to_thread(s.finish_upload, name, upload, digest)
        return web.Response(status=201, headers={
            **_API_HEADER, "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest, "Content-Length": "0",
        })  # fmt: skip
    return web.Response(status=202, headers=_upload_headers(name, upload, 0))


async def upload_status(request: web.Request) -> web.Response:
    s = _storage(request)
    name, upload = request.match_info["name"], request.match_info["upload"]
    size = await asyncio.to_thread(s.upload_size, upload)
    return web.Response(status=204, headers=_upload_headers(name, upload, size))


async def patch_upload(request: web.Request) -> web.Response:
    s = _storage(request)
    name, upload = request.match_info["name"], request.match_info["upload"]
    path = s.upload_path(upload)
    size = path.stat().st_size
    content_range = request.headers.get("Content-Range")
    if content_range:
        first, _, _ = content_range.removeprefix("bytes ").partition("-")
        if not first.isdigit() or int(first) != size:
            return web.Response(status=416, headers=_upload_headers(name, upload, size))
    size = await _append(request, path)
    return web.Response(status=202, headers=_upload_headers(name, upload, size))


async def finish_upload(request: web.Request) -> web.Response:
    s = _storage(request)
    name, upload = request.match_info["name"], request.match_info["upload"]
    digest = request.query.get("digest", "")
    if not digest:
        return _error(400, "DIGEST_INVALID", "the digest query parameter is required")
    check_digest(digest)
    await _append(request, s.upload_path(upload))
    await asyncio.to_thread(s.finish_upload, name, upload, digest)
    return web.Response(status=201, headers={
        **_API_HEADER, "Location": f"/v2/{name}/blobs/{digest}",
        "Docker-Content-Digest": digest, "Content-Length": "0",
    })  # fmt: skip


async def cancel_upload(request: web.Request) -> web.Response:
    s = _storage(request)
    await asyncio.to_thread(s.cancel_upload, request.match_info["upload"])
    return web.Response(status=204, headers=_API_HEADER)


# ---------------------------------------------------------------------- manifests


async def get_manifest(request: web.Request) -> web.Response:
    s = _storage(request)
    name, reference = request.match_info["name"], request.match_info["reference"]
    data, media_type, digest = await asyncio.to_thread(s.get_manifest, name, reference)
    headers = {**_API_HEADER, "Docker-Content-Digest": digest, "Content-Type": media_type,
               "ETag": f'"{digest}"'}  # fmt: skip
    if request.method == "HEAD":
        return web.Response(headers={**headers, "Content-Length": str(len(data))})
    return web.Response(body=data, headers=headers)


async def put_manifest(request: web.Request) -> web.Response:
    s = _storage(request)
    name, reference = request.match_info["name"], request.match_info["reference"]
    data = await request.content.read(MAX_MANIFEST_SIZE + 1)
    if len(data) > MAX_MANIFEST_SIZE:
        return _error(413, "SIZE_INVALID", f"manifest over the {MAX_MANIFEST_SIZE} byte limit")
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip()
    if not media_type:
        try:
            media_type = str(json.loads(data).get("mediaType") or "")
        except (ValueError, AttributeError):
            media_type = ""
    missing: list[str] = []
    if media_type in MANIFEST_TYPES:
        manifest = parse_manifest(data, media_type)
        for desc in (manifest.config, *manifest.layers):
            if not desc.urls and not s.has_blob(name, desc.digest):
                missing.append(desc.digest)
    elif media_type in INDEX_TYPES:
        index = parse_index(data, media_type)
        missing = [m.digest for m in index.manifests if not s.has_manifest(name, m.digest)]
    else:
        return _error(400, "MANIFEST_INVALID", f"unsupported manifest media type {media_type!r}")
    if missing:
        return _error(400, "MANIFEST_BLOB_UNKNOWN", "blob unknown to registry", missing[0])
    digest = await asyncio.to_thread(s.put_manifest, name, reference, data, media_type)
    return web.Response(status=201, headers={
        **_API_HEADER, "Location": f"/v2/{name}/manifests/{digest}",
        "Docker-Content-Digest": digest, "Content-Length": "0",
    })  # fmt: skip


async def delete_manifest(request: web.Request) -> web.Response:
    s = _storage(request)
    name, reference = request.match_info["name"], request.match_info["reference"]
    if not reference.startswith("sha256:"):
        return _error(400, "UNSUPPORTED", "delete a manifest by its digest")
    await asyncio.to_thread(s.delete_manifest, name, reference)
    return web.Response(status=202, headers=_API_HEADER)


# ---------------------------------------------------------------------- listings


def _page(items: list[str], request: web.Request) -> tuple[list[str], str | None]:
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    n = request.query.get("n")
    if n is not None and n.isdigit():
        limit = int(n)
        more = len(items) > limit
        items = items[:limit]
        if more and items:
            return items, items[-1]
    return items, None


async def tags_list(request: web.Request) -> web.Response:
    s = _storage(request)
    name = request.match_info["name"]
    tags, last = _page(await asyncio.to_thread(s.tags, name), request)
    headers = dict(_API_HEADER)
    if last:
        headers["Link"] = f'</v2/{name}/tags/list?n={request.query["n"]}&last={last}>; rel="next"'
    return web.json_response({"name": name, "tags": tags}, headers=headers)


async def catalog(request: web.Request) -> web.Response:
    s = _storage(request)
    names, last = _page(await asyncio.to_thread(s.catalog), request)
    headers = dict(_API_HEADER)
    if last:
        headers["Link"] = f'</v2/_catalog?n={request.query["n"]}&last={last}>; rel="next"'
    return web.json_response({"repositories": names}, headers=headers)


def build_registry_app(root: Path) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024**4)
    app[STORAGE] = RegistryStorage(root)
    r = app.router
    name = "{name:[a-z0-9]+(?:[._/-]+[a-z0-9]+)*}"
    r.add_get("/v2/", api_root)
    r.add_get("/v2", api_root)
    r.add_get("/v2/_catalog", catalog)
    r.add_get(f"/v2/{name}/tags/list", tags_list)
    r.add_route("GET", f"/v2/{name}/manifests/{{reference}}", get_manifest)
    r.add_route("HEAD", f"/v2/{name}/manifests/{{reference}}", get_manifest)
    r.add_put(f"/v2/{name}/manifests/{{reference}}", put_manifest)
    r.add_delete(f"/v2/{name}/manifests/{{reference}}", delete_manifest)
    r.add_post(f"/v2/{name}/blobs/uploads/", start_upload)
    r.add_post(f"/v2/{name}/blobs/uploads", start_upload)
    r.add_get(f"/v2/{name}/blobs/uploads/{{upload}}", upload_status)
    r.add_patch(f"/v2/{name}/blobs/uploads/{{upload}}", patch_upload)
    r.add_put(f"/v2/{name}/blobs/uploads/{{upload}}", finish_upload)
    r.add_delete(f"/v2/{name}/blobs/uploads/{{upload}}", cancel_upload)
    r.add_route("GET", f"/v2/{name}/blobs/{{digest}}", get_blob)
    r.add_route("HEAD", f"/v2/{name}/blobs/{{digest}}", get_blob)
    r.add_delete(f"/v2/{name}/blobs/{{digest}}", delete_blob)
    return app
