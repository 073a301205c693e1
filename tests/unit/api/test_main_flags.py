"""hafend's dockerd-style networking flags map onto daemon.json's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.api.main import parse_args
from hafen.daemon.config import DaemonConfig, load_config


def _config(tmp_path: Path, argv: list[str], daemon_json: str = "") -> DaemonConfig:
    path = tmp_path / "daemon.json"
    if daemon_json:
        path.write_text(daemon_json)
    args = parse_args(argv)
    return load_config(
        path,
        {
            "bridge_on_host": args.bridge_on_host,
            "iptables": args.iptables,
            "ip_masq": args.ip_masq,
            "ip_forward": args.ip_forward,
        },
    )


def test_bridge_on_host_is_off_unless_asked(tmp_path: Path) -> None:
    assert _config(tmp_path, []).bridge_on_host is False
    assert _config(tmp_path, ["--bridge-on-host"]).bridge_on_host is True
    on = '{"bridge-on-host": true}'
    assert _config(tmp_path, ["--bridge-on-host=false"], on).bridge_on_host is False
    assert _config(tmp_path, [], on).bridge_on_host is True


def test_dockerd_boolean_flags(tmp_path: Path) -> None:
    config = _config(tmp_path, ["--iptables=false", "--ip-masq=0", "--ip-forward"])
    assert (config.iptables, config.ip_masq, config.ip_forward) == (False, False, True)
    with pytest.raises(SystemExit):
        parse_args(["--iptables=maybe"])
