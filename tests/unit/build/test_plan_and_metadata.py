"""The build plan (stages, dependencies, target, meta ARGs) and the metadata instructions."""

from __future__ import annotations

import pytest

from hafen.build.dockerfile import parse
from hafen.build.metadata import apply_metadata, expose_ports, go_quoted, parse_duration
from hafen.build.plan import BuildOptions, plan
from hafen.build.runstep import run_argv
from hafen.build.state import ImageState
from hafen.errors import InvalidArgument, NotFound

MULTI = """ARG BASE=busybox
ARG TAG
FROM ${BASE}:${TAG:-latest} AS deps
FROM busybox AS unused
FROM deps AS build
COPY --from=deps /a /a
FROM scratch
COPY --from=build /a /a
RUN --mount=type=bind,from=unused,target=/x true
"""


def test_stages_dependencies_and_what_the_target_needs() -> None:
    p = plan(MULTI, "Dockerfile", BuildOptions())
    assert [s.base for s in p.stages] == ["busybox:latest", "busybox", "deps", "scratch"]
    assert [s.name for s in p.stages] == ["deps", "unused", "build", ""]
    assert p.stages[2].deps == {0} and p.stages[3].deps == {2, 1}
    assert p.target == 3 and [s.index for s in p.needed()] == [0, 1, 2, 3]
    only_build = plan(MULTI, "Dockerfile", BuildOptions(target="BUILD"))
    assert [s.index for s in only_build.needed()] == [0, 2]


def test_build_args_override_meta_args_in_from() -> None:
    p = plan(MULTI, "Dockerfile", BuildOptions(build_args={"BASE": "alpine", "TAG": "3"}))
    assert p.stages[0].base == "alpine:3"
    assert p.meta == {"BASE": "alpine", "TAG": "3"}


@pytest.mark.parametrize(
    ("text", "opts", "error", "message"),
    [
        ("FROM a\n", BuildOptions(target="nope"), NotFound, "failed to reach build target nope"),
        ("RUN x\nFROM a\n", BuildOptions(), InvalidArgument, "only ARG may come before FROM"),
        ("FROM a AS x\nFROM b AS x\n", BuildOptions(), InvalidArgument, "duplicate name x"),
        ("FROM a\nCOPY --from=1 /a /b\n", BuildOptions(), InvalidArgument, "not defined yet"),
        ("FROM a b\n", BuildOptions(), InvalidArgument, "either one or three arguments"),
        ("ARG E\nFROM $E\n", BuildOptions(), InvalidArgument, "should not be blank"),
    ],
)
def test_plan_errors(text: str, opts: BuildOptions, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        plan(text, "Dockerfile", opts)


class _Run:
    def __init__(self) -> None:
        self.state = ImageState.scratch()
        self.cmd_set = False


def _apply(run: _Run, line: str, env: dict[str, str] | None = None) -> str:
    node = parse(f"FROM x\n{line}\n").nodes[1]
    return apply_metadata(run, node, env or {}, "\\")


def test_metadata_instructions_set_docker_config_fields() -> None:
    run = _Run()
    assert _apply(run, 'ENV A=1 B="two words" C=$A', {"A": "old"}) == "ENV A=1 B=two words C=old"
    _apply(run, "ENV A=again")
    assert run.state.config["Env"][1:] == ["A=again", "B=two words", "C=old"]  # A keeps its place
    _apply(run, 'LABEL "com.x"="y z" v=$V', {"V": "7"})
    assert run.state.config["Labels"] == {"com.x": "y z", "v": "7"}
    _apply(run, "EXPOSE 80 $P/udp 7000-7001", {"P": "53"})
    assert list(run.state.config["ExposedPorts"]) == ["80/tcp", "53/udp", "7000/tcp", "7001/tcp"]
    assert _apply(run, 'VOLUME ["/a", "/b"]') == "VOLUME [/a /b]"
    _apply(run, "USER ${U:-app}:grp")
    assert run.state.config["User"] == "app:grp"
    _apply(run, 'SHELL ["/bin/bash", "-c"]')
    _apply(run, "CMD run $X")  # not expanded: the shell does it
    assert run.state.config["Cmd"] == ["/bin/bash", "-c", "run $X"]
    _apply(run, 'ENTRYPOINT ["/e"]')
    assert run.state.config["Cmd"] == ["/bin/bash", "-c", "run $X"]  # CMD set in this stage stays
    fresh = _Run()
    fresh.state.config["Cmd"] = ["inherited"]
    _apply(fresh, "ENTRYPOINT /e")
    assert fresh.state.config["Cmd"] is None  # an inherited CMD is reset by ENTRYPOINT
    assert _apply(run, "STOPSIGNAL SIGUSR1") == "STOPSIGNAL SIGUSR1"
    with pytest.raises(InvalidArgument, match="Invalid signal"):
        _apply(run, "STOPSIGNAL SIGNOPE")
    assert _apply(run, "ONBUILD RUN echo $X") == "ONBUILD RUN echo $X"
    assert run.state.config["OnBuild"] == ["RUN echo $X"]
    _apply(run, 'HEALTHCHECK --interval=1m30s --start-period=500ms CMD ["true"]')
    assert run.state.config["Healthcheck"] == {
        "Test": ["CMD", "true"], "Interval": 90_000_000_000, "StartPeriod": 500_000_000,
    }  # fmt: skip
    _apply(run, "HEALTHCHECK NONE")
    assert run.state.config["Healthcheck"] == {"Test": ["NONE"]}


def test_small_helpers() -> None:
    assert go_quoted(["a b", 'c"d']) == '["a b" "c\\"d"]'
    assert parse_duration("2h", "interval") == 7200 * 10**9
    with pytest.raises(InvalidArgument, match="not a duration"):
        parse_duration("5 seconds", "interval")
    with pytest.raises(InvalidArgument, match="invalid proto"):
        expose_ports(["80/xyz"])


def test_run_command_lines() -> None:
    shell = ["/bin/sh", "-c"]
    node = parse("FROM x\nRUN echo hi\n").nodes[1]
    assert run_argv(shell, node) == ["/bin/sh", "-c", "echo hi"]
    node = parse('FROM x\nRUN ["echo", "hi"]\n').nodes[1]
    assert run_argv(shell, node) == ["echo", "hi"]
    node = parse("FROM x\nRUN <<EOF\necho a\necho b\nEOF\n").nodes[1]
    assert run_argv(shell, node) == ["/bin/sh", "-c", "echo a\necho b\n"]
    node = parse("FROM x\nRUN cat <<EOF > /f\nline\nEOF\n").nodes[1]
    assert run_argv(shell, node) == ["/bin/sh", "-c", "cat <<EOF > /f\nline\nEOF\n"]
