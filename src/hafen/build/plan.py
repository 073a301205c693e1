"""A Dockerfile as a build plan: its stages, what each needs, the target, the meta ARGs.

ARGs before the first FROM are the only variables FROM lines see (``--build-arg``
overrides their defaults). A stage depends on the stage its FROM names and on those its
``COPY --from`` / ``RUN --mount=from=`` name; the build needs the target and, transitively,
its dependencies, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hafen.build.dockerfile import Node, parse, process_word
from hafen.build.dockerfile.parser import DockerfileSyntaxError
from hafen.build.runstep import RunResources
from hafen.errors import InvalidArgument, NotFound


@dataclass
class BuildOptions:
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    network_mode: str = ""
    platform: str = ""  # the default for FROM lines without --platform ("" = this host's)
    secrets: dict[str, bytes] = field(default_factory=dict)  # RUN --mount=type=secret by id
    rm: bool = True  # remove each RUN container once its step succeeded
    force_rm: bool = False  # … and when it failed too
    resources: RunResources = field(default_factory=RunResources)
    registry_auth: dict[str, Any] = field(default_factory=dict)  # registry → Credentials


@dataclass
class Stage:
    index: int
    name: str  # lower-cased alias, "" without AS
    base: str  # the FROM image or stage name, expanded
    platform: str
    from_node: Node
    nodes: list[Node]
    deps: set[int] = field(default_factory=set)


def flag_map(node: Node, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    flags: dict[str, list[str]] = {}
    for raw in node.flags:
        name, sep, value = raw[2:].partition("=")
        if name not in allowed:
            raise DockerfileSyntaxError(
                f"Dockerfile:{node.start_line}: unknown flag: --{name} for {node.keyword.upper()}"
            )
        if not sep and name in ("link",):
            value = "true"
        flags.setdefault(name, []).append(value)
    return flags


def one(flags: dict[str, list[str]], name: str, default: str = "") -> str:
    values = flags.get(name)
    return values[-1] if values else default


@dataclass
class Plan:
    stages: list[Stage]
    target: int  # index of the stage to build
    meta: dict[str, str]  # ARGs before the first FROM, with their values
    escape: str  # the Dockerfile's escape character

    def needed(self) -> list[Stage]:
        """The target and the stages it uses, directly or not, in Dockerfile order."""
        needed: set[int] = set()
        pending = [self.target]
        while pending:
            index = pending.pop()
            if index not in needed:
                needed.add(index)
                pending.extend(self.stages[index].deps)
        return [s for s in self.stages if s.index in needed]


def plan(text: str, filename: str, opts: BuildOptions) -> Plan:
    """Split a Dockerfile into stages, find each stage's dependencies and the target."""
    dockerfile = parse(text, filename)
    escape = dockerfile.escape
    meta: dict[str, str] = {}
    stages: list[Stage] = []
    for node in dockerfile.nodes:
        if node.keyword == "from":
            args = node.args
            name = ""
            if len(args) == 3 and args[1].lower() == "as":
                name = args[2].lower()
            elif len(args) != 1:
                raise DockerfileSyntaxError(
                    f"{filename}:{node.start_line}: FROM requires either one or three arguments"
                )
            flags = flag_map(node, ("platform",))
            base = process_word(args[0], meta, escape)
            if not base:
                raise InvalidArgument(
                    f"{filename}:{node.start_line}: base name ({args[0]}) should not be blank"
                )
            if name and any(s.name == name for s in stages):
                raise InvalidArgument(f"duplicate name {name}")
            platform = process_word(one(flags, "platform"), meta, escape)
            stages.append(Stage(len(stages), name, base, platform, node, []))
        elif not stages:
            if node.keyword != "arg":
                raise InvalidArgument(
                    f"{filename}:{node.start_line}: {node.keyword.upper()} before the first "
                    "FROM: only ARG may come before FROM"
                )
            for word in node.args:
                key, sep, default = word.partition("=")
                value = opts.build_args.get(key)
                if value is None:
                    value = process_word(default, meta, escape) if sep else ""
                    if not sep and key not in opts.build_args:
                        continue
                meta[key] = value
        else:
            stages[-1].nodes.append(node)
    if not stages:
        raise InvalidArgument(f"{filename}: file with no instructions")
    by_name = {s.name: s.index for s in stages if s.name}
    for stage in stages:
        if stage.base.lower() in by_name and by_name[stage.base.lower()] < stage.index:
            stage.deps.add(by_name[stage.base.lower()])
        for node in stage.nodes:
            inner = node.sub if node.keyword == "onbuild" else None
            if inner is not None:
                continue
            for ref in from_refs(node, meta, escape):
                dep = by_name.get(ref.lower())
                if dep is None and ref.isdigit():
                    dep = int(ref)
                    if dep >= stage.index:
                        raise InvalidArgument(
                            f"{filename}:{node.start_line}: invalid from flag value {ref}: "
                            "refers to a stage that is not defined yet"
                        )
                if dep is not None:
                    if dep == stage.index:
                        raise InvalidArgument(
                            f"{filename}:{node.start_line}: circular dependency detected "
                            f"on stage: {ref}"
                        )
                    stage.deps.add(dep)
    if opts.target:
        target = by_name.get(opts.target.lower())
        if target is None:
            raise NotFound(f"failed to reach build target {opts.target} in Dockerfile")
    else:
        target = len(stages) - 1
    return Plan(stages, target, meta, escape)


def from_refs(node: Node, meta: dict[str, str], escape: str) -> list[str]:
    """The stages or images a COPY/ADD --from or a RUN --mount from= names."""
    refs: list[str] = []
    for raw in node.flags:
        if node.keyword in ("copy", "add") and raw.startswith("--from="):
            refs.append(process_word(raw[7:], meta, escape))
        if node.keyword == "run" and raw.startswith("--mount="):
            for part in raw[8:].split(","):
                k, _, v = part.partition("=")
                if k == "from" and v:
                    refs.append(v)
    return refs
