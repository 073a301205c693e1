"""The real ``hafen`` entry point against a fake daemon: request flow, output, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.client.hafen_fake_daemon import FakeDaemon, Reply, Request

from hafen.client import STDERR, STDOUT, encode_frame

HAFEN = str(Path(sys.executable).parent / "hafen")
CID = "4c01db0b339c" + "0" * 52


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    root = tempfile.mkdtemp(prefix="hfl", dir="/tmp")
    try:
        with FakeDaemon(f"{root}/d.sock") as daemon:
            yield daemon
    finally:
        shutil.rmtree(root, ignore_errors=True)


def hafen(
    fake: FakeDaemon, *args: str, stdin: bytes = b"", timeout: float = 20
) -> tuple[int, str, str]:
    env = dict(os.environ, HAFEN_HOST=fake.host)
    proc = subprocess.run(
        [HAFEN, *args], input=stdin, capture_output=True, env=env, timeout=timeout, check=False
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


class Container:
    """Fake daemon behaviour for one container's create/attach/wait/start."""

    def __init__(
        self,
        fake: FakeDaemon,
        exit_code: int = 0,
        output: list[tuple[int, bytes]] | None = None,
        echo_stdin: bool = False,
        start_error: str | None = None,
        tty: bool = False,
    ) -> None:
        self.started = threading.Event()
        self.exited = threading.Event()
        self.exit_code = exit_code
        self.output = output if output is not None else [(STDOUT, b"hello\n"), (STDERR, b"warn\n")]
        self.echo_stdin = echo_stdin
        self.tty = tty
        fake.route("POST", "/containers/create", Reply(201, {"Id": CID, "Warnings": []}))
        fake.route("POST", r"/containers/[^/]+/attach", self.attach)
        fake.route("POST", r"/containers/[^/]+/wait", self.wait)
        if start_error:
            fake.route("POST", r"/containers/[^/]+/start", Reply(400, {"message": start_error}))
        else:
            fake.route("POST", r"/containers/[^/]+/start", self.start)

    def start(self, _req: Request) -> Reply:
        self.started.set()
        if not self.output and not self.echo_stdin:
            self.exited.set()
        return Reply(204)

    def _frame(self, stream: int, data: bytes) -> bytes:
        return data if self.tty else encode_frame(stream, data)

    def attach(self, req: Request) -> None:
        h = req.handler
        h.wfile.write(b"HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
        h.wfile.flush()
        h.close_connection = True
        if not self.started.wait(10):
            return
        for stream, data in self.output:
            h.wfile.write(self._frame(stream, data))
            h.wfile.flush()
        if self.echo_stdin:
            data = b""
            while chunk := h.connection.recv(4096):
                data += chunk
            h.wfile.write(self._frame(STDOUT, b"got:" + data))
            h.wfile.flush()
        self.exited.set()

    def wait(self, req: Request) -> None:
        h = req.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        self.exited.wait(10)
        body = json.dumps({"StatusCode": self.exit_code, "Error": None}).encode()
        h.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
        h.wfile.flush()
        h.close_connection = True


def test_run_attaches_waits_starts_and_exits_with_the_container_status(fake: FakeDaemon) -> None:
    Container(fake, exit_code=3)
    code, out, err = hafen(fake, "run", "--name", "web", "-e", "A=1", "busybox", "sh", "-c", "x")
    assert (code, out, err) == (3, "hello\n", "warn\n")
    order = [r.path for r in fake.requests if r.path != "/_ping"]
    assert order[:4] == [
        "/containers/create",
        f"/containers/{CID}/attach",
        f"/containers/{CID}/wait",
        f"/containers/{CID}/start",
    ]
    create = fake.find("POST", "/containers/create")[0]
    assert create.query == {"name": "web"}
    assert create.body["Cmd"] == ["sh", "-c", "x"] and create.body["Env"] == ["A=1"]
    assert fake.find("POST", f"/containers/{CID}/wait")[0].query == {"condition": "next-exit"}
    attach = fake.find("POST", f"/containers/{CID}/attach")[0].query
    assert attach["stdin"] == "0" and attach["stdout"] == "1" and attach["stderr"] == "1"


def test_run_rm_waits_for_removal(fake: FakeDaemon) -> None:
    Container(fake)
    code, _out, _err = hafen(fake, "run", "--rm", "busybox")
    assert code == 0
    assert fake.find("POST", f"/containers/{CID}/wait")[0].query == {"condition": "removed"}
    assert fake.find("POST", "/containers/create")[0].body["HostConfig"]["AutoRemove"] is True


def test_run_interactive_forwards_stdin_and_half_closes(fake: FakeDaemon) -> None:
    Container(fake, output=[], echo_stdin=True)
    code, out, _err = hafen(fake, "run", "-i", "busybox", "cat", stdin=b"some input\n")
    assert code == 0
    assert out == "got:some input\n"
    assert fake.find("POST", f"/containers/{CID}/attach")[0].query["stdin"] == "1"


def test_run_with_tty_copies_raw_output(fake: FakeDaemon) -> None:
    Container(fake, output=[(STDOUT, b"raw\r\n")], tty=True)
    code, out, _err = hafen(fake, "run", "-t", "busybox")
    assert code == 0 and out == "raw\r\n"
    assert fake.find("POST", "/containers/create")[0].body["Tty"] is True


def test_run_detached_starts_and_prints_the_full_id(fake: FakeDaemon) -> None:
    Container(fake)
    code, out, _err = hafen(fake, "run", "-d", "busybox", "sleep", "9")
    assert (code, out) == (0, CID + "\n")
    assert not fake.find("POST", f"/containers/{CID}/attach")


def test_run_missing_image_reports_like_docker(fake: FakeDaemon) -> None:
    fake.route("POST", "/containers/create", Reply(404, {"message": "No such image: nope:latest"}))
    code, out, err = hafen(fake, "run", "nope")
    assert code == 125 and out == ""
    assert err == (
        "Unable to find image 'nope:latest' locally\n"
        "hafen: Error response from daemon: No such image: nope:latest.\n"
        "See 'hafen run --help'.\n"
    )


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('exec: "nope": executable file not found in $PATH', 127),
        ("exec /etc/passwd: permission denied", 126),
        ("cgroup setup failed", 125),
    ],
)
def test_run_start_failure_exit_codes(fake: FakeDaemon, message: str, code: int) -> None:
    Container(fake, start_error=message)
    rc, _out, err = hafen(fake, "run", "busybox", "nope")
    assert rc == code
    assert err == f"hafen: Error response from daemon: {message}.\n"


