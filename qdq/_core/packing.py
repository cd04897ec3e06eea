"""Signed b-bit integer codes packed densely into int32 words, as compressed-tensors packs them.

The layout is that of compressed-tensors' ``pack_to_int32`` (its
``pack-quantized`` format): along each row, code ``i`` is stored as the
unsigned field ``code + 2**(b-1)`` at bit ``i * b`` of the row's bit stream,
bit ``k`` of the stream being bit ``k % 32`` of word ``k // 32``; a row ends
with zero bits up to a whole word, so it takes ``ceil(cols * b / 32)`` words.
Fields may straddle two words (b = 3, 5, 6, 7). The words are little-endian
int32 in a safetensors file.

:class:`RowPacker` packs a stream of codes in row-major order that arrives
in pieces of any size (a piece may end inside a row), holding back at most
31 codes of the current row, so that a checkpoint's tensor is packed chunk by
chunk with bounded memory.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["RowPacker", "pack_int32", "packed_words", "unpack_int32"]

# Codes packed at a time (bounds the temporaries: b bytes per code for straddling widths).
_PIECE = 1 << 20


def packed_words(cols: int, num_bits: int) -> int:
    """The int32 words of one packed row of ``cols`` codes of ``num_bits`` bits."""
    return -(-cols * num_bits // 32)


def _check_bits(num_bits: int) -> None:
    if not 1 <= num_bits <= 8:
        raise ValueError(f"codes of {num_bits} bits cannot be packed (1 to 8 bits)")


def _fields(codes: np.ndarray, num_bits: int) -> np.ndarray:
    """Signed codes (int8/int16, within the b-bit grid) -> unsigned b-bit fields in uint8."""
    return (codes.astype(np.int16) + (1 << (num_bits - 1))).astype(np.uint8)


def _words(u: np.ndarray, num_bits: int) -> np.ndarray:
    """(k, P) unsigned fields, P a multiple of 32 -> (k, P * b / 32) little-endian uint32."""
    k, p = u.shape
    if num_bits == 8:
        b = u
    elif num_bits == 4:
        b = u[:, 0::2] | (u[:, 1::2] << 4)
    elif num_bits in (1, 2):
        per = 8 // num_bits
        b = np.zeros((k, p // per), np.uint8)
        for j in range(per):
            b |= u[:, j::per] << (j * num_bits)
    else:
        bits = np.unpackbits(u[:, :, None], axis=2, count=num_bits, bitorder="little")
        b = np.packbits(bits.reshape(k, p * num_bits), axis=1, bitorder="little")
    return np.ascontiguousarray(b).view("<u4")


def _pack_rows(codes: np.ndarray, num_bits: int) -> np.ndarray:
    """(k, cols) signed codes -> (k, packed_words(cols)) little-endian uint32."""
    k, cols = codes.shape
    padded = -(-cols // 32) * 32
    u = np.zeros((k, padded), np.uint8)
    u[:, :cols] = _fields(codes, num_bits)
    return _words(u, num_bits)[:, :packed_words(cols, num_bits)]


def pack_int32(codes: np.ndarray, num_bits: int) -> np.ndarray:
    """Pack a 2-D array of signed ``num_bits``-bit codes row by row into int32 words.

    Parameters
    ----------
    codes : numpy.ndarray
        A 2-D integer array, every value in ``[-2**(b-1), 2**(b-1) - 1]``.
    num_bits : int
        The codes' width, 1 to 8.

    Returns
    -------
    numpy.ndarray
        ``int32`` of shape ``(rows, ceil(cols * num_bits / 32))``.

    Examples
    --------
    >>> import numpy as np
    >>> w = pack_int32(np.array([[-8, -7, 0, 7, 1, 2, 3, 4, 5]], np.int8), 4)
    >>> [hex(v) for v in w.view(np.uint32)[0]]    # code + 8 per nibble, the first lowest
    ['0xcba9f810', '0xd']
    """
    _check_bits(num_bits)
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must be 2-D, got shape {c.shape}")
    return _pack_rows(c, num_bits).astype("<u4").view(np.int32)


def unpack_int32(words: np.ndarray, num_bits: int, cols: int) -> np.ndarray:
    """The inverse of :func:`pack_int32`: (rows, words) int32 -> (rows, cols) int8 codes.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([[-8, -7, 0, 7, 1, 2, 3, 4, 5]], np.int8)
    >>> bool((unpack_int32(pack_int32(c, 4), 4, 9) == c).all())
    True
    """
    _check_bits(num_bits)
    w = np.ascontiguousarray(words).astype("<i4", copy=False)
    rows = w.shape[0]
    b = w.view(np.uint8).reshape(rows, -1)
    if num_bits == 8:
        u = b
    elif num_bits == 4:
        u = np.stack([b & 0xF, b >> 4], axis=2).reshape(rows, -1)
    else:
        bits = np.unpackbits(b, axis=1, bitorder="little")
        n = bits.shape[1] // num_bits
        bits = bits[:, :n * num_bits].reshape(rows, n, num_bits)
        u = np.packbits(bits, axis=2, bitorder="little").reshape(rows, n)
    return (u[:, :cols].astype(np.int16) - (1 << (num_bits - 1))).astype(np.int8)


class RowPacker:
    """Pack a row-major stream of codes of a ``(rows, cols)`` tensor, piece by piece.

    ``emit(words)`` receives little-endian uint32 words in file order; the
    packed tensor is complete once every code has been fed (:attr:`done`).

    Examples
    --------
    >>> import numpy as np
    >>> c = np.arange(-8, 8, dtype=np.int8).reshape(2, 8)[:, :7].copy()
    >>> out = []
    >>> p = RowPacker(7, 4, out.append)
    >>> for piece in (c.reshape(-1)[:3], c.reshape(-1)[3:10], c.reshape(-1)[10:]):
    ...     p.feed(piece)
    >>> bool((np.concatenate(out).view(np.int32) == pack_int32(c, 4).reshape(-1)).all())
    True
    """

    def __init__(self, cols: int, num_bits: int, emit: Callable[[np.ndarray], None]):
        _check_bits(num_bits)
        self.cols, self.num_bits, self.emit = cols, num_bits, emit
        self.col = 0                       # column of the next code fed
        self.carry = np.empty(0, np.int16)  # codes of the current row not yet packed
        self.fed = 0

    def _put(self, rows: np.ndarray) -> None:
        self.emit(_pack_rows(rows, self.num_bits).reshape(-1))

    def _partial(self, piece: np.ndarray, ends_row: bool) -> None:
        """Codes of the current row: whole groups of 32 are packed, the rest carried."""
        codes = np.concatenate([self.carry, piece.astype(np.int16)]) if self.carry.size \
            else piece
        if ends_row:
            self.carry = np.empty(0, np.int16)
            if codes.size:
                self._put(codes.reshape(1, -1))
            return
        whole = codes.size // 32 * 32
        for a in range(0, whole, _PIECE):
            self._put(codes[a:min(whole, a + _PIECE)].reshape(1, -1))
        self.carry = np.asarray(codes[whole:], np.int16).copy()

    def feed(self, codes: np.ndarray) -> None:
        """The next codes of the stream (any 1-D piece, in row-major order)."""
        flat = codes.reshape(-1)
        i, n = 0, flat.size
        self.fed += n
        while i < n:
            if self.col == 0 and n - i >= self.cols:
                k = (n - i) // self.cols
                step = max(1, _PIECE // self.cols)
                for r in range(0, k, step):
                    m = min(step, k - r)
                    self._put(flat[i + r * self.cols:i + (r + m) * self.cols]
                              .reshape(m, self.cols))
                i += k * self.cols
                continue
            take = min(n - i, self.cols - self.col)
            self.col += take
            ends = self.col == self.cols
            self._partial(flat[i:i + take], ends)
            if ends:
                self.col = 0
            i += take
