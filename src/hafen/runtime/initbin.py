"""The ``--init`` binary: hafen's own zombie-reaping pid 1 (``init/hafen-init.c``).

Owns where the static binary lives (next to its source, ignored by git) and building it
when it is missing or older than its source: scripts/setup builds it at install time;
a checkout without it builds it on first use with ``gcc -static``. Docker bind-mounts its
docker-init the same way: the binary is the host's, read-only, at ``/sbin/docker-init``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from hafen.errors import RuntimeFailure

_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init")
SOURCE = os.path.join(_DIR, "hafen-init.c")
BINARY = os.path.join(_DIR, "hafen-init")
CONTAINER_PATH = "/sbin/docker-init"


def _fresh() -> bool:
    try:
        return os.stat(BINARY).st_mtime >= os.stat(SOURCE).st_mtime
    except FileNotFoundError:
        return False


def build(output: str = BINARY) -> str:
    """Compile the init statically (gcc and libc6-dev's libc.a are needed)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeFailure(
            "--init needs hafen-init, which is built with gcc: install gcc and libc6-dev "
            "(scripts/setup does)"
        )
    tmp = f"{output}.{os.getpid()}.tmp"
    result = subprocess.run(
        [gcc, "-static", "-O2", "-s", "-o", tmp, SOURCE], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeFailure(f"building hafen-init failed: {result.stderr.strip()[-500:]}")
    os.rename(tmp, output)
    return output


def init_binary() -> str:
    """The path of the built init, building it first if needed (blocking)."""
    if not _fresh():
        build()
    return BINARY
