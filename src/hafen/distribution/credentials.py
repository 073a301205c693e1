"""Registry credentials in a Docker-compatible ``config.json``.

The file is Docker's: ``auths`` maps a registry to ``{"auth": base64("user:pass")}``
(or an ``identitytoken``), ``credsStore`` names a default credential helper and
``credHelpers`` one per registry. A helper is the program ``docker-credential-<name>``
speaking Docker's protocol: ``get`` reads the server URL on stdin and prints
``{"ServerURL","Username","Secret"}``; ``store`` reads that JSON; ``erase`` reads
the URL. Docker Hub is keyed ``https://index.docker.io/v1/`` as Docker keys it.

The file lives in ``$HAFEN_CONFIG``, else ``$DOCKER_CONFIG``, else ``~/.hafen``; it is
rewritten atomically (temp file, fsync, rename) with mode 0600.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafen.errors import HafenError, InvalidConfig

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
HELPER_PREFIX = "docker-credential-"
# Docker Hub's spellings (distribution sits below images/ and cannot import its reference module)
DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAINS = frozenset({"index.docker.io", "registry-1.docker.io"})


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token instead of a password

    @property
    def empty(self) -> bool:
        return not (self.username or self.password or self.identity_token)


def config_dir() -> Path:
    for var in ("HAFEN_CONFIG", "DOCKER_CONFIG"):
        value = os.environ.get(var)
        if value:
            return Path(value)
    return Path.home() / ".hafen"


def registry_key(registry: str) -> str:
    """How config.json names a registry: Docker Hub by its v1 URL, others by host[:port]."""
    host = registry.strip()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/")[0]
    if not host or host == DEFAULT_DOMAIN or host in LEGACY_DOMAINS:
        return DOCKER_HUB_KEY
    return host


def _same_registry(key: str, registry: str) -> bool:
    return registry_key(key) == registry_key(registry)


class CredentialStore:
    """Reads and writes credentials in one ``config.json`` (and its helpers)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.path = (directory or config_dir()) / "config.json"

    def _read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise InvalidConfig(f"cannot read {self.path}: {e}")
        if not text.strip():
            return {}
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidConfig(f"{self.path}: invalid JSON: {e}")
        if not isinstance(data, dict):
            raise InvalidConfig(f"{self.path}: the top level must be a JSON object")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent="\t")
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _helper_for(self, data: dict[str, Any], registry: str) -> str | None:
        helpers = data.get("credHelpers") or {}
        if isinstance(helpers, dict):
            for key, name in helpers.items():
                if _same_registry(key, registry) and name:
                    return str(name)
        store = data.get("credsStore")
        return str(store) if store else None

    def get(self, registry: str) -> Credentials:
        data = self._read()
        helper = self._helper_for(data, registry)
        if helper:
            return helper_get(helper, registry_key(registry))
        auths = data.get("auths") or {}
        if not isinstance(auths, dict):
            raise InvalidConfig(f"{self.path}: auths must be an object")
        for key, entry in auths.items():
            if _same_registry(key, registry) and isinstance(entry, dict):
                return _decode_entry(entry, self.path, key)
        return Credentials()

    def store(self, registry: str, credentials: Credentials) -> None:
        data = self._read()
        key = registry_key(registry)
        helper = self._helper_for(data, registry)
        auths = data.setdefault("auths", {})
        if helper:
            helper_store(helper, key, credentials)
            auths[key] = {}  # Docker records the registry, the helper holds the secret
        else:
            entry: dict[str, str] = {}
            if credentials.identity_token:
                entry["identitytoken"] = credentials.identity_token
                entry["auth"] = base64.b64encode(f"{credentials.username}:".encode()).decode()
            else:
                entry["auth"] = base64.b64encode(
                    f"{credentials.username}:{credentials.password}".encode()
                ).decode()
            auths[key] = entry
        self._write(data)

    def erase(self, registry: str) -> bool:
        """Forget the registry's credentials; False when there were none."""
        data = self._read()
        key = registry_key(registry)
        auths = data.get("auths") or {}
        found = [k for k in auths if _same_registry(k, registry)]
        helper = self._helper_for(data, registry)
        if helper:
            helper_erase(helper, key)
        for k in found:
            del auths[k]
        if found:
            self._write(data)
        return bool(found) or helper is not None


