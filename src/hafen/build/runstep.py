"""RUN steps: the command line, the ``--mount`` binds, and the runner the daemon provides.

A RUN is a real container made by the container service (which build/ cannot import:
``StepRunner`` is the seam the daemon fills). The step's environment is ENV over the
ARGs in scope; proxy ARGs are usable without being declared and never reach history.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hafen.build.cache import cache_key
from hafen.build.copy import find_sources
from hafen.build.dockerfile import Node
from hafen.errors import InvalidArgument

Emit = Callable[[str], None]

PROXY_ARGS = (
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
)  # fmt: skip
# paths the runtime mounts over: what it creates for them is not the RUN's doing
MOUNT_POINTS = frozenset({"proc", "sys", "dev", "etc/hosts", "etc/hostname", "etc/resolv.conf"})


@dataclass
class RunResources:
    """What ``POST /build`` sets for every RUN container: limits, /dev/shm, extra hosts."""

    memory: int = 0
    memory_swap: int = 0
    cpu_shares: int = 0
    cpuset_cpus: str = ""
    cpu_period: int = 0
    cpu_quota: int = 0
    shm_size: int = 0  # 0: the container default
    extra_hosts: list[str] = field(default_factory=list)


@dataclass
class RunSpec:
    """One RUN step's container: the image it runs on and how."""

    image_id: str
    argv: list[str]
    env: list[str]
    user: str
    workdir: str
    binds: list[str]  # "/host:/ctr[:ro]"
    network: str = "default"
    resources: RunResources = field(default_factory=RunResources)


class StepRun(Protocol):
    """A finished RUN container whose snapshot is still there to be exported."""

    exit_code: int
    snapshot_key: str
    container_id: str

    async def release(self) -> None: ...


Puller = Callable[[str, Emit, Mapping[str, Any]], Awaitable[None]]
"""Pulls an image reference into the image store, reporting progress as text lines; the
mapping holds credentials by registry key (from ``X-Registry-Config``)."""


class StepRunner(Protocol):
    """Runs RUN steps in real containers (the daemon wires the container service in)."""

    async def run(self, spec: RunSpec, started: Callable[[str], None], output: Emit) -> StepRun: ...


def run_argv(shell: list[str], node: Node) -> list[str]:
    """The RUN's command: exec form as is, shell form (heredocs included) through SHELL."""
    if node.json_form:
        return list(node.args)
    if node.heredocs:
        command = node.args[0]
        first = node.heredocs[0]
        if command.strip() in (f"<<{first.name}", f"<<-{first.name}",
                               f"<<'{first.name}'", f'<<"{first.name}"',
                               f"<<-'{first.name}'", f'<<-"{first.name}"'):  # fmt: skip
            content = first.content
            if content.startswith("#!"):
                return ["/bin/sh", "-c", _shebang_script(content)]
            return [*shell, content]
        script = command + "\n" + "".join(f"{h.content}{h.name}\n" for h in node.heredocs)
        return [*shell, script]
    return [*shell, node.args[0]]


def _shebang_script(content: str) -> str:
    """A heredoc with a shebang runs as its own script file (written to /tmp first)."""
    name = f"/tmp/.hafen-heredoc-{secrets.token_hex(4)}"
    quoted = content.replace("'", "'\"'\"'")
    return (
        f"printf '%s' '{quoted}' > {name} && chmod +x {name} && {name}; s=$?; rm -f {name}; exit $s"
    )


