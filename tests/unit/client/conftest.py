"""Fixtures for the client tests: a fake daemon on a short unix socket path."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
from tests.unit.client.hafen_fake_daemon import FakeDaemon


@pytest.fixture
def fake() -> Iterator[FakeDaemon]:
    # tmp_path can exceed the 108-byte limit of unix socket paths; use a short one.
    root = tempfile.mkdtemp(prefix="hfc", dir="/tmp")
    try:
        with FakeDaemon(f"{root}/d.sock") as daemon:
            yield daemon
    finally:
        shutil.rmtree(root, ignore_errors=True)
