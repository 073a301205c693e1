"""Image references: parsing, validation and Docker's normalization of image names.

This module owns the grammar of an image reference as Docker and distribution
define it::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component { "/" path-component }
    domain     := host [ ":" port ]
    host       := domain-component { "." domain-component } | "[" ipv6 "]"
    path-comp  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex

and the normalization Docker applies to what a user types: ``busybox`` is
``docker.io/library/busybox:latest``. The first component of a name is a registry
domain only when it contains ``.`` or ``:``, is ``localhost``, or has an uppercase
letter; otherwise the image lives on Docker Hub. ``index.docker.io`` and
``registry-1.docker.io`` are spelled ``docker.io``.

A :class:`Reference` always holds a valid, normalized reference; every way of
making one (:func:`parse_reference`, the constructor, :meth:`Reference.with_tag`,
:meth:`Reference.with_digest`) refuses anything else with
:class:`~hafen.errors.InvalidReference`, whose message names the part that is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from hafen.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
"""The registry of names that carry no domain (Docker Hub)."""

LEGACY_DOMAINS = frozenset({"index.docker.io", "registry-1.docker.io"})
"""Other spellings of Docker Hub's domain, normalized to :data:`DEFAULT_DOMAIN`."""

OFFICIAL_REPO_PREFIX = "library/"
"""The namespace of Docker Hub's official images (``busybox`` is ``library/busybox``)."""

DEFAULT_TAG = "latest"

NAME_TOTAL_LENGTH_MAX = 255
"""The longest a normalized name (``domain/path``) may be."""

TAG_LENGTH_MAX = 128

# Known digest algorithms and the length of their lowercase hex encoding.
DIGEST_HEX_LENGTHS: dict[str, int] = {"sha256": 64, "sha384": 96, "sha512": 128}

# Go's regexp classes are ASCII-only; so are these (no \w, which is Unicode in Python).
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6_ADDRESS = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6_ADDRESS})(?::[0-9]+)?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_DIGEST_ALGORITHM = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_HEX_64 = re.compile(r"[a-f0-9]{64}")
_IMAGE_ID = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")

_INVALID = "invalid reference format"


@dataclass(frozen=True)
class Reference:
    """A normalized image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        _check_domain(self.domain)
        _check_path(self.path, shown=self.path)
        _check_name_length(f"{self.domain}/{self.path}")
        if self.tag is not None:
            _check_tag(self.tag)
        if self.digest is not None:
            _check_digest(self.digest)

    @property
    def name(self) -> str:
        """The full repository name, e.g. ``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def repository_path(self) -> str:
        """The repository's path on its registry, e.g. ``library/busybox``."""
        return self.path

    @property
    def familiar_name(self) -> str:
        """The short name Docker shows: ``busybox``, ``user/app``, ``localhost:5000/app``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            official = path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in official:
                path = official
        # Keep the domain when dropping it would make the first component read as one
        # (docker.io/foo.com/app), so that the familiar name parses back to this name.
        first, slash, _ = path.partition("/")
        if slash and _is_domain(first):
            return self.name
        return path

    def familiar(self) -> str:
        """The familiar name with its tag and digest: ``busybox:latest``, ``app@sha256:…``."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This repository at ``tag``; any digest is dropped."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """This reference pinned to ``digest``; the tag is kept."""
        return replace(self, digest=digest)

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    def __str__(self) -> str:
        return self.name + self._suffix()


