"""gRPC options every server and channel of the system uses (kept light: clients import it)."""

from __future__ import annotations

# Chunks are at most 4 MiB; leave room for the message framing around one.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
GRPC_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.so_reuseport", 0),  # a second server must fail to bind, not share the port
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
