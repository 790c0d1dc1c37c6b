"""What the tracker and the peer share: server bootstrap, bearer auth, RPC logging, names."""
