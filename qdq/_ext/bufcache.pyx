"""A capped cache of large freed array buffers, through NumPy's memory handler (NEP 49).

:func:`empty` allocates an array with qdq's handler set, so the array's
memory comes from the cache when a freed buffer of about the right size is
held there, and goes back to the cache when the array (whoever holds it then)
is freed. The array is an ordinary NumPy array that owns its data. Buffers
below :data:`MIN_CACHED` bytes, or larger than the limit, are never held. A
buffer is held by the cache only while no array uses it, so two live arrays
never share memory.
"""

from cpython.pycapsule cimport PyCapsule_New
from cpython.pythread cimport (
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)
from libc.stdint cimport uint8_t
from libc.stdlib cimport calloc as c_calloc
from libc.stdlib cimport free as c_free
from libc.stdlib cimport malloc as c_malloc
from libc.stdlib cimport realloc as c_realloc
from libc.string cimport memset, strcpy

import numpy as np

cdef extern from *:
    """
    #if defined(__linux__)
    #include <sys/mman.h>
    #include <unistd.h>
    #endif
    /* As NumPy's own allocator does: ask for transparent huge pages on the
       whole pages of a large new buffer (fewer page faults on first touch). */
    static void qdq_advise_huge_pages(void *p, size_t size) {
    #if defined(__linux__) && defined(MADV_HUGEPAGE)
        if (size >= ((size_t)4 << 20)) {
            size_t page = (size_t)sysconf(_SC_PAGESIZE);
            size_t offset = ((size_t)p) % page;
            size_t skip = offset ? page - offset : 0;
            if (size > skip) {
                madvise((char *)p + skip, size - skip, MADV_HUGEPAGE);
            }
        }
    #else
        (void)p; (void)size;
    #endif
    }
    """
    void qdq_advise_huge_pages(void *p, size_t size) noexcept nogil


cdef extern from "numpy/arrayobject.h":
    ctypedef struct PyDataMemAllocator:
        void *ctx
        void *(*malloc)(void *ctx, size_t size) noexcept nogil
        void *(*calloc)(void *ctx, size_t nelem, size_t elsize) noexcept nogil
        void *(*realloc)(void *ctx, void *ptr, size_t new_size) noexcept nogil
        void (*free)(void *ctx, void *ptr, size_t size) noexcept nogil

    ctypedef struct PyDataMem_Handler:
        char name[127]
        uint8_t version
        PyDataMemAllocator allocator

    object PyDataMem_SetHandler(object handler)
    int _import_array() except -1

_import_array()

cdef enum:
    # Every buffer starts with a header holding its capacity (NumPy's free
    # passes the size it asked for, which may be less than a reused buffer's
    # capacity). 64 bytes keep the data as aligned as malloc's.
    HEADER = 64
    # The most buffers held at once.
    SLOTS = 16

#: Buffers smaller than this are never cached (malloc serves them warm anyway).
MIN_CACHED = 1 << 20

cdef size_t _min_cached = MIN_CACHED
cdef size_t _limit = 0
cdef size_t _held = 0
cdef int _count = 0
cdef void *_slot_base[SLOTS]
cdef size_t _slot_capacity[SLOTS]
cdef unsigned long long _reuses = 0
cdef PyThread_type_lock _lock = PyThread_allocate_lock()
if _lock == NULL:
    raise MemoryError("cannot allocate the buffer cache's lock")


cdef inline size_t _capacity(void *base) noexcept nogil:
    return (<size_t *>base)[0]


cdef inline void *_with_header(void *base, size_t capacity) noexcept nogil:
    if base == NULL:
        return NULL
    (<size_t *>base)[0] = capacity
    return <char *>base + HEADER


cdef inline void *_base_of(void *ptr) noexcept nogil:
    return <char *>ptr - HEADER


cdef void _remove_slot(int k) noexcept nogil:
    """Drop slot k (the lock held), keeping the others oldest first."""
    global _count, _held
    cdef int j
    _held -= _slot_capacity[k]
    for j in range(k, _count - 1):
        _slot_base[j] = _slot_base[j + 1]
        _slot_capacity[j] = _slot_capacity[j + 1]
    _count -= 1


cdef void *_take(size_t size) noexcept nogil:
    """A held buffer of capacity in [size, 1.25 size], removed from the cache, or NULL."""
    global _reuses
    cdef void *base = NULL
    cdef int k, best = -1
    if size < _min_cached:
        return NULL
    PyThread_acquire_lock(_lock, WAIT_LOCK)
    for k in range(_count):
        if size <= _slot_capacity[k] <= size + size // 4:
            if best < 0 or _slot_capacity[k] < _slot_capacity[best]:
                best = k
    if best >= 0:
        base = _slot_base[best]
        _remove_slot(best)
        _reuses += 1
    PyThread_release_lock(_lock)
    return base


