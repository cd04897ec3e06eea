# cython: language_level=3
"""DLPack capsules to and from NumPy arrays over the same memory (private).

:func:`view` reads any CPU object with ``__dlpack__`` (torch, JAX, CuPy on the
host, array-API libraries) as an ndarray without a copy, bfloat16 included,
which NumPy's own ``from_dlpack`` refuses: bfloat16 comes back as ``uint16``
bit patterns. :class:`Bfloat16Export` is the way back for bfloat16: it hands
a ``uint16`` array of bit patterns to another library as a bfloat16 tensor.
"""

from cpython.pycapsule cimport (
    PyCapsule_GetName,
    PyCapsule_GetPointer,
    PyCapsule_IsValid,
    PyCapsule_New,
    PyCapsule_SetName,
)
from cpython.ref cimport Py_DECREF, Py_INCREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t, uintptr_t
from libc.stdlib cimport free, malloc

cimport cython

import sys

import numpy as np

# The DLPack ABI (dlpack.h, versions 0.x and 1.x).
ctypedef struct DLDevice:
    int32_t device_type
    int32_t device_id

ctypedef struct DLDataType:
    uint8_t code
    uint8_t bits
    uint16_t lanes

ctypedef struct DLTensor:
    void *data
    DLDevice device
    int32_t ndim
    DLDataType dtype
    int64_t *shape
    int64_t *strides
    uint64_t byte_offset

ctypedef struct DLManagedTensor:
    DLTensor dl_tensor
    void *manager_ctx
    void (*deleter)(DLManagedTensor *) noexcept

ctypedef struct DLPackVersion:
    uint32_t major
    uint32_t minor

ctypedef struct DLManagedTensorVersioned:
    DLPackVersion version
    void *manager_ctx
    void (*deleter)(DLManagedTensorVersioned *) noexcept
    uint64_t flags
    DLTensor dl_tensor

cdef enum:
    CPU = 1
    KIND_INT = 0
    KIND_UINT = 1
    KIND_FLOAT = 2
    KIND_BFLOAT = 4
    KIND_BOOL = 6
    FLAG_READ_ONLY = 1

DEVICE_NAMES = {1: "kDLCPU", 2: "kDLCUDA", 3: "kDLCUDAHost", 4: "kDLOpenCL", 7: "kDLVulkan",
                8: "kDLMetal", 9: "kDLVPI", 10: "kDLROCM", 11: "kDLROCMHost", 12: "kDLExtDev",
                13: "kDLCUDAManaged", 14: "kDLOneAPI", 15: "kDLWebGPU", 16: "kDLHexagon",
                17: "kDLMAIA"}
_KINDS = {KIND_INT: "i", KIND_UINT: "u", KIND_FLOAT: "f", KIND_BOOL: "b"}
_ORDER = "<" if sys.byteorder == "little" else ">"


def device_name(device_type):
    """The DLPack name of a device type (``kDLCUDA`` for 2)."""
    return DEVICE_NAMES.get(int(device_type), f"device type {int(device_type)}")


@cython.auto_pickle(False)
cdef class _Capsule:
    """Owns one consumed DLPack tensor: calls its deleter exactly once, when freed.

    The ndarray :func:`view` returns has this object as its base, so the
    producer's memory lives as long as the array (and any view of it).
    """
    cdef void *managed
    cdef bint versioned
    cdef dict interface

    def __dealloc__(self):
        cdef DLManagedTensor *legacy
        cdef DLManagedTensorVersioned *current
        if self.managed == NULL:
            return
        if self.versioned:
            current = <DLManagedTensorVersioned *> self.managed
            if current.deleter != NULL:
                current.deleter(current)
        else:
            legacy = <DLManagedTensor *> self.managed
            if legacy.deleter != NULL:
                legacy.deleter(legacy)
        self.managed = NULL

    @property
    def __array_interface__(self):
        return self.interface


