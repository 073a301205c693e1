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

from tests.conftest import HAFEN, HAFEND, Hafend

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
    # piped stdin ends with the docker CLI's close_notify; the output still comes back
    piped = subprocess.run([DOCKER, "run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo end"],
                           input="in\n", env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert piped.stdout == "in\nend\n", piped.stderr


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


def _hafen(*args: str, env: dict[str, str] | None = None, input: str | None = None
           ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith(("HAFEN_", "DOCKER_"))
           } | {k: v for k, v in (env or {}).items() if k.startswith(("HAFEN_", "DOCKER_"))}  # fmt: skip
    return subprocess.run([HAFEN, *args], env=env, input=input, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_hafen_cli_over_mutual_tls_with_flags(tls_hafend: tuple[Hafend, int], certs: Path) -> None:
    """hafen -H tcp://… --tlsverify --tlscacert --tlscert --tlskey: version, run (attach's
    hijack over TLS), exec."""
    _daemon, port = tls_hafend
    flags = ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
             "--tlscert", str(certs / "client.pem"), "--tlskey", str(certs / "client-key.pem")]  # fmt: skip
    r = _hafen(*flags, "version")
    assert r.returncode == 0 and "Server:" in r.stdout and "1.45" in r.stdout, r.stderr
    r = _hafen(*flags, "run", "--rm", "busybox", "echo", "hafen over tls")
    assert r.stdout == "hafen over tls\n", r.stderr
    cid = _hafen(*flags, "run", "-d", "busybox", "sleep", "30").stdout.strip()
    try:
        r = _hafen(*flags, "exec", cid, "sh", "-c", "echo in; exit 4")
        assert (r.returncode, r.stdout) == (4, "in\n"), r.stderr
    finally:
        _hafen(*flags, "rm", "-f", cid)


def test_hafen_cli_over_mutual_tls_from_the_environment(
    tls_hafend: tuple[Hafend, int], certs: Path
) -> None:
    """DOCKER_TLS_VERIFY + DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) as the docker CLI
    reads them; stdin's end (a close_notify) reaches the container, its output still
    comes back."""
    _daemon, port = tls_hafend
    env = {"HAFEN_HOST": f"tcp://127.0.0.1:{port}", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": str(certs / "client-dir")}  # fmt: skip
    r = _hafen("run", "--rm", "busybox", "echo", "from env", env=env)
    assert r.stdout == "from env\n", r.stderr
    r = _hafen("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done", env=env,
               input="piped\n")  # fmt: skip
    assert r.stdout == "piped\ndone\n", r.stderr
    r = _hafen("ps", "-a", "--format", "{{.ID}}", env=env)
    assert r.returncode == 0, r.stderr


def test_hafen_cli_tls_failures_are_clear(
    tls_hafend: tuple[Hafend, int], certs: Path, tmp_path: Path
) -> None:
    _daemon, port = tls_hafend
    host = ["-H", f"tcp://127.0.0.1:{port}"]
    # no client certificate: the daemon refuses the handshake
    r = _hafen(*host, "--tlsverify", "--tlscacert", str(certs / "ca.pem"), "ps",
               env={"DOCKER_CERT_PATH": str(tmp_path)})  # fmt: skip
    assert r.returncode != 0 and r.stdout == ""
    assert "client certificate" in r.stderr or "certificate required" in r.stderr, r.stderr
    # a daemon certificate from another CA is not trusted
    other = tmp_path / "other-ca.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=x",
             "-keyout", "other-key.pem", "-out", str(other), cwd=tmp_path)  # fmt: skip
    r = _hafen(*host, "--tlsverify", "--tlscacert", str(other), "--tlscert",
               str(certs / "client.pem"), "--tlskey", str(certs / "client-key.pem"), "ps")  # fmt: skip
    assert r.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in r.stderr
    # a file that is not there is named
    r = _hafen(*host, "--tlsverify", "--tlscacert", str(tmp_path / "nope.pem"), "ps")
    assert r.returncode != 0 and "nope.pem" in r.stderr
    assert "Error response from daemon" not in r.stderr
    # plain http to the TLS port gets nothing
    r = _hafen(*host, "ps")
    assert r.returncode != 0
