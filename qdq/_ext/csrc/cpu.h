/*
 * qdq's one CPU-feature probe and its one scale of instruction-set levels,
 * which every compiled kernel obeys:
 *
 *   0  QDQ_ISA_BASELINE     portable code: 16-byte vectors (SSE2 on x86-64,
 *                           NEON on aarch64), or scalar loops
 *   1  QDQ_ISA_AVX2         AVX2 + F16C
 *   2  QDQ_ISA_AVX512       level 1 + AVX-512 F, BW and VL (and POPCNT)
 *   3  QDQ_ISA_AVX512BF16   level 2 + AVX512-BF16
 *
 * A kernel has copies for some of the levels and runs the highest copy at or
 * below the level in use (qdq_kernel_isa in dispatch.h and hist.h names
 * them). Every level gives the same bits. The level in use starts at the best
 * the CPU and the compiler support, and qdq_set_isa lowers it (tests and
 * benchmarks run the lower levels on a CPU that has more).
 *
 * Each compiled module includes this header, so each has a copy of these
 * functions; the level itself is one int per process. The kernels module owns
 * it and hands its address to the others as a capsule (qdq_isa_share), so
 * qdq_set_isa in any module sets the level of all.
 *
 * Compilers: the probe is GCC/Clang's __builtin_cpu_supports (which also asks
 * the operating system whether it saves the AVX and AVX-512 registers). The
 * copies are compiled with function target attributes, never with -march, so
 * a build runs on any CPU of its platform.
 */
#ifndef QDQ_CPU_H
#define QDQ_CPU_H

enum {
    QDQ_ISA_BASELINE = 0,
    QDQ_ISA_AVX2 = 1,
    QDQ_ISA_AVX512 = 2,
    QDQ_ISA_AVX512BF16 = 3
};

/* x86-64 with GCC or Clang: the copies above the baseline exist. QDQ_NO_AVX2
 * (or QDQ_NO_SIMD) builds the baseline alone. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(QDQ_NO_AVX2) && !defined(QDQ_NO_SIMD)
#  define QDQ_CPU_X86 1
#  include <immintrin.h>
#else
#  define QDQ_CPU_X86 0
#endif

/* Compilers that know the AVX512-BF16 intrinsics (level 3). */
#if QDQ_CPU_X86 && !defined(QDQ_NO_AVX512BF16) && \
    ((defined(__clang__) && __clang_major__ >= 12) || \
     (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#  define QDQ_CPU_BF16 1
#else
#  define QDQ_CPU_BF16 0
#endif

/* The target attributes of the levels' copies. */
#define QDQ_TARGET_AVX2 __attribute__((target("avx2,f16c")))
#define QDQ_TARGET_AVX512 \
    __attribute__((target("avx2,f16c,popcnt,avx512f,avx512bw,avx512vl")))
/* Level-2 loops that use AVX-512F alone (the histogram's float32 and float64
 * passes): the compiler's code for them measured up to 1.3 x slower when
 * compiled with the level's whole set of features. */
#define QDQ_TARGET_AVX512F __attribute__((target("popcnt,avx512f")))
#define QDQ_TARGET_AVX512BF16 \
    __attribute__((target("avx2,f16c,popcnt,avx512f,avx512bw,avx512vl,avx512bf16")))

/* The level in use: -1 until first asked for (then the best available). */
static int qdq_isa_own = -1;
static int *qdq_isa_level = &qdq_isa_own;

/* The best level this CPU and this build support (probed once). */
static inline int qdq_isa_available(void)
{
    static int best = -1;
    int b = best;
    if (b < 0) {
        b = QDQ_ISA_BASELINE;
#if QDQ_CPU_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) {
            b = QDQ_ISA_AVX2;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("popcnt")) {
                b = QDQ_ISA_AVX512;
#  if QDQ_CPU_BF16
                if (__builtin_cpu_supports("avx512bf16")) b = QDQ_ISA_AVX512BF16;
#  endif
            }
        }
#endif
        best = b;
    }
    return b;
}

/* Use this level (-1, or one above the best: the best). Returns the level in use. */
static inline int qdq_set_isa(int level)
{
    int best = qdq_isa_available();
    *qdq_isa_level = (level < 0 || level > best) ? best : level;
    return *qdq_isa_level;
}

/* The level in use. */
static inline int qdq_get_isa(void)
{
    int level = *qdq_isa_level;
    return level >= 0 ? level : qdq_set_isa(-1);
}

/* Follow the level at this address (another module's qdq_isa_level) from now on. */
static inline void qdq_isa_share(int *level)
{
    if (level != NULL) qdq_isa_level = level;
}

/* Whether this is an AMD CPU (the rules below), found once. */
static inline int qdq_cpu_is_amd(void)
{
    static int amd = -1;
    int a = amd;
    if (a < 0) {
#if QDQ_CPU_X86
        __builtin_cpu_init();
        a = __builtin_cpu_is("amd") != 0;
#else
        a = 0;
#endif
        amd = a;
    }
    return a;
}