cdef str _typestr(DLDataType dt):
    if dt.lanes != 1:
        raise TypeError(f"DLPack tensors with {dt.lanes} lanes per element are not supported")
    if dt.code == KIND_BFLOAT and dt.bits == 16:
        return _ORDER + "u2"
    kind = _KINDS.get(dt.code)
    ok = ((kind == "f" and dt.bits in (16, 32, 64))
          or (kind in ("i", "u") and dt.bits in (8, 16, 32, 64))
          or (kind == "b" and dt.bits == 8))
    if not ok:
        names = {3: "opaque handle", 5: "complex", 7: "float8", 8: "float6", 9: "float4"}
        what = names.get(dt.code, f"type code {dt.code}") if kind is None else kind
        raise TypeError(f"unsupported DLPack dtype: {what} of {dt.bits} bits (qdq reads "
                        "float16, bfloat16, float32, float64 and integer tensors)")
    return ("|" if dt.bits == 8 else _ORDER) + kind + str(dt.bits // 8)


def view(obj, bint writable=False):
    """``obj`` (anything with ``__dlpack__``) as an ndarray over the same memory.

    Parameters
    ----------
    obj : object
        A CPU tensor with ``__dlpack__`` (and ``__dlpack_device__``).
    writable : bool
        Return a writable array (for ``out=``); ValueError when the producer
        marks the tensor read-only. Otherwise the array is read-only.

    Returns
    -------
    array : numpy.ndarray
        The tensor's memory, its shape and strides; bfloat16 as ``uint16``.
    is_bfloat16 : bool
        Whether the tensor is bfloat16.
    """
    cdef DLManagedTensor *legacy
    cdef DLManagedTensorVersioned *current
    cdef DLTensor *t
    cdef const char *name
    cdef int i
    is_neg = getattr(obj, "is_neg", None)
    if callable(is_neg) and is_neg() is True:
        # torch exports a lazy negation view's memory without the negation
        raise TypeError(f"the {type(obj).__name__} is a lazy negation view (is_neg()): its "
                        "memory holds the negated values; resolve it first (.resolve_neg())")
    if hasattr(obj, "__dlpack_device__"):
        device = obj.__dlpack_device__()
        if int(device[0]) != CPU:
            raise TypeError(f"{type(obj).__name__} on {device_name(device[0])}:{int(device[1])}"
                            " (not the CPU): qdq's kernels run on the CPU; copy it to host "
                            "memory first (torch: .cpu(), JAX: jax.device_put(x, "
                            "jax.devices('cpu')[0]))")
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))
    except TypeError:  # a producer of DLPack before 1.0: no max_version
        capsule = obj.__dlpack__()
    holder = _Capsule()
    if PyCapsule_IsValid(capsule, b"dltensor_versioned"):
        current = <DLManagedTensorVersioned *> PyCapsule_GetPointer(capsule,
                                                                    b"dltensor_versioned")
        if current.version.major != 1:
            raise TypeError(f"DLPack version {current.version.major}.{current.version.minor} "
                            "is not supported (qdq reads 0.x and 1.x)")
        PyCapsule_SetName(capsule, b"used_dltensor_versioned")
        holder.managed, holder.versioned = current, True
        t = &current.dl_tensor
        read_only = bool(current.flags & FLAG_READ_ONLY)
    elif PyCapsule_IsValid(capsule, b"dltensor"):
        legacy = <DLManagedTensor *> PyCapsule_GetPointer(capsule, b"dltensor")
        PyCapsule_SetName(capsule, b"used_dltensor")
        holder.managed, holder.versioned = legacy, False
        t = &legacy.dl_tensor
        read_only = False
    else:
        name = PyCapsule_GetName(capsule)
        raise TypeError(f"{type(obj).__name__}.__dlpack__() returned a capsule named "
                        f"{(name or b'').decode()!r}, not a DLPack tensor")
    if t.device.device_type != CPU:
        raise TypeError(f"{type(obj).__name__} on {device_name(t.device.device_type)}"
                        f":{t.device.device_id}: qdq's kernels run on the CPU")
    if writable and read_only:
        raise ValueError(f"the {type(obj).__name__} is read-only (its DLPack export says so)")
    typestr = _typestr(t.dtype)
    itemsize = t.dtype.bits // 8
    shape = tuple(t.shape[i] for i in range(t.ndim))
    is_bfloat16 = t.dtype.code == KIND_BFLOAT
    if 0 in shape:  # no memory to share (the data pointer may be NULL)
        return np.empty(shape, dtype=typestr), is_bfloat16
    if t.data == NULL:
        raise TypeError(f"the {type(obj).__name__} exports no data pointer for {shape} elements "
                        "(a fake, meta or zero tensor?)")
    strides = (None if t.strides == NULL
               else tuple(t.strides[i] * itemsize for i in range(t.ndim)))
    address = <uintptr_t> t.data + t.byte_offset
    holder.interface = {"version": 3, "typestr": typestr, "shape": shape, "strides": strides,
                        "data": (address, not writable)}
    return np.asarray(holder), is_bfloat16


