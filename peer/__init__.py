"""The peer: shares a directory, serves chunks, fetches and pushes files."""

import p2p_common  # noqa: F401 - before anything loads grpc (see there)
