"""cgroup v2 device rules: the eBPF program allows and refuses opens as the rules say.

Runs on any host with a cgroup2 mount (the unified root, or a hybrid host's
/sys/fs/cgroup/unified), in a cgroup of its own made for the test.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.errors import RuntimeFailure
from hafen.runtime import devices_bpf


def _cgroup2_root() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[parts.index("-") + 1] == "cgroup2":
                return Path(parts[4])
    return None


@pytest.fixture
def v2_cgroup() -> Iterator[Path]:
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 mount on this host")
    d = root / f"hafen-devtest-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    yield d
    for pid in (d / "cgroup.procs").read_text().split():
        os.kill(int(pid), 9)
    d.rmdir()


def _probe(cgroup: Path) -> str:
    script = (
        f"echo $$ > {cgroup}/cgroup.procs; "
        "cat /dev/null && echo null-ok; "
        "head -c1 /dev/zero > /dev/null && echo zero-read-ok; "
        "(echo x > /dev/zero) 2>/dev/null && echo zero-write-ok; "
        "head -c1 /dev/urandom > /dev/null 2>&1 && echo urandom-ok"
    )
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30).stdout


def test_allow_list_after_deny_all(v2_cgroup: Path) -> None:
    devices_bpf.attach(
        str(v2_cgroup),
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
        ],
    )
    assert _probe(v2_cgroup).split() == ["null-ok", "zero-read-ok"]


def test_later_rules_override_earlier_ones(v2_cgroup: Path) -> None:
    devices_bpf.attach(
        str(v2_cgroup),
        [
            {"allow": True, "access": "rwm"},  # privileged: everything
            {"allow": False, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
        ],
    )
    assert _probe(v2_cgroup).split() == ["null-ok", "zero-read-ok", "zero-write-ok"]


def test_attach_to_a_missing_cgroup_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="device filter"):
        devices_bpf.attach(str(tmp_path / "missing"), [{"allow": False, "access": "rwm"}])
