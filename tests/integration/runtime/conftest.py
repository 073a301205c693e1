"""Busybox bundles and runtime drivers for the OCI runtime suite.

The same tests run against hafen-runtime and the peers (runc, crun) as the oracle.
``make_busybox_bundle`` writes a runc-style config.json of our own making over a rootfs
built from the host's static busybox. Each test gets its own runtime root and cgroup
parent (``/hafen-test-<n>/``); teardown force-deletes what the test left, removes those
cgroups and kills nothing it did not start.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hafen.runtime import command as hafen_runtime_command

SRC = str(Path(__file__).resolve().parents[3] / "src")
BUSYBOX = "/bin/busybox"
CGROUP_PARENT = "hafen-test"

DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def _busybox_applets() -> list[str]:
    out = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


_APPLETS: list[str] | None = None


def make_rootfs(rootfs: Path) -> Path:
    """A busybox rootfs: /bin/busybox plus one symlink per applet."""
    global _APPLETS
    if _APPLETS is None:
        _APPLETS = _busybox_applets()
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in _APPLETS:
        dest = rootfs / applet.lstrip("/")
        if dest.exists() or dest.is_symlink():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to("/bin/busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    return rootfs


def base_config(args: list[str]) -> dict[str, Any]:
    """The shape of ``runc spec``, written by hand (terminal off, our cgroup path)."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {k: list(DEFAULT_CAPS) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "hafen",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "cgroupsPath": f"/{CGROUP_PARENT}/{uuid.uuid4().hex[:12]}",
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"},
                {"type": "network"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def make_busybox_bundle(tmp_path: Path, args: list[str], **overrides: Any) -> Path:
    """A bundle dir (config.json + busybox rootfs) under ``tmp_path``.

    ``overrides`` are deep-merged into the config by JSON key: dicts merge, anything else
    replaces (``process={"cwd": "/w"}``, ``linux={"resources": {...}}``).
    """
    bundle = tmp_path / f"bundle-{uuid.uuid4().hex[:8]}"
    bundle.mkdir(parents=True)
    make_rootfs(bundle / "rootfs")
    config = _merge(base_config(args), overrides)
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def bundle_config(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "config.json").read_text())
    return data