/* Whether the column kernels (format_kernels.h, and the AVX-512 bfloat16 one in
 * bf16_avx512.h) write their rows one after another, not
 * QDQ_APPLY_ROWS at once, when they stream to rows rs_bytes apart: on AMD, for rows a
 * multiple of 4 KiB apart. Non-temporal stores to four such rows in turn, 32 bytes at a
 * time, made the per-channel pass along the last axis of an 8192 x 8192 array 2.4-11 x the
 * per-tensor time on an AMD EPYC (Zen 3), and about 1 x row by row; rows at other
 * distances (8000 columns) and Intel's CPUs (a Xeon, 8192 columns: 0.97-1.00 x) run the
 * groups of four faster. qdq_stream_row_by_row_set(1) forces row by row for every
 * distance, (0) never, (-1) back to the CPU's rule: the tests take both paths so. */
static int qdq_stream_row_by_row_override = -1;

static inline void qdq_stream_row_by_row_set(int mode)
{
    qdq_stream_row_by_row_override = mode < 0 ? -1 : mode > 0;
}

static inline int qdq_stream_row_by_row(size_t rs_bytes)
{
    if (qdq_stream_row_by_row_override >= 0) return qdq_stream_row_by_row_override;
    return qdq_cpu_is_amd() && rs_bytes % 4096 == 0;
}

/* How far ahead the kernels that read a block beyond the last-level cache as several
 * streams side by side prefetch their input on AMD: the column kernels (the op and the
 * per-channel min/max pass in format_kernels.h, the AVX-512 bfloat16 op in bf16_avx512.h)
 * and the per-tensor min/max pass (four quarters at once). QDQ_AHEAD_BYTES over the
 * streams (one row 8 KiB ahead, each of four 2 KiB), into L2 (prefetcht2), which leaves L1
 * to what the loop keeps there: the parameters (or the min/max) of the columns, whose
 * arrays take 64-128 KiB for 8192 float32 columns, beyond the 32 KiB of L1; with them
 * coming through L2 beside the rows, the hardware's prefetch alone fell behind. On an AMD
 * EPYC (Zen 4), per channel along the last axis against per tensor, out=, levels 1-3, one
 * thread: 8192 x 8192 float32 1.70-1.79 -> 1.21-1.30 x, float16 1.25-1.37 -> 0.99-1.05 x,
 * float64 1.12-1.17 -> 0.83-0.87 x; 4096 x 11008 float32 1.42-1.52 -> 1.17-1.22 x
 * (benchmarks/results/bench_layouts_zen4_prefetch_l2.txt); per tensor, 8192 x 8192, one
 * thread: the float64 op 71 -> 60 ms, bfloat16 16.2 -> 14.6 ms (two threads unchanged).
 * Prefetching into L1 (prefetchnta 1 KiB ahead, the earlier rule), or 4 KiB ahead of a
 * row, was 1.5-2 x slower; in cache a prefetch only costs (7-12 % on the min/max pass of
 * (2304, 512)), so the callers pass whether the block is beyond it. Not measured on
 * Intel's CPUs, which do not use it. qdq_prefetch_set(1) forces it on every CPU, (0) off,
 * (-1) back to the CPU's rule. */
#ifndef QDQ_AHEAD_BYTES
#  define QDQ_AHEAD_BYTES 8192
#endif
static int qdq_prefetch_override = -1;

static inline void qdq_prefetch_set(int mode)
{
    qdq_prefetch_override = mode < 0 ? -1 : mode > 0;
}

/* The distance, in bytes, each of g rows read side by side prefetches ahead; 0: none. */
static inline size_t qdq_prefetch_ahead(size_t g)
{
    const int on = qdq_prefetch_override >= 0 ? qdq_prefetch_override : qdq_cpu_is_amd();
    return on ? QDQ_AHEAD_BYTES / g : 0;
}

/* Prefetch into L2 (see qdq_prefetch_ahead) the line ahead bytes past each of the g
 * streams that start at p, step bytes apart. */
static inline __attribute__((always_inline)) void qdq_prefetch_rows(const void *p, size_t step,
                                                                    size_t g, size_t ahead)
{
    size_t k;
    for (k = 0; k < g; k++) __builtin_prefetch((const char *)p + k * step + ahead, 0, 1);
}

/* The name of a level (what a copy of a kernel compiled for it needs). */
static inline const char *qdq_isa_name(int level)
{
    switch (level) {
    case QDQ_ISA_BASELINE: return "baseline";
    case QDQ_ISA_AVX2: return "AVX2+F16C";
    case QDQ_ISA_AVX512: return "AVX-512 F/BW/VL";
    default: return "AVX-512 F/BW/VL+BF16";
    }
}

#endif /* QDQ_CPU_H */
