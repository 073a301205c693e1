"""Failed launches report the runtime's own words and leave nothing behind."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from hafen.errors import RuntimeFailure

from .conftest import RUNTIME, SHIM_COMMAND, SHIM_ENV, Shims, run, runtime_has_state


def _stat(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"


def _processes_mentioning(text: str) -> list[int]:
    """Processes whose command line or name (zygote-forked shims: ``shim-<id>``) has it."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/comm", "rb") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if text.encode() in cmdline or comm == f"shim-{text[:10]}".encode():
            pids.append(int(entry))
    return pids


def _assert_nothing_left(shims: Shims, state_dir: Path) -> None:
    cid = shims.ids[-1]
    assert not state_dir.exists(), sorted(p.name for p in state_dir.iterdir())
    # A zygote-forked shim answers as its last act; its exit may still be under way
    # (no memory, no files, only the task) when the answer arrives: give it a moment.
    deadline = time.monotonic() + 2
    while (left := _processes_mentioning(cid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert left == [], [(p, _stat(p)) for p in left]
    assert not runtime_has_state(shims, cid)


def test_missing_executable_reports_the_runtimes_error(shims: Shims) -> None:
    with pytest.raises(RuntimeFailure, match="executable file not found"):
        shims.launch(["nosuchprogram"])
    _assert_nothing_left(shims, shims.state_dir_for(shims.ids[-1]))


def test_bad_bundle_reports_the_runtimes_error(shims: Shims, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bundle"
    empty.mkdir()
    with pytest.raises(RuntimeFailure, match=r"config\.json"):
        shims.launch(["true"], bundle=empty)
    _assert_nothing_left(shims, shims.state_dir_for(shims.ids[-1]))


def test_bad_runtime_command_is_reported(shims: Shims) -> None:
    with pytest.raises(RuntimeFailure, match="cannot run runtime"):
        shims.launch(["true"], runtime=["/no/such/runtime"])
    _assert_nothing_left(shims, shims.state_dir_for(shims.ids[-1]))


def test_bad_tty_create_is_reported_and_cleaned(shims: Shims) -> None:
    with pytest.raises(RuntimeFailure, match="executable file not found"):
        shims.launch(["nosuchprogram"], tty=True, stdin=True)
    _assert_nothing_left(shims, shims.state_dir_for(shims.ids[-1]))


def test_failure_keeps_an_existing_state_dir_and_its_other_files(shims: Shims) -> None:
    state = shims.root / "kept"
    state.mkdir()
    (state / "config.v2.json").write_text("{}")
    with pytest.raises(RuntimeFailure):
        shims.launch(["nosuchprogram"], state_dir=state)
    assert sorted(p.name for p in state.iterdir()) == ["config.v2.json"]


def test_launcher_prints_one_json_line_and_exits_1_on_error(shims: Shims) -> None:
    cid, bundle = shims.bundle(["nosuchprogram"])
    shims.ids.append(cid)
    state = shims.state_dir_for(cid)
    proc = subprocess.run(
        [
            *SHIM_COMMAND,
            "--id", cid, "--bundle", str(bundle), "--state-dir", str(state),
            "--log-path", str(state / "c.log"), "--runtime", shlex.join(RUNTIME),
            "--runtime-root", str(shims.runtime_root),
        ],
        capture_output=True,
        env=SHIM_ENV,
        timeout=30,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 1 and '"error"' in lines[0]


def test_launcher_usage_error_exits_2() -> None:
    proc = subprocess.run(
        [*SHIM_COMMAND, "--id", "x"], capture_output=True, env=SHIM_ENV, timeout=30
    )
    assert proc.returncode == 2
    assert b"missing --bundle" in proc.stderr


def test_long_state_dir_paths_work_for_socket_and_console(shims: Shims) -> None:
    deep = shims.root / ("d" * 60) / ("e" * 60)
    c = shims.launch(["sh", "-c", "echo $(stty size)"], tty=True, state_dir=deep)
    assert len(str(deep / "shim.sock")) > 108
    run(c.client.resize(30, 90))
    run(c.client.start())
    assert run(c.client.wait()).exit_code == 0
    assert [r["log"] for r in c.log_records()] == ["30 90\r\n"]