# ---- The way back: uint16 bit patterns exported as a bfloat16 tensor ----

cdef struct _Export:
    DLManagedTensor managed
    int64_t dims[64]
    int64_t steps[64]


cdef void _release_export(DLManagedTensor *managed) noexcept nogil:
    with gil:
        Py_DECREF(<object> managed.manager_ctx)
    free(managed)


cdef void _capsule_destructor(object capsule) noexcept:
    # Called for a capsule nobody consumed (a consumer renames it to "used_dltensor").
    cdef DLManagedTensor *managed
    if PyCapsule_IsValid(capsule, b"dltensor"):
        managed = <DLManagedTensor *> PyCapsule_GetPointer(capsule, b"dltensor")
        managed.deleter(managed)


@cython.auto_pickle(False)
cdef class Bfloat16Export:
    """A ``uint16`` ndarray of bfloat16 bit patterns, exported through DLPack as bfloat16.

    ``torch.from_dlpack(Bfloat16Export(a))`` and ``jax.dlpack.from_dlpack(...)``
    give a bfloat16 tensor over ``a``'s memory.
    """
    cdef object array

    def __init__(self, array):
        a = np.asarray(array)
        if a.dtype != np.dtype(np.uint16) or a.ndim > 64:
            raise TypeError(f"expected a native uint16 array of at most 64 dimensions, got "
                            f"{a.dtype} with {a.ndim}")
        self.array = a

    def __dlpack_device__(self):
        return (CPU, 0)

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        cdef _Export *e
        cdef int i
        if copy:
            raise BufferError("Bfloat16Export shares memory; copy=True is not supported")
        if dl_device is not None and int(dl_device[0]) != CPU:
            raise BufferError("Bfloat16Export is on the CPU")
        a = self.array
        interface = a.__array_interface__
        e = <_Export *> malloc(sizeof(_Export))
        if e == NULL:
            raise MemoryError()
        if any(step % 2 for step in a.strides):
            free(e)
            raise BufferError("Bfloat16Export needs strides in whole elements")
        for i in range(a.ndim):
            e.dims[i] = a.shape[i]
            e.steps[i] = a.strides[i] // 2
        e.managed.dl_tensor.data = <void *> <uintptr_t> interface["data"][0]
        e.managed.dl_tensor.device.device_type = CPU
        e.managed.dl_tensor.device.device_id = 0
        e.managed.dl_tensor.ndim = a.ndim
        e.managed.dl_tensor.dtype.code = KIND_BFLOAT
        e.managed.dl_tensor.dtype.bits = 16
        e.managed.dl_tensor.dtype.lanes = 1
        e.managed.dl_tensor.shape = e.dims
        e.managed.dl_tensor.strides = e.steps
        e.managed.dl_tensor.byte_offset = 0
        Py_INCREF(a)
        e.managed.manager_ctx = <void *> a
        e.managed.deleter = _release_export
        return PyCapsule_New(&e.managed, b"dltensor", _capsule_destructor)