def test_run_bad_flag_value_exits_125(fake: FakeDaemon) -> None:
    code, _out, err = hafen(fake, "run", "-p", "80:http", "busybox")
    assert code == 125
    assert "invalid containerPort: http" in err and "See 'hafen run --help'." in err


def test_unknown_flag_exits_125_with_docker_hint(fake: FakeDaemon) -> None:
    code, _out, err = hafen(fake, "ps", "--bogus")
    assert code == 125
    assert err == "unknown flag: --bogus\nSee 'hafen ps --help'.\n"


def test_missing_image_argument_exits_125(fake: FakeDaemon) -> None:
    code, _out, err = hafen(fake, "run")
    assert code == 125
    assert err == "hafen: 'hafen run' requires at least 1 argument.\nSee 'hafen run --help'.\n"


def test_daemon_not_running_message() -> None:
    env = dict(os.environ, HAFEN_HOST="unix:///nonexistent/x.sock")
    proc = subprocess.run([HAFEN, "ps"], capture_output=True, env=env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "Cannot connect to the hafen daemon at unix:///nonexistent/x.sock. Is the daemon running?\n"
    )


def test_create_prints_the_id(fake: FakeDaemon) -> None:
    Container(fake)
    code, out, _err = hafen(fake, "create", "-l", "a=b", "busybox")
    assert (code, out) == (0, CID + "\n")
    assert fake.find("POST", "/containers/create")[0].body["Labels"] == {"a": "b"}


def test_ps_quiet_filters_and_limit(fake: FakeDaemon) -> None:
    fake.route("GET", "/containers/json", Reply(200, [{"Id": CID, "Names": ["/web"]}]))
    code, out, _err = hafen(fake, "ps", "-q", "-n", "2", "--filter", "status=exited")
    assert (code, out) == (0, "4c01db0b339c\n")
    query = fake.find("GET", "/containers/json")[0].query
    assert query["all"] == "1" and query["limit"] == "2"
    assert json.loads(query["filters"]) == {"status": ["exited"]}


def test_ps_format_template(fake: FakeDaemon) -> None:
    fake.route(
        "GET",
        "/containers/json",
        Reply(200, [{"Id": CID, "Names": ["/web"], "State": "running", "Image": "busybox"}]),
    )
    code, out, _err = hafen(fake, "ps", "--format", "{{.Names}} {{.State}} {{.Image}}")
    assert (code, out) == (0, "web running busybox\n")


def test_images_default_table(fake: FakeDaemon) -> None:
    fake.route(
        "GET",
        "/images/json",
        Reply(
            200,
            [
                {
                    "Id": "sha256:" + "a" * 64,
                    "RepoTags": ["busybox:latest"],
                    "Size": 4_264_000,
                    "Created": 0,
                }
            ],
        ),
    )
    code, out, _err = hafen(fake, "images")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split()[:3] == ["busybox", "latest", "a" * 12]
    assert lines[1].endswith("4.26MB")


