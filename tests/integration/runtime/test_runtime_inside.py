"""What a process sees from inside the container, on hafen-runtime and on runc/crun."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Runtime, bundle_config, cgroup_dirs, make_busybox_bundle, run_in


def test_process_is_pid_1_and_host_pids_are_invisible(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path, ["sh", "-c", "echo $$; ls /proc | grep -E '^[0-9]+$' | wc -l"]
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    pid, count = out.split()
    assert pid == "1"
    # sh itself, and at most the pipeline's children: no host process is visible.
    assert int(count) <= 4


def test_hostname_is_set(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["hostname"], hostname="box-42")
    code, out, err = run_in(any_rt, bundle)
    assert (code, out.strip()) == (0, "box-42"), err


def test_env_cwd_and_user_are_applied(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g; id -G'],
        process={
            "env": ["PATH=/bin:/sbin", "GREETING=hello world"],
            "cwd": "/work/sub",
            "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20]},
        },
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "hello world"
    assert lines[1] == "/work/sub"  # created although missing from the rootfs, as runc does
    assert lines[2:4] == ["1000", "1001"]
    assert set(lines[4].split()) == {"1001", "10", "20"}


def test_proc_and_readonly_sys_are_mounted(any_rt: Runtime, tmp_path: Path) -> None:
    script = (
        "grep -E ' /(proc|sys) ' /proc/mounts | cut -d' ' -f2,3,4 | cut -d, -f1; "
        "touch /sys/x 2>/dev/null && echo sys-writable || echo sys-readonly; "
        "echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sysctl-rw || echo sysctl-ro; "
        "wc -c < /proc/keys"
    )
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", script])
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert "/proc proc rw" in lines
    assert "/sys sysfs ro" in lines
    assert "sys-readonly" in lines
    assert "sysctl-ro" in lines  # readonlyPaths
    assert lines[-1].strip() == "0"  # maskedPaths: /dev/null over /proc/keys


def test_dev_has_default_devices_and_pts(any_rt: Runtime, tmp_path: Path) -> None:
    script = (
        "for d in null zero full random urandom tty; do "
        "  stat -c '%n %F %t:%T' /dev/$d; done; "
        "readlink /dev/ptmx; readlink /dev/fd; test -c /dev/pts/ptmx && echo pts-ok; "
        "echo x > /dev/null && echo null-writable; head -c 4 /dev/zero | wc -c"
    )
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", script])
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert "/dev/null character special file 1:3" in lines
    assert "/dev/zero character special file 1:5" in lines
    assert "/dev/full character special file 1:7" in lines
    assert "/dev/random character special file 1:8" in lines
    assert "/dev/urandom character special file 1:9" in lines
    assert "/dev/tty character special file 5:0" in lines
    assert "pts/ptmx" in lines
    assert "/proc/self/fd" in lines
    assert "pts-ok" in lines
    assert "null-writable" in lines  # the devices cgroup allows the default nodes
    assert lines[-1].strip() == "4"


def _mask(names: list[str]) -> int:
    from hafen.runtime.config import CAP_NUMBERS

    mask = 0
    for n in names:
        mask |= 1 << CAP_NUMBERS[n]
    return mask


def test_capabilities_match_the_config(any_rt: Runtime, tmp_path: Path) -> None:
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SETUID", "CAP_SYS_CHROOT"]
    bundle = make_busybox_bundle(
        tmp_path,
        ["grep", "^Cap", "/proc/self/status"],
        process={
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
                "inheritable": [],
                "ambient": [],
            }
        },
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    fields = dict(re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", out, re.M))
    assert int(fields["CapBnd"], 16) == _mask(caps)
    assert int(fields["CapEff"], 16) == _mask(caps)
    assert int(fields["CapPrm"], 16) == _mask(caps)
    assert int(fields["CapInh"], 16) == 0


def test_non_root_user_keeps_configured_ambient_caps(any_rt: Runtime, tmp_path: Path) -> None:
    caps = ["CAP_NET_BIND_SERVICE"]
    bundle = make_busybox_bundle(
        tmp_path,
        ["grep", "^Cap", "/proc/self/status"],
        process={
            "user": {"uid": 1000, "gid": 1000},
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted", "inheritable", "ambient")},
        },
    )  # fmt: skip
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    fields = dict(re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", out, re.M))
    assert int(fields["CapEff"], 16) == _mask(caps)
    assert int(fields["CapAmb"], 16) == _mask(caps)


def test_readonly_root(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro; touch /dev/shm/y && echo shm-rw"],
        root={"path": "rootfs", "readonly": True},
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert out.split() == ["ro", "shm-rw"]


def test_bind_mount_with_options(any_rt: Runtime, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "file.txt").write_text("from host\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", "cat /mnt/data/file.txt /etc/single.txt; touch /mnt/data/new 2>/dev/null || echo ro"],
        mounts=[
            *bundle_config_mounts(),
            {"destination": "/mnt/data", "type": "bind", "source": str(data), "options": ["rbind", "ro", "nosuid"]},
            {"destination": "/etc/single.txt", "type": "bind", "source": str(single), "options": ["bind"]},
        ],
    )  # fmt: skip
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert out.splitlines() == ["from host", "one file", "ro"]
    assert not (data / "new").exists()


def bundle_config_mounts() -> list[dict[str, object]]:
    from .conftest import base_config

    mounts: list[dict[str, object]] = base_config(["true"])["mounts"]
    return mounts


def test_memory_and_pids_limits_are_written_and_enforced(any_rt: Runtime, tmp_path: Path) -> None:
    # A fork bomb in a child shell dies when fork fails at the limit; the outer shell then
    # reports with builtins only (read, echo), since it cannot fork either.
    script = (
        "sh -c 'while true; do sleep 30 & done' 2>/dev/null; echo bomb-exit $?; "
        "read n < /sys/fs/cgroup/pids/pids.current; echo current $n"
    )
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", script],
        linux={"resources": {"memory": {"limit": 64 * 1024 * 1024}, "pids": {"limit": 12}}},
    )
    cgroups_path = bundle_config(bundle)["linux"]["cgroupsPath"]
    cid = "limits"
    with open(tmp_path / "out.txt", "w") as out:
        result = any_rt("create", "--bundle", str(bundle), cid, stdout=out, capture_output=False,
                        stderr=None)  # fmt: skip
    assert result.returncode == 0
    dirs = {d.parent.parent.name: d for d in cgroup_dirs(cgroups_path)}
    assert (dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(64 * 1024 * 1024)
    assert (dirs["pids"] / "pids.max").read_text().strip() == "12"
    init_pid = any_rt.state(cid)["pid"]
    assert str(init_pid) in (dirs["pids"] / "cgroup.procs").read_text().split()
    any_rt("start", cid, check=True)
    deadline = time.monotonic() + 20
    while any_rt.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    out = (tmp_path / "out.txt").read_text().split()
    assert out[:2] == ["bomb-exit", "2"]
    # At the limit when the bomb stopped; its own shell has exited since.
    assert out[2] == "current" and 10 <= int(out[3]) <= 12
    any_rt("delete", "--force", cid, check=True)
    assert not any(d.exists() for d in dirs.values())


@pytest.mark.parametrize(
    "script, expected", [("exit 3", 3), ("exit 0", 0), ("kill -TERM $$; exit 1", 1)]
)
def test_exit_status_propagates(
    any_rt: Runtime, tmp_path: Path, script: str, expected: int
) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", script])
    code, _out, err = run_in(any_rt, bundle)
    assert code == expected, err


def test_killed_container_exits_128_plus_signal(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    cid = "killed"
    proc = any_rt.popen("run", "--bundle", str(bundle), cid)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            r = any_rt("state", cid)
            if r.returncode == 0 and '"running"' in r.stdout:
                break
            time.sleep(0.02)
        any_rt("kill", cid, "KILL", check=True)
        assert proc.wait(timeout=20) == 128 + 9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sysctl_and_oom_score_adj(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj"],
        process={"oomScoreAdj": 200},
        linux={"sysctl": {"net.ipv4.ip_forward": "1"}},
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert out.split() == ["1", "200"]


def test_rlimits_are_applied(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", "ulimit -n; ulimit -Hn"],
        process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]},
    )
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert out.split() == ["321", "654"]


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A bundle parent that a mapped (unprivileged on the host) root can traverse."""
    d = Path(tempfile.mkdtemp(prefix="hafen-userns-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_user_namespace_maps_root(any_rt: Runtime, tmp_path: Path, world_dir: Path) -> None:
    bundle = make_busybox_bundle(
        world_dir,
        ["sh", "-c", "id -u; cat /proc/self/uid_map; test -c /dev/null && echo dev-ok"],
        linux={
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        },
    )
    # The bundle is owned by the mapped root, as an image unpacked for userns would be.
    for p in [bundle, *bundle.rglob("*")]:
        os.lchown(p, 100000, 100000)
    cid = "userns"
    try:
        code, out, err = run_in(any_rt, bundle, cid)
    finally:
        any_rt("delete", "--force", cid)
        _remove_cgroup(bundle)
    assert code == 0, err
    lines = out.split()
    assert lines[0] == "0"
    assert lines[1:4] == ["0", "100000", "65536"]
    assert "dev-ok" in lines


def _remove_cgroup(bundle: Path) -> None:
    for d in cgroup_dirs(bundle_config(bundle)["linux"]["cgroupsPath"]):
        with contextlib.suppress(OSError):
            d.rmdir()


def test_namespace_path_is_joined(any_rt: Runtime, tmp_path: Path) -> None:
    first = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("run", "-d", "--bundle", str(first), "ns-a", check=True, timeout=30)
    pid = any_rt.state("ns-a")["pid"]
    net = f"/proc/{pid}/ns/net"
    uts = f"/proc/{pid}/ns/uts"
    second = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts"],
        hostname="",
        linux={
            "namespaces": [
                {"type": "pid"},
                {"type": "mount"},
                {"type": "network", "path": net},
                {"type": "uts", "path": uts},
            ]
        },
    )
    code, out, err = run_in(any_rt, second)
    assert code == 0, err
    assert out.split() == [os.readlink(net), os.readlink(uts)]
    any_rt("delete", "--force", "ns-a", check=True)


def test_no_pivot_uses_move_and_chroot(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", "ls /bin/busybox; echo $$"])
    result = any_rt("run", "--no-pivot", "--bundle", str(bundle), "np1", timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/bin/busybox", "1"]


def test_private_cgroup_namespace_is_rooted_at_the_containers_cgroup(
    any_rt: Runtime, tmp_path: Path
) -> None:
    # the namespace is made after the cgroup is joined: its root is the container's own
    bundle = make_busybox_bundle(
        tmp_path, ["cat", "/proc/self/cgroup"], linux={"namespaces": [
            {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "mount"}, {"type": "cgroup"},
        ]},
    )  # fmt: skip
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    lines = out.splitlines()
    assert lines and all(line.endswith(":/") for line in lines), out


def test_loopback_is_up_in_a_new_network_namespace(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["cat", "/sys/class/net/lo/flags"])
    code, out, err = run_in(any_rt, bundle)
    assert code == 0, err
    assert int(out, 16) & 0x1, out  # IFF_UP
