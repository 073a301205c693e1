"""The builder: runs a parsed Dockerfile, stage by stage, into images.

``Builder.build`` splits the Dockerfile into stages, keeps only those the target needs,
and runs each as a task (a stage waits only for the stages it uses, so independent
stages build in parallel). Each instruction is one step that commits an image, as
Docker's classic builder does: metadata instructions change the config (a history entry
with ``empty_layer``), RUN runs a real container and turns its filesystem changes into a
layer, COPY/ADD/WORKDIR write into a snapshot whose changes become the layer. Before a
step runs, the build cache is asked for an image made from the same parent with the
same instruction and inputs.

Progress goes to ``emit`` as the text lines Docker's classic builder prints (``Step
2/5 : RUN …``, `` ---> Using cache``, `` ---> 3f1c…``), which the API wraps into its
JSON stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import posixpath
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hafen.build.cache import BuildCache, PruneResult, cache_key
from hafen.build.context import BuildContext
from hafen.build.contextsync import ContextCache
from hafen.build.copystep import CopySteps
from hafen.build.dockerfile import Node, parse, process_word
from hafen.build.dockerfile.parser import DockerfileSyntaxError
from hafen.build.layers import LayerWriter
from hafen.build.metadata import apply_metadata
from hafen.build.plan import BuildOptions, Stage, flag_map, from_refs, one, plan
from hafen.build.runstep import (
    PROXY_ARGS,
    Emit,
    Puller,
    RunSpec,
    StepRunner,
    run_argv,
    run_mounts,
)
from hafen.build.state import ImageState
from hafen.errors import HafenError, ImageNotFound, InvalidArgument, NotFound
from hafen.images.model import Image
from hafen.images.service import ImageService, LayerBlob
from hafen.oci.user import resolve_user
from hafen.store._mount import is_mount_point, unmount
from hafen.store.content import ContentStore
from hafen.store.layers import chain_ids
from hafen.store.snapshots.protocol import Snapshotter

log = logging.getLogger("hafen.build")

LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"


class BuildFailed(HafenError):
    """A step failed; the message is what Docker's classic builder reports."""

    status = 400

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _StageRun:
    """Per-stage mutable state while it runs."""

    stage: Stage
    state: ImageState
    args: dict[str, str]  # ARGs in scope → value
    cmd_set: bool = False


