"""Which URL serves a registry domain: HTTPS, plain HTTP only where allowed, mirrors.

``docker.io`` is served by ``registry-1.docker.io`` and, when ``registry-mirrors`` are
configured, by those first (as dockerd: mirrors only for Docker Hub, pulls only).
Plain HTTP is allowed only for loopback registries and those listed in
``insecure-registries`` (host[:port] or a CIDR); for them HTTPS is tried first
(without certificate verification) and HTTP after a TLS or connection failure,
remembered per host so the probe happens once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from hafen.errors import InvalidConfig

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port] as the URL names it
    scheme: str  # "https" or "http"
    verify_tls: bool = True
    mirror: bool = False

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass
class RegistryConfig:
    """Registry settings from daemon.json."""

    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 5
    chunk_size: int = 0  # >0: uploads larger than this go in PATCH chunks of this size

    def __post_init__(self) -> None:
        for entry in self.insecure_registries:
            if "/" in entry and not _is_cidr(entry):
                raise InvalidConfig(
                    f"insecure-registries: {entry!r} is neither host[:port] nor a CIDR"
                )
        for url in self.registry_mirrors:
            if not url.startswith(("http://", "https://")):
                raise InvalidConfig(
                    f"registry-mirrors: {url!r} must be a URL (https://host[:port])"
                )


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, rest.removeprefix(":")
    name, _, port = host.partition(":")
    return name, port


def is_loopback(host: str) -> bool:
    name, _ = _split_host(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistryHosts:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        self._plain: dict[str, bool] = {}  # host -> learnt to speak plain HTTP

    def allows_plain_http(self, host: str) -> bool:
        if is_loopback(host):
            return True
        name, _ = _split_host(host)
        for entry in self.config.insecure_registries:
            if entry in (host, name):
                return True
            if "/" in entry:
                try:
                    if ipaddress.ip_address(name) in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False

    def endpoints(self, domain: str, *, pull: bool = True) -> list[Endpoint]:
        out: list[Endpoint] = []
        if domain == DOCKER_HUB and pull:
            for url in self.config.registry_mirrors:
                scheme, _, rest = url.partition("://")
                host = rest.rstrip("/").split("/")[0]
                if scheme == "http" and not self.allows_plain_http(host):
                    continue  # plain HTTP only to loopback and insecure-registries
                out.append(Endpoint(host, scheme, verify_tls=scheme == "https", mirror=True))
        host = DOCKER_HUB_API if domain == DOCKER_HUB else domain
        if self.allows_plain_http(host):
            if self._plain.get(host):
                out.append(Endpoint(host, "http"))
            else:
                out.append(Endpoint(host, "https", verify_tls=False))
        else:
            out.append(Endpoint(host, "https"))
        return out

    def fallback(self, endpoint: Endpoint) -> Endpoint | None:
        """The plain-HTTP endpoint to try after ``endpoint`` failed at TLS, if allowed."""
        if endpoint.scheme == "https" and self.allows_plain_http(endpoint.host):
            self._plain[endpoint.host] = True
            return Endpoint(endpoint.host, "http", mirror=endpoint.mirror)
        return None
