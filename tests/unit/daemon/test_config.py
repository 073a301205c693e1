"""daemon.json → DaemonConfig, with flags on top and unknown keys refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hafen.daemon.config import load_config
from hafen.errors import InvalidConfig


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.json", {})
    assert str(config.data_root) == "/var/lib/hafen"
    assert str(config.exec_root) == "/run/hafen"
    assert config.hosts == ["unix:///run/hafen/hafen.sock"]


def test_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(
        json.dumps({"data-root": "/srv/hafen", "runtimes": {"fast": {"path": "/usr/bin/crun"}}})
    )
    config = load_config(path, {"exec_root": "/tmp/x", "data_root": None})
    assert str(config.data_root) == "/srv/hafen" and str(config.exec_root) == "/tmp/x"
    assert config.runtime_command("fast") == ["/usr/bin/crun"]


def test_unknown_keys_and_bad_json_are_named(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"data-rot": "/x"}')
    with pytest.raises(InvalidConfig, match="data-rot"):
        load_config(path, {})
    path.write_text("{nope")
    with pytest.raises(InvalidConfig, match="invalid JSON"):
        load_config(path, {})


def test_unknown_runtime_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="unknown runtime"):
        load_config(None, {}).runtime_command("kata")


def test_bridge_none_is_read_and_other_bridges_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps({"bridge": "none"}))
    assert load_config(path, {}).bridge == "none"
    with pytest.raises(InvalidConfig, match='only "none"'):
        load_config(path, {"bridge": "docker0"})
