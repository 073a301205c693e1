"""`hafen run` end to end: CLI → API → daemon → overlay snapshot → shim → runtime → process."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

from tests.conftest import HAFEN, Hafend


def test_run_prints_output_and_returns_exit_status_zero(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "busybox", "echo", "hello from hafen")
    assert result.stdout == "hello from hafen\n"


def test_run_returns_the_container_exit_code(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "busybox", "sh", "-c", "exit 42", check=False)
    assert result.returncode == 42


def test_run_separates_stdout_and_stderr(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_sets_env_workdir_and_user(hafend: Hafend) -> None:
    result = hafend.cli(
        "run", "--rm", "-e", "GREETING=moin", "-w", "/tmp/work", "-u", "nobody",
        "busybox", "sh", "-c", 'echo "$GREETING $(pwd) $(id -u):$(id -g) $HOME"',
    )  # fmt: skip
    assert result.stdout == "moin /tmp/work 65534:65534 /home\n"


def test_run_keeps_image_path_and_sets_hostname(hafend: Hafend) -> None:
    result = hafend.cli(
        "run", "--rm", "--hostname", "kiel", "busybox", "sh", "-c", "echo $PATH; hostname"
    )
    path, hostname = result.stdout.splitlines()
    assert "/bin" in path.split(":")
    assert hostname == "kiel"


def test_container_runs_as_pid_one_in_its_own_namespaces(hafend: Hafend) -> None:
    result = hafend.cli(
        "run", "--rm", "busybox", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"
    )
    pid, count = result.stdout.split()
    assert pid == "1"
    assert int(count) <= 3  # sh, ls, grep — never the host's processes


def test_entrypoint_override_resets_the_image_cmd(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "--entrypoint", "echo", "busybox", "a", "b")
    assert result.stdout == "a b\n"


def test_missing_executable_exits_127_with_a_clear_message(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "busybox", "no-such-binary", check=False)
    assert result.returncode == 127
    assert "no-such-binary" in result.stderr


def test_unknown_image_is_a_daemon_error(hafend: Hafend) -> None:
    result = hafend.cli("run", "--rm", "no-such-image-xyz", "true", check=False)
    assert result.returncode == 125
    assert "no-such-image-xyz" in result.stderr


def test_runtime_flag_picks_the_oci_runtime(hafend: Hafend) -> None:
    out = hafend.cli("run", "--rm", "--runtime", "runc", "busybox", "echo", "under runc")
    assert out.stdout == "under runc\n"
    cid = hafend.cli("create", "--runtime", "runc", "busybox", "true").stdout.strip()
    try:
        assert hafend.cli("inspect", "-f", "{{.HostConfig.Runtime}}", cid).stdout.strip() == "runc"
    finally:
        hafend.cli("rm", cid)
    before = hafend.cli("ps", "-aq").stdout
    bad = hafend.cli("run", "--rm", "--runtime", "nope", "busybox", "true", check=False)
    assert bad.returncode == 125 and "unknown runtime 'nope'" in bad.stderr
    assert hafend.cli("ps", "-aq").stdout == before  # refused at create: nothing left


def test_rm_flag_removes_the_container_after_exit(hafend: Hafend) -> None:
    hafend.cli("run", "--rm", "--name", "ephemeral", "busybox", "true")
    assert "ephemeral" not in hafend.cli("ps", "-a").stdout


def test_detached_container_logs_both_streams(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "busybox", "sh", "-c", "echo one; echo two >&2; echo three"
    ).stdout.strip()
    assert len(cid) == 64
    assert hafend.cli("wait", cid).stdout.strip() == "0"
    logs = hafend.cli("logs", cid)
    assert logs.stdout == "one\nthree\n"
    assert logs.stderr == "two\n"
    hafend.cli("rm", cid)


def test_json_log_is_in_dockers_format(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "busybox", "sh", "-c", "echo line1; echo line2 >&2"
    ).stdout.strip()
    hafend.cli("wait", cid)
    log_path = hafend.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip()
    with open(log_path) as f:
        records = [json.loads(line) for line in f]
    assert [(r["log"], r["stream"]) for r in records] == [
        ("line1\n", "stdout"),
        ("line2\n", "stderr"),
    ]
    assert all(r["time"].endswith("Z") and "T" in r["time"] for r in records)
    hafend.cli("rm", cid)


def test_logs_follow_streams_until_exit(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "busybox", "sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"
    ).stdout.strip()
    follow = hafend.cli("logs", "-f", cid, timeout=30)
    assert follow.stdout == "tick 1\ntick 2\ntick 3\n"
    hafend.cli("rm", cid)


def test_stop_kill_and_rm_force(hafend: Hafend) -> None:
    cid = hafend.cli("run", "-d", "busybox", "sleep", "1000").stdout.strip()
    assert hafend.cli("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    started = time.monotonic()
    hafend.cli("stop", "-t", "1", cid)  # sleep as PID 1 ignores SIGTERM: killed after 1 s
    assert time.monotonic() - started < 8
    state = json.loads(hafend.cli("inspect", cid).stdout)[0]["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137
    hafend.cli("start", cid)
    hafend.cli("kill", cid)
    assert hafend.cli("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    hafend.cli("start", cid)
    hafend.cli("rm", "-f", cid)
    assert hafend.cli("ps", "-aq", "--no-trunc").stdout.find(cid) < 0


def test_rm_of_a_running_container_is_refused(hafend: Hafend) -> None:
    cid = hafend.cli("run", "-d", "busybox", "sleep", "1000").stdout.strip()
    result = hafend.cli("rm", cid, check=False)
    assert result.returncode != 0
    assert "cannot remove a running container" in result.stderr
    hafend.cli("rm", "-f", cid)


def test_ps_lists_running_and_all(hafend: Hafend) -> None:
    running = hafend.cli(
        "run", "-d", "--name", "ps-running", "busybox", "sleep", "1000"
    ).stdout.strip()
    hafend.cli("run", "--name", "ps-exited", "busybox", "true")
    ps = hafend.cli("ps").stdout
    assert "ps-running" in ps and "ps-exited" not in ps
    assert ps.splitlines()[0].split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    ps_all = hafend.cli("ps", "-a").stdout
    assert "ps-exited" in ps_all and "Exited (0)" in ps_all
    assert running[:12] in hafend.cli("ps", "-q").stdout.split()
    hafend.cli("rm", "-f", "ps-running", "ps-exited")


def test_inspect_format_templates(hafend: Hafend) -> None:
    hafend.cli("create", "--name", "inspected", "-e", "A=1", "busybox", "true")
    out = hafend.cli(
        "inspect", "-f", "{{.Name}} {{.State.Status}} {{json .Config.Cmd}}", "inspected"
    ).stdout
    assert out.strip() == '/inspected created ["true"]'
    hafend.cli("rm", "inspected")


def test_interactive_tty_shell(hafend: Hafend) -> None:
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [HAFEN, "-H", hafend.host, "run", "-it", "--rm", "busybox", "sh"],
        stdin=slave, stdout=slave, stderr=slave, env=hafend.env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while marker not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break
        assert marker in seen, seen

    try:
        read_until(b"# ")  # busybox sh prompt: a real terminal is attached
        os.write(master, b"tty; echo $((6*7))\n")
        read_until(b"42")
        assert b"/dev/pts/0" in seen
        os.write(master, b"exit 3\n")
        assert proc.wait(timeout=20) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


def test_interactive_stdin_without_tty(hafend: Hafend) -> None:
    result = hafend.cli(
        "run", "-i", "--rm", "busybox", "sh", "-c", "tr a-z A-Z", input="hafen ahoy\n"
    )
    assert result.stdout == "HAFEN AHOY\n"


def test_images_tag_and_rmi(hafend: Hafend) -> None:
    images = hafend.cli("images").stdout
    assert images.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert "busybox" in images
    hafend.cli("tag", "busybox", "mybox:v1")
    assert "mybox" in hafend.cli("images").stdout
    assert hafend.cli("run", "--rm", "mybox:v1", "echo", "tagged").stdout == "tagged\n"
    out = hafend.cli("rmi", "mybox:v1").stdout
    assert "Untagged: mybox:v1" in out
    assert "mybox" not in hafend.cli("images").stdout


def test_bootstrap_again_is_a_no_op(hafend: Hafend) -> None:
    first = hafend.cli("images", "-q", "--no-trunc", "busybox").stdout.strip()
    again = hafend.cli("image", "bootstrap", "busybox").stdout
    assert first in again
    assert hafend.cli("images", "-q", "--no-trunc", "busybox").stdout.strip() == first
