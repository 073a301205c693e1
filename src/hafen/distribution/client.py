"""The registry client: one repository on one registry, over the distribution API.

``RegistryClient.open`` picks the endpoint (``GET /v2/``: mirrors first for Docker
Hub pulls, HTTPS, plain HTTP only where ``RegistryHosts`` allows it) and learns the
registry's auth challenge. Then it fetches manifests (size-limited, digest-checked)
and blobs — ``stream_blob`` hands a blob's bytes to any sink (a pull's unpacking
thread, or ``fetch_blob``'s content-store writer), resuming with ``Range`` after a
dropped connection when the registry allows it (else refetching and skipping what was
delivered), retrying with backoff on transient errors — and pushes blobs (HEAD check,
cross-repository mount, monolithic PUT or PATCH chunks) and manifests.

A blob is visible in the content store only once complete and verified (the writer's
commit), so an interruption at any point leaves no corrupt blob behind.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

import aiohttp
import aiohttp.payload
from yarl import URL

from hafen.distribution.auth import Authorizer, TokenCache
from hafen.distribution.credentials import Credentials
from hafen.distribution.errors import RegistryError, TransientError, Unauthorized, error_for
from hafen.distribution.hosts import Endpoint, RegistryConfig, RegistryHosts
from hafen.distribution.manifests import ACCEPT, MAX_MANIFEST_SIZE, Descriptor
from hafen.errors import DigestMismatch, HafenError, InvalidArgument, NotFound
from hafen.store.content import ContentStore

log = logging.getLogger("hafen.distribution")

MAX_CONFIG_SIZE = 32 * 1024 * 1024  # an image config is read into memory
_MAX_TAG_PAGES = 1000  # a bound on a registry that keeps answering "next"
READ_SLICE = 1024 * 1024  # bytes handed to a worker thread per write
_RETRY_DELAYS = (0.2, 0.5, 1.0)
_TRANSIENT = (
    aiohttp.ClientPayloadError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ServerTimeoutError,
    asyncio.TimeoutError,
    ConnectionError,
)
_CONNECT_FAILURES = (aiohttp.ClientConnectorError, aiohttp.ClientSSLError, aiohttp.ClientOSError,
                     aiohttp.ServerDisconnectedError)  # fmt: skip

Progress = Callable[[int], None]
"""Called with the byte count done so far (on the event loop)."""


@dataclass
class _Delivery:
    delivered: int = 0  # bytes of the blob handed to the sink so far


@dataclass(frozen=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


def new_session(limit: int = 16) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=120)
    return aiohttp.ClientSession(
        timeout=timeout,
        connector=aiohttp.TCPConnector(limit=limit),
        headers={"User-Agent": "hafen/0.1 (distribution client)"},
        auto_decompress=False,
    )


class RegistryClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        hosts: RegistryHosts,
        config: RegistryConfig,
        domain: str,
        repository: str,
        credentials: Credentials,
        cache: TokenCache,
        *,
        push: bool = False,
    ) -> None:
        self.session = session
        self.hosts = hosts
        self.config = config
        self.domain = domain
        self.repository = repository
        self.push = push
        self.auth = Authorizer(session, credentials, cache)
        self.endpoint: Endpoint | None = None
        self._extra_scopes: tuple[str, ...] = ()

    # ------------------------------------------------------------------ plumbing

    @property
    def scopes(self) -> tuple[str, ...]:
        if not self.repository:
            return self._extra_scopes
        actions = "pull,push" if self.push else "pull"
        return (f"repository:{self.repository}:{actions}", *self._extra_scopes)

    def _url(self, path: str) -> URL:
        assert self.endpoint is not None, "open() first"
        return URL(self.endpoint.base_url + path, encoded=False)

    def _ssl(self) -> bool:
        assert self.endpoint is not None
        return self.endpoint.verify_tls

    async def open(self) -> None:
        """Choose the endpoint (``GET /v2/``) and learn its authentication challenge."""
        errors: list[str] = []
        for endpoint in self.hosts.endpoints(self.domain, pull=not self.push):
            candidate: Endpoint | None = endpoint
            while candidate is not None:
                try:
                    async with self.session.get(
                        candidate.base_url + "/v2/", ssl=candidate.verify_tls
                    ) as resp:
                        await resp.read()
                        if resp.status == 401:
                            self.auth.challenged(resp.headers.get("WWW-Authenticate", ""), ())
                        elif resp.status >= 500 or resp.status == 404:
                            raise RegistryError(
                                f"{candidate.base_url}/v2/ answered {resp.status}: not a registry "
                                "(or not working)"
                            )
                        self.endpoint = candidate
                        return
                except (TimeoutError, *_CONNECT_FAILURES, RegistryError) as e:
                    errors.append(f"{candidate.base_url}: {e}")
                    nxt = (
                        self.hosts.fallback(candidate) if isinstance(e, _CONNECT_FAILURES) else None
                    )
                    candidate = nxt
        raise RegistryError(
            f"cannot reach the registry {self.domain}: " + "; ".join(errors or ["no endpoint"])
        )

    async def request(
        self,
        method: str,
        path_or_url: str | URL,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        retry: bool = True,
        allow_redirects: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send one request with authorization; retry a 401 once after a new challenge and
        transient failures with backoff (only when ``data`` can be sent again).

        The caller releases the response."""
        url = path_or_url if isinstance(path_or_url, URL) else self._url(path_or_url)
        attempts = len(_RETRY_DELAYS) + 1 if retry else 1
        reauthorized = False
        for attempt in range(attempts):
            sent = dict(headers or {})
            authorization = await self.auth.header(self.scopes)
            if authorization:
                sent["Authorization"] = authorization
            try:
                resp = await self.session.request(
                    method, url, headers=sent, data=data, ssl=self._ssl(),
                    allow_redirects=allow_redirects,
                )  # fmt: skip
            except _TRANSIENT as e:
                if attempt + 1 >= attempts:
                    raise TransientError(f"{method} {url.path}: {e or type(e).__name__}")
                await asyncio.sleep(_RETRY_DELAYS[attempt])
                continue
            if resp.status == 401 and not reauthorized:
                challenge = resp.headers.get("WWW-Authenticate", "")
                body = await resp.read()
                resp.release()
                if data is not None and not isinstance(data, bytes):
                    raise error_for(401, body, f"{method} {url.path}")
                if self.auth.challenged(challenge, self.scopes):
                    reauthorized = True
                    continue
                raise error_for(401, body, "")
            if (resp.status >= 500 or resp.status == 429) and attempt + 1 < attempts and retry:
                body = await resp.read()
                resp.release()
                log.info("%s %s: %s, retrying", method, url, resp.status)
                await asyncio.sleep(_RETRY_DELAYS[attempt])
                continue
            return resp
        raise TransientError(f"{method} {url.path}: gave up after {attempts} attempts")

    async def _fail(self, resp: aiohttp.ClientResponse, what: str) -> HafenError:
        body = await resp.content.read(64 * 1024)
        resp.release()
        return error_for(resp.status, body, what)

    # ------------------------------------------------------------------ manifests

    async def get_manifest(
        self, reference: str, expected_digest: str | None = None
    ) -> FetchedManifest:
        """The manifest or index named by a tag or digest, verified when a digest is known."""
        resp = await self.request(
            "GET", f"/v2/{self.repository}/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        try:
            if resp.status == 404:
                raise NotFound(
                    f"manifest for {self.domain}/{self.repository}:{reference} not found: "
                    "manifest unknown"
                    if not reference.startswith("sha256:")
                    else f"manifest {reference} of {self.domain}/{self.repository} not found"
                )
            if resp.status != 200:
                raise await self._fail(resp, f"fetching manifest {reference}")
            length = resp.content_length
            if length is not None and length > MAX_MANIFEST_SIZE:
                raise InvalidArgument(
                    f"manifest {reference} is {length} bytes, over the {MAX_MANIFEST_SIZE} limit"
                )
            data = await resp.content.read(MAX_MANIFEST_SIZE + 1)
            if len(data) > MAX_MANIFEST_SIZE:
                raise InvalidArgument(
                    f"manifest {reference} is over the {MAX_MANIFEST_SIZE} byte limit"
                )
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest")
        finally:
            resp.release()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        want = expected_digest or (reference if reference.startswith("sha256:") else None)
        if want and digest != want:
            raise DigestMismatch(
                f"manifest {reference} does not match its digest: expected {want}, got {digest}"
            )
        if header_digest and header_digest.startswith("sha256:") and header_digest != digest:
            raise DigestMismatch(
                f"manifest {reference}: the registry says {header_digest}, content is {digest}"
            )
        return FetchedManifest(data, media_type, digest)

    async def list_tags(self) -> list[str]:
        """Every tag of the repository (``GET /v2/<name>/tags/list``, following the
        ``Link: <…>; rel="next"`` pages registries send for long lists)."""
        tags: list[str] = []
        target: str | URL = f"/v2/{self.repository}/tags/list"
        for _ in range(_MAX_TAG_PAGES):
            resp = await self.request("GET", target)
            try:
                if resp.status == 404:
                    raise NotFound(f"repository {self.domain}/{self.repository} not found")
                if resp.status != 200:
                    raise await self._fail(resp, "listing tags")
                body = await resp.content.read(MAX_MANIFEST_SIZE + 1)
                link = resp.headers.get("Link", "")
                base = resp.url
            finally:
                resp.release()
            try:
                page = json.loads(body) if len(body) <= MAX_MANIFEST_SIZE else None
            except ValueError:
                page = None
            if not isinstance(page, dict) or not isinstance(page.get("tags") or [], list):
                raise RegistryError(
                    f"the tag list of {self.domain}/{self.repository} is not valid JSON"
                )
            tags.extend(str(t) for t in page.get("tags") or [])
            nxt = _next_link(link)
            if nxt is None:
                return tags
            target = base.join(URL(nxt))
        raise RegistryError(f"the tag list of {self.domain}/{self.repository} never ends")

    async def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        resp = await self.request(
            "PUT",
            f"/v2/{self.repository}/manifests/{reference}",
            headers={"Content-Type": media_type},
            data=data,
        )
        try:
            if resp.status not in (200, 201, 202):
                raise await self._fail(resp, f"pushing manifest {reference}")
        finally:
            resp.release()
        return "sha256:" + hashlib.sha256(data).hexdigest()

    # ------------------------------------------------------------------ blobs: pull

    async def fetch_blob(
        self, store: ContentStore, desc: Descriptor, progress: Progress | None = None
    ) -> None:
        """Stream a blob into ``store``, verified against ``desc``; a no-op if present."""
        if store.exists(desc.digest):
            return
        with store.writer(desc.digest) as writer:
            pending: list[bytes] = []
            pending_size = 0

            async def flush() -> None:
                nonlocal pending, pending_size
                if pending:
                    data, pending, pending_size = b"".join(pending), [], 0
                    await asyncio.to_thread(writer.write, data)

            async def sink(chunk: bytes) -> None:
                nonlocal pending_size
                pending.append(chunk)
                pending_size += len(chunk)
                if pending_size >= READ_SLICE:
                    await flush()

            try:
                await self.stream_blob(desc, sink, progress)
            finally:
                await flush()
            await asyncio.to_thread(writer.commit)

    async def read_blob(self, desc: Descriptor, limit: int = MAX_CONFIG_SIZE) -> bytes:
        """A small blob (an image config) in memory, verified against ``desc``."""
        if desc.size > limit:
            raise InvalidArgument(
                f"blob {desc.digest} is {desc.size} bytes, over the {limit} limit"
            )
        parts: list[bytes] = []

        async def sink(chunk: bytes) -> None:
            parts.append(chunk)

        await self.stream_blob(desc, sink)
        data = b"".join(parts)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != desc.digest:
            raise DigestMismatch(f"blob {desc.digest} does not match its digest: got {digest}")
        return data

    async def stream_blob(
        self,
        desc: Descriptor,
        sink: Callable[[bytes], Awaitable[None]],
        progress: Progress | None = None,
    ) -> None:
        """Hand a blob's bytes to ``sink`` in order, each exactly once, ``desc.size`` in all.

        A dropped connection is resumed with ``Range`` where the registry allows it (else
        the blob is fetched again and the part already delivered skipped); transient
        errors are retried with backoff. The caller verifies the digest."""
        state = _Delivery()
        attempts = max(1, self.config.max_download_attempts)
        for attempt in range(attempts):
            try:
                await self._download(desc, sink, state, progress)
                return
            except (TransientError, *_TRANSIENT) as e:
                if attempt + 1 >= attempts:
                    raise TransientError(
                        f"downloading {desc.digest} failed after {attempts} attempts: "
                        f"{e or type(e).__name__}"
                    )
                log.info("download of %s interrupted at %d bytes (%s), resuming",
                         desc.digest, state.delivered, e or type(e).__name__)  # fmt: skip
                await asyncio.sleep(_RETRY_DELAYS[min(attempt, len(_RETRY_DELAYS) - 1)])

    async def _download(
        self,
        desc: Descriptor,
        sink: Callable[[bytes], Awaitable[None]],
        state: _Delivery,
        progress: Progress | None,
    ) -> None:
        headers = {}
        offset = state.delivered
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = await self.request(
            "GET", f"/v2/{self.repository}/blobs/{desc.digest}", headers=headers
        )
        try:
            skip = 0
            if resp.status == 206 and offset:
                pass  # resumed where we were
            elif resp.status == 200:
                skip = offset  # no range support: what we have comes again
            elif resp.status == 404:
                raise NotFound(f"blob {desc.digest} not found in {self.domain}/{self.repository}")
            else:
                raise await self._fail(resp, f"fetching blob {desc.digest}")
            async for chunk in resp.content.iter_any():
                if skip:
                    if len(chunk) <= skip:
                        skip -= len(chunk)
                        continue
                    chunk, skip = chunk[skip:], 0
                if state.delivered + len(chunk) > desc.size:
                    raise DigestMismatch(
                        f"blob {desc.digest} is larger than the {desc.size} bytes the manifest says"
                    )
                state.delivered += len(chunk)
                await sink(chunk)
                if progress:
                    progress(state.delivered)
            if state.delivered < desc.size:
                raise TransientError(
                    f"blob {desc.digest}: connection closed at {state.delivered} of "
                    f"{desc.size} bytes"
                )
        finally:
            resp.release()

    # ------------------------------------------------------------------ blobs: push

    async def blob_exists(self, digest: str) -> bool:
        resp = await self.request("HEAD", f"/v2/{self.repository}/blobs/{digest}")
        try:
            if resp.status == 200:
                return True
            if resp.status == 404:
                return False
            raise error_for(resp.status, b"", f"checking blob {digest}")
        finally:
            resp.release()

    async def mount_blob(self, digest: str, source_repository: str) -> URL | None:
        """Cross-repository mount: True-ish (None) when mounted, else the upload URL it
        started instead (registries answer 202 when they cannot mount)."""
        self._extra_scopes = (f"repository:{source_repository}:pull",)
        try:
            resp = await self.request(
                "POST",
                self._url(f"/v2/{self.repository}/blobs/uploads/").with_query(
                    mount=digest, **{"from": source_repository}
                ),
            )
        finally:
            self._extra_scopes = ()
        try:
            if resp.status == 201:
                return None
            if resp.status == 202:
                return self._location(resp)
            raise await self._fail(resp, f"mounting {digest} from {source_repository}")
        finally:
            resp.release()

    def _location(self, resp: aiohttp.ClientResponse) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError("the registry started an upload without a Location")
        url = URL(location)
        return url if url.is_absolute() else resp.url.join(url)

    async def start_upload(self) -> URL:
        resp = await self.request("POST", f"/v2/{self.repository}/blobs/uploads/")
        try:
            if resp.status != 202:
                raise await self._fail(resp, "starting a blob upload")
            return self._location(resp)
        finally:
            resp.release()

    async def upload_blob(
        self,
        source: Callable[[], BinaryIO],
        desc: Descriptor,
        location: URL | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Upload a blob from the file ``source`` opens: one PUT, or PATCH chunks then PUT."""
        if location is None:
            location = await self.start_upload()
        f = await asyncio.to_thread(source)
        try:
            await self._upload(f, desc, location, progress)
        finally:
            await asyncio.to_thread(f.close)

    async def _upload(
        self, f: BinaryIO, desc: Descriptor, location: URL, progress: Progress | None
    ) -> None:
        chunk = self.config.chunk_size
        if chunk and desc.size > chunk:
            offset = 0
            while offset < desc.size:
                length = min(chunk, desc.size - offset)
                resp = await self.request(
                    "PATCH",
                    location,
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{offset}-{offset + length - 1}",
                        "Content-Length": str(length),
                    },
                    data=_FileBody(f, offset, length, progress, offset),
                    retry=False,
                )
                try:
                    if resp.status != 202:
                        raise await self._fail(resp, f"uploading {desc.digest}")
                    location = self._location(resp)
                finally:
                    resp.release()
                offset += length
            body: Any = b""
            headers = {"Content-Length": "0"}
        else:
            body = _FileBody(f, 0, desc.size, progress, 0)
            headers = {"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)}
        resp = await self.request(
            "PUT", location.update_query(digest=desc.digest), headers=headers, data=body,
            retry=False,
        )  # fmt: skip
        try:
            if resp.status not in (201, 204):
                raise await self._fail(resp, f"uploading {desc.digest}")
        finally:
            resp.release()


SENDFILE_SLICE = 8 * 1024 * 1024  # bytes per sendfile call (progress between them)


class _FileBody(aiohttp.payload.Payload):
    """``length`` bytes of a blob file from ``offset`` as a request body.

    On plain-HTTP connections the kernel copies file to socket (``loop.sendfile``): no
    reads into Python, no copies through the event loop; over TLS the file is read in
    worker threads and written as usual."""

    def __init__(
        self, f: BinaryIO, offset: int, length: int, progress: Progress | None, base: int
    ) -> None:
        super().__init__(f, content_type="application/octet-stream")
        self._file = f
        self._offset = offset
        self._length = length
        self._progress = progress
        self._base = base

    @property
    def size(self) -> int:
        return self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a blob body is not text")

    async def write(self, writer: Any) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: Any, content_length: int | None) -> None:
        transport = getattr(writer, "transport", None)
        if (
            transport is not None
            and hasattr(writer, "send_headers")
            and transport.get_extra_info("sslcontext") is None
        ):
            writer.send_headers()
            await writer.drain()
            loop = asyncio.get_running_loop()
            sent = 0
            while sent < self._length:
                count = min(SENDFILE_SLICE, self._length - sent)
                done = await loop.sendfile(transport, self._file, self._offset + sent, count)
                if not done:
                    raise RegistryError("the blob file is shorter than its descriptor says")
                sent += done
                if self._progress:
                    self._progress(self._base + sent)
            return
        await asyncio.to_thread(self._file.seek, self._offset)
        left = self._length
        done_total = self._base
        while left > 0:
            data = await asyncio.to_thread(self._file.read, min(READ_SLICE, left))
            if not data:
                raise RegistryError("the blob file is shorter than its descriptor says")
            left -= len(data)
            done_total += len(data)
            await writer.write(data)
            if self._progress:
                self._progress(done_total)


def _next_link(header: str) -> str | None:
    """The target of ``<url>; rel="next"`` in a ``Link`` header, if any."""
    for part in header.split(","):
        target, _, params = part.strip().partition(";")
        if 'rel="next"' in params.replace(" ", "") or "rel=next" in params.replace(" ", ""):
            return target.strip().removeprefix("<").removesuffix(">") or None
    return None


def unauthorized_hint(e: Unauthorized, domain: str) -> str:
    return f"{e.message}" if "login" in e.message else f"{e.message} (hafen login {domain})"
