# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False, embedsignature=True
"""Compiled kernels of qdq (private).

The public functions in :mod:`qdq` validate their arguments, choose the
memory layout and call these. Every array handed in here is contiguous in
memory, of native byte order and aligned; 16-bit formats arrive as their
``uint16`` bit patterns. The per-channel functions see the data as a
C-ordered ``[pre, C, post]`` block, ``C`` being the channel axis. Parameter
arrays have the compute type: ``float32`` for float16, bfloat16 and float32,
``float64`` for float64. All loops run without the GIL; the ``nthreads``
argument is the number of OpenMP threads to use (1 without OpenMP).
"""

from cpython.buffer cimport (PyBUF_ANY_CONTIGUOUS, PyBUF_WRITABLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.pycapsule cimport PyCapsule_New
cimport cython
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from libc.stdint cimport int64_t
from libc.float cimport FLT_MAX, DBL_MAX
from libc.math cimport INFINITY

cdef extern from "csrc/dispatch.h" nogil:
    enum:
        QDQ_F16
        QDQ_BF16
        QDQ_F32
        QDQ_F64
        QDQ_CLAMP
        QDQ_HALF_UP
    float qdq_rnd_float(float v, int fmt)
    double qdq_round_value(int fmt, double d)
    void qdq_min1_f(float v, float *mn)
    void qdq_max1_f(float v, float *mx)
    void qdq_min1_d(double v, double *mn)
    void qdq_max1_d(double v, double *mx)
    void qdq_minmax(int fmt, const void *x, size_t n, void *mn, void *mx, int beyond_cache)
    void qdq_minmax_lanes(int fmt, const void *x, size_t n, void *mn, void *mx)
    void qdq_minmax_cols(int fmt, const void *x, size_t stride, size_t rows, size_t n,
                         void *mn, void *mx, int beyond_cache)
    void qdq_apply_cols(int fmt, const void *x, void *o, size_t stride, size_t rows, size_t n,
                        const void *s, const void *inv, const void *lo, const void *hi,
                        int mode, int stream)
    void qdq_apply(int fmt, const void *x, void *o, size_t n, double s, double inv,
                   double lo, double hi, int mode)
    void qdq_apply_lanes(int fmt, const void *x, void *o, size_t n, const void *s,
                         const void *inv, const void *lo, const void *hi, int mode)
    void qdq_apply_nt(int fmt, const void *x, void *o, size_t n, double s, double inv,
                      double lo, double hi, int mode, int stream)
    size_t qdq_stream_min_bytes()
    void qdq_stream_min_bytes_set(size_t nbytes)
    void qdq_stream_row_by_row_set(int mode)
    int qdq_stream_row_by_row(size_t rs_bytes)
    void qdq_prefetch_set(int mode)
    size_t qdq_prefetch_ahead(size_t g)
    enum:
        QDQ_I8
        QDQ_U64
    void qdq_quantize(int fmt, int itype, const void *x, void *codes, size_t n, const void *s,
                      const void *lo, const void *hi, int lanes, int mode, double *stats)
    void qdq_dequantize(int fmt, int itype, const void *codes, void *o, size_t n,
                        const void *inv, int lanes)
    void qdq_gradient(int fmt, const void *g, const void *x, void *o, size_t n,
                      const void *lo, const void *hi, int lanes)
    size_t qdq_int_size(int itype)
    int qdq_rows_op(int fmt, const void *x, void *o, size_t rows, size_t len, const void *lo,
                    const void *hi, double qmin, double qmax, double big, int mode, void *prm,
                    size_t pstride)
    int qdq_set_isa(int level)
    int qdq_get_isa()
    int qdq_isa_available()
    int *qdq_isa_level
    const char *qdq_kernel_isa(int kernel, int level)

cdef extern from "csrc/fpenv.h" nogil:
    ctypedef int qdq_fpenv
    qdq_fpenv qdq_fpenv_enter()
    void qdq_fpenv_leave(qdq_fpenv saved)

cdef extern from "csrc/pool.h" nogil:
    ctypedef void (*qdq_piece_fn)(void *ctx, size_t piece, int worker) noexcept nogil
    void qdq_parallel(size_t k, int nt, qdq_piece_fn fn, void *ctx)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define QDQ_OPENMP 1
    #else
    #define QDQ_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    int QDQ_OPENMP
    int omp_get_max_threads() noexcept nogil

cdef extern from *:
    """
    #if defined(__linux__)
    #include <fcntl.h>
    #include <errno.h>
    #define QDQ_HAVE_SYNC_RANGE 1
    static int qdq_sync_range(int fd, long long off, long long n, int wait)
    {
        unsigned int flags = SYNC_FILE_RANGE_WRITE;
        if (wait) flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
        return sync_file_range(fd, (off64_t)off, (off64_t)n, flags) == 0 ? 0 : errno;
    }
    #else
    #define QDQ_HAVE_SYNC_RANGE 0
    static int qdq_sync_range(int fd, long long off, long long n, int wait) { return -1; }
    #endif
    """
    int QDQ_HAVE_SYNC_RANGE
    int qdq_sync_range(int fd, long long off, long long n, int wait) nogil

F16 = QDQ_F16
BF16 = QDQ_BF16
F32 = QDQ_F32
F64 = QDQ_F64
CLAMP = QDQ_CLAMP
HALF_UP = QDQ_HALF_UP

#: True when the extension was built with OpenMP.
OPENMP = bool(QDQ_OPENMP)

# Channels whose post-extent is below this are interleaved ("expanded") so
# that the lanes kernels run over whole rows instead of a call per few elements.
# Per-thread partial min/max arrays are used while C * threads is at most
# PARTIAL_LIMIT; beyond it, threads split the channels instead. A thread is
# started per THREAD_BYTES of input at most (below that, one thread is faster).
cdef enum:
    EXPAND_POST = 16
    EXPAND_LIMIT = 1 << 20
    PARTIAL_LIMIT = 1 << 16
    REDUCE_THREAD_BYTES = 1 << 18
    APPLY_THREAD_BYTES = 1 << 17
    # Work is handed to threads in pieces of about this size, dynamically, so
    # that a thread slowed by another process does not hold the others up.
    CHUNK_BYTES = 1 << 20
    # Rows up to this size go through the group kernel (qdq_rows); longer
    # ones one by one, where the per-row cost no longer matters.
    ROWS_GROUP_BYTES = 1 << 13


def sync_range(int fd, long long offset, long long nbytes, bint wait):
    """Start writing a file range back to disk (and wait for it when ``wait``).

    Linux ``sync_file_range``; returns False where it is not available, so the
    caller can fall back to ``fdatasync``. Raises OSError on failure.
    """
    cdef int rc
    if not QDQ_HAVE_SYNC_RANGE:
        return False
    with nogil:
        rc = qdq_sync_range(fd, offset, nbytes, wait)
    if rc != 0:
        raise OSError(rc, "sync_file_range failed")
    return True


def openmp_max_threads():
    """The OpenMP runtime's default thread count (1 without OpenMP)."""
    return omp_get_max_threads()


def set_isa(int level):
    """Choose the instruction-set level of every compiled kernel (csrc/cpu.h).

    -1: the best available, 0: baseline, 1: AVX2+F16C, 2: AVX-512 F/BW/VL,
    3: AVX-512 F/BW/VL with AVX512-BF16. Every level gives the same bits.
    Returns the level in use, which is at most the best available.
    """
    return qdq_set_isa(level)


def get_isa():
    """The instruction-set level in use (see :func:`set_isa`)."""
    return qdq_get_isa()


def isa_available():
    """The best instruction-set level this CPU and build support."""
    return qdq_isa_available()


def stream_min_bytes(Py_ssize_t nbytes=-1):
    """Outputs larger than this many bytes are written with non-temporal stores.

    The size of the last-level cache by default; ``nbytes > 0`` sets another
    threshold (the tests force the streaming loops on small arrays so), 0
    restores the default. Returns the threshold in use.
    """
    if nbytes >= 0:
        qdq_stream_min_bytes_set(<size_t>nbytes)
    return qdq_stream_min_bytes()


def stream_row_by_row(int mode=-2):
    """Whether the column kernels stream their rows one by one (else four at a time).

    By default on AMD CPUs for rows a multiple of 4 KiB apart; ``mode=1`` forces row by
    row for every distance, ``0`` never, ``-1`` restores the default (the tests take both
    paths so). Returns whether rows 4 KiB apart now go row by row.
    """
    if mode >= -1:
        qdq_stream_row_by_row_set(mode)
    return bool(qdq_stream_row_by_row(4096))


def prefetch_ahead(int mode=-2):
    """Whether the min/max passes and the column kernels prefetch their input into L2.

    They do so for blocks beyond the last-level cache, by default on AMD CPUs; ``mode=1``
    forces it on every CPU, ``0`` off, ``-1`` restores the default (the tests and
    benchmarks take both). Returns whether they now prefetch.
    """
    if mode >= -1:
        qdq_prefetch_set(mode)
    return qdq_prefetch_ahead(1) > 0


def kernel_isa(int level):
    """What this module's kernels run at ``level``: ``(kernel, instruction set)`` pairs."""
    cdef int k = 0
    out = []
    for name in ("op", "bfloat16 op", "error statistics"):
        out.append((name, qdq_kernel_isa(k, level).decode()))
        k += 1
    return tuple(out)


#: The level in use, as a capsule the other compiled modules follow (cpu.h: qdq_isa_share).
ISA_LEVEL = PyCapsule_New(<void *>qdq_isa_level, b"qdq._ext.isa_level", NULL)


# ---------------------------------------------------------------------------
# Buffers
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _isz(int fmt) noexcept nogil:
    return 8 if fmt == QDQ_F64 else (4 if fmt == QDQ_F32 else 2)


cdef inline Py_ssize_t _csz(int fmt) noexcept nogil:
    return 8 if fmt == QDQ_F64 else 4


cdef enum:
    MAX_BUFFERS = 8


@cython.auto_pickle(False)
cdef class _Buffers:
    """The buffers of one kernel call's arguments, and its scratch memory.

    An entry point makes one, acquires its arguments' buffers with ``get``
    and, when it returns or raises, the object goes away and releases them
    all (and frees the scratch memory).
    """
    cdef Py_buffer views[MAX_BUFFERS]
    cdef int count
    cdef void *work

    cdef Py_buffer *get(self, object obj, bint writable, Py_ssize_t nbytes, str name,
                        Py_ssize_t align) except NULL:
        """A contiguous buffer of at least nbytes, aligned to align bytes."""
        cdef int flags = PyBUF_ANY_CONTIGUOUS
        cdef Py_buffer *view
        if self.count == MAX_BUFFERS:
            raise RuntimeError("qdq kernel: too many buffers")
        view = &self.views[self.count]
        if writable:
            flags |= PyBUF_WRITABLE
        PyObject_GetBuffer(obj, view, flags)
        if view.len < nbytes:
            PyBuffer_Release(view)
            raise ValueError(f"qdq kernel: {name} holds {view.len} bytes, needs {nbytes}")
        if (<size_t>view.buf) % <size_t>align != 0:
            PyBuffer_Release(view)
            raise ValueError(f"qdq kernel: {name} is not aligned to {align} bytes")
        self.count += 1
        return view

    cdef char *scratch(self, size_t nbytes) except NULL:
        """nbytes of memory for the call (one block per call)."""
        if self.work != NULL:
            raise RuntimeError("qdq kernel: scratch memory taken twice")
        self.work = malloc(nbytes)
        if self.work == NULL:
            raise MemoryError()
        return <char *>self.work

    def __dealloc__(self):
        free(self.work)
        while self.count > 0:
            self.count -= 1
            PyBuffer_Release(&self.views[self.count])


cdef int _check_fmt(int fmt) except -1:
    if fmt < QDQ_F16 or fmt > QDQ_F64:
        raise ValueError(f"qdq kernel: unknown format {fmt}")
    return 0


cdef inline Py_ssize_t _split(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t k) noexcept nogil:
    """Start of part k of n items in parts pieces, aligned to 64 items."""
    if k >= parts:
        return n
    return ((n // parts) * k) & ~(<Py_ssize_t>63)


cdef inline Py_ssize_t _chunks(Py_ssize_t nbytes, int nt) noexcept nogil:
    """How many pieces to cut nbytes of work into for nt threads: about CHUNK_BYTES each,
    a multiple of nt (5 equal pieces on 2 threads leave one thread idle for a fifth)."""
    cdef Py_ssize_t k = max(nbytes // CHUNK_BYTES, <Py_ssize_t>1)
    return (k + nt - 1) // nt * nt


cdef inline Py_ssize_t _row_piece(Py_ssize_t rows, Py_ssize_t row_bytes, int nt) noexcept nogil:
    """Rows per piece of work with the channel axis last: rows cut into _chunks pieces of
    about equal size, in whole groups of 8 rows (the column kernels take 4 at a time)."""
    cdef Py_ssize_t k = _chunks(rows * row_bytes, nt)
    return max(((rows + k - 1) // k + 7) & ~(<Py_ssize_t>7), <Py_ssize_t>8)


cdef inline int _threads(Py_ssize_t work, Py_ssize_t per_thread, int nthreads) noexcept nogil:
    cdef Py_ssize_t nt = work // per_thread
    if nt < 1:
        nt = 1
    if nt > nthreads:
        nt = nthreads
    return <int>nt


# ---------------------------------------------------------------------------
# Min / max
# ---------------------------------------------------------------------------

cdef void _fill(int fmt, char *a, Py_ssize_t n, double v) noexcept nogil:
    cdef Py_ssize_t i
    if fmt == QDQ_F64:
        for i in range(n):
            (<double *>a)[i] = v
    else:
        for i in range(n):
            (<float *>a)[i] = <float>v


cdef void _merge(int fmt, Py_ssize_t n, char *mn, char *mx,
                 const char *mn2, const char *mx2, Py_ssize_t stride) noexcept nogil:
    """mn[i] = min(mn[i], mn2[i*stride]), likewise for max."""
    cdef Py_ssize_t i
    if fmt == QDQ_F64:
        for i in range(n):
            qdq_min1_d((<const double *>mn2)[i * stride], &(<double *>mn)[i])
            qdq_max1_d((<const double *>mx2)[i * stride], &(<double *>mx)[i])
    else:
        for i in range(n):
            qdq_min1_f((<const float *>mn2)[i * stride], &(<float *>mn)[i])
            qdq_max1_f((<const float *>mx2)[i * stride], &(<float *>mx)[i])


cdef inline bint _beyond_cache(Py_ssize_t nbytes) noexcept nogil:
    """Whether a block of nbytes is larger than the last-level cache: the outputs the op then
    writes with non-temporal stores, the inputs the kernels then prefetch (cpu.h)."""
    return <size_t>nbytes > qdq_stream_min_bytes()


cdef void _reduce_span(int fmt, const char *x, Py_ssize_t start, Py_ssize_t end,
                       Py_ssize_t C, Py_ssize_t post, char *mn, char *mx,
                       bint beyond_cache) noexcept nogil:
    """Merge elements [start, end) of a [pre, C, post] block into mn/mx[C]; beyond_cache:
    the whole block is larger than the last-level cache (qdq_minmax, qdq_minmax_cols)."""
    cdef Py_ssize_t isz = _isz(fmt), csz = _csz(fmt)
    cdef Py_ssize_t i = start, seg, run, c
    if C == 1:
        if end > start:
            qdq_minmax(fmt, x + start * isz, end - start, mn, mx, beyond_cache)
        return
    if post == 1:
        # the channel axis last: a partial row, whole rows (in tiles of channels), a partial row
        if i % C != 0:
            c = i % C
            seg = min(end - i, C - c)
            qdq_minmax_lanes(fmt, x + i * isz, seg, mn + c * csz, mx + c * csz)
            i += seg
        run = end // C - i // C
        if run > 0 and i < end:
            qdq_minmax_cols(fmt, x + i * isz, C, run, C, mn, mx, beyond_cache)
            i += run * C
        if i < end:
            qdq_minmax_lanes(fmt, x + i * isz, end - i, mn, mx)
    else:
        while i < end:
            run = i // post
            c = run % C
            seg = min(end - i, (run + 1) * post - i)
            qdq_minmax(fmt, x + i * isz, seg, mn + c * csz, mx + c * csz, beyond_cache)
            i += seg


cdef struct ReduceCtx:
    # One min/max reduction split into pieces (qdq_parallel): its block and, per worker,
    # partial min/max arrays of C values each (or, channels split, the results).
    int fmt
    const char *x
    Py_ssize_t pre, C, post, n, k, rp, csz
    bint beyond_cache
    char *part
    char *mn
    char *mx


cdef void _reduce_piece_rows(void *p, size_t t, int w) noexcept nogil:
    """Rows [t * rp, (t + 1) * rp) of a block whose channel axis is last."""
    cdef ReduceCtx *c = <ReduceCtx *>p
    cdef Py_ssize_t r0 = <Py_ssize_t>t * c.rp
    qdq_minmax_cols(c.fmt, c.x + r0 * c.C * _isz(c.fmt), c.C, min(c.rp, c.pre - r0), c.C,
                    c.part + 2 * w * c.C * c.csz, c.part + (2 * w + 1) * c.C * c.csz,
                    c.beyond_cache)


cdef void _reduce_piece_span(void *p, size_t t, int w) noexcept nogil:
    """Piece t of k of the elements, into worker w's partial arrays."""
    cdef ReduceCtx *c = <ReduceCtx *>p
    _reduce_span(c.fmt, c.x, _split(c.n, c.k, t), _split(c.n, c.k, t + 1), c.C, c.post,
                 c.part + 2 * w * c.C * c.csz, c.part + (2 * w + 1) * c.C * c.csz,
                 c.beyond_cache)


cdef void _reduce_piece_channels(void *p, size_t t, int w) noexcept nogil:
    """Channels [C t / k, C (t + 1) / k), straight into the results."""
    cdef ReduceCtx *c = <ReduceCtx *>p
    cdef Py_ssize_t c0 = (c.C * <Py_ssize_t>t) // c.k, c1 = (c.C * (<Py_ssize_t>t + 1)) // c.k
    cdef Py_ssize_t q
    if c.post == 1:
        qdq_minmax_cols(c.fmt, c.x + c0 * _isz(c.fmt), c.C, c.pre, c1 - c0, c.mn + c0 * c.csz,
                        c.mx + c0 * c.csz, c.beyond_cache)
    else:
        for q in range(c.pre):
            _reduce_span(c.fmt, c.x, (q * c.C + c0) * c.post, (q * c.C + c1) * c.post, c.C,
                         c.post, c.mn, c.mx, c.beyond_cache)


cdef int _reduce(int fmt, const char *x, Py_ssize_t pre, Py_ssize_t C, Py_ssize_t post,
                 char *mn, char *mx, int nthreads) noexcept nogil:
    """Merge the per-channel min/max of x into mn/mx. Returns -1 on no memory."""
    cdef Py_ssize_t n = pre * C * post, csz = _csz(fmt), t, p, Ce
    cdef bint beyond_cache = _beyond_cache(n * _isz(fmt))
    cdef int nt
    cdef char *part
    cdef ReduceCtx c
    if n == 0:
        return 0
    if 1 < post < EXPAND_POST and C * post <= EXPAND_LIMIT:
        # Reduce C * post interleaved channels, then fold each channel's post.
        Ce = C * post
        part = <char *>malloc(2 * Ce * csz)
        if part == NULL:
            return -1
        _fill(fmt, part, Ce, INFINITY)
        _fill(fmt, part + Ce * csz, Ce, -INFINITY)
        if _reduce(fmt, x, pre, Ce, 1, part, part + Ce * csz, nthreads) != 0:
            free(part)
            return -1
        for p in range(post):
            _merge(fmt, C, mn, mx, part + p * csz, part + Ce * csz + p * csz, post)
        free(part)
        return 0
    nt = _threads(n * _isz(fmt), REDUCE_THREAD_BYTES, nthreads)
    if nt == 1:
        _reduce_span(fmt, x, 0, n, C, post, mn, mx, beyond_cache)
        return 0
    c.fmt, c.x, c.pre, c.C, c.post, c.n, c.csz = fmt, x, pre, C, post, n, csz
    c.mn, c.mx, c.part, c.beyond_cache = mn, mx, NULL, beyond_cache
    if C * nt <= PARTIAL_LIMIT:
        # Workers take pieces of the elements as they come and merge them into
        # arrays of their own; those are merged at the end. min/max do not
        # depend on the order, so neither does the result.
        part = <char *>malloc(2 * nt * C * csz)
        if part == NULL:
            return -1
        for t in range(nt):
            _fill(fmt, part + 2 * t * C * csz, C, INFINITY)
            _fill(fmt, part + (2 * t + 1) * C * csz, C, -INFINITY)
        c.part = part
        if post == 1:
            # the channel axis last: pieces of whole rows, in groups of the kernel's rows
            c.rp = _row_piece(pre, C * _isz(fmt), nt)
            c.k = (pre + c.rp - 1) // c.rp
            qdq_parallel(c.k, nt, _reduce_piece_rows, &c)
        else:
            c.k = _chunks(n * _isz(fmt), nt)
            qdq_parallel(c.k, nt, _reduce_piece_span, &c)
        for t in range(nt):
            _merge(fmt, C, mn, mx, part + 2 * t * C * csz, part + (2 * t + 1) * C * csz, 1)
        free(part)
    else:
        # Many channels: workers take ranges of channels, which they own.
        c.k = min(C, 8 * <Py_ssize_t>nt)
        qdq_parallel(c.k, nt, _reduce_piece_channels, &c)
    return 0


def minmax(x, mn, mx, int fmt, Py_ssize_t pre, Py_ssize_t C, Py_ssize_t post,
           int nthreads=1):
    """Merge the NaN-ignoring per-channel min and max of ``x`` into ``mn``, ``mx``.

    ``x`` is a contiguous ``[pre, C, post]`` block of format ``fmt``; ``mn`` and
    ``mx`` are writable compute-type arrays of length ``C``, updated in place
    (start them at +inf and -inf). -0.0 counts as smaller than +0.0.
    """
    cdef _Buffers b = _Buffers()
    cdef const char *xp
    cdef char *mnp
    cdef char *mxp
    cdef int rc
    _check_fmt(fmt)
    if pre < 0 or C < 0 or post < 0:
        raise ValueError("qdq kernel: negative extent")
    xp = <const char *>b.get(x, False, pre * C * post * _isz(fmt), "x", _isz(fmt)).buf
    mnp = <char *>b.get(mn, True, C * _csz(fmt), "mn", _csz(fmt)).buf
    mxp = <char *>b.get(mx, True, C * _csz(fmt), "mx", _csz(fmt)).buf
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        rc = _reduce(fmt, xp, pre, C, post, mnp, mxp, max(nthreads, 1))
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()


# ---------------------------------------------------------------------------
# Quantization parameters (SPEC section 2, step 3), in T arithmetic
# ---------------------------------------------------------------------------

ctypedef fused real:
    float
    double


cdef inline real _rnd(real v, int fmt) noexcept nogil:
    if real is float:
        return qdq_rnd_float(v, fmt)
    else:
        return v


cdef inline real _tmax(int fmt, real dummy) noexcept nogil:
    if real is double:
        return DBL_MAX
    elif fmt == QDQ_F16:
        return 65504.0
    elif fmt == QDQ_BF16:
        return 3.3895313892515355e38
    else:
        return FLT_MAX


cdef void _params(int fmt, Py_ssize_t C, const real *mn, const real *mx,
                  int64_t qmin, int64_t qmax, real *scale, real *inv,
                  real *lo, real *hi) noexcept nogil:
    cdef real qminT = _rnd(<real>qmin, fmt), qmaxT = _rnd(<real>qmax, fmt)
    cdef real big = _tmax(fmt, qminT)
    cdef real a, b, s_min, s_max
    cdef Py_ssize_t c
    for c in range(C):
        a = mn[c]
        b = mx[c]
        s_min = _rnd(qminT / a, fmt) if _rnd(qminT * a, fmt) > 0 else big
        s_max = _rnd(qmaxT / b, fmt) if _rnd(qmaxT * b, fmt) > 0 else big
        if s_min < s_max:
            scale[c] = s_min
            inv[c] = _rnd(a / qminT, fmt)
            lo[c] = a
            hi[c] = _rnd(qmaxT * inv[c], fmt)
        else:
            scale[c] = s_max
            inv[c] = _rnd(b / qmaxT, fmt)
            lo[c] = _rnd(qminT * inv[c], fmt)
            hi[c] = b


def params(mn, mx, scale, inv, lo, hi, int fmt, int64_t qmin, int64_t qmax):
    """Per-channel scale, inverse scale and adjusted range in T arithmetic.

    ``mn`` and ``mx`` hold the range of each channel (values of T in the
    compute type); the four outputs are written, all of length ``len(mn)``.
    """
    cdef _Buffers b = _Buffers()
    cdef void *p[6]
    cdef Py_ssize_t csz, C
    _check_fmt(fmt)
    csz = _csz(fmt)
    C = len(mn)
    p[0] = b.get(mn, False, C * csz, "mn", csz).buf
    p[1] = b.get(mx, False, C * csz, "mx", csz).buf
    p[2] = b.get(scale, True, C * csz, "scale", csz).buf
    p[3] = b.get(inv, True, C * csz, "inv", csz).buf
    p[4] = b.get(lo, True, C * csz, "lo", csz).buf
    p[5] = b.get(hi, True, C * csz, "hi", csz).buf
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        if fmt == QDQ_F64:
            _params[double](fmt, C, <double *>p[0], <double *>p[1], qmin, qmax,
                            <double *>p[2], <double *>p[3], <double *>p[4], <double *>p[5])
        else:
            _params[float](fmt, C, <float *>p[0], <float *>p[1], qmin, qmax,
                           <float *>p[2], <float *>p[3], <float *>p[4], <float *>p[5])
        qdq_fpenv_leave(env)


# ---------------------------------------------------------------------------
# The transform
# ---------------------------------------------------------------------------

cdef enum:
    OP_APPLY = 0
    OP_QUANTIZE = 1
    OP_DEQUANTIZE = 2
    OP_GRAD = 3


cdef struct Job:
    # One elementwise operation over a C-ordered [pre, C, post] block.
    int op, fmt, itype, mode
    int stream          # OP_APPLY: non-temporal stores (output larger than the cache)
    const char *x       # input (codes for OP_DEQUANTIZE, gradients for OP_GRAD)
    const char *x2      # OP_GRAD: the forward input
    char *out
    Py_ssize_t xsz, osz  # bytes per element of x (and x2) and of out
    Py_ssize_t C, post
    const char *s       # per-channel parameters in the compute type, C each
    const char *inv
    const char *lo
    const char *hi


cdef void _job_call(const Job *j, Py_ssize_t i, Py_ssize_t n, Py_ssize_t c, bint lanes,
                    double *stats) noexcept nogil:
    """The operation on elements [i, i + n) with channel c's parameters (or, with
    lanes, the parameters of channels c, c + 1, ... one per element)."""
    cdef Py_ssize_t csz = _csz(j.fmt)
    cdef const char *s = j.s + c * csz
    cdef const char *inv = j.inv + c * csz
    cdef const char *lo = j.lo + c * csz
    cdef const char *hi = j.hi + c * csz
    if j.op == OP_APPLY:
        if lanes:
            qdq_apply_lanes(j.fmt, j.x + i * j.xsz, j.out + i * j.osz, n, s, inv, lo, hi, j.mode)
        elif j.fmt == QDQ_F64:
            qdq_apply_nt(j.fmt, j.x + i * j.xsz, j.out + i * j.osz, n, (<const double *>s)[0],
                         (<const double *>inv)[0], (<const double *>lo)[0],
                         (<const double *>hi)[0], j.mode, j.stream)
        else:
            qdq_apply_nt(j.fmt, j.x + i * j.xsz, j.out + i * j.osz, n, (<const float *>s)[0],
                         (<const float *>inv)[0], (<const float *>lo)[0],
                         (<const float *>hi)[0], j.mode, j.stream)
    elif j.op == OP_QUANTIZE:
        qdq_quantize(j.fmt, j.itype, j.x + i * j.xsz, j.out + i * j.osz, n, s, lo, hi, lanes,
                     j.mode, stats)
    elif j.op == OP_DEQUANTIZE:
        qdq_dequantize(j.fmt, j.itype, j.x + i * j.xsz, j.out + i * j.osz, n, inv, lanes)
    else:
        qdq_gradient(j.fmt, j.x + i * j.xsz, j.x2 + i * j.xsz, j.out + i * j.osz, n, lo, hi,
                     lanes)


cdef void _job_span(const Job *j, Py_ssize_t start, Py_ssize_t end,
                    double *stats) noexcept nogil:
    """Elements [start, end) of the block: runs along a channel (one parameter set
    each) or, with the channel axis last, rows of channels (lanes)."""
    cdef Py_ssize_t i = start, seg, run, c
    if j.post == 1 and j.C > 1:
        if j.op == OP_APPLY:
            # a partial row, whole rows (in tiles of channels), a partial row
            if i % j.C != 0:
                c = i % j.C
                seg = min(end - i, j.C - c)
                _job_call(j, i, seg, c, True, stats)
                i += seg
            run = end // j.C - i // j.C
            if run > 0 and i < end:
                qdq_apply_cols(j.fmt, j.x + i * j.xsz, j.out + i * j.osz, j.C, run, j.C,
                               j.s, j.inv, j.lo, j.hi, j.mode, j.stream)
                i += run * j.C
            if i < end:
                _job_call(j, i, end - i, 0, True, stats)
            return
        while i < end:
            c = i % j.C
            seg = min(end - i, j.C - c)
            _job_call(j, i, seg, c, True, stats)
            i += seg
        return
    while i < end:
        run = i // j.post
        c = run % j.C
        seg = min(end - i, (run + 1) * j.post - i)
        _job_call(j, i, seg, c, False, stats)
        i += seg


cdef void _expand(int fmt, char *dst, const char *src, Py_ssize_t C,
                  Py_ssize_t post) noexcept nogil:
    """dst[c * post + q] = src[c]."""
    cdef Py_ssize_t c, q
    if fmt == QDQ_F64:
        for c in range(C):
            for q in range(post):
                (<double *>dst)[c * post + q] = (<const double *>src)[c]
    else:
        for c in range(C):
            for q in range(post):
                (<float *>dst)[c * post + q] = (<const float *>src)[c]


cdef inline void _merge_stats(double *a, const double *b) noexcept nogil:
    if b[0] < a[0]:
        a[0] = b[0]
    if b[1] > a[1]:
        a[1] = b[1]
    if b[2] != 0:
        a[2] = 1


cdef struct JobCtx:
    # One job split into pieces (qdq_parallel); per worker, partial code statistics.
    Job *j
    Py_ssize_t n, k, rp, pre
    double *part


cdef void _job_piece_rows(void *p, size_t t, int w) noexcept nogil:
    """The op on rows [t * rp, (t + 1) * rp) of a block whose channel axis is last."""
    cdef JobCtx *c = <JobCtx *>p
    cdef Job *j = c.j
    cdef Py_ssize_t r0 = <Py_ssize_t>t * c.rp
    qdq_apply_cols(j.fmt, j.x + r0 * j.C * j.xsz, j.out + r0 * j.C * j.osz, j.C,
                   min(c.rp, c.pre - r0), j.C, j.s, j.inv, j.lo, j.hi, j.mode, j.stream)


cdef void _job_piece_span(void *p, size_t t, int w) noexcept nogil:
    """Piece t of k of the elements, the statistics into worker w's."""
    cdef JobCtx *c = <JobCtx *>p
    _job_span(c.j, _split(c.n, c.k, t), _split(c.n, c.k, t + 1), c.part + 3 * w)


cdef int _run_job(Job *j, Py_ssize_t pre, int nthreads, double *stats) noexcept nogil:
    """Run a job over its whole [pre, C, post] block. Returns -1 on no memory."""
    cdef Py_ssize_t n = pre * j.C * j.post, csz = _csz(j.fmt), Ce, t
    cdef int nt, rc
    cdef char *e
    cdef double *part
    cdef Job je
    cdef JobCtx c
    if n == 0:
        return 0
    j.stream = _beyond_cache(n * j.osz)
    if 1 < j.post < EXPAND_POST and j.C > 1 and j.C * j.post <= EXPAND_LIMIT:
        je = j[0]
        Ce = j.C * j.post
        e = <char *>malloc(4 * Ce * csz)
        if e == NULL:
            return -1
        _expand(j.fmt, e, j.s, j.C, j.post)
        _expand(j.fmt, e + Ce * csz, j.inv, j.C, j.post)
        _expand(j.fmt, e + 2 * Ce * csz, j.lo, j.C, j.post)
        _expand(j.fmt, e + 3 * Ce * csz, j.hi, j.C, j.post)
        je.C, je.post = Ce, 1
        je.s, je.inv, je.lo, je.hi = e, e + Ce * csz, e + 2 * Ce * csz, e + 3 * Ce * csz
        rc = _run_job(&je, pre, nthreads, stats)
        free(e)
        return rc
    nt = _threads(n * max(j.xsz, j.osz), APPLY_THREAD_BYTES, nthreads)
    if nt == 1:
        _job_span(j, 0, n, stats)
        return 0
    c.j, c.n, c.pre = j, n, pre
    if j.op == OP_APPLY and j.post == 1 and j.C > 1:
        # the channel axis last: pieces of whole rows (see _reduce)
        c.rp = _row_piece(pre, j.C * max(j.xsz, j.osz), nt)
        c.k = (pre + c.rp - 1) // c.rp
        qdq_parallel(c.k, nt, _job_piece_rows, &c)
        return 0
    part = <double *>malloc(3 * nt * sizeof(double))
    if part == NULL:
        return -1
    for t in range(nt):
        part[3 * t] = INFINITY
        part[3 * t + 1] = -INFINITY
        part[3 * t + 2] = 0
    c.part = part
    c.k = _chunks(n * max(j.xsz, j.osz), nt)
    qdq_parallel(c.k, nt, _job_piece_span, &c)
    for t in range(nt):
        _merge_stats(stats, part + 3 * t)
    free(part)
    return 0


cdef int _transform(int fmt, const char *x, char *o, Py_ssize_t pre, Py_ssize_t C,
                    Py_ssize_t post, const char *s, const char *inv, const char *lo,
                    const char *hi, int mode, int nthreads) noexcept nogil:
    """Apply the op to a [pre, C, post] block. Returns -1 on no memory."""
    cdef Job j
    cdef double stats[3]
    j.op, j.fmt, j.itype, j.mode = OP_APPLY, fmt, 0, mode
    j.x, j.x2, j.out = x, NULL, o
    j.xsz = j.osz = _isz(fmt)
    j.C, j.post = C, post
    j.s, j.inv, j.lo, j.hi = s, inv, lo, hi
    return _run_job(&j, pre, nthreads, stats)


APPLY = OP_APPLY
QUANTIZE = OP_QUANTIZE
DEQUANTIZE = OP_DEQUANTIZE
GRAD = OP_GRAD
#: The integer code types, in the order of the kernels' codes: int8, uint8, ..., uint64.
INT_TYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")


def run(int op, x, x2, out, int fmt, int itype, Py_ssize_t pre, Py_ssize_t C,
        Py_ssize_t post, scale, inv, lo, hi, int mode=0, int nthreads=1):
    """An elementwise operation over a ``[pre, C, post]`` block.

    ``op`` is ``APPLY`` (the op: ``x`` -> ``out``, format ``fmt``), ``QUANTIZE``
    (``x`` of format ``fmt`` -> integer codes of type
    ``INT_TYPES[itype]`` in ``out``), ``DEQUANTIZE`` (codes in ``x`` -> values in
    ``out``) or ``GRAD`` (gradients ``x`` and forward input ``x2`` -> ``out``).
    The four parameter arrays (compute type, length ``C``) must all be given;
    each operation reads the ones it needs. Returns ``(min, max, nan)``: for
    quantize, when some code is NaN or does not fit the integer type, the
    exact range and NaN flag of the codes of the blocks where that happened;
    otherwise (and for the other operations) ``(+inf, -inf, False)``.
    """
    cdef _Buffers b = _Buffers()
    cdef Py_ssize_t n, csz
    cdef int rc
    cdef Job j
    cdef double stats[3]
    _check_fmt(fmt)
    if op not in (OP_APPLY, OP_QUANTIZE, OP_DEQUANTIZE, OP_GRAD):
        raise ValueError(f"qdq kernel: unknown operation {op}")
    if itype < QDQ_I8 or itype > QDQ_U64:
        raise ValueError(f"qdq kernel: unknown integer type {itype}")
    if pre < 0 or C < 0 or post < 0:
        raise ValueError("qdq kernel: negative extent")
    n = pre * C * post
    csz = _csz(fmt)
    j.op, j.fmt, j.itype, j.mode = op, fmt, itype, mode
    j.xsz = <Py_ssize_t>qdq_int_size(itype) if op == OP_DEQUANTIZE else _isz(fmt)
    j.osz = <Py_ssize_t>qdq_int_size(itype) if op == OP_QUANTIZE else _isz(fmt)
    j.C, j.post = C, post
    stats[0], stats[1], stats[2] = INFINITY, -INFINITY, 0
    j.x = <const char *>b.get(x, False, n * j.xsz, "x", j.xsz).buf
    j.out = <char *>b.get(out, True, n * j.osz, "out", j.osz).buf
    j.s = <const char *>b.get(scale, False, C * csz, "scale", csz).buf
    j.inv = <const char *>b.get(inv, False, C * csz, "inv", csz).buf
    j.lo = <const char *>b.get(lo, False, C * csz, "lo", csz).buf
    j.hi = <const char *>b.get(hi, False, C * csz, "hi", csz).buf
    j.x2 = NULL
    if op == OP_GRAD:
        j.x2 = <const char *>b.get(x2, False, n * j.xsz, "x2", j.xsz).buf
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        rc = _run_job(&j, pre, max(nthreads, 1), stats)
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()
    return stats[0], stats[1], stats[2] != 0


def qdq_tensor(x, out, int fmt, bint range_given, double mn, double mx,
               int64_t qmin, int64_t qmax, int mode, int nthreads=1):
    """The per-tensor op in one call: range (unless given), parameters, transform.

    ``mn`` and ``mx`` are the given range (values of T) when ``range_given``.
    Returns ``(min, max, scale, inv, lo, hi)`` as Python floats, ``min`` and
    ``max`` being the raw reduction (+inf, -inf when nothing was seen).
    """
    cdef _Buffers b = _Buffers()
    cdef Py_buffer *xb
    cdef const char *xp
    cdef char *outp
    cdef Py_ssize_t n, isz, k
    cdef float f[6]
    cdef double d[6]
    cdef int rc = 0
    _check_fmt(fmt)
    isz = _isz(fmt)
    xb = b.get(x, False, 0, "x", isz)
    xp = <const char *>xb.buf
    outp = <char *>b.get(out, True, xb.len, "out", isz).buf
    n = xb.len // isz
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        if fmt == QDQ_F64:
            d[0] = mn if range_given else INFINITY
            d[1] = mx if range_given else -INFINITY
            if not range_given:
                rc = _reduce(fmt, xp, 1, 1, n, <char *>&d[0], <char *>&d[1], nthreads)
            _params[double](fmt, 1, &d[0], &d[1], qmin, qmax, &d[2], &d[3], &d[4], &d[5])
            if rc == 0:
                rc = _transform(fmt, xp, outp, 1, 1, n, <char *>&d[2], <char *>&d[3],
                                <char *>&d[4], <char *>&d[5], mode, nthreads)
        else:
            f[0] = <float>mn if range_given else INFINITY
            f[1] = <float>mx if range_given else -INFINITY
            if not range_given:
                rc = _reduce(fmt, xp, 1, 1, n, <char *>&f[0], <char *>&f[1], nthreads)
            _params[float](fmt, 1, &f[0], &f[1], qmin, qmax, &f[2], &f[3], &f[4], &f[5])
            if rc == 0:
                rc = _transform(fmt, xp, outp, 1, 1, n, <char *>&f[2], <char *>&f[3],
                                <char *>&f[4], <char *>&f[5], mode, nthreads)
            for k in range(6):
                d[k] = f[k]
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()
    return (d[0], d[1], d[2], d[3], d[4], d[5])


def qdq_channels(x, out, int fmt, Py_ssize_t pre, Py_ssize_t C, Py_ssize_t post, lo, hi,
                 int64_t qmin, int64_t qmax, int mode, int nthreads=1, params=None):
    """The per-channel op in one call on a ``[pre, C, post]`` block.

    ``lo`` and ``hi`` are the given per-channel range (compute-type arrays of
    length ``C``), or None to reduce the range from the data. ``params``, when
    given, is a writable compute-type array of ``4 * C`` values (a ``(4, C)``
    array) that receives the parameter rows: scale, inverse scale, adjusted min
    and max per channel. Returns whether any channel's minimum is negative.
    """
    cdef _Buffers b = _Buffers()
    cdef Py_ssize_t n, isz, csz, c
    cdef int rc = 0
    cdef bint given = lo is not None, negative = False
    cdef const char *xp
    cdef char *outp
    cdef const void *lop = NULL
    cdef const void *hip = NULL
    cdef char *pp = NULL
    cdef char *work
    _check_fmt(fmt)
    if pre < 0 or C < 0 or post < 0:
        raise ValueError("qdq kernel: negative extent")
    if given and hi is None:
        raise ValueError("qdq kernel: lo without hi")
    n = pre * C * post
    isz = _isz(fmt)
    csz = _csz(fmt)
    xp = <const char *>b.get(x, False, n * isz, "x", isz).buf
    outp = <char *>b.get(out, True, n * isz, "out", isz).buf
    if given:
        lop = b.get(lo, False, C * csz, "lo", csz).buf
        hip = b.get(hi, False, C * csz, "hi", csz).buf
    if params is not None:
        pp = <char *>b.get(params, True, 4 * C * csz, "params", csz).buf
    # min, max, then scale, inv, lo, hi: C compute-type values each
    work = b.scratch(6 * max(C, 1) * csz)
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        if given:
            memcpy(work, lop, C * csz)
            memcpy(work + C * csz, hip, C * csz)
        else:
            _fill(fmt, work, C, INFINITY)
            _fill(fmt, work + C * csz, C, -INFINITY)
            rc = _reduce(fmt, xp, pre, C, post, work, work + C * csz, nthreads)
        for c in range(C):
            if (fmt == QDQ_F64 and (<double *>work)[c] < 0) or \
                    (fmt != QDQ_F64 and (<float *>work)[c] < 0):
                negative = True
        if fmt == QDQ_F64:
            _params[double](fmt, C, <double *>work, <double *>(work + C * csz), qmin, qmax,
                            <double *>(work + 2 * C * csz), <double *>(work + 3 * C * csz),
                            <double *>(work + 4 * C * csz), <double *>(work + 5 * C * csz))
        else:
            _params[float](fmt, C, <float *>work, <float *>(work + C * csz), qmin, qmax,
                           <float *>(work + 2 * C * csz), <float *>(work + 3 * C * csz),
                           <float *>(work + 4 * C * csz), <float *>(work + 5 * C * csz))
        if pp != NULL:
            memcpy(pp, work + 2 * C * csz, 4 * C * csz)
        if rc == 0:
            rc = _transform(fmt, xp, outp, pre, C, post, work + 2 * C * csz, work + 3 * C * csz,
                            work + 4 * C * csz, work + 5 * C * csz, mode, max(nthreads, 1))
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()
    return negative


cdef int _row_op(int fmt, const char *x, char *o, Py_ssize_t length, bint given,
                 const char *lo, const char *hi, int64_t qmin, int64_t qmax,
                 int mode, char *prm, Py_ssize_t pstride) noexcept nogil:
    """The op on one row as one channel: range (unless given), parameters, transform.

    ``prm`` (or NULL) receives the row's parameters, ``pstride`` values apart.
    Returns 1 when the row's minimum is negative, else 0.
    """
    cdef float f[6]
    cdef double d[6]
    cdef int k
    if fmt == QDQ_F64:
        if given:
            d[0] = (<const double *>lo)[0]
            d[1] = (<const double *>hi)[0]
        else:
            d[0] = INFINITY
            d[1] = -INFINITY
            qdq_minmax(fmt, x, length, &d[0], &d[1], 0)
        _params[double](fmt, 1, &d[0], &d[1], qmin, qmax, &d[2], &d[3], &d[4], &d[5])
        qdq_apply(fmt, x, o, length, d[2], d[3], d[4], d[5], mode)
        if prm != NULL:
            for k in range(4):
                (<double *>prm)[k * pstride] = d[2 + k]
        return 1 if d[0] < 0 else 0
    if given:
        f[0] = (<const float *>lo)[0]
        f[1] = (<const float *>hi)[0]
    else:
        f[0] = INFINITY
        f[1] = -INFINITY
        qdq_minmax(fmt, x, length, &f[0], &f[1], 0)
    _params[float](fmt, 1, &f[0], &f[1], qmin, qmax, &f[2], &f[3], &f[4], &f[5])
    qdq_apply(fmt, x, o, length, f[2], f[3], f[4], f[5], mode)
    if prm != NULL:
        for k in range(4):
            (<float *>prm)[k * pstride] = f[2 + k]
    return 1 if f[0] < 0 else 0


cdef int _rows_span(int fmt, const char *x, char *o, Py_ssize_t r0, Py_ssize_t r1,
                    Py_ssize_t length, bint given, const char *lo, const char *hi,
                    int64_t qmin, int64_t qmax, double qminT, double qmaxT, double big,
                    int mode, bint grouped, char *prm, Py_ssize_t pstride) noexcept nogil:
    """The op on rows [r0, r1): a group kernel call, or row by row (long rows,
    or a build without the group kernel); ``prm`` (or NULL): the parameters of
    row 0, the rows' parameters out. Returns 1 when a row's minimum is
    negative, else 0."""
    cdef Py_ssize_t isz = _isz(fmt), csz = _csz(fmt), r
    cdef int neg = -1
    cdef const char *glo = NULL
    cdef const char *ghi = NULL
    if r1 <= r0:
        return 0
    if grouped:
        if given:
            glo = lo + r0 * csz
            ghi = hi + r0 * csz
        neg = qdq_rows_op(fmt, x + r0 * length * isz, o + r0 * length * isz, r1 - r0,
                          length, glo, ghi, qminT, qmaxT, big, mode,
                          prm + r0 * csz if prm != NULL else NULL, pstride)
        if neg >= 0:
            return neg
    neg = 0
    for r in range(r0, r1):
        neg |= _row_op(fmt, x + r * length * isz, o + r * length * isz, length, given,
                       lo + r * csz if given else NULL, hi + r * csz if given else NULL,
                       qmin, qmax, mode, prm + r * csz if prm != NULL else NULL, pstride)
    return neg


cdef struct RowsCtx:
    # The op on rows split into pieces (qdq_parallel); per worker, "a row was negative".
    int fmt, mode
    const char *x
    char *out
    Py_ssize_t rows, length, k
    bint given, grouped
    const char *lo
    const char *hi
    int64_t qmin, qmax
    double qminT, qmaxT, big
    int *negative
    char *prm


cdef void _rows_piece(void *p, size_t t, int w) noexcept nogil:
    cdef RowsCtx *c = <RowsCtx *>p
    c.negative[w] |= _rows_span(c.fmt, c.x, c.out, _split(c.rows, c.k, t),
                                _split(c.rows, c.k, t + 1), c.length, c.given, c.lo, c.hi,
                                c.qmin, c.qmax, c.qminT, c.qmaxT, c.big, c.mode, c.grouped,
                                c.prm, c.rows)


def qdq_rows(x, out, int fmt, Py_ssize_t rows, Py_ssize_t length, lo, hi, int64_t qmin,
             int64_t qmax, int mode, int nthreads=1, params=None):
    """The op on each row of a contiguous ``[rows, length]`` block as its own channel.

    Block-wise quantization: every row is one block, reduced, given its
    parameters and transformed while it is in cache (one read, one write).
    Short rows go in groups of one vector's lanes, whose ranges and parameters
    are computed together, a row in each lane. ``lo`` and ``hi`` are the given
    per-row range (compute-type arrays of length ``rows``), or None for each
    row's own range. ``params``, when given, is a writable compute-type array of
    ``4 * rows`` values (a ``(4, rows)`` array) that receives the rows' parameter
    rows: scale, inverse scale, adjusted min and max. Returns whether any row's
    minimum is negative.
    """
    cdef _Buffers b = _Buffers()
    cdef Py_ssize_t n, isz, csz, t
    cdef bint given = lo is not None, grouped, failed = False
    cdef int negative = 0, nt
    cdef RowsCtx c
    cdef double qminT, qmaxT, big
    cdef const char *xp
    cdef char *outp
    cdef const char *lop = NULL
    cdef const char *hip = NULL
    cdef char *prm = NULL
    _check_fmt(fmt)
    if rows < 0 or length < 1:
        raise ValueError("qdq kernel: bad row extents")
    if given and hi is None:
        raise ValueError("qdq kernel: lo without hi")
    n = rows * length
    isz = _isz(fmt)
    csz = _csz(fmt)
    xp = <const char *>b.get(x, False, n * isz, "x", isz).buf
    outp = <char *>b.get(out, True, n * isz, "out", isz).buf
    if given:
        lop = <const char *>b.get(lo, False, rows * csz, "lo", csz).buf
        hip = <const char *>b.get(hi, False, rows * csz, "hi", csz).buf
    if params is not None:
        prm = <char *>b.get(params, True, 4 * rows * csz, "params", csz).buf
    # the integer bounds and the largest finite value in T, as _params has them
    if fmt == QDQ_F64:
        qminT, qmaxT, big = <double>qmin, <double>qmax, DBL_MAX
    else:
        qminT = _rnd(<float>qmin, fmt)
        qmaxT = _rnd(<float>qmax, fmt)
        big = _tmax(fmt, <float>0)
    grouped = length * isz <= ROWS_GROUP_BYTES
    nt = _threads(n * isz, 1 << 18, nthreads)
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        if nt <= 1:
            negative = _rows_span(fmt, xp, outp, 0, rows, length, given, lop, hip, qmin, qmax,
                                  qminT, qmaxT, big, mode, grouped, prm, rows)
        else:
            # pieces of about CHUNK_BYTES, whole groups of rows (64-row aligned)
            c.fmt, c.x, c.out, c.rows, c.length, c.given = fmt, xp, outp, rows, length, given
            c.lo, c.hi, c.qmin, c.qmax, c.qminT, c.qmaxT = lop, hip, qmin, qmax, qminT, qmaxT
            c.big, c.mode, c.grouped, c.k = big, mode, grouped, _chunks(n * isz, nt)
            c.prm = prm
            c.negative = <int *>calloc(nt, sizeof(int))
            if c.negative == NULL:
                failed = True
            else:
                qdq_parallel(c.k, nt, _rows_piece, &c)
                for t in range(nt):
                    negative |= c.negative[t]
                free(c.negative)
        qdq_fpenv_leave(env)
    if failed:
        raise MemoryError()
    return negative != 0


def range_tensor(x, int fmt, int nthreads=1):
    """The raw NaN-ignoring (min, max) of a whole contiguous array, as floats."""
    cdef _Buffers b = _Buffers()
    cdef Py_buffer *xb
    cdef const char *xp
    cdef Py_ssize_t n
    cdef float f[2]
    cdef double d[2]
    cdef int rc
    _check_fmt(fmt)
    xb = b.get(x, False, 0, "x", _isz(fmt))
    xp = <const char *>xb.buf
    n = xb.len // _isz(fmt)
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        if fmt == QDQ_F64:
            d[0] = INFINITY
            d[1] = -INFINITY
            rc = _reduce(fmt, xp, 1, 1, n, <char *>d, <char *>&d[1], max(nthreads, 1))
        else:
            f[0] = INFINITY
            f[1] = -INFINITY
            rc = _reduce(fmt, xp, 1, 1, n, <char *>f, <char *>&f[1], max(nthreads, 1))
            d[0] = f[0]
            d[1] = f[1]
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()
    return d[0], d[1]


def round_value(int fmt, double v):
    """A float rounded once (to nearest even) to the format, as a float."""
    _check_fmt(fmt)
    return qdq_round_value(fmt, v)


# ---------------------------------------------------------------------------
# Error statistics
# ---------------------------------------------------------------------------

cdef extern from "csrc/error_stats.h" nogil:
    ctypedef struct qdq_es_t:
        double signal
        double noise
        double max_abs
        int64_t nan
        int64_t clipped
        int64_t nonfinite_out
        int64_t finite_pairs
    int qdq_error_stats(int fmt, const void *x, const void *y, size_t n, double lo, double hi,
                        int nthreads, qdq_es_t *total)


def error_stats(x, y, int fmt, double lo=-INFINITY, double hi=INFINITY, int nthreads=1):
    """The error of the op's output ``y`` against its input ``x``, in one pass.

    ``x`` and ``y`` hold the same number of elements of format ``fmt``;
    ``lo``, ``hi`` are clamp bounds (compute-type values) for the clipped
    count. Returns ``(nan, clipped, nonfinite_out, finite_pairs, max_abs,
    signal, noise)``: NaN inputs, inputs outside the bounds, finite inputs
    with a non-finite output, pairs both finite, and over those the largest
    ``|y - x|`` and the float64 sums of ``x * x`` and ``(y - x) ** 2``. The
    sums' order depends on the positions alone (not on the instruction set
    or ``nthreads``).
    """
    cdef _Buffers b = _Buffers()
    cdef Py_buffer *xb
    cdef Py_buffer *yb
    cdef Py_ssize_t isz, n
    cdef qdq_es_t t
    cdef int rc
    _check_fmt(fmt)
    isz = _isz(fmt)
    xb = b.get(x, False, 0, "x", isz)
    n = xb.len // isz
    yb = b.get(y, False, n * isz, "y", isz)
    if yb.len != xb.len:
        raise ValueError(f"qdq kernel: y holds {yb.len} bytes, x {xb.len}")
    t.signal = t.noise = t.max_abs = 0.0
    t.nan = t.clipped = t.nonfinite_out = t.finite_pairs = 0
    cdef qdq_fpenv env
    with nogil:
        env = qdq_fpenv_enter()
        rc = qdq_error_stats(fmt, xb.buf, yb.buf, n, lo, hi, max(nthreads, 1), &t)
        qdq_fpenv_leave(env)
    if rc != 0:
        raise MemoryError()
    return t.nan, t.clipped, t.nonfinite_out, t.finite_pairs, t.max_abs, t.signal, t.noise
