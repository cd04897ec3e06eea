# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, embedsignature=True
"""The kernels' scalar 16-bit converters, for the exhaustive tests, and the MXCSR of OpenMP's
threads, for the floating-point environment's test (private).

They are the tail loops of every kernel in :mod:`qdq._ext.kernels`, compiled
here from the same header, so that the tests can run them over every bit
pattern. qdq itself never imports this module.
"""

from libc.stdint cimport uint16_t

cdef extern from "csrc/scalar.h" nogil:
    float qdq_f16_to_f32(uint16_t h)
    uint16_t qdq_f32_to_f16(float v)
    float qdq_bf16_to_f32(uint16_t h)
    uint16_t qdq_f32_to_bf16(float v)


def f16_to_f32(const uint16_t[::1] h, float[::1] out):
    """float16 bit patterns to float32 values (exact)."""
    cdef Py_ssize_t i
    if out.shape[0] != h.shape[0]:
        raise ValueError("length mismatch")
    with nogil:
        for i in range(h.shape[0]):
            out[i] = qdq_f16_to_f32(h[i])


def f32_to_f16(const float[::1] v, uint16_t[::1] out):
    """float32 values to float16 bit patterns (round to nearest even)."""
    cdef Py_ssize_t i
    if out.shape[0] != v.shape[0]:
        raise ValueError("length mismatch")
    with nogil:
        for i in range(v.shape[0]):
            out[i] = qdq_f32_to_f16(v[i])


def bf16_to_f32(const uint16_t[::1] h, float[::1] out):
    """bfloat16 bit patterns to float32 values (exact)."""
    cdef Py_ssize_t i
    if out.shape[0] != h.shape[0]:
        raise ValueError("length mismatch")
    with nogil:
        for i in range(h.shape[0]):
            out[i] = qdq_bf16_to_f32(h[i])


def f32_to_bf16(const float[::1] v, uint16_t[::1] out):
    """float32 values to bfloat16 bit patterns (round to nearest even)."""
    cdef Py_ssize_t i
    if out.shape[0] != v.shape[0]:
        raise ValueError("length mismatch")
    with nogil:
        for i in range(v.shape[0]):
            out[i] = qdq_f32_to_bf16(v[i])


cdef extern from "csrc/testing.h" nogil:
    int qdq_testing_team_mxcsr(int nt, unsigned value, unsigned *got)


def team_mxcsr(int nthreads, unsigned value=0):
    """The MXCSR of each thread of an OpenMP team of ``nthreads`` (x86-64), then ``value``
    written on each unless it is 0: a list, thread 0 (the caller) first; ``[]`` without the
    register. Without OpenMP the team is the calling thread. OpenMP keeps its threads
    between regions, so a team of the same size is made of the same threads next time."""
    cdef unsigned got[256]
    cdef int size
    if not 1 <= nthreads <= 256:
        raise ValueError(f"nthreads must be in [1, 256], got {nthreads}")
    size = qdq_testing_team_mxcsr(nthreads, value, got)
    return [got[i] for i in range(size)]
