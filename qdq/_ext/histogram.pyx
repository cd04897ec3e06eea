# cython: language_level=3
"""Histogram kernel of qdq's calibration (private).

One pass over a chunk bins every element ``x`` of a channel into bin
``floor(x / 2**k)`` of that channel's signed histogram (``bins`` counts for
bin indices ``[-bins/2, bins/2)``), counts NaN, +inf and -inf apart, and
tracks the exact NaN-ignoring minimum and maximum (-0.0 below +0.0). When an
element does not fit (``|x| >= bins/2 * 2**k``) the channel's ``k`` grows to
the smallest exponent that fits it and the counts so far are summed in groups
of ``2**d`` adjacent bins (exact, since bins nest). Per tensor, each thread
fills a private histogram over its share of the elements; the histograms are
brought to the largest ``k`` and summed at the end, so the counts are exact
integers independent of the thread count. Per channel, threads own disjoint
channels. The GIL is released throughout. The C is csrc/hist.h (and its vector loops,
csrc/hist_isa.h); the instruction-set level is the one of every compiled kernel (csrc/cpu.h).
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t, uint64_t

import numpy as np

from . import kernels

cdef extern from "csrc/fpenv.h" nogil:
    ctypedef int qdq_fpenv
    qdq_fpenv qdq_fpenv_enter()
    void qdq_fpenv_leave(qdq_fpenv saved)

cdef extern from "csrc/hist.h" nogil:
    ctypedef struct hk_chan:
        double lim, s1, s2
        int k
        uint64_t *cnt
        uint64_t nan, pinf, ninf
        double mn, mx
    void hk_init() noexcept nogil
    const char *hk_kernel_isa(int level) noexcept nogil
    int qdq_get_isa() noexcept nogil
    void qdq_isa_share(int *level) noexcept nogil
    int HK_BLK
    void hk_set_k(hk_chan *c, int64_t h, int k) noexcept nogil
    int hk_kfor(double a, int64_t h, int kfloor) noexcept nogil
    int hk_tensor(const void *x, int64_t n, int fmt, const float *lut, hk_chan *g,
                  int64_t bins, int kfloor, int nt) noexcept nogil
    int hk_channels(const void *x, int64_t pre, int64_t C, int64_t post, int fmt,
                    const float *lut, hk_chan *cs, int64_t bins, int kfloor, int nt) noexcept nogil

hk_init()
# The instruction-set level is the kernels module's (cpu.h): set_isa there sets it here too.
qdq_isa_share(<int *>PyCapsule_GetPointer(kernels.ISA_LEVEL, b"qdq._ext.isa_level"))

#: Elements per block of the vectorised path (one pass over a block gives its min/max and
#: bin indices; the window's 8-bit counters hold a block's counts).
BLOCK = HK_BLK

#: Format codes of :func:`update`.
F16 = 0
BF16 = 1
F32 = 2
F64 = 3


def get_isa():
    """The instruction-set level these loops run at: the kernels module's (``kernels.set_isa``)."""
    return qdq_get_isa()


def kernel_isa(int level):
    """What this module's loops run at ``level``: ``(kernel, instruction set)`` pairs."""
    return (("histogram", hk_kernel_isa(level).decode()),)


def kfor(double a, int64_t h, int kfloor):
    """The smallest ``k >= kfloor`` with ``a < h * 2**k`` (``a`` finite, >= 0)."""
    return hk_kfor(a, h, kfloor)


# Per format code: the storage dtype, the exponent of the smallest subnormal, the largest value.
_FORMATS = {F16: (np.dtype(np.uint16), -24, 65504.0),
            BF16: (np.dtype(np.uint16), -133, 3.3895313892515355e38),
            F32: (np.dtype(np.float32), -149, float(np.finfo(np.float32).max)),
            F64: (np.dtype(np.float64), -1074, float(np.finfo(np.float64).max))}


cdef _check_array(str name, a, dtype, tuple shape):
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape
            or not a.flags.c_contiguous or not a.flags.aligned):
        got = (f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__)
        raise ValueError(f"histogram kernel: {name} must be a C-contiguous aligned {dtype} "
                         f"array of shape {shape}, got {got}")


