"""``container prune``, ``system df`` and ``system prune`` against a real daemon."""

from __future__ import annotations

import json

from tests.conftest import Hafend
from tests.integration.test_api import call


def test_container_prune_keeps_running_and_filtered(hafend: Hafend) -> None:
    keep = hafend.cli("create", "-l", "keep=yes", "busybox", "true").stdout.strip()
    gone = hafend.cli("create", "busybox", "true").stdout.strip()
    up = hafend.cli("run", "-d", "busybox", "sleep", "60").stdout.strip()
    try:
        out = hafend.cli("container", "prune", "-f", "--filter", "label!=keep").stdout
        assert out.startswith("Deleted Containers:\n") and gone in out
        assert keep not in out and up not in out
        assert "Total reclaimed space:" in out
        ids = hafend.cli("ps", "-aq", "--no-trunc").stdout.split()
        assert keep in ids and up in ids and gone not in ids
        status, body, _ = call(hafend, "POST", '/containers/prune?filters={"bogus":["1"]}')
        assert status == 400 and "bogus" in body["message"]
        status, body, _ = call(hafend, "POST", '/containers/prune?filters={"until":["1h"]}')
        assert status == 200 and keep not in (body["ContainersDeleted"] or [])
    finally:
        hafend.cli("rm", "-f", keep, up, check=False)


def test_system_df_counts_and_sizes(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "busybox", "sh", "-c", "dd if=/dev/zero of=/blob bs=1k count=200 2>/dev/null"
    ).stderr
    del cid
    try:
        status, df, _ = call(hafend, "GET", "/system/df")
        assert status == 200
        busybox = next(i for i in df["Images"] if "busybox:latest" in (i["RepoTags"] or []))
        assert df["LayersSize"] > 0 and busybox["Containers"] >= 1
        assert max(c["SizeRw"] for c in df["Containers"]) >= 200 * 1024
        table = hafend.cli("system", "df").stdout.splitlines()
        assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        assert [line.split()[0] for line in table[1:]] == ["Images", "Containers", "Local",
                                                           "Build"]  # fmt: skip
        verbose = hafend.cli("system", "df", "-v").stdout
        assert "Containers space usage:" in verbose and "busybox" in verbose
        rows = hafend.cli("system", "df", "--format", "{{json .}}").stdout.splitlines()
        assert json.loads(rows[1])["Type"] == "Containers"
    finally:
        hafend.cli("container", "prune", "-f")


def test_system_prune_removes_stopped_containers(hafend: Hafend) -> None:
    cid = hafend.cli("create", "busybox", "true").stdout.strip()
    out = hafend.cli("system", "prune", "-f").stdout
    assert cid in out and out.rstrip().endswith(out.rstrip().splitlines()[-1])
    assert "Total reclaimed space:" in out
    assert hafend.cli("inspect", cid, check=False).returncode != 0
    assert "busybox" in hafend.cli("images").stdout  # in use by nothing, but not dangling
