"""go-units style durations and sizes, Go durations, ID truncation, tabwriter layout."""

from __future__ import annotations

import pytest

from hafen.cli.format import (
    bytes_size,
    ellipsis,
    human_duration,
    human_size,
    parse_go_duration,
    parse_timestamp,
    ram_in_bytes,
    tabwrite,
    time_ago,
    truncate_id,
)
from hafen.errors import InvalidArgument


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (5, "5 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60, "59 minutes"),
        (60 * 60, "About an hour"),
        (90 * 60, "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_time_ago_appends_ago() -> None:
    assert time_ago(1000, now=1003) == "3 seconds ago"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (4_260_000, "4.26MB"),
        (4_264_999, "4.26MB"),
        (1_234_567_890, "1.23GB"),
        (123_456, "123kB"),
        (999_999, "1e+03kB"),  # Go's %.3g does the same
    ],
)
def test_human_size_uses_decimal_units_and_three_significant_digits(size: int, text: str) -> None:
    assert human_size(size) == text


def test_bytes_size_uses_binary_units() -> None:
    assert bytes_size(2 * 1024**3) == "2GiB"
    assert bytes_size(1536) == "1.5KiB"


@pytest.mark.parametrize(
    ("text", "value"),
    [("100", 100), ("1k", 1024), ("512m", 512 * 1024**2), ("1g", 1024**3), ("2GB", 2 * 1024**3)],
)
def test_ram_in_bytes_uses_binary_multiples(text: str, value: int) -> None:
    assert ram_in_bytes(text) == value


def test_ram_in_bytes_rejects_garbage() -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        ram_in_bytes("lots")


def test_parse_go_duration() -> None:
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("250ms") == 0.25
    with pytest.raises(InvalidArgument):
        parse_go_duration("10 minutes")


def test_parse_timestamp_relative_absolute_and_numeric() -> None:
    assert parse_timestamp("10m", now=1000.0) == "400.000000000"
    assert parse_timestamp("1700000000") == "1700000000"
    assert parse_timestamp("2024-01-02T03:04:05Z") == "1704164645.000000000"


def test_truncate_id_drops_algorithm_and_keeps_twelve() -> None:
    assert truncate_id("sha256:" + "a" * 64) == "a" * 12
    assert truncate_id("abc") == "abc"


def test_ellipsis_cuts_to_width_with_ellipsis_char() -> None:
    assert ellipsis("sleep 1000000000000000", 20) == "sleep 1000000000000…"
    assert ellipsis("short", 20) == "short"


def test_tabwrite_pads_columns_like_go_tabwriter() -> None:
    out = tabwrite(["CONTAINER ID\tIMAGE\tNAMES", "abc\tbusybox:latest\tx"])
    assert out.splitlines() == [
        "CONTAINER ID   IMAGE            NAMES",
        "abc            busybox:latest   x",
    ]


def test_tabwrite_applies_minimum_width() -> None:
    assert tabwrite(["a\tb", "c\td"]) == "a         b\nc         d"
