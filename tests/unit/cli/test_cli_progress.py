"""Docker's progress rendering of pull/push streams: one line per layer, rewritten in
place on a terminal; status lines only elsewhere; the stream's error raised."""

from __future__ import annotations

import io

import pytest

from hafen.cli._common import CLIError
from hafen.cli.commands.registry import ProgressDisplay, render_stream

MESSAGES = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"},
    {"status": "Downloading", "progressDetail": {"current": 5, "total": 10},
     "progress": "[=====>    ]", "id": "aaa"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaa"},
    {"status": "Digest: sha256:abc"},
]  # fmt: skip


def test_plain_output_has_status_lines_without_progress_bars() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=False)
    for message in MESSAGES:
        display.show(message)
    assert out.getvalue().splitlines() == [
        "latest: Pulling from library/busybox",
        "aaa: Pulling fs layer",
        "bbb: Pulling fs layer",
        "aaa: Pull complete",
        "Digest: sha256:abc",
    ]


def test_terminal_output_rewrites_the_layer_line_in_place() -> None:
    out = io.StringIO()
    display = ProgressDisplay(out, tty=True)
    for message in MESSAGES:
        display.show(message)
    text = out.getvalue()
    # "aaa" is line 1 of 3 when its progress comes: up 2 lines, rewrite, down 2 lines
    assert "\x1b[2A\r\x1b[2Kaaa: Downloading [=====>    ]\r\x1b[2B" in text
    assert "\x1b[2A\r\x1b[2Kaaa: Pull complete\r\x1b[2B" in text
    assert text.endswith("\x1b[2KDigest: sha256:abc\n")


def test_stream_error_is_raised_and_aux_returned() -> None:
    aux = render_stream(iter([{"aux": {"Digest": "sha256:x"}}]), quiet=True)
    assert aux == {"Digest": "sha256:x"}
    with pytest.raises(CLIError, match="manifest unknown"):
        render_stream(iter([{"errorDetail": {"message": "manifest unknown"}, "error": "x"}]))
