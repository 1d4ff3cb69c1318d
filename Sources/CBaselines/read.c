/* The read-side baseline: liburcu's read lock, a flag load and a value load, in C. */
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>

#include "CBaselines.h"
#include "clock.h"
#include "readers.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct object {
    _Atomic int available;
    long value;
};

/* The writer's pacing, the same for every baseline: `writer_per_s` 0 is no writer (sleep
 * to the end), > 0 paced on an absolute schedule from `start`, < 0 unpaced. Returns
 * whether to write now; 0 once `end` has passed. */
static int writer_wait(uint64_t start, uint64_t end, uint64_t writes, double writer_per_s) {
    if (writer_per_s == 0) {
        while (now_ns() < end) sleep_until(end);
        return 0;
    }
    if (writer_per_s > 0) {
        uint64_t next = start + (writes + 1) * (uint64_t)(1e9 / writer_per_s);
        sleep_until(next < end ? next : end);
    }
    return now_ns() < end;
}

/* The cooperative runs' writer (`yield_every` > 0): SCHED_BATCH, set once the readers have
 * started so that only the calling thread has it, does not preempt a reader on wake-up;
 * back to SCHED_OTHER after the run. */
static void set_writer_policy(int yield_every, int policy) {
    struct sched_param param = { 0 };
    if (yield_every) sched_setscheduler(0, policy, &param);
}

/* Objects a writer replaced: readers may still hold them, so they are freed after the run. */
struct retired {
    void **items;
    size_t count, cap;
};

static void retire(struct retired *r, void *object) {
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 1024;
        r->items = realloc(r->items, r->cap * sizeof *r->items);
    }
    r->items[r->count++] = object;
}

struct read_shared {
    struct object *current;  /* rcu_dereference / rcu_assign_pointer */
    int yield_every;         /* batches between sched_yield() calls; 0 never */
    _Atomic int stop;
    _Atomic int started;
    _Atomic uint64_t reads;
};

static void *reader(void *arg) {
    struct read_shared *s = arg;
    urcu_memb_register_thread();
    atomic_fetch_add(&s->started, 1);
    uint64_t n = 0;
    long sum = 0;
    urcu_memb_read_lock();
    struct object *o = rcu_dereference(s->current);
    urcu_memb_read_unlock();
    int batches = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        for (int i = 0; i < 1024; i++) {
            urcu_memb_read_lock();
            if (atomic_load_explicit(&o->available, memory_order_acquire)) {
                sum += o->value;
            } else {
                o = rcu_dereference(s->current);  /* revoked: pick up the replacement */
            }
            urcu_memb_read_unlock();
        }
        n += 1024;
        if (s->yield_every && ++batches == s->yield_every) {
            sched_yield();
            batches = 0;
        }
    }
    atomic_fetch_add(&s->reads, n + (sum == -1));
    urcu_memb_unregister_thread();
    return NULL;
}

cb_read_result cb_read_run(int readers, double writer_per_s, int yield_every, uint64_t duration_ns) {
    struct read_shared s;
    s.yield_every = yield_every;
    struct retired retired = { 0 };
    struct object *first = calloc(1, sizeof *first);
    first->available = 1;
    first->value = 1;
    s.current = first;
    atomic_init(&s.stop, 0);
    atomic_init(&s.started, 0);
    atomic_init(&s.reads, 0);
    pthread_t threads[64];
    readers = start_readers(threads, readers, reader, &s, &s.started);

    set_writer_policy(yield_every, SCHED_BATCH);
    uint64_t start = now_ns(), writes = 0, cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t end = start + duration_ns;
    while (writer_wait(start, end, writes, writer_per_s)) {
        /* Revoke the current object, wait for readers, publish a replacement. */
        struct object *old = s.current;  /* only the writer assigns it */
        atomic_store_explicit(&old->available, 0, memory_order_release);
        urcu_memb_synchronize_rcu();
        struct object *replacement = calloc(1, sizeof *replacement);
        replacement->available = 1;
        replacement->value = (long)writes;
        rcu_assign_pointer(s.current, replacement);
        retire(&retired, old);  /* readers may still hold it outside a section: keep */
        writes++;
    }
    uint64_t elapsed = now_ns() - start, writer_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
    set_writer_policy(yield_every, SCHED_OTHER);
    stop_readers(threads, readers, &s.stop);
    for (size_t i = 0; i < retired.count; i++) free(retired.items[i]);
    free(retired.items);
    free(s.current);
    cb_read_result r = { .reads = atomic_load(&s.reads), .writes = writes, .elapsed_ns = elapsed,
                         .writer_cpu_ns = writer_cpu };
    return r;
}

struct sync_shared {
    _Atomic int stop;
    _Atomic int started;
    _Atomic int flag;
};

