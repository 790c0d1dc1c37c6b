"""gRPC options every server and channel of the system uses (kept light: clients import it)."""

from __future__ import annotations

# Chunks are at most 4 MiB; leave room for the message framing around one.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
GRPC_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.so_reuseport", 0),  # a second server must fail to bind, not share the port
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # a channel retries a lost connection at most this far apart (gRPC's default grows to 2 min): a
    # restarted tracker or peer is found again within seconds, as the callers' own backoff expects
    ("grpc.max_reconnect_backoff_ms", 10_000),
)
# A server pings a connection quiet for this long and closes it when the ping goes unanswered for a
# third of that: a caller that froze or vanished without a reset (asleep, unplugged) would otherwise
# hold its call, a worker thread and an upload slot until TCP gives up, a quarter of an hour later.
KEEPALIVE_SECONDS = 60.0


def server_options(keepalive_seconds: float = KEEPALIVE_SECONDS) -> list[tuple[str, int]]:
    interval_ms = max(1, int(keepalive_seconds * 1000))
    timeout_ms = max(1, interval_ms // 3)
    return [
        *GRPC_OPTIONS,
        ("grpc.keepalive_time_ms", interval_ms),
        ("grpc.keepalive_timeout_ms", timeout_ms),  # also TCP_USER_TIMEOUT: data unacknowledged this long
        # what actually bounds the wait for a ping's answer in this gRPC (measured: without it, a
        # ping to a frozen caller waited for ever; with it, the call ended 0.5 s after the ping)
        ("grpc.http2.ping_timeout_ms", timeout_ms),
    ]
