"""create → start → state → kill → delete, the console socket, and clean failures."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import time
from pathlib import Path

import pytest

from hafen.errors import Conflict, ContainerNotFound
from hafen.runtime.cli_runtime import OCIRuntimeCLI
from hafen.runtime.console import recv_console

from .conftest import (
    Runtime,
    base_config,
    bundle_config,
    cgroup_dirs,
    make_busybox_bundle,
    run_in,
)


def _wait_status(rt: Runtime, cid: str, want: str, timeout: float = 20) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == want or time.monotonic() > deadline:
            return st
        time.sleep(0.02)


def test_lifecycle_and_state_json(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path, ["sh", "-c", "echo started; exec sleep 60"], annotations={"org.test": "yes"}
    )
    cid = "life"
    pid_file = tmp_path / "init.pid"
    out_path = tmp_path / "stdout.txt"
    with open(out_path, "w") as out:
        any_rt("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid,
               stdout=out, stderr=None, capture_output=False, check=True)  # fmt: skip
    st = any_rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    assert st["bundle"] == str(bundle)
    assert st["annotations"] == {"org.test": "yes"}
    assert st["ociVersion"]
    assert int(pid_file.read_text()) == st["pid"] > 0
    assert os.path.exists(f"/proc/{st['pid']}")
    assert out_path.read_text() == ""  # blocked before exec

    any_rt("start", cid, check=True)
    assert _wait_status(any_rt, cid, "running")["status"] == "running"
    deadline = time.monotonic() + 10
    while "started" not in out_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert out_path.read_text() == "started\n"
    assert any_rt("start", cid).returncode != 0  # already running

    refused = any_rt("delete", cid)
    assert refused.returncode != 0  # running and no --force

    any_rt("kill", cid, "SIGKILL", check=True)  # pid 1 without a handler ignores TERM
    st = _wait_status(any_rt, cid, "stopped")
    assert st["status"] == "stopped"
    assert any_rt("kill", cid, "TERM").returncode != 0  # not running any more

    any_rt("delete", cid, check=True)
    gone = any_rt("state", cid)
    assert gone.returncode != 0
    assert "does not exist" in gone.stderr
    assert not any(d.exists() for d in cgroup_dirs(bundle_config(bundle)["linux"]["cgroupsPath"]))


@pytest.mark.parametrize("hooked", [False, True], ids=["plain", "with-hook"])
def test_created_init_is_in_every_cgroup_of_the_container(
    any_rt: Runtime, tmp_path: Path, hooked: bool
) -> None:
    # joined before create returns, with and without create hooks
    extra = {"hooks": {"createRuntime": [{"path": "/bin/true"}]}} if hooked else {}
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", "cat /proc/self/cgroup"], **extra)
    any_rt("create", "--bundle", str(bundle), "cg", check=True)
    pid = any_rt.state("cg")["pid"]
    path = bundle_config(bundle)["linux"]["cgroupsPath"]
    for d in cgroup_dirs(path):
        assert str(pid) in (d / "cgroup.procs").read_text().split(), d
    with open(f"/proc/{pid}/cgroup") as f:
        lines = [line for line in f.read().splitlines() if line.split(":")[1]]
    assert lines and all(line.endswith(path) for line in lines), lines
    any_rt("delete", "--force", "cg", check=True)


def test_delete_of_created_container_kills_its_init(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("create", "--bundle", str(bundle), "c1", check=True)
    pid = any_rt.state("c1")["pid"]
    any_rt("delete", "c1", check=True)
    assert _dies(pid), f"init {pid} survived delete"


def _dies(pid: int, timeout: float = 10) -> bool:
    """Whether ``pid`` is gone or a zombie within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def test_delete_kills_what_the_init_left_in_its_cgroup(any_rt: Runtime, tmp_path: Path) -> None:
    # Without a pid namespace the init's exit does not end its background child: the
    # cgroup is not empty at delete, which must kill what is left and remove it.
    bundle = make_busybox_bundle(
        tmp_path, ["sh", "-c", "sleep 60 & echo $!"],
        linux={"namespaces": [{"type": t} for t in ("network", "ipc", "uts", "mount")]},
    )  # fmt: skip
    code, out, err = run_in(any_rt, bundle, "left1")
    assert code == 0, err
    left = int(out.split()[-1])  # the sleep's host pid: no pid namespace
    assert _dies(left), f"{left}, left in the cgroup, survived delete"
    assert any_rt("state", "left1").returncode != 0
    assert not any(d.exists() for d in cgroup_dirs(bundle_config(bundle)["linux"]["cgroupsPath"]))


