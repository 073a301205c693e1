"""A test client: send ``PAYLOAD`` over TCP or UDP, print the answer (exit 1: none, or
an empty one).

python peer_client.py tcp|udp HOST PORT PAYLOAD
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    proto, host, port, payload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        if proto == "tcp":
            with socket.create_connection((host, port), timeout=3) as s:
                s.sendall(payload.encode())
                s.shutdown(socket.SHUT_WR)
                reply = b""
                while chunk := s.recv(4096):  # until the server closes
                    reply += chunk
        else:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.sendto(payload.encode(), (host, port))
                reply = s.recv(4096)
    except OSError as e:
        print(f"no answer: {e}", file=sys.stderr)
        sys.exit(1)
    if not reply:  # accepted, then closed without a word (a proxy with no upstream)
        print("no answer: closed", file=sys.stderr)
        sys.exit(1)
    sys.stdout.write(reply.decode())


if __name__ == "__main__":
    main()
