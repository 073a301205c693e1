"""Real containers under real shims: busybox bundles run by runc.

``busybox_rootfs`` is built once per session from the host's static busybox (the binary
plus one symlink per applet). Each test bundle is a ``runc spec`` config (generated once)
with the test's own args/terminal, pointing at that shared read-only rootfs. State dirs
live under short ``/tmp`` paths so that socket paths fit ``sun_path``.

The ``shims`` fixture launches shims through the real launcher (``python -S -m
hafen.shim``) and, at teardown, force-deletes every container it made with runc, waits
for the shims to leave and SIGKILLs, by pid, only shims it launched that are still there.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hafen.shim.client import ShimClient, ShimInfo, launch_shim

RUNC = "/usr/sbin/runc"
# the suite runs against runc; HAFEN_SHIM_TEST_RUNTIME="python3 -S -m hafen.runtime" (any
# runc-compatible command line) runs it against another runtime
RUNTIME = shlex.split(os.environ.get("HAFEN_SHIM_TEST_RUNTIME", RUNC))
BUSYBOX = "/bin/busybox"
SRC = str(Path(__file__).resolve().parents[3] / "src")
SHIM_COMMAND = [sys.executable, "-S", "-P", "-m", "hafen.shim"]
SHIM_ENV = {"PYTHONPATH": SRC, "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}

T = TypeVar("T")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which(RUNTIME[0]) or not os.path.exists(BUSYBOX),
    reason="needs root, an OCI runtime (runc) and a static busybox",
)


def run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    """Run one coroutine to completion on a fresh loop, bounded by ``timeout``."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rootfs = tmp_path_factory.mktemp("shim-rootfs") / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        dest = rootfs / applet.lstrip("/")
        if dest.exists() or dest.is_symlink():
            continue  # bin/busybox itself, or an applet listed twice
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to("/bin/busybox")
    for d in ("proc", "sys", "dev", "tmp", "etc", "root"):
        (rootfs / d).mkdir(exist_ok=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return rootfs


@pytest.fixture(scope="session")
def runc_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The config.json ``runc spec`` writes (not rootless), loaded once."""
    d = tmp_path_factory.mktemp("shim-spec")
    subprocess.run([RUNC, "spec"], cwd=d, check=True)
    spec: dict[str, Any] = json.loads((d / "config.json").read_text())
    return spec


@dataclass
class Launched:
    """One launched shim and the paths around it."""

    id: str
    bundle: Path
    state_dir: Path
    log_path: Path
    info: ShimInfo
    client: ShimClient

    def log_records(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]


@dataclass
class Shims:
    """Launches shims for a test and cleans up after them."""

    rootfs: Path
    spec: dict[str, Any]
    root: Path
    runtime_root: Path
    launched: list[Launched] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def bundle(
        self,
        args: list[str],
        tty: bool = False,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[str, Path]:
        cid = f"st{uuid.uuid4().hex[:12]}"  # unique within the 10 chars of shim-<id>
        bundle = self.root / "bundles" / cid
        bundle.mkdir(parents=True)
        spec = copy.deepcopy(self.spec)
        spec["process"]["args"] = args
        spec["process"]["terminal"] = tty
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["hostname"] = "shimtest"
        if edit is not None:
            edit(spec)
        (bundle / "config.json").write_text(json.dumps(spec))
        return cid, bundle

    def state_dir_for(self, cid: str) -> Path:
        return self.root / cid[-12:]

    def launch(self, args: list[str], **options: Any) -> Launched:
        """``launch_async`` (same keyword options) run to completion on a loop of its own."""
        return run(self.launch_async(args, **options))

    async def launch_async(
        self,
        args: list[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdin_once: bool = False,
        state_dir: Path | None = None,
        runtime: list[str] | None = None,
        bundle: Path | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
        start: bool = False,
        attach: tuple[bool, bool, bool] | None = None,
        bundle_ready: Callable[[Path], Coroutine[Any, Any, None]] | None = None,
    ) -> Launched:
        """``launch`` on the caller's loop (an attach stream lives on the loop it came
        from); ``bundle_ready(bundle)``: made while the shim sets itself up."""
        cid, made = self.bundle(args, tty, edit)
        bundle = bundle or made
        self.ids.append(cid)
        state = state_dir or self.state_dir_for(cid)
        log_path = state / "container.log"
        info = await launch_shim(
            SHIM_COMMAND,
            container_id=cid,
            bundle=str(bundle),
            state_dir=str(state),
            log_path=str(log_path),
            runtime=runtime or RUNTIME,
            runtime_root=str(self.runtime_root),
            tty=tty,
            stdin=stdin,
            stdin_once=stdin_once,
            env=SHIM_ENV,
            start=start,
            attach=attach,
            bundle_ready=bundle_ready(bundle) if bundle_ready is not None else None,
        )
        launched = Launched(cid, bundle, state, log_path, info, ShimClient(str(state)))
        self.launched.append(launched)
        return launched

    def cleanup(self) -> None:
        for cid in self.ids:
            subprocess.run(
                [*RUNTIME, "--root", str(self.runtime_root), "delete", "--force", cid],
                capture_output=True,
                env={**os.environ, **SHIM_ENV},
            )
        deadline = time.monotonic() + 10
        for launched in self.launched:
            pid = launched.info.shim_pid
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(pid) and is_shim_of(pid, launched.id):
                os.kill(pid, signal.SIGKILL)


def runtime_has_state(shims: Shims, cid: str) -> bool:
    """Whether the runtime still holds state for ``cid`` (its ``state`` verb succeeds)."""
    proc = subprocess.run(
        [*RUNTIME, "--root", str(shims.runtime_root), "state", cid],
        capture_output=True,
        env={**os.environ, **SHIM_ENV},
    )
    return proc.returncode == 0


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ppid_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def is_shim_of(pid: int, cid: str) -> bool:
    """Whether ``pid`` is still the shim of container ``cid`` (not a reused pid).

    Zygote-forked shims, and every process forked from them, share the zygote's command
    line: the shim's own name (``shim-<id>``, set at its start) or an exec'd launcher's
    ``--id`` tell them apart, so that cleanup never kills another test's process.
    """
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            if f.read().strip() == f"shim-{cid[:10]}".encode():
                return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
        return b"hafen.shim" in b" ".join(argv) and cid.encode() in argv
    except OSError:
        return False


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def shims(busybox_rootfs: Path, runc_spec: dict[str, Any]) -> Iterator[Shims]:
    root = Path(tempfile.mkdtemp(prefix="hs-", dir="/tmp"))
    s = Shims(busybox_rootfs, runc_spec, root, root / "runc")
    try:
        yield s
    finally:
        s.cleanup()
        shutil.rmtree(root, ignore_errors=True)
