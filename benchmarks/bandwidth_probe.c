/*
 * The memory bandwidth limit of this machine on all cores, for qdq's benchmark
 * (benchmarks/bench.py builds it with the system C compiler, -O2 -fopenmp, and
 * loads it with ctypes; the buffers are NumPy arrays). Three passes over n
 * float32 values, each thread taking one contiguous slice:
 *   probe_read          the NaN-ignoring max of x (a read pass, like qdq's range pass)
 *   probe_scale         o = x * s with ordinary stores (the CPU reads each output
 *                       line before writing it)
 *   probe_scale_stream  o = x * s with non-temporal stores where the target has
 *                       them (SSE2 on x86-64: 16-byte aligned stores, the unaligned
 *                       head and tail with ordinary ones, a store fence at the end
 *                       of each thread's slice)
 * probe_has_stream says whether probe_scale_stream streams (1) or is
 * probe_scale (0). Baseline instructions only: no -march, no AVX.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#define PROBE_SSE2 1
#else
#define PROBE_SSE2 0
#endif

int probe_has_stream(void) { return PROBE_SSE2; }

/* [begin, end) of thread t's slice of n among nt threads. */
static void slice(size_t n, int t, int nt, size_t *begin, size_t *end)
{
    size_t per = n / (size_t)nt, extra = n % (size_t)nt, ut = (size_t)t;
    *begin = ut * per + (ut < extra ? ut : extra);
    *end = *begin + per + (ut < extra ? 1 : 0);
}

static float read_slice(const float *x, size_t b, size_t e)
{
    size_t i = b;
    float m = -1.0f / 0.0f;
#if PROBE_SSE2
    __m128 m0 = _mm_set1_ps(m), m1 = m0, m2 = m0, m3 = m0;
    for (; i + 16 <= e; i += 16) {
        m0 = _mm_max_ps(_mm_loadu_ps(x + i), m0);      /* NaN in x keeps m */
        m1 = _mm_max_ps(_mm_loadu_ps(x + i + 4), m1);
        m2 = _mm_max_ps(_mm_loadu_ps(x + i + 8), m2);
        m3 = _mm_max_ps(_mm_loadu_ps(x + i + 12), m3);
    }
    {
        float t[4];
        int k;
        _mm_storeu_ps(t, _mm_max_ps(_mm_max_ps(m0, m1), _mm_max_ps(m2, m3)));
        for (k = 0; k < 4; k++) m = t[k] > m ? t[k] : m;
    }
#endif
    for (; i < e; i++) m = x[i] > m ? x[i] : m;
    return m;
}

float probe_read(const float *x, size_t n, int threads)
{
    float best = -1.0f / 0.0f;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        size_t b, e;
        float m;
        slice(n, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
        m = read_slice(x, b, e);
#pragma omp critical
        best = m > best ? m : best;
    }
#else
    (void)threads;
    best = read_slice(x, 0, n);
#endif
    return best;
}

static void scale_slice(const float *x, float *o, size_t b, size_t e, float s, int stream)
{
    size_t i = b;
#if PROBE_SSE2
    const __m128 vs = _mm_set1_ps(s);
    if (stream) {
        for (; i < e && ((uintptr_t)(o + i) & 15u) != 0; i++) o[i] = x[i] * s;
        for (; i + 16 <= e; i += 16) {
            _mm_stream_ps(o + i, _mm_mul_ps(_mm_loadu_ps(x + i), vs));
            _mm_stream_ps(o + i + 4, _mm_mul_ps(_mm_loadu_ps(x + i + 4), vs));
            _mm_stream_ps(o + i + 8, _mm_mul_ps(_mm_loadu_ps(x + i + 8), vs));
            _mm_stream_ps(o + i + 12, _mm_mul_ps(_mm_loadu_ps(x + i + 12), vs));
        }
        for (; i < e; i++) o[i] = x[i] * s;
        _mm_sfence();
        return;
    }
    for (; i + 16 <= e; i += 16) {
        _mm_storeu_ps(o + i, _mm_mul_ps(_mm_loadu_ps(x + i), vs));
        _mm_storeu_ps(o + i + 4, _mm_mul_ps(_mm_loadu_ps(x + i + 4), vs));
        _mm_storeu_ps(o + i + 8, _mm_mul_ps(_mm_loadu_ps(x + i + 8), vs));
        _mm_storeu_ps(o + i + 12, _mm_mul_ps(_mm_loadu_ps(x + i + 12), vs));
    }
#else
    (void)stream;
#endif
    for (; i < e; i++) o[i] = x[i] * s;
}

static void scale(const float *x, float *o, size_t n, float s, int threads, int stream)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
        size_t b, e;
        slice(n, omp_get_thread_num(), omp_get_num_threads(), &b, &e);
        scale_slice(x, o, b, e, s, stream);
    }
#else
    (void)threads;
    scale_slice(x, o, 0, n, s, stream);
#endif
}

void probe_scale(const float *x, float *o, size_t n, float s, int threads)
{
    scale(x, o, n, s, threads, 0);
}

void probe_scale_stream(const float *x, float *o, size_t n, float s, int threads)
{
    scale(x, o, n, s, threads, 1);
}
