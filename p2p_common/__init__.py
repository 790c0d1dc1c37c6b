"""What the tracker and the peer share: server bootstrap, bearer auth, RPC logging, names."""

import os

# gRPC's C core logs on stderr (a failed TLS handshake at INFO, a port it cannot bind at ERROR),
# around the one line a command prints for the same error. It reads this once, when grpc loads:
# the tracker and peer packages import this package first. GRPC_VERBOSITY=ERROR, INFO or DEBUG in
# the environment turns it back on.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
