"""Image references: Docker's normalization, familiar names and refused references."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hafen.errors import InvalidReference
from hafen.images.reference import (
    Reference,
    looks_like_image_id,
    normalize_name,
    parse_reference,
)

SHA = "sha256:" + "a" * 64
SHA512 = "sha512:" + "b" * 128


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("busybox", "docker.io", "library/busybox", "latest", None),
        ("library/busybox", "docker.io", "library/busybox", "latest", None),
        ("docker.io/busybox", "docker.io", "library/busybox", "latest", None),
        ("user/app:1", "docker.io", "user/app", "1", None),
        ("user/team/app", "docker.io", "user/team/app", "latest", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
        (f"example.com/x@{SHA}", "example.com", "x", None, SHA),
        (f"busybox:1.36@{SHA}", "docker.io", "library/busybox", "1.36", SHA),
        (f"ghcr.io/o/r@{SHA512}", "ghcr.io", "o/r", None, SHA512),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        ("[fe80::1]/app:v2", "[fe80::1]", "app", "v2", None),
        ("index.docker.io/library/x", "docker.io", "library/x", "latest", None),
        ("registry-1.docker.io/user/x:2", "docker.io", "user/x", "2", None),
        ("Registry.Example/app", "Registry.Example", "app", "latest", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("ab_c__d-e---f/g.h", "docker.io", "ab_c__d-e---f/g.h", "latest", None),
        (
            "my-reg.example.com:443/x/y:Tag_1.0-rc",
            "my-reg.example.com:443",
            "x/y",
            "Tag_1.0-rc",
            None,
        ),
    ],
)
def test_parse_reference_normalizes_like_docker(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.repository_path == path


def test_first_component_with_a_dot_is_a_domain() -> None:
    ref = parse_reference("a.b-c/d__e.f---g")
    assert (ref.domain, ref.path) == ("a.b-c", "d__e.f---g")


def test_str_is_the_fully_normalized_reference() -> None:
    assert str(parse_reference("busybox")) == "docker.io/library/busybox:latest"
    assert str(parse_reference(f"busybox:1@{SHA}")) == f"docker.io/library/busybox:1@{SHA}"
    assert str(parse_reference(f"busybox@{SHA}")) == f"docker.io/library/busybox@{SHA}"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("busybox:1", "docker.io/library/busybox"),
        ("user/app", "docker.io/user/app"),
        ("localhost:5000/app:t", "localhost:5000/app"),
    ],
)
def test_name_is_domain_and_path(text: str, name: str) -> None:
    assert parse_reference(text).name == name


def test_default_tag_is_added_only_when_asked_and_neither_tag_nor_digest() -> None:
    assert parse_reference("busybox", default_tag=False).tag is None
    assert parse_reference("busybox:1", default_tag=False).tag == "1"
    assert parse_reference(f"busybox@{SHA}").tag is None
    assert parse_reference("busybox").tag == "latest"


@pytest.mark.parametrize(
    ("text", "familiar_name", "familiar"),
    [
        ("busybox", "busybox", "busybox:latest"),
        ("docker.io/library/busybox:1.36", "busybox", "busybox:1.36"),
        (f"busybox@{SHA}", "busybox", f"busybox@{SHA}"),
        (f"busybox:1@{SHA}", "busybox", f"busybox:1@{SHA}"),
        ("user/app:1", "user/app", "user/app:1"),
        ("index.docker.io/user/app", "user/app", "user/app:latest"),
        ("library/a/b", "library/a/b", "library/a/b:latest"),
        ("localhost:5000/app", "localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:t", "localhost/app", "localhost/app:t"),
        ("[::1]:5000/app", "[::1]:5000/app", "[::1]:5000/app:latest"),
        ("quay.io/o/r:v", "quay.io/o/r", "quay.io/o/r:v"),
        ("docker.io/localhost/app", "docker.io/localhost/app", "docker.io/localhost/app:latest"),
        ("docker.io/foo.com/app", "docker.io/foo.com/app", "docker.io/foo.com/app:latest"),
    ],
)
def test_familiar_form_is_short_and_parses_back_to_the_same_reference(
    text: str, familiar_name: str, familiar: str
) -> None:
    ref = parse_reference(text)
    assert ref.familiar_name == familiar_name
    assert ref.familiar() == familiar
    assert parse_reference(ref.familiar()) == ref
    assert parse_reference(str(ref)) == ref


def test_with_tag_drops_the_digest_and_with_digest_keeps_the_tag() -> None:
    ref = parse_reference(f"busybox:1@{SHA}")
    assert ref.with_tag("2") == Reference("docker.io", "library/busybox", "2", None)
    pinned = parse_reference("busybox:1").with_digest(SHA)
    assert (pinned.tag, pinned.digest) == ("1", SHA)


@pytest.mark.parametrize(
    ("call", "part"),
    [
        (lambda: parse_reference("busybox").with_tag("-bad"), "tag"),
        (lambda: parse_reference("busybox").with_digest("sha256:abc"), "digest"),
        (lambda: Reference("docker.io", "Library/busybox"), "lowercase"),
        (lambda: Reference("bad_domain", "app"), "domain"),
        (lambda: Reference("docker.io", ""), "no path"),
    ],
)
def test_every_reference_is_valid_however_it_is_made(call: Callable[[], object], part: str) -> None:
    with pytest.raises(InvalidReference, match=part):
        call()


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("Busybox", 'repository name "Busybox" must be lowercase'),
        ("user/App:1", 'repository name "user/App" must be lowercase'),
        ("", "empty reference"),
        (":tag", "repository name is empty"),
        (f"@{SHA}", "repository name is empty"),
        ("busybox:", "tag is empty"),
        ("busybox:bad!tag", 'tag "bad!tag"'),
        ("busybox:.hidden", 'tag ".hidden"'),
        ("busybox:-dash", 'tag "-dash"'),
        ("busybox:t\u00e4g", 'tag "t\u00e4g"'),
        ("busybox:" + "t" * 129, "longer than 128 characters"),
        ("busybox@sha256:abc", 'digest "sha256:abc" must have 64 lowercase hex digits'),
        ("busybox@sha256:" + "A" * 64, "must have 64 lowercase hex digits"),
        ("busybox@sha256:" + "a" * 65, "must have 64 lowercase hex digits"),
        ("busybox@sha256", 'digest "sha256" is not of the form algorithm:hex'),
        ("busybox@", 'digest "" is not of the form'),
        ("busybox@md5:" + "a" * 32, 'unsupported algorithm "md5"'),
        ("busybox@Sha256:" + "a" * 64, 'invalid algorithm "Sha256"'),
        (f"busybox@{SHA}@{SHA}", "digest"),
        ("a" * 64, "64-byte hexadecimal"),
        ("a//b", 'repository name "a//b" has an empty path component'),
        ("busybox/", 'repository name "busybox/" has an empty path component'),
        ("/busybox", "empty path component"),
        ("example.com/", 'repository name "example.com/" has no path'),
        ("a_-b", 'invalid path component "a_-b"'),
        ("a___b", 'invalid path component "a___b"'),
        ("-a", 'invalid path component "-a"'),
        ("a.", 'invalid path component "a."'),
        ("busy box", 'invalid path component "busy box"'),
        ("busybox\n", 'invalid path component "busybox\n"'),
        ("exa_mple.com/app", 'domain "exa_mple.com"'),
        ("-example.com/app", 'domain "-example.com"'),
        ("example.com:port/app", 'domain "example.com:port"'),
        ("example.com:/app", 'domain "example.com:"'),
        ("[::1/app", 'domain "[::1"'),
        ("x/" + "a" * 250, "longer than 255 characters"),
        ("a" * 250, "longer than 255 characters"),
    ],
)
def test_invalid_reference_names_the_wrong_part(text: str, part: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert str(info.value).startswith("invalid reference format: ")
    assert part in str(info.value)


def test_name_of_exactly_255_characters_is_allowed() -> None:
    path = "a" * (255 - len("example.com/"))
    assert len(parse_reference(f"example.com/{path}").name) == 255


def test_normalize_name_drops_tag_and_digest() -> None:
    assert normalize_name("busybox") == "docker.io/library/busybox"
    assert normalize_name(f"user/app:1@{SHA}") == "docker.io/user/app"
    assert normalize_name("localhost:5000/app:t") == "localhost:5000/app"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", True),
        ("0123abcdef", True),
        ("a" * 64, True),
        ("sha256:" + "f" * 12, True),
        (SHA, True),
        ("a" * 65, False),
        ("sha256:", False),
        ("ABC", False),
        ("busybox", False),
        ("sha512:abc", False),
        ("", False),
    ],
)
def test_looks_like_image_id_accepts_hex_prefixes(text: str, expected: bool) -> None:
    assert looks_like_image_id(text) is expected
