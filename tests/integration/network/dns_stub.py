"""A tiny upstream DNS server for tests: answers every A query with one address.

Run it inside the daemon's private network namespace on 127.0.0.1:53; it exits after
``--seconds`` so nothing outlives the test.
"""

from __future__ import annotations

import socket
import sys
import time

from hafen.network.dns import build_answer, parse_question


def main() -> None:
    address, seconds = sys.argv[1], float(sys.argv[2])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))
    deadline = time.monotonic() + seconds
    print("ready", flush=True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data, peer = sock.recvfrom(4096)
        except TimeoutError:
            break
        q = parse_question(data)
        if q is not None:
            sock.sendto(build_answer(data, q, [address] if q.qtype == 1 else []), peer)


if __name__ == "__main__":
    main()
