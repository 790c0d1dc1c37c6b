"""Generated code for the p2p.v1 wire contract: regenerate with scripts/gen_protos.py."""
