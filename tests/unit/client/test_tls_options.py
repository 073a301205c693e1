"""How the CLI's TLS flags and the docker environment variables pick the TLS files."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.client._tls import tls_options
from hafen.errors import InvalidArgument


def test_no_flags_and_no_environment_is_plain() -> None:
    assert tls_options(env={}) is None


def test_docker_cert_path_supplies_default_files(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    opts = tls_options(env={"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
    assert opts is not None and opts.verify
    assert (opts.ca, opts.cert, opts.key) == tuple(
        str(tmp_path / n) for n in ("ca.pem", "cert.pem", "key.pem")
    )
    # HAFEN_ names win over DOCKER_ ones; missing default files are left out
    other = tmp_path / "other"
    other.mkdir()
    opts = tls_options(
        tls=True, env={"HAFEN_CERT_PATH": str(other), "DOCKER_CERT_PATH": str(tmp_path)}
    )
    assert opts is not None and not opts.verify and opts.ca is None and opts.cert is None


def test_named_files_must_exist_and_verify_needs_a_ca(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"nope\.pem"):
        tls_options(verify=True, ca=str(tmp_path / "nope.pem"), env={})
    opts = tls_options(verify=True, env={"DOCKER_CERT_PATH": str(tmp_path)})
    assert opts is not None
    with pytest.raises(InvalidArgument, match="needs a CA"):
        opts.context()
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(InvalidArgument, match="could not read CA certificate"):
        tls_options(verify=True, ca=str(tmp_path / "bad.pem"), env={}).context()  # type: ignore[union-attr]
