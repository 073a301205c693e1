"""The process-tree walk behind ``kill_exec``: a probe's descendants are all found."""

from __future__ import annotations

import os
import subprocess
import time

from hafen.shim.execs import _descendants, _signal


def test_descendants_finds_children_and_grandchildren() -> None:
    shell = subprocess.Popen(["/bin/sh", "-c", "sleep 30 & (sleep 30 & wait) ; wait"])
    try:
        deadline = time.monotonic() + 30  # a loaded machine forks slowly
        while len(_descendants(shell.pid)) < 4:  # sh, sleep, subshell, its sleep
            assert time.monotonic() < deadline, _descendants(shell.pid)
            time.sleep(0.02)
        tree = _descendants(shell.pid)
        assert shell.pid in tree and os.getpid() not in tree
    finally:
        for pid in sorted(_descendants(shell.pid), reverse=True):
            _signal(pid, 9)  # one may be gone already
        shell.wait()


def test_descendants_of_a_gone_process_is_just_itself() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _descendants(gone.pid) == {gone.pid}