class Builder(CopySteps):
    def __init__(
        self,
        images: ImageService,
        runner: StepRunner,
        snapshotter: Snapshotter,
        content: ContentStore,
        cache: BuildCache,
        work_dir: Path,
        puller: Puller | None = None,
    ) -> None:
        self.puller = puller
        self.images = images
        self.runner = runner
        self.snapshotter = snapshotter
        self.content = content
        self.layers = LayerWriter(snapshotter, content, images, work_dir)
        self.cache = cache
        self.contexts = ContextCache()  # incremental build contexts, by client directory
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / "cache-mounts").mkdir(exist_ok=True)

    def sweep(self) -> None:
        """Remove what a build interrupted by a crash left: its mounts, scratch dirs and
        snapshots (daemon start-up, before any build; the cache mounts are kept)."""
        for entry in self.work_dir.iterdir():
            if entry.name == "cache-mounts":
                continue
            if entry.name.startswith("mnt-") and is_mount_point(entry):
                with contextlib.suppress(OSError, HafenError):
                    self.snapshotter.unmount(entry)
                if is_mount_point(entry):  # a secret's tmpfs
                    with contextlib.suppress(OSError):
                        unmount(str(entry), detach=True)
                if is_mount_point(entry):
                    continue  # never delete through a mount
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        for key in self.snapshotter.active_keys():
            if key.startswith("build-"):
                with contextlib.suppress(OSError, HafenError):
                    self.snapshotter.remove(key)

    # ------------------------------------------------------------------ prune

    async def prune(self, in_use: Callable[[str], list[Any]] | None = None) -> PruneResult:
        """``builder prune``: drop the cache and the untagged images only it kept."""

        def work() -> PruneResult:
            metadata = self.images.metadata
            before = metadata.query("SELECT COALESCE(SUM(size), 0) AS s FROM layers")[0]["s"]
            candidates = self.cache.intermediate_images()
            entries = self.cache.clear()
            deleted: list[str] = []
            for image_id in candidates:
                if in_use is not None and in_use(image_id):
                    continue
                if not self.images.exists(image_id):
                    continue
                try:
                    self.images.remove(image_id, in_use=in_use)
                except HafenError as e:
                    log.info("builder prune: keeping %s: %s", image_id[:19], e)
                    continue
                deleted.append(image_id)
            after = metadata.query("SELECT COALESCE(SUM(size), 0) AS s FROM layers")[0]["s"]
            freed = self.contexts.clear()
            return PruneResult(entries, deleted, int(before) - int(after) + freed)

        return await asyncio.to_thread(work)

    # ------------------------------------------------------------------ plan

    # ------------------------------------------------------------------ build

    async def build(self, ctx: BuildContext, opts: BuildOptions, emit: Emit) -> str:
        """Build and tag; the final image ID. Raises ``BuildFailed``/``HafenError`` on failure."""
        job = Builder(self.images, self.runner, self.snapshotter, self.content, self.cache,
                      self.work_dir, self.puller)  # fmt: skip
        job._opts = opts  # each build gets its own step counter, options and escape char
        return await job._build(ctx, opts, emit)

    _opts: BuildOptions
    _escape: str = "\\"

    async def _build(self, ctx: BuildContext, opts: BuildOptions, emit: Emit) -> str:
        build_plan = await asyncio.to_thread(plan, ctx.dockerfile, ctx.dockerfile_name, opts)
        stages, target, meta = build_plan.stages, build_plan.target, build_plan.meta
        self._escape = build_plan.escape
        order = build_plan.needed()
        total = sum(1 + len(s.nodes) for s in order) + (1 if opts.labels else 0)
        self._step = 0
        self._total = total
        self._used_args: set[str] = set()
        self._releases: list[asyncio.Task[None]] = []
        self._cache_allowed: set[str] | None = None
        if opts.cache_from:
            ids = []
            for ref in opts.cache_from:
                found = await asyncio.to_thread(self.images.find, ref)
                if found is not None:
                    ids.append(found.id)
            self._cache_allowed = await asyncio.to_thread(self.cache.ancestry, ids)
        results: dict[int, asyncio.Future[ImageState]] = {
            s.index: asyncio.get_running_loop().create_future() for s in order
        }
        tasks = [
            asyncio.create_task(self._run_stage(s, stages, results, ctx, opts, meta, emit,
                                                is_target=s.index == target))
            for s in order
        ]  # fmt: skip
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for fut in results.values():
                if fut.done() and not fut.cancelled():
                    fut.exception()  # retrieved: no "never retrieved" warnings
            raise
        finally:
            # step containers are removed behind the next steps; the build ends after them
            await asyncio.gather(*self._releases, return_exceptions=True)
        final = results[target].result()
        if final.image_id is None:
            final.image_id = await self._commit(final, None, "", empty_layer=True, key=None)
        unused = sorted(
            k for k in opts.build_args if k not in self._used_args and k not in PROXY_ARGS
        )
        if unused:
            emit(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        image_id = final.image_id
        emit(f"Successfully built {image_id.removeprefix('sha256:')[:12]}\n")
        for tag in opts.tags:
            await asyncio.to_thread(self.images.tag, image_id, tag)
            emit(f"Successfully tagged {self._familiar(tag)}\n")
        return image_id

    @staticmethod
    def _familiar(tag: str) -> str:
        from hafen.images.reference import parse_reference

        return parse_reference(tag).familiar()

    async def _run_stage(
        self,
        stage: Stage,
        stages: list[Stage],
        results: dict[int, asyncio.Future[ImageState]],
        ctx: BuildContext,
        opts: BuildOptions,
        meta: dict[str, str],
        emit: Emit,
        is_target: bool,
    ) -> None:
        fut = results[stage.index]
        try:
            state = await self._from(stage, stages, results, opts, emit)
            run = _StageRun(stage, state, args={})
            onbuild = list(state.config.get("OnBuild") or [])
            if onbuild:
                state.config["OnBuild"] = None
                emit(f"# Executing {len(onbuild)} build trigger{'s' if len(onbuild) > 1 else ''}\n")
                for trigger in onbuild:
                    nodes = parse(trigger, "ONBUILD").nodes
                    for node in nodes:
                        await self._dispatch(run, node, stages, results, ctx, opts, meta, emit,
                                             trigger=True)  # fmt: skip
            for node in stage.nodes:
                self._step += 1
                emit(f"Step {self._step}/{self._total} : {node.original}\n")
                await self._dispatch(run, node, stages, results, ctx, opts, meta, emit)
            if is_target and opts.labels:
                self._step += 1
                text = " ".join(f'"{k}"="{v}"' for k, v in sorted(opts.labels.items()))
                emit(f"Step {self._step}/{self._total} : LABEL {text}\n")
                label_node = parse(f"FROM x\nLABEL {text}\n").nodes[1]
                await self._dispatch(run, label_node, stages, results, ctx, opts, meta, emit)
            fut.set_result(run.state)
        except BaseException as e:
            if not fut.done():
                fut.set_exception(e)
            raise

    async def _from(
        self,
        stage: Stage,
        stages: list[Stage],
        results: dict[int, asyncio.Future[ImageState]],
        opts: BuildOptions,
        emit: Emit,
    ) -> ImageState:
        base = stage.base
        dep = next((i for i in stage.deps if stages[i].name == base.lower()), None)
        if dep is not None and stages[dep].name == base.lower():
            state = await results[dep]
            self._step += 1
            emit(f"Step {self._step}/{self._total} : {stage.from_node.original}\n")
            copy_state = ImageState(state.image_id, json.loads(json.dumps(state.raw)),
                                    list(state.layers), state.chain_id)  # fmt: skip
            emit(f" ---> {self._short(state.image_id)}\n")
            return copy_state
        self._step += 1
        emit(f"Step {self._step}/{self._total} : {stage.from_node.original}\n")
        if base.lower() == "scratch":
            emit(" ---> \n")
            return ImageState.scratch()
        image = await asyncio.to_thread(self.images.find, base)
        if opts.pull or image is None:
            # as dockerd: a missing base is pulled; --pull pulls even a present one, and a
            # failed pull fails the build (no silent fallback to a stale local image)
            if self.puller is None:
                raise ImageNotFound(f"{base} (this daemon cannot pull images)")
            try:
                await self.puller(base, emit, opts.registry_auth)
            except HafenError as e:
                raise type(e)(f"failed to pull {base} for FROM: {e.message}") from None
            image = await asyncio.to_thread(self.images.find, base)
            if image is None:
                raise ImageNotFound(base)
        wanted = stage.platform or opts.platform  # FROM --platform, else the build's
        if (
            wanted
            and wanted.split("/")[1:2]
            and (
                image.config.raw.get("architecture")
                and wanted.split("/")[1] != image.config.raw.get("architecture")
            )
        ):
            raise InvalidArgument(
                f"image {base} is for {image.config.raw.get('os')}/"
                f"{image.config.raw.get('architecture')}, not {wanted}"
            )
        layers = await asyncio.to_thread(self._layer_blobs, image)
        emit(f" ---> {image.short_id}\n")
        return ImageState.from_image(image, layers)

    def _layer_blobs(self, image: Image) -> list[LayerBlob]:
        blobs = []
        for chain in chain_ids(image.diff_ids):
            rows = self.images.metadata.query(
                "SELECT blob FROM layers WHERE chain_id = ?", (chain,)
            )
            if not rows or not rows[0]["blob"]:
                raise NotFound(f"layer {chain} of image {image.short_id} has no blob")
            blobs.append(LayerBlob(rows[0]["blob"]))
        return blobs

    @staticmethod
    def _short(image_id: str | None) -> str:
        return (image_id or "").removeprefix("sha256:")[:12]

    # ------------------------------------------------------------------ steps

    def _expand_env(self, run: _StageRun) -> dict[str, str]:
        """What ``$VAR`` sees: ARGs in scope, overridden by ENV (Docker's precedence)."""
        return {**run.args, **run.state.env_map()}

    async def _dispatch(
        self,
        run: _StageRun,
        node: Node,
        stages: list[Stage],
        results: dict[int, asyncio.Future[ImageState]],
        ctx: BuildContext,
        opts: BuildOptions,
        meta: dict[str, str],
        emit: Emit,
        trigger: bool = False,
    ) -> None:
        kw = node.keyword
        env = self._expand_env(run)
        esc = self._escape

        def word(text: str) -> str:
            return process_word(text, env, esc)

        try:
            if kw == "arg":
                await self._arg(run, node, opts, meta, emit)
                return
            if kw == "run":
                await self._run(run, node, stages, results, ctx, opts, emit)
                return
            if kw in ("copy", "add"):
                await self._copy(run, node, stages, results, ctx, opts, emit, env)
                return
            if kw == "workdir":
                await self._workdir(run, word(node.args[0]), emit)
                return
            created_by = apply_metadata(run, node, env, esc)
            await self._metadata_step(run, created_by, emit)
        except DockerfileSyntaxError:
            raise
        except (InvalidArgument, NotFound) as e:
            if e.message.startswith(ctx.dockerfile_name + ":"):
                raise
            located = copy.copy(e)  # same class (so the same status), message with file:line
            located.message = f"{ctx.dockerfile_name}:{node.start_line}: {e.message}"
            located.args = (located.message,)
            raise located from None

    def _cached(self, key: str) -> str | None:
        hit = self.cache.lookup(key)
        if hit is None:
            return None
        if self._cache_allowed is not None and hit not in self._cache_allowed:
            return None
        return hit

    async def _try_cache(self, run: _StageRun, key: str, opts: BuildOptions, emit: Emit) -> bool:
        if opts.no_cache:
            return False

        def lookup() -> tuple[Image, list[LayerBlob]] | None:  # one worker hop per step
            hit = self._cached(key)
            image = self.images.find(hit) if hit is not None else None
            return None if image is None else (image, self._layer_blobs(image))

        found = await asyncio.to_thread(lookup)
        if found is None:
            return False
        image, layers = found
        run.state = ImageState.from_image(image, layers)
        emit(f" ---> Using cache\n ---> {image.short_id}\n")
        return True

    async def _metadata_step(self, run: _StageRun, created_by: str, emit: Emit) -> None:
        state = run.state
        key = cache_key(state.image_id, "meta", json.dumps(state.raw.get("config"), sort_keys=True),
                        state.raw.get("author"), created_by)  # fmt: skip
        if await self._try_cache(run, key, self._opts, emit):
            return
        parent = state.image_id
        image_id = await self._commit(state, None, f"/bin/sh -c #(nop)  {created_by}",
                                      empty_layer=True, key=key, parent=parent)  # fmt: skip
        emit(f" ---> {self._short(image_id)}\n")

    async def _commit(
        self,
        state: ImageState,
        layer: tuple[str, int] | None,
        created_by: str,
        *,
        empty_layer: bool,
        key: str | None,
        parent: str | None = None,
    ) -> str:
        """Record the stage's image after one step (a new layer optional); its ID."""
        if layer is not None:
            digest, _ = layer
            state.raw["rootfs"]["diff_ids"] = [*state.diff_ids, digest]
            state.layers = [*state.layers, LayerBlob(digest, LAYER_TAR)]
        config = state.config_bytes(created_by, empty_layer)

        def store() -> Image:
            image = self.images.store_image(config, list(state.layers))
            if key is not None:
                self.cache.record(key, image.id, parent)
            return image

        image = await asyncio.to_thread(store)
        state.image_id = image.id
        state.chain_id = image.chain_id
        return image.id

    # ------------------------------------------------------------------ ARG

    async def _arg(self, run: _StageRun, node: Node, opts: BuildOptions, meta: dict[str, str],
                   emit: Emit) -> None:  # fmt: skip
        env = self._expand_env(run)
        shown = []
        for item in node.args:
            key, sep, default = item.partition("=")
            key = process_word(key, env, self._escape)
            if sep:
                default = process_word(default, env, self._escape)
            elif key in meta:
                default, sep = meta[key], "="
            if key in opts.build_args and opts.build_args[key] is not None:
                run.args[key] = str(opts.build_args[key])
                self._used_args.add(key)
            elif sep:
                run.args[key] = default
            else:
                run.args.pop(key, None)  # declared without a value: unset
            shown.append(f"{key}={default}" if sep else key)
        await self._metadata_step(run, "ARG " + " ".join(shown), emit)

    def _run_env(self, run: _StageRun, opts: BuildOptions) -> tuple[list[str], list[str]]:
        """The RUN's environment (ENV over ARGs) and the ``K=V`` build args it used."""
        args = dict(run.args)
        for name in PROXY_ARGS:  # usable without an ARG line, never in the history
            value = opts.build_args.get(name)
            if value is not None:
                args.setdefault(name, value)
        env_map = run.state.env_map()
        used = [f"{k}={v}" for k, v in sorted(run.args.items()) if k not in env_map]
        merged = {**args, **env_map}
        return [f"{k}={v}" for k, v in merged.items()], used

    # ------------------------------------------------------------------ RUN

    async def _run(
        self,
        run: _StageRun,
        node: Node,
        stages: list[Stage],
        results: dict[int, asyncio.Future[ImageState]],
        ctx: BuildContext,
        opts: BuildOptions,
        emit: Emit,
    ) -> None:
        flags = flag_map(node, ("mount", "network", "security"))
        network = one(flags, "network", "default")
        if network not in ("default", "none", "host"):
            raise InvalidArgument(f"unsupported network mode {network!r} for RUN (default, none)")
        if network == "host" or opts.network_mode == "host":
            raise InvalidArgument("RUN --network=host is not available: hafen builds run isolated")
        if network == "default" and opts.network_mode == "none":
            network = "none"
        if "security" in flags and one(flags, "security") != "sandbox":
            raise InvalidArgument("RUN --security=insecure is not allowed")
        argv = run_argv(run.state.shell, node)
        env, used = self._run_env(run, opts)
        for item in used:
            self._used_args.add(item.partition("=")[0])
        created_by = " ".join(argv)
        if used:
            created_by = f"|{len(used)} {' '.join(used)} {created_by}"
        key = cache_key(run.state.image_id, "run", argv, used, node.flags,
                        run.state.config.get("Env"), run.state.user, run.state.workdir)  # fmt: skip
        if await self._try_cache(run, key, opts, emit):
            return
        state = run.state
        parent = await self._ensure_image(state)
        stage_roots: dict[str, Path] = {}
        mounts_cleanup: list[Callable[[], None]] = []
        try:
            for ref in from_refs(node, {}, self._escape):
                root, release = await self._source_root(ref, stages, results)
                stage_roots[ref] = root
                mounts_cleanup.append(release)
            binds, cleanups = await asyncio.to_thread(
                run_mounts, node, run.state.workdir, self.work_dir, opts.secrets,
                lambda: ctx.root, stage_roots,
            )  # fmt: skip
            mounts_cleanup.extend(cleanups)
            spec = RunSpec(parent, argv, env, state.user, state.workdir, binds, network,
                           opts.resources)  # fmt: skip

            def started(container_id: str) -> None:
                emit(f" ---> Running in {container_id[:12]}\n")

            step = await self.runner.run(spec, started, emit)
            succeeded = False
            try:
                if step.exit_code != 0:
                    raise BuildFailed(
                        f"The command '{' '.join(argv)}' returned a non-zero code: "
                        f"{step.exit_code}",
                        code=step.exit_code,
                    )
                targets = [b.split(":")[1] for b in binds]
                layer = await asyncio.to_thread(self.layers.export, step.snapshot_key, targets)
                succeeded = True
            finally:
                # Docker's rm/forcerm: a step's container goes once it succeeded (rm, the
                # default); a failed one stays for inspection unless forcerm
                if opts.force_rm or (succeeded and opts.rm):
                    self._releases.append(asyncio.create_task(step.release()))
                    emit(f"Removing intermediate container {step.container_id[:12]}\n")
        finally:
            for release in mounts_cleanup:
                await asyncio.to_thread(release)
        image_id = await self._commit(state, layer, created_by, empty_layer=False, key=key,
                                      parent=parent)  # fmt: skip
        emit(f" ---> {self._short(image_id)}\n")

    async def _ensure_image(self, state: ImageState) -> str:
        if state.image_id is None:
            await self._commit(state, None, "/bin/sh -c #(nop) FROM scratch", empty_layer=True,
                               key=None)  # fmt: skip
        assert state.image_id is not None
        return state.image_id

    # ------------------------------------------------------------------ filesystem steps

    async def _source_root(
        self, ref: str, stages: list[Stage], results: dict[int, asyncio.Future[ImageState]]
    ) -> tuple[Path, Callable[[], None]]:
        """A read-only view of a stage's or an image's filesystem, and how to release it."""
        dep = next((s.index for s in stages if s.name and s.name == ref.lower()), None)
        if dep is None and ref.isdigit() and int(ref) < len(stages):
            dep = int(ref)
        if dep is not None:
            state = await results[dep]
            chain = state.chain_id
        else:
            image = await asyncio.to_thread(self.images.find, ref)
            if image is None:
                raise ImageNotFound(f"{ref} (the --from stage or image)")
            chain = image.chain_id
        return await asyncio.to_thread(self.layers.mount_chain, chain)

    async def _workdir(self, run: _StageRun, path: str, emit: Emit) -> None:
        state = run.state
        if not path:
            raise InvalidArgument("WORKDIR requires exactly one argument")
        full = posixpath.normpath(path if path.startswith("/") else
                                  posixpath.join(state.workdir or "/", path))  # fmt: skip
        state.config["WorkingDir"] = full
        key = cache_key(state.image_id, "workdir", full, state.user)
        if await self._try_cache(run, key, self._opts, emit):
            return
        parent = state.image_id
        user = state.user

        def make(root: Path) -> None:
            from hafen.build.copy import _clean, resolve_in_root

            parts = _clean(full, "image")
            owner = (0, 0)
            if user:
                resolved = resolve_user(root, user)
                owner = (resolved.uid, resolved.gid)
            for index in range(len(parts)):
                p = resolve_in_root(root, parts[: index + 1], follow_last=True)
                if not os.path.lexists(p):
                    os.mkdir(p, 0o755)
                    os.lchown(p, *owner)

        layer = await asyncio.to_thread(self.layers.write_step, state.chain_id, make)
        image_id = await self._commit(state, layer, f"/bin/sh -c #(nop) WORKDIR {full}",
                                      empty_layer=layer is None, key=key, parent=parent)  # fmt: skip
        emit(f" ---> {self._short(image_id)}\n")
