# cython: language_level=3, boundscheck=False, wraparound=False
# cython: initializedcheck=False, embedsignature=True
"""The kernels' scalar 16-bit converters, for the exhaustive tests (private).

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
