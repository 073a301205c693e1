"""``--log-opt mode`` and ``max-buffer-size``: dockerd's checks, and what the shim gets."""

from __future__ import annotations

import pytest

from hafen.containers import logopts
from hafen.errors import InvalidArgument


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_modes_and_buffer_sizes_dockerd_accepts(driver: str) -> None:
    for options in (
        {"mode": "blocking"},
        {"mode": "non-blocking"},
        {"mode": "non-blocking", "max-buffer-size": "4m"},
        {"mode": "non-blocking", "max-buffer-size": "512k", "max-size": "1m"},
        {"mode": ""},  # unset, as dockerd's LogModeUnset
    ):
        logopts.validate(driver, options)


def test_bad_modes_and_buffer_sizes_are_refused_in_dockerds_words() -> None:
    with pytest.raises(InvalidArgument, match="logging mode not supported: async"):
        logopts.validate("json-file", {"mode": "async"})
    with pytest.raises(InvalidArgument, match="only supported with 'mode=non-blocking'"):
        logopts.validate("json-file", {"max-buffer-size": "4m"})
    with pytest.raises(InvalidArgument, match="only supported with 'mode=non-blocking'"):
        logopts.validate("local", {"mode": "blocking", "max-buffer-size": "4m"})
    with pytest.raises(InvalidArgument, match="error parsing option max-buffer-size: invalid size"):
        logopts.validate("json-file", {"mode": "non-blocking", "max-buffer-size": "lots"})
    with pytest.raises(InvalidArgument, match="invalid size"):
        logopts.validate("json-file", {"mode": "non-blocking", "max-buffer-size": "-1k"})


def test_the_shim_gets_a_buffer_size_only_in_non_blocking_mode() -> None:
    assert logopts.buffer_size({}) is None
    assert logopts.buffer_size({"mode": "blocking", "max-size": "1m"}) is None
    assert logopts.buffer_size({"mode": "non-blocking"}) == 1024 * 1024  # dockerd's default
    assert logopts.buffer_size({"mode": "non-blocking", "max-buffer-size": "4m"}) == 4 * 1024**2
    assert logopts.buffer_size({"mode": "non-blocking", "max-buffer-size": "100"}) == 100


def test_daemon_defaults_carry_the_mode_to_containers_that_name_no_options() -> None:
    defaults = {"mode": "non-blocking", "max-buffer-size": "2k"}
    driver, options = logopts.effective("json-file", {}, "json-file", defaults)
    logopts.validate(driver, options)
    assert logopts.buffer_size(options) == 2048
