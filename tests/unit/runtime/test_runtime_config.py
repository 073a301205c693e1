"""config.json validation: every refusal names the field at fault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hafen.errors import InvalidConfig
from hafen.runtime.config import load_spec, parse_spec


def _config(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]},
    }
    cfg.update(over)
    return cfg


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def test_minimal_config_parses(bundle: Path) -> None:
    spec = parse_spec(_config(hostname="h"), str(bundle))
    assert spec.rootfs == str(bundle / "rootfs")
    assert spec.process is not None and spec.process.args == ["sh"]
    assert [ns.type for ns in spec.namespaces] == ["mount", "pid"]
    assert spec.hostname == "h"


def test_full_process_fields(bundle: Path) -> None:
    proc = {
        "args": ["sh"],
        "env": ["A=1"],
        "cwd": "/w",
        "terminal": True,
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1, "gid": 2, "additionalGids": [3], "umask": 18},
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}],
        "noNewPrivileges": True,
        "oomScoreAdj": 100,
    }
    p = parse_spec(_config(process=proc), str(bundle)).process
    assert p is not None
    assert (p.uid, p.gid, p.additional_gids, p.umask) == (1, 2, [3], 18)
    assert (p.console_height, p.console_width) == (24, 80)
    assert p.capabilities is not None and p.capabilities.bounding == ["CAP_KILL"]
    assert p.rlimits == [(7, 10, 20)]
    assert p.no_new_privileges and p.oom_score_adj == 100


@pytest.mark.parametrize(
    "over, message",
    [
        ({"root": {"path": "missing"}}, "root.path: rootfs"),
        ({"root": "x"}, "root: expected dict"),
        ({"process": {"args": []}}, "process.args must not be empty"),
        ({"process": {"args": ["sh"], "cwd": "rel"}}, "process.cwd 'rel' must be an absolute"),
        ({"process": {"args": ["sh"], "user": {"uid": "0"}}}, "process.user.uid: expected int"),
        (
            {"process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_NOPE"]}}},
            "process.capabilities.bounding: unknown capability 'CAP_NOPE'",
        ),
        (
            {"process": {"args": ["sh"], "rlimits": [{"type": "RLIMIT_X"}]}},
            "process.rlimits[0].type: unknown rlimit",
        ),
        (
            {"linux": {"namespaces": [{"type": "mount"}, {"type": "bogus"}]}},
            "linux.namespaces[1].type: unknown namespace type 'bogus'",
        ),
        (
            {"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}},
            "namespace 'pid' listed twice",
        ),
        (
            {"linux": {"namespaces": [{"type": "net", "path": "/no/such/ns"}]}},
            "unknown namespace type 'net'",
        ),
        (
            {"linux": {"namespaces": [{"type": "network", "path": "/no/such/ns"}]}},
            "linux.namespaces[0].path",
        ),
        ({"linux": {"namespaces": [{"type": "user"}]}}, "requires linux.uidMappings"),
        ({"linux": {"devices": [{"path": "/dev/x", "type": "z"}]}}, "unknown device type"),
        ({"mounts": [{"type": "tmpfs"}]}, "mounts[0].destination: expected str"),
    ],
)
def test_invalid_fields_are_named(bundle: Path, over: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig) as exc:
        parse_spec(_config(**over), str(bundle))
    assert message in str(exc.value)


def test_load_spec_reports_malformed_json(bundle: Path) -> None:
    (bundle / "config.json").write_text("{not json")
    with pytest.raises(InvalidConfig, match="not valid JSON"):
        load_spec(str(bundle))


def test_load_spec_reports_missing_config(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match=r"config\.json not found"):
        load_spec(str(tmp_path))


def test_load_spec_resolves_relative_bundle(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bundle / "config.json").write_text(json.dumps(_config()))
    monkeypatch.chdir(bundle)
    assert load_spec(".").bundle == str(bundle)


def test_relative_mount_destination_is_rooted(bundle: Path) -> None:
    spec = parse_spec(_config(mounts=[{"destination": "data", "type": "tmpfs"}]), str(bundle))
    assert spec.mounts[0].destination == "/data"


def test_hooks_parse_and_bad_hooks_are_named(bundle: Path) -> None:
    hook = {"path": "/bin/true", "args": ["true", "x"], "env": ["A=1"], "timeout": 5}
    spec = parse_spec(_config(hooks={"poststop": [hook]}), str(bundle))
    (parsed,) = spec.hooks["poststop"]
    assert (parsed.path, parsed.args, parsed.env, parsed.timeout) == (
        "/bin/true",
        ["true", "x"],
        ["A=1"],
        5,
    )
    with pytest.raises(InvalidConfig, match=r"hooks\.afterlunch: unknown hook kind"):
        parse_spec(_config(hooks={"afterlunch": [hook]}), str(bundle))
    with pytest.raises(InvalidConfig, match="must be absolute"):
        parse_spec(_config(hooks={"prestart": [{"path": "true"}]}), str(bundle))


def test_hook_runs_with_state_on_stdin_and_timeout(tmp_path: Path) -> None:
    from hafen.errors import RuntimeFailure
    from hafen.runtime.config import Hook
    from hafen.runtime.hooks import run_hook

    out = tmp_path / "state.json"
    run_hook(Hook("/bin/sh", ["sh", "-c", f"cat > {out}"]), {"id": "c", "status": "x"}, "t")
    assert json.loads(out.read_text()) == {"id": "c", "status": "x"}
    with pytest.raises(RuntimeFailure, match="exit status 3"):
        run_hook(Hook("/bin/sh", ["sh", "-c", "exit 3"]), {}, "prestart")
    with pytest.raises(RuntimeFailure, match="timed out"):
        run_hook(Hook("/bin/sleep", ["sleep", "5"], timeout=1), {}, "prestart")


def test_hook_starts_with_no_signal_ignored(tmp_path: Path) -> None:
    """Whoever runs a hook (an interpreter ignores SIGPIPE, the shim SIGINT), the hook gets
    every disposition at its default: ignored ones would survive its execve."""
    import signal

    from hafen.runtime.config import Hook
    from hafen.runtime.hooks import run_hook

    out = tmp_path / "status"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN  # as in every CPython
        run_hook(Hook("/bin/sh", ["sh", "-c", f"cat /proc/self/status > {out}"]), {}, "t")
    finally:
        signal.signal(signal.SIGINT, previous)
    fields = dict(line.split(":\t", 1) for line in out.read_text().splitlines())
    assert int(fields["SigIgn"], 16) == 0
    assert int(fields["SigBlk"], 16) == 0


def test_an_interrupted_hook_is_killed_and_reaped(tmp_path: Path) -> None:
    """A hook with no timeout of its own still ends with its caller's (the shim bounds
    each runtime verb): it does not outlive the interruption."""
    import os
    import signal

    from hafen.runtime.config import Hook
    from hafen.runtime.hooks import run_hook

    pid_file = tmp_path / "pid"

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(TimeoutError):
            run_hook(Hook("/bin/sh", ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"]), {}, "t")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # killed, and reaped (no zombie left)
