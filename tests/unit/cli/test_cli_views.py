"""ps and images rows: docker's columns and truncation."""

from __future__ import annotations

from hafen.cli.template import render_rows
from hafen.cli.views import (
    IMAGES_DEFAULT_FORMAT,
    IMAGES_HEADERS,
    PS_DEFAULT_FORMAT,
    PS_HEADERS,
    ContainerRow,
    display_ports,
    image_rows,
)

NOW = 1_700_000_100.0
CID = "4c01db0b339c" + "f" * 52
CONTAINER = {
    "Id": CID,
    "Names": ["/web", "/other/alias"],
    "Image": "busybox",
    "ImageID": "sha256:" + "e" * 64,
    "Command": "sleep 1000000000000000",
    "Created": 1_700_000_095,
    "State": "running",
    "Status": "Up 3 seconds",
    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
    "Labels": {"com.example": "x"},
}


def test_container_row_columns_like_docker() -> None:
    row = ContainerRow(CONTAINER, now=NOW)
    assert row.ID == "4c01db0b339c"
    assert row.Command == '"sleep 1000000000000…"'
    assert row.RunningFor == "5 seconds ago"
    assert row.Names == "web"
    assert row.Ports == "0.0.0.0:8080->80/tcp"
    assert row.Label("com.example") == "x"


def test_no_trunc_keeps_full_values() -> None:
    row = ContainerRow(CONTAINER, trunc=False, now=NOW)
    assert row.ID == CID
    assert row.Command == '"sleep 1000000000000000"'
    assert row.Names == "web,other/alias"


def test_image_shown_as_short_id_when_created_from_an_id() -> None:
    data = dict(CONTAINER, Image="sha256:" + "e" * 64)
    assert ContainerRow(data, now=NOW).Image == "e" * 12


def test_ps_default_table() -> None:
    out = render_rows(PS_DEFAULT_FORMAT, [ContainerRow(CONTAINER, now=NOW)], PS_HEADERS)
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES",
        '4c01db0b339c   busybox   "sleep 1000000000000…"   5 seconds ago   Up 3 seconds   0.0.0.0:8080->80/tcp   web',
    ]


def test_ps_empty_table_prints_the_header() -> None:
    out = render_rows(PS_DEFAULT_FORMAT, [], PS_HEADERS)
    assert out == "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"


def test_display_ports_collapses_ranges_and_lists_unpublished() -> None:
    ports = [
        {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 8001, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8000, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
    ]
    assert display_ports(ports) == "[::]:5353->53/udp, 0.0.0.0:8000-8001->80-81/tcp, 443/tcp"


IMAGE = {
    "Id": "sha256:" + "a" * 64,
    "RepoTags": ["busybox:latest", "busybox:1.36", "docker.io/library/other:v1"],
    "RepoDigests": ["busybox@sha256:" + "d" * 64],
    "Created": 1_700_000_000,
    "Size": 4_264_000,
}


def test_image_rows_one_per_tag_and_dangling() -> None:
    dangling = {"Id": "sha256:" + "b" * 64, "RepoTags": [], "Created": 1, "Size": 10}
    rows = image_rows([dangling, IMAGE], now=NOW)
    assert [(r.Repository, r.Tag) for r in rows] == [
        ("busybox", "latest"),
        ("busybox", "1.36"),
        ("other", "v1"),
        ("<none>", "<none>"),
    ]
    assert rows[0].ID == "a" * 12
    assert rows[0].Size == "4.26MB"
    assert rows[0].CreatedSince == "About a minute ago"


def test_image_rows_with_digests_and_no_trunc() -> None:
    rows = image_rows([IMAGE], show_digests=True, trunc=False, now=NOW)
    assert rows[0].Digest == "sha256:" + "d" * 64
    assert rows[0].ID == "sha256:" + "a" * 64
    assert rows[2].Digest == "<none>"


def test_images_default_table() -> None:
    out = render_rows(IMAGES_DEFAULT_FORMAT, image_rows([IMAGE], now=NOW)[:1], IMAGES_HEADERS)
    assert out.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED              SIZE",
        "busybox      latest    aaaaaaaaaaaa   About a minute ago   4.26MB",
    ]
