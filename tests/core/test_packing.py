"""Codes packed into int32 words as compressed-tensors packs them (its helpers as the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from qdq._core.packing import RowPacker, pack_int32, packed_words, unpack_int32

COLS = (1, 5, 7, 8, 9, 31, 32, 33, 64, 100, 257)


def random_codes(rng, bits, rows, cols):
    return rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), (rows, cols)).astype(np.int8)


@pytest.mark.parametrize("bits", range(1, 9))
def test_compressed_tensors_packs_the_same_words(bits):
    torch = pytest.importorskip("torch")
    helpers = pytest.importorskip("compressed_tensors.compressors.pack_quantized.helpers")
    rng = np.random.default_rng(bits)
    for cols in COLS:
        c = random_codes(rng, bits, 3, cols)
        ref = helpers.pack_to_int32(torch.from_numpy(c), bits).numpy()
        got = pack_int32(c, bits)
        assert got.dtype == np.int32 and got.shape == (3, packed_words(cols, bits))
        np.testing.assert_array_equal(got, ref, err_msg=f"{bits} bits, {cols} columns")
        back = helpers.unpack_from_int32(torch.from_numpy(got), bits, torch.Size([3, cols]))
        np.testing.assert_array_equal(back.numpy(), c)


def test_known_words():
    # 4 bits: code + 8 in each nibble, code 0 in the low nibble of the first word
    c = np.array([[-8, -7, 0, 7, 1, 2, 3, 4, 5]], np.int8)
    words = pack_int32(c, 4).view(np.uint32)
    assert [hex(w) for w in words[0]] == ["0xcba9f810", "0xd"]
    # 8 bits: code + 128 in each byte
    assert hex(int(pack_int32(np.array([[-128, -1, 0, 127]], np.int8), 8).view(np.uint32)[0, 0])) \
        == "0xff807f00"
    # 3 bits straddle words: element 10 holds bits 30..32
    c = np.full((1, 11), -4, np.int8)  # field 0
    c[0, 10] = 3  # field 7 = 0b111
    words = pack_int32(c, 3).view(np.uint32)
    assert words[0, 0] == 0b11 << 30 and words[0, 1] == 0b1


@pytest.mark.parametrize("bits", range(1, 9))
def test_unpack_and_the_row_packer_in_any_pieces(bits):
    rng = np.random.default_rng(10 + bits)
    for cols in COLS:
        c = random_codes(rng, bits, 4, cols)
        ref = pack_int32(c, bits)
        np.testing.assert_array_equal(unpack_int32(ref, bits, cols), c)
        flat = c.reshape(-1)
        for _ in range(4):
            cuts = np.sort(rng.integers(0, flat.size + 1, 5))
            out = []
            packer = RowPacker(cols, bits, out.append)
            for a, b in zip([0, *cuts], [*cuts, flat.size], strict=True):
                packer.feed(flat[a:b].astype(np.int16))
            got = np.concatenate(out).view(np.int32)
            np.testing.assert_array_equal(got, ref.reshape(-1), err_msg=f"{cols} {cuts}")


def test_bad_widths_are_refused():
    with pytest.raises(ValueError, match="codes of 9 bits cannot be packed"):
        pack_int32(np.zeros((1, 4), np.int8), 9)
    with pytest.raises(ValueError, match="must be 2-D"):
        pack_int32(np.zeros(4, np.int8), 4)