static void *sync_reader(void *arg) {
    struct sync_shared *s = arg;
    urcu_memb_register_thread();
    atomic_fetch_add(&s->started, 1);
    long sum = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        urcu_memb_read_lock();
        sum += atomic_load_explicit(&s->flag, memory_order_acquire);
        urcu_memb_read_unlock();
    }
    if (sum == -1) atomic_store(&s->flag, 2);
    urcu_memb_unregister_thread();
    return NULL;
}

void cb_synchronize_latency(int readers, int count, uint64_t *out_ns) {
    struct sync_shared s;
    atomic_init(&s.stop, 0);
    atomic_init(&s.started, 0);
    atomic_init(&s.flag, 1);
    pthread_t threads[64];
    readers = start_readers(threads, readers, sync_reader, &s, &s.started);
    for (int i = 0; i < count; i++) {
        uint64_t t0 = now_ns();
        urcu_memb_synchronize_rcu();
        out_ns[i] = now_ns() - t0;
    }
    stop_readers(threads, readers, &s.stop);
}

/* ---- the mutex baseline: Alice's scheme with a bare pthread mutex ---- */

struct locked_object {
    pthread_mutex_t lock;
    int available;
    long value;
};

struct mutex_shared {
    pthread_mutex_t current_lock;  /* guards `current` */
    struct locked_object *current;
    int yield_every;               /* batches between sched_yield() calls; 0 never */
    _Atomic int stop;
    _Atomic int started;
    _Atomic uint64_t reads;
};

static struct locked_object *locked_object_new(long value) {
    struct locked_object *o = calloc(1, sizeof *o);
    pthread_mutex_init(&o->lock, NULL);
    o->available = 1;
    o->value = value;
    return o;
}

static struct locked_object *mutex_current(struct mutex_shared *s) {
    pthread_mutex_lock(&s->current_lock);
    struct locked_object *o = s->current;
    pthread_mutex_unlock(&s->current_lock);
    return o;
}

static void *mutex_reader(void *arg) {
    struct mutex_shared *s = arg;
    atomic_fetch_add(&s->started, 1);
    uint64_t n = 0;
    long sum = 0;
    struct locked_object *o = mutex_current(s);
    int batches = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            pthread_mutex_lock(&o->lock);
            int available = o->available;
            if (available) sum += o->value;
            pthread_mutex_unlock(&o->lock);
            if (!available) o = mutex_current(s);  /* revoked: pick up the replacement */
        }
        n += 64;
        if (s->yield_every && ++batches == s->yield_every) {
            sched_yield();
            batches = 0;
        }
    }
    atomic_fetch_add(&s->reads, n + (sum == -1));
    return NULL;
}

cb_read_result cb_mutex_read_run(int readers, double writer_per_s, int yield_every, uint64_t duration_ns) {
    struct mutex_shared s;
    s.yield_every = yield_every;
    pthread_mutex_init(&s.current_lock, NULL);
    s.current = locked_object_new(1);
    atomic_init(&s.stop, 0);
    atomic_init(&s.started, 0);
    atomic_init(&s.reads, 0);
    struct retired retired = { 0 };
    pthread_t threads[64];
    readers = start_readers(threads, readers, mutex_reader, &s, &s.started);

    set_writer_policy(yield_every, SCHED_BATCH);
    uint64_t start = now_ns(), writes = 0, cpu_start = clock_ns(CLOCK_THREAD_CPUTIME_ID);
    uint64_t end = start + duration_ns;
    while (writer_wait(start, end, writes, writer_per_s)) {
        /* Publish a replacement, then revoke the old one under its lock: no grace period. */
        struct locked_object *replacement = locked_object_new((long)writes);
        pthread_mutex_lock(&s.current_lock);
        struct locked_object *old = s.current;
        s.current = replacement;
        pthread_mutex_unlock(&s.current_lock);
        pthread_mutex_lock(&old->lock);
        old->available = 0;
        pthread_mutex_unlock(&old->lock);
        retire(&retired, old);  /* a reader may still be about to lock it: keep */
        writes++;
    }
    uint64_t elapsed = now_ns() - start, writer_cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start;
    set_writer_policy(yield_every, SCHED_OTHER);
    stop_readers(threads, readers, &s.stop);
    for (size_t i = 0; i < retired.count; i++) {
        struct locked_object *o = retired.items[i];
        pthread_mutex_destroy(&o->lock);
        free(o);
    }
    free(retired.items);
    pthread_mutex_destroy(&s.current->lock);
    free(s.current);
    pthread_mutex_destroy(&s.current_lock);
    cb_read_result r = { .reads = atomic_load(&s.reads), .writes = writes, .elapsed_ns = elapsed,
                         .writer_cpu_ns = writer_cpu };
    return r;
}