def test_inspect_tries_container_then_image_and_reports_misses(fake: FakeDaemon) -> None:
    fake.route("GET", r"/containers/[^/]+/json", Reply(404, {"message": "No such container"}))
    fake.route(
        "GET",
        r"/images/busybox/json",
        Reply(200, {"Id": "sha256:abc", "Config": {"Env": ["PATH=/bin"]}}),
    )
    fake.route("GET", r"/images/nope/json", Reply(404, {"message": "No such image: nope"}))
    code, out, err = hafen(fake, "inspect", "busybox", "nope")
    assert code == 1
    assert json.loads(out) == [{"Id": "sha256:abc", "Config": {"Env": ["PATH=/bin"]}}]
    assert out.startswith('[\n    {\n        "Id"')
    assert err == "Error: No such object: nope\n"
    code, out, _err = hafen(fake, "inspect", "-f", "{{.Id}} {{json .Config.Env}}", "busybox")
    assert (code, out) == (0, 'sha256:abc ["PATH=/bin"]\n')


def test_stop_prints_names_and_collects_errors(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/good/stop", Reply(204))
    fake.route("POST", r"/containers/bad/stop", Reply(404, {"message": "No such container: bad"}))
    code, out, err = hafen(fake, "stop", "-t", "1", "good", "bad")
    assert code == 1 and out == "good\n"
    assert err == "Error response from daemon: No such container: bad\n"
    assert fake.find("POST", "/containers/good/stop")[0].query == {"t": "1"}


def test_top_ends_its_table_with_a_newline_and_passes_ps_flags(fake: FakeDaemon) -> None:
    table = {"Titles": ["PID", "COMMAND"], "Processes": [["7", "sleep"]]}
    fake.route("GET", r"/containers/web/top", Reply(200, table))
    code, out, _err = hafen(fake, "top", "web", "-o", "pid,comm")
    assert (code, out) == (0, "PID   COMMAND\n7     sleep\n")
    assert fake.find("GET", "/containers/web/top")[0].query == {"ps_args": "-o pid,comm"}


def test_prune_asks_as_docker_does_and_a_no_removes_nothing(fake: FakeDaemon) -> None:
    code, out, _err = hafen(fake, "volume", "prune", stdin=b"n\n")
    assert code == 0
    assert out == (
        "WARNING! This will remove all anonymous local volumes not used by at least one "
        "container.\nAre you sure you want to continue? [y/N] "
    )
    assert not fake.find("POST", "/volumes/prune")


def test_docker_s_bool_flag_syntax_is_accepted(fake: FakeDaemon) -> None:
    Container(fake, exit_code=0)
    code, out, _err = hafen(fake, "run", "--rm=false", "--sig-proxy=false", "-i=false", "busybox")
    assert (code, out) == (0, "hello\n")
    body = fake.find("POST", "/containers/create")[0].body
    assert body["HostConfig"]["AutoRemove"] is False and body["OpenStdin"] is False


def test_start_failure_summary(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/x/start", Reply(404, {"message": "No such container: x"}))
    code, _out, err = hafen(fake, "start", "x")
    assert code == 1
    assert err == (
        "Error response from daemon: No such container: x\nError: failed to start containers: x\n"
    )


def test_logs_demuxes_to_stdout_and_stderr(fake: FakeDaemon) -> None:
    fake.route("GET", r"/containers/web/json", Reply(200, {"Id": CID, "Config": {"Tty": False}}))
    body = encode_frame(STDOUT, b"out\n") + encode_frame(STDERR, b"err\n")
    fake.route(
        "GET",
        rf"/containers/{CID}/logs",
        Reply(200, body, {"Content-Type": "application/vnd.docker.multiplexed-stream"}),
    )
    code, out, err = hafen(fake, "logs", "--tail", "10", "web")
    assert (code, out, err) == (0, "out\n", "err\n")
    assert fake.find("GET", f"/containers/{CID}/logs")[0].query["tail"] == "10"


def test_rmi_prints_untagged_and_deleted(fake: FakeDaemon) -> None:
    fake.route(
        "DELETE",
        r"/images/busybox",
        Reply(200, [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:abc"}]),
    )
    code, out, _err = hafen(fake, "rmi", "busybox")
    assert (code, out) == (0, "Untagged: busybox:latest\nDeleted: sha256:abc\n")


def test_tag_splits_repository_and_tag(fake: FakeDaemon) -> None:
    fake.route("POST", r"/images/busybox/tag", Reply(201))
    assert hafen(fake, "tag", "busybox", "localhost:5000/mine:v1")[0] == 0
    assert hafen(fake, "image", "tag", "busybox", "mine")[0] == 0
    queries = [r.query for r in fake.find("POST", "/images/busybox/tag")]
    assert queries == [
        {"repo": "localhost:5000/mine", "tag": "v1"},
        {"repo": "mine", "tag": "latest"},
    ]


def test_image_bootstrap_prints_progress_then_the_id(fake: FakeDaemon) -> None:
    body = b'{"status":"Importing busybox"}\n{"status":"Done","id":"busybox"}\n{"aux":{"ID":"sha256:abc"}}\n'
    fake.route("POST", "/images/bootstrap", Reply(200, body, {"Content-Type": "application/json"}))
    code, out, _err = hafen(fake, "image", "bootstrap", "busybox")
    assert code == 0
    assert out == "Importing busybox\nbusybox: Done\nsha256:abc\n"
    assert fake.find("POST", "/images/bootstrap")[0].query == {
        "image": "busybox",
        "tag": "busybox:latest",
    }


def test_image_bootstrap_stream_error_exits_1(fake: FakeDaemon) -> None:
    body = (
        b'{"error":"no busybox on this host","errorDetail":{"message":"no busybox on this host"}}\n'
    )
    fake.route("POST", "/images/bootstrap", Reply(200, body))
    code, _out, err = hafen(fake, "image", "bootstrap", "busybox", "-t", "bb:1")
    assert code == 1 and err == "no busybox on this host\n"


def test_wait_prints_status_codes(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/[^/]+/wait", Reply(200, {"StatusCode": 7}))
    assert hafen(fake, "wait", "a", "b")[:2] == (0, "7\n7\n")


def test_version_prints_client_and_server(fake: FakeDaemon) -> None:
    fake.route(
        "GET",
        "/version",
        Reply(
            200,
            {
                "Version": "0.1.0",
                "ApiVersion": "1.45",
                "MinAPIVersion": "1.24",
                "Os": "linux",
                "Arch": "amd64",
            },
        ),
    )
    code, out, _err = hafen(fake, "version")
    assert code == 0
    assert "Client:" in out and "Server:" in out
    assert "  API version:      1.45 (minimum version 1.24)" in out
    assert hafen(fake, "version", "--format", "{{.Server.Version}}")[1] == "0.1.0\n"


def test_help_does_not_import_rich_or_verbs() -> None:
    code = (
        "import sys\n"
        "from hafen.cli import main\n"
        "try:\n"
        "    main.main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = [m for m in sys.modules if m.startswith(('rich', 'hafen.cli.commands', 'aiohttp'))]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.decode().splitlines()[-1] == "[]"


def test_run_imports_only_its_own_verbs_module() -> None:
    # `hafen container` lists exec, stats, prune... but `hafen run` loads none of them
    code = (
        "import sys\n"
        "import hafen.cli.commands.container\n"
        "print(sorted(m for m in sys.modules if m.startswith('hafen.cli.commands.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.decode().splitlines()[-1] == "['hafen.cli.commands.container']"


def test_every_lazy_container_subcommand_resolves() -> None:
    from hafen.cli import flags
    from hafen.cli.commands.container import _CONTAINER_LAZY, container_group

    ctx = flags.Context(container_group)
    for name in _CONTAINER_LAZY:
        assert isinstance(container_group.get_command(ctx, name), flags.Command), name
    assert "exec" in container_group.list_commands(ctx)


def test_start_attach_streams_output_and_exits_with_status(fake: FakeDaemon) -> None:
    Container(fake, exit_code=4)
    fake.route(
        "GET",
        r"/containers/web/json",
        Reply(200, {"Id": CID, "Config": {"Tty": False, "OpenStdin": False}, "HostConfig": {}}),
    )
    code, out, err = hafen(fake, "start", "-a", "web")
    assert (code, out, err) == (4, "hello\n", "warn\n")
    assert fake.find("POST", f"/containers/{CID}/wait")[0].query == {"condition": "next-exit"}


def test_container_and_image_group_aliases(fake: FakeDaemon) -> None:
    fake.route("GET", "/containers/json", Reply(200, [{"Id": CID}]))
    fake.route(
        "GET", "/images/json", Reply(200, [{"Id": "sha256:" + "c" * 64, "RepoTags": ["a:b"]}])
    )
    assert hafen(fake, "container", "ls", "-aq")[:2] == (0, "4c01db0b339c\n")
    assert hafen(fake, "image", "ls", "-q")[:2] == (0, "c" * 12 + "\n")
    assert fake.find("GET", "/containers/json")[0].query == {"all": "1"}


def test_global_host_flag_overrides_the_environment(fake: FakeDaemon) -> None:
    fake.route("GET", "/containers/json", Reply(200, []))
    env = dict(os.environ, HAFEN_HOST="unix:///nonexistent/x.sock")
    proc = subprocess.run(
        [HAFEN, "-H", fake.host, "ps", "--format", "{{.ID}}"],
        capture_output=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout == b""