def parse_reference(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalize an image reference the way Docker does.

    ``busybox`` becomes ``docker.io/library/busybox:latest``; the tag ``latest`` is
    added only when ``default_tag`` is true and the reference has neither a tag nor
    a digest. Raises :class:`InvalidReference` naming the part that is wrong.
    """
    if not text:
        raise InvalidReference(f"{_INVALID}: empty reference")

    remainder, at, digest = text.partition("@")
    if at:
        _check_digest(digest)

    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon != -1 and "/" not in remainder[colon + 1 :]:
        name, tag = remainder[:colon], remainder[colon + 1 :]
        _check_tag(tag)

    if not name:
        raise InvalidReference(f"{_INVALID}: repository name is empty in {text!r}")
    if _HEX_64.fullmatch(name):
        raise InvalidReference(
            f'{_INVALID}: repository name "{name}" cannot be a 64-byte hexadecimal string'
        )

    domain, path = _split_domain(name)
    if path.lower() != path:
        raise InvalidReference(f'{_INVALID}: repository name "{name}" must be lowercase')
    _check_domain(domain)
    _check_path(path, shown=name)
    _check_name_length(f"{domain}/{path}")

    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)


def normalize_name(text: str) -> str:
    """The normalized repository name of a reference, without tag or digest.

    ``busybox:1`` gives ``docker.io/library/busybox``; for matching images by name.
    """
    return parse_reference(text, default_tag=False).name


def looks_like_image_id(text: str) -> bool:
    """Whether ``text`` could be an image ID or a prefix of one.

    True for 1 to 64 lowercase hex digits, bare or after ``sha256:``. Such a string
    may be a repository name as well (``cafe``); the caller decides which to try first.
    """
    return _IMAGE_ID.fullmatch(text) is not None


def _is_domain(component: str) -> bool:
    """Docker's rule for whether a name's first component is a registry domain."""
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, path), applying Docker Hub's defaults."""
    first, slash, rest = name.partition("/")
    if slash and _is_domain(first):
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain in LEGACY_DOMAINS:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def _check_domain(domain: str) -> None:
    if not _DOMAIN.fullmatch(domain):
        raise InvalidReference(f'{_INVALID}: domain "{domain}" is not a valid registry host[:port]')


def _check_path(path: str, shown: str) -> None:
    if not path:
        raise InvalidReference(f'{_INVALID}: repository name "{shown}" has no path')
    for component in path.split("/"):
        if not component:
            raise InvalidReference(
                f'{_INVALID}: repository name "{shown}" has an empty path component'
            )
        if component.lower() != component:
            raise InvalidReference(f'{_INVALID}: repository name "{shown}" must be lowercase')
        if not _PATH_COMPONENT.fullmatch(component):
            raise InvalidReference(
                f'{_INVALID}: repository name "{shown}" has an invalid path component '
                f'"{component}": components are lowercase letters and digits, '
                'separated by ".", "_", "__" or dashes'
            )


def _check_name_length(name: str) -> None:
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f'{_INVALID}: repository name "{name}" is longer than '
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )


def _check_tag(tag: str) -> None:
    if not tag:
        raise InvalidReference(f"{_INVALID}: tag is empty")
    if len(tag) > TAG_LENGTH_MAX:
        raise InvalidReference(
            f'{_INVALID}: tag "{tag}" is longer than {TAG_LENGTH_MAX} characters'
        )
    if not _TAG.fullmatch(tag):
        raise InvalidReference(
            f'{_INVALID}: tag "{tag}" may contain only letters, digits, "_", "." and "-", '
            'and may not start with "." or "-"'
        )


def _check_digest(digest: str) -> None:
    algorithm, colon, encoded = digest.partition(":")
    if not colon or not algorithm or not encoded:
        raise InvalidReference(f'{_INVALID}: digest "{digest}" is not of the form algorithm:hex')
    if not _DIGEST_ALGORITHM.fullmatch(algorithm):
        raise InvalidReference(
            f'{_INVALID}: digest "{digest}" has an invalid algorithm "{algorithm}"'
        )
    length = DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        raise InvalidReference(
            f'{_INVALID}: digest "{digest}" uses an unsupported algorithm "{algorithm}"'
        )
    if len(encoded) != length or not all(c in "0123456789abcdef" for c in encoded):
        raise InvalidReference(
            f'{_INVALID}: digest "{digest}" must have {length} lowercase hex digits '
            f"after {algorithm}:"
        )