def test_start_after_the_init_died_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["true"])
    any_rt("create", "--bundle", str(bundle), "c1", check=True)
    os.kill(any_rt.state("c1")["pid"], 9)
    _wait_status(any_rt, "c1", "stopped")
    started = any_rt("start", "c1")
    assert started.returncode != 0
    assert "stopped" in started.stderr
    any_rt("delete", "c1", check=True)


def test_kill_all_signals_every_process(any_rt: Runtime, tmp_path: Path) -> None:
    # The init ignores TERM, its child does not: --all must reach the child.
    bundle = make_busybox_bundle(
        tmp_path, ["sh", "-c", "trap '' TERM; sleep 60 & echo $! > /tmp/child; wait; sleep 60"]
    )
    any_rt("run", "-d", "--bundle", str(bundle), "k1", check=True, timeout=30)
    child = bundle / "rootfs" / "tmp" / "child"
    deadline = time.monotonic() + 10
    while not child.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    ps = any_rt("ps", "--format", "json", "k1", check=True)
    assert len(json.loads(ps.stdout)) >= 2
    any_rt("kill", "--all", "k1", "KILL", check=True)
    assert _wait_status(any_rt, "k1", "stopped")["status"] == "stopped"
    any_rt("delete", "k1", check=True)


def test_run_detached_then_force_delete(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("run", "--detach", "--bundle", str(bundle), "d1", check=True, timeout=30)
    assert any_rt.state("d1")["status"] == "running"
    any_rt("delete", "--force", "d1", check=True)
    assert any_rt("state", "d1").returncode != 0
    assert not any(d.exists() for d in cgroup_dirs(bundle_config(bundle)["linux"]["cgroupsPath"]))


def test_terminal_through_console_socket(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path, ["sh"], process={"terminal": True, "consoleSize": {"height": 40, "width": 100}}
    )
    sock_path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(20)
    cid = "tty1"
    created = any_rt.popen(
        "create", "--bundle", str(bundle), "--console-socket", sock_path, cid,
        stdout=subprocess_devnull(), stderr=subprocess_pipe(),
    )  # fmt: skip
    try:
        conn, _ = server.accept()
        master, name = recv_console(conn)
        conn.close()
        assert created.wait(timeout=20) == 0, created.stderr.read() if created.stderr else ""
    finally:
        server.close()
    try:
        assert name  # runc sends "/dev/ptmx", hafen-runtime the slave's path
        any_rt("start", cid, check=True)
        os.write(master, b"echo tty-$(( 6 * 7 )); stty size; tty\n")
        text = _read_until(master, b"/dev/pts/", 20)
        assert b"tty-42" in text
        assert b"40 100" in text
        t0 = time.monotonic()
        os.write(master, b"exit 7\n")
        assert _wait_status(any_rt, cid, "stopped")["status"] == "stopped"
        assert time.monotonic() - t0 < 5
    finally:
        os.close(master)
    any_rt("delete", cid, check=True)


def subprocess_devnull() -> int:
    import subprocess

    return subprocess.DEVNULL


def subprocess_pipe() -> int:
    import subprocess

    return subprocess.PIPE


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            # Stop once the marker's line is complete.
            idx = buf.find(marker)
            if idx >= 0 and b"\n" in buf[idx:]:
                break
    return buf


def test_terminal_without_console_socket_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sh"], process={"terminal": True})
    result = any_rt("create", "--bundle", str(bundle), "tty2")
    assert result.returncode != 0
    assert "console" in result.stderr
    assert "tty2" not in any_rt.ids()


# -- failures leave nothing behind -------------------------------------------------------


def _assert_nothing_left(rt: Runtime, cid: str, bundle: Path) -> None:
    assert cid not in rt.ids()
    with open("/proc/self/mountinfo") as f:
        assert str(bundle) not in f.read()  # no mount leaked to the host
    try:
        path = bundle_config(bundle)["linux"]["cgroupsPath"]
    except (ValueError, KeyError):
        return
    assert not any(d.exists() for d in cgroup_dirs(path))


def test_malformed_json_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["true"])
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2", "process": ')
    result = any_rt("create", "--bundle", str(bundle), "bad1")
    assert result.returncode != 0
    assert result.stderr.strip()
    _assert_nothing_left(any_rt, "bad1", bundle)


