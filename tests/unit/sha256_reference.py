"""A from-the-standard SHA-256 (FIPS 180-4) in plain Python: an oracle for chaining values that
shares no code with OpenSSL. Slow (~1 MB/s): for test data of a few hundred KiB."""

from __future__ import annotations

import struct


def _first_primes(n: int) -> list[int]:
    primes: list[int] = []
    candidate = 2
    while len(primes) < n:
        if all(candidate % p for p in primes):
            primes.append(candidate)
        candidate += 1
    return primes


def _frac_root_bits(value: int, root: int) -> int:
    """The first 32 bits of the fractional part of value ** (1/root), exactly (integer Newton)."""
    scaled = value << (32 * root)
    x = 1 << ((scaled.bit_length() + root - 1) // root)
    while True:
        y = ((root - 1) * x + scaled // x ** (root - 1)) // root
        if y >= x:
            break
        x = y
    return x & 0xFFFFFFFF


K = [_frac_root_bits(p, 3) for p in _first_primes(64)]
INITIAL_STATE = [_frac_root_bits(p, 2) for p in _first_primes(8)]


def _rotr(x: int, n: int) -> int:
    return (x >> n | x << (32 - n)) & 0xFFFFFFFF


def compress(state: list[int], block: bytes) -> list[int]:
    w = list(struct.unpack(">16I", block))
    for t in range(16, 64):
        s0 = _rotr(w[t - 15], 7) ^ _rotr(w[t - 15], 18) ^ w[t - 15] >> 3
        s1 = _rotr(w[t - 2], 17) ^ _rotr(w[t - 2], 19) ^ w[t - 2] >> 10
        w.append((w[t - 16] + s0 + w[t - 7] + s1) & 0xFFFFFFFF)
    a, b, c, d, e, f, g, h = state
    for t in range(64):
        t1 = h + (_rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)) + (e & f ^ ~e & g) + K[t] + w[t]
        t2 = (_rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)) + (a & b ^ a & c ^ b & c)
        a, b, c, d, e, f, g, h = (t1 + t2) & 0xFFFFFFFF, a, b, c, (d + t1) & 0xFFFFFFFF, e, f, g
    return [(x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e, f, g, h), strict=True)]


def chaining_values(data: bytes, every: int) -> list[bytes]:
    """SHA-256's state (8 big-endian words) after each multiple of `every` bytes, and the final
    digest: the chained chunk digests of data in chunks of `every` bytes."""
    state = list(INITIAL_STATE)
    values: list[bytes] = []
    padded = data + b"\x80" + b"\x00" * ((55 - len(data)) % 64) + struct.pack(">Q", len(data) * 8)
    for offset in range(0, len(padded), 64):
        if offset and offset % every == 0 and offset < len(data):
            values.append(struct.pack(">8I", *state))
        state = compress(state, padded[offset : offset + 64])
    return [*values, struct.pack(">8I", *state)] if data else []
