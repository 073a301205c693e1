"""Wires the builder's RUN steps to the container service (build/ cannot import containers/).

A RUN step is an ordinary container: created on the step's image with an empty
entrypoint, started, its output followed from the log as it is written, waited for.
Its snapshot stays until the builder has exported the changes; ``release`` removes it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from hafen.build.executor import Emit, RunSpec
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
        container = await self.containers.create(
            None, config, HostConfig(binds=spec.binds, network_mode=spec.network)
        )
        try:
            started(container.id)
            await self.containers.start(container.id)

            def running() -> bool:
                try:
                    return bool(self.containers.get(container.id).state.running)
                except HafenError:
                    return False

            async for rec in read_logs(container.log_path, LogQuery(follow=True), running):
                output(rec.data.decode("utf-8", "replace"))
            state = await self.containers.wait(container.id)
        except BaseException:
            with contextlib.suppress(HafenError):
                await self.containers.remove(container.id, force=True)
            raise
        return _Finished(int(state.exit_code or 0), container.snapshot_key, container.id,
                         self.containers)  # fmt: skip
