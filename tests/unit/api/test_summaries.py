"""ps rows from the per-container cache are the rows built afresh, whatever changed."""

from __future__ import annotations

import json

from hafen.api import summaries
from hafen.api.convert import container_summary
from hafen.containers.model import Container, ContainerConfig, ContainerStatus, HostConfig
from hafen.network.model import Endpoint, EndpointRequest


def fresh(c: Container) -> object:
    return json.loads(summaries.encode([container_summary(c)]))


def cached(c: Container) -> object:
    return json.loads(summaries.rows_json([c], {c.id}))


def test_cached_rows_follow_every_change_a_row_shows() -> None:
    c = Container(id="b" * 64, name="web", created="2026-01-01T00:00:00Z", image_id="sha256:1",
                  image_ref="busybox", config=ContainerConfig(labels={"a": "1"}),
                  host_config=HostConfig())  # fmt: skip
    assert cached(c) == fresh(c) and cached(c)[0]["Status"] == "Created"  # type: ignore[index]
    c.name = "renamed"
    assert cached(c) == fresh(c)
    c.state.status = ContainerStatus.RUNNING
    c.state.started_at = "2026-01-01T00:00:00Z"  # "Up N months": steady during the test
    assert cached(c) == fresh(c)
    c.networks["n1"] = EndpointRequest(aliases=["db"], network_name="front")
    assert cached(c) == fresh(c)
    c.endpoints.append(
        Endpoint("n1", "front", c.id, "e1", "172.18.0.2", 16, "172.18.0.1",
                 "02:42:ac:12:00:02", "eth0", "vethx")
    )  # fmt: skip
    assert cached(c) == fresh(c)
    c.endpoints[0] = Endpoint("n1", "front", c.id, "e2", "172.18.0.3", 16, "172.18.0.1",
                              "02:42:ac:12:00:03", "eth0", "vethy")  # fmt: skip
    row = cached(c)
    assert row == fresh(c)
    assert row[0]["NetworkSettings"]["Networks"]["front"]["IPAddress"] == "172.18.0.3"  # type: ignore[index]
    c.state.status = ContainerStatus.EXITED
    c.state.exit_code = 7
    c.state.finished_at = "2026-01-02T00:00:00Z"
    c.endpoints.clear()
    assert cached(c) == fresh(c) and "Exited (7)" in cached(c)[0]["Status"]  # type: ignore[index]


def test_rows_of_removed_containers_are_dropped() -> None:
    many = [
        Container(
            id=f"{i:064x}",
            name=f"c{i}",
            created="2026-01-01T00:00:00Z",
            image_id="sha256:1",
            image_ref="busybox",
            config=ContainerConfig(),
            host_config=HostConfig(),
        )
        for i in range(600)
    ]
    summaries.rows_json(many, {c.id for c in many})
    survivor = many[0]
    summaries.rows_json([survivor], {survivor.id})
    assert set(summaries._rows) <= {survivor.id}
