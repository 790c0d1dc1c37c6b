"""The peer: shares a directory, serves chunks, fetches and pushes files."""