cdef int _evict_to(size_t room, int slots, void **evicted) noexcept nogil:
    """Drop the oldest buffers (the lock held) until ``room`` more bytes and ``slots``
    free slots fit under the limit; returns how many bases were put in ``evicted``."""
    cdef int n = 0
    while _count > 0 and (_held + room > _limit or _count + slots > SLOTS):
        evicted[n] = _slot_base[0]
        n += 1
        _remove_slot(0)
    return n


cdef void _free_all(void **bases, int n) noexcept nogil:
    cdef int k
    for k in range(n):
        c_free(bases[k])


cdef void *_new_buffer(size_t size, bint zeroed) noexcept nogil:
    """A buffer from the system, with its header (NULL when out of memory)."""
    cdef void *base
    if size > <size_t>-1 - HEADER:
        return NULL
    base = c_calloc(1, size + HEADER) if zeroed else c_malloc(size + HEADER)
    if base != NULL:
        qdq_advise_huge_pages(base, size + HEADER)
    return _with_header(base, size)


cdef void *_malloc(void *ctx, size_t size) noexcept nogil:
    cdef void *base = _take(size)
    if base != NULL:
        return <char *>base + HEADER
    return _new_buffer(size, False)


cdef void *_calloc(void *ctx, size_t nelem, size_t elsize) noexcept nogil:
    cdef size_t size
    cdef void *base
    if elsize != 0 and nelem > (<size_t>-1 - HEADER) // elsize:
        return NULL
    size = nelem * elsize
    base = _take(size)
    if base != NULL:
        memset(<char *>base + HEADER, 0, size)
        return <char *>base + HEADER
    return _new_buffer(size, True)


cdef void *_realloc(void *ctx, void *ptr, size_t new_size) noexcept nogil:
    if ptr == NULL:
        return _malloc(ctx, new_size)
    if new_size > <size_t>-1 - HEADER:
        return NULL
    return _with_header(c_realloc(_base_of(ptr), new_size + HEADER), new_size)


cdef void _free(void *ctx, void *ptr, size_t size) noexcept nogil:
    global _held, _count
    cdef void *evicted[SLOTS]
    cdef int n = 0
    cdef bint kept = False
    cdef void *base
    cdef size_t capacity
    if ptr == NULL:
        return
    base = _base_of(ptr)
    capacity = _capacity(base)
    if capacity >= _min_cached:
        PyThread_acquire_lock(_lock, WAIT_LOCK)
        if capacity <= _limit:
            n = _evict_to(capacity, 1, evicted)
            _slot_base[_count] = base
            _slot_capacity[_count] = capacity
            _count += 1
            _held += capacity
            kept = True
        PyThread_release_lock(_lock)
    _free_all(evicted, n)
    if not kept:
        c_free(base)


cdef PyDataMem_Handler _handler
strcpy(_handler.name, b"qdq_buffer_cache")
_handler.version = 1
_handler.allocator.ctx = NULL
_handler.allocator.malloc = _malloc
_handler.allocator.calloc = _calloc
_handler.allocator.realloc = _realloc
_handler.allocator.free = _free

# Every array allocated through the handler keeps a reference to this capsule.
_capsule = PyCapsule_New(&_handler, b"mem_handler", NULL)


def empty(shape, dtype, order):
    """np.empty(shape, dtype, order=order) with its memory from the cache (or malloc)."""
    previous = PyDataMem_SetHandler(_capsule)
    try:
        return np.empty(shape, dtype=dtype, order=order)
    finally:
        PyDataMem_SetHandler(previous)


def set_limit(size_t nbytes):
    """Set the most bytes the cache holds (0: none), releasing what is over; returns the old."""
    global _limit
    cdef void *evicted[SLOTS]
    cdef int n
    cdef size_t previous
    with nogil:
        PyThread_acquire_lock(_lock, WAIT_LOCK)
        previous = _limit
        _limit = nbytes
        n = _evict_to(0, 0, evicted)
        PyThread_release_lock(_lock)
        _free_all(evicted, n)
    return previous


def get_limit():
    """The most bytes the cache holds."""
    return _limit


def held():
    """(bytes held, buffers held) now."""
    cdef size_t nbytes
    cdef int count
    with nogil:
        PyThread_acquire_lock(_lock, WAIT_LOCK)
        nbytes, count = _held, _count
        PyThread_release_lock(_lock)
    return nbytes, count


def reuses():
    """How many allocations a held buffer served since the module was loaded."""
    return _reuses
