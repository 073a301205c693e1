"""COPY and ADD steps: sources from the context (by its index), a stage, an image, a
heredoc or a URL; the cache key from their content; the files written into a snapshot.

A fully cached COPY never touches the files: the key comes from the context index's
digests. On a miss, files come straight from the context tar when they can (no unpacking)
and from the unpacked context otherwise; ADD also unpacks local archives and downloads
URLs (``--checksum`` verified). ``CopySteps`` is mixed into ``Builder``, whose step
plumbing (cache lookup, commit, source roots) it uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import posixpath
import shutil
import stat
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hafen.build.cache import cache_key
from hafen.build.context import BuildContext
from hafen.build.copy import (
    Ownership,
    Source,
    copy_from_tar,
    copy_sources,
    destination,
    find_sources,
    sources_digest,
    write_file,
)
from hafen.build.dockerfile import Node, process_word
from hafen.build.ignore import IgnoreRules
from hafen.build.layers import LayerWriter
from hafen.build.plan import BuildOptions, Stage, flag_map, one
from hafen.build.runstep import Emit
from hafen.build.state import ImageState
from hafen.errors import InvalidArgument
from hafen.oci.user import resolve_group, resolve_user

if TYPE_CHECKING:
    from hafen.build.executor import _StageRun


class CopySteps:
    """COPY/ADD for ``Builder`` (the attributes and methods below are Builder's)."""

    layers: LayerWriter
    work_dir: Path
    _escape: str

    if TYPE_CHECKING:

        async def _try_cache(
            self, run: _StageRun, key: str, opts: BuildOptions, emit: Emit
        ) -> bool: ...

        async def _ensure_image(self, state: ImageState) -> str: ...

        async def _source_root(
            self, ref: str, stages: list[Stage], results: dict[int, asyncio.Future[ImageState]]
        ) -> tuple[Path, Callable[[], None]]: ...

        async def _commit(
            self,
            state: ImageState,
            layer: tuple[str, int] | None,
            created_by: str,
            *,
            empty_layer: bool,
            key: str | None,
            parent: str | None = None,
        ) -> str: ...

        @staticmethod
        def _short(image_id: str | None) -> str: ...

    async def _copy(
        self,
        run: _StageRun,
        node: Node,
        stages: list[Stage],
        results: dict[int, asyncio.Future[ImageState]],
        ctx: BuildContext,
        opts: BuildOptions,
        emit: Emit,
        env: dict[str, str],
    ) -> None:
        kw = node.keyword
        allowed = (
            ("from", "chown", "chmod", "link", "exclude")
            if kw == "copy"
            else ("chown", "chmod", "link", "checksum", "exclude", "unpack")
        )
        flags = flag_map(node, allowed)
        word = lambda t: process_word(t, env, self._escape)  # noqa: E731
        # --link only changes how BuildKit stacks the layer; the files written are the same
        exclude = IgnoreRules([word(p) for p in flags.get("exclude", [])]) or None
        unpack = one(flags, "unpack", "true").lower() in ("true", "1", "")
        checksum = word(one(flags, "checksum")) if "checksum" in flags else ""
        from_ref = word(one(flags, "from")) if "from" in flags else ""
        chown = word(one(flags, "chown")) if "chown" in flags else ""
        chmod_text = word(one(flags, "chmod")) if "chmod" in flags else ""
        chmod: int | None = None
        if chmod_text:
            try:
                chmod = int(chmod_text, 8)
            except ValueError:
                raise InvalidArgument(f"invalid chmod parameter {chmod_text!r}: expected octal")
        state = run.state
        heredocs = {h.name: h for h in node.heredocs}
        raw_args = list(node.args)
        dest = destination(word(raw_args[-1]), state.workdir)
        src_words = raw_args[:-1]
        inline: list[tuple[str, bytes]] = []
        names: list[str] = []
        urls: list[str] = []
        for src in src_words:
            marker = src.lstrip("<-").strip("'\"") if src.startswith("<<") else None
            if marker and marker in heredocs:
                h = heredocs[marker]
                text = process_word_content(h.content, env, self._escape) if h.expand else h.content
                inline.append((marker, text.encode()))
                continue
            value = word(src)
            if kw == "add" and (value.startswith("git@") or value.endswith(".git")):
                raise InvalidArgument(f"ADD of a Git repository ({value}) is not supported")
            if kw == "add" and urllib.parse.urlparse(value).scheme in ("http", "https"):
                urls.append(value)
            else:
                names.append(value)
        release: Callable[[], None] | None = None
        try:
            sources: list[Source] = []
            source_names: list[str] = []
            single_dir = False  # Docker's history says dir:<hash> for one directory source
            digest = ""
            indexed = None
            if names and not from_ref:  # the context's index answers without unpacking it
                indexed = await asyncio.to_thread(self._indexed_sources, ctx, names, exclude)
            if indexed is not None:
                found, digest = indexed
                source_names = [n for n, _ in found]
                top = ctx.index.get(found[0][1]) if found[0][1] else None
                single_dir = len(found) == 1 and (top is None or top.kind == stat.S_IFDIR)
            elif names:
                if from_ref:
                    root, release = await self._source_root(from_ref, stages, results)
                    what = f"stage or image {from_ref}"
                else:
                    root, what = await asyncio.to_thread(lambda: ctx.root), "build context"
                sources = await asyncio.to_thread(find_sources, root, names, what, exclude)
                digest = await asyncio.to_thread(sources_digest, sources, exclude)
                source_names = [s.name for s in sources]
                single_dir = len(sources) == 1 and sources[0].path.is_dir()
            count = len(source_names) + len(inline) + len(urls)
            if count > 1 and not dest.endswith("/"):
                existing = await asyncio.to_thread(self.layers.is_dir_in, state.chain_id, dest)
                if not existing:
                    raise InvalidArgument(
                        f"When using {kw.upper()} with more than one source file, the destination "
                        "must be a directory and end with a /"
                    )
            downloads: list[tuple[str, Path, float | None]] = []
            scratch = Path(tempfile.mkdtemp(dir=self.work_dir, prefix="add-"))
            try:
                for index, url in enumerate(urls):
                    path = scratch / str(index)
                    mtime = await asyncio.to_thread(_download, url, path)
                    if checksum:
                        got = await asyncio.to_thread(_file_digest, path)
                        if got != checksum:
                            raise InvalidArgument(
                                f"digest mismatch for {url}: expected {checksum}, got {got}"
                            )
                    downloads.append((url, path, mtime))
                hashes = [digest, [(n, c.decode("utf-8", "replace")) for n, c in inline]]
                for url, path, _mtime in downloads:
                    hashes.append(
                        [url, await asyncio.to_thread(sources_digest, [Source("u", path)])]
                    )
                key = cache_key(state.image_id, kw, from_ref, hashes, dest, chown, chmod_text,
                                source_names, one(flags, "unpack"))  # fmt: skip
                src_kind = "dir" if single_dir else "file"
                if count > 1:
                    src_kind = "multi"
                created_by = (f"/bin/sh -c #(nop) {kw.upper()} {src_kind}:"
                              f"{cache_key(None, hashes).removeprefix('sha256:')} in {dest} ")  # fmt: skip
                if await self._try_cache(run, key, opts, emit):
                    return
                parent = await self._ensure_image(state)

                def action(rootfs: Path, upper: Path | None, detach: Callable[[], None]) -> None:
                    owner = _ownership(rootfs, chown) if chown else None
                    # only a plain COPY of context files may finish in the upper dir: the
                    # other kinds of source below write through the mount after it
                    solo = not (inline or downloads)
                    # a cache miss: now the files are needed, straight from the tar if it can
                    direct = (
                        bool(names)
                        and not sources
                        and indexed is not None
                        and ctx.tar_path is not None
                        and kw == "copy"
                    )
                    if direct:
                        assert indexed is not None and ctx.tar_path is not None
                        direct = copy_from_tar(
                            ctx.tar_path,
                            ctx.index,
                            indexed[0],
                            rootfs,
                            dest,
                            owner=owner,
                            chmod=chmod,
                            exclude=exclude,
                            upper=upper if solo else None,
                            detach=detach if solo else None,
                        )
                    if names and not sources and not direct:
                        sources.extend(find_sources(ctx.root, names, "build context", exclude))
                    if sources:
                        copy_sources(rootfs, sources, dest, owner=owner, chmod=chmod,
                                     unpack_archives=kw == "add" and unpack, exclude=exclude, keyword=kw.upper())  # fmt: skip
                    for name, content in inline:
                        target = dest + name if dest.endswith("/") else dest
                        write_file(rootfs, target, content, owner, chmod)
                    for url, path, mtime in downloads:
                        base = posixpath.basename(urllib.parse.urlparse(url).path) or "index.html"
                        target = dest + base if dest.endswith("/") else dest
                        write_file(rootfs, target, path.read_bytes(), owner,
                                   chmod if chmod is not None else 0o600)  # fmt: skip
                        if mtime is not None:
                            from hafen.build.copy import _clean, resolve_in_root

                            host = resolve_in_root(rootfs, _clean(target, "image"))
                            os.utime(host, (mtime, mtime), follow_symlinks=False)

                layer = await asyncio.to_thread(
                    self.layers.write_step_direct, state.chain_id, action
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        finally:
            if release is not None:
                await asyncio.to_thread(release)
        if layer is None:
            # nothing changed (e.g. an empty directory copied onto an existing one): Docker
            # still records the step with an empty layer
            layer = await asyncio.to_thread(self.layers.empty_layer)
        image_id = await self._commit(state, layer, created_by, empty_layer=False, key=key,
                                      parent=parent)  # fmt: skip
        emit(f" ---> {self._short(image_id)}\n")

    @staticmethod
    def _indexed_sources(
        ctx: BuildContext, names: list[str], exclude: IgnoreRules | None
    ) -> tuple[list[tuple[str, str]], str] | None:
        from hafen.build.copy import digest_entries, expand_names

        found = expand_names(ctx.index, names, exclude)
        if found is None:
            return None
        digest = digest_entries(ctx.index, found, exclude)
        return None if digest is None else (found, digest)


def process_word_content(content: str, env: dict[str, str], escape: str) -> str:
    """Heredoc content with an unquoted delimiter: variables expand, quotes stay as written."""
    out: list[str] = []
    for line in content.splitlines(keepends=True):
        protected = line.replace("'", "\0SQ\0").replace('"', "\0DQ\0")
        expanded = process_word(protected, env, escape)
        out.append(expanded.replace("\0SQ\0", "'").replace("\0DQ\0", '"'))
    return "".join(out)


def _ownership(rootfs: Path, chown: str) -> Ownership:
    """``--chown=user[:group]`` against the destination image's passwd/group files."""
    user, sep, group = chown.partition(":")
    resolved = resolve_user(rootfs, user)
    gid = resolve_group(rootfs, group) if sep and group else resolved.gid
    return Ownership(resolved.uid, gid)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _download(url: str, path: Path) -> float | None:
    """ADD <url>: fetch to ``path``; the Last-Modified time if the server sent one."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out, 1024 * 1024)
            modified = response.headers.get("Last-Modified")
    except OSError as e:
        raise InvalidArgument(f"failed to download {url}: {e}") from None
    if modified:
        try:
            return parsedate_to_datetime(modified).timestamp()
        except (TypeError, ValueError):
            return None
    return None
