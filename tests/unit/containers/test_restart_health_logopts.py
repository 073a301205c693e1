"""Pure rules: restart policies and back-off, healthcheck merge/commands, log options."""

from __future__ import annotations

import pytest

from hafen.containers import logopts
from hafen.containers.health import merge_healthcheck, probe_command, validate_healthcheck
from hafen.containers.restart import Backoff, should_restart, validate_policy
from hafen.errors import InvalidArgument


def test_policies_decide_like_dockerd() -> None:
    assert should_restart("always", 0, 0, False, 99)
    assert not should_restart("always", 0, 1, True, 0)  # the user stopped it
    assert should_restart("unless-stopped", 0, 0, False, 0)
    assert should_restart("on-failure", 2, 1, False, 1)
    assert not should_restart("on-failure", 2, 1, False, 2)  # retries used up
    assert not should_restart("on-failure", 0, 0, False, 0)  # a clean exit
    assert should_restart("on-failure", 0, 3, False, 1000)  # 0: unlimited
    assert not should_restart("no", 0, 1, False, 0)


def test_backoff_doubles_caps_and_resets_after_a_long_run() -> None:
    b = Backoff()
    assert [b.next(0.1) for _ in range(4)] == [0.1, 0.2, 0.4, 0.8]
    for _ in range(20):
        b.next(0.1)
    assert b.next(0.1) == 60.0
    assert b.next(10.0) == 0.1


def test_bad_policies() -> None:
    with pytest.raises(InvalidArgument, match="invalid restart policy 'sometimes'"):
        validate_policy("sometimes", 0)
    with pytest.raises(InvalidArgument, match="only be used with 'on-failure'"):
        validate_policy("always", 3)
    validate_policy("", 0)


def test_healthcheck_merge_and_commands() -> None:
    image = {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert merge_healthcheck(None, image) == image
    merged = merge_healthcheck({"Test": ["CMD-SHELL", "x"], "Interval": 0}, image)
    assert merged == {"Test": ["CMD-SHELL", "x"], "Interval": 5_000_000_000, "Retries": 2}
    assert merge_healthcheck({"Test": ["NONE"]}, image) == {"Test": ["NONE"]}
    assert probe_command({"Test": ["NONE"]}) is None
    assert probe_command({"Test": ["CMD-SHELL", "a && b"]}) == ["/bin/sh", "-c", "a && b"]
    assert probe_command({"Test": ["CMD", "curl", "-f"]}) == ["curl", "-f"]
    with pytest.raises(InvalidArgument, match="cannot be less than 1ms"):
        validate_healthcheck({"Test": ["CMD", "x"], "Interval": 10})
    with pytest.raises(InvalidArgument, match="unknown healthcheck type"):
        validate_healthcheck({"Test": ["SHELL", "x"]})


def test_log_options() -> None:
    assert logopts.parse_size("10m") == 10 * 1024 * 1024
    assert logopts.parse_size("512") == 512
    assert logopts.parse_size("1.5k") == 1536
    with pytest.raises(InvalidArgument):
        logopts.parse_size("ten")
    assert logopts.rotation({"max-size": "1k", "max-file": "3"}) == (1024, 3)
    assert logopts.rotation({}) == (0, 1)
    assert logopts.effective("json-file", {}, "json-file", {"max-size": "1m"}) == (
        "json-file",
        {"max-size": "1m"},
    )
    # dockerd's merge: with the daemon's driver, its options fill what the container left out
    assert logopts.effective("json-file", {"max-file": "2"}, "json-file", {"max-size": "1m"}) == (
        "json-file",
        {"max-size": "1m", "max-file": "2"},
    )
    assert logopts.effective("", {"max-file": "2"}, "local", {"max-size": "1m"}) == (
        "local",
        {"max-size": "1m", "max-file": "2"},
    )
    # another driver than the daemon's takes none of the daemon's options
    assert logopts.effective("local", {}, "json-file", {"max-size": "1m"}) == ("local", {})
    with pytest.raises(InvalidArgument, match="max-file cannot be less than 1"):
        logopts.validate("json-file", {"max-file": "0"})
    with pytest.raises(InvalidArgument, match="takes no options"):
        logopts.validate("none", {"max-size": "1k"})


def test_log_attributes_pick_labels_env_and_render_the_tag() -> None:
    from hafen.containers.logopts import LogInfo, attributes

    info = LogInfo(
        id="ab" * 32,
        name="/web",
        image_id="sha256:" + "cd" * 32,
        image_name="busybox:latest",
        labels={"team": "core", "tier": "web", "zone": "a"},
        env=["PATH=/bin", "STAGE=prod", "APP_X=1", "EMPTY="],
    )
    opts = {
        "labels": "team,absent",
        "labels-regex": "^zo",
        "env": "STAGE,EMPTY,UNSET",
        "env-regex": "^APP_",
        "tag": "{{.ImageName}}|{{ .Name }}|{{.ID}}|{{.ImageID}}|{{.DaemonName}}",
    }
    assert attributes(opts, info) == {
        "team": "core",
        "zone": "a",
        "STAGE": "prod",
        "EMPTY": "",
        "APP_X": "1",
        "tag": f"busybox:latest|web|{'ab' * 6}|{'cd' * 6}|docker",
    }
    assert attributes({"max-size": "1m"}, info) == {}


def test_local_driver_options_defaults_and_compress() -> None:
    logopts.validate("local", {"max-size": "1k", "compress": "false"})
    with pytest.raises(InvalidArgument, match="unknown log opt 'tag' for local"):
        logopts.validate("local", {"tag": "x"})
    with pytest.raises(InvalidArgument, match="invalid boolean"):
        logopts.validate("json-file", {"compress": "yes please"})
    with pytest.raises(InvalidArgument, match="max-file is less than 2"):
        logopts.validate("json-file", {"compress": "true", "max-size": "1m"})
    assert logopts.rotation({}, "local") == (20 * 1024 * 1024, 5)  # dockerd's local defaults
    assert logopts.compressed({}, "local") and not logopts.compressed({"compress": "0"}, "local")
    assert logopts.compressed({"compress": "true", "max-file": "3"})
    assert not logopts.compressed({"max-file": "3"})