def run_mounts(
    node: Node,
    workdir: str,
    work_dir: Path,
    secrets_by_id: Mapping[str, bytes],
    context_root: Callable[[], Path],
    stage_roots: dict[str, Path],
) -> tuple[list[str], list[Callable[[], None]]]:
    """``--mount`` flags → bind specs (and what to undo after the step).

    cache: a directory under ``work_dir/cache-mounts`` kept across builds, by id; bind: a
    context (or stage) path, read-only unless ``rw`` (then a throw-away copy); tmpfs: a
    fresh tmpfs (``size`` honoured) for this step only; secret: the secret's bytes in a file on a private tmpfs,
    bound read-only for this step only (never on disk, never in a layer, and not in the
    cache key: only the mount flag is). Blocking.
    """
    binds: list[str] = []
    cleanups: list[Callable[[], None]] = []
    for raw in node.flags:
        if not raw.startswith("--mount="):
            continue
        opts_map: dict[str, str] = {}
        for part in raw[8:].split(","):
            k, sep, v = part.partition("=")
            opts_map[k.strip().lower()] = v if sep else "true"
        kind = opts_map.get("type", "bind")
        target = opts_map.get("target") or opts_map.get("dst") or opts_map.get("destination")
        readonly = opts_map.get("readonly", opts_map.get("ro", "false")) in ("true", "1", "")
        if kind == "secret":
            sid = opts_map.get("id") or posixpath.basename(target or "")
            if not sid:
                raise InvalidArgument(f"--mount=type=secret needs an id or a target ({raw})")
            target = target or f"/run/secrets/{sid}"
            if not target.startswith("/"):
                target = posixpath.join(workdir or "/", target)
            content = secrets_by_id.get(sid)
            if content is None:
                if opts_map.get("required", "false") in ("true", "1", ""):
                    raise InvalidArgument(
                        f"secret {sid} not found: pass it with --secret id={sid},src=PATH"
                    )
                continue  # an optional secret that was not given: no mount, as BuildKit
            try:
                mode = int(opts_map.get("mode", "0400"), 8)
                uid, gid = int(opts_map.get("uid", "0")), int(opts_map.get("gid", "0"))
            except ValueError:
                raise InvalidArgument(f"--mount=type=secret: bad mode, uid or gid ({raw})")
            path, cleanup = _secret_file(work_dir, content, mode, uid, gid)
            cleanups.append(cleanup)
            binds.append(f"{path}:{target}:ro")
            continue
        if not target:
            raise InvalidArgument(f"--mount: the target is required ({raw})")
        if not target.startswith("/"):
            target = posixpath.join(workdir or "/", target)
        if kind == "cache":
            cid = opts_map.get("id") or target
            path = work_dir / "cache-mounts" / cache_key(None, cid).removeprefix("sha256:")[:32]
            path.mkdir(parents=True, exist_ok=True)
            binds.append(f"{path}:{target}" + (":ro" if readonly else ""))
        elif kind == "tmpfs":
            size = opts_map.get("size", "")
            if size and not re.fullmatch(r"[0-9]+[kmgKMG]?", size):
                raise InvalidArgument(f"--mount=type=tmpfs: bad size {size!r} ({raw})")
            path, cleanup = _private_tmpfs(work_dir, "tmpfs", f"mode=1777,size={size}" if size
                                           else "mode=1777", _MS_NOSUID | _MS_NODEV)  # fmt: skip
            cleanups.append(cleanup)
            binds.append(f"{path}:{target}")
        elif kind == "bind":
            source = opts_map.get("source") or opts_map.get("src") or "."
            from_ref = opts_map.get("from")
            root = stage_roots[from_ref] if from_ref else context_root()
            src_path = find_sources(root, [source])[0].path
            rw = opts_map.get("rw", opts_map.get("readwrite", "false")) in ("true", "1", "")
            if rw:  # writes are discarded: bind a throw-away copy
                path = Path(tempfile.mkdtemp(dir=work_dir, prefix="bind-"))
                cleanups.append(functools.partial(shutil.rmtree, path, True))
                dest = path / "src"
                if src_path.is_dir():
                    shutil.copytree(src_path, dest, symlinks=True)
                else:
                    shutil.copy2(src_path, dest)
                src_path = dest
            binds.append(f"{src_path}:{target}" + ("" if rw else ":ro"))
        else:
            raise InvalidArgument(
                f"--mount: unsupported type {kind!r} (bind, cache, tmpfs, secret)"
            )
    return binds, cleanups


def _secret_file(
    work_dir: Path, content: bytes, mode: int, uid: int, gid: int
) -> tuple[Path, Callable[[], None]]:
    """The secret in a file on a tmpfs of its own; and how to unmount and remove it."""
    directory, cleanup = _private_tmpfs(
        work_dir, "secret", f"size={max(4096, len(content) * 2)},mode=0700",
        _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
    )  # fmt: skip
    try:
        path = directory / "secret"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    except BaseException:
        cleanup()
        raise
    return path, cleanup


def _private_tmpfs(
    work_dir: Path, purpose: str, options: str, flags: int
) -> tuple[Path, Callable[[], None]]:
    """A fresh tmpfs mounted on a directory of ``work_dir`` (``mnt-`` so a restart's sweep
    unmounts it); and how to unmount and remove it."""
    from hafen.store._mount import mount, unmount

    directory = Path(tempfile.mkdtemp(dir=work_dir, prefix=f"mnt-{purpose}-"))
    try:
        mount("tmpfs", str(directory), "tmpfs", flags, options)
    except BaseException:
        os.rmdir(directory)
        raise

    def cleanup() -> None:
        with contextlib.suppress(OSError):
            unmount(str(directory), detach=True)
        with contextlib.suppress(OSError):
            os.rmdir(directory)

    return directory, cleanup


_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x2, 0x4, 0x8
