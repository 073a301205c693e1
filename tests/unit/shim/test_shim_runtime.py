"""Runtime invocation: argv layout, error messages from the JSON log or stderr, timeouts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.shim.runtime import RuntimeCommand


@pytest.fixture
def wake() -> Iterator[int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r
    os.close(r)
    os.close(w)


def fake_runtime(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "fake-runtime.py"
    script.write_text("import sys, json, os, time\nargs = sys.argv[1:]\n" + body)
    return [sys.executable, "-S", str(script)]


def test_argv_puts_global_flags_before_the_verb(tmp_path: Path, wake: int) -> None:
    rt = RuntimeCommand(["runc", "--debug"], "/r", str(tmp_path), wake)
    assert rt.argv("start", "c1") == [
        "runc", "--debug", "--root", "/r", "--log", str(tmp_path / "runtime.log"),
        "--log-format", "json", "start", "c1",
    ]  # fmt: skip


def test_success_has_no_message(tmp_path: Path, wake: int) -> None:
    rt = RuntimeCommand(fake_runtime(tmp_path, "print('fine')"), None, str(tmp_path), wake)
    res = rt.run(["start", "c1"])
    assert res.ok and res.message == "" and res.output == b"fine\n"


def test_error_comes_from_the_json_log_first(tmp_path: Path, wake: int) -> None:
    body = (
        "log = args[args.index('--log') + 1]\n"
        "with open(log, 'a') as f:\n"
        "    f.write(json.dumps({'level': 'info', 'msg': 'noise'}) + '\\n')\n"
        "    f.write(json.dumps({'level': 'error', 'msg': 'container does not exist'}) + '\\n')\n"
        "print('something else', file=sys.stderr)\n"
        "sys.exit(1)\n"
    )
    rt = RuntimeCommand(fake_runtime(tmp_path, body), None, str(tmp_path), wake)
    (tmp_path / "runtime.log").write_text(json.dumps({"level": "error", "msg": "old"}) + "\n")
    res = rt.run(["kill", "c1", "9"])
    assert res.status == 1
    assert res.message == "container does not exist"


def test_error_falls_back_to_stderr_then_status(tmp_path: Path, wake: int) -> None:
    rt = RuntimeCommand(
        fake_runtime(tmp_path, "print('bad things\\nreally bad', file=sys.stderr); sys.exit(2)"),
        None,
        str(tmp_path),
        wake,
    )
    assert rt.run(["start", "c1"]).message == "really bad"
    rt = RuntimeCommand(fake_runtime(tmp_path, "sys.exit(4)"), None, str(tmp_path), wake)
    assert rt.run(["start", "c1"]).message == "runtime start exited with status 4"


def test_missing_runtime_is_reported(tmp_path: Path, wake: int) -> None:
    rt = RuntimeCommand(["/no/such/runtime"], None, str(tmp_path), wake)
    res = rt.run(["start", "c1"])
    assert not res.ok and "cannot run runtime '/no/such/runtime'" in res.message


def test_a_hanging_runtime_is_killed_at_the_timeout(tmp_path: Path, wake: int) -> None:
    rt = RuntimeCommand(fake_runtime(tmp_path, "time.sleep(30)"), None, str(tmp_path), wake)
    res = rt.run(["start", "c1"], timeout=0.5)
    assert res.status == 124 and res.message == "runtime start timed out"


def test_ignored_signals_are_reset_to_default_in_the_runtime(tmp_path: Path, wake: int) -> None:
    import signal

    saved = {
        sig: signal.signal(sig, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)
    }
    try:
        # a shell reporting its own ignored-signal mask (extra argv goes to $0, $1, ...)
        rt = RuntimeCommand(
            ["/bin/sh", "-c", "grep SigIgn /proc/self/status"], None, str(tmp_path), wake
        )
        mask = int(rt.run(["x"]).output.split()[1], 16)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGTERM):
            assert not mask & (1 << (sig - 1)), f"{sig.name} still ignored"
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_what_the_zygote_loads_has_no_ctypes() -> None:
    # Every shim is a fork of the zygote: what it loads is in each one's memory. The
    # runtime's Linux calls are its C module; the shim names itself through /proc.
    import subprocess

    code = (
        "import sys\n"
        "from hafen.shim.runtime import preload\n"
        "from hafen.shim.monitor import set_process_name, set_subreaper\n"
        "from hafen.shim.main import become_shim\n"
        "preload(); set_process_name('hafen-test'); set_subreaper()\n"
        "print(open('/proc/self/comm').read().strip(), 'ctypes' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[3] / "src")
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": src},
    ).stdout.split()  # fmt: skip
    assert out == ["hafen-test", "False"]