def test_bad_id_mapping_is_refused_and_leaves_nothing(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["true"],
        linux={
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user")],
            # a range past the end of the 32-bit id space: the kernel refuses the map
            "uidMappings": [{"containerID": 0, "hostID": 4294967290, "size": 100}],
            "gidMappings": [{"containerID": 0, "hostID": 4294967290, "size": 100}],
        },
    )
    result = any_rt("run", "--bundle", str(bundle), "badmap")
    assert result.returncode != 0
    assert result.stderr.strip()
    _assert_nothing_left(any_rt, "badmap", bundle)


def test_missing_rootfs_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["true"], root={"path": "no-such-rootfs"})
    result = any_rt("create", "--bundle", str(bundle), "bad2")
    assert result.returncode != 0
    _assert_nothing_left(any_rt, "bad2", bundle)


def test_unknown_namespace_type_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path, ["true"], linux={"namespaces": [{"type": "mount"}, {"type": "bogus"}]}
    )
    result = any_rt("create", "--bundle", str(bundle), "bad3")
    assert result.returncode != 0
    _assert_nothing_left(any_rt, "bad3", bundle)


def test_missing_executable_fails_create_not_later(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["no-such-program"])
    result = any_rt("create", "--bundle", str(bundle), "bad4")
    assert result.returncode != 0
    assert "executable file not found" in result.stderr
    _assert_nothing_left(any_rt, "bad4", bundle)


def test_setup_failure_inside_the_init_leaves_nothing(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["true"],
        mounts=[{"destination": "/mnt", "type": "bind", "source": "/no/such/source"}],
    )
    result = any_rt("create", "--bundle", str(bundle), "bad5")
    assert result.returncode != 0
    _assert_nothing_left(any_rt, "bad5", bundle)


def test_a_limit_the_kernel_refuses_fails_create_and_leaves_nothing(
    any_rt: Runtime, tmp_path: Path
) -> None:
    # hafen writes the limits while the init sets itself up: the init must go with them.
    bundle = make_busybox_bundle(
        tmp_path, ["true"], linux={"resources": {"cpu": {"cpus": "4000-4001"}}}
    )
    result = any_rt("create", "--bundle", str(bundle), "bad6")
    assert result.returncode != 0
    assert "cpuset.cpus" in result.stderr
    _assert_nothing_left(any_rt, "bad6", bundle)
    # hafen's init is a fork of the runtime: its command line names the runtime's --root.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert str(any_rt.root).encode() not in cmdline, f"init {pid} left running"


def test_an_init_failing_early_reports_its_own_error(any_rt: Runtime, tmp_path: Path) -> None:
    # The init fails before hafen's parent has made its cgroup (v1): the error is the
    # init's, not the parent's broken pipe to it.
    bundle = make_busybox_bundle(tmp_path, ["true"], process={"oomScoreAdj": 5000})
    result = any_rt("create", "--bundle", str(bundle), "bad7")
    assert result.returncode != 0
    assert "oom_score_adj" in result.stderr
    assert "invalid argument" in result.stderr.lower()
    _assert_nothing_left(any_rt, "bad7", bundle)


