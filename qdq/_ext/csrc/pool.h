/*
 * qdq's thread pool: qdq_parallel(k, nt, fn, ctx) runs fn(ctx, piece, worker) for every
 * piece < k on up to nt threads, the calling thread being worker 0, and returns when all
 * pieces are done. Used by every compiled kernel in place of OpenMP parallel regions.
 *
 * Why not OpenMP: a parallel region waits at its end for every thread of its team, even
 * one that never got a CPU. On a busy machine (another process on a core, or torch's own
 * OpenMP threads spinning in the same runtime), two threads then took far longer than one.
 * Here the caller works from the first piece on and the workers take pieces as they come
 * (an atomic counter, tagged with the job's number so a late worker can never take a piece
 * of a later job); the caller waits only for pieces a worker has taken and not finished.
 * A worker that wakes late finds nothing left and goes back to sleep. The calling thread
 * runs in the default floating-point environment its entry point set (fpenv.h); each
 * worker sets it for itself. Idle workers sleep on
 * a condition variable (a passive wait: they take no CPU from anyone). Which thread runs a
 * piece never changes the result: the kernels give every piece its own output, or merge
 * per-worker partial results that do not depend on the order (min/max) or are kept per
 * piece (sums, counts).
 *
 * One job at a time per pool (each compiled module has its pool): a call made while the
 * pool is busy with another thread's job runs its pieces on the calling thread alone.
 * After fork() the child starts with no workers (pthread_atfork). The pool exists in
 * builds with OpenMP (the switch for threads; omp_get_max_threads gives the default
 * count) on POSIX systems with GCC or Clang; elsewhere OpenMP's dynamic loop, or none.
 */
#ifndef QDQ_POOL_H
#define QDQ_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "fpenv.h"

typedef void (*qdq_piece_fn)(void *ctx, size_t piece, int worker);

#if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__unix__) || defined(__APPLE__)) && !defined(QDQ_NO_POOL)
#  define QDQ_HAVE_POOL 1
#else
#  define QDQ_HAVE_POOL 0
#endif

#if QDQ_HAVE_POOL
#include <pthread.h>
#include <stdlib.h>

#define QDQ_POOL_MAX 256       /* workers at most (the caller is one more) */
#define QDQ_POOL_SPIN 2000     /* polls of the counter before the caller sleeps */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    pthread_mutex_t busy;      /* held by the thread whose job runs */
    int started;               /* workers created */
    uint32_t gen;              /* the current job's number */
    /* the current job, read under mu */
    qdq_piece_fn fn;
    void *ctx;
    size_t k;
    int nt;
    uint64_t claim;            /* gen << 32 | next piece: atomic */
    size_t finished;           /* pieces finished: atomic */
    int waiting;               /* the caller sleeps on done */
} qdq_pool_t;

static qdq_pool_t qdq_pool = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
    PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL, NULL, 0, 0, 0, 0, 0
};
static int qdq_pool_forked_hook = 0;

