"""The hafen-shim command line."""

from __future__ import annotations

import pytest

from hafen.shim.main import UsageError, parse_args

BASE = ["--id", "c1", "--bundle", "/b", "--state-dir", "/s", "--log-path", "/s/l.log"]


def test_required_flags_and_defaults() -> None:
    opts = parse_args([*BASE, "--runtime", "/usr/sbin/runc"])
    assert (opts.id, opts.bundle, opts.state_dir, opts.log_path) == ("c1", "/b", "/s", "/s/l.log")
    assert opts.runtime == ["/usr/sbin/runc"]
    assert opts.runtime_root is None
    assert (opts.tty, opts.stdin, opts.stdin_once) == (False, False, False)


def test_runtime_is_a_shell_split_prefix_and_flags_take_equals() -> None:
    opts = parse_args(
        [*BASE, "--runtime=/usr/bin/python3 -S -m hafen.runtime", "--runtime-root=/r", "--tty"]
    )
    assert opts.runtime == ["/usr/bin/python3", "-S", "-m", "hafen.runtime"]
    assert opts.runtime_root == "/r"
    assert opts.tty


def test_boolean_flags() -> None:
    opts = parse_args([*BASE, "--runtime", "runc", "--stdin", "--stdin-once", "--tty=false"])
    assert (opts.tty, opts.stdin, opts.stdin_once) == (False, True, True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (BASE, "missing --runtime"),
        ([*BASE, "--runtime", "runc", "--frobnicate"], "unknown flag --frobnicate"),
        ([*BASE, "--runtime"], "--runtime needs a value"),
        ([*BASE, "--runtime", "runc", "stray"], "unexpected argument 'stray'"),
        ([*BASE, "--runtime", "  "], "--runtime"),
        ([*BASE, "--runtime", "runc", "--tty=maybe"], "--tty takes true or false"),
    ],
)
def test_bad_command_lines_name_the_problem(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_args(argv)


def test_log_format_compress_and_attrs() -> None:
    opts = parse_args([*BASE, "--runtime", "runc", "--log-format", "local", "--log-compress",
                       "--log-attrs", '{"tag":"web"}'])  # fmt: skip
    assert (opts.log_format, opts.log_compress, opts.log_attrs) == ("local", True, {"tag": "web"})
    defaults = parse_args([*BASE, "--runtime", "runc"])
    assert (defaults.log_format, defaults.log_compress, defaults.log_attrs) == (
        "json-file", False, None
    )  # fmt: skip
    with pytest.raises(UsageError, match="--log-format takes"):
        parse_args([*BASE, "--runtime", "runc", "--log-format", "syslog"])
    with pytest.raises(UsageError, match="JSON object of strings"):
        parse_args([*BASE, "--runtime", "runc", "--log-attrs", '{"a": 1}'])


def test_log_mode_and_buffer_size() -> None:
    opts = parse_args([*BASE, "--runtime", "runc"])
    assert opts.log_buffer_size is None  # blocking unless told
    opts = parse_args([*BASE, "--runtime", "runc", "--log-mode", "non-blocking"])
    assert opts.log_buffer_size == 1024 * 1024
    opts = parse_args(
        [*BASE, "--runtime", "runc", "--log-mode=non-blocking", "--log-max-buffer-size=4096"]
    )
    assert opts.log_buffer_size == 4096
    assert (
        parse_args([*BASE, "--runtime", "runc", "--log-mode", "blocking"]).log_buffer_size is None
    )
    with pytest.raises(UsageError, match="blocking or non-blocking"):
        parse_args([*BASE, "--runtime", "runc", "--log-mode", "async"])
    with pytest.raises(UsageError, match="needs --log-mode non-blocking"):
        parse_args([*BASE, "--runtime", "runc", "--log-max-buffer-size", "4096"])
    with pytest.raises(UsageError, match="non-negative integer"):
        parse_args([*BASE, "--runtime", "runc", "--log-mode", "non-blocking",
                    "--log-max-buffer-size", "4k"])  # fmt: skip
