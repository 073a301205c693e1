"""The build context: a tar stream unpacked into a private directory, ``.dockerignore`` applied.

The client sends the context as a tar (plain or compressed); it is unpacked with the
store's hostile-archive rules (nothing lands outside the directory), then every path
``.dockerignore`` excludes is removed, and the Dockerfile is read from it (or given
separately). The directory is the only thing COPY/ADD may read from.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound
from hafen.store.archive import open_layer_stream, unpack_layer


class _PaddedTar:
    """A tar stream completed at its end: the docker CLI sends the context without the
    end-of-archive blocks (and without the last block's padding) when it adds a Dockerfile
    from outside the context, and dockerd accepts that; so do we."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._size = 0
        self._tail: bytes | None = None

    def read(self, n: int = -1) -> bytes:
        if self._tail is None:
            data = self._raw.read(n)
            if data:
                self._size += len(data)
                return data
            self._tail = b"\0" * (-self._size % 512) + b"\0" * 1024
        if n < 0:
            data, self._tail = self._tail, b""
        else:
            data, self._tail = self._tail[:n], self._tail[n:]
        return data


@dataclass
class BuildContext:
    root: Path
    dockerfile: str  # its text
    dockerfile_name: str  # as named in errors
    ignore: IgnoreRules

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def apply_ignore(root: Path, rules: IgnoreRules, keep: set[str]) -> None:
    """Delete what the rules exclude (``keep`` names files the builder still needs to read)."""
    if not rules:
        return

    def walk(directory: Path, prefix: str) -> None:
        for entry in list(os.scandir(directory)):
            rel = prefix + entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            if rules.excluded(rel) and rel not in keep:
                if is_dir and rules.may_include_below(rel):
                    walk(Path(entry.path), rel + "/")
                    if not any(os.scandir(entry.path)):
                        os.rmdir(entry.path)
                    continue
                if is_dir:
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            elif is_dir:
                walk(Path(entry.path), rel + "/")

    walk(root, "")


def open_context(
    stream: BinaryIO | None,
    work_dir: Path,
    dockerfile_name: str = "Dockerfile",
    dockerfile_text: str | None = None,
) -> BuildContext:
    """Unpack a context tar (or none) and read the Dockerfile; blocking, for a worker thread."""
    work_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(dir=work_dir, prefix="context-"))
    try:
        if stream is not None:
            padded = cast(BinaryIO, _PaddedTar(open_layer_stream(stream)))
            unpack_layer(padded, root, whiteouts="vfs")
        ignore_path = root / ".dockerignore"
        rules = (
            IgnoreRules.from_text(ignore_path.read_text())
            if ignore_path.is_file()
            else (IgnoreRules([]))
        )
        name = dockerfile_name or "Dockerfile"
        if dockerfile_text is None:
            rel = os.path.normpath(name).lstrip("/")
            if rel.startswith(".."):
                raise InvalidArgument(f"the Dockerfile ({name}) must be within the build context")
            path = root / rel
            if not path.is_file() and name == "Dockerfile" and (root / "dockerfile").is_file():
                path = root / "dockerfile"
            if not path.is_file():
                raise NotFound(f"Cannot locate specified Dockerfile: {name}")
            dockerfile_text = path.read_text(errors="replace")
            # Docker drops the Dockerfile and .dockerignore from the context when ignored
            apply_ignore(root, rules, keep=set())
        else:
            apply_ignore(root, rules, keep=set())
        return BuildContext(root, dockerfile_text, os.path.basename(name), rules)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
