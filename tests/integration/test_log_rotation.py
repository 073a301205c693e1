"""json-file rotation (--log-opt max-size/max-file, daemon.json defaults), the none driver."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from pathlib import Path

from tests.conftest import Hafend


def test_rotation_keeps_max_file_files_and_logs_reads_across_them(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=3", "busybox", "sh",
        "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ).stdout.strip()  # fmt: skip
    try:
        assert hafend.cli("wait", cid).stdout.strip() == "0"
        log_path = Path(hafend.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
        files = sorted(
            p.name for p in log_path.parent.iterdir() if p.name.startswith(log_path.name)
        )
        assert files == [log_path.name, log_path.name + ".1", log_path.name + ".2"]
        for name in files:
            assert os.path.getsize(log_path.parent / name) <= 2048
        lines = hafend.cli("logs", cid).stdout.splitlines()
        # the oldest records were rotated away; what is left is in order and ends last
        assert lines[-1] == "line-299" and len(lines) < 300
        numbers = [int(line.split("-")[1]) for line in lines]
        assert numbers == list(range(numbers[0], 300))
        assert hafend.cli("logs", "--tail", "5", cid).stdout.split() == [
            f"line-{i}" for i in range(295, 300)
        ]
        config = json.loads(hafend.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}",
                                       cid).stdout)  # fmt: skip
        assert config == {"Type": "json-file", "Config": {"max-size": "2k", "max-file": "3"}}
    finally:
        hafend.cli("rm", "-f", cid)


def test_follow_continues_across_a_rotation(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "busybox", "sh",
        "-c", "sleep 1; i=0; while [ $i -lt 60 ]; do echo row-$i; i=$((i+1)); usleep 20000; done",
    ).stdout.strip()  # fmt: skip
    try:
        out = hafend.cli("logs", "-f", cid, timeout=30).stdout.split()
        assert out == [f"row-{i}" for i in range(60)]
    finally:
        hafend.cli("rm", "-f", cid)


def test_follow_through_fast_rotations_loses_nothing_retained(hafend: Hafend) -> None:
    """`logs -f` with max-size=1k max-file=5 while 1,500 lines are written fast: in order,
    none twice, and at least everything the files still hold at the end (a follower that
    keeps up gets every line; one left behind by the machine's load can only miss what
    rotation dropped before it got there)."""
    cid = hafend.cli(
        "run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=5", "busybox", "sh",
        "-c", "sleep 1; i=0; while [ $i -lt 1500 ]; do echo n-$i; i=$((i+1)); done",
    ).stdout.strip()  # fmt: skip
    try:
        followed = hafend.cli("logs", "-f", cid, timeout=60).stdout.split()
        numbers = [int(word.split("-")[1]) for word in followed]
        assert numbers[0] == 0 and numbers[-1] == 1499
        assert numbers == sorted(set(numbers))
        retained = [int(w.split("-")[1]) for w in hafend.cli("logs", cid).stdout.split()]
        assert numbers[-len(retained) :] == retained
        assert len(retained) < 1500  # rotation did drop the oldest
    finally:
        hafend.cli("rm", "-f", cid)


def test_compressed_rotation_is_read_back_transparently(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt",
        "compress=true", "busybox", "sh", "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ).stdout.strip()  # fmt: skip
    try:
        assert hafend.cli("wait", cid).stdout.strip() == "0"
        log_path = Path(hafend.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
        files = sorted(
            p.name for p in log_path.parent.iterdir() if p.name.startswith(log_path.name)
        )
        assert files == [log_path.name, log_path.name + ".1.gz", log_path.name + ".2.gz"]
        with gzip.open(log_path.parent / files[1], "rt") as f:  # real gzip, json-file inside
            assert json.loads(f.readline())["log"].startswith("line-")
        lines = hafend.cli("logs", cid).stdout.split()
        numbers = [int(line.split("-")[1]) for line in lines]
        assert numbers == list(range(numbers[0], 300)) and numbers[0] > 0
        assert hafend.cli("logs", "--tail", "30", cid).stdout.split() == lines[-30:]
        assert hafend.cli("logs", "-f", cid).stdout.split() == lines
    finally:
        hafend.cli("rm", "-f", cid)


def test_bad_log_options_and_the_none_driver(hafend: Hafend) -> None:
    r = hafend.cli("run", "--log-opt", "max-size=lots", "busybox", "true", check=False)
    assert r.returncode == 125 and "invalid size" in r.stderr
    r = hafend.cli("run", "--log-opt", "colour=blue", "busybox", "true", check=False)
    assert r.returncode == 125 and "unknown log opt 'colour'" in r.stderr
    r = hafend.cli("run", "--log-opt", "mode=async", "busybox", "true", check=False)
    assert r.returncode == 125 and "logging mode not supported: async" in r.stderr
    r = hafend.cli("run", "--log-opt", "max-buffer-size=1m", "busybox", "true", check=False)
    assert r.returncode == 125 and "only supported with 'mode=non-blocking'" in r.stderr
    r = hafend.cli("run", "--log-opt", "compress=true", "busybox", "true", check=False)
    assert r.returncode == 125 and "compress cannot be true when max-file" in r.stderr
    r = hafend.cli("run", "--log-driver", "syslog", "busybox", "true", check=False)
    assert r.returncode == 125 and "unsupported log driver" in r.stderr
    cid = hafend.cli("run", "-d", "--log-driver", "none", "busybox", "echo", "hi").stdout.strip()
    try:
        hafend.cli("wait", cid)
        log_path = hafend.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip()
        assert not os.path.exists(log_path) or os.path.getsize(log_path) == 0
        r = hafend.cli("logs", cid, check=False)  # as dockerd: nothing to read, said so
        assert r.returncode != 0
        assert "configured logging driver does not support reading" in r.stderr
    finally:
        hafend.cli("rm", "-f", cid)


def test_daemon_json_log_opts_are_the_default(fresh_hafend: Hafend) -> None:
    d = fresh_hafend
    d.kill()
    (d.root / "daemon.json").write_text(json.dumps({"log-opts": {"max-size": "1k"}}))
    d.start()
    cid = d.cli("run", "-d", "busybox", "sh", "-c", "seq 1 200").stdout.strip()
    d.cli("wait", cid)
    time.sleep(0.2)
    config = json.loads(d.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout)
    assert config["Config"] == {"max-size": "1k"}
    log_path = Path(d.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
    assert os.path.getsize(log_path) <= 1024


def test_daemon_log_driver_is_the_default_and_its_opts_merge_key_by_key(
    fresh_hafend: Hafend, tmp_path: Path
) -> None:
    d = fresh_hafend
    d.kill()
    (d.root / "daemon.json").write_text(
        json.dumps({"log-driver": "local", "log-opts": {"max-size": "2k", "max-file": "3"}})
    )
    d.start()

    def log_config(*flags: str) -> dict[str, object]:
        cid = d.cli("create", *flags, "busybox", "true").stdout.strip()
        out = d.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}", cid).stdout
        return dict(json.loads(out))

    # no driver named (the docker CLI sends an empty Type): the daemon's, with its options
    assert log_config() == {"Type": "local", "Config": {"max-size": "2k", "max-file": "3"}}
    # the daemon's driver with an option of the container's: the rest from daemon.json
    assert log_config("--log-opt", "max-file=5") == {
        "Type": "local",
        "Config": {"max-size": "2k", "max-file": "5"},
    }
    # another driver: none of the daemon's options
    assert log_config("--log-driver", "json-file") == {"Type": "json-file", "Config": {}}
    # and through the docker CLI, which always sends LogConfig
    env = {**d.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    out = subprocess.run(
        ["docker", "create", "busybox", "true"], capture_output=True, text=True, env=env,
        check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    got = json.loads(d.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}", out).stdout)
    assert got == {"Type": "local", "Config": {"max-size": "2k", "max-file": "3"}}
