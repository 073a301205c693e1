"""Engine API client: a light, synchronous client for the Docker Engine API over a
unix socket (standard library only, fast to import). Used by ``hafen.cli`` and
``hafen.compose``.

Public surface: ``APIClient`` and its result types, the stream decoders
(``demux``, ``MultiplexDecoder``, ``json_messages``), and ``DEFAULT_HOST``.
"""

from __future__ import annotations

from hafen.client._client import (
    CLIENT_API_VERSION,
    APIClient,
    CreateResult,
    Hijacked,
    PendingWait,
    PingResult,
    StreamResponse,
    WaitResult,
)
from hafen.client._stream import (
    STDERR,
    STDIN,
    STDOUT,
    MultiplexDecoder,
    demux,
    encode_frame,
    json_messages,
)
from hafen.client._transport import (
    DEFAULT_HOST,
    DaemonUnreachable,
    error_from_response,
    parse_host,
)

__all__ = [
    "CLIENT_API_VERSION",
    "DEFAULT_HOST",
    "STDERR",
    "STDIN",
    "STDOUT",
    "APIClient",
    "CreateResult",
    "DaemonUnreachable",
    "Hijacked",
    "MultiplexDecoder",
    "PendingWait",
    "PingResult",
    "StreamResponse",
    "WaitResult",
    "demux",
    "encode_frame",
    "error_from_response",
    "json_messages",
    "parse_host",
]
