"""`hafen run` isolation and resource flags, proved from inside the container.

Each test names a property Docker gives and checks it where the process sees it:
/proc/self/status, the container's own cgroup files, refused syscalls, exit codes.
"""

from __future__ import annotations

import json
import os

import pytest

from hafen.oci import defaults
from hafen.oci.spec import available_capabilities
from hafen.runtime.config import CAP_NUMBERS
from tests.conftest import Hafend


def _cap_mask(names: list[str]) -> int:
    mask = 0
    for n in names:
        mask |= 1 << CAP_NUMBERS[n]
    return mask


def _status_caps(hafend: Hafend, *flags: str) -> dict[str, int]:
    out = hafend.cli("run", "--rm", *flags, "busybox", "grep", "^Cap", "/proc/self/status").stdout
    return {line.split(":")[0]: int(line.split()[1], 16) for line in out.splitlines()}


def test_capabilities_are_dockers_defaults_and_follow_add_drop(hafend: Hafend) -> None:
    caps = _status_caps(hafend)
    want = _cap_mask(list(defaults.DEFAULT_CAPABILITIES))
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == want
    changed = _status_caps(hafend, "--cap-add", "NET_ADMIN", "--cap-drop", "chown")
    assert changed["CapEff"] == (want | _cap_mask(["CAP_NET_ADMIN"])) & ~_cap_mask(["CAP_CHOWN"])
    privileged = _status_caps(hafend, "--privileged")
    assert privileged["CapBnd"] == _cap_mask(available_capabilities())


PROBE = (
    "mkdir -p /mnt; mount -t tmpfs t /mnt 2>/dev/null && echo mount-ok || echo mount-refused; "
    "unshare -m true 2>/dev/null && echo unshare-ok || echo unshare-refused; "
    "grep Seccomp: /proc/self/status"
)


def test_seccomp_refuses_mount_and_unshare_even_with_sys_admin(hafend: Hafend) -> None:
    # CAP_SYS_ADMIN lets the default profile allow mount/unshare (Docker's rule); so drop
    # to a profile computed for the defaults with --security-opt to prove the filter bites.
    out = hafend.cli("run", "--rm", "busybox", "sh", "-c", PROBE).stdout
    assert "mount-refused" in out and "unshare-refused" in out
    assert "Seccomp:\t2" in out  # filter mode
    free = hafend.cli(
        "run", "--rm", "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined",
        "--security-opt", "apparmor=unconfined", "busybox", "sh", "-c", PROBE,
    ).stdout  # fmt: skip
    assert "mount-ok" in free and "unshare-ok" in free and "Seccomp:\t0" in free
    priv = hafend.cli("run", "--rm", "--privileged", "busybox", "sh", "-c", PROBE).stdout
    assert "mount-ok" in priv and "Seccomp:\t0" in priv


def test_custom_seccomp_profile_file_and_no_new_privileges(
    hafend: Hafend, tmp_path: os.PathLike[str]
) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}],
    }
    path = os.path.join(str(tmp_path), "profile.json")
    with open(path, "w") as f:
        json.dump(profile, f)
    out = hafend.cli(
        "run", "--rm", "--security-opt", f"seccomp={path}", "--security-opt", "no-new-privileges",
        "busybox", "sh", "-c", "mkdir /x 2>&1; grep NoNewPrivs /proc/self/status",
    ).stdout  # fmt: skip
    assert "Permission denied" in out
    assert "NoNewPrivs:\t1" in out


def test_read_only_root_masked_paths_and_privileged(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--read-only", "busybox", "sh", "-c",
        "touch /x 2>&1; touch /tmp/y 2>&1; wc -c < /proc/keys; ls /sys/firmware | wc -l",
    ).stdout.splitlines()  # fmt: skip
    assert "Read-only file system" in out[0]
    assert "Read-only file system" in out[1]
    assert out[2:] == ["0", "0"]  # masked: empty
    priv = hafend.cli("run", "--rm", "--privileged", "busybox", "sh", "-c", "ls /dev | wc -l")
    assert int(priv.stdout) > 20  # the host's devices


def test_memory_limit_and_oom_kill_exit_137(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "-m", "32m", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ).stdout  # fmt: skip
    assert out.strip() == str(32 << 20)
    name = "oom-hog"
    hog = hafend.cli(
        "run", "--name", name, "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
        "x=a; while true; do x=$x$x; done", check=False, timeout=60,
    )  # fmt: skip
    try:
        assert hog.returncode == 137
        state = json.loads(hafend.cli("inspect", name).stdout)[0]["State"]
        assert state["OOMKilled"] is True
        assert state["ExitCode"] == 137
    finally:
        hafend.cli("rm", "-f", name, check=False)


def test_pids_limit_stops_a_fork_bomb(hafend: Hafend) -> None:
    # Bounded: a child shell starts at most 60 sleeps of 3 s and dies at the first fork
    # the limit refuses; the outer shell then reads the counters with builtins only.
    script = (
        "sh -c 'for i in $(seq 60); do sleep 3 & done' 2>/dev/null; "
        "f=/sys/fs/cgroup/pids; [ -d $f ] || f=/sys/fs/cgroup; "
        "read max < $f/pids.max; read cur < $f/pids.current; echo $max $cur"
    )
    out = hafend.cli("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c", script, timeout=60)
    limit, current = out.stdout.split()
    assert limit == "20"
    assert 10 < int(current) <= 20  # it forked up to the limit, never past it


