"""The multiplexed-stream and JSON-message decoders."""

from __future__ import annotations

import io

import pytest

from hafen.client import STDERR, STDOUT, MultiplexDecoder, demux, encode_frame, json_messages


def test_decoder_returns_frames_split_across_feeds() -> None:
    data = encode_frame(STDOUT, b"hello\n") + encode_frame(STDERR, b"oops\n")
    decoder = MultiplexDecoder()
    frames = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    assert frames == [(STDOUT, b"hello\n"), (STDERR, b"oops\n")]
    assert decoder.pending == 0


def test_header_layout_is_type_three_zero_bytes_and_big_endian_length() -> None:
    assert encode_frame(2, b"x" * 258)[:8] == bytes([2, 0, 0, 0, 0, 0, 1, 2])


def test_demux_reads_until_eof_and_handles_empty_frames() -> None:
    data = (
        encode_frame(STDOUT, b"") + encode_frame(STDOUT, b"a" * 70000) + encode_frame(STDERR, b"b")
    )
    frames = list(demux(io.BytesIO(data).read))
    assert frames == [(STDOUT, b""), (STDOUT, b"a" * 70000), (STDERR, b"b")]


def test_demux_drops_a_frame_cut_short_by_eof() -> None:
    data = encode_frame(STDOUT, b"whole") + encode_frame(STDOUT, b"partial")[:-3]
    assert list(demux(io.BytesIO(data).read)) == [(STDOUT, b"whole")]


def test_json_messages_handles_newlines_concatenation_and_split_chunks() -> None:
    raw = '{"status":"a"}\n{"status":"b"}{"status":"c é"}\r\n{"aux":{"ID":"sha256:1"}}'.encode()
    chunks = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    messages = list(json_messages(chunks))
    assert [m.get("status") for m in messages[:3]] == ["a", "b", "c é"]
    assert messages[3] == {"aux": {"ID": "sha256:1"}}


def test_json_messages_rejects_a_truncated_stream() -> None:
    with pytest.raises(ValueError, match="truncated"):
        list(json_messages([b'{"status": "a"']))
