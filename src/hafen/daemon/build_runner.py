"""Wires the builder's RUN steps to the container service (build/ cannot import containers/).

A RUN step is an ordinary container: created on the step's image with an empty
entrypoint, started, its output followed from the log as it is written, waited for.
Its snapshot stays until the builder has exported the changes; ``release`` removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hafen.build.runstep import Emit, RunSpec
from hafen.containers.logs import LogQuery, read_logs
from hafen.containers.model import ContainerConfig, HostConfig
from hafen.containers.service import ContainerService
from hafen.errors import HafenError


@dataclass
class _Finished:
    exit_code: int
    snapshot_key: str
    container_id: str
    service: ContainerService

    async def release(self) -> None:
        with contextlib.suppress(HafenError):
            await self.service.remove(self.container_id, force=True)


class ContainerStepRunner:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers

    async def run(self, spec: RunSpec, started: Any, output: Emit) -> _Finished:
        config = ContainerConfig(
            image=spec.image_id,
            cmd=spec.argv,
            entrypoint=[],
            env=spec.env,
            working_dir=spec.workdir,
            user=spec.user,
        )
        res = spec.resources
        host = HostConfig(
            binds=spec.binds,
            network_mode=spec.network,
            memory=res.memory,
            memory_swap=res.memory_swap,
            cpu_shares=res.cpu_shares,
            cpuset_cpus=res.cpuset_cpus,
            cpu_period=res.cpu_period,
            cpu_quota=res.cpu_quota,
            extra_hosts=list(res.extra_hosts),
        )
        if res.shm_size:
            host.shm_size = res.shm_size
        container = await self.containers.create(None, config, host)
        try:
            started(container.id)
            await self.containers.start(container.id)

            def running() -> bool:
                try:
                    return bool(self.containers.get(container.id).state.running)
                except HafenError:
                    return False

            # the output is followed while the step runs; its exit (an event, not a poll)
            # ends the follow at once, and what the follower had not shown yet is read
            # from the complete log (the shim writes its last records before the exit)
            shown = 0

            async def follow() -> None:
                nonlocal shown
                async for rec in read_logs(container.log_path, LogQuery(follow=True), running):
                    output(rec.data.decode("utf-8", "replace"))
                    shown += 1

            follower = asyncio.create_task(follow())
            try:
                state = await self.containers.wait(container.id)
            finally:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower
            seen = 0
            async for rec in read_logs(container.log_path, LogQuery(), lambda: False):
                seen += 1
                if seen > shown:
                    output(rec.data.decode("utf-8", "replace"))
        except BaseException:
            with contextlib.suppress(HafenError):
                await self.containers.remove(container.id, force=True)
            raise
        return _Finished(int(state.exit_code or 0), container.snapshot_key, container.id,
                         self.containers)  # fmt: skip


class RegistryPuller:
    """FROM of an image that is not here (or ``--pull``): an ordinary pull, its progress
    shown as the build's text lines."""

    def __init__(self, distribution: Any, images: Any) -> None:
        self.distribution = distribution
        self.images = images

    async def __call__(self, ref: str, emit: Emit, auth: Mapping[str, Any]) -> None:
        from hafen.distribution.credentials import Credentials, registry_key
        from hafen.distribution.manifests import host_platform
        from hafen.images.progress import ProgressEvent
        from hafen.images.pull import pull_image
        from hafen.images.reference import parse_reference

        reference = parse_reference(ref)

        def show(event: ProgressEvent) -> None:
            if event.current is None and event.aux is None:
                emit(f"{event.id}: {event.status}\n" if event.id else f"{event.status}\n")

        credentials = auth.get(registry_key(reference.domain)) or Credentials()
        async with self.distribution.client(
            reference.domain, reference.path, credentials
        ) as client:
            await pull_image(
                client, self.images, reference, host_platform(), show,
                max_downloads=self.distribution.config.max_concurrent_downloads,
            )  # fmt: skip