/* Take the next piece of job gen (k pieces); 0 when there is none (or the job is over). */
static inline int qdq_pool_take(uint32_t gen, size_t k, size_t *piece)
{
    uint64_t v = __atomic_load_n(&qdq_pool.claim, __ATOMIC_ACQUIRE);
    for (;;) {
        const size_t next = (size_t)(v & 0xffffffffu);
        if ((uint32_t)(v >> 32) != gen || next >= k) return 0;
        if (__atomic_compare_exchange_n(&qdq_pool.claim, &v, v + 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            *piece = next;
            return 1;
        }
    }
}

static inline void qdq_pool_finish_one(size_t k)
{
    if (__atomic_add_fetch(&qdq_pool.finished, 1, __ATOMIC_ACQ_REL) == k) {
        pthread_mutex_lock(&qdq_pool.mu);
        if (qdq_pool.waiting) pthread_cond_signal(&qdq_pool.done);
        pthread_mutex_unlock(&qdq_pool.mu);
    }
}

static void *qdq_pool_worker(void *arg)
{
    const int me = (int)(intptr_t)arg;
    uint32_t seen = 0;
    pthread_mutex_lock(&qdq_pool.mu);
    seen = qdq_pool.gen;
    for (;;) {
        qdq_piece_fn fn;
        void *ctx;
        size_t k, piece;
        uint32_t gen;
        while (qdq_pool.gen == seen) pthread_cond_wait(&qdq_pool.work, &qdq_pool.mu);
        seen = gen = qdq_pool.gen;
        if (me >= qdq_pool.nt) continue;       /* not wanted for this job */
        fn = qdq_pool.fn;
        ctx = qdq_pool.ctx;
        k = qdq_pool.k;
        pthread_mutex_unlock(&qdq_pool.mu);
        {
            const qdq_fpenv env = qdq_fpenv_enter();
            while (qdq_pool_take(gen, k, &piece)) {
                fn(ctx, piece, me);
                qdq_pool_finish_one(k);
            }
            qdq_fpenv_leave(env);
        }
        pthread_mutex_lock(&qdq_pool.mu);
    }
    return NULL;
}

static void qdq_pool_after_fork(void)
{
    /* the child has none of the parent's threads */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cfresh = PTHREAD_COND_INITIALIZER;
    qdq_pool.mu = fresh;
    qdq_pool.busy = fresh;
    qdq_pool.work = cfresh;
    qdq_pool.done = cfresh;
    qdq_pool.started = 0;
    qdq_pool.waiting = 0;
}

/* Workers 1 .. want - 1 exist (as many as could be created). Called with busy held. */
static void qdq_pool_grow(int want)
{
    if (!qdq_pool_forked_hook) {
        qdq_pool_forked_hook = 1;
        pthread_atfork(NULL, NULL, qdq_pool_after_fork);
    }
    while (qdq_pool.started + 1 < want && qdq_pool.started < QDQ_POOL_MAX) {
        pthread_t t;
        pthread_attr_t attr;
        int rc;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&t, &attr, qdq_pool_worker,
                            (void *)(intptr_t)(qdq_pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        qdq_pool.started++;
    }
}

static void qdq_parallel(size_t k, int nt, qdq_piece_fn fn, void *ctx)
{
    size_t piece, t;
    uint32_t gen;
    int spins;
    if (nt > QDQ_POOL_MAX + 1) nt = QDQ_POOL_MAX + 1;
    if (nt <= 1 || k <= 1 || k > 0xffffffffu || pthread_mutex_trylock(&qdq_pool.busy) != 0) {
        for (t = 0; t < k; t++) fn(ctx, t, 0);
        return;
    }
    qdq_pool_grow(nt);
    if (nt > qdq_pool.started + 1) nt = qdq_pool.started + 1;
    pthread_mutex_lock(&qdq_pool.mu);
    gen = ++qdq_pool.gen;
    qdq_pool.fn = fn;
    qdq_pool.ctx = ctx;
    qdq_pool.k = k;
    qdq_pool.nt = nt;
    __atomic_store_n(&qdq_pool.finished, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&qdq_pool.claim, (uint64_t)gen << 32, __ATOMIC_RELEASE);
    if (nt > 1) pthread_cond_broadcast(&qdq_pool.work);
    pthread_mutex_unlock(&qdq_pool.mu);
    while (qdq_pool_take(gen, k, &piece)) {
        fn(ctx, piece, 0);
        qdq_pool_finish_one(k);
    }
    /* only pieces a worker took are left: poll a little, then sleep */
    for (spins = 0; __atomic_load_n(&qdq_pool.finished, __ATOMIC_ACQUIRE) < k; spins++) {
        if (spins < QDQ_POOL_SPIN) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        pthread_mutex_lock(&qdq_pool.mu);
        qdq_pool.waiting = 1;
        while (__atomic_load_n(&qdq_pool.finished, __ATOMIC_ACQUIRE) < k)
            pthread_cond_wait(&qdq_pool.done, &qdq_pool.mu);
        qdq_pool.waiting = 0;
        pthread_mutex_unlock(&qdq_pool.mu);
        break;
    }
    pthread_mutex_unlock(&qdq_pool.busy);
}

#else  /* no pool */

#ifdef _OPENMP
#  include <omp.h>
#endif

/* Every piece in the default floating-point environment (fpenv.h): OpenMP's threads may be
   shared with other libraries, whose environment comes back after each piece. */
static void qdq_parallel(size_t k, int nt, qdq_piece_fn fn, void *ctx)
{
#  ifdef _OPENMP
    long long t;
    if (nt > 1 && k > 1) {
#    pragma omp parallel for schedule(dynamic) num_threads(nt)
        for (t = 0; t < (long long)k; t++) {
            const qdq_fpenv e = qdq_fpenv_enter();
            fn(ctx, (size_t)t, omp_get_thread_num());
            qdq_fpenv_leave(e);
        }
        return;
    }
    for (t = 0; t < (long long)k; t++) fn(ctx, (size_t)t, 0);
#  else
    size_t t;
    (void)nt;
    for (t = 0; t < k; t++) fn(ctx, t, 0);
#  endif
}

#endif /* QDQ_HAVE_POOL */

#endif /* QDQ_POOL_H */
