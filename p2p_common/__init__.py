"""What the tracker and the peer share: server bootstrap, bearer auth, RPC logging, names."""

import os

# gRPC's C core logs at INFO on stderr (a failed TLS handshake, say), around the one line a command
# prints for an error. It reads this once, when grpc loads: the tracker and peer packages import
# this package first. GRPC_VERBOSITY=INFO or DEBUG in the environment still turns it on.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
