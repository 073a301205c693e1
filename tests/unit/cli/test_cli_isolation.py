"""`run` isolation flags -> HostConfig fields, with docker's spellings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.cli.isolation import host_config_fields, parse_device, parse_ulimit
from hafen.cli.runopts import RunOptions, build_create_body
from hafen.errors import InvalidArgument


def test_ulimit_forms() -> None:
    assert parse_ulimit("nofile=1024:2048") == {"Name": "nofile", "Soft": 1024, "Hard": 2048}
    assert parse_ulimit("nproc=10") == {"Name": "nproc", "Soft": 10, "Hard": 10}
    for bad in ("nofile", "nofile=x", "nofile=5:1"):
        with pytest.raises(InvalidArgument):
            parse_ulimit(bad)


def test_device_forms() -> None:
    assert parse_device("/dev/fuse") == {
        "PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"
    }  # fmt: skip
    assert parse_device("/dev/sda:/dev/xvda:r") == {
        "PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"
    }  # fmt: skip
    assert parse_device("/dev/null:rw")["CgroupPermissions"] == "rw"
    with pytest.raises(InvalidArgument):
        parse_device("/a:/b:/c:rw")


def test_host_config_fields(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    host = host_config_fields(
        {
            "memory_swap": "-1", "memory_reservation": "32m", "oom_kill_disable": True,
            "oom_score_adj": 10, "cpu_shares": 512, "cpuset_mems": "0", "blkio_weight": 300,
            "device_read_bps": ["/dev/sda:1mb"], "device_write_iops": ["/dev/sda:100"],
            "blkio_weight_device": ["/dev/sda:200"], "security_opt": [f"seccomp={profile}",
            "no-new-privileges"], "sysctl": ["net.core.somaxconn=1024"], "pid": "host",
            "cgroupns": "private", "shm_size": "1g", "group_add": ["audio"], "runtime": "runc",
        }
    )  # fmt: skip
    assert host["MemorySwap"] == -1 and host["MemoryReservation"] == 32 << 20
    assert host["OomKillDisable"] is True and host["OomScoreAdj"] == 10
    assert host["BlkioDeviceReadBps"] == [{"Path": "/dev/sda", "Rate": 1 << 20}]
    assert host["BlkioDeviceWriteIOps"] == [{"Path": "/dev/sda", "Rate": 100}]
    assert host["BlkioWeightDevice"] == [{"Path": "/dev/sda", "Weight": 200}]
    # the docker CLI sends a profile file's content, not its path
    assert host["SecurityOpt"] == [
        'seccomp={"defaultAction": "SCMP_ACT_ALLOW"}',
        "no-new-privileges",
    ]
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["PidMode"] == "host" and host["CgroupnsMode"] == "private"
    assert host["ShmSize"] == 1 << 30 and host["GroupAdd"] == ["audio"]
    assert host["Runtime"] == "runc"
    with pytest.raises(InvalidArgument, match="oom-score-adj"):
        host_config_fields({"oom_score_adj": 5000})
    with pytest.raises(InvalidArgument, match="seccomp profile"):
        host_config_fields({"security_opt": [f"seccomp={tmp_path}/missing.json"]})
    with pytest.raises(InvalidArgument, match="sysctl"):
        host_config_fields({"sysctl": ["novalue"]})


def test_create_body_carries_the_isolation_flags() -> None:
    body = build_create_body(
        RunOptions(image="busybox", isolation={"ulimit": ["nofile=1:2"], "ipc": "host"})
    )
    assert body["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 1, "Hard": 2}]
    assert body["HostConfig"]["IpcMode"] == "host"
