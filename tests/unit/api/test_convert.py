"""Docker's create body → hafen's records, with errors that name the field."""

from __future__ import annotations

import pytest

from hafen.api.convert import container_config_from_api, status_text
from hafen.containers.model import Container, ContainerStatus, HostConfig
from hafen.errors import InvalidArgument


def test_create_body_maps_config_and_host_config() -> None:
    config, host = container_config_from_api(
        {
            "Image": "busybox", "Cmd": ["echo", "hi"], "Env": ["A=1"], "Tty": True, "OpenStdin": True,
            "Labels": {"k": "v"}, "HostConfig": {"AutoRemove": True, "Memory": 1 << 20, "PidsLimit": 5,
                                                 "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}},
        }
    )  # fmt: skip
    assert (
        config.cmd == ["echo", "hi"] and config.env == ["A=1"] and config.tty and config.open_stdin
    )
    assert host.auto_remove and host.memory == 1 << 20 and host.pids_limit == 5
    assert host.restart_policy.name == "on-failure" and host.restart_policy.maximum_retry_count == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"Image": "busybox", "Cmd": 5}, "Config.Cmd"),
        ({"Image": "busybox", "Tty": "yes"}, "Config.Tty"),
        ({"Image": "busybox", "HostConfig": {"Memory": "1g"}}, "HostConfig.Memory"),
        ({"Cmd": ["x"]}, "Config.Image"),
        ({"Image": "busybox", "HostConfig": {"LogConfig": {"Type": "syslog"}}}, "LogConfig.Type"),
    ],
)
def test_bad_fields_are_named(body: dict, field: str) -> None:
    with pytest.raises(InvalidArgument, match=field.replace(".", r"\.")):
        container_config_from_api(body)


def test_status_text_like_docker_ps() -> None:
    from hafen.containers.model import ContainerConfig

    c = Container(id="a" * 64, name="x", created="2026-01-01T00:00:00Z", image_id="sha256:1",
                  image_ref="busybox", config=ContainerConfig(), host_config=HostConfig())  # fmt: skip
    assert status_text(c) == "Created"
    c.state.status = ContainerStatus.RUNNING
    c.state.started_at = "2026-01-01T00:00:00Z"
    assert status_text(c, now=1767225600 + 5) == "Up 5 seconds"
    c.state.status = ContainerStatus.EXITED
    c.state.exit_code = 3
    c.state.finished_at = "2026-01-01T00:00:00Z"
    assert status_text(c, now=1767225600 + 120) == "Exited (3) 2 minutes ago"
