"""``hafen cp``: copy files between a container and the local filesystem (docker's rules).

    hafen cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-
    hafen cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH

A destination that exists as a directory receives the source under its own name; one
that does not exist becomes the copy (the top entry is renamed). ``-`` is a tar on
stdout/stdin. Local extraction is confined to the destination like the daemon's.
"""

from __future__ import annotations

import io
import os
import posixpath
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, get_client
from hafen.errors import HafenError, NotFound

_DIR_BIT = 1 << 31


def _split(arg: str) -> tuple[str | None, str]:
    """``container:path`` → (container, path); a local path (also ``./a:b``) → (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    container, _, path = arg.partition(":")
    return container, path


@flags.command("cp")
@flags.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@flags.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@flags.option("-q", "--quiet", is_flag=True, help="Suppress progress output")
@flags.argument("src")
@flags.argument("dest")
@flags.pass_context
def cp(
    ctx: flags.Context, archive: bool, follow_link: bool, quiet: bool, src: str, dest: str
) -> None:
    """Copy files/folders between a container and the local filesystem."""
    del quiet  # no progress output is printed
    src_container, src_path = _split(src)
    dest_container, dest_path = _split(dest)
    if src_container and dest_container:
        raise CLIError("copying between containers is not supported", 1)
    if not src_container and not dest_container:
        raise CLIError("must specify at least one container source", 1)
    client = get_client(ctx)
    try:
        if src_container:
            _from_container(client, src_container, src_path, dest_path, follow_link)
        else:
            assert dest_container is not None
            _to_container(client, dest_container, dest_path, src_path, archive, follow_link)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)


def _from_container(client: Any, container: str, path: str, dest: str, follow: bool) -> None:
    from hafen.store.archive import unpack_into

    if follow and not path.endswith("/"):
        stat = client.stat_path(container, path)
        if stat.get("linkTarget"):
            path = posixpath.join(posixpath.dirname(path), stat["linkTarget"])
    stream, stat = client.get_archive(container, path)
    with stream:
        if dest == "-":
            out = sys.stdout.buffer
            while chunk := stream.read():
                out.write(chunk)
            out.flush()
            return
        name = stat.get("name") or posixpath.basename(path.rstrip("/")) or "."
        target = Path(dest)
        if target.is_dir():
            unpack_into(io.BufferedReader(_Reader(stream)), target, "/")
            return
        if dest.endswith("/"):
            raise CLIError(f"destination directory {dest} does not exist", 1)
        parent = target.parent
        if not parent.is_dir():
            raise CLIError(f"no such directory: {parent}", 1)
        unpack_into(io.BufferedReader(_Reader(stream)), parent, "/", rename_top=(name, target.name))


class _Reader(io.RawIOBase):
    """A raw file over a streamed response (wrapped in a BufferedReader for tarfile)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if not self.pending:
            self.pending = self.stream.read()
        n = min(len(b), len(self.pending))
        b[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def _to_container(
    client: Any, container: str, path: str, src: str, archive: bool, follow: bool
) -> None:
    if src == "-":
        client.put_archive(container, path, sys.stdin.buffer, copy_uid_gid=archive)
        return
    source = Path(src)
    if not os.path.lexists(source):
        raise CLIError(f"no such file or directory: {src}", 1)
    if follow:
        source = source.resolve()
    try:
        stat = client.stat_path(container, path)
    except NotFound:
        stat = None
    if stat is not None and int(stat.get("mode", 0)) & _DIR_BIT:
        dest_dir, name = path, source.name
    else:
        if path.endswith("/"):
            raise CLIError(f"destination directory {path} does not exist", 1)
        if stat is not None and source.is_dir():
            raise CLIError("cannot copy a directory to a file", 1)
        dest_dir, name = posixpath.dirname(path) or "/", posixpath.basename(path)
    with tempfile.TemporaryFile() as tmp:
        with tarfile.open(fileobj=tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(str(source), arcname=name, recursive=True)
        tmp.seek(0)
        client.put_archive(container, dest_dir, tmp, copy_uid_gid=archive)
