"""The API socket's owner and mode, and TCP only with mutual TLS (certs made with openssl)."""

from __future__ import annotations

import grp
import os
import shutil
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HAFEND, Hafend

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="needs openssl to make certificates")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as docker names them."""
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca-key.pem", "-out", "ca.pem", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={who}",
                 "-keyout", f"{who}-key.pem", "-out", f"{who}.csr", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-days", "2", "-extfile", f"{who}.ext",
                 "-out", f"{who}.pem", cwd=d)  # fmt: skip
    client = d / "client-dir"
    client.mkdir()
    shutil.copy(d / "ca.pem", client / "ca.pem")
    shutil.copy(d / "client.pem", client / "cert.pem")
    shutil.copy(d / "client-key.pem", client / "key.pem")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_hafend(
    tmp_path_factory: pytest.TempPathFactory, certs: Path
) -> Iterator[tuple[Hafend, int]]:
    port = free_port()
    daemon = Hafend(
        tmp_path_factory.mktemp("hafend-tls"),
        ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
         "--tlscert", str(certs / "server.pem"), "--tlskey", str(certs / "server-key.pem")],
    )  # fmt: skip
    # the fixture's own -H (the unix socket) stays: it is how readiness is checked
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon, port
    finally:
        daemon.cleanup()


def test_unix_socket_is_0660_root_hafen(hafend: Hafend) -> None:
    st = os.stat(hafend.socket)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    assert st.st_gid == grp.getgrnam("hafen").gr_gid


def test_docker_cli_over_mutual_tls(tls_hafend: tuple[Hafend, int], certs: Path) -> None:
    _daemon, port = tls_hafend
    env = {
        **os.environ,
        "DOCKER_HOST": f"tcp://127.0.0.1:{port}",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(certs / "client-dir"),
        "DOCKER_CONFIG": str(certs / "docker-config"),
    }
    version = subprocess.run([DOCKER, "version", "--format", "{{.Server.APIVersion}}"],
                             env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert version.returncode == 0, version.stderr
    run = subprocess.run([DOCKER, "run", "--rm", "busybox", "echo", "over tls"],
                         env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.stdout == "over tls\n", run.stderr  # attach's hijack works over TLS too


def test_clients_without_a_certificate_are_refused(
    tls_hafend: tuple[Hafend, int], certs: Path
) -> None:
    _daemon, port = tls_hafend
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError, OSError)),
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        if not tls.recv(100):
            raise ConnectionResetError("closed without an answer")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"OK" not in plain.recv(100)


def test_plain_tcp_is_refused_unless_forced(tmp_path: Path) -> None:
    port = free_port()
    r = subprocess.run(
        [HAFEND, "--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e"),
         "-H", f"tcp://127.0.0.1:{port}", "--config-file", str(tmp_path / "none.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "refusing to serve tcp:// without --tlsverify" in r.stderr
    r = subprocess.run(
        [HAFEND, "--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e"),
         "-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--config-file", str(tmp_path / "n.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "--tlsverify needs --tlscacert" in r.stderr
