"""``OCIRuntimeCLI``: the ``Runtime`` protocol over any runc-compatible binary.

Owns running the binary (``runc``, ``crun``, or hafen's own, ``hafen.runtime.command``)
with ``--root`` and turning its exit status and stderr into ``hafen.errors``. Blocking
(subprocess): the daemon calls it from a worker thread.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from hafen.errors import Conflict, ContainerNotFound, RuntimeFailure
from hafen.runtime import is_cli
from hafen.runtime.protocol import RuntimeState


def hafen_runtime_env() -> dict[str, str]:
    """Environment for ``hafen.runtime.command``: ``-S`` skips site, so put hafen on
    PYTHONPATH."""
    import hafen

    src = os.path.dirname(os.path.dirname(os.path.abspath(hafen.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class OCIRuntimeCLI:
    """Drive a runc-compatible runtime binary; state lives under ``root``."""

    def __init__(
        self,
        argv: list[str],
        root: str,
        log: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.argv = list(argv)
        self.root = root
        self.log = log
        self.env = env
        if env is None and is_cli(self.argv):
            self.env = hafen_runtime_env()
        self.timeout = timeout

    def command(self, *args: str) -> list[str]:
        """The full argv for a verb, global flags included (the shim uses it for create)."""
        cmd = [*self.argv, "--root", self.root]
        if self.log:
            cmd += ["--log", self.log, "--log-format", "json"]
        return [*cmd, *args]

    def _run(self, container_id: str, *args: str, input: str | None = None) -> str:
        cmd = self.command(*args)
        try:
            proc = subprocess.run(
                cmd,
                input=input,
                stdin=subprocess.DEVNULL if input is None else None,
                capture_output=True,
                text=True,
                env=self.env,
                timeout=self.timeout,
            )
        except FileNotFoundError:
            raise RuntimeFailure(f"OCI runtime {self.argv[0]!r} not found")
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"OCI runtime {' '.join(args)} timed out after {self.timeout}s")
        if proc.returncode != 0:
            raise _error(container_id, args[0], proc.stderr)
        return proc.stdout

    def create(
        self,
        container_id: str,
        bundle: str,
        console_socket: str | None = None,
        pid_file: str | None = None,
    ) -> None:
        """Create without stdio wiring (the shim normally runs create itself)."""
        args = ["create", "--bundle", bundle]
        if console_socket:
            args += ["--console-socket", console_socket]
        if pid_file:
            args += ["--pid-file", pid_file]
        self._run(container_id, *args, container_id)

    def start(self, container_id: str) -> None:
        self._run(container_id, "start", container_id)

    def state(self, container_id: str) -> RuntimeState:
        out = self._run(container_id, "state", container_id)
        try:
            raw = json.loads(out)
        except ValueError:
            raise RuntimeFailure(f"OCI runtime state {container_id}: not JSON: {out[:200]!r}")
        return RuntimeState(
            id=raw.get("id", container_id),
            status=raw.get("status", ""),
            pid=int(raw.get("pid") or 0),
            bundle=raw.get("bundle", ""),
            oci_version=raw.get("ociVersion", ""),
            rootfs=raw.get("rootfs", ""),
            created=raw.get("created", ""),
            annotations=raw.get("annotations") or {},
        )

    def kill(self, container_id: str, signal: int, all: bool = False) -> None:
        args = ["kill"] + (["--all"] if all else []) + [container_id, str(int(signal))]
        self._run(container_id, *args)

    def pause(self, container_id: str) -> None:
        self._run(container_id, "pause", container_id)

    def resume(self, container_id: str) -> None:
        self._run(container_id, "resume", container_id)

    def update(self, container_id: str, resources: dict[str, Any]) -> None:
        """New ``linux.resources`` for a running container (``update -r -``)."""
        self._run(container_id, "update", "-r", "-", container_id, input=json.dumps(resources))

    def ps(self, container_id: str) -> list[int]:
        """The host pids of every process in the container."""
        out = self._run(container_id, "ps", "--format", "json", container_id)
        try:
            return [int(p) for p in json.loads(out or "[]")]
        except (ValueError, TypeError):
            raise RuntimeFailure(f"OCI runtime ps {container_id}: not a JSON list: {out[:200]!r}")

    def delete(self, container_id: str, force: bool = False) -> None:
        args = ["delete"] + (["--force"] if force else []) + [container_id]
        self._run(container_id, *args)


def _error(container_id: str, verb: str, stderr: str) -> Exception:
    msg = _last_message(stderr) or f"OCI runtime {verb} failed"
    low = msg.lower()
    if "does not exist" in low or ("not found" in low and "container" in low):
        err: Exception = ContainerNotFound(container_id)
        return err
    if "not running" in low or "not stopped" in low or "cannot start" in low or "exists" in low:
        return Conflict(msg)
    return RuntimeFailure(msg)


def _last_message(stderr: str) -> str:
    """runc/crun print logrus lines or JSON; keep the last human-readable message."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    last = lines[-1]
    if last.startswith("{"):
        try:
            return str(json.loads(last).get("msg", last))
        except ValueError:
            return last
    if 'msg="' in last:
        return last.split('msg="', 1)[1].rsplit('"', 1)[0]
    return last
