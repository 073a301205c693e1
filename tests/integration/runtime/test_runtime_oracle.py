"""The oracle: one set of bundles under hafen-runtime and each peer that runs on this
host (runc; crun where the cgroup layout suits it) must give the same observable
results: exit status, what the process sees of itself (capabilities, ids, limits,
mounts, namespaces, cgroup values) and the state JSON's fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hafen.oci.seccomp import default_profile, to_oci

from .conftest import (
    PEERS,
    Runtime,
    _bundle_cgroups,
    _cleanup,
    _make_runtime,
    _remove_test_cgroups,
    make_busybox_bundle,
)

PROBE = r"""
grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Uid|Gid):' /proc/self/status
echo "pid=$$ hostname=$(hostname) cwd=$(pwd) umask=$(umask)"
echo "nofile=$(ulimit -n) $(ulimit -Hn)"
f=/sys/fs/cgroup
echo "mem=$(cat $f/memory/memory.limit_in_bytes 2>/dev/null || cat $f/memory.max)"
echo "pids=$(cat $f/pids/pids.max 2>/dev/null || cat $f/pids.max)"
echo "oom=$(cat /proc/self/oom_score_adj) fwd=$(cat /proc/sys/net/ipv4/ip_forward)"
grep -E ' /(proc|sys|dev|dev/shm|dev/pts) ' /proc/self/mounts | cut -d' ' -f2,3,4 | sed 's/,size=[0-9k]*//; s/,inode64//' | sort
ls /dev | sort | tr '\n' ' '; echo
wc -c < /proc/kcore 2>/dev/null; touch /proc/sys/x 2>/dev/null || echo ro-proc-sys
exit 7
"""


def _bundle(tmp_path: Path) -> Path:
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]
    return make_busybox_bundle(
        tmp_path,
        ["sh", "-c", PROBE],
        process={
            "cwd": "/tmp",
            "user": {"uid": 0, "gid": 0, "umask": 23},
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps,
                "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 333, "hard": 444}],
            "oomScoreAdj": 250,
        },
        hostname="oracle",
        linux={
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 50331648},
                "pids": {"limit": 42},
            },
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "seccomp": to_oci(default_profile(), caps),
        },
    )  # fmt: skip


def _run(rt: Runtime, tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    bundle = _bundle(tmp_path)
    cid = f"oracle-{rt.name}"
    rt("create", "--bundle", str(bundle), cid, check=True)
    state = rt.state(cid)
    rt("delete", "--force", cid, check=True)
    result = rt("run", "--bundle", str(bundle), cid + "-run")
    fields = {k: state[k] for k in ("ociVersion", "status", "bundle") if k in state}
    fields["bundle"] = Path(fields["bundle"]).name.split("-")[0]
    fields["pid_positive"] = state["pid"] > 0
    return result.returncode, result.stdout, fields


def test_hafen_and_peers_observe_the_same(tmp_path: Path) -> None:
    results = {}
    for name in PEERS:
        try:
            rt = _make_runtime(name, tmp_path / name)
        except pytest.skip.Exception:
            continue
        try:
            results[name] = _run(rt, tmp_path / name)
        finally:
            _cleanup(rt, tmp_path / name)
            _remove_test_cgroups(_bundle_cgroups(tmp_path / name))
    if len(results) < 2:
        pytest.skip("no peer runtime runs on this host")
    hafen_code, hafen_out, hafen_state = results.pop("hafen")
    assert hafen_code == 7
    assert "CapAmb:\t0000000000000020" in hafen_out  # CAP_KILL stays ambient
    assert "mem=50331648" in hafen_out and "pids=42" in hafen_out
    assert "Seccomp:\t2" in hafen_out
    for name, (code, out, state) in results.items():
        if name == "crun":
            # crun alone adds the /dev/core -> /proc/kcore symlink runc and Docker do not
            out = out.replace("\ncore fd ", "\nfd ")
        assert code == hafen_code, name
        assert out.splitlines() == hafen_out.splitlines(), name
        assert state["status"] == hafen_state["status"] == "created", name
        assert state["pid_positive"] and hafen_state["pid_positive"]
