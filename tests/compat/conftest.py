"""Fixtures of the peer tests: a second daemon with an empty store, real registries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.compat.registries import DockerRegistry
from tests.conftest import Hafend


@pytest.fixture(scope="session")
def empty_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hafend]:
    """A second daemon with an empty store: what it runs, it pulled."""
    daemon = Hafend(tmp_path_factory.mktemp("hafend-empty"))
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture(scope="session")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    registry = DockerRegistry(tmp_path_factory.mktemp("registry-open")).start()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    registry = DockerRegistry(tmp_path_factory.mktemp("registry-basic"), auth="htpasswd").start()
    yield registry
    registry.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    registry = DockerRegistry(tmp_path_factory.mktemp("registry-token"), auth="token").start()
    yield registry
    registry.stop()