def test_ulimit_sysctl_oom_score_hostname_and_group_add(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--ulimit", "nofile=123:456", "--sysctl", "net.ipv4.ip_forward=1",
        "--oom-score-adj", "300", "--hostname", "werft", "--group-add", "1234",
        "busybox", "sh", "-c",
        "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/oom_score_adj;"
        " hostname; id -G",
    ).stdout.split()  # fmt: skip
    assert out[:5] == ["123", "456", "1", "300", "werft"]
    assert "1234" in out[5:]


def test_pid_and_uts_host_modes(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--pid", "host", "--uts", "host", "busybox", "sh", "-c",
        "ls /proc | grep -c '^[0-9]'; hostname",
    ).stdout.split()  # fmt: skip
    assert int(out[0]) > 5  # the host's processes are visible
    assert out[1] == os.uname().nodename


def test_pid_container_mode_joins_another_container(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "pid-target", "busybox", "sleep", "30")
    try:
        out = hafend.cli(
            "run", "--rm", "--pid", "container:pid-target", "--ipc", "container:pid-target",
            "busybox", "ps",
        ).stdout  # fmt: skip
        assert "sleep 30" in out
    finally:
        hafend.cli("rm", "-f", "pid-target", check=False)


def test_init_reaps_zombies_and_forwards_the_exit_code(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--init", "busybox", "sh", "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; (sleep 0.1 &) ; sleep 0.5;"
        " ps -o stat,comm | grep -c '^Z' ; exit 3",
        check=False,
    )  # fmt: skip
    assert out.returncode == 3
    first, zombies = out.stdout.splitlines()[:2]
    assert first.startswith("/sbin/docker-init -- sh")
    assert zombies.strip() == "0"


def test_device_and_bad_flags(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--device", "/dev/null:/dev/hafen-null:rw", "busybox", "sh", "-c",
        "echo hi > /dev/hafen-null && echo wrote; ls -l /dev/hafen-null",
    ).stdout  # fmt: skip
    assert "wrote" in out and out.splitlines()[1].startswith("c")
    for flags in (["--ulimit", "nofile=5:1"], ["--security-opt", "bogus=1"], ["--pid", "nope"]):
        bad = hafend.cli("run", "--rm", *flags, "busybox", "true", check=False)
        assert bad.returncode == 125, flags


@pytest.mark.parametrize("cpus", ["0.5"])
def test_cpus_sets_the_cfs_quota(hafend: Hafend, cpus: str) -> None:
    out = hafend.cli(
        "run", "--rm", "--cpus", cpus, "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
    ).stdout  # fmt: skip
    assert out.strip() == "50000"


def test_cpus_bounds_measured_cpu_use(hafend: Hafend) -> None:
    # Bounded: a busy loop for 2 s of wall time; with --cpus 0.5 the cgroup may use at
    # most ~1 s of CPU (the CFS quota), whatever the host's load.
    script = (
        "timeout 2 sh -c 'while :; do :; done'; f=/sys/fs/cgroup;"
        " cat $f/cpuacct/cpuacct.usage 2>/dev/null || grep usage_usec $f/cpu.stat"
    )
    out = hafend.cli("run", "--rm", "--cpus", "0.5", "busybox", "sh", "-c", script, timeout=60)
    value = int(out.stdout.split()[-1])
    cpu_seconds = value / 1e9 if "usage_usec" not in out.stdout else value / 1e6
    assert 0.05 < cpu_seconds < 1.3


def test_ipc_modes_and_shm_size(hafend: Hafend) -> None:
    sized = hafend.cli(
        "run", "--rm", "--shm-size", "8m", "busybox", "sh", "-c", "df -k /dev/shm | tail -1"
    ).stdout.split()
    assert sized[1] == "8192"
    none = hafend.cli(
        "run", "--rm", "--ipc", "none", "busybox", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts",
        check=False,
    )  # fmt: skip
    assert none.stdout.strip() == "0"
    host_ipc = os.readlink("/proc/self/ns/ipc")
    shared = hafend.cli("run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc")
    assert shared.stdout.strip() == host_ipc


def test_blkio_weight_and_device_throttles(hafend: Hafend) -> None:
    disks = sorted(d for d in os.listdir("/sys/block") if not d.startswith(("loop", "ram")))
    if not disks or not os.path.exists(f"/dev/{disks[0]}"):
        pytest.skip("no block device node to throttle")
    dev = f"/dev/{disks[0]}"
    rdev = os.stat(dev).st_rdev
    majmin = f"{os.major(rdev)}:{os.minor(rdev)}"
    script = (
        "f=/sys/fs/cgroup; if [ -d $f/blkio ]; then"
        " cat $f/blkio/blkio.bfq.weight $f/blkio/blkio.weight 2>/dev/null | head -1;"
        " cat $f/blkio/blkio.throttle.read_bps_device $f/blkio/blkio.throttle.write_iops_device;"
        " else cat $f/io.bfq.weight $f/io.weight 2>/dev/null | head -1; cat $f/io.max; fi"
    )
    out = hafend.cli(
        "run", "--rm", "--blkio-weight", "300", "--device-read-bps", f"{dev}:1mb",
        "--device-write-iops", f"{dev}:100", "busybox", "sh", "-c", script,
    ).stdout  # fmt: skip
    assert "300" in out.splitlines()[0] or "default" in out.splitlines()[0]
    if "rbps=" in out:  # cgroup v2: one io.max line per device
        assert f"{majmin} rbps=1048576" in out and "wiops=100" in out
    else:
        assert f"{majmin} 1048576" in out and f"{majmin} 100" in out
