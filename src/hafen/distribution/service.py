"""The daemon's registry access: configuration, endpoint memory and the token cache,
shared by every pull, push and login.

``Distribution.client`` opens a ``RegistryClient`` for one repository (a fresh HTTP
session per operation, closed with it); ``login`` checks credentials the way
``docker login`` does — ``GET /v2/`` and, for token registries, a token request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hafen.distribution.auth import TokenCache
from hafen.distribution.client import RegistryClient, new_session
from hafen.distribution.credentials import Credentials
from hafen.distribution.errors import RegistryError, Unauthorized
from hafen.distribution.hosts import DOCKER_HUB, RegistryConfig, RegistryHosts


class Distribution:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self.hosts = RegistryHosts(config)
        self.tokens = TokenCache()

    @asynccontextmanager
    async def client(
        self, domain: str, repository: str, credentials: Credentials, *, push: bool = False
    ) -> AsyncIterator[RegistryClient]:
        limit = max(self.config.max_concurrent_downloads, self.config.max_concurrent_uploads) + 4
        async with new_session(limit) as session:
            client = RegistryClient(
                session, self.hosts, self.config, domain, repository, credentials, self.tokens,
                push=push,
            )  # fmt: skip
            await client.open()
            yield client

    async def login(self, server: str, credentials: Credentials) -> None:
        """Raise ``Unauthorized`` unless the registry accepts ``credentials``."""
        domain = _server_domain(server)
        async with new_session() as session:
            client = RegistryClient(
                session, self.hosts, self.config, domain, "", credentials, TokenCache()
            )
            await client.open()
            if client.auth.challenge is None:
                return  # an open registry accepts anyone
            # Basic: the registry checks the credentials on /v2/; Bearer: the token server
            # does, for a token with no repository scope (as docker login asks).
            resp = await client.request("GET", "/v2/", retry=False)
            try:
                if resp.status == 401:
                    raise Unauthorized(
                        f"login to {domain} failed: unauthorized: incorrect username or password"
                    )
                if resp.status != 200:
                    raise RegistryError(f"login to {domain} failed: /v2/ answered {resp.status}")
            finally:
                resp.release()


def _server_domain(server: str) -> str:
    host = server.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/")[0]
    if not host or host in ("index.docker.io", "registry-1.docker.io", DOCKER_HUB):
        return DOCKER_HUB
    return host
