"""HostConfig isolation fields -> SpecOptions; userns-remap ranges; live-update resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.containers.control import _resources
from hafen.containers.isolation import isolation_options
from hafen.containers.model import HostConfig
from hafen.containers.userns import Remap, resolve, shift_rootfs
from hafen.errors import Conflict, InvalidArgument, InvalidConfig


def _pid_of(ref: str) -> int:
    if ref == "web":
        return 4242
    raise Conflict(f"cannot join namespace of a non running container: {ref}")


def test_security_options() -> None:
    hc = HostConfig(security_opt=["seccomp=unconfined", "no-new-privileges:true",
                                  "apparmor=unconfined", "label=disable"])  # fmt: skip
    opts = isolation_options(hc, _pid_of)
    assert opts["seccomp_profile"] == "unconfined"
    assert opts["no_new_privileges"] is True
    assert opts["apparmor_profile"] == "unconfined"
    assert isolation_options(HostConfig(security_opt=["systempaths=unconfined"]), _pid_of)[
        "unmask_paths"
    ]
    with pytest.raises(InvalidArgument):
        isolation_options(HostConfig(security_opt=["no-new-privileges=maybe"]), _pid_of)


def test_namespace_modes() -> None:
    hc = HostConfig(pid_mode="container:web", ipc_mode="host", uts_mode="host",
                    cgroupns_mode="private")  # fmt: skip
    ns = isolation_options(hc, _pid_of)["namespaces"]
    assert ns == {"pid": "/proc/4242/ns/pid", "ipc": "host", "uts": "host", "cgroup": ""}
    assert (
        "cgroup" not in isolation_options(HostConfig(cgroupns_mode="host"), _pid_of)["namespaces"]
    )
    with pytest.raises(Conflict):
        isolation_options(HostConfig(ipc_mode="container:db"), _pid_of)


def test_devices_ulimits_and_blkio() -> None:
    hc = HostConfig(
        devices=[{"PathOnHost": "/dev/null", "CgroupPermissions": "rw"}],
        ulimits=[{"Name": "nofile", "Soft": 10, "Hard": 20}],
        blkio_device_read_bps=[{"Path": "/dev/sda", "Rate": 5}],
    )
    opts = isolation_options(hc, _pid_of)
    (dev,) = opts["devices"]
    assert (dev.path_on_host, dev.path_in_container, dev.permissions) == (
        "/dev/null",
        "/dev/null",
        "rw",
    )
    assert (opts["ulimits"][0].name, opts["ulimits"][0].soft) == ("nofile", 10)
    assert (opts["device_read_bps"][0].path, opts["device_read_bps"][0].rate) == ("/dev/sda", 5)
    with pytest.raises(InvalidArgument, match="device mode"):
        isolation_options(
            HostConfig(devices=[{"PathOnHost": "/dev/x", "CgroupPermissions": "z"}]), _pid_of
        )


def test_update_resources() -> None:
    res = _resources({"memory": 1 << 20, "nano_cpus": 500_000_000, "pids_limit": 0})
    assert res == {
        "memory": {"limit": 1 << 20},
        "cpu": {"period": 100000, "quota": 50000},
        "pids": {"limit": -1},
    }


def test_userns_remap_ranges_and_shift(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subgid = tmp_path / "subgid"
    subuid.write_text("someone:1000:5\ndockremap:200000:65536\n")
    subgid.write_text("dockremap:300000:65536\n")
    remap = resolve("default", str(subuid), str(subgid))
    assert remap == Remap(200000, 65536, 300000, 65536)
    with pytest.raises(InvalidConfig, match="no subordinate uid range for 'nobody-here'"):
        resolve("nobody-here", str(subuid), str(subgid))
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (rootfs / "link").symlink_to("/etc/passwd")
    shift_rootfs(rootfs, remap)
    for p in (rootfs, rootfs / "etc", rootfs / "etc" / "passwd"):
        assert (p.stat().st_uid, p.stat().st_gid) == (200000, 300000)
    assert (rootfs / "link").lstat().st_uid == 200000
    shift_rootfs(rootfs, remap)  # a second start does not shift again
    assert (rootfs / "etc").stat().st_uid == 200000


def test_default_cgroup_namespace_follows_the_hosts_cgroup_version() -> None:
    # dockerd's default: private on a cgroup v2 host, the host's on v1 (the daemon passes
    # what it read once at start; --cgroupns overrides either)
    assert isolation_options(HostConfig(), _pid_of, cgroup_v2=True)["namespaces"]["cgroup"] == ""
    assert "cgroup" not in isolation_options(HostConfig(), _pid_of, cgroup_v2=False)["namespaces"]
    private = isolation_options(HostConfig(cgroupns_mode="private"), _pid_of, cgroup_v2=False)
    assert private["namespaces"]["cgroup"] == ""
