"""Image operations over a real daemon: history, prune (dangling / all / in use)."""

from __future__ import annotations

import json

from tests.conftest import Hafend


def test_history_lists_steps_newest_first_with_the_id_on_top(hafend: Hafend) -> None:
    out = hafend.cli("history", "busybox").stdout.splitlines()
    assert out[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    image_id = json.loads(hafend.cli("image", "inspect", "busybox").stdout)[0]["Id"]
    assert out[1].startswith(image_id[7:19])
    assert all(line.startswith("<missing>") for line in out[2:])
    quiet = hafend.cli("history", "-q", "--no-trunc", "busybox").stdout.split()
    assert quiet[0] == image_id
    sizes = hafend.cli(
        "history", "--format", "{{.Size}}", "--human=false", "busybox"
    ).stdout.split()
    inspect = json.loads(hafend.cli("image", "inspect", "busybox").stdout)[0]
    assert sum(int(s) for s in sizes) == inspect["Size"]


def test_history_of_a_missing_image(hafend: Hafend) -> None:
    result = hafend.cli("history", "nothere:v9", check=False)
    assert result.returncode == 1
    assert "No such image: nothere:v9" in result.stderr


def test_prune_keeps_tagged_and_used_images_and_all_removes_unused(fresh_hafend: Hafend) -> None:
    d = fresh_hafend
    assert "Total reclaimed space: 0B" in d.cli("image", "prune", "-f").stdout
    assert "busybox" in d.cli("images").stdout
    d.cli("create", "--name", "user", "busybox", "true")
    out = d.cli("image", "prune", "-af").stdout
    assert "busybox" in d.cli("images").stdout, out  # in use by a container
    d.cli("rm", "user")
    out = d.cli("image", "prune", "-af").stdout
    assert "untagged: busybox:latest" in out and "deleted: sha256:" in out
    assert d.cli("images", "-q").stdout == ""
    bad = d.cli("image", "prune", "-f", "--filter", "colour=red", check=False)
    assert bad.returncode == 1 and "invalid filter 'colour'" in bad.stderr
