"""Registry authentication: challenges, Basic, and Docker's token flow.

A registry answers an unauthenticated request with 401 and a ``WWW-Authenticate``
challenge. ``Basic realm=...`` means: send the user's credentials on every request.
``Bearer realm=...,service=...,scope=...`` means: ask the token server at ``realm`` for
a token covering ``service`` and the ``scope``s (``repository:<path>:pull,push``) —
anonymously, with the credentials as Basic auth, or with an identity (refresh) token
via OAuth2 ``grant_type=refresh_token`` — and send it as ``Bearer``. Tokens are cached
per (realm, service, scopes, user) until shortly before they expire; a 401 on a cached
token drops it and fetches a fresh one once.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from hafen.distribution.credentials import Credentials
from hafen.distribution.errors import RegistryError, Unauthorized

_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
TOKEN_MIN_LIFETIME = 60  # seconds, when the token server names none (Docker's default)
TOKEN_EARLY_REFRESH = 10


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict, hash=False)


def parse_challenges(header: str) -> list[Challenge]:
    """The challenges of a ``WWW-Authenticate`` header (one or several, comma-joined)."""
    challenges: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM.match(rest)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
            rest = rest[pm.end() :].lstrip()
            if rest.startswith(","):
                rest = rest[1:].lstrip()
                # a new scheme starts with a token not followed by "="
                if re.match(r"[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z]", rest) or re.match(
                    r"[A-Za-z][A-Za-z0-9_-]*\s*$", rest
                ):
                    break
            else:
                break
        challenges.append(Challenge(scheme, params))
    return challenges


@dataclass
class _Token:
    value: str
    expires: float


class TokenCache:
    """Tokens shared by every pull and push of a daemon (thread-unsafe: one event loop)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...], str], _Token] = {}

    def get(self, key: tuple[str, str, tuple[str, ...], str]) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires - TOKEN_EARLY_REFRESH < time.monotonic():
            self._tokens.pop(key, None)
            return None
        return token.value

    def put(self, key: tuple[str, str, tuple[str, ...], str], value: str, lifetime: float) -> None:
        self._tokens[key] = _Token(value, time.monotonic() + lifetime)

    def drop(self, key: tuple[str, str, tuple[str, ...], str]) -> None:
        self._tokens.pop(key, None)


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


class Authorizer:
    """The Authorization header for one registry host, learnt from its challenges."""

    def __init__(
        self, session: aiohttp.ClientSession, credentials: Credentials, cache: TokenCache
    ) -> None:
        self.session = session
        self.credentials = credentials
        self.cache = cache
        self.challenge: Challenge | None = None

    def _key(self, scopes: tuple[str, ...]) -> tuple[str, str, tuple[str, ...], str]:
        assert self.challenge is not None
        who = self.credentials.username or ("token" if self.credentials.identity_token else "")
        return (
            self.challenge.params.get("realm", ""),
            self.challenge.params.get("service", ""),
            scopes,
            who,
        )

    async def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization value to send now (None until a challenge asks for one)."""
        if self.challenge is None:
            return None
        if self.challenge.scheme == "basic":
            if self.credentials.empty:
                raise Unauthorized("unauthorized: authentication required (no credentials given)")
            return basic_header(self.credentials)
        if self.challenge.scheme == "bearer":
            token = self.cache.get(self._key(scopes))
            if token is None:
                token = await self._fetch_token(scopes)
            return "Bearer " + token
        raise RegistryError(f"unsupported authentication scheme {self.challenge.scheme!r}")

    def challenged(self, header: str, scopes: tuple[str, ...]) -> bool:
        """Record a 401's challenge; True when retrying with new authorization can help."""
        challenges = parse_challenges(header)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None
        )
        if chosen is None:
            return False
        previous = self.challenge
        self.challenge = chosen
        if previous is None or previous.scheme != chosen.scheme:
            return True
        if chosen.scheme == "bearer":
            # The token we sent was refused (expired, or too narrow): fetch another once.
            key = self._key(scopes)
            had = self.cache.get(key) is not None
            self.cache.drop(key)
            return had or "error" in chosen.params
        return False

    async def _fetch_token(self, scopes: tuple[str, ...]) -> str:
        assert self.challenge is not None
        params = self.challenge.params
        realm = params.get("realm")
        if not realm:
            raise RegistryError("the registry's Bearer challenge names no realm")
        service = params.get("service", "")
        creds = self.credentials
        if creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": service,
                "client_id": "hafen",
                "scope": " ".join(scopes),
            }
            async with self.session.post(realm, data=form) as resp:
                body = await _token_body(resp, realm)
        else:
            query: list[tuple[str, str]] = []
            if service:
                query.append(("service", service))
            query.extend(("scope", s) for s in scopes)
            headers = {}
            if not creds.empty:
                headers["Authorization"] = basic_header(creds)
                query.append(("account", creds.username))
            async with self.session.get(realm, params=query, headers=headers) as resp:
                body = await _token_body(resp, realm)
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} returned no token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime < TOKEN_MIN_LIFETIME:
            lifetime = TOKEN_MIN_LIFETIME
        self.cache.put(self._key(scopes), token, float(lifetime))
        return token


async def _token_body(resp: aiohttp.ClientResponse, realm: str) -> dict[str, Any]:
    if resp.status in (401, 403):
        text = (await resp.text())[:300]
        raise Unauthorized(
            f"unauthorized: the token server {realm} refused the credentials: {text.strip()}"
        )
    if resp.status != 200:
        raise RegistryError(f"the token server {realm} answered {resp.status}")
    try:
        body = await resp.json(content_type=None)
    except ValueError:
        raise RegistryError(f"the token server {realm} returned invalid JSON")
    if not isinstance(body, dict):
        raise RegistryError(f"the token server {realm} returned invalid JSON")
    return body