def _decode_entry(entry: dict[str, Any], path: Path, key: str) -> Credentials:
    token = str(entry.get("identitytoken") or "")
    raw = entry.get("auth")
    if raw:
        try:
            decoded = base64.b64decode(str(raw), validate=False).decode()
        except (ValueError, UnicodeDecodeError):
            raise InvalidConfig(f"{path}: the auth of {key} is not valid base64")
        user, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidConfig(f"{path}: the auth of {key} must encode user:password")
        return Credentials(user, password, token)
    return Credentials(str(entry.get("username") or ""), str(entry.get("password") or ""), token)


def _run_helper(helper: str, action: str, stdin: str) -> str:
    program = HELPER_PREFIX + helper
    try:
        result = subprocess.run(
            [program, action], input=stdin, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise HafenError(f"credential helper {program} is not installed (it is not in PATH)")
    except subprocess.TimeoutExpired:
        raise HafenError(f"credential helper {program} {action} did not answer within 60s")
    if result.returncode != 0:
        message = (result.stdout or result.stderr).strip()
        if action == "get" and "credentials not found" in message.lower():
            return ""
        raise HafenError(f"credential helper {program} {action} failed: {message}")
    return result.stdout


def helper_get(helper: str, server: str) -> Credentials:
    out = _run_helper(helper, "get", server)
    if not out.strip():
        return Credentials()
    try:
        data = json.loads(out)
    except ValueError:
        raise HafenError(f"credential helper {HELPER_PREFIX}{helper} printed invalid JSON")
    user = str(data.get("Username") or "")
    secret = str(data.get("Secret") or "")
    if user == "<token>":  # Docker's convention for identity tokens in helpers
        return Credentials("", "", secret)
    return Credentials(user, secret)


def helper_store(helper: str, server: str, credentials: Credentials) -> None:
    payload = {
        "ServerURL": server,
        "Username": credentials.username if not credentials.identity_token else "<token>",
        "Secret": credentials.identity_token or credentials.password,
    }
    _run_helper(helper, "store", json.dumps(payload))


def helper_erase(helper: str, server: str) -> None:
    _run_helper(helper, "erase", server)


def encode_auth_header(credentials: Credentials, server: str) -> str:
    """The ``X-Registry-Auth`` header value Docker clients send (URL-safe base64 JSON)."""
    payload: dict[str, str] = {"serveraddress": server}
    if credentials.identity_token:
        payload["identitytoken"] = credentials.identity_token
    else:
        payload["username"] = credentials.username
        payload["password"] = credentials.password
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def decode_auth_header(value: str) -> Credentials:
    """Credentials from an ``X-Registry-Auth`` header (URL-safe or standard base64 JSON)."""
    value = value.strip()
    if not value:
        return Credentials()
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidConfig("invalid X-Registry-Auth header: expected base64-encoded JSON")
    if not isinstance(data, dict):
        raise InvalidConfig("invalid X-Registry-Auth header: expected a JSON object")
    return Credentials(
        str(data.get("username") or ""),
        str(data.get("password") or ""),
        str(data.get("identitytoken") or ""),
    )


def decode_registry_config(value: str) -> dict[str, Credentials]:
    """``X-Registry-Config`` (``POST /build``): base64 JSON ``{registry: auth config}``, keyed
    as ``registry_key`` keys registries; an ``auth`` field ("user:password" in base64)
    counts as username and password."""
    value = value.strip()
    if not value:
        return {}
    padded = value + "=" * (-len(value) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")))
    except (ValueError, UnicodeDecodeError):
        raise InvalidConfig("invalid X-Registry-Config header: expected base64-encoded JSON")
    if not isinstance(data, dict):
        raise InvalidConfig("invalid X-Registry-Config header: expected a JSON object")
    out: dict[str, Credentials] = {}
    for registry, entry in data.items():
        if not isinstance(entry, dict):
            continue
        username = str(entry.get("username") or "")
        password = str(entry.get("password") or "")
        if entry.get("auth") and not (username or password):
            try:
                username, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidConfig(f"invalid X-Registry-Config header: bad auth for {registry}")
        creds = Credentials(username, password, str(entry.get("identitytoken") or ""))
        if not creds.empty:
            out[registry_key(str(registry))] = creds
    return out
