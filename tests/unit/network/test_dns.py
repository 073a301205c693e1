"""The embedded DNS server's packet handling and name lookup rules."""

from __future__ import annotations

import asyncio
import struct

from hafen.network.dns import EmbeddedDNS, build_answer, parse_question


def _query(name: str, qtype: int = 1, qid: int = 0x1234) -> bytes:
    head = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return head + qname + struct.pack(">HH", qtype, 1)


def test_parse_and_answer_an_a_query() -> None:
    data = _query("Web.Front")
    q = parse_question(data)
    assert q is not None and q.name == "web.front" and q.qtype == 1 and q.id == 0x1234
    reply = build_answer(data, q, ["10.0.0.2", "10.0.0.3"])
    qid, flags, qd, an = struct.unpack(">HHHH", reply[:8])
    assert (qid, qd, an) == (0x1234, 1, 2) and flags & 0x8000 and flags & 0x0100
    assert reply.endswith(bytes([10, 0, 0, 3]))


def test_garbage_is_ignored() -> None:
    assert parse_question(b"\x00\x01") is None
    assert parse_question(_query("x")[:-3]) is None
    response = bytearray(_query("x"))
    response[2] |= 0x80  # a response, not a query
    assert parse_question(bytes(response)) is None


def test_known_names_answer_locally_unknown_fail_without_upstream() -> None:
    dns = EmbeddedDNS(lambda cid, name: ["10.0.0.9"] if name == "web" else None)
    reply = asyncio.run(dns.resolve("c1", _query("web")))
    assert reply is not None and struct.unpack(">H", reply[6:8])[0] == 1
    reply = asyncio.run(dns.resolve("c1", _query("web", qtype=28)))  # AAAA: no records
    assert reply is not None and struct.unpack(">H", reply[6:8])[0] == 0
    reply = asyncio.run(dns.resolve("c1", _query("elsewhere.example")))
    assert reply is not None and reply[3] & 0x0F == 2  # SERVFAIL: no upstream configured


def test_an_answer_too_large_for_udp_is_truncated_and_whole_over_tcp() -> None:
    many = [f"10.0.1.{i}" for i in range(1, 61)]  # 60 records: > 512 bytes
    dns = EmbeddedDNS(lambda cid, name: many if name == "crowd" else None)
    over_udp = asyncio.run(dns.resolve("c1", _query("crowd")))
    assert over_udp is not None and len(over_udp) <= 512
    flags, _, ancount = struct.unpack(">HHH", over_udp[2:8])
    assert flags & 0x0200 and ancount == 0 and flags & 0x0F == 0  # TC: ask again over TCP
    over_tcp = asyncio.run(dns.resolve("c1", _query("crowd"), tcp=True))
    assert over_tcp is not None and struct.unpack(">H", over_tcp[6:8])[0] == 60