def test_bad_arguments_are_refused(any_rt: Runtime, tmp_path: Path) -> None:
    assert any_rt("create").returncode != 0
    assert any_rt("state").returncode != 0
    assert any_rt("state", "no-such-container").returncode != 0
    assert any_rt("start", "no-such-container").returncode != 0
    assert any_rt("--bogus-flag", "list").returncode != 0
    bundle = make_busybox_bundle(tmp_path, ["true"])
    assert any_rt("create", "--bundle", str(bundle), "a", "b").returncode != 0


def test_duplicate_id_is_refused(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("create", "--bundle", str(bundle), "dup", check=True)
    again = any_rt("create", "--bundle", str(bundle), "dup")
    assert again.returncode != 0
    assert any_rt.state("dup")["status"] == "created"  # the first one is untouched
    any_rt("delete", "--force", "dup", check=True)


def test_hafen_errors_are_logged_as_json(hafen_rt: Runtime, tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    result = hafen_rt("--log", str(log), "--log-format", "json", "state", "missing")
    assert result.returncode == 1
    assert result.stderr.strip() == 'container "missing" does not exist'
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error"
    assert entry["msg"] == 'container "missing" does not exist'
    assert entry["time"]


def test_hafen_reports_bad_config_field(hafen_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path, ["true"], linux={"namespaces": [{"type": "mount"}, {"type": "bogus"}]}
    )
    result = hafen_rt("create", "--bundle", str(bundle), "x")
    assert "linux.namespaces[1].type: unknown namespace type 'bogus'" in result.stderr


# -- OCIRuntimeCLI over each runtime -----------------------------------------------------


def test_oci_runtime_cli_drives_state_kill_delete(any_rt: Runtime, tmp_path: Path) -> None:
    cli = OCIRuntimeCLI(any_rt.argv, str(any_rt.root), env=any_rt.env)
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("run", "-d", "--bundle", str(bundle), "cli1", check=True, timeout=30)
    st = cli.state("cli1")
    assert (st.id, st.status, st.bundle) == ("cli1", "running", str(bundle))
    assert st.pid > 0
    with pytest.raises(Conflict):
        cli.delete("cli1")
    cli.kill("cli1", 9)
    deadline = time.monotonic() + 10
    while cli.state("cli1").status != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cli.state("cli1").status == "stopped"
    cli.delete("cli1")
    with pytest.raises(ContainerNotFound):
        cli.state("cli1")


_CREATE_ONE = """
import errno, os, sys
from hafen.runtime import _init, _sys, container
root, bundle, mode = sys.argv[1:4]
if mode != "refused":
    def no_intermediate(args):
        os._exit(99)  # the direct path must not get here
    _init.run_intermediate = no_intermediate
if mode != "shared":
    _sys.can_share_memory = lambda: False  # the init a copy of this process (fork, clone3)
if mode == "refused":
    def refused(*args, **kwargs):
        raise OSError(errno.ENOSYS, "clone3 refused")
    _sys.clone_fork = refused
_sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)  # the init is ours to wait for, either way
pid = container.create(root, "c1", bundle).pid
container.start(root, "c1")
_, status = os.waitpid(pid, 0)
container.delete(root, "c1")
print(os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("mode", ["shared", "direct", "refused"])
def test_init_is_born_in_its_namespaces_or_made_by_an_intermediate(
    hafen_rt: Runtime, tmp_path: Path, mode: str
) -> None:
    """The init is born in its namespaces at once, no intermediate process: sharing the
    runtime's memory (clone with CLONE_VM) where it can, else a copy of it (clone3); where
    the kernel refuses clone3, the intermediate unshares and forks as before."""
    import subprocess
    import sys

    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", "test $$ = 1 && exit 7"])
    done = subprocess.run(
        [sys.executable, "-c", _CREATE_ONE, str(tmp_path / "root"), str(bundle), mode],
        capture_output=True, text=True, env=hafen_rt.env, timeout=60,
    )  # fmt: skip
    assert (done.returncode, done.stdout.strip()) == (0, "7"), done.stderr


def test_direct_namespaces_leave_user_and_joined_namespaces_to_the_intermediate(
    tmp_path: Path,
) -> None:
    from hafen.runtime import _sys
    from hafen.runtime._init import direct_namespaces
    from hafen.runtime.config import Spec, parse_spec

    (tmp_path / "rootfs").mkdir()

    def spec(*namespaces: dict[str, str]) -> Spec:
        linux: dict[str, object] = {"namespaces": list(namespaces)}
        if any(ns["type"] == "user" for ns in namespaces):
            one = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            linux.update(uidMappings=one, gidMappings=one)
        config = {"ociVersion": "1.0.2", "root": {"path": "rootfs"},
                  "process": {"args": ["true"], "cwd": "/"}, "linux": linux}  # fmt: skip
        return parse_spec(config, str(tmp_path))

    assert direct_namespaces(spec({"type": "mount"}, {"type": "pid"}, {"type": "cgroup"})) == (
        _sys.CLONE_NEWNS | _sys.CLONE_NEWPID
    )  # the cgroup namespace comes after the cgroup is joined
    assert direct_namespaces(spec({"type": "mount"}, {"type": "user"})) is None
    assert (
        direct_namespaces(spec({"type": "mount"}, {"type": "network", "path": "/proc/self/ns/net"}))
        is None
    )


def test_the_ctypes_fallback_runs_containers_as_the_c_module_does(
    hafen_rt: Runtime, tmp_path: Path
) -> None:
    # Without runtime/_linux.c built, _sys makes the same calls through ctypes: the same
    # container must come out (hostname, rlimit, capabilities, no_new_privs, seccomp).
    from hafen.oci.seccomp import default_profile, to_oci

    script = "hostname; ulimit -n; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status"
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", script])
    config = bundle_config(bundle)
    config["linux"]["seccomp"] = to_oci(
        default_profile(), config["process"]["capabilities"]["bounding"]
    )
    (bundle / "config.json").write_text(json.dumps(config))
    fallback = Runtime(
        "hafen-ctypes",
        [*hafen_rt.argv[:-1], "import sys; sys.modules['hafen.runtime._linux'] = None; "
         + hafen_rt.argv[-1]],
        hafen_rt.root,
        hafen_rt.env,
    )  # fmt: skip
    results = [run_in(rt, bundle) for rt in (hafen_rt, fallback)]
    assert results[0][0] == 0, results[0]
    assert results[1] == results[0]
    assert results[0][1].split("\n")[:2] == ["hafen", "1024"]
    assert "Seccomp:\t2" in results[0][1] and "NoNewPrivs:\t1" in results[0][1]


def test_an_init_killed_during_its_setup_leaves_nothing(hafen_rt: Runtime, tmp_path: Path) -> None:
    # hafen's init shares the runtime's memory while it sets itself up: killed there, it
    # may leave the interpreter's state half-changed, and the runtime must not go back to
    # it (it execs its cleanup instead). Killed later, create or start fails as usual.
    import subprocess

    mounts = [
        {"destination": f"/tmp/m{i}", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
        for i in range(800)  # a set-up long enough to be killed inside
    ]
    bundle = make_busybox_bundle(
        tmp_path, ["true"], mounts=[*base_config(["true"])["mounts"], *mounts]
    )
    outcomes = set()
    for i, delay in enumerate((0.001, 0.005, 0.015, 0.03)):
        cid = f"killed{i}"
        proc = hafen_rt.popen("run", "--bundle", str(bundle), cid, stderr=subprocess.PIPE)
        children: list[str] = []
        deadline = time.monotonic() + 10
        while not children and time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            time.sleep(0.0005)
        time.sleep(delay)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        outcomes.add(proc.returncode)
        if proc.returncode != 0:
            assert "container process" in err or "has stopped" in err, err
        _assert_nothing_left(hafen_rt, cid, bundle)
    assert outcomes != {0}, "no kill landed inside the set-up"
