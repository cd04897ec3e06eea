# cython: language_level=3
"""Calibration searches over per-channel histograms (private).

``mse`` and ``entropy`` run the searches of :mod:`qdq._calibrate.methods` on
every channel of a ``(C, bins)`` array of counts, the channels spread over
threads, the GIL released. The C is in ``csrc/search.h``: each search does the
same float64 (and for the op's parameters float32/T) operations in the same
order as the NumPy formulation it replaces, and takes the two reductions whose
order NumPy leaves to its own loops (a block's matrix-vector product, handed to
the BLAS, and the logarithm) from NumPy's own inner loops, found here once.
The vectorisable loops have a copy per instruction-set level (``csrc/search_isa.h``);
the level is the one of every compiled kernel (``csrc/cpu.h``, ``kernels.set_isa``).
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.stdint cimport int64_t, uint64_t

cimport numpy as cnp

import numpy as np

from . import kernels

cnp.import_array()
cnp.import_umath()

cdef extern from "csrc/search.h" nogil:
    ctypedef void (*qdq_loop_fn)(char **, const cnp.npy_intp *, const cnp.npy_intp *,
                                 void *) noexcept nogil
    ctypedef struct qdq_loop:
        qdq_loop_fn fn
        void *data
    int QDQ_SEARCH_MSE
    int QDQ_SEARCH_ENTROPY
    int qdq_search(int method, const uint64_t *counts, int64_t C, int64_t bins,
                   const int64_t *k, int fmt, int64_t qmin, int64_t qmax, int num_bits,
                   const qdq_loop *matmul, const qdq_loop *logl, double *lo, double *hi,
                   int nthreads)
    const char *qdq_search_kernel_isa(int level) noexcept nogil
    int qdq_get_isa() noexcept nogil
    void qdq_isa_share(int *level) noexcept nogil

# The instruction-set level is the kernels module's (cpu.h): set_isa there sets it here too.
qdq_isa_share(<int *>PyCapsule_GetPointer(kernels.ISA_LEVEL, b"qdq._ext.isa_level"))


def get_isa():
    """The instruction-set level these loops run at: the kernels module's (``kernels.set_isa``)."""
    return qdq_get_isa()


def kernel_isa(int level):
    """What this module's loops run at ``level``: ``(kernel, instruction set)`` pairs."""
    return (("calibration search", qdq_search_kernel_isa(level).decode()),)


cdef qdq_loop _MATMUL
cdef qdq_loop _LOG


cdef bint _find_loop(cnp.ufunc u, qdq_loop *out):
    """The ufunc's inner loop whose operands are all float64 (False if it has none)."""
    cdef int i, t
    cdef bint match
    for i in range(u.ntypes):
        match = True
        for t in range(u.nargs):
            if u.types[i * u.nargs + t] != cnp.NPY_DOUBLE:
                match = False
        if match and u.functions[i] != NULL:
            out.fn = <qdq_loop_fn><void *>u.functions[i]
            out.data = u.data[i] if u.data != NULL else NULL
            return True
    return False


#: Whether NumPy's float64 matmul and log inner loops were found (the searches need them).
HAVE_NUMPY_LOOPS = _find_loop(<cnp.ufunc>np.matmul, &_MATMUL) and _find_loop(
    <cnp.ufunc>np.log, &_LOG)


cdef void _run(int method, const uint64_t[:, ::1] counts, const int64_t[::1] k, int fmt,
               int64_t qmin, int64_t qmax, int num_bits, double[::1] lo, double[::1] hi,
               int nthreads) except *:
    cdef int64_t C = counts.shape[0], bins = counts.shape[1]
    cdef int rc
    if not HAVE_NUMPY_LOOPS:
        raise RuntimeError("qdq: NumPy's float64 matmul and log loops were not found")
    if k.shape[0] != C or lo.shape[0] != C or hi.shape[0] != C:
        raise ValueError("qdq search: k, lo and hi need one entry per channel")
    if bins < 16 or bins % 2 or bins > (1 << 24):
        raise ValueError(f"qdq search: bins must be even, in [16, 2**24], got {bins}")
    if C == 0:
        return
    with nogil:
        rc = qdq_search(method, &counts[0, 0], C, bins, &k[0], fmt, qmin, qmax, num_bits,
                        &_MATMUL, &_LOG, &lo[0], &hi[0], max(nthreads, 1))
    if rc != 0:
        raise MemoryError()


def mse(counts, k, int fmt, int64_t qmin, int64_t qmax, lo, hi, int nthreads=1):
    """The MSE search of every channel of ``counts`` (C-contiguous uint64 ``(C, bins)``).

    ``k`` (int64, one per channel) holds the bins' exponents; ``fmt`` is the
    format code and ``qmin``, ``qmax`` the op's integer grid. Writes each
    channel's range (values of the format; NaN for an empty channel) into the
    float64 arrays ``lo`` and ``hi``.
    """
    _run(QDQ_SEARCH_MSE, counts, k, fmt, qmin, qmax, 0, lo, hi, nthreads)


def entropy(counts, k, int num_bits, int64_t qmin, lo, hi, int nthreads=1):
    """The KL-divergence (entropy) search of every channel of ``counts``.

    As :func:`mse`; ``num_bits`` and ``qmin`` describe the op's grid. Writes
    each channel's range ``(lo * 2**k, hi * 2**k)`` in float64, before the
    rounding to the format.
    """
    _run(QDQ_SEARCH_ENTROPY, counts, k, 0, qmin, 0, num_bits, lo, hi, nthreads)
