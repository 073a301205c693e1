"""Real registries for the tests: Debian's ``docker-registry`` (distribution 2.8) on
127.0.0.1 at a random port with its own storage, open, behind htpasswd Basic auth, or
behind Docker's token auth with a token server of ours (JWTs signed RS256 with a
generated key; the registry trusts its self-signed certificate).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"
USER, PASSWORD = "hafen", "s3cret-pass"
SERVICE, ISSUER = "hafen-test-registry", "hafen-test-token-issuer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Docker's token protocol: GET /token?service=&scope= with optional Basic auth."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.key = root / "token.key"
        self.cert = root / "token.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
             "-out", str(self.cert), "-days", "2", "-subj", "/CN=hafen-test-token"],
            check=True, capture_output=True,
        )  # fmt: skip
        der = subprocess.run(
            ["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()
        self.requests: list[dict[str, object]] = []
        self.lifetime = 300
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                user = ""
                if auth.startswith("Basic "):
                    name, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if (name, pw) != (USER, PASSWORD):
                        self.send_response(401)
                        self.end_headers()
                        self.wfile.write(b'{"details":"incorrect username or password"}')
                        return
                    user = name
                scopes = query.get("scope", [])
                server.requests.append({"user": user, "scopes": scopes})
                token = server.sign(user, scopes)
                body = json.dumps({"token": token, "expires_in": server.lifetime}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def sign(self, user: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            for part in scope.split(" "):
                kind, _, rest = part.partition(":")
                name, _, actions = rest.rpartition(":")
                # Anonymous users may pull only; the test user may do anything.
                allowed = [a for a in actions.split(",") if user or a == "pull"]
                access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        header = {"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]}
        claims = {"iss": ISSUER, "sub": user, "aud": SERVICE, "exp": now + self.lifetime,
                  "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(), "access": access}  # fmt: skip
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(), check=True, capture_output=True,
        ).stdout  # fmt: skip
        return signing_input + "." + _b64(signature)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class DockerRegistry:
    def __init__(self, root: Path, auth: str | None = None, tls: bool = False) -> None:
        self.root = root
        self.auth = auth
        self.tls = tls
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token_server: TokenServer | None = None

    def start(self) -> DockerRegistry:
        self.root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.auth == "htpasswd":
            htpasswd = self.root / "htpasswd"
            out = subprocess.run(
                [HTPASSWD, "-Bbn", USER, PASSWORD], check=True, capture_output=True, text=True
            ).stdout
            htpasswd.write_text(out)
            auth = f"auth:\n  htpasswd:\n    realm: hafen-test\n    path: {htpasswd}\n"
        elif self.auth == "token":
            self.token_server = TokenServer(self.root)
            auth = (
                f"auth:\n  token:\n    realm: {self.token_server.realm}\n    service: {SERVICE}\n"
                f"    issuer: {ISSUER}\n    rootcertbundle: {self.token_server.cert}\n"
            )
        tls = ""
        if self.tls:  # a self-signed certificate: hafen speaks TLS to loopback unverified
            key, cert = self.root / "tls.key", self.root / "tls.crt"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                 "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                check=True, capture_output=True,
            )  # fmt: skip
            tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n{tls}{auth}"
        )
        with open(self.root / "registry.log", "ab") as log:
            self.proc = subprocess.Popen(
                [REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "registry.log").read_text())
            try:
                if self.tls:
                    import ssl

                    context = ssl._create_unverified_context()
                    urllib.request.urlopen(f"https://{self.host}/v2/", timeout=2, context=context)
                else:
                    urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # 401: up, and wants auth
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"docker-registry did not start:\n{(self.root / 'registry.log').read_text()}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.token_server:
            self.token_server.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(f"http://{self.host}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)
