"""Registry routes of the Engine API: pull (``POST /images/create``), push and login.

Pull and push answer 200 at once and then stream Docker's JSON progress messages
(``{"status","id","progressDetail","progress"}``), ending with an ``error`` message if
the operation failed — the shape ``docker pull``/``docker push`` render. Credentials
come in the ``X-Registry-Auth`` header, as Docker clients send them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, BinaryIO

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body
from hafen.distribution.credentials import Credentials, decode_auth_header
from hafen.distribution.manifests import host_platform, parse_platform
from hafen.errors import HafenError, InvalidArgument, NotFound
from hafen.images.progress import ProgressEvent
from hafen.images.pull import pull_image
from hafen.images.push import push_image
from hafen.images.reference import Reference, parse_reference

_BAR_WIDTH = 50
_UNITS = ("B", "kB", "MB", "GB", "TB")


def human_size(size: float) -> str:
    """Docker's ``units.HumanSize``: decimal units, 3 significant digits (``1.23MB``)."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.3g}{_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    """Docker's jsonmessage progress text: ``[=====>      ]  1.23MB/4.56MB``."""
    if total <= 0:
        return human_size(current)
    filled = min(_BAR_WIDTH, int(_BAR_WIDTH * current / total))
    bar = "=" * filled + (">" if filled < _BAR_WIDTH else "") + " " * (_BAR_WIDTH - filled - 1)
    return f"[{bar[:_BAR_WIDTH]}] {human_size(current):>8}/{human_size(total)}"


def progress_message(event: ProgressEvent) -> dict[str, Any]:
    if event.aux is not None:
        return {"progressDetail": {}, "aux": event.aux}
    message: dict[str, Any] = {"status": event.status}
    if event.id is not None:
        message["progressDetail"] = {}
        if event.current is not None:
            message["progressDetail"] = {"current": event.current, "total": event.total or 0}
            message["progress"] = progress_bar(event.current, event.total or 0)
        message["id"] = event.id
    return message


async def stream_progress(
    request: web.Request, work: Callable[[Callable[[ProgressEvent], None]], Awaitable[Any]]
) -> web.StreamResponse:
    """Run ``work(emit)`` and stream its events. As dockerd, the 200 and the stream start
    with the first event: a failure before it is an ordinary error response (the CLI
    prints "Error response from daemon: ..."); one after it ends the stream with
    Docker's ``{"errorDetail": {"message"}, "error"}``. A client that hangs up cancels
    the work."""
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    queue: asyncio.Queue[ProgressEvent | None] = asyncio.Queue()

    async def run() -> None:
        try:
            await work(queue.put_nowait)
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(run())
    try:
        while True:
            event = await queue.get()
            if event is None:
                break
            if not response.prepared:
                await response.prepare(request)
            await response.write(json.dumps(progress_message(event)).encode() + b"\r\n")
        await task
    except HafenError as e:
        if not response.prepared:
            raise
        await response.write(_error_line(e.message))
    except (ConnectionResetError, asyncio.CancelledError):
        task.cancel()
        raise
    except Exception as e:  # a bug must still end the stream with a message
        if not response.prepared:
            raise
        await response.write(_error_line(f"internal error: {e}"))
    finally:
        if not task.done():
            task.cancel()
    if not response.prepared:
        await response.prepare(request)
    await response.write_eof()
    return response


def _error_line(message: str) -> bytes:
    return json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n"


def _credentials(request: web.Request) -> Credentials:
    header = request.headers.get("X-Registry-Auth", "")
    return decode_auth_header(header) if header else Credentials()


def _pull_reference(image: str, tag: str) -> Reference:
    if not image:
        raise InvalidArgument("fromImage is required: the image to pull")
    if tag:
        base = parse_reference(image, default_tag=False)
        if tag.startswith("sha256:"):
            return Reference(base.domain, base.path, None, tag)
        return Reference(base.domain, base.path, tag, None)
    return parse_reference(image)


def _names_no_tag(image: str) -> bool:
    base = parse_reference(image, default_tag=False)
    return base.tag is None and base.digest is None


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=&tag=&platform=``: pull."""
    d = daemon_of(request)
    if request.query.get("fromSrc"):
        return await import_image(request)
    image, tag = request.query.get("fromImage", ""), request.query.get("tag", "")
    reference = _pull_reference(image, tag)
    # As dockerd: a bare repository name and no tag at all (`docker pull -a`; clients
    # send tag=latest otherwise) pulls every tag of the repository.
    all_tags = not tag and bool(image) and _names_no_tag(image)
    text = request.query.get("platform", "")
    platform = parse_platform(text) if text else host_platform()
    credentials = _credentials(request)

    async def work(emit: Callable[[ProgressEvent], None]) -> None:
        async with d.distribution.client(reference.domain, reference.path, credentials) as client:
            references = [reference]
            if all_tags:
                tags = await client.list_tags()
                if not tags:
                    raise NotFound(f"repository {reference.name} has no tags to pull")
                references = [Reference(reference.domain, reference.path, t) for t in tags]
            for ref in references:
                await pull_image(
                    client, d.images, ref, platform, emit,
                    max_downloads=d.distribution.config.max_concurrent_downloads,
                )  # fmt: skip
                # dockerd names the pulled reference as the actor of its "pull" event
                d.events.publish("image", "pull", str(ref), {"name": str(ref)})

    return await stream_progress(request, work)


