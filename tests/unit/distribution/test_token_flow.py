"""Docker's token flow against a small in-process registry + token server: a token is
fetched once and cached; a token the registry refuses (expired) is replaced once."""

from __future__ import annotations

import asyncio
import base64

from aiohttp import web
from aiohttp.test_utils import TestServer

from hafen.distribution.auth import TokenCache
from hafen.distribution.client import RegistryClient, new_session
from hafen.distribution.credentials import Credentials
from hafen.distribution.hosts import RegistryConfig, RegistryHosts


def test_token_is_cached_and_refreshed_when_refused() -> None:
    issued: list[str] = []
    valid: set[str] = set()
    seen_auth: list[str] = []

    async def token(request: web.Request) -> web.Response:
        seen_auth.append(request.headers.get("Authorization", ""))
        value = f"token-{len(issued) + 1}"
        issued.append(request.query.get("scope", ""))
        valid.add(value)
        return web.json_response({"token": value, "expires_in": 300})

    async def manifests(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        realm = f"http://{request.host}/token"
        challenge = f'Bearer realm="{realm}",service="unit",scope="repository:app:pull"'
        if auth.removeprefix("Bearer ") not in valid:
            if auth:
                challenge += ',error="invalid_token"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(body=b"{}", content_type="application/vnd.oci.image.manifest.v1+json")

    app = web.Application()
    app.router.add_get("/v2/", manifests)
    app.router.add_get("/token", token)
    app.router.add_get("/v2/app/manifests/{ref}", manifests)

    async def run() -> None:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        config = RegistryConfig()
        cache = TokenCache()
        try:
            async with new_session() as session:
                client = RegistryClient(
                    session, RegistryHosts(config), config, f"127.0.0.1:{server.port}", "app",
                    Credentials("user", "pw"), cache,
                )  # fmt: skip
                await client.open()
                await client.get_manifest("v1")
                await client.get_manifest("v1")
                assert issued == ["repository:app:pull"]  # one token, then the cache
                valid.clear()  # the registry now refuses it (expired, revoked)
                await client.get_manifest("v1")
                assert len(issued) == 2
        finally:
            await server.close()

    asyncio.run(run())
    assert seen_auth[0] == "Basic " + base64.b64encode(b"user:pw").decode()
