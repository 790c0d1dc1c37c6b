"""The tracker: the central directory of peers and the files they share."""

import p2p_common  # noqa: F401 - before anything loads grpc (see there)
