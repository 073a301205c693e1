"""The command line: flags as runc takes them, signals, error output and exit status."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from hafen.errors import Conflict, ContainerNotFound, RuntimeFailure
from hafen.runtime.cli_runtime import _error, _last_message
from hafen.runtime.main import _VERB_FLAGS, UsageError, _parse_flags, main, parse_signal


@pytest.mark.parametrize(
    "text, num",
    [("SIGTERM", 15), ("TERM", 15), ("term", 15), ("9", 9), ("KILL", 9), ("SIGRTMIN+1", int(signal.SIGRTMIN) + 1)],
)  # fmt: skip
def test_signals_by_name_or_number(text: str, num: int) -> None:
    assert parse_signal(text) == num


@pytest.mark.parametrize("text", ["SIGNOPE", "0", "99", ""])
def test_bad_signals_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse_signal(text)


def test_go_style_flags() -> None:
    opts, rest = _parse_flags(
        ["-b", "/b", "--pid-file=/p", "--console-socket", "/s", "cid"], _VERB_FLAGS["create"], False
    )
    assert opts == {"bundle": "/b", "pid_file": "/p", "console_socket": "/s"}
    assert rest == ["cid"]


def test_flags_after_the_id_are_accepted() -> None:
    opts, rest = _parse_flags(["cid", "--force"], _VERB_FLAGS["delete"], False)
    assert opts == {"force": True} and rest == ["cid"]


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(UsageError, match="flag provided but not defined: -nope"):
        _parse_flags(["--nope", "x"], _VERB_FLAGS["start"], False)


def test_missing_flag_value_is_refused() -> None:
    with pytest.raises(UsageError, match="flag needs an argument"):
        _parse_flags(["--bundle"], _VERB_FLAGS["create"], False)


def test_state_of_missing_container(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "state", "nope"]) == 1
    assert capsys.readouterr().err.strip() == 'container "nope" does not exist'


def test_invalid_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "state", "../etc"]) == 1
    assert "invalid container id" in capsys.readouterr().err


def test_wrong_argument_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "start"]) == 1
    assert "requires exactly 1 argument" in capsys.readouterr().err


def test_text_log_format(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert main(["--root", str(tmp_path), "--log", str(log), "start", "x"]) == 1
    assert 'level=error msg="container \\"x\\" does not exist"' in log.read_text() or (
        "level=error" in log.read_text()
    )


def test_list_and_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["features"]) == 0
    features = json.loads(capsys.readouterr().out)
    assert "pid" in features["linux"]["namespaces"]
    assert features["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_CMP_MASKED_EQ" in features["linux"]["seccomp"]["operators"]
    assert features["hooks"] == [
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"
    ]  # fmt: skip


def test_delete_force_of_missing_container_succeeds(tmp_path: Path) -> None:
    assert main(["--root", str(tmp_path), "delete", "--force", "nope"]) == 0
    assert main(["--root", str(tmp_path), "delete", "nope"]) == 1


def test_runtime_messages_map_to_errors() -> None:
    assert isinstance(_error("c", "state", 'container "c" does not exist\n'), ContainerNotFound)
    assert isinstance(
        _error("c", "delete", "cannot delete container c that is not stopped: running"), Conflict
    )
    assert isinstance(_error("c", "kill", "container not running"), Conflict)
    failure = _error("c", "start", "boom")
    assert isinstance(failure, RuntimeFailure) and str(failure) == "boom"


def test_last_message_reads_logrus_and_json() -> None:
    assert _last_message('time="x" level=error msg="container does not exist"\n') == (
        "container does not exist"
    )
    assert _last_message('{"level":"error","msg":"nope"}\n') == "nope"
    assert _last_message("plain\n") == "plain"


def test_exec_flags_repeat_and_stop_at_the_container_id() -> None:
    opts, rest = _parse_flags(
        ["-e", "A=1", "--env=B=2", "-c", "CAP_KILL", "-t", "-d", "cid", "sh", "-c", "x"],
        _VERB_FLAGS["exec"],
        True,
    )
    assert opts == {"env": ["A=1", "B=2"], "cap": ["CAP_KILL"], "tty": True, "detach": True}
    assert rest == ["cid", "sh", "-c", "x"]  # the command's own flags are not ours


def test_exec_failure_exits_255(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "exec", "nope", "true"]) == 255
    assert 'container "nope" does not exist' in capsys.readouterr().err


def test_exec_process_file_errors_name_the_file(tmp_path: Path) -> None:
    from hafen.errors import InvalidConfig
    from hafen.runtime.exec_process import load_process_file

    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"args": []}))
    with pytest.raises(InvalidConfig, match=r"process file .*p\.json.*args must not be empty"):
        load_process_file(str(bad))
