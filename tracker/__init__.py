"""The tracker: the central directory of peers and the files they share."""
