"""The cgroup v2 path on a pure-v2 view of this host, with runc and crun as the oracle.

These VMs are hybrid (v1 controllers, an empty cgroup2 at /sys/fs/cgroup/unified). Each
runtime call here runs in a private mount namespace whose /sys/fs/cgroup is a cgroup2
mount (the same single hierarchy as the host's /sys/fs/cgroup/unified), which is what a
pure v2 host looks like to a runtime: layout detection says "unified", containers land
in the unified hierarchy, pause is cgroup.freeze, device rules are an eBPF program.
Only controllers not bound to v1 are available there (hugetlb on these VMs), so a
memory or pids limit must be refused, as runc refuses it, while a container without
limits runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    PEERS,
    Runtime,
    _bundle_cgroups,
    _cleanup,
    _remove_test_cgroups,
    hafen_runtime_env,
    make_busybox_bundle,
    run_in,
)

UNIFIED = Path("/sys/fs/cgroup/unified")  # the host's view of the same hierarchy
V2_WRAPPER = [
    "unshare", "--mount", "--propagation", "private", "sh", "-c",
    'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "v2",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not (UNIFIED / "cgroup.procs").exists(), reason="no hybrid cgroup2 at /sys/fs/cgroup/unified"
)


def _controllers() -> set[str]:
    return set((UNIFIED / "cgroup.controllers").read_text().split())


_PROBES: dict[str, str] = {}


@pytest.fixture(params=["hafen", "runc", "crun"])
def v2_rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    name = request.param
    if not os.path.exists(PEERS[name][0]):
        pytest.skip(f"{name} is not installed")
    rt = Runtime(name, [*V2_WRAPPER, *PEERS[name]], tmp_path / f"{name}-root", hafen_runtime_env())
    if name not in _PROBES:
        probe_dir = tmp_path / "probe"
        code, _, err = run_in(rt, make_busybox_bundle(probe_dir, ["true"]))
        _PROBES[name] = "" if code == 0 else err.strip()[-300:]
        _cleanup(rt, probe_dir)
        _remove_test_cgroups(_bundle_cgroups(probe_dir))
    if _PROBES[name]:
        # crun 1.8 raises RLIMIT_MEMLOCK for its eBPF device program, which needs
        # CAP_SYS_RESOURCE: a test host without it (these VMs) cannot run crun on v2.
        pytest.skip(f"{name} cannot run containers on a cgroup2 /sys/fs/cgroup: {_PROBES[name]}")
    yield rt
    _cleanup(rt, tmp_path)
    _remove_test_cgroups(_bundle_cgroups(tmp_path))


def _cgroup_path(bundle: Path) -> str:
    path: str = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"]
    return path


def test_runs_in_the_unified_hierarchy_without_limits(v2_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", "grep '^0::' /proc/self/cgroup"])
    code, out, err = run_in(v2_rt, bundle)
    assert code == 0, err
    assert out.strip() == f"0::{_cgroup_path(bundle)}"


@pytest.mark.parametrize(
    "resources",
    [{"memory": {"limit": 64 << 20}}, {"pids": {"limit": 20}}, {"cpu": {"shares": 512}}],
    ids=["memory", "pids", "cpu"],
)
def test_limit_for_unavailable_controller_is_refused(
    v2_rt: Runtime, tmp_path: Path, resources: dict[str, object]
) -> None:
    controller = next(iter(resources))
    if controller in _controllers():
        pytest.skip(f"{controller} is available in this host's cgroup2")
    bundle = make_busybox_bundle(tmp_path, ["true"], linux={"resources": resources})
    code, _, err = run_in(v2_rt, bundle, cid="refused")
    assert code != 0
    if v2_rt.name == "hafen":
        assert f"controller {controller!r} is not available" in err
    # Nothing left behind: no state, no cgroup.
    assert v2_rt.ids() == []
    assert not (UNIFIED / _cgroup_path(bundle).lstrip("/")).exists()


def test_hugetlb_limit_lands_in_the_unified_cgroup(v2_rt: Runtime, tmp_path: Path) -> None:
    if "hugetlb" not in _controllers():
        pytest.skip("hugetlb is not available in this host's cgroup2")
    limit = 4 << 20
    bundle = make_busybox_bundle(
        tmp_path,
        ["sleep", "30"],
        linux={"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": limit}]}},
    )
    v2_rt("create", "--bundle", str(bundle), "huge", check=True)
    d = UNIFIED / _cgroup_path(bundle).lstrip("/")
    assert (d / "hugetlb.2MB.max").read_text().strip() == str(limit)
    pid = v2_rt.state("huge")["pid"]
    assert str(pid) in (d / "cgroup.procs").read_text().split()
    v2_rt("delete", "--force", "huge", check=True)
    assert not d.exists()


def test_pause_resume_through_cgroup_freeze(v2_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "30"])
    v2_rt("run", "--detach", "--bundle", str(bundle), "frz", check=True)
    d = UNIFIED / _cgroup_path(bundle).lstrip("/")
    v2_rt("pause", "frz", check=True)
    assert v2_rt.state("frz")["status"] == "paused"
    assert (d / "cgroup.freeze").read_text().strip() == "1"
    assert "frozen 1" in (d / "cgroup.events").read_text()
    v2_rt("resume", "frz", check=True)
    assert v2_rt.state("frz")["status"] == "running"
    assert (d / "cgroup.freeze").read_text().strip() == "0"
    v2_rt("kill", "frz", "KILL", check=True)
    deadline = time.monotonic() + 10
    while v2_rt.state("frz")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    v2_rt("delete", "frz", check=True)
    assert not d.exists()


DEVICE_PROBE = r"""
mknod /mnt/null c 1 3 && (head -c1 /mnt/null; echo null-open-ok)
mknod /mnt/mem c 1 1 && (head -c1 /mnt/mem >/dev/null 2>&1 && echo mem-open-ok || echo mem-denied)
"""


def test_device_program_refuses_devices_not_allowed(v2_rt: Runtime, tmp_path: Path) -> None:
    caps = ["CAP_MKNOD", "CAP_SYS_RAWIO", "CAP_DAC_OVERRIDE"]
    bundle = make_busybox_bundle(
        tmp_path,
        ["sh", "-c", DEVICE_PROBE],
        process={"capabilities": {k: caps for k in ("bounding", "effective", "permitted")}},
        mounts=[
            *json.loads(_base_mounts_json()),
            {"destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        ],
    )
    code, out, err = run_in(v2_rt, bundle)
    assert code == 0, err
    # /dev/null (1:3) is on the default allow list; /dev/mem (1:1) is refused at open by
    # the eBPF program, whatever the capabilities (there is no v1 devices cgroup here).
    assert out.split() == ["null-open-ok", "mem-denied"]


def _base_mounts_json() -> str:
    from .conftest import base_config

    return json.dumps(base_config([])["mounts"])


def test_events_stats_read_the_unified_files(v2_rt: Runtime, tmp_path: Path) -> None:
    if v2_rt.name == "crun":
        pytest.skip("crun has no events verb")
    busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30"
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", busy])
    v2_rt("run", "--detach", "--bundle", str(bundle), "st", check=True)
    time.sleep(0.3)
    out = v2_rt("events", "--stats", "st", check=True).stdout
    data = json.JSONDecoder().raw_decode(out.strip())[0]["data"]
    assert data["cpu"]["usage"]["total"] > 0  # cpu.stat exists without the cpu controller
    ps = v2_rt("ps", "--format", "json", "st", check=True).stdout
    assert v2_rt.state("st")["pid"] in json.loads(ps)  # cgroup.procs
    v2_rt("delete", "--force", "st", check=True)


def test_layout_detection_reports_unified(tmp_path: Path) -> None:
    code = "from hafen.runtime import cgroups; print(cgroups.layout(), cgroups.is_unified())"
    env = hafen_runtime_env()
    inside = subprocess.run(
        [*V2_WRAPPER, sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env
    )
    outside = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env
    )
    assert inside.stdout.split() == ["unified", "True"], inside.stderr
    assert outside.stdout.split() == ["hybrid", "False"], outside.stderr


def test_kill_all_reaches_every_process_even_frozen(v2_rt: Runtime, tmp_path: Path) -> None:
    # hafen-runtime writes cgroup.kill (runc 1.1 signals pid by pid): same outcome.
    bundle = make_busybox_bundle(tmp_path, ["sh", "-c", "sleep 30 & sleep 30 & wait"])
    v2_rt("run", "--detach", "--bundle", str(bundle), "ka", check=True)
    d = UNIFIED / _cgroup_path(bundle).lstrip("/")
    deadline = time.monotonic() + 10
    while len((d / "cgroup.procs").read_text().split()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    v2_rt("pause", "ka", check=True)
    v2_rt("kill", "--all", "ka", "KILL", check=True)
    while (d / "cgroup.procs").read_text().split() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (d / "cgroup.procs").read_text().split() == []
    v2_rt("delete", "--force", "ka", check=True)
    assert not d.exists()


def test_the_init_is_born_in_its_v2_cgroup_and_python_works_in_it(tmp_path: Path) -> None:
    # clone3 CLONE_INTO_CGROUP: the child starts in the cgroup (no migration, so no wait
    # on the kernel's threadgroup lock), and the interpreter in it is a proper fork's
    name = f"hafen-clone3-{os.getpid()}"
    code = f"""
import os, threading
from hafen.runtime import _sys
os.mkdir("/sys/fs/cgroup/{name}")
fd = os.open("/sys/fs/cgroup/{name}", os.O_RDONLY | os.O_DIRECTORY)
r, w = os.pipe()
def unified():
    return next(l for l in open("/proc/self/cgroup").read().splitlines() if l.startswith("0::"))
pid = _sys.clone_fork(0, fd)
if pid == 0:
    t = threading.Thread(target=lambda: None)  # the child's threading state is sound
    t.start(); t.join()
    os.write(w, unified().encode())
    os._exit(7)
os.close(w)
born_in = os.read(r, 4096).decode().strip()
_, status = os.waitpid(pid, 0)
print(born_in, os.waitstatus_to_exitcode(status), unified())
os.rmdir("/sys/fs/cgroup/{name}")
"""
    try:
        out = subprocess.run(
            [*V2_WRAPPER, sys.executable, "-S", "-c", code],
            capture_output=True,
            text=True,
            env=hafen_runtime_env(),
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        child, code_, parent = out.stdout.split()
        assert child == f"0::/{name}" and code_ == "7"
        assert parent != child  # only the child moved
    finally:
        if (UNIFIED / name).exists():
            (UNIFIED / name).rmdir()