cdef _check_update(x, int fmt, lut, int64_t pre, int64_t C, int64_t post,
                   k, counts, special, mn, mx, int kfloor, int nthreads):
    """Every argument of :func:`update` against the others (ValueError): defence in depth."""
    if fmt not in _FORMATS:
        raise ValueError(f"histogram kernel: unknown format code {fmt}")
    storage, floor, top = _FORMATS[fmt]
    if kfloor != floor:
        raise ValueError(f"histogram kernel: kfloor must be {floor} for format {fmt}")
    if nthreads < 1:
        raise ValueError(f"histogram kernel: nthreads must be at least 1, got {nthreads}")
    if not isinstance(x, np.ndarray):
        raise ValueError(f"histogram kernel: x must be an array, got {type(x).__name__}")
    if pre < 0 or C < 0 or post < 0 or int(pre) * int(C) * int(post) != x.size:
        raise ValueError(f"histogram kernel: shape ({pre}, {C}, {post}) does not hold the "
                         f"{x.size} elements of x")
    _check_array("x", x, storage, x.shape)
    if not isinstance(counts, np.ndarray) or counts.ndim != 2:
        raise ValueError("histogram kernel: counts must be a 2-D array")
    bins = counts.shape[1]
    if bins < 16 or bins % 2 or bins > (1 << 24):
        raise ValueError(f"histogram kernel: bins must be even in [16, 2**24], got {bins}")
    _check_array("counts", counts, np.dtype(np.uint64), (C, bins))
    _check_array("k", k, np.dtype(np.int64), (C,))
    _check_array("special", special, np.dtype(np.uint64), (C, 3))
    _check_array("mn", mn, np.dtype(np.float64), (C,))
    _check_array("mx", mx, np.dtype(np.float64), (C,))
    if fmt == F16 or fmt == BF16:
        _check_array("lut", lut, np.dtype(np.float32), (1 << 16,))
    for a in (counts, k, special, mn, mx):
        if not a.flags.writeable:
            raise ValueError("histogram kernel: the histogram arrays must be writeable")
    kmax = hk_kfor(top, bins // 2, floor)
    if C and (k.min() < floor or k.max() > kmax):
        raise ValueError(f"histogram kernel: k must be in [{floor}, {kmax}], got "
                         f"[{k.min()}, {k.max()}]")


def update(x, int fmt, lut, int64_t pre, int64_t C, int64_t post,
           k, counts, special, mn, mx, int kfloor, int nthreads):
    """Bin the C-contiguous ``x`` (storage type of ``fmt``) of C-order shape (pre, C, post).

    Per tensor ``C == 1`` (and ``pre == 1``). ``k`` (int64, C), ``counts``
    (uint64, (C, bins)), ``special`` (uint64, (C, 3): NaN, +inf, -inf), ``mn``
    and ``mx`` (float64, C) are updated in place; all must be C-contiguous.
    ``lut`` is the float32 value of every 16-bit pattern for float16/bfloat16.
    Every shape, dtype, layout and ``k`` is checked first (ValueError).
    """
    cdef int64_t bins, c, n
    cdef int64_t[::1] kv
    cdef uint64_t[:, ::1] cv
    cdef uint64_t[:, ::1] sv
    cdef double[::1] mnv, mxv
    cdef const float[::1] lv
    cdef const float *lp = NULL
    cdef int err = 0
    cdef hk_chan *cs
    cdef const unsigned char[::1] xb
    cdef unsigned char[::1] av
    cdef const void *xp
    # the argument check (its bound on k), the exponents and the kernel: fpenv.h
    cdef qdq_fpenv env = qdq_fpenv_enter()
    try:
        _check_update(x, fmt, lut, pre, C, post, k, counts, special, mn, mx, kfloor, nthreads)
        bins = counts.shape[1]
        n = x.size
        kv = k
        cv = counts
        sv = special
        mnv = mn
        mxv = mx
        if fmt == F16 or fmt == BF16:
            lv = lut
            lp = &lv[0]
        if C == 0 or n == 0:
            return
        xb = x.reshape(-1).view(np.uint8)
        xp = <const void *> &xb[0]
        arr = np.zeros(C * sizeof(hk_chan), np.uint8)
        av = arr
        cs = <hk_chan *> &av[0]
        for c in range(C):
            hk_set_k(&cs[c], bins // 2, <int>kv[c])
            cs[c].cnt = &cv[c, 0]
            cs[c].nan = sv[c, 0]
            cs[c].pinf = sv[c, 1]
            cs[c].ninf = sv[c, 2]
            cs[c].mn = mnv[c]
            cs[c].mx = mxv[c]
        with nogil:
            if C == 1:
                err = hk_tensor(xp, n, fmt, lp, &cs[0], bins, kfloor, nthreads)
            else:
                err = hk_channels(xp, pre, C, post, fmt, lp, cs, bins, kfloor, nthreads)
        for c in range(C):
            kv[c] = cs[c].k
            sv[c, 0] = cs[c].nan
            sv[c, 1] = cs[c].pinf
            sv[c, 2] = cs[c].ninf
            mnv[c] = cs[c].mn
            mxv[c] = cs[c].mx
        if err:
            raise MemoryError("histogram kernel: out of memory")
    finally:
        qdq_fpenv_leave(env)