async def import_image(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromSrc=-&repo=&tag=&changes=&message=``: a rootfs tarball
    in the body becomes a one-layer image (``docker import``)."""
    import tempfile
    from pathlib import Path

    from hafen.images.commit import CommitOptions, import_tarball

    d = daemon_of(request)
    source = request.query["fromSrc"]
    if source != "-" and not source.startswith(("http://", "https://")):
        raise InvalidArgument(
            f"cannot import from {source!r}: give an http:// or https:// URL, or send the "
            "tarball in the request body (fromSrc=-)"
        )
    repo = request.query.get("repo", "")
    tags: list[str] = []
    if repo:
        base = parse_reference(repo, default_tag=False)
        tag = request.query.get("tag") or base.tag or "latest"
        tags = [str(Reference(base.domain, base.path, tag))]
    options = CommitOptions(
        tags=tags,
        comment=request.query.get("message", ""),
        changes=tuple(request.query.getall("changes", [])),
        created_by="",
    )
    spool = d.config.data_root / "tmp"
    spool.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool, prefix="import-")
    path = Path(name)
    try:
        with open(fd, "wb") as f:
            if source == "-":
                async for chunk in request.content.iter_chunked(1024 * 1024):
                    await asyncio.to_thread(f.write, chunk)
            else:
                await _download(source, f)

        def run() -> str:
            with open(path, "rb") as src:
                return import_tarball(d.images, src, options).id

        image_id = await asyncio.to_thread(run)
    finally:
        path.unlink(missing_ok=True)
    return web.json_response({"status": image_id})


async def _download(url: str, out: BinaryIO) -> None:
    """``docker import <URL>``: the tarball at ``url``, streamed to ``out``."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session,
            session.get(url) as resp,
        ):
            if resp.status != 200:
                raise InvalidArgument(
                    f"cannot import from {url}: the server answered {resp.status}"
                )
            async for chunk in resp.content.iter_chunked(1024 * 1024):
                await asyncio.to_thread(out.write, chunk)
    except (aiohttp.ClientError, TimeoutError, ValueError) as e:
        raise InvalidArgument(f"cannot import from {url}: {e or type(e).__name__}")


async def push(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=``: push one tag (every tag of the repo if none)."""
    d = daemon_of(request)
    name = parse_reference(request.match_info["name"], default_tag=False)
    tag = request.query.get("tag", "") or name.tag
    credentials = _credentials(request)
    if tag:
        references = [Reference(name.domain, name.path, tag)]
    else:
        references = await asyncio.to_thread(_repository_tags, d.images, name)
        if not references:
            raise InvalidArgument(f"An image does not exist locally with the tag: {name.name}")
    # Refuse a missing image before the 200 of the stream, as dockerd does.
    for reference in references:
        await asyncio.to_thread(d.images.resolve, str(reference))

    async def work(emit: Callable[[ProgressEvent], None]) -> None:
        async with d.distribution.client(name.domain, name.path, credentials, push=True) as client:
            for reference in references:
                await push_image(
                    client, d.images, reference, emit,
                    max_uploads=d.distribution.config.max_concurrent_uploads,
                )  # fmt: skip
                d.events.publish("image", "push", str(reference), {"name": str(reference)})

    return await stream_progress(request, work)


def _repository_tags(images: Any, name: Reference) -> list[Reference]:
    rows = images.metadata.query(
        "SELECT ref FROM tags WHERE ref >= ? AND ref < ? ORDER BY ref",
        (name.name + ":", name.name + ";"),
    )
    return [parse_reference(r["ref"]) for r in rows]


async def auth(request: web.Request) -> web.Response:
    """``POST /auth``: check credentials against a registry (``docker login``)."""
    d = daemon_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("the body of /auth must be a JSON object")
    credentials = Credentials(
        str(body.get("username") or ""),
        str(body.get("password") or ""),
        str(body.get("identitytoken") or ""),
    )
    server = str(body.get("serveraddress") or "docker.io")
    await d.distribution.login(server, credentials)
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})


def register(routes: Routes) -> None:
    routes.add("POST", "/images/create", create)
    routes.add("POST", "/images/{name:.+}/push", push)
    routes.add("POST", "/auth", auth)
