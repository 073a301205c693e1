"""A tiny upstream DNS server for tests, over UDP and TCP.

It stands in for the host's resolver: run it in the daemon's private network namespace
(e.g. on 127.0.0.53, where the daemon's resolv.conf points). Answers:

- ``A`` for a name under ``.example.test``: the address given on the command line;
- ``A`` for ``big.example.test``: over UDP a truncated answer (the TC bit, no
  records), over TCP 40 records (10.20.31.1 … 10.20.31.40), as a real server does for
  an answer that does not fit a datagram;
- ``AAAA``: NOERROR without records; any other name: NXDOMAIN.

Each query is appended to the log file as ``udp|tcp NAME TYPE``. The server exits after
``seconds`` so nothing outlives the test.
"""

from __future__ import annotations

import selectors
import socket
import struct
import sys
import time

from hafen.network.dns import build_answer, parse_question

BIG = [f"10.20.31.{i}" for i in range(1, 41)]


def answer(data: bytes, tcp: bool, address: str, log: str) -> bytes | None:
    q = parse_question(data)
    if q is None:
        return None
    with open(log, "a") as f:
        f.write(f"{'tcp' if tcp else 'udp'} {q.name} {q.qtype}\n")
    if not q.name.endswith(".example.test"):
        return build_answer(data, q, [], rcode=3)
    if q.qtype != 1:
        return build_answer(data, q, [])
    if q.name.startswith("big."):
        if tcp:
            return build_answer(data, q, BIG)
        reply = build_answer(data, q, [])
        return (
            reply[:2] + struct.pack(">H", struct.unpack(">H", reply[2:4])[0] | 0x0200) + reply[4:]
        )
    return build_answer(data, q, [address])


def main() -> None:
    bind, address, seconds, log = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((bind, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((bind, 53))
    tcp.listen(8)
    sel = selectors.DefaultSelector()
    sel.register(udp, selectors.EVENT_READ)
    sel.register(tcp, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.1, deadline - time.monotonic())):
            if key.fileobj is udp:
                data, peer = udp.recvfrom(4096)
                reply = answer(data, False, address, log)
                if reply:
                    udp.sendto(reply, peer)
                continue
            conn, _ = tcp.accept()
            conn.settimeout(5)
            try:
                size = struct.unpack(">H", conn.recv(2, socket.MSG_WAITALL))[0]
                reply = answer(conn.recv(size, socket.MSG_WAITALL), True, address, log)
                if reply:
                    conn.sendall(struct.pack(">H", len(reply)) + reply)
            except OSError:
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
