"""A test server run inside a container's network namespace (``nsenter --net``): it
answers each TCP connection or UDP datagram with ``<client address> <what it got>``, so
a test sees from which address a published port delivered the traffic.

    python peer_echo.py tcp|udp PORT SECONDS
"""

from __future__ import annotations

import socket
import sys
import time


def main() -> None:
    proto, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    if proto == "tcp":
        sock.listen(8)
    deadline = time.monotonic() + seconds
    print("ready", flush=True)
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if proto == "udp":
                data, peer = sock.recvfrom(4096)
                sock.sendto(f"{peer[0]} ".encode() + data, peer)
                continue
            conn, peer = sock.accept()
        except TimeoutError:
            break
        with conn:
            conn.settimeout(5)
            data = conn.recv(4096)
            conn.sendall(f"{peer[0]} ".encode() + data)


if __name__ == "__main__":
    main()
