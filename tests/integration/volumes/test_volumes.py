"""Volumes end to end: named and anonymous volumes, copy-up, binds, tmpfs, --volumes-from."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Hafend

DOCKER = "/usr/local/bin/docker"


def _volumes(hafend: Hafend) -> set[str]:
    return set(hafend.cli("volume", "ls", "-q").stdout.split())


def test_named_volume_data_outlives_the_container(hafend: Hafend) -> None:
    hafend.cli("run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo moin > /data/f")
    assert "keep" in _volumes(hafend)
    out = hafend.cli("run", "--rm", "-v", "keep:/data", "busybox", "cat", "/data/f").stdout
    assert out == "moin\n"
    doc = json.loads(hafend.cli("volume", "inspect", "keep").stdout)[0]
    assert doc["Driver"] == "local" and doc["Name"] == "keep" and doc["Scope"] == "local"
    assert Path(doc["Mountpoint"], "f").read_text() == "moin\n"
    hafend.cli("volume", "rm", "keep")
    assert not Path(doc["Mountpoint"]).exists()


def test_new_volume_is_filled_from_the_image_copy_up(hafend: Hafend) -> None:
    out = hafend.cli("run", "--rm", "-v", "usr-copy:/usr", "busybox", "ls", "/usr").stdout
    assert out.split() == ["bin", "sbin"]
    mountpoint = json.loads(hafend.cli("volume", "inspect", "usr-copy").stdout)[0]["Mountpoint"]
    assert sorted(os.listdir(mountpoint)) == ["bin", "sbin"]
    # nocopy leaves a new volume empty
    out = hafend.cli(
        "run", "--rm", "--mount", "type=volume,src=usr-nocopy,dst=/usr,volume-nocopy",
        "busybox", "ls", "-A", "/usr",
    ).stdout  # fmt: skip
    assert out == ""
    hafend.cli("volume", "rm", "usr-copy", "usr-nocopy")


def test_volumes_from_shares_and_ro_refuses_writes(hafend: Hafend) -> None:
    hafend.cli("create", "--name", "vstore", "-v", "/shared", "busybox", "true")
    try:
        hafend.cli("run", "--rm", "--volumes-from", "vstore", "busybox", "sh", "-c",
                   "echo shared > /shared/x")  # fmt: skip
        out = hafend.cli("run", "--rm", "--volumes-from", "vstore:ro", "busybox", "sh", "-c",
                         "cat /shared/x; echo no > /shared/y", check=False)  # fmt: skip
        assert out.stdout == "shared\n"
        assert out.returncode != 0 and "Read-only file system" in out.stderr
        mounts = json.loads(hafend.cli("inspect", "vstore").stdout)[0]["Mounts"]
        assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/shared")]
        anon = mounts[0]["Name"]
        assert len(anon) == 64 and anon in _volumes(hafend)
    finally:
        hafend.cli("rm", "-v", "vstore")
    assert anon not in _volumes(hafend)  # rm -v took the anonymous volume


def test_read_only_named_volume_and_mount_refuse_writes(hafend: Hafend) -> None:
    for flag in ("-v", "--mount"):
        spec = (
            "ro-vol:/data:ro" if flag == "-v" else "type=volume,source=ro-vol,target=/data,readonly"
        )
        out = hafend.cli("run", "--rm", flag, spec, "busybox", "touch", "/data/f", check=False)
        assert out.returncode != 0 and "Read-only file system" in out.stderr
    hafend.cli("volume", "rm", "ro-vol")


def test_bind_mounts_read_write_and_read_only(hafend: Hafend, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host\n")
    out = hafend.cli("run", "--rm", "-v", f"{tmp_path}:/host", "busybox", "sh", "-c",
                     "cat /host/in.txt; echo back > /host/out.txt").stdout  # fmt: skip
    assert out == "from host\n"
    assert (tmp_path / "out.txt").read_text() == "back\n"
    out = hafend.cli("run", "--rm", "--mount", f"type=bind,src={tmp_path},dst=/host,ro",
                     "busybox", "rm", "/host/in.txt", check=False)  # fmt: skip
    assert out.returncode != 0 and "Read-only file system" in out.stderr
    assert (tmp_path / "in.txt").exists()


def test_a_volume_in_use_cannot_be_removed(hafend: Hafend) -> None:
    cid = hafend.cli("create", "-v", "busy:/data", "busybox", "true").stdout.strip()
    out = hafend.cli("volume", "rm", "busy", check=False)
    assert out.returncode == 1
    assert "volume is in use" in out.stderr and cid in out.stderr
    forced = hafend.cli("volume", "rm", "-f", "busy", check=False)  # -f: not when in use
    assert forced.returncode == 1 and "volume is in use" in forced.stderr
    assert "busy" in _volumes(hafend)
    hafend.cli("rm", cid)
    hafend.cli("volume", "rm", "busy")
    assert "busy" not in _volumes(hafend)


def test_anonymous_volumes_go_with_rm_flag_and_prune(hafend: Hafend) -> None:
    before = _volumes(hafend)
    hafend.cli("run", "--rm", "-v", "/anon", "busybox", "true")
    assert _volumes(hafend) == before  # --rm removed it
    cid = hafend.cli("create", "-v", "/anon", "busybox", "true").stdout.strip()
    hafend.cli("rm", cid)  # without -v the volume stays
    left = _volumes(hafend) - before
    assert len(left) == 1
    hafend.cli("volume", "create", "named-stays")
    out = hafend.cli("volume", "prune", "-f").stdout
    assert left.pop() in out
    assert "named-stays" in _volumes(hafend)
    hafend.cli("volume", "rm", "named-stays")


def test_tmpfs_mounts(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,dst=/t2,tmpfs-size=2m",
        "busybox", "sh", "-c", "grep -E ' /(scratch|t2) ' /proc/mounts",
    ).stdout  # fmt: skip
    lines = sorted(out.splitlines())
    assert lines[0].startswith("tmpfs /scratch tmpfs") and "size=1024k" in lines[0]
    assert lines[1].startswith("tmpfs /t2 tmpfs") and "size=2048k" in lines[1]


def test_local_driver_mounts_a_typed_volume_while_in_use(hafend: Hafend) -> None:
    hafend.cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
               "tmpvol")  # fmt: skip
    mountpoint = json.loads(hafend.cli("volume", "inspect", "tmpvol").stdout)[0]["Mountpoint"]
    out = hafend.cli("run", "--rm", "-v", "tmpvol:/data", "busybox", "sh", "-c",
                     "grep ' /data ' /proc/mounts").stdout  # fmt: skip
    assert out.startswith("tmpfs /data tmpfs")
    assert not os.path.ismount(mountpoint)  # unmounted when the container stopped
    hafend.cli("volume", "rm", "tmpvol")


def test_bind_volume_of_a_host_dir_on_the_same_filesystem_is_unmounted_not_emptied(
    hafend: Hafend,
) -> None:
    # a same-filesystem bind mount has the parent's device number: os.path.ismount misses
    # it, and removing the volume would then delete the host directory through the mount
    host_dir = hafend.root / f"host-data-{os.getpid()}"
    host_dir.mkdir()
    (host_dir / "keep.txt").write_text("precious")
    hafend.cli("volume", "create", "-o", "type=none", "-o", "o=bind", "-o",
               f"device={host_dir}", "bindvol")  # fmt: skip
    out = hafend.cli("run", "--rm", "-v", "bindvol:/data", "busybox", "sh", "-c",
                     "cat /data/keep.txt; echo new > /data/new.txt").stdout  # fmt: skip
    assert out.strip() == "precious"
    mountpoint = json.loads(hafend.cli("volume", "inspect", "bindvol").stdout)[0]["Mountpoint"]
    with open("/proc/self/mountinfo") as f:
        assert not any(line.split()[4] == mountpoint for line in f)
    hafend.cli("volume", "rm", "bindvol")
    assert (host_dir / "keep.txt").read_text() == "precious"
    assert (host_dir / "new.txt").read_text() == "new\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (["-v", "data:relative"], "invalid volume specification"),
        (["-v", "data:/x:bogus"], "invalid mode: bogus"),
        (["--mount", "type=bind,src=/no/such/dir-hafen,dst=/x"], "bind source path does not exist"),
        (["--mount", "type=floppy,dst=/x"], "mount type unknown"),
        (["-v", "/a:/dup", "-v", "/b:/dup"], "Duplicate mount point: /dup"),
        (["--volumes-from", "no-such-container-x"], "No such container"),
    ],
)
def test_bad_mount_specs_are_refused_and_leave_nothing(
    hafend: Hafend, args: list[str], message: str
) -> None:
    before_ps = hafend.cli("ps", "-aq").stdout
    before_vols = _volumes(hafend)
    out = hafend.cli("create", *args, "busybox", "true", check=False)
    assert out.returncode == 125
    assert message in out.stderr
    assert hafend.cli("ps", "-aq").stdout == before_ps
    assert _volumes(hafend) == before_vols


def test_volume_create_refuses_unknown_options(hafend: Hafend) -> None:
    out = hafend.cli("volume", "create", "-o", "colour=blue", "bad-opts", check=False)
    assert out.returncode == 1 and "invalid option key: 'colour'" in out.stderr
    assert "bad-opts" not in _volumes(hafend)


def test_docker_cli_volume_verbs(hafend: Hafend) -> None:
    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, env=hafend.env,
                              timeout=60, check=True)  # fmt: skip

    assert docker("volume", "create", "--label", "team=kiel", "dockervol").stdout == "dockervol\n"
    ls = docker("volume", "ls", "--filter", "label=team=kiel", "--format", "{{.Name}} {{.Driver}}")
    assert ls.stdout == "dockervol local\n"
    out = docker(
        "run", "--rm", "-v", "dockervol:/d", "busybox", "sh", "-c", "echo ok > /d/f; cat /d/f"
    )
    assert out.stdout == "ok\n"
    assert docker("volume", "rm", "dockervol").stdout == "dockervol\n"
    assert "dockervol" not in _volumes(hafend)


def test_mount_volume_opt_creates_a_typed_volume(hafend: Hafend) -> None:
    out = hafend.cli(
        "run", "--rm", "--mount",
        "type=volume,src=optvol,dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs",
        "busybox", "sh", "-c", "grep ' /d ' /proc/mounts",
    ).stdout  # fmt: skip
    assert out.startswith("tmpfs /d tmpfs")
    doc = json.loads(hafend.cli("volume", "inspect", "optvol").stdout)[0]
    assert doc["Options"] == {"type": "tmpfs", "device": "tmpfs"}
    hafend.cli("volume", "rm", "optvol")


def test_image_volume_is_an_anonymous_volume_filled_from_the_image(
    hafend: Hafend, tmp_path: Path
) -> None:
    """VOLUME in the image: each container gets a new anonymous volume holding the
    image's content at that path (copy-up); --rm and rm -v take it, plain rm keeps it,
    prune removes it only once no container uses it."""
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir /seeded && echo from-image > /seeded/f\nVOLUME /seeded\n"
    )
    hafend.cli("build", "-q", "-t", "vol-image", str(tmp_path))
    before = _volumes(hafend)
    try:
        out = hafend.cli(
            "run", "--rm", "vol-image", "sh", "-c", "cat /seeded/f; grep ' /seeded ' /proc/mounts"
        )
        assert out.stdout.startswith("from-image\n") and " /seeded " in out.stdout
        assert _volumes(hafend) == before  # --rm took the anonymous volume

        cid = hafend.cli("create", "vol-image", "sh", "-c", "echo mine >> /seeded/f").stdout.strip()
        mounts = json.loads(hafend.cli("inspect", cid).stdout)[0]["Mounts"]
        assert [(m["Type"], m["Destination"], m["RW"]) for m in mounts] == [
            ("volume", "/seeded", True)
        ]
        anon = mounts[0]["Name"]
        assert len(anon) == 64 and _volumes(hafend) == before | {anon}
        hafend.cli("start", "-a", cid)
        out = hafend.cli("run", "--rm", "-v", f"{anon}:/v", "busybox", "cat", "/v/f").stdout
        assert out == "from-image\nmine\n"  # the container's writes went to the volume
        pruned = hafend.cli("volume", "prune", "-f").stdout
        assert anon not in pruned and anon in _volumes(hafend)  # in use by cid
        hafend.cli("rm", "-v", cid)
        assert anon not in _volumes(hafend)

        cid = hafend.cli("create", "vol-image", "true").stdout.strip()
        anon = json.loads(hafend.cli("inspect", cid).stdout)[0]["Mounts"][0]["Name"]
        hafend.cli("rm", cid)  # without -v the volume stays, dangling
        assert anon in _volumes(hafend)
        dangling = hafend.cli("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
        assert anon in dangling
        hafend.cli("volume", "rm", anon)
        # a named volume there instead: copy-up fills it on first use, never again
        hafend.cli("run", "--rm", "-v", "seeded-named:/seeded", "vol-image", "sh", "-c",
                   "echo changed > /seeded/f")  # fmt: skip
        out = hafend.cli("run", "--rm", "-v", "seeded-named:/seeded", "vol-image", "cat",
                         "/seeded/f").stdout  # fmt: skip
        assert out == "changed\n"
        hafend.cli("volume", "rm", "seeded-named")
    finally:
        hafend.cli("rmi", "-f", "vol-image", check=False)
