"""A raw DNS client for tests: one query to a server, the answer as JSON.

Run inside a container's network namespace (``nsenter --net=/proc/PID/ns/net``) to ask
the embedded server at 127.0.0.11 directly, without /etc/hosts or a resolver library
in the way. Prints ``{"rcode": N, "tc": bool, "answers": ["a.b.c.d", ...]}``.

    python dns_client.py SERVER NAME A|AAAA udp|tcp
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys

TYPES = {"A": 1, "AAAA": 28}


def query(name: str, qtype: int) -> bytes:
    head = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"
    return head + qname + struct.pack(">HH", qtype, 1)


def skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length & 0xC0:
            return pos + 2
        pos += 1 + length
        if length == 0:
            return pos


def parse(data: bytes) -> dict[str, object]:
    _, flags, qd, an = struct.unpack(">HHHH", data[:8])
    pos = 12
    for _ in range(qd):
        pos = skip_name(data, pos) + 4
    answers = []
    for _ in range(an):
        pos = skip_name(data, pos)
        rtype, _, _, size = struct.unpack(">HHIH", data[pos : pos + 10])
        pos += 10
        rdata = data[pos : pos + size]
        pos += size
        if rtype == 1:
            answers.append(socket.inet_ntoa(rdata))
        elif rtype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, rdata))
    return {"rcode": flags & 0x0F, "tc": bool(flags & 0x0200), "answers": answers}


def main() -> None:
    server, name, qtype, proto = sys.argv[1:5]
    message = query(name, TYPES[qtype])
    if proto == "tcp":
        with socket.create_connection((server, 53), timeout=5) as s:
            s.sendall(struct.pack(">H", len(message)) + message)
            size = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
            reply = s.recv(size, socket.MSG_WAITALL)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(message, (server, 53))
            reply = s.recv(4096)
    print(json.dumps(parse(reply)))


if __name__ == "__main__":
    main()
