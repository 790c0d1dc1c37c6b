"""Which chunks a partial source holds: the chunk map of the wire, and the answer "not yet".

A peer still downloading a file serves the chunks it has verified (as BitTorrent peers swap
pieces before they finish). Asked for one it lacks, it says so with its chunk map, one bit a
chunk (DownloadResponse.held_chunks), and the downloader asks it only for what it holds.
"""

from __future__ import annotations

from collections.abc import Iterable


class ChunkMap:
    """A set of chunk indexes as bits: chunk i is bit i % 8 (least significant first) of byte i // 8."""

    __slots__ = ("bits",)

    def __init__(self, bits: bytes | bytearray = b""):
        self.bits = bytes(bits)

    @classmethod
    def of(cls, indexes: Iterable[int], chunk_count: int) -> ChunkMap:
        bits = bytearray((chunk_count + 7) // 8)
        for i in indexes:
            bits[i >> 3] |= 1 << (i & 7)
        return cls(bits)

    @classmethod
    def from_flags(cls, flags: bytes | bytearray) -> ChunkMap:
        """From one byte a chunk, non-zero when held (PartialFile's own bookkeeping)."""
        return cls.of((i for i, held in enumerate(flags) if held), len(flags))

    def __contains__(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bits) and bool(self.bits[byte] >> (index & 7) & 1)

    def count(self) -> int:
        return int.from_bytes(self.bits, "little").bit_count()


class NotHeld(Exception):
    """A partial source does not hold chunk `index` yet; `held` is what it holds now."""

    def __init__(self, index: int, held: ChunkMap):
        super().__init__(f"chunk {index} is not held yet")
        self.index = index
        self.held = held