def cgroup_dirs(cgroups_path: str) -> list[Path]:
    """Where a cgroupsPath lands on this (v1/hybrid) host: one dir per hierarchy."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return [root / cgroups_path.lstrip("/")]
    out = []
    for d in sorted(root.iterdir()):
        if d.name == "unified" or d.is_symlink() or not (d / "cgroup.procs").exists():
            continue
        out.append(d / cgroups_path.lstrip("/"))
    return out


@dataclass
class Runtime:
    """One OCI runtime binary with a private --root."""

    name: str
    argv: list[str]
    root: Path
    env: dict[str, str]

    def cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", str(self.root), *args]

    def __call__(
        self, *args: str, timeout: float = 60, check: bool = False, **kw: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run a verb. Output goes through files, not pipes: a created container's init
        inherits create's stdio and would hold a pipe open for as long as it lives."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        capture = kw.pop("capture_output", True)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            if capture:
                kw.setdefault("stdout", out)
                kw.setdefault("stderr", err)
            result = subprocess.run(self.cmd(*args), text=True, timeout=timeout, env=self.env, **kw)
            out.seek(0)
            err.seek(0)
            result.stdout = out.read() if kw.get("stdout") is out else result.stdout
            result.stderr = err.read() if kw.get("stderr") is err else result.stderr
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name} {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.cmd(*args), text=True, env=self.env, **kw)

    def state(self, cid: str) -> dict[str, Any]:
        out = self("state", cid, check=True).stdout
        data: dict[str, Any] = json.loads(out)
        return data

    def ids(self) -> list[str]:
        if not self.root.exists():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir()]


def hafen_runtime_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC
    return env


# crun 1.8 refuses hybrid hosts whose cgroup2 mount holds controllers; as the task notes
# say, it runs in a private mount namespace with /sys/fs/cgroup/unified unmounted there
# (the container keeps that namespace's view; its v1 cgroups are the host's).
_CRUN_IN_PRIVATE_MOUNTS = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec /usr/bin/crun "$@"'
PEERS = {
    "hafen": hafen_runtime_command(sys.executable),
    "runc": ["/usr/sbin/runc"],
    "crun": ["/usr/bin/crun"],
}


def _hybrid_cgroups() -> bool:
    controllers = Path("/sys/fs/cgroup/unified/cgroup.controllers")
    return controllers.exists() and Path("/sys/fs/cgroup/memory").is_dir()


def _argv(name: str) -> list[str]:
    if name == "crun" and _hybrid_cgroups():
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                _CRUN_IN_PRIVATE_MOUNTS, "crun"]  # fmt: skip
    return PEERS[name]


_PROBES: dict[str, str] = {}


def _probe(name: str, tmp_path: Path) -> str:
    """Why this peer cannot run containers on this host ("" when it can); cached."""
    if name not in _PROBES:
        rt = Runtime(name, _argv(name), tmp_path / f"probe-{name}", hafen_runtime_env())
        bundle = make_busybox_bundle(tmp_path / "probe", ["true"])
        result = rt("run", "--bundle", str(bundle), f"probe-{uuid.uuid4().hex[:8]}")
        _PROBES[name] = "" if result.returncode == 0 else result.stderr.strip()[-200:]
        _cleanup(rt, tmp_path)
        _remove_test_cgroups(_bundle_cgroups(tmp_path / "probe"))
        shutil.rmtree(tmp_path / "probe", ignore_errors=True)
    return _PROBES[name]


def _make_runtime(name: str, tmp_path: Path) -> Runtime:
    argv = _argv(name)
    if not os.path.exists(PEERS[name][0]):
        pytest.skip(f"{name} is not installed")
    if name != "hafen":
        why = _probe(name, tmp_path)
        if why:
            # e.g. crun 1.8 refuses hybrid hosts whose cgroup2 has controllers.
            pytest.skip(f"{name} cannot run containers on this host: {why}")
    root = tmp_path / f"{name}-root"
    return Runtime(name, argv, root, hafen_runtime_env())


def _cleanup(rt: Runtime, bundles_parent: Path) -> None:
    for cid in rt.ids():
        rt("delete", "--force", cid, check=False)
    shutil.rmtree(rt.root, ignore_errors=True)


def _remove_test_cgroups(config_paths: list[str]) -> None:
    unified = Path("/sys/fs/cgroup/unified")
    for path in config_paths:
        # runc also places hybrid hosts' containers in the (empty) cgroup2 hierarchy.
        extra = [unified / path.lstrip("/")] if unified.is_dir() else []
        for d in [*cgroup_dirs(path), *extra]:
            with contextlib.suppress(OSError):
                d.rmdir()
            with contextlib.suppress(OSError):
                d.parent.rmdir()  # the shared test parent, once no other test uses it


@pytest.fixture
def hafen_rt(tmp_path: Path) -> Iterator[Runtime]:
    """hafen-runtime only (behaviour the peers do not share, or hafen's own errors)."""
    rt = _make_runtime("hafen", tmp_path)
    yield rt
    _cleanup(rt, tmp_path)
    _remove_test_cgroups(_bundle_cgroups(tmp_path))


@pytest.fixture(params=["hafen", "runc"])
def any_rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """hafen-runtime and runc, whose CLI hafen's follows: the same test, verbs and error
    texts included, must pass on both. crun (no `events`, its own messages and state
    names mid-create) joins the observable-behaviour oracle in test_runtime_oracle."""
    rt = _make_runtime(request.param, tmp_path)
    yield rt
    _cleanup(rt, tmp_path)
    _remove_test_cgroups(_bundle_cgroups(tmp_path))


def _bundle_cgroups(tmp_path: Path) -> list[str]:
    paths = []
    for cfg in tmp_path.glob("bundle-*/config.json"):
        with contextlib.suppress(ValueError, OSError, KeyError):
            paths.append(json.loads(cfg.read_text())["linux"]["cgroupsPath"])
    return paths


def run_in(rt: Runtime, bundle: Path, cid: str = "", timeout: float = 60) -> tuple[int, str, str]:
    """``<rt> run`` in the foreground; (exit status, stdout, stderr)."""
    cid = cid or f"t-{uuid.uuid4().hex[:10]}"
    result = rt("run", "--bundle", str(bundle), cid, timeout=timeout)
    return result.returncode, result.stdout, result.stderr
